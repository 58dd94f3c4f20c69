package vrrp

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lvslab/rewrite"
)

func baseSpec() AdvertSpec {
	return AdvertSpec{Version: 2, VRID: 51, Priority: 100, Interval: time.Second,
		VIPs: []netip.Addr{vip.Addr()}, AuthType: AuthPass, AuthPass: [8]byte{'s', 'e', 'c', 'r', 'e', 't', '1', '2'},
		Src: addrB, Dst: MulticastGroup, TTL: TTL, ID: 7}
}

func baseRules() Rules {
	s := baseSpec()
	return Rules{Name: "VI_1", Version: 2, VRID: 51, AuthType: AuthPass, AuthPass: s.AuthPass, AdvInt: time.Second, VIPs: s.VIPs}
}

func build(t *testing.T, s AdvertSpec) []byte {
	t.Helper()
	buf := make([]byte, MaxPacketLen)
	n, err := BuildAdvert(buf, &s)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestCheckReasons: each bogus packet keepalived rejects is rejected here
// with its reason and keepalived's log text (reference §2.2).
func TestCheckReasons(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spec   func(*AdvertSpec)
		rules  func(*Rules)
		mangle func([]byte)
		want   Reason
		log    string
	}{
		{name: "valid", want: OK},
		{name: "other VRID ignored", spec: func(s *AdvertSpec) { s.VRID = 52 }, want: ErrOtherVRID},
		{name: "duplicated VRID, other VIP (seed 000)", spec: func(s *AdvertSpec) { s.VIPs = []netip.Addr{netip.MustParseAddr("192.0.2.101")} },
			want: ErrVIPMissing, log: "(VI_1) ip address associated with VRID 51 not present in MASTER advert : 192.0.2.100"},
		{name: "VIP count", spec: func(s *AdvertSpec) { s.VIPs = append(s.VIPs, netip.MustParseAddr("192.0.2.101")) },
			want: ErrCount, log: "(VI_1) received an unexpected ip number count 2, expected 1!"},
		{name: "TTL 64", spec: func(s *AdvertSpec) { s.TTL = 64 }, want: ErrTTL, log: "(VI_1) invalid TTL/HL. Received 64 and expect 255"},
		{name: "v3 against v2", spec: func(s *AdvertSpec) { s.Version = 3 }, want: ErrWrongVersion, log: "(VI_1) wrong version. Received 3 and expect 2"},
		{name: "wrong version", rules: func(r *Rules) { r.Version = 3; r.AuthType = AuthNone }, spec: func(s *AdvertSpec) { s.AuthType = AuthNone },
			want: ErrWrongVersion, log: "(VI_1) wrong version. Received 2 and expect 3"},
		{name: "auth type", spec: func(s *AdvertSpec) { s.AuthType = AuthNone }, want: ErrAuthType, log: "(VI_1) received a 0 auth, expecting 1!"},
		{name: "password", spec: func(s *AdvertSpec) { s.AuthPass[0] = 'S' }, want: ErrPassword},
		{name: "advert interval", spec: func(s *AdvertSpec) { s.Interval = 2 * time.Second }, want: ErrAdvInt,
			log: "(VI_1) advertisement interval mismatch mine=1 sec rcv'd=2 sec"},
		{name: "checksum", mangle: func(b []byte) { b[20+6] ^= 1 }, want: ErrChecksum, log: "(VI_1) Invalid VRRPv2 checksum"},
		{name: "type", mangle: func(b []byte) { b[20] = 0x22; fixV2(b) }, want: ErrType},
		{name: "trailing junk in tot_len", mangle: func(b []byte) {}, want: ErrLength},
		{name: "unicast expected", rules: func(r *Rules) { r.Unicast = true }, want: ErrCast,
			log: "(VI_1) Expected unicast packet but received multicast packet"},
		{name: "AH not expected", spec: func(s *AdvertSpec) { s.AuthType = AuthAH; s.AH = NewAHKey(s.AuthPass); s.Seq = 1 },
			want: ErrAHPresence, log: "(VI_1) Received AH header but auth type not AH"},
		{name: "AH wrong key", spec: func(s *AdvertSpec) { s.AuthType = AuthAH; s.AH = NewAHKey([8]byte{'x'}); s.Seq = 1 },
			rules: func(r *Rules) { r.AuthType = AuthAH }, want: ErrAHICV},
		{name: "AH replay", spec: func(s *AdvertSpec) { s.AuthType = AuthAH; s.AH = NewAHKey(s.AuthPass); s.Seq = 5 },
			rules: func(r *Rules) { r.AuthType = AuthAH }, want: ErrAHSeq,
			log: "(VI_1) IPSEC-AH : sequence number 5 already processed. Packet dropped. Local(9)"},
	} {
		s := baseSpec()
		if tc.spec != nil {
			tc.spec(&s)
		}
		pkt := build(t, s)
		if tc.name == "trailing junk in tot_len" {
			pkt = append(pkt, 0, 0, 0, 0)
			binary.BigEndian.PutUint16(pkt[2:4], uint16(len(pkt)))
			rewrite.IPv4(pkt).UpdateChecksum()
		}
		if tc.mangle != nil {
			tc.mangle(pkt)
		}
		r := baseRules()
		if tc.rules != nil {
			tc.rules(&r)
		}
		c := NewChecker(r)
		if tc.name == "AH replay" {
			c.Seq = 9
		}
		_, got := c.Check(pkt)
		if got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			continue
		}
		if tc.log != "" {
			if l := c.LogLine(got, pkt); l != tc.log {
				t.Errorf("%s: log %q, want %q", tc.name, l, tc.log)
			}
		}
		if got.Bogus() != (got != OK && got != ErrOtherVRID) {
			t.Errorf("%s: Bogus() = %v", tc.name, got.Bogus())
		}
	}
	if BogusLine("eth1") != "bogus VRRP packet received on eth1 !!!" {
		t.Error(BogusLine("eth1"))
	}
}

