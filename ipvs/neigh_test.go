package ipvs

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

// These tests are the engine-level regressions of issue 8 ("lvsd under
// attack"), defects 1, 2, 3 and 8. They use only what the engine had before
// the fix (Counters by name, the neighbour map's size, enqueue, neighTimers),
// so they also run, and fail, against the code of 5e200d1.

var attackerMAC = rewrite.MAC{2, 0, 0, 0, 0, 0x66}

// arpFrame builds an ARP packet with Ethernet source sha.
func arpFrame(tb testing.TB, op uint16, sha rewrite.MAC, spa, tpa string, dst rewrite.MAC) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(sha[:]), DstMAC: net.HardwareAddr(dst[:]), EthernetType: layers.EthernetTypeARP}
	tha := make([]byte, 6)
	if op == layers.ARPReply {
		tha = dst[:]
	}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: sha[:], SourceProtAddress: net.ParseIP(spa).To4(),
		DstHwAddress: tha, DstProtAddress: net.ParseIP(tpa).To4()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, arp); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

var bcastMAC = rewrite.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// synTo sends a client SYN to the VIP and returns the destination MAC of what
// left on int (zero if nothing did).
func (te *testEngine) synTo(tb testing.TB, sport uint16) (rewrite.MAC, bool) {
	tb.Helper()
	te.intPort.last = nil
	te.feed(te.ext, tcpFrame(tb, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", sport, 80, true, false, 0))
	if len(te.intPort.last) != 1 {
		return rewrite.MAC{}, false
	}
	return rewrite.MAC(te.intPort.last[0].Data()[0:6]), true
}

// replyFromRS sends the real server's SYN-ACK for sport and returns the
// destination MAC of what left on ext toward the client.
func (te *testEngine) replyFromRS(tb testing.TB, sport uint16) (rewrite.MAC, bool) {
	tb.Helper()
	te.extPort.last = nil
	te.feed(te.int, tcpFrame(tb, rsMAC, intMAC, "172.16.0.2", "10.0.0.2", 8080, sport, true, true, 0))
	if len(te.extPort.last) != 1 {
		return rewrite.MAC{}, false
	}
	return rewrite.MAC(te.extPort.last[0].Data()[0:6]), true
}

// Defect 1: an ARP from the client's side claiming the real server's address
// must not redirect the real server's traffic.
func TestARPClaimFromOtherInterfaceIgnored(t *testing.T) {
	te := newTestEngine(t, "-m")
	te.feed(te.ext, arpFrame(t, layers.ARPRequest, attackerMAC, "172.16.0.2", "10.0.0.100", bcastMAC))
	te.feed(te.ext, arpFrame(t, layers.ARPReply, attackerMAC, "172.16.0.2", "10.0.0.1", extMAC))
	if mac, ok := te.synTo(t, 40000); !ok || mac != rsMAC {
		t.Fatalf("after a claim of 172.16.0.2 from ext, SYN left int %v to %v, want to the real server %v", ok, mac, rsMAC)
	}
	if got := te.counter("drop_arp_wrong_interface"); got != 2 {
		t.Errorf("drop_arp_wrong_interface = %d, want 2", got)
	}
	// The real server's own announcement on its link still moves it, as a
	// failover of the RIP to another machine needs.
	moved := rewrite.MAC{2, 0, 0, 0, 0, 0x21}
	te.feed(te.int, arpFrame(t, layers.ARPReply, moved, "172.16.0.2", "172.16.0.1", intMAC))
	if mac, ok := te.synTo(t, 40001); !ok || mac != moved {
		t.Errorf("after the real server's own ARP on int, SYN went to %v (%v), want %v", mac, ok, moved)
	}
}

// Defect 1, resolution side: the answer to lvsd's request counts only on the
// link lvsd asked on.
func TestNeighResolveOnAskedInterfaceOnly(t *testing.T) {
	te := newTestEngine(t, "-m")
	te.neigh = newNeighTable()
	te.neigh.learn(netip.MustParseAddr("10.0.0.2"), clientMAC, te.ext, te.clock, true)
	te.intPort.last = nil
	te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, true, false, 0))
	if len(te.intPort.last) != 1 || rewrite.Ethernet(te.intPort.last[0].Data()).EtherType() != rewrite.EtherTypeARP {
		t.Fatalf("SYN to an unresolved real server: want one ARP request on int, got %d frames", len(te.intPort.last))
	}
	te.intPort.last = nil
	te.feed(te.ext, arpFrame(t, layers.ARPReply, attackerMAC, "172.16.0.2", "10.0.0.1", extMAC))
	if len(te.intPort.last) != 0 {
		t.Fatalf("an answer on ext released %d frames onto int", len(te.intPort.last))
	}
	te.feed(te.int, arpFrame(t, layers.ARPReply, rsMAC, "172.16.0.2", "172.16.0.1", intMAC))
	if len(te.intPort.last) != 1 || rewrite.MAC(te.intPort.last[0].Data()[0:6]) != rsMAC {
		t.Fatalf("the real server's answer on int: want the held SYN sent to %v, got %d frames", rsMAC, len(te.intPort.last))
	}
}

