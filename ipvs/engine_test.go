package ipvs

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/capture"
	"lvslab/config"
	"lvslab/rewrite"
)

// nullPort is a Port that keeps the last batch written and discards it.
type nullPort struct {
	last []capture.Frame
	sent int
}

func (p *nullPort) ReadBatch([]capture.Frame) (int, error) { select {} }
func (p *nullPort) WriteBatch(f []capture.Frame) (int, error) {
	p.last = append(p.last[:0], f...)
	p.sent += len(f)
	return len(f), nil
}
func (p *nullPort) SetReadDeadline(time.Time) error { return nil }
func (p *nullPort) Stats() capture.Stats            { return capture.Stats{} }
func (p *nullPort) Close() error                    { return nil }

var (
	extMAC    = rewrite.MAC{2, 0, 0, 0, 0, 1}
	intMAC    = rewrite.MAC{2, 0, 0, 0, 0, 2}
	clientMAC = rewrite.MAC{2, 0, 0, 0, 0, 0x10}
	rsMAC     = rewrite.MAC{2, 0, 0, 0, 0, 0x20}
)

type testEngine struct {
	*Engine
	ext, int *Iface
	extPort  *nullPort
	intPort  *nullPort
	w        *worker
	clock    int64
}

// newTestEngine: ext 10.0.0.1/24 toward the client 10.0.0.2, int
// 172.16.0.1/24 toward the real server 172.16.0.2, neighbours known, and a
// service VIP 10.0.0.100:80 with the given forwarding switch.
func newTestEngine(tb testing.TB, fwd string) *testEngine {
	tb.Helper()
	te := &testEngine{extPort: &nullPort{}, intPort: &nullPort{}, clock: int64(time.Hour)}
	e, err := New(Config{Now: func() int64 { return te.clock }})
	if err != nil {
		tb.Fatal(err)
	}
	te.Engine = e
	te.ext = &Iface{Name: "ext", Index: 1, MAC: extMAC, MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}, Port: te.extPort}
	te.int = &Iface{Name: "int", Index: 2, MAC: intMAC, MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("172.16.0.1/24")}, Port: te.intPort}
	e.AddIface(te.ext)
	e.AddIface(te.int)
	e.SetRoutes(NewRouteTable([]Route{
		{Dst: netip.MustParsePrefix("10.0.0.0/24"), Ifindex: 1},
		{Dst: netip.MustParsePrefix("172.16.0.0/24"), Ifindex: 2},
	}))
	e.neigh.learn(netip.MustParseAddr("10.0.0.2"), clientMAC, te.ext, te.clock, true)
	e.neigh.learn(netip.MustParseAddr("172.16.0.2"), rsMAC, te.int, te.clock, true)
	for _, line := range []string{"-A -t 10.0.0.100:80 -s rr", "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 " + fwd} {
		c, err := config.ParseArgs(splitFields(line))
		if err != nil {
			tb.Fatal(err)
		}
		if err := e.Apply(c); err != nil {
			tb.Fatal(err)
		}
	}
	te.w = e.newWorker()
	return te
}

func splitFields(s string) []string {
	var out []string
	for _, f := range []byte(s) {
		if f == ' ' {
			out = append(out, "")
			continue
		}
		if len(out) == 0 {
			out = append(out, "")
		}
		out[len(out)-1] += string(f)
	}
	return out
}

// feed processes one frame received on ifc and flushes the output.
func (te *testEngine) feed(ifc *Iface, frame []byte) {
	w := te.w
	n := copy(w.slots[0][headroom:], frame)
	w.rx[0] = capture.Frame{Buf: w.slots[0][headroom:], N: n, Len: n}
	te.handle(w, ifc, 0, te.clock)
	te.flush(w)
}