func fixV2(b []byte) {
	m := Advert(b[20:])
	m[6], m[7] = 0, 0
	binary.BigEndian.PutUint16(m[6:8], ^rewrite.OnesSum(m, 0))
}

// TestAHSequence: the counter is shared by send and receive, and a replay
// is refused (reference §1.6.2).
func TestAHSequence(t *testing.T) {
	r := baseRules()
	r.AuthType = AuthAH
	c := NewChecker(r)
	s := baseSpec()
	s.AuthType, s.AH = AuthAH, NewAHKey(s.AuthPass)
	for _, seq := range []uint32{3, 4, 10} {
		s.Seq = seq
		if rx, reason := c.Check(build(t, s)); reason != OK || rx.Seq != seq || c.Seq != seq {
			t.Fatalf("seq %d: %v (counter %d)", seq, reason, c.Seq)
		}
	}
	s.Seq = 10
	if _, reason := c.Check(build(t, s)); reason != ErrAHSeq {
		t.Errorf("replayed seq 10: %v", reason)
	}
	// Unicast: the TTL is outside the ICV, so a different TTL still verifies.
	s.Seq, s.Dst, s.Unicast = 11, addrA, true
	pkt := build(t, s)
	pkt[8] = 64
	rewrite.IPv4(pkt).UpdateChecksum()
	r.Unicast = true
	c2 := NewChecker(r)
	if _, reason := c2.Check(pkt); reason != OK {
		t.Errorf("unicast AH with TTL 64: %v", reason)
	}
}

// TestV3ChecksumForms: v3 accepts the RFC 5798 form, keepalived's pre-1.3.6
// unicast form and RFC 9568's no-pseudo-header form (reference §1.3).
func TestV3ChecksumForms(t *testing.T) {
	s := baseSpec()
	s.Version, s.AuthType, s.Dst, s.Unicast = 3, AuthNone, addrA, true
	r := baseRules()
	r.Version, r.AuthType, r.Unicast = 3, AuthNone, true
	pkt := build(t, s)
	m := Advert(pkt[20:])
	set := func(init uint16) {
		m[6], m[7] = 0, 0
		binary.BigEndian.PutUint16(m[6:8], ^rewrite.OnesSum(m, init))
	}
	for name, init := range map[string]uint16{
		"pseudo-header with dst":   rewrite.PseudoHeaderSum(addrB, addrA, ProtoVRRP, uint16(len(m))),
		"old unicast (224.0.0.18)": rewrite.PseudoHeaderSum(addrB, MulticastGroup, ProtoVRRP, uint16(len(m))),
		"no pseudo-header":         0,
	} {
		set(init)
		if _, reason := NewChecker(r).Check(pkt); reason != OK {
			t.Errorf("%s: %v", name, reason)
		}
	}
	m[6] ^= 0x55
	if _, reason := NewChecker(r).Check(pkt); reason != ErrChecksum {
		t.Errorf("corrupt v3 checksum: %v", reason)
	}
}

// TestBuildAllocs: building, signing and checking adverts do not allocate.
func TestBuildAllocs(t *testing.T) {
	s := baseSpec()
	s.AuthType, s.AH = AuthAH, NewAHKey(s.AuthPass)
	r := baseRules()
	r.AuthType = AuthAH
	c := NewChecker(r)
	buf := make([]byte, MaxPacketLen)
	allocs := testing.AllocsPerRun(100, func() {
		s.Seq++
		n, _ := BuildAdvert(buf, &s)
		if _, reason := c.Check(buf[:n]); reason != OK {
			t.Fatal(reason)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocs per build+check", allocs)
	}
}

// FuzzCheck: the parser and checker never panic, whatever the bytes; seeds
// are keepalived's own adverts (testdata/keepalived) and ours.
func FuzzCheck(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "keepalived", "*.hex"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		pkt, err := hexDecode(strings.TrimSpace(string(b)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pkt)
	}
	f.Add([]byte{0x45})
	rules := []Rules{baseRules(), func() Rules { r := baseRules(); r.AuthType = AuthAH; return r }(),
		func() Rules { r := baseRules(); r.Version = 3; r.AuthType = AuthNone; r.Unicast = true; return r }()}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, r := range rules {
			c := NewChecker(r)
			rx, reason := c.Check(pkt)
			if reason.Bogus() {
				_ = c.LogLine(reason, pkt)
			}
			if reason == OK && len(rx.Msg) < HeaderLen {
				t.Fatal("accepted a short message")
			}
		}
		if off, _, reason := VRRPOffset(pkt); reason == OK {
			m := Advert(pkt[off:])
			_ = m.Version()
		}
	})
}
