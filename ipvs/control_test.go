package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"lvslab/config"
	"lvslab/internal/nstest"
)

// guardedEngine is newTestEngine with a real nftables guard, programmed in
// a namespace of the test's own through the guard's namespace option.
func guardedEngine(t testing.TB) (*testEngine, *KernelGuard) {
	t.Helper()
	nstest.Require(t)
	ns := nstest.New(t, "ctl-g")
	peer := nstest.New(t, "ctl-p")
	nstest.Veth(t, ns, "g0", peer, "g1", 0)
	te := newTestEngine(t, "-m")
	g := &KernelGuard{Table: "lvsd_ctltest", Devices: []string{"g0"}, NetNS: int(ns.Handle())}
	t.Cleanup(func() { _ = g.Close() })
	te.SetGuard(g)
	if err := te.SetMarks(nil); err != nil {
		t.Fatal(err)
	}
	return te, g
}

func mustCommand(t testing.TB, line string) config.Command {
	t.Helper()
	c, err := config.ParseArgs(splitFields(line))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRuleChangeDoesNotStallForwarding is defect 6 of issue 8: a rule
// change programs the kernel guard without holding the data-path lock, so
// frames keep being forwarded while the guard's transaction is under way.
func TestRuleChangeDoesNotStallForwarding(t *testing.T) {
	te, g := guardedEngine(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	g.beforeFlush = func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	done := make(chan error, 1)
	go func() { done <- te.Apply(mustCommand(t, "-A -t 10.0.0.101:80 -s rr")) }()
	<-entered
	forwarded := make(chan int, 1)
	go func() {
		te.mu.Lock()
		defer te.mu.Unlock()
		before := te.intPort.sent
		te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, true, false, 0))
		forwarded <- te.intPort.sent - before
	}()
	select {
	case n := <-forwarded:
		if n != 1 {
			t.Errorf("a SYN to the VIP during the rule change was forwarded %d times", n)
		}
	case <-time.After(20 * time.Second):
		t.Error("the data path waited for the guard's transaction")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(g.Installed(), addrElem(SetOwned, netip.MustParseAddr("10.0.0.101"))) {
		t.Fatalf("guard after the change: %v", g.Installed())
	}
}

// TestGuardFollowsChangesIncrementally checks the reference counting: the
// guard holds exactly what the configuration needs after every change, and
// a refused command leaves it alone.
func TestGuardFollowsChangesIncrementally(t *testing.T) {
	te, g := guardedEngine(t)
	want := func(els ...GuardElem) {
		t.Helper()
		slices.SortFunc(els, compareElem)
		if got := g.Installed(); !slices.Equal(got, els) {
			t.Fatalf("guard holds %v, want %v", got, els)
		}
		// And the engine's count agrees with a recount of its table.
		if got := tableRefs(te.Table(), te.localAddrs); len(got) != len(te.gref) {
			t.Fatalf("reference counts %v, recount %v", te.gref, got)
		}
	}
	vip := addrElem(SetOwned, netip.MustParseAddr("10.0.0.100"))
	rs := func(port uint16) []GuardElem {
		return []GuardElem{
			{Set: SetNATReal, Key: ProtoAddrPort{Proto: 6, AddrPort: netip.AddrPortFrom(netip.MustParseAddr("172.16.0.2"), port)}},
			addrElem(SetNATRS, netip.MustParseAddr("172.16.0.2")),
		}
	}
	want(append(rs(8080), vip)...)
	for _, line := range []string{"-A -t 10.0.0.100:443 -s rr", "-a -t 10.0.0.100:443 -r 172.16.0.2:8080 -m"} {
		if err := te.Apply(mustCommand(t, line)); err != nil {
			t.Fatal(err)
		}
	}
	want(append(rs(8080), vip)...) // shared elements are counted, not doubled
	if err := te.Apply(mustCommand(t, "-a -t 10.0.0.100:443 -r 172.16.0.2:8080 -m")); err == nil {
		t.Fatal("a duplicate real server was accepted")
	}
	if err := te.Apply(mustCommand(t, "-D -t 10.0.0.100:80")); err != nil {
		t.Fatal(err)
	}
	want(append(rs(8080), vip)...) // still wanted by :443
	if err := te.Apply(mustCommand(t, "-e -t 10.0.0.100:443 -r 172.16.0.2:8080 -m -w 3")); err != nil {
		t.Fatal(err)
	}
	want(append(rs(8080), vip)...)
	if err := te.Apply(mustCommand(t, "-d -t 10.0.0.100:443 -r 172.16.0.2:8080")); err != nil {
		t.Fatal(err)
	}
	want(vip)
	if err := te.Apply(mustCommand(t, "-C")); err != nil {
		t.Fatal(err)
	}
	want()
}

// TestApplyAllIsAllOrNothing: a batch is checked command by command against
// what the earlier ones leave, and a refused command changes nothing, in
// the engine or in the guard.
func TestApplyAllIsAllOrNothing(t *testing.T) {
	te, g := guardedEngine(t)
	before, guardBefore := te.Table(), g.Installed()
	batch := func(lines ...string) []config.Command {
		var cmds []config.Command
		for _, l := range lines {
			cmds = append(cmds, mustCommand(t, l))
		}
		return cmds
	}
	err := te.ApplyAll(batch(
		"-A -t 10.0.0.200:80 -s rr",
		"-a -t 10.0.0.200:80 -r 172.16.0.3:80 -m",
		"-a -t 10.0.0.200:80 -r 172.16.0.3:80 -m", // refused: exists
	))
	var be *BatchError
	if !errors.As(err, &be) || be.Index != 2 || !errors.Is(err, config.ErrDestExists) {
		t.Fatalf("ApplyAll: %v, want command 3 refused with %v", err, config.ErrDestExists)
	}
	if got := te.Table(); !reflect.DeepEqual(got, before) {
		t.Fatalf("a refused batch changed the table:\n%+v\nwant\n%+v", got, before)
	}
	if got := g.Installed(); !slices.Equal(got, guardBefore) {
		t.Fatalf("a refused batch changed the guard: %v, want %v", got, guardBefore)
	}
	// Commands see the ones before them: delete then re-add, clear then add.
	if err := te.ApplyAll(batch(
		"-A -t 10.0.0.200:80 -s rr",
		"-D -t 10.0.0.200:80",
		"-A -t 10.0.0.200:80 -s wrr",
		"-a -t 10.0.0.200:80 -r 172.16.0.3:80 -m",
	)); err != nil {
		t.Fatal(err)
	}
	if err := te.ApplyAll(batch("-C", "-A -t 10.0.0.201:80 -s rr", "-a -t 10.0.0.201:80 -r 172.16.0.4:80 -m")); err != nil {
		t.Fatal(err)
	}
	tab := te.Table()
	if len(tab.Services) != 1 || tab.Services[0].Service.Addr != netip.MustParseAddr("10.0.0.201") || len(tab.Services[0].Dests) != 1 {
		t.Fatalf("table after -C and add: %+v", tab)
	}
	want := []GuardElem{
		addrElem(SetOwned, netip.MustParseAddr("10.0.0.201")),
		{Set: SetNATReal, Key: ProtoAddrPort{Proto: 6, AddrPort: netip.MustParseAddrPort("172.16.0.4:80")}},
		addrElem(SetNATRS, netip.MustParseAddr("172.16.0.4")),
	}
	slices.SortFunc(want, compareElem)
	if got := g.Installed(); !slices.Equal(got, want) {
		t.Fatalf("guard: %v, want %v", got, want)
	}
}

// BenchmarkApplyAll10k is lvsadm -R of 10,000 lines as one batch inside the
// engine (2,000 services of 4 NAT real servers, the guard programmed in a
// namespace), then -C.
func BenchmarkApplyAll10k(b *testing.B) {
	te, _ := guardedEngine(b)
	var cmds []config.Command
	for i := range 2000 {
		vip := fmt.Sprintf("10.200.%d.%d", i/250, i%250+1)
		cmds = append(cmds, mustCommand(b, "-A -t "+vip+":80 -s rr"))
		for j := range 4 {
			cmds = append(cmds, mustCommand(b, fmt.Sprintf("-a -t %s:80 -r 172.16.%d.%d:8080 -m -w 1", vip, j, i%250+1)))
		}
	}
	clearAll := []config.Command{mustCommand(b, "-C")}
	for b.Loop() {
		if err := te.ApplyAll(cmds); err != nil {
			b.Fatal(err)
		}
		if err := te.ApplyAll(clearAll); err != nil {
			b.Fatal(err)
		}
	}
}
