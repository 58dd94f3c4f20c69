package observe

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/spec"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
)

// vrrpFrame builds an Ethernet frame with an IPv4 VRRP advert; with ah, the
// advert rides in an AH header as keepalived's auth_type AH sends it.
func vrrpFrame(version, vrid, prio int, src string, vips []string, ah bool) []byte {
	var v []byte
	v = append(v, byte(version<<4|1), byte(vrid), byte(prio), byte(len(vips)))
	if version == 2 {
		v = append(v, 1, 1, 0, 0) // auth PASS, 1 s, checksum
	} else {
		v = append(v, 0, 100, 0, 0) // 100 cs, checksum
	}
	for _, a := range vips {
		b := netip.MustParseAddr(a).As4()
		v = append(v, b[:]...)
	}
	if version == 2 {
		v = append(v, []byte("secret12")...)
	}
	proto := byte(protoVRRP)
	if ah {
		// next header, length (24 bytes: (6-2) words), reserved, SPI, seq, ICV (12)
		h := []byte{protoVRRP, 4, 0, 0, 0xc0, 0, 2, 1, 0, 0, 0, 3}
		h = append(h, make([]byte, 12)...)
		v = append(h, v...)
		proto = protoAH
	}
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+len(v)))
	ip[8], ip[9] = 255, proto
	s := netip.MustParseAddr(src).As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], []byte{224, 0, 0, 18})
	eth := append([]byte{0x01, 0x00, 0x5e, 0, 0, 0x12}, macA...)
	eth = append(eth, 0x08, 0x00)
	return append(append(eth, ip...), v...)
}

func arpFrameBytes(op uint16, smac net.HardwareAddr, sip, tip string, dst net.HardwareAddr) []byte {
	b := append(append([]byte{}, dst...), smac...)
	b = append(b, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, byte(op))
	s, t := netip.MustParseAddr(sip).As4(), netip.MustParseAddr(tip).As4()
	b = append(b, smac...)
	b = append(b, s[:]...)
	b = append(b, make([]byte, 6)...)
	return append(b, t[:]...)
}

func TestDecodeAdverts(t *testing.T) {
	adv, arp := decodeFrame(vrrpFrame(2, 51, 100, "10.0.0.1", []string{"192.0.2.100"}, false))
	require.NotNil(t, adv)
	assert.Nil(t, arp)
	assert.Equal(t, advert{Version: 2, VRID: 51, Priority: 100, Interval: time.Second, Auth: "pass",
		Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}, Src: netip.MustParseAddr("10.0.0.1"), SrcMAC: macA, TTL: 255}, *adv)

	adv, _ = decodeFrame(vrrpFrame(3, 7, 0, "10.0.0.2", []string{"192.0.2.1", "192.0.2.2"}, false))
	require.NotNil(t, adv)
	assert.Equal(t, 3, adv.Version)
	assert.Equal(t, 0, adv.Priority, "a resigning master")
	assert.Equal(t, time.Second, adv.Interval, "100 centiseconds")
	assert.Equal(t, "", adv.Auth)
	assert.Len(t, adv.Addrs, 2)

	adv, _ = decodeFrame(vrrpFrame(2, 9, 150, "10.0.0.3", []string{"192.0.2.9"}, true))
	require.NotNil(t, adv, "VRRP inside AH")
	assert.Equal(t, "ah", adv.Auth)
	assert.Equal(t, 9, adv.VRID)
	assert.Equal(t, 150, adv.Priority)
}

func TestDecodeARP(t *testing.T) {
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	_, a := decodeFrame(arpFrameBytes(1, macA, "192.0.2.100", "192.0.2.100", bcast))
	require.NotNil(t, a)
	assert.True(t, a.Gratuitous())
	assert.False(t, a.Reply)
	_, a = decodeFrame(arpFrameBytes(2, macB, "192.0.2.100", "0.0.0.0", macA))
	require.NotNil(t, a)
	assert.True(t, a.Reply)
	assert.False(t, a.Gratuitous())
	assert.Equal(t, macA, a.EtherDst)

	// Our own probe decodes as a request from 0.0.0.0 for the VIP.
	_, a = decodeFrame(arpProbe(macA, netip.MustParseAddr("192.0.2.100")))
	require.NotNil(t, a)
	assert.False(t, a.Reply)
	assert.True(t, a.SenderIP.IsUnspecified())
	assert.Equal(t, "192.0.2.100", a.TargetIP.String())
}