// Defect 2: unsolicited ARP replies (and requests) create no entries.
func TestARPUnsolicitedCreatesNothing(t *testing.T) {
	te := newTestEngine(t, "-m")
	before := len(te.neigh.m)
	sent := 0
	for i := 0; i < 5000; i++ {
		spa := netip.AddrFrom4([4]byte{10, 0, 0, byte(3 + i%250)})
		if i%2 == 1 {
			spa = netip.AddrFrom4([4]byte{byte(1 + i%200), byte(i >> 8), byte(i), 7}) // anywhere
		}
		sha := rewrite.MAC{2, 0xaa, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		te.feed(te.ext, arpFrame(t, layers.ARPReply, sha, spa.String(), "10.0.0.1", extMAC))
		sent++
	}
	// A request for the VIP from a new sender is answered, not learned.
	te.extPort.last = nil
	te.feed(te.ext, arpFrame(t, layers.ARPRequest, rewrite.MAC{2, 0, 0, 0, 0, 0x33}, "10.0.0.33", "10.0.0.100", bcastMAC))
	if len(te.extPort.last) != 1 {
		t.Errorf("request for the VIP from 10.0.0.33 not answered")
	}
	if got := len(te.neigh.m); got != before {
		t.Errorf("neighbour table grew from %d to %d entries on unsolicited ARP", before, got)
	}
	if got := te.counter("drop_arp_unsolicited") + te.counter("drop_arp_wrong_interface"); got != uint64(sent)+1 {
		t.Errorf("unsolicited + wrong interface = %d, want %d", got, sent+1)
	}
	// The forwarding path still works.
	if mac, ok := te.synTo(t, 40000); !ok || mac != rsMAC {
		t.Errorf("SYN after the flood went to %v (%v)", mac, ok)
	}
}

// Defect 2: asking is bounded too: the table has a ceiling (neighMax) and
// the frames held for unresolved neighbours have one (neighMaxQueued).
func TestNeighTableBounded(t *testing.T) {
	te := newTestEngine(t, "-m")
	frame := tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, true, false, 0)
	finish := func(b []byte, _ rewrite.MAC) []byte { return b }
	const asked = 10000
	for i := 0; i < asked; i++ {
		nh := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		te.enqueue(te.w, te.ext, nh, frame, te.clock, finish)
		te.flush(te.w)
	}
	const wantMax = 4096 // neighMax
	if got := len(te.neigh.m); got > wantMax {
		t.Errorf("%d next hops asked about: table holds %d entries, want at most %d", asked, got, wantMax)
	}
	held := 0
	for _, n := range te.neigh.m {
		held += len(n.queue)
	}
	if held > 1024 { // neighMaxQueued
		t.Errorf("%d frames held for unresolved neighbours, want at most 1024", held)
	}
	if te.counter("drop_neighbour_table_full")+te.counter("drop_neighbour_queue_full") == 0 {
		t.Error("refusals not counted")
	}
	// Nobody answers: every entry goes after its probes, a bounded slice per
	// tick, and the table is empty again but for the two known neighbours.
	for i := 0; i < 200 && len(te.neigh.m) > 2; i++ {
		te.clock += int64(neighRetry) + 1
		te.neighTimers(te.w, te.clock)
		te.flush(te.w)
	}
	if got := len(te.neigh.m); got != 2 {
		t.Errorf("after the probes ran out: %d entries, want 2", got)
	}
}