func tcpFrame(tb testing.TB, src, dst rewrite.MAC, sip, dip string, sport, dport uint16, syn, ack bool, payload int) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(src[:]), DstMAC: net.HardwareAddr(dst[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(sip).To4(), DstIP: net.ParseIP(dip).To4(), Flags: layers.IPv4DontFragment}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: ack, Seq: 100, Ack: 1, Window: 1000}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(make([]byte, payload))); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// decode checks a transmitted frame with gopacket, checksums recomputed.
func decode(tb testing.TB, frame []byte) (*layers.IPv4, *layers.TCP) {
	tb.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip == nil || tcp == nil {
		tb.Fatalf("not TCP/IPv4: %v", pkt)
	}
	sum := ip.Checksum
	// gopacket recomputes checksums when serializing; compare with what we sent.
	buf := gopacket.NewSerializeBuffer()
	_ = tcp.SetNetworkLayerForChecksum(ip)
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ip, tcp, gopacket.Payload(tcp.Payload)); err != nil {
		tb.Fatal(err)
	}
	re := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeIPv4, gopacket.Default)
	rip := re.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	rtcp := re.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if rip.Checksum != sum || rtcp.Checksum != tcp.Checksum {
		tb.Fatalf("checksums ip %#x tcp %#x, recomputed %#x %#x", sum, tcp.Checksum, rip.Checksum, rtcp.Checksum)
	}
	return ip, tcp
}

func TestEngineNATBothDirections(t *testing.T) {
	te := newTestEngine(t, "-m")
	te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, true, false, 0))
	if len(te.intPort.last) != 1 {
		t.Fatalf("SYN: %d frames out on int, want 1", len(te.intPort.last))
	}
	out := te.intPort.last[0].Data()
	if rewrite.MAC(out[0:6]) != rsMAC || rewrite.MAC(out[6:12]) != intMAC {
		t.Errorf("SYN MACs %x > %x", out[6:12], out[0:6])
	}
	ip, tcp := decode(t, out)
	if ip.DstIP.String() != "172.16.0.2" || tcp.DstPort != 8080 || ip.SrcIP.String() != "10.0.0.2" || ip.TTL != 63 {
		t.Errorf("SYN rewritten to %s:%d from %s ttl %d", ip.DstIP, tcp.DstPort, ip.SrcIP, ip.TTL)
	}
	te.feed(te.int, tcpFrame(t, rsMAC, intMAC, "172.16.0.2", "10.0.0.2", 8080, 40000, true, true, 0))
	if len(te.extPort.last) != 1 {
		t.Fatalf("SYN-ACK: %d frames out on ext, want 1", len(te.extPort.last))
	}
	ip, tcp = decode(t, te.extPort.last[0].Data())
	if ip.SrcIP.String() != "10.0.0.100" || tcp.SrcPort != 80 || ip.DstIP.String() != "10.0.0.2" {
		t.Errorf("reply rewritten to %s:%d > %s", ip.SrcIP, tcp.SrcPort, ip.DstIP)
	}
	st := te.serviceReply(config.Command{}).Services[0].Dests[0]
	if st.ActiveConns != 1 || st.Stats.InPkts != 1 || st.Stats.OutPkts != 1 || st.Stats.Conns != 1 {
		t.Errorf("dest status %+v", st)
	}
}

func TestEngineRefusesOtherPorts(t *testing.T) {
	te := newTestEngine(t, "-m")
	te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 23, true, false, 0))
	if len(te.extPort.last) != 1 {
		t.Fatalf("%d frames back, want a RST", len(te.extPort.last))
	}
	_, tcp := decode(t, te.extPort.last[0].Data())
	if !tcp.RST || tcp.SrcPort != 23 {
		t.Errorf("answer is not a RST from port 23: %+v", tcp)
	}
}

func TestEngineNoAllocsPerPacket(t *testing.T) {
	for _, fwd := range []string{"-m", "-g", "-i"} {
		te := newTestEngine(t, fwd)
		syn := tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, true, false, 0)
		te.feed(te.ext, syn)
		ack := tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, false, true, 32)
		if n := testing.AllocsPerRun(1000, func() { te.feed(te.ext, ack) }); n != 0 {
			t.Errorf("%s: %.1f allocations per established packet", fwd, n)
		}
	}
}

