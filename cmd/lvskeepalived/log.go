package main

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// logger writes keepalived's log lines: to syslog (daemon facility, or
// LOG_LOCALn with -S) unless -G, to the console with -l, to a file with
// -g. The texts are keepalived's, so what operators grep for keeps
// working; console and file lines carry keepalived's timestamp prefix.
type logger struct {
	mu   sync.Mutex
	outs []io.Writer
	sys  *syslog.Writer
	file *os.File
}

func newLogger(o options) (*logger, error) {
	l := &logger{}
	if o.logConsole {
		l.outs = append(l.outs, os.Stderr)
	}
	if o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("log file %s: %w", o.logFile, err)
		}
		l.file = f
		l.outs = append(l.outs, f)
	}
	if !o.noSyslog {
		prio := syslog.LOG_DAEMON
		if n, err := strconv.Atoi(o.logFacility); err == nil && n >= 0 && n <= 7 {
			prio = syslog.LOG_LOCAL0 + syslog.Priority(n)<<3
		}
		if w, err := syslog.New(prio|syslog.LOG_INFO, "Keepalived_healthcheckers"); err == nil {
			l.sys = w
		}
	}
	return l, nil
}

func (l *logger) printf(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.outs) > 0 {
		line := time.Now().Format("Mon Jan _2 15:04:05.000000 2006") + ": " + msg + "\n"
		for _, w := range l.outs {
			_, _ = io.WriteString(w, line)
		}
	}
	if l.sys != nil {
		_ = l.sys.Info(msg)
	}
}

func (l *logger) close() {
	if l.sys != nil {
		l.sys.Close()
	}
	if l.file != nil {
		l.file.Close()
	}
}

// Default pid files (keepalived's, /run).
const (
	defaultPid      = "/run/keepalived.pid"
	defaultCheckPid = "/run/keepalived_checkers.pid"
	defaultVRRPPid  = "/run/keepalived_vrrp.pid"
)

// writePidFiles writes the main pid file and the file of each side that
// runs (one process: the same pid). A main pid file naming a live process
// other than this one is keepalived's "daemon is already running".
func writePidFiles(o options) (func(), error) {
	main := o.pidFile
	if main == "" {
		main = defaultPid
	}
	if b, err := os.ReadFile(main); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && pid != os.Getpid() {
			if syscall.Kill(pid, 0) == nil {
				return nil, fmt.Errorf("daemon is already running (pid %d in %s)", pid, main)
			}
		}
	}
	files := []string{main}
	checkers := !o.vrrpOnly || o.checkOnly
	vrrp := !o.checkOnly || o.vrrpOnly
	if checkers {
		files = append(files, or(o.checkPid, defaultCheckPid))
	}
	if vrrp {
		files = append(files, or(o.vrrpPid, defaultVRRPPid))
	}
	var written []string
	cleanup := func() {
		for _, f := range written {
			os.Remove(f)
		}
	}
	for _, f := range files {
		_ = os.MkdirAll(filepath.Dir(f), 0o755)
		if err := os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			cleanup()
			return nil, fmt.Errorf("pid file %s: %w", f, err)
		}
		written = append(written, f)
	}
	return cleanup, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