// Defect 2: expiry is incremental: one timer tick does bounded work however
// large the table, and everything still expires within a few seconds.
func TestNeighExpiryIncremental(t *testing.T) {
	te := newTestEngine(t, "-m")
	for i := 0; i < 4000; i++ {
		te.neigh.learn(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), clientMAC, te.ext, te.clock, true)
	}
	te.clock += int64(neighLifetime) + 1
	before := len(te.neigh.m)
	te.neighTimers(te.w, te.clock)
	if removed := before - len(te.neigh.m); removed > 256 { // neighSweep
		t.Errorf("one tick removed %d expired entries, want at most 256 (the sweep is bounded)", removed)
	}
	ticks := 1
	for ; ticks < 100 && len(te.neigh.m) > 0; ticks++ {
		te.clock += int64(100 * time.Millisecond)
		te.neighTimers(te.w, te.clock)
	}
	if len(te.neigh.m) != 0 {
		t.Errorf("after %d ticks %d expired entries remain", ticks, len(te.neigh.m))
	}
}

// Defect 3: senders no host can be are neither learned nor answered.
func TestARPBadSenderRejected(t *testing.T) {
	te := newTestEngine(t, "-m")
	badMACs := []rewrite.MAC{bcastMAC, {0x01, 0x00, 0x5e, 0, 0, 1}, {0x33, 0x33, 0, 0, 0, 1}, {}}
	for _, m := range badMACs {
		te.extPort.last = nil
		te.feed(te.ext, arpFrame(t, layers.ARPReply, m, "10.0.0.2", "10.0.0.1", extMAC))
		te.feed(te.ext, arpFrame(t, layers.ARPRequest, m, "10.0.0.2", "10.0.0.100", bcastMAC))
		if len(te.extPort.last) != 0 {
			t.Errorf("sender MAC %v: request answered", m)
		}
	}
	if got := te.counter("drop_arp_bad_sender_mac"); got != uint64(2*len(badMACs)) {
		t.Errorf("drop_arp_bad_sender_mac = %d, want %d", got, 2*len(badMACs))
	}
	// The client is still reached at its own MAC.
	if mac, ok := te.synTo(t, 40000); !ok || mac != rsMAC {
		t.Fatalf("SYN: %v %v", mac, ok)
	}
	if mac, ok := te.replyFromRS(t, 40000); !ok || mac != clientMAC {
		t.Errorf("reply to the client after bad-MAC ARP went to %v (%v), want %v", mac, ok, clientMAC)
	}

	before := len(te.neigh.m)
	badIPs := []string{"224.0.0.1", "239.255.255.250", "255.255.255.255", "127.0.0.1", "0.0.0.7",
		"10.0.0.1", "10.0.0.100", "10.0.0.255", "172.16.0.1"}
	for _, ip := range badIPs {
		te.extPort.last = nil
		te.feed(te.ext, arpFrame(t, layers.ARPReply, attackerMAC, ip, "10.0.0.1", extMAC))
		te.feed(te.ext, arpFrame(t, layers.ARPRequest, attackerMAC, ip, "10.0.0.100", bcastMAC))
		if len(te.extPort.last) != 0 {
			t.Errorf("sender IP %s: request for the VIP answered", ip)
		}
	}
	if got := len(te.neigh.m); got != before {
		t.Errorf("bad sender IPs created %d entries", got-before)
	}
	if got := te.counter("drop_arp_bad_sender_ip"); got != uint64(2*len(badIPs)) {
		t.Errorf("drop_arp_bad_sender_ip = %d, want %d", got, 2*len(badIPs))
	}
	// A duplicate address probe (sender 0.0.0.0) for the VIP is answered, as
	// Linux answers it, and learns nothing.
	te.extPort.last = nil
	te.feed(te.ext, arpFrame(t, layers.ARPRequest, rewrite.MAC{2, 0, 0, 0, 0, 0x44}, "0.0.0.0", "10.0.0.100", bcastMAC))
	if len(te.extPort.last) != 1 {
		t.Error("duplicate address probe for the VIP not answered")
	}
	if got := len(te.neigh.m); got != before {
		t.Errorf("a probe from 0.0.0.0 created an entry")
	}
}

