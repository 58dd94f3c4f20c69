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
func keepalivedProcess(p *Process, s *spec.Spec, d *spec.Director, sock string) *Process {
	conf := s.Abs(d.Keepalived)
	// The process runs in the node directory; its includes are relative
	// to the file's own directory, which keepalived needs absolute.
	if abs, err := filepath.Abs(conf); err == nil {
		conf = abs
	}
	p.argv = append([]string{spec.ProcKeepalived, "--dont-fork", "--log-console", "-f", conf}, d.KeepalivedArgs...)
	p.env = append(p.env, "LVSD_SOCKET="+sock)
	p.after = append(p.after, p.Node+"/"+spec.ProcLVSD)
	// Ready once lvsd holds the configuration's tables: the daemon logs
	// this line after its first sync, before the checkers start, so
	// traffic never meets a half-programmed director.
	p.ready = &spec.Ready{Log: spec.Regexp{Regexp: keepalivedActive},
		Timeout: spec.Duration(60 * time.Second), Interval: spec.Duration(50 * time.Millisecond)}
	return p
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
