package vrrp

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestScriptLogLines: keepalived 2.2.7's lines for a vrrp_script
// (vrrp_scheduler.c vrrp_script_child_thread) through a rise 2 / fall 3
// history: the first result is always logged; afterwards only a change
// of state, after rise successes or fall failures; a timeout and a signal
// have their own wording; "now returning" follows the exit status.
func TestScriptLogLines(t *testing.T) {
	var log strings.Builder
	r := &Router{log: slogTo(&log), tracked: map[string]*scriptTrack{}}
	r.tracked["s"] = newScriptTrack(TrackScript{Name: "s", Rise: 2, Fall: 3})
	ok := scriptResult{name: "s", ok: true, exited: true}
	exit := func(n int) scriptResult { return scriptResult{name: "s", exited: true, status: n} }
	for _, res := range []scriptResult{
		ok,               // first result: succeeded
		exit(2), exit(2), // two failures of fall 3: nothing
		ok,                        // back to full
		exit(2), exit(2), exit(4), // the third failure: failed (status 4)
		exit(4),                     // still failed: nothing
		ok,                          // one success of rise 2: nothing
		{name: "s", timedOut: true}, // resets the rise count
		ok, ok,                      // succeeded
		{name: "s", timedOut: true}, {name: "s", timedOut: true}, {name: "s", signal: 9}, // failed (due to signal 9)
	} {
		r.scriptDone(res)
	}
	re := regexp.MustCompile(`msg="([^"]*)"`)
	var got []string
	for _, m := range re.FindAllStringSubmatch(log.String(), -1) {
		got = append(got, m[1])
	}
	want := []string{
		"VRRP_Script(s) succeeded",
		"Script `s` now returning 2",
		"Script `s` now returning 0",
		"Script `s` now returning 2",
		"Script `s` now returning 4",
		"VRRP_Script(s) failed (exited with status 4)",
		"Script `s` now returning 0",
		"VRRP_Script(s) succeeded",
		"VRRP_Script(s) failed (due to signal 9)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("log lines:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	// A first result that is a timeout is logged as such.
	log.Reset()
	r.tracked["t"] = newScriptTrack(TrackScript{Name: "t"})
	r.scriptDone(scriptResult{name: "t", timedOut: true})
	if !strings.Contains(log.String(), `msg=VRRP_Script(t)\ timed_out`) && !strings.Contains(log.String(), `msg="VRRP_Script(t) timed_out"`) {
		t.Errorf("first result a timeout: %s", log.String())
	}
}

// TestRouterReloadScripts: a reload keeps a script's state by name
// (keepalived's clear_diff_script: "considered successful on reload") and
// the instance's priority with it; the runner of the old configuration
// stops, the new one runs the new command.
func TestRouterReloadScripts(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "fail")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mk := func(prio uint8, script string) Config {
		return Config{Name: "VI_1", Interface: "veth0", VRID: 51, Priority: prio, Version: 3, AdvInt: 100 * time.Millisecond,
			VirtualIPAddress: []VIP{{Prefix: vip}},
			TrackScript:      []TrackScript{{Name: "chk", Script: script, Interval: 50 * time.Millisecond, Weight: -20}}}
	}
	b := newBed(t, "rls")
	o := startOurs(t, b.a, mk(100, "test ! -e "+flag))
	r, log := o.r, o.log
	wait := func(what string, cond func() bool) {
		t.Helper()
		for limit := time.Now().Add(3 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(limit) {
				t.Fatalf("timed out waiting for %s; log:\n%s", what, log.String())
			}
		}
	}
	wait("priority 80", func() bool { return r.Instance("VI_1").Priority() == 80 })
	// The new command would succeed: the state carried over is the old
	// one until the new runner's first result says otherwise.
	if err := r.Reload(Options{Instances: []Config{mk(150, "true")}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "VRRP_Script(chk) considered unsuccessful on reload") {
		t.Errorf("no 'considered unsuccessful on reload':\n%s", log.String())
	}
	wait("priority 150 (the new base, the new command succeeding)", func() bool { return r.Instance("VI_1").Priority() == 150 })
	if !strings.Contains(log.String(), "Changing effective priority from 130 to 150") {
		t.Errorf("the reload's priority came from anything but the carried failure and the new base:\n%s", log.String())
	}
}
