package pktgen

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/internal/nstest"
	"lvslab/rewrite"
)

var (
	macA = [6]byte{0x02, 0, 0, 0, 0, 0x0a}
	macB = [6]byte{0x02, 0, 0, 0, 0, 0x0b}
)

// gopacketUDP is gopacket's independent build of the same frame.
func gopacketUDP(t *testing.T, src, dst netip.AddrPort, payload int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: macA[:], DstMAC: macB[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Flags: layers.IPv4DontFragment,
		SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(make([]byte, payload))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFramesMatchGopacket(t *testing.T) {
	f := Flows{
		SrcMAC: macA, DstMAC: macB,
		Src: netip.MustParseAddr("10.0.0.2"), SrcAddrs: 3, SrcPort: 40000, Ports: 100,
		Dst: netip.MustParseAddrPort("10.0.0.100:9"),
	}
	frames, err := f.Frames()
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 300 || f.Count() != 300 {
		t.Fatalf("%d frames, Count %d, want 300", len(frames), f.Count())
	}
	seen := map[netip.AddrPort]bool{}
	for i, b := range frames {
		if len(b) != 64 || f.FrameLen() != 64 {
			t.Fatalf("frame %d: %d bytes, FrameLen %d, want 64", i, len(b), f.FrameLen())
		}
		p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil {
			t.Fatalf("frame %d does not decode as IPv4/UDP: %v", i, p)
		}
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip.SrcIP.To4())), uint16(udp.SrcPort))
		seen[src] = true
		want := gopacketUDP(t, src, f.Dst, DefaultPayload)
		if !bytes.Equal(b, want) {
			t.Fatalf("frame %d:\n got %x\nwant %x", i, b, want)
		}
		// And by our own arithmetic: a correct checksum sums to zero.
		if c := rewrite.Checksum(b[14:34]); c != 0 {
			t.Fatalf("frame %d: IP header sums to %#x", i, c)
		}
		if !MatchUDP(b, f.Dst.Addr(), 9) {
			t.Fatalf("frame %d: MatchUDP false", i)
		}
	}
	if len(seen) != 300 {
		t.Fatalf("%d distinct flows, want 300", len(seen))
	}
	if got := frames[1][14+12 : 14+16]; !bytes.Equal(got, []byte{10, 0, 0, 2}) {
		t.Errorf("second frame from %v: ports must vary fastest", got)
	}
}

