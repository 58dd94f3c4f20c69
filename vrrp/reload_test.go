package vrrp

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
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

// TestRouterReloadOwner: what the forwarder hears at a reload. A BACKUP
// (keepalived 2.2.7 is MASTER at a higher priority) that gains a VIP
// releases it at once, as at a start (skip_check_adv_addr: the peer
// still advertises one); the same instance
// renamed and at a priority above the peer's preempts, owning its VIPs
// under the new name; nothing is owned or released for a reload that
// changes nothing the forwarder sees.
func TestRouterReloadOwner(t *testing.T) {
	t.Parallel()
	b := newBed(t, "rlo")
	s := kaSpec{version: 3, advInt: "0.1", state: "BACKUP", prio: 150}
	ka := startKeepalived(t, b.b, b.dir, "ka", s)
	t.Cleanup(func() { ka.term(t) })
	waitFor(t, "keepalived master", 5*time.Second, func() bool { return strings.Contains(ka.log.String(), "Entering MASTER STATE") })
	owner := &fakeOwner{}
	log := &syncLog{}
	hooks := &KernelHooks{Netlink: b.a.Netlink(), Owner: owner, Log: slogTo(log)}
	c := s.config()
	c.Priority = 100
	r, err := NewRouter(Options{Instances: []Config{c}, Hooks: hooks, Log: slogTo(log)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.a.Do(func() error { return r.Run(ctx) }) }()
	defer func() { cancel(); <-errc }()
	waitFor(t, "ours backup", 3*time.Second, func() bool { return r.Instance("VI_1").State() == Backup })
	before := owner.String()
	c2 := c
	c2.VirtualIPAddress = []VIP{{Prefix: vip}, {Prefix: netip.MustParsePrefix("192.0.2.201/32")}}
	c2.SkipCheckAdvAddr = true
	if err := r.Reload(Options{Instances: []Config{c2}}); err != nil {
		t.Fatal(err)
	}
	since := func(before string) string {
		return strings.TrimPrefix(strings.TrimPrefix(owner.String(), before), "; ")
	}
	if got := since(before); got != "release VI_1 192.0.2.201/32" {
		t.Errorf("a BACKUP gaining a VIP: owner heard %q", got)
	}
	if r.Instance("VI_1").State() != Backup {
		t.Errorf("state after the reload: %v", r.Instance("VI_1").State())
	}
	c3 := c2
	c3.Name, c3.Priority = "VI_renamed", 200
	before = owner.String()
	if err := r.Reload(Options{Instances: []Config{c3}}); err != nil {
		t.Fatal(err)
	}
	if r.Instance("VI_1") != nil || r.Instance("VI_renamed") == nil {
		t.Fatal("the renamed instance is not the running one")
	}
	waitFor(t, "ours preempts", 3*time.Second, func() bool { return r.Instance("VI_renamed").State() == Master })
	waitFor(t, "owned under the new name", 2*time.Second, func() bool {
		return strings.Contains(since(before), "own VI_renamed 192.0.2.100/24 192.0.2.201/32")
	})
	if strings.Contains(log.String(), "removed by the reload") {
		t.Errorf("the renamed instance was taken for a removed one:\n%s", log.String())
	}
	before = owner.String()
	if err := r.Reload(Options{Instances: []Config{c3}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := since(before); got != "own VI_renamed 192.0.2.100/24 192.0.2.201/32" {
		// A MASTER kept says its ownership again (idempotent), nothing else.
		t.Errorf("an unchanged reload of a MASTER: owner heard %q", got)
	}
	if r.Instance("VI_renamed").State() != Master {
		t.Errorf("state after an unchanged reload: %v", r.Instance("VI_renamed").State())
	}
}

// syncLog is a log buffer safe for the router's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