// TestDecodeNeverTrustsLengths: every truncation of valid frames, and
// lying length fields, decode to nothing rather than panicking.
func TestDecodeNeverTrustsLengths(t *testing.T) {
	frames := [][]byte{
		vrrpFrame(2, 1, 100, "10.0.0.1", []string{"192.0.2.1", "192.0.2.2"}, false),
		vrrpFrame(3, 1, 100, "10.0.0.1", []string{"192.0.2.1"}, true),
		arpFrameBytes(1, macA, "192.0.2.1", "192.0.2.1", macB),
	}
	for _, f := range frames {
		for n := range len(f) {
			adv, arp := decodeFrame(f[:n])
			assert.True(t, adv == nil && arp == nil || n >= 42, "truncated to %d bytes", n)
		}
	}
	lying := vrrpFrame(2, 1, 100, "10.0.0.1", []string{"192.0.2.1"}, false)
	lying[14+20+3] = 200 // 200 addresses claimed
	adv, _ := decodeFrame(lying)
	assert.Nil(t, adv)
	lyingAH := vrrpFrame(2, 1, 100, "10.0.0.1", []string{"192.0.2.1"}, true)
	lyingAH[14+20+1] = 250 // AH longer than the packet
	adv, _ = decodeFrame(lyingAH)
	assert.Nil(t, adv)
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(vrrpFrame(2, 1, 100, "10.0.0.1", []string{"192.0.2.1"}, false))
	f.Add(vrrpFrame(3, 1, 100, "10.0.0.1", []string{"192.0.2.1"}, true))
	f.Add(arpFrameBytes(2, macA, "192.0.2.1", "0.0.0.0", macB))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeFrame(b)
	})
}

func probeRec(at time.Duration, holders ...string) VRRPRecord {
	r := VRRPRecord{Kind: RecProbe, Segment: "lan", VIP: "192.0.2.100", Holders: holders, at: at}
	for _, h := range holders {
		r.MACs = append(r.MACs, "mac-of-"+h)
	}
	return r
}

// probesEvery makes a probe every 200ms in [from, to) answered by holders.
func probesEvery(from, to time.Duration, holders ...string) []VRRPRecord {
	var out []VRRPRecord
	for at := from; at < to; at += spec.VIPProbeInterval {
		out = append(out, probeRec(at, holders...))
	}
	return out
}

func TestJudgeVIPHolders(t *testing.T) {
	one := 1
	v := &spec.VIPCheck{Address: netip.MustParseAddr("192.0.2.100"), Holders: &one}
	w := window{from: 0, to: 10 * time.Second, phrase: " during [0s, 10s]"}
	recs := append(probesEvery(0, 4*time.Second, "lb1"), probesEvery(4*time.Second, 10*time.Second, "lb2")...)
	o := judgeVIP(v, &spec.Expectation{}, recs, w)
	assert.True(t, o.Held, o.Detail)
	assert.Contains(t, o.Detail, "lb1 until 4s, lb2")

	// Split brain from 5s to 7s: named with the window and the holders.
	var split []VRRPRecord
	split = append(split, probesEvery(0, 5*time.Second, "lb1")...)
	split = append(split, probesEvery(5*time.Second, 7*time.Second, "lb1", "lb2")...)
	split = append(split, probesEvery(7*time.Second, 10*time.Second, "lb1")...)
	o = judgeVIP(v, &spec.Expectation{}, split, w)
	assert.False(t, o.Held)
	assert.Equal(t, "192.0.2.100 answered by lb1, lb2: split brain from 5s to 7s; 10 of 50 probes during [0s, 10s] had other than 1 hardware address(es), in 1 stretch(es); want exactly 1 throughout", o.Detail)

	// An outage is the longest stretch, ahead of a short split.
	var gap []VRRPRecord
	gap = append(gap, probesEvery(0, 2*time.Second, "lb1", "lb2")...)
	gap = append(gap, probesEvery(2*time.Second, 3*time.Second, "lb1")...)
	gap = append(gap, probesEvery(3*time.Second, 6*time.Second)...)
	o = judgeVIP(v, &spec.Expectation{}, gap, window{from: time.Second, to: 6 * time.Second, phrase: " w"})
	assert.False(t, o.Held)
	assert.True(t, strings.HasPrefix(o.Detail, "192.0.2.100 unanswered (nobody holds it) from 3s to 6s;"), o.Detail)

	o = judgeVIP(v, &spec.Expectation{}, nil, w)
	assert.False(t, o.Held)
	assert.Contains(t, o.Detail, "0 records were judged")
}

func TestJudgeVIPHolder(t *testing.T) {
	v := &spec.VIPCheck{Address: netip.MustParseAddr("192.0.2.100"), Holder: "lb2"}
	w := window{from: 3 * time.Second, to: 8 * time.Second, phrase: " after kill (at 3s) within 5s"}
	recs := append(probesEvery(0, 4*time.Second, "lb1"), probesEvery(4*time.Second, 4600*time.Millisecond)...)
	recs = append(recs, probesEvery(4600*time.Millisecond, 9*time.Second, "lb2")...)
	o := judgeVIP(v, &spec.Expectation{}, recs, w)
	assert.True(t, o.Held, o.Detail)
	assert.Contains(t, o.Detail, "answered by lb2 alone from 4.6s (1.6s into the window) to its end")

	// lb1 comes back at the end: lb2 no longer holds it alone.
	back := append(recs[:len(recs):len(recs)], probeRec(7900*time.Millisecond, "lb1", "lb2"))
	o = judgeVIP(v, &spec.Expectation{}, back, w)
	assert.False(t, o.Held)
	assert.Contains(t, o.Detail, "(at 7.9s) was answered by lb1, lb2, not lb2 alone")
}