// Defect 8: martian sources create no connection and get no answer.
func TestMartianSourcesDropped(t *testing.T) {
	for _, fwd := range []string{"-m", "-g"} {
		te := newTestEngine(t, fwd)
		martians := []string{"0.0.0.0", "0.1.2.3", "127.0.0.1", "127.255.0.9", "224.0.0.5", "239.1.1.1",
			"255.255.255.255", "10.0.0.100" /* LAND */, "10.0.0.1", "172.16.0.1", "10.0.0.255"}
		for _, src := range martians {
			te.extPort.last, te.intPort.last = nil, nil
			te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, src, "10.0.0.100", 40000, 80, true, false, 0))
			te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, src, "10.0.0.100", 40000, 23, true, false, 0))
			if len(te.intPort.last) != 0 || len(te.extPort.last) != 0 {
				t.Errorf("%s: SYN from %s: %d frames to the real server, %d back", fwd, src, len(te.intPort.last), len(te.extPort.last))
			}
		}
		if n := te.conns.Len(); n != 0 {
			t.Errorf("%s: martian SYNs created %d connections", fwd, n)
		}
		if got := te.counter("drop_martian_source"); got != uint64(2*len(martians)) {
			t.Errorf("%s: drop_martian_source = %d, want %d", fwd, got, 2*len(martians))
		}
		if mac, ok := te.synTo(t, 40000); !ok || mac != rsMAC {
			t.Errorf("%s: a real client's SYN is not forwarded", fwd)
		}
	}
}

// The ARP receive path allocates nothing, whatever it decides.
func TestARPNoAllocs(t *testing.T) {
	te := newTestEngine(t, "-m")
	frames := [][]byte{
		arpFrame(t, layers.ARPReply, rsMAC, "172.16.0.2", "172.16.0.1", intMAC),           // learned
		arpFrame(t, layers.ARPReply, attackerMAC, "172.16.0.9", "172.16.0.1", intMAC),     // unsolicited
		arpFrame(t, layers.ARPReply, attackerMAC, "10.0.0.9", "172.16.0.1", intMAC),       // wrong interface
		arpFrame(t, layers.ARPReply, bcastMAC, "172.16.0.2", "172.16.0.1", intMAC),        // bad MAC
		arpFrame(t, layers.ARPRequest, attackerMAC, "172.16.0.1", "10.0.0.100", bcastMAC), // bad IP
	}
	for _, f := range frames {
		if n := testing.AllocsPerRun(200, func() { te.feed(te.int, f) }); n != 0 {
			t.Errorf("%.1f allocations per ARP frame", n)
		}
	}
	syn := tcpFrame(t, clientMAC, extMAC, "127.0.0.1", "10.0.0.100", 40000, 80, true, false, 0)
	if n := testing.AllocsPerRun(200, func() { te.feed(te.ext, syn) }); n != 0 {
		t.Errorf("%.1f allocations per martian SYN", n)
	}
}

func BenchmarkARPFlood(b *testing.B) {
	te := newTestEngine(b, "-m")
	f := arpFrame(b, layers.ARPReply, attackerMAC, "10.0.0.9", "10.0.0.1", extMAC)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		f[28+2], f[28+3] = byte(i>>8), byte(i) // sender IP 10.0.x.y: some on-link, most not
		te.feed(te.ext, f)
	}
}

// The last entry found is kept for the next lookup: a removed one must not
// come back from there, nor an entry of another interface or address.
func TestNeighHotEntry(t *testing.T) {
	te := newTestEngine(t, "-m")
	a, b := netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("10.0.0.8")
	na := te.neigh.learn(a, clientMAC, te.ext, te.clock, true)
	te.neigh.learn(b, rsMAC, te.ext, te.clock, true)
	if got := te.neigh.get(te.ext, a); got != na {
		t.Fatalf("get(%s) = %p, want %p", a, got, na)
	}
	if got := te.neigh.get(te.int, a); got != nil {
		t.Errorf("get(%s) on the other interface = %+v, want none", a, got)
	}
	if got := te.neigh.get(te.ext, b); got == nil || got.mac != rsMAC {
		t.Errorf("get(%s) = %+v, want its own entry", b, got)
	}
	te.neigh.get(te.ext, a)
	te.neigh.remove(na)
	if got := te.neigh.get(te.ext, a); got != nil {
		t.Errorf("get(%s) after remove = %+v, want none", a, got)
	}
}
