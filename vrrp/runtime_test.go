package vrrp

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// TestBogusDuplicateVRID is seed 000's case: two clusters on one segment
// with the same virtual_router_id and different VIPs. Both sides reject the
// other's adverts (split brain) and log why; we also log the line operators
// grep for.
func TestBogusDuplicateVRID(t *testing.T) {
	t.Parallel()
	b := newBed(t, "dup")
	s := kaSpec{version: 3, advInt: "0.1", state: "BACKUP", prio: 100}
	ka := startKeepalived(t, b.b, b.dir, "ka", s)
	// keepalived's instance carries 192.0.2.100; ours another VIP.
	c := s.config()
	c.Priority = 150
	c.VirtualIPAddress = []VIP{{Prefix: netip.MustParsePrefix("192.0.2.101/24")}}
	o := startOurs(t, b.a, c)
	waitFor(t, "our bogus line", 5*time.Second, func() bool {
		return strings.Contains(o.log.String(), "bogus VRRP packet received on veth0 !!!")
	})
	if want := "(VI_1) ip address associated with VRID 51 not present in MASTER advert : 192.0.2.101"; !strings.Contains(o.log.String(), want) {
		t.Errorf("our log lacks %q:\n%s", want, o.log.String())
	}
	waitFor(t, "keepalived's rejection", 5*time.Second, func() bool {
		return strings.Contains(ka.log.String(), "not present in MASTER advert")
	})
	waitFor(t, "split brain (both master)", 5*time.Second, func() bool {
		return o.state() == Master && strings.Contains(ka.log.String(), "Entering MASTER STATE")
	})
	if n := o.r.Instance("VI_1").Dropped(ErrVIPMissing); n == 0 {
		t.Error("no ErrVIPMissing drops counted")
	}
}

