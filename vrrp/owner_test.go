package vrrp

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeOwner struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeOwner) OwnVIPs(instance string, vips []netip.Prefix, own bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	verb := "release"
	if own {
		verb = "own"
	}
	s := verb + " " + instance
	for _, v := range vips {
		s += " " + v.String()
	}
	f.calls = append(f.calls, s)
	return nil
}

func (f *fakeOwner) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, "; ")
}

// TestOwnerAndStatic: the daemon's VIPOwner hears own/release around the
// kernel addresses; static_ipaddress and static_routes go in at start.
func TestOwnerAndStatic(t *testing.T) {
	t.Parallel()
	b := newBed(t, "own")
	owner := &fakeOwner{}
	log := slogTo(&strings.Builder{})
	hooks := &KernelHooks{Netlink: b.a.Netlink(), Owner: owner, Log: log}
	err := hooks.ApplyStatic(Static{
		Addresses: []VIP{{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Dev: "veth0"}},
		Routes:    []Route{{Dst: netip.MustParsePrefix("203.0.113.0/25"), Via: addrB, Dev: "veth0"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if hasAddrOn(t, b.a.Netlink(), "veth0", "198.51.100.1/32") == nil {
		t.Error("static_ipaddress missing")
	}
	if out := b.a.Run("ip", "route", "show", "203.0.113.0/25"); !strings.Contains(out, "via 192.0.2.2") {
		t.Errorf("static route: %q", out)
	}
	c := Config{Name: "VI_9", Interface: "veth0", VRID: 9, Priority: 255, Version: 3, AdvInt: 100 * time.Millisecond,
		VirtualIPAddress: []VIP{{Prefix: vip}}, McastSrcIP: addrA, GarpMasterDelay: GarpNoDelay}
	r, err := NewRouter(Options{Instances: []Config{c}, Hooks: hooks, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.a.Do(func() error { return r.Run(ctx) }) }()
	waitFor(t, "owner told", 3*time.Second, func() bool { return strings.Contains(owner.String(), "own VI_9 192.0.2.100/24") })
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := owner.String(); got != "own VI_9 192.0.2.100/24; release VI_9 192.0.2.100/24" {
		t.Errorf("owner calls: %s", got)
	}
	if r.Instance("VI_9").Sent() == 0 {
		t.Error("no adverts sent")
	}
}
