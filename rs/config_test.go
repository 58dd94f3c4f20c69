package rs

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"lvslab/internal/testenv"
)

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"dr": ModeDR, "DR": ModeDR, "g": ModeDR, "nat": ModeNAT, "m": ModeNAT, "tun": ModeTUN, "ipip": ModeTUN, "i": ModeTUN} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseMode("fullnat"); err == nil {
		t.Error("ParseMode(fullnat) succeeded")
	}
}

func TestParseVIPs(t *testing.T) {
	got, err := ParseVIPs("207.175.44.110, 207.175.44.111,")
	if err != nil || len(got) != 2 || got[1] != netip.MustParseAddr("207.175.44.111") {
		t.Fatalf("ParseVIPs = %v, %v", got, err)
	}
	if _, err := ParseVIPs("207.175.44.110,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("bad VIP: %v", err)
	}
}

func TestValidate(t *testing.T) {
	vip := []netip.Addr{tVIP}
	ok := []Config{
		{Mode: ModeDR, VIPs: vip},
		{Mode: ModeDR, VIPs: vip, Label: "lo:0"},
		{Mode: ModeTUN, VIPs: vip, Iface: "eth0"},
		{Mode: ModeTUN, VIPs: vip, Userspace: true, Label: "lvsrs0:vip"},
		{Mode: ModeNAT, DIP: tDIP},
	}
	for _, c := range ok {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
	bad := map[string]Config{
		"no VIP":         {Mode: ModeDR},
		"IPv6 VIP":       {Mode: ModeDR, VIPs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}},
		"loopback VIP":   {Mode: ModeTUN, VIPs: []netip.Addr{netip.MustParseAddr("127.0.0.2")}},
		"nat without":    {Mode: ModeNAT},
		"dip in dr":      {Mode: ModeDR, VIPs: vip, DIP: tDIP},
		"label not lo":   {Mode: ModeDR, VIPs: vip, Label: "eth0:0"},
		"label in nat":   {Mode: ModeNAT, DIP: tDIP, Label: "lo:0"},
		"long TUN name":  {Mode: ModeTUN, VIPs: vip, TUNName: "a-very-long-tun-name"},
		"unknown mode":   {Mode: "fullnat", VIPs: vip},
		"long label":     {Mode: ModeDR, VIPs: vip, Label: "lo:abcdefghijklm"},
		"bad nat DIP v6": {Mode: ModeNAT, DIP: netip.MustParseAddr("2001:db8::1")},
	}
	for name, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %s validated", name, c)
		}
	}
}

func TestConfigEqualNormalizes(t *testing.T) {
	a := Config{Mode: ModeTUN, VIPs: []netip.Addr{tVIP2, tVIP, tVIP}}
	b := Config{Mode: ModeTUN, VIPs: []netip.Addr{tVIP, tVIP2}, TUNName: DefaultTUNName}
	if !a.Equal(b) {
		t.Fatalf("%s and %s should be the same setup", a, b)
	}
	if a.Equal(Config{Mode: ModeTUN, VIPs: []netip.Addr{tVIP}}) {
		t.Fatal("different VIP sets compare equal")
	}
	if a.Equal(Config{Mode: ModeDR, VIPs: []netip.Addr{tVIP, tVIP2}}) {
		t.Fatal("different modes compare equal")
	}
}

func TestOwnerAlive(t *testing.T) {
	self, err := selfOwner()
	if err != nil {
		t.Fatal(err)
	}
	if !self.Alive() {
		t.Fatal("this process is not alive")
	}
	if (&Owner{PID: self.PID, StartTicks: self.StartTicks + 1}).Alive() {
		t.Fatal("a different start time (a reused PID) counts as alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		testenv.Skipf(t, "cannot run true: %v", err)
	}
	if (&Owner{PID: cmd.Process.Pid}).Alive() {
		t.Fatal("an exited process counts as alive")
	}
	if (*Owner)(nil).Alive() {
		t.Fatal("no owner counts as alive")
	}
}

// A state file whose namespace cookie differs was written by a namespace
// that no longer exists (its inode reused): it must not pass for ours.
func TestStoreStale(t *testing.T) {
	dir := t.TempDir()
	s, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.load(); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("empty store: %v", err)
	}
	st := &State{Version: stateVersion, NetNS: s.ns, Config: Config{Mode: ModeDR, VIPs: []netip.Addr{tVIP}}}
	if err := s.save(st); err != nil {
		t.Fatal(err)
	}
	got, err := s.load()
	if err != nil || !got.Config.Equal(st.Config) {
		t.Fatalf("load = %+v, %v", got, err)
	}
	if s.ns.Cookie == 0 {
		testenv.KernelLacks(t, "SO_NETNS_COOKIE", "stale state files cannot be told apart by cookie; the save and load above did run")
	}
	st.NetNS.Cookie = s.ns.Cookie + 1
	if err := s.save(st); err != nil {
		t.Fatal(err)
	}
	if _, err := s.load(); !errors.Is(err, errStale) {
		t.Fatalf("foreign cookie: %v, want %v", err, errStale)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("state directory holds %d entries, want 1 (no temp files left)", len(entries))
	}
}
