package fault

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
)

// fakeClock moves only when the test says so.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Timer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &fakeWaiter{at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		w.c <- c.now
		return w.c, func() bool { return false }
	}
	c.waiters = append(c.waiters, w)
	return w.c, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.waiters {
			if x == w {
				c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
				return true
			}
		}
		return false
	}
}

// advance moves time forward, firing due timers in order.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.waiters, func(i, j int) bool { return c.waiters[i].at.Before(c.waiters[j].at) })
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.c <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// waitPending waits until n timers are pending: the goroutines of the
// scheduler have caught up with the last advance.
func waitPending(t *testing.T, c *fakeClock, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return c.pending() == n }, 5*time.Second, time.Millisecond,
		"want %d pending timers", n)
}

// fakeActor records what it was asked to do and when (fake time).
type fakeActor struct {
	clk  *fakeClock
	t0   time.Time
	fail map[string]bool

	mu     sync.Mutex
	calls  []string
	undone []string
}

func (a *fakeActor) apply(_ context.Context, e *spec.Event) (undoFunc, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at := a.clk.Now().Sub(a.t0)
	a.calls = append(a.calls, fmt.Sprintf("%s@%s", e.Name, at))
	if a.fail[e.Name] {
		return nil, "", errors.New("boom")
	}
	undo := func(context.Context) error {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.undone = append(a.undone, fmt.Sprintf("%s@%s", e.Name, a.clk.Now().Sub(a.t0)))
		return nil
	}
	return undo, "did " + e.Name, nil
}

func (a *fakeActor) waitCalls(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { c, _ := a.snapshot(); return len(c) >= n }, 5*time.Second, time.Millisecond)
}

func (a *fakeActor) waitUndone(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { _, u := a.snapshot(); return len(u) >= n }, 5*time.Second, time.Millisecond)
}

func (a *fakeActor) snapshot() (calls, undone []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...), append([]string(nil), a.undone...)
}

// fakeWatcher holds log and state triggers until the test releases them.
type fakeWatcher struct {
	mu      sync.Mutex
	chs     map[*spec.Trigger]chan struct{}
	rearmed []*spec.Trigger
}

func (w *fakeWatcher) rearm(t *spec.Trigger) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rearmed = append(w.rearmed, t)
	return nil
}

func (w *fakeWatcher) ch(t *spec.Trigger) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.chs == nil {
		w.chs = map[*spec.Trigger]chan struct{}{}
	}
	if w.chs[t] == nil {
		w.chs[t] = make(chan struct{})
	}
	return w.chs[t]
}

