package topo

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"lvslab/sim/service"
	"lvslab/sim/spec"
)

// keepalivedProcess is lvskeepalived beside the node's lvsd: in the
// foreground, logging to its output, programming lvsd over sock (lvsadm's
// LVSD_SOCKET convention), started after lvsd is ready. It is an ordinary
// lab process: process.kill, process.start and process.restart act on
// node/lvskeepalived.
func keepalivedProcess(p *Process, s *spec.Spec, d *spec.Director, dir, sock string) (*Process, error) {
	return lvskeepalivedProcess(p, absConf(s, d.Keepalived), d.KeepalivedArgs, dir, sock)
}

// lvskeepalivedProcess writes its pid files in the node directory, as
// Debian's keepalived does here: with keepalived's default
// /run/keepalived.pid the second director of a pair (or of another lab
// running at the same time) would find the first one's pid there and
// refuse to start ("daemon is already running").
func lvskeepalivedProcess(p *Process, conf string, args []string, dir, sock string) (*Process, error) {
	pid, err := pidFiles(dir, "lvskeepalived")
	if err != nil {
		return nil, err
	}
	p.argv = append([]string{spec.ProcKeepalived, "--dont-fork", "--log-console", "-f", conf,
		"-p", pid("keepalived"), "-r", pid("vrrp"), "-c", pid("checkers"), "-b", pid("bfd")}, args...)
	p.env = append(p.env, "LVSD_SOCKET="+sock)
	p.after = append(p.after, p.Node+"/"+spec.ProcLVSD)
	// Ready once lvsd holds the configuration's tables: the daemon logs
	// this line after its first sync, before the checkers start, so
	// traffic never meets a half-programmed director.
	p.ready = &spec.Ready{Log: spec.Regexp{Regexp: keepalivedActive},
		Timeout: spec.Duration(60 * time.Second), Interval: spec.Duration(50 * time.Millisecond)}
	return p, nil
}

// pidFiles makes the node's directory for a daemon's pid files and returns
// the path of each.
func pidFiles(dir, name string) (func(string) string, error) {
	run := filepath.Join(dir, name)
	if err := os.MkdirAll(run, 0o755); err != nil {
		return nil, fmt.Errorf("%s's directory: %w", name, err)
	}
	return func(file string) string { return filepath.Join(run, file+".pid") }, nil
}

// nodeKeepalivedProcess is a node's keepalived: process. Debian's
// keepalived runs as in production, minus what the lab's kernels lack:
// VRRP only (-P; its checkers need kernel ip_vs), in the foreground of the
// process group (-n: a process.kill of NODE/keepalived signals the parent
// and its VRRP child together, as killall keepalived does), logging with
// detail to the console and not to syslog (-l -D -G), and with its pid
// files in the node directory so two nodes' daemons never meet. The
// parent respawns a VRRP child that dies, as it does in production.
// lvskeepalived runs as beside a director's lvsd.
func nodeKeepalivedProcess(p *Process, s *spec.Spec, k *spec.Keepalived, dir, sock string) (*Process, error) {
	conf := absConf(s, k.Config)
	if k.Editable {
		// Runs from nodes/N/keepalived.conf, which an exec fault may edit
		// (the seed's manual switch: raise a priority, then reload).
		b, err := os.ReadFile(conf)
		if err != nil {
			return nil, fmt.Errorf("keepalived's file: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("node directory: %w", err)
		}
		if conf, err = filepath.Abs(filepath.Join(dir, "keepalived.conf")); err != nil {
			return nil, err
		}
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			return nil, fmt.Errorf("keepalived's file: %w", err)
		}
	}
	if k.Impl() == spec.ImplLVSKeepalived {
		p, err := lvskeepalivedProcess(p, conf, k.Args, dir, sock)
		if err != nil {
			return nil, err
		}
		// A node's keepalived: has VRRP instances (validation says so):
		// ready when the first one has left INIT, which lvskeepalived
		// logs after its first sync of lvsd's tables, so the checkers'
		// line alone would let a fault meet a daemon without VRRP yet.
		p.ready.Log = spec.Regexp{Regexp: vrrpEntered}
		return p, nil
	}
	pid, err := pidFiles(dir, "keepalived")
	if err != nil {
		return nil, err
	}
	p.argv = append([]string{"keepalived", "-P", "-n", "-l", "-D", "-G", "-f", conf,
		"-p", pid("keepalived"), "-r", pid("vrrp"), "-c", pid("checkers"), "-b", pid("bfd")}, k.Args...)
	// Ready when every VRRP instance has left INIT: each logs its first
	// state (BACKUP, or FAULT with a tracked interface down), so traffic
	// and faults never meet a daemon still reading its file.
	p.ready = &spec.Ready{Log: spec.Regexp{Regexp: vrrpEntered},
		Timeout: spec.Duration(20 * time.Second), Interval: spec.Duration(50 * time.Millisecond)}
	return p, nil
}

// vrrpEntered is keepalived's first state line of an instance, e.g.
// "(VI_1) Entering BACKUP STATE (init)".
var vrrpEntered = regexp.MustCompile(`\) Entering (BACKUP|MASTER|FAULT) STATE`)

// absConf is the file's absolute path: the process runs in the node
// directory, and keepalived resolves includes against the file's own
// directory, which it needs absolute.
func absConf(s *spec.Spec, file string) string {
	conf := s.Abs(file)
	if abs, err := filepath.Abs(conf); err == nil {
		conf = abs
	}
	return conf
}

var keepalivedActive = regexp.MustCompile(`Activating healthchecker for \d+ real servers`)

// hasControls reports whether a built-in service reads a control file.
func hasControls(k spec.ServiceKind) bool {
	return k == spec.ServiceHTTPEcho || k == spec.ServiceHTTPSEcho || k == spec.ServiceSMTPBanner
}

// writeControls writes the service's starting controls (status, delay,
// body from the spec) to its control file, which service.set rewrites.
func writeControls(dir string, sv spec.Service) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("node directory: %w", err)
	}
	path := spec.ServiceControlFile(dir, sv.ServiceName())
	if err := service.WriteControls(path, service.Controls{Status: sv.Status, Delay: sv.Delay.D(), Body: sv.Body}); err != nil {
		return "", fmt.Errorf("service %s: %w", sv.ServiceName(), err)
	}
	return path, nil
}