func TestJudgeVIPGARPs(t *testing.T) {
	ge := spec.Quantity{Value: 3, Unit: spec.UnitNumber, Text: "3"}
	v := &spec.VIPCheck{Address: netip.MustParseAddr("192.0.2.100"), GARPs: true}
	e := &spec.Expectation{Ge: &ge}
	garp := func(at time.Duration, node string) VRRPRecord {
		return VRRPRecord{Kind: RecARP, Gratuitous: true, Src: "192.0.2.100", Node: node, MAC: "m-" + node, at: at}
	}
	recs := []VRRPRecord{garp(time.Second, "lb1"), garp(5*time.Second, "lb2"), garp(5100*time.Millisecond, "lb2"),
		garp(5200*time.Millisecond, "lb2"), {Kind: RecARP, Src: "192.0.2.100", Node: "lb2", at: 5 * time.Second}}
	o := judgeVIP(v, e, recs, window{from: 4 * time.Second, to: 10 * time.Second, phrase: " w"})
	assert.True(t, o.Held, o.Detail)
	assert.Equal(t, "3 gratuitous ARPs for 192.0.2.100 (from lb2) w; want ≥ 3", o.Detail)
	v.From = "lb1"
	o = judgeVIP(v, e, recs, window{from: 0, to: 10 * time.Second, phrase: " w"})
	assert.False(t, o.Held)
	assert.Equal(t, "1 gratuitous ARPs for 192.0.2.100 from lb1 w; want ≥ 3", o.Detail)
}

// TestJudgeVRRP: the adverts of two routers sharing a VRID make two
// MASTERs at once; one master taking over from another is one at a time.
func TestJudgeVRRP(t *testing.T) {
	adv := func(at time.Duration, node string, prio int) VRRPRecord {
		return VRRPRecord{Kind: RecAdvert, Segment: "lan", VRID: 1, Node: node, Priority: &prio, Interval: "1s", at: at}
	}
	var recs []VRRPRecord
	for at := time.Second; at < 10*time.Second; at += time.Second {
		recs = append(recs, adv(at, "a1", 100))
		if at >= 4*time.Second {
			recs = append(recs, adv(at+300*time.Millisecond, "b1", 100))
		}
	}
	one := 1
	c := &spec.VRRPCheck{Segment: "lan", VRID: 1, Masters: &one}
	o := judgeVRRP(c, recs, window{from: 2 * time.Second, to: 9 * time.Second, phrase: " w"})
	assert.False(t, o.Held)
	assert.True(t, strings.HasPrefix(o.Detail, "lan VRID 1 advertised by a1, b1: several MASTERs at once from 4.3s to 9s; 470 of 700 samples w"), o.Detail)

	// a1 resigns at 4s, b1 takes over at 4.6s: never two, a gap of 0.6s.
	recs = nil
	for at := time.Second; at < 4*time.Second; at += time.Second {
		recs = append(recs, adv(at, "a1", 100))
	}
	recs = append(recs, adv(4*time.Second, "a1", 0))
	for at := 4600 * time.Millisecond; at < 10*time.Second; at += time.Second {
		recs = append(recs, adv(at, "b1", 90))
	}
	o = judgeVRRP(c, recs, window{from: 2 * time.Second, to: 9 * time.Second, phrase: " w"})
	assert.False(t, o.Held)
	assert.True(t, strings.HasPrefix(o.Detail, "lan VRID 1 advertised by nobody (no MASTER) from 4s to 4.6s;"), o.Detail)
	o = judgeVRRP(&spec.VRRPCheck{Segment: "lan", VRID: 1, Master: "b1"}, recs, window{from: 2 * time.Second, to: 9 * time.Second, phrase: " w"})
	assert.True(t, o.Held, o.Detail)
	assert.Contains(t, o.Detail, "advertised by b1 alone from 4.6s")
}

func TestJudgeVRRPRouters(t *testing.T) {
	adv := func(at time.Duration, node string, vip string) VRRPRecord {
		prio := 100
		return VRRPRecord{Kind: RecAdvert, Segment: "lan", VRID: 1, Node: node, Priority: &prio, Interval: "1s", Addrs: []string{vip}, at: at}
	}
	recs := []VRRPRecord{adv(time.Second, "a1", "192.0.2.1"), adv(2*time.Second, "a1", "192.0.2.1"), adv(3*time.Second, "b1", "192.0.2.2"), adv(4*time.Second, "a2", "192.0.2.1")}
	c := &spec.VRRPCheck{Segment: "lan", VRID: 1, Routers: []string{"a1", "a2"}}
	o := judgeVRRP(c, recs, window{from: 0, to: 10 * time.Second, phrase: " w"})
	assert.False(t, o.Held)
	assert.Equal(t, "lan VRID 1 also advertised by b1 from 3s; adverts of lan VRID 1 w: a1 2 (for 192.0.2.1), b1 1 (for 192.0.2.2), a2 1 (for 192.0.2.1); want only a1, a2", o.Detail)
	o = judgeVRRP(c, recs[:2], window{from: 0, to: 10 * time.Second, phrase: " w"})
	assert.True(t, o.Held, o.Detail)
}