func (w *fakeWatcher) wait(ctx context.Context, t *spec.Trigger) error {
	select {
	case <-w.ch(t):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func dur(d time.Duration) *spec.Duration { v := spec.Duration(d); return &v }

func eventsByName(evs []runner.Event) map[string]runner.Event {
	m := map[string]runner.Event{}
	for _, e := range evs {
		m[e.Name] = e
	}
	return m
}

// TestScheduleChain: at:, for:, when: event and name.end with after:, a
// chain of whens, a failing action whose dependants never fire, a trigger
// that times out, and stop reverting what is still active.
func TestScheduleChain(t *testing.T) {
	clk := newFakeClock()
	t0 := clk.Now()
	act := &fakeActor{clk: clk, t0: t0, fail: map[string]bool{"bad": true}}
	entries := []*spec.Event{
		{Name: "a", At: dur(time.Second), Fault: spec.FaultLinkDown, For: spec.Duration(2 * time.Second)},
		{Name: "b", When: &spec.Trigger{Event: "a.end", After: spec.Duration(time.Second)}, Fault: spec.FaultBlackhole},
		{Name: "c", When: &spec.Trigger{Event: "b"}, Fault: spec.FaultSysctl, For: spec.Duration(10 * time.Second)},
		{Name: "bad", At: dur(500 * time.Millisecond), Fault: spec.FaultExec},
		{Name: "after-bad", When: &spec.Trigger{Event: "bad"}, Fault: spec.FaultExec},
		{Name: "late", When: &spec.Trigger{Event: "a", After: spec.Duration(time.Hour)}, Fault: spec.FaultExec},
		{Name: "never", When: &spec.Trigger{Event: "bad", Timeout: spec.Duration(5 * time.Second)}, Fault: spec.FaultExec},
	}
	s := newScheduler(clk, t0, act, &fakeWatcher{}, nil)
	s.start(context.Background(), entries)

	// After each step, wait for its effect and for the goroutines to
	// arm their next timers before moving the clock again.
	// Pending: a@1s, bad@0.5s, never's timeout@5s.
	waitPending(t, clk, 3)
	clk.advance(500 * time.Millisecond) // bad fails
	act.waitCalls(t, 1)
	waitPending(t, clk, 2)
	clk.advance(500 * time.Millisecond) // a fires at 1s; its for: ends at 3s; late is due at 1h+1s
	act.waitCalls(t, 2)
	waitPending(t, clk, 3)
	calls, _ := act.snapshot()
	assert.Equal(t, []string{"bad@500ms", "a@1s"}, calls)

	clk.advance(2 * time.Second) // a.end at 3s; b due at 4s
	act.waitUndone(t, 1)
	waitPending(t, clk, 3)
	_, undone := act.snapshot()
	assert.Equal(t, []string{"a@3s"}, undone)

	clk.advance(time.Second) // b at 4s, c at once (no after:), c.end due at 14s
	act.waitCalls(t, 4)
	waitPending(t, clk, 3)
	calls, _ = act.snapshot()
	assert.Equal(t, []string{"bad@500ms", "a@1s", "b@4s", "c@4s"}, calls)

	clk.advance(time.Second) // 5s: never times out
	require.Eventually(t, func() bool { _, ok := eventsByName(s.snapshot())["never.timeout"]; return ok },
		5*time.Second, time.Millisecond)
	waitPending(t, clk, 2)

	require.NoError(t, s.stop(context.Background()))
	_, undone = act.snapshot()
	// Stop reverts newest first: c, then b (a was undone by for:).
	assert.Equal(t, []string{"a@3s", "c@5s", "b@5s"}, undone)

	ev := eventsByName(s.snapshot())
	assert.Equal(t, time.Second, ev["a"].At)
	assert.Equal(t, string(spec.FaultLinkDown), ev["a"].Kind)
	assert.Equal(t, 3*time.Second, ev["a.end"].At)
	assert.Equal(t, 4*time.Second, ev["b"].At)
	assert.Equal(t, 4*time.Second, ev["c"].At)
	assert.Equal(t, KindError, ev["bad.failed"].Kind)
	assert.NotContains(t, ev, "bad")
	assert.Equal(t, KindTimeout, ev["never.timeout"].Kind)
	assert.Equal(t, 5*time.Second, ev["never.timeout"].At)
	assert.Equal(t, KindSkipped, ev["after-bad.skipped"].Kind)
	assert.Contains(t, ev["late.skipped"].Detail, "after the end of the run")
	assert.Equal(t, KindRevert, ev["c.revert"].Kind)
	assert.Equal(t, KindRevert, ev["b.revert"].Kind)
	assert.NotContains(t, ev, "c.end", "c was reverted by stop, not by its for:")
	assert.Len(t, s.errors(), 1)
}

// TestScheduleWatchTriggers: log and state triggers fire when the watcher
// reports, after: counting from that moment.
func TestScheduleWatchTriggers(t *testing.T) {
	clk := newFakeClock()
	t0 := clk.Now()
	act := &fakeActor{clk: clk, t0: t0}
	w := &fakeWatcher{}
	logTrig := &spec.Trigger{Log: &spec.LogMatch{Process: "n/p", Match: spec.Regexp{Regexp: regexp.MustCompile("up")}}, After: spec.Duration(2 * time.Second)}
	stateTrig := &spec.Trigger{State: &spec.StateCheck{Addr: &spec.AddrCheck{Node: "n"}}, Timeout: spec.Duration(3 * time.Second)}
	entries := []*spec.Event{
		{Name: "on-log", When: logTrig, Fault: spec.FaultExec},
		{Name: "on-state", When: stateTrig, Fault: spec.FaultExec},
	}
	s := newScheduler(clk, t0, act, w, nil)
	s.start(context.Background(), entries)
	waitPending(t, clk, 1) // on-state's timeout
	clk.advance(time.Second)
	close(w.ch(stateTrig)) // seen at 1s, before its timeout
	act.waitCalls(t, 1)
	calls, _ := act.snapshot()
	assert.Equal(t, []string{"on-state@1s"}, calls)
	waitPending(t, clk, 0)
	close(w.ch(logTrig)) // seen at 1s; due at 3s
	waitPending(t, clk, 1)
	clk.advance(2 * time.Second)
	act.waitCalls(t, 2)
	calls, _ = act.snapshot()
	assert.Equal(t, "on-log@3s", calls[1])
	require.NoError(t, s.stop(context.Background()))
	ev := eventsByName(s.snapshot())
	assert.NotContains(t, ev, "on-state.timeout")
}

// TestScheduleSince: a state trigger with since: is watched only once its
// event has fired, so a state true from the start fires then, not at T0,
// and a log trigger's start is moved to that moment (rearm).
func TestScheduleSince(t *testing.T) {
	clk := newFakeClock()
	t0 := clk.Now()
	act := &fakeActor{clk: clk, t0: t0}
	w := &fakeWatcher{}
	stateTrig := &spec.Trigger{State: &spec.StateCheck{Addr: &spec.AddrCheck{Node: "n"}}, Since: "first"}
	logTrig := &spec.Trigger{Log: &spec.LogMatch{Process: "n/p", Match: spec.Regexp{Regexp: regexp.MustCompile("up")}}, Since: "first.end"}
	close(w.ch(stateTrig)) // already true at T0
	close(w.ch(logTrig))
	entries := []*spec.Event{
		{Name: "first", At: dur(2 * time.Second), Fault: spec.FaultBlackhole, For: spec.Duration(time.Second)},
		{Name: "on-state", When: stateTrig, Fault: spec.FaultExec},
		{Name: "on-log", When: logTrig, Fault: spec.FaultExec},
	}
	s := newScheduler(clk, t0, act, w, nil)
	s.start(context.Background(), entries)
	waitPending(t, clk, 1)
	clk.advance(2 * time.Second)
	act.waitCalls(t, 2)
	calls, _ := act.snapshot()
	assert.Equal(t, []string{"first@2s", "on-state@2s"}, calls)
	waitPending(t, clk, 1) // first's for:
	clk.advance(time.Second)
	act.waitCalls(t, 3)
	calls, _ = act.snapshot()
	assert.Contains(t, calls, "on-log@3s")
	require.NoError(t, s.stop(context.Background()))
	assert.Equal(t, []*spec.Trigger{stateTrig, logTrig}, w.rearmed)
}

// TestScheduleStopDuringWait: stop while entries wait cancels them and
// records them as skipped, with nothing applied.
func TestScheduleStopDuringWait(t *testing.T) {
	clk := newFakeClock()
	act := &fakeActor{clk: clk, t0: clk.Now()}
	s := newScheduler(clk, clk.Now(), act, &fakeWatcher{}, nil)
	s.start(context.Background(), []*spec.Event{
		{Name: "x", At: dur(time.Minute), Fault: spec.FaultExec},
		{Name: "y", When: &spec.Trigger{Log: &spec.LogMatch{Process: "n/p"}}, Fault: spec.FaultExec},
	})
	waitPending(t, clk, 1)
	require.NoError(t, s.stop(context.Background()))
	calls, _ := act.snapshot()
	assert.Empty(t, calls)
	ev := eventsByName(s.snapshot())
	assert.Equal(t, KindSkipped, ev["x"+".skipped"].Kind)
	assert.Equal(t, KindSkipped, ev["y"+".skipped"].Kind)
	assert.Contains(t, ev["y.skipped"].Detail, "a line of n/p")
}

func TestNftScripts(t *testing.T) {
	got := nftTable(tableName("rs2-down"), []chainSpec{
		{Device: "rs2-eth0", Hook: "ingress", Rules: []string{"drop"}},
		{Device: "rs2-eth0", Hook: "egress", Rules: []string{lossRule(12.345)}},
	})
	assert.Equal(t, `table netdev lvslab_rs2_down {
	chain c0_ingress {
		type filter hook ingress device "rs2-eth0" priority -500; policy accept;
		drop
	}
	chain c1_egress {
		type filter hook egress device "rs2-eth0" priority -500; policy accept;
		numgen random mod 10000 < 1235 drop
	}
}
`, got)
	assert.Equal(t, "drop", lossRule(100))

	id := sideIdentity{MACs: []string{"02:00:00:00:00:01"}, Addrs: addrsOf("10.0.0.1", "10.0.1.1")}
	rules, err := partitionRules(id, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"ether saddr 02:00:00:00:00:01 drop", "ip saddr { 10.0.0.1, 10.0.1.1 } drop"}, rules)
	rules, err = partitionRules(id, "vrrp")
	require.NoError(t, err)
	assert.Equal(t, []string{"ether saddr 02:00:00:00:00:01 meta l4proto { 51, 112 } drop", "ip saddr { 10.0.0.1, 10.0.1.1 } meta l4proto { 51, 112 } drop"}, rules)
	rules, err = partitionRules(id, "arp")
	require.NoError(t, err)
	assert.Equal(t, []string{"ether type arp ether saddr 02:00:00:00:00:01 drop", "arp saddr ip { 10.0.0.1, 10.0.1.1 } drop"}, rules)
	_, err = partitionRules(id, "sctp")
	assert.Error(t, err)
	_, err = partitionRules(sideIdentity{}, "")
	assert.Error(t, err)

	assert.Equal(t, []string{"ingress"}, portHooks("egress"))
	assert.Equal(t, []string{"egress"}, portHooks("ingress"))
	assert.Equal(t, []string{"ingress", "egress"}, portHooks(""))
}

func TestTbfParameters(t *testing.T) {
	q, err := tbfQdisc(netlinkRootAttrs(7), 8_000_000, 32<<10)
	require.NoError(t, err)
	assert.Equal(t, uint64(1_000_000), q.Rate)
	assert.Equal(t, uint32(32<<10+100_000), q.Limit)
	assert.NotZero(t, q.Buffer)
	_, err = tbfQdisc(netlinkRootAttrs(7), 7, 1500)
	assert.Error(t, err)
}

// Delay is claimed with netem or without (the userspace wire).
func TestClaimsWithAndWithoutNetem(t *testing.T) {
	no, yes := false, true
	s := &spec.Spec{Timeline: []spec.Event{
		{Name: "slow", Fault: spec.FaultDelay},
		{Name: "cut", Fault: spec.FaultLinkDown},
	}}
	assert.Equal(t, []string{"timeline slow", "timeline cut"}, New(s, Options{Netem: &no}).Claims(s))
	assert.Equal(t, []string{"timeline slow", "timeline cut"}, New(s, Options{Netem: &yes}).Claims(s))
}

func addrsOf(ss ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func netlinkRootAttrs(index int) netlink.QdiscAttrs {
	return netlink.QdiscAttrs{LinkIndex: index, Handle: qdiscHandle, Parent: netlink.HANDLE_ROOT}
}

// TestProtoOnly: what a blackhole or loss with proto: matches before its
// verdict.
func TestProtoOnly(t *testing.T) {
	for proto, want := range map[string]string{
		"": "", "vrrp": "meta l4proto { 51, 112 }", "arp": "ether type arp", "tcp": "meta l4proto 6", "51": "meta l4proto 51",
	} {
		got, err := protoOnly(proto)
		require.NoError(t, err, proto)
		assert.Equal(t, want, got, proto)
	}
	_, err := protoOnly("sctp")
	assert.Error(t, err)
}