func BenchmarkEngineEstablished(b *testing.B) {
	for _, c := range []struct{ name, fwd string }{{"NAT", "-m"}, {"DR", "-g"}, {"TUN", "-i"}} {
		b.Run(c.name, func(b *testing.B) {
			te := newTestEngine(b, c.fwd)
			te.feed(te.ext, tcpFrame(b, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, true, false, 0))
			ack := tcpFrame(b, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, false, true, 10)
			b.ReportAllocs()
			for b.Loop() {
				te.feed(te.ext, ack)
			}
		})
	}
}

// BenchmarkEngineNewConn measures scheduling a new connection: SYNs from
// ever new client ports (conntrack insert, rr pick, NAT rewrite).
func BenchmarkEngineNewConn(b *testing.B) {
	te := newTestEngine(b, "-m")
	syn := tcpFrame(b, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 1, 80, true, false, 0)
	b.ReportAllocs()
	port := uint16(1)
	for b.Loop() {
		port++
		if port == 0 {
			port = 1
			te.clock += int64(10 * time.Minute) // let the old ones expire
			te.conns.Expire(te.clock)
		}
		syn[34], syn[35] = byte(port>>8), byte(port)
		// The TCP checksum is not checked on the way; lvsd updates it
		// incrementally either way.
		te.feed(te.ext, syn)
	}
}

func FuzzEngine(f *testing.F) {
	te := newTestEngine(f, "-m")
	f.Add(tcpFrame(f, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, true, false, 0), false, uint8(0))
	f.Add(tcpFrame(f, rsMAC, intMAC, "172.16.0.2", "10.0.0.2", 8080, 40000, true, true, 0), true, uint8(0))
	f.Fuzz(func(t *testing.T, frame []byte, fromInt bool, kind uint8) {
		if len(frame) > slotSize-headroom {
			return
		}
		ifc := te.ext
		if fromInt {
			ifc = te.int
		}
		w := te.w
		n := copy(w.slots[0][headroom:], frame)
		w.rx[0] = capture.Frame{Buf: w.slots[0][headroom:], N: n, Len: n, CsumNotReady: kind&1 != 0, PktType: kind >> 5}
		te.handle(w, ifc, 0, te.clock)
		te.flush(w)
	})
}

func arpRequest(tb testing.TB, target string) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(clientMAC[:]), DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: clientMAC[:], SourceProtAddress: net.ParseIP("10.0.0.2").To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(target).To4()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, arp); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// TestEngineARP: lvsd answers ARP for its VIPs and for the address an
// fwmark classifier rule claims, not for others, and not at all with NoARP.
func TestEngineARP(t *testing.T) {
	te := newTestEngine(t, "-g")
	rule, err := ParseMarkRule("mark=3,proto=tcp,dst=10.0.0.50,dport=80")
	if err != nil {
		t.Fatal(err)
	}
	if err := te.SetMarks([]MarkRule{rule}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target string
		answer bool
	}{{"10.0.0.100", true}, {"10.0.0.50", true}, {"10.0.0.99", false}} {
		te.extPort.last = nil
		te.feed(te.ext, arpRequest(t, c.target))
		got := len(te.extPort.last) == 1
		if got != c.answer {
			t.Errorf("ARP for %s answered %v, want %v", c.target, got, c.answer)
			continue
		}
		if got {
			pkt := gopacket.NewPacket(te.extPort.last[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
			a, _ := pkt.Layer(layers.LayerTypeARP).(*layers.ARP)
			if a == nil || a.Operation != layers.ARPReply || net.IP(a.SourceProtAddress).String() != c.target ||
				!bytes.Equal(a.SourceHwAddress, extMAC[:]) {
				t.Errorf("ARP for %s: bad reply %v", c.target, pkt)
			}
		}
	}
	te.cfg.NoARP = true
	te.extPort.last = nil
	te.feed(te.ext, arpRequest(t, "10.0.0.100"))
	if len(te.extPort.last) != 0 {
		t.Error("NoARP still answers")
	}
}