func addrsOn(t *testing.T, nl *netlink.Handle, link string) []netlink.Addr {
	t.Helper()
	l, err := nl.LinkByName(link)
	if err != nil {
		t.Fatalf("link %s: %v", link, err)
	}
	a, err := nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func hasAddrOn(t *testing.T, nl *netlink.Handle, link, cidr string) *netlink.Addr {
	p := netip.MustParsePrefix(cidr)
	for _, a := range addrsOn(t, nl, link) {
		ones, _ := a.Mask.Size()
		if a.IP.Equal(net.IP(p.Addr().AsSlice())) && ones == p.Bits() {
			return &a
		}
	}
	return nil
}

// TestHooksVMACNotifyTracking runs an owner (priority 255) alone: use_vmac,
// VIPs with label/brd/scope, an eVIP, a virtual route, notify scripts with
// keepalived's arguments, GARPs from the VMAC seen by the peer, FAULT on a
// tracked interface and a tracked script, and a clean stop.
func TestHooksVMACNotifyTracking(t *testing.T) {
	t.Parallel()
	b := newBed(t, "hk")
	// A second veth pair inside a, to track and pull down.
	la := netlink.NewLinkAttrs()
	la.Name = "trk0"
	if err := b.a.Netlink().LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "trk1"}); err != nil {
		t.Fatal(err)
	}
	b.a.Run("ip", "link", "set", "trk0", "up")
	b.a.Run("ip", "link", "set", "trk1", "up")
	b.b.Sysctl("net.ipv4.conf.veth0.arp_accept", "1")
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes")
	flag := filepath.Join(dir, "healthy")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "note.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$*\" >> "+notes+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := Config{Name: "VI_1", Interface: "veth0", VRID: 51, InitialState: Master, Version: 3, AdvInt: 100 * time.Millisecond,
		UseVMAC: true,
		VirtualIPAddress: []VIP{
			{Prefix: vip, Label: "vrrp.51:vip", Brd: netip.MustParseAddr("192.0.2.255")},
			{Prefix: netip.MustParsePrefix("198.51.100.10/32"), Scope: "host"},
		},
		VirtualIPAddressExcluded: []VIP{{Prefix: netip.MustParsePrefix("203.0.113.7/32")}},
		VirtualRoutes:            []Route{{Dst: netip.MustParsePrefix("203.0.113.128/25"), Via: addrB, Dev: "veth0"}},
		TrackInterface:           []TrackInterface{{Name: "trk0"}},
		TrackScript:              []TrackScript{{Name: "chk", Script: "test -e " + flag, Interval: 100 * time.Millisecond}},
		NotifyMaster:             script + " master-script",
		NotifyFault:              script + " fault-script",
		Notify:                   script,
		GarpMasterRepeat:         1,
		GarpMasterDelay:          GarpNoDelay,
	}
	o := startOurs(t, b.a, c)
	nl := b.a.Netlink()
	waitFor(t, "master", 3*time.Second, func() bool { return o.state() == Master })
	waitFor(t, "VIP on the VMAC", 2*time.Second, func() bool { return hasAddrOn(t, nl, "vrrp.51", vip.String()) != nil })
	vm, err := nl.LinkByName("vrrp.51")
	if err != nil {
		t.Fatal(err)
	}
	if got := vm.Attrs().HardwareAddr.String(); got != "00:00:5e:00:01:33" {
		t.Errorf("VMAC address %s", got)
	}
	if mv, ok := vm.(*netlink.Macvlan); !ok || mv.Mode != netlink.MACVLAN_MODE_PRIVATE {
		t.Errorf("VMAC is not a private macvlan: %#v", vm)
	}
	a := hasAddrOn(t, nl, "vrrp.51", vip.String())
	if a.Label != "vrrp.51:vip" || a.Broadcast.String() != "192.0.2.255" {
		t.Errorf("VIP label %q brd %v", a.Label, a.Broadcast)
	}
	if h := hasAddrOn(t, nl, "vrrp.51", "198.51.100.10/32"); h == nil || h.Scope != int(netlink.SCOPE_HOST) {
		t.Errorf("scope host VIP: %+v", h)
	}
	if hasAddrOn(t, nl, "vrrp.51", "203.0.113.7/32") == nil {
		t.Error("eVIP missing")
	}
	if out := b.a.Run("ip", "route", "show", "203.0.113.128/25"); !strings.Contains(out, "via 192.0.2.2") {
		t.Errorf("virtual route: %q", out)
	}
	waitFor(t, "GARP from the VMAC at the peer", 3*time.Second, func() bool {
		out, _ := b.b.Try("ip", "neigh", "show", vip.Addr().String())
		return strings.Contains(out, "00:00:5e:00:01:33")
	})
	waitFor(t, "notify scripts", 3*time.Second, func() bool {
		n, _ := os.ReadFile(notes)
		return strings.Contains(string(n), "master-script") && strings.Contains(string(n), "INSTANCE VI_1 MASTER 255")
	})

	// Tracked interface down: FAULT, addresses gone; up: MASTER again.
	b.a.Run("ip", "link", "set", "trk1", "down")
	waitFor(t, "FAULT on trk0", 3*time.Second, func() bool { return o.state() == Fault })
	waitFor(t, "VIP removed in FAULT", 2*time.Second, func() bool { return hasAddrOn(t, nl, "vrrp.51", vip.String()) == nil })
	b.a.Run("ip", "link", "set", "trk1", "up")
	waitFor(t, "MASTER after trk0 up", 3*time.Second, func() bool { return o.state() == Master })

	// Tracked script failing (weight 0): FAULT.
	os.Remove(flag)
	waitFor(t, "FAULT on the script", 3*time.Second, func() bool { return o.state() == Fault })
	waitFor(t, "notify_fault", 3*time.Second, func() bool {
		n, _ := os.ReadFile(notes)
		return strings.Contains(string(n), "fault-script") && strings.Contains(string(n), "INSTANCE VI_1 FAULT 255")
	})
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "MASTER after the script recovers", 3*time.Second, func() bool { return o.state() == Master })

	o.term(t)
	waitFor(t, "notify STOP", 3*time.Second, func() bool {
		n, _ := os.ReadFile(notes)
		return strings.Contains(string(n), "INSTANCE VI_1 STOP 255")
	})
	if _, err := nl.LinkByName("vrrp.51"); err == nil {
		t.Error("VMAC left behind")
	}
	if hasAddrOn(t, nl, "veth0", "203.0.113.7/32") != nil {
		t.Error("eVIP left behind")
	}
}
