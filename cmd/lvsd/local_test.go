package main

import (
	"strings"
	"testing"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
)

// TestLocalNode: a real server at one of the director's own addresses is
// LOCALNODE: lvsadm shows it as Local and its packets reach the director's
// own stack, which answers for the VIP it holds on lo (the director is also
// a real server, as in seed 003).
func TestLocalNode(t *testing.T) {
	nstest.Require(t)
	cli := nstest.New(t, "lcli")
	dir := nstest.New(t, "ldir")
	nstest.Veth(t, cli, "eth0", dir, "eth0", 1500)
	cli.Addr("eth0", "10.0.0.2/24")
	dir.Addr("eth0", "10.0.0.1/24")
	dir.Run(e2e.Bin(t, "lvsrs"), "start", "--mode", "dr", "--vip", "10.0.0.100", "--iface", "eth0")
	t.Cleanup(func() { _, _ = dir.Try(e2e.Bin(t, "lvsrs"), "stop") })
	_, srvLog := dir.Start("socat", "TCP-LISTEN:80,fork,reuseaddr", "SYSTEM:echo local-rs")
	waitFor(t, "server", func() bool {
		o, _ := dir.Try("ss", "-ltn", "sport = :80")
		return strings.Contains(o, "LISTEN")
	}, srvLog.String)
	e2e.StartLVSD(t, dir, "eth0")
	e2e.LVSADM(t, dir, "-A -t 10.0.0.100:80 -s rr")
	e2e.LVSADM(t, dir, "-a -t 10.0.0.100:80 -r 10.0.0.1:80 -g")
	waitFor(t, "Local in the listing", func() bool {
		return strings.Contains(e2e.LVSADM(t, dir, "-L -n"), "Local")
	}, func() string { return e2e.LVSADM(t, dir, "-L -n") })
	for i := 0; i < 3; i++ {
		out, err := cli.Try("socat", "-T", "2", "-u", "TCP:10.0.0.100:80,connect-timeout=2", "-")
		if err != nil || strings.TrimSpace(out) != "local-rs" {
			t.Fatalf("request %d through the VIP: %v %q", i, err, out)
		}
	}
	// -S still saves the method as configured (-g), as ipvsadm does.
	if s := e2e.LVSADM(t, dir, "-S -n"); !strings.Contains(s, "-r 10.0.0.1:80 -g") {
		t.Errorf("save: %s", s)
	}
}

// TestNoARP: with --no-arp the director neither answers ARP nor ping for
// its VIPs (a backup that holds the rules without the addresses).
func TestNoARP(t *testing.T) {
	nstest.Require(t)
	cli := nstest.New(t, "acli")
	dir := nstest.New(t, "adir")
	nstest.Veth(t, cli, "eth0", dir, "eth0", 1500)
	cli.Addr("eth0", "10.0.0.2/24")
	dir.Addr("eth0", "10.0.0.1/24")
	e2e.StartLVSD(t, dir, "eth0", "--no-arp")
	e2e.LVSADM(t, dir, "-A -t 10.0.0.100:80 -s rr")
	if out, err := cli.Try("ping", "-c", "1", "-W", "1", "10.0.0.100"); err == nil {
		t.Fatalf("VIP answered ping with --no-arp:\n%s", out)
	}
	if out := cli.Run("ip", "neigh", "show", "10.0.0.100"); strings.Contains(out, "lladdr") {
		t.Errorf("VIP resolved by ARP with --no-arp: %s", out)
	}
}
