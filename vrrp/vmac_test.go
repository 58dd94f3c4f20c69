package vrrp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lvslab/internal/nstest"
)

// TestVMACSysctls: use_vmac sets the sysctls keepalived's vrrp_vmac.c
// sets - the parent must not answer ARP for the VIPs on the VMAC with its
// own MAC - and the last VMAC's cleanup restores the parent's values.
func TestVMACSysctls(t *testing.T) {
	nstest.Require(t)
	a := nstest.New(t, "vmaca")
	b := nstest.New(t, "vmacb")
	nstest.Veth(t, a, "veth0", b, "veth0", 0)
	a.Sysctl("net.ipv4.conf.veth0.arp_ignore", "0")
	a.Sysctl("net.ipv4.conf.veth0.arp_filter", "0")
	read := func(iface, key string) string {
		t.Helper()
		v, err := os.ReadFile(filepath.Join(procSysConf, iface, key))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(v))
	}
	c1 := Config{Name: "VI_1", Interface: "veth0", VRID: 51, UseVMAC: true, VMACName: "vrrp.51"}
	c2 := Config{Name: "VI_2", Interface: "veth0", VRID: 52, UseVMAC: true, VMACName: "vrrp.52"}
	err := a.Do(func() error {
		k := &KernelHooks{}
		for _, c := range []*Config{&c1, &c2} {
			if err := k.Prepare(c); err != nil {
				t.Fatalf("prepare %s: %v", c.Name, err)
			}
		}
		// The broadcast queue is off where the kernel has the knob (6.4+).
		for _, name := range []string{"vrrp.51", "vrrp.52"} {
			l, err := k.nl.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			cut, ok, err := bcCutoff(l.Attrs().Index)
			switch {
			case err != nil:
				t.Fatalf("%s: reading the broadcast cutoff: %v", name, err)
			case !ok && setBCCutoff(l.Attrs().Index, vmacBCCutoffOff) != nil:
				t.Logf("%s: this kernel has no macvlan broadcast cutoff (before 6.4): the queue stays", name)
			case cut != vmacBCCutoffOff:
				t.Errorf("%s: broadcast cutoff %d (reported %v), want %d: ARP for the VIPs would wait for a kworker", name, cut, ok, vmacBCCutoffOff)
			}
		}
		for _, want := range [][3]string{
			{"vrrp.51", "arp_ignore", "1"}, {"vrrp.51", "accept_local", "1"}, {"vrrp.51", "rp_filter", "0"},
			{"vrrp.52", "arp_ignore", "1"},
			{"veth0", "arp_ignore", "1"}, {"veth0", "arp_filter", "1"},
		} {
			if got := read(want[0], want[1]); got != want[2] {
				t.Errorf("%s.%s = %s, want %s", want[0], want[1], got, want[2])
			}
		}
		// The first VMAC goes: the second still needs the parent's.
		if err := k.Cleanup(&c1); err != nil {
			t.Fatal(err)
		}
		if got := read("veth0", "arp_ignore"); got != "1" {
			t.Errorf("veth0.arp_ignore = %s with vrrp.52 still there, want 1", got)
		}
		if err := k.Cleanup(&c2); err != nil {
			t.Fatal(err)
		}
		if got, got2 := read("veth0", "arp_ignore"), read("veth0", "arp_filter"); got != "0" || got2 != "0" {
			t.Errorf("after the last VMAC veth0 arp_ignore=%s arp_filter=%s, want the original 0 and 0", got, got2)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
