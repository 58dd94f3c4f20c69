package ipvs

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"lvslab/config"
	"lvslab/internal/nstest"
)

func TestKernelGuardHidesOwnedFlows(t *testing.T) {
	nstest.Require(t)
	dir := nstest.New(t, "guard-d")
	cli := nstest.New(t, "guard-c")
	nstest.Veth(t, dir, "vd", cli, "vc", 0)
	dir.Addr("vd", "192.0.2.1/24")
	cli.Addr("vc", "192.0.2.2/24")

	ping := func() bool {
		_, err := cli.Try("ping", "-c", "1", "-W", "1", "192.0.2.1")
		return err == nil
	}
	if !ping() {
		t.Fatal("no ping before the guard")
	}
	g := &KernelGuard{Table: "lvsd_test", Devices: []string{"vd"}}
	ctx := context.Background()
	err := dir.Do(func() error {
		return g.Apply(ctx, GuardRule{
			Owned:   []netip.Addr{netip.MustParseAddr("192.0.2.1")},
			NATReal: []ProtoAddrPort{{Proto: 17, AddrPort: netip.MustParseAddrPort("192.0.2.2:5000")}},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if ping() {
		t.Fatal("kernel still answers an owned address")
	}
	out := dir.Run("nft", "list", "table", "netdev", "lvsd_test")
	if !strings.Contains(out, "192.0.2.2 . udp . 5000") {
		t.Fatalf("nat_real element missing:\n%s", out)
	}
	if err := dir.Do(func() error { return g.Remove(ctx) }); err != nil {
		t.Fatal(err)
	}
	// Removing twice is fine.
	if err := dir.Do(func() error { return g.Remove(ctx) }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !ping() {
		if time.Now().After(deadline) {
			t.Fatal("ping does not come back after Remove")
		}
	}
	if out := dir.Run("nft", "list", "ruleset"); strings.Contains(out, "lvsd_test") {
		t.Fatalf("table left behind:\n%s", out)
	}
}

// TestGuardLocalExempt: the director's own addresses go into the local set,
// which the NAT-reply drops exempt (a health check of a NAT real server
// from the director reaches the kernel).
func TestGuardLocalExempt(t *testing.T) {
	a := netip.MustParseAddr("172.16.0.1")
	els := GuardRule{Local: []netip.Addr{a, a}}.Elems()
	if len(els) != 1 || els[0] != addrElem(SetLocal, a) || els[0].String() != "local 172.16.0.1" {
		t.Fatalf("Elems = %v, want [local 172.16.0.1]", els)
	}
	refs := tableRefs(config.Table{}, map[[4]byte]bool{a.As4(): true})
	if refs[addrElem(SetLocal, a)] != 1 {
		t.Fatalf("tableRefs = %v, want the local address", refs)
	}
}
