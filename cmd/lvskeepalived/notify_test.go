package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"lvslab/config/keepalived"
)

// A notify or quorum script runs without a shell, as keepalived 2.x runs
// it; a line written for a shell fails, and the daemon says so with the
// file:line and the status instead of leaving a VIP silently unbound.
func TestNotifyReportsFailingScript(t *testing.T) {
	var out bytes.Buffer
	d := &daemon{log: &logger{outs: []io.Writer{&out}}, cfg: &keepalived.Config{}}
	s := &keepalived.Script{Pos: keepalived.Pos{File: "taobao.conf", Line: 23}, Args: []string{"/bin/sh", "-c", "exit 3"}}
	d.notify(s)
	d.scripts.Wait()
	if got := out.String(); !strings.Contains(got, `taobao.conf:23: script "/bin/sh -c exit 3" exited with status 3`) {
		t.Errorf("log %q lacks the failing script's line", got)
	}
	out.Reset()
	d.notify(&keepalived.Script{Pos: keepalived.Pos{File: "taobao.conf", Line: 24}, Args: []string{"/bin/true"}})
	d.scripts.Wait()
	if out.Len() != 0 {
		t.Errorf("a script that succeeds logged %q", out.String())
	}
}