func TestFlowsInvalid(t *testing.T) {
	base := Flows{Src: netip.MustParseAddr("10.0.0.2"), Dst: netip.MustParseAddrPort("10.0.0.100:9")}
	for name, f := range map[string]Flows{
		"ipv6":        {Src: netip.MustParseAddr("2001:db8::1"), Dst: base.Dst},
		"ports wrap":  {Src: base.Src, Dst: base.Dst, SrcPort: 65000, Ports: 1000},
		"addrs wrap":  {Src: netip.MustParseAddr("255.255.255.254"), SrcAddrs: 4, Dst: base.Dst},
		"jumbo":       {Src: base.Src, Dst: base.Dst, Payload: 2000},
		"no src addr": {Dst: base.Dst},
	} {
		if _, err := f.Frames(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestMatchUDP(t *testing.T) {
	vip := netip.MustParseAddr("10.0.0.100")
	good := make([]byte, 64)
	BuildUDP(good, macA, macB, netip.MustParseAddrPort("10.0.0.2:1000"), netip.AddrPortFrom(vip, 9))
	mod := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	cases := []struct {
		name  string
		frame []byte
		dst   netip.Addr
		port  uint16
		want  bool
	}{
		{"match", good, vip, 9, true},
		{"any address", good, netip.Addr{}, 9, true},
		{"other port", good, vip, 10, false},
		{"other address", good, netip.MustParseAddr("10.0.0.101"), 9, false},
		{"arp", mod(func(b []byte) { b[12], b[13] = 0x08, 0x06 }), vip, 9, false},
		{"tcp", mod(func(b []byte) { b[23] = 6 }), vip, 9, false},
		{"later fragment", mod(func(b []byte) { b[21] = 0x10 }), vip, 9, false},
		{"short", good[:40], vip, 9, false},
		{"ipv6 dst wanted", good, netip.MustParseAddr("::1"), 9, false},
	}
	for _, c := range cases {
		if got := MatchUDP(c.frame, c.dst, c.port); got != c.want {
			t.Errorf("%s: MatchUDP = %v, want %v", c.name, got, c.want)
		}
	}
}

func BenchmarkMatchUDP(b *testing.B) {
	frame := make([]byte, 64)
	vip := netip.MustParseAddr("10.0.0.100")
	BuildUDP(frame, macA, macB, netip.MustParseAddrPort("10.0.0.2:1000"), netip.AddrPortFrom(vip, 9))
	b.ReportAllocs()
	for b.Loop() {
		if !MatchUDP(frame, vip, 9) {
			b.Fatal("no match")
		}
	}
}

// TestGeneratorToSink sends a counted, paced burst across a veth pair and
// expects the sink to count every frame, and nothing else as a match.
func TestGeneratorToSink(t *testing.T) {
	nstest.Require(t)
	a, z := nstest.New(t, "pg-a"), nstest.New(t, "pg-z")
	nstest.Veth(t, a, "ga", z, "gz", 1500)
	// Keep the receiving kernel out of it: it would only drop the frames.
	z.Run("nft", "add", "table", "netdev", "pgtest")
	z.Run("nft", "add", "chain", "netdev", "pgtest", "in", "{ type filter hook ingress device gz priority 0; policy accept; }")
	z.Run("nft", "add", "rule", "netdev", "pgtest", "in", "meta protocol ip drop")
	var dstMAC [6]byte
	copy(dstMAC[:], z.MAC("gz"))
	const count = 20000
	cfg := Config{
		Interface: "ga",
		Flows: Flows{
			SrcMAC: [6]byte(a.MAC("ga")), DstMAC: dstMAC,
			Src: netip.MustParseAddr("10.0.0.2"), SrcAddrs: 2, Ports: 512,
			Dst: netip.MustParseAddrPort("10.0.0.100:9"),
		},
		Count:    count,
		Rate:     200000,
		Duration: 10 * time.Second,
	}
	var g *Generator
	var s *Sink
	if err := a.Do(func() (err error) { g, err = Open(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := z.Do(func() (err error) {
		s, err = OpenSink(SinkConfig{Interface: "gz", DstPort: 9, Dst: netip.MustParseAddr("10.0.0.100")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	sinkErr := make(chan error, 1)
	go func() { sinkErr <- s.Run(ctx) }()

	res, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != count {
		t.Fatalf("sent %d, want %d", res.Sent, count)
	}
	if pps := res.PPS(); pps > 1.2*cfg.Rate {
		t.Errorf("paced at %.0f pps, asked for %.0f", pps, cfg.Rate)
	}
	if err := s.WaitFor(ctx, count, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Anything arriving after the burst would be a duplicate.
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-sinkErr; err != nil {
		t.Fatal(err)
	}
	smp := s.Sample()
	if smp.Matched != count || smp.Drops != 0 {
		t.Errorf("sink: matched %d (want %d), drops %d", smp.Matched, count, smp.Drops)
	}
	t.Logf("sent %d in %v (%.0f pps); sink matched %d, other %d", res.Sent, res.Elapsed, res.PPS(), smp.Matched, smp.Other)
}

// TestGeneratorStopsOnContext checks an unbounded run ends with its
// context, even with the transmit ring full.
func TestGeneratorStopsOnContext(t *testing.T) {
	nstest.Require(t)
	a, z := nstest.New(t, "pg-a"), nstest.New(t, "pg-z")
	nstest.Veth(t, a, "ga", z, "gz", 1500)
	var g *Generator
	cfg := Config{Interface: "ga", Flows: Flows{Src: netip.MustParseAddr("10.0.0.2"), Dst: netip.MustParseAddrPort("10.0.0.100:9")}}
	copy(cfg.Flows.DstMAC[:], net.HardwareAddr{0x02, 0, 0, 0, 0, 1})
	if err := a.Do(func() (err error) { g, err = Open(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := g.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("ran %v after a 200ms context", d)
	}
	if res.Sent == 0 || res.Sent != g.Sent() {
		t.Errorf("Result.Sent %d, Sent() %d", res.Sent, g.Sent())
	}
}
