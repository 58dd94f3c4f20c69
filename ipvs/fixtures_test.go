package ipvs

// Engine fixtures in Katran's style: a provisioned rule set, a sequence of
// frames into the engine's interfaces (capture.MemPort links), and for each
// frame the exact frames that must leave on each interface, built
// independently with gopacket; at the end the engine's counter verdicts.
// They pin the forwarding behaviour per method so a restructure of the
// data path is shown to preserve it byte for byte.

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/capture"
	"lvslab/config"
	"lvslab/rewrite"
)

// Addresses of the fixture world: the client side (ext, 10.0.0.0/24) and
// the real-server side (int, 172.16.0.0/24).
const (
	fxClient = "10.0.0.2"
	fxVIP    = "10.0.0.100"
	fxMarkIP = "10.0.0.50"
	fxRS     = "172.16.0.2"
	fxDirInt = "172.16.0.1"
	fxRouter = "172.16.0.254" // a router on the real-server side
	fxExtRtr = "10.0.0.254"   // a router on the client side
)

// fxISNKey keys the engine's FULLNAT sequence remap in fixtures.
const fxISNKey = 0x5eed1e55

// fxDelta is the FULLNAT sequence delta of a fixture connection from local
// to the real server whose client's ISN is 1000 (tcp4's).
func fxDelta(local string, lport uint16) uint32 {
	return fnatISN(fxISNKey, netip.AddrPortFrom(netip.MustParseAddr(local), lport),
		netip.MustParseAddrPort(fxRS+":8080"), int64(time.Hour)) - 1000
}

// routerMAC is a router's on the real-server side; the second real
// server's MAC is rs2MAC (trash_test.go).
var routerMAC = rewrite.MAC{2, 0, 0, 0, 0, 0x30}

// fxARP builds an ARP frame, padded to the Ethernet minimum.
func fxARP(tb testing.TB, op uint16, src, dst, sha, tha rewrite.MAC, spa, tpa string) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(src[:]), DstMAC: net.HardwareAddr(dst[:]), EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: sha[:], SourceProtAddress: net.ParseIP(spa).To4(),
		DstHwAddress: tha[:], DstProtAddress: net.ParseIP(tpa).To4()}
	return fxSerialize(tb, eth, a, gopacket.Payload(make([]byte, 18)))
}

// fxLocal is the LOCALNODE device: what it is handed, kept.
type fxLocal struct{ got [][]byte }

func (l *fxLocal) Write(b []byte) (int, error) {
	l.got = append(l.got, slices.Clone(b))
	return len(b), nil
}
func (l *fxLocal) MAC() rewrite.MAC { return rewrite.MAC{2, 0, 0, 0, 0, 0x40} }

type fxEngine struct {
	*Engine
	ext, int    *Iface
	extW, intW  *capture.MemPort // the wire ends the test reads
	local       *fxLocal
	w           *worker
	clock       int64
	readScratch []capture.Frame
}

func newFxEngine(tb testing.TB, rules []string, marks []string, localAddrs []string) *fxEngine {
	tb.Helper()
	fe := &fxEngine{clock: int64(time.Hour), local: &fxLocal{}, readScratch: make([]capture.Frame, 16)}
	for i := range fe.readScratch {
		fe.readScratch[i].Buf = make([]byte, 2048)
	}
	e, err := New(Config{Now: func() int64 { return fe.clock }, OpenLocal: func() (LocalPort, error) { return fe.local, nil }})
	if err != nil {
		tb.Fatal(err)
	}
	fe.Engine = e
	e.isnKey = fxISNKey // FULLNAT's remapped sequence numbers, predictable
	extP, extW := capture.NewMemPair(capture.MemConfig{IfindexA: 1, IfindexB: 1})
	intP, intW := capture.NewMemPair(capture.MemConfig{IfindexA: 2, IfindexB: 2})
	tb.Cleanup(func() { extP.Close(); intP.Close() })
	fe.extW, fe.intW = extW, intW
	fe.ext = &Iface{Name: "ext", Index: 1, MAC: extMAC, MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}, Port: extP}
	fe.int = &Iface{Name: "int", Index: 2, MAC: intMAC, MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("172.16.0.1/24")}, Port: intP}
	e.AddIface(fe.ext)
	e.AddIface(fe.int)
	e.SetRoutes(NewRouteTable([]Route{
		{Dst: netip.MustParsePrefix("10.0.0.0/24"), Ifindex: 1},
		{Dst: netip.MustParsePrefix("172.16.0.0/24"), Ifindex: 2},
	}))
	e.neigh.learn(netip.MustParseAddr(fxClient), clientMAC, fe.ext, fe.clock, true)
	e.neigh.learn(netip.MustParseAddr(fxRS), rsMAC, fe.int, fe.clock, true)
	if len(localAddrs) > 0 {
		var as []netip.Addr
		for _, a := range localAddrs {
			as = append(as, netip.MustParseAddr(a))
		}
		if err := e.SetLocalAddrs(as); err != nil {
			tb.Fatal(err)
		}
	}
	var mr []MarkRule
	for _, m := range marks {
		r, err := ParseMarkRule(m)
		if err != nil {
			tb.Fatal(err)
		}
		mr = append(mr, r)
	}
	if len(mr) > 0 {
		if err := e.SetMarks(mr); err != nil {
			tb.Fatal(err)
		}
	}
	var last config.ServiceID
	for _, line := range rules {
		if as, ok := strings.CutPrefix(line, "laddr "); ok {
			// FULLNAT local addresses of the service added last.
			var addrs []netip.Addr
			for _, a := range strings.Fields(as) {
				addrs = append(addrs, netip.MustParseAddr(a))
			}
			if err := e.SetServiceLaddrs(last, addrs); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		c, err := config.ParseArgs(splitFields(line))
		if err != nil {
			tb.Fatalf("%s: %v", line, err)
		}
		if err := e.Apply(c); err != nil {
			tb.Fatalf("%s: %v", line, err)
		}
		last = c.Service.ID()
	}
	fe.w = e.newWorker()
	return fe
}

// feed hands frame to the engine as received on ifc and flushes. A GSO
// super-frame arrives as the ring lends it: outside the slots, Oversized.
func (fe *fxEngine) feed(ifc *Iface, frame []byte, gso bool) {
	w := fe.w
	if gso {
		w.rx[0] = capture.Frame{Buf: slices.Clone(frame), N: len(frame), Len: len(frame), Oversized: true}
	} else {
		n := copy(w.slots[0][headroom:], frame)
		w.rx[0] = capture.Frame{Buf: w.slots[0][headroom:], N: n, Len: n}
	}
	fe.handle(w, ifc, 0, fe.clock)
	fe.flush(w)
}

// drain returns what the engine wrote on a link since the last call.
func (fe *fxEngine) drain(tb testing.TB, wire *capture.MemPort) [][]byte {
	tb.Helper()
	var out [][]byte
	for {
		_ = wire.SetReadDeadline(time.Now().Add(-time.Second))
		n, err := wire.ReadBatch(fe.readScratch)
		for i := range n {
			out = append(out, slices.Clone(fe.readScratch[i].Data()))
		}
		if err != nil || n == 0 {
			return out
		}
	}
}

// pkt builds a frame with gopacket: lengths fixed, checksums computed.
type pkt struct {
	src, dst rewrite.MAC
	sip, dip string
	ttl, tos uint8
	id       uint16
	df       bool
	proto    layers.IPProtocol
	l4       []gopacket.SerializableLayer
	payload  []byte
}

func fxIP(p pkt) *layers.IPv4 {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: p.ttl, TOS: p.tos, Id: p.id, Protocol: p.proto,
		SrcIP: net.ParseIP(p.sip).To4(), DstIP: net.ParseIP(p.dip).To4()}
	if p.df {
		ip.Flags = layers.IPv4DontFragment
	}
	return ip
}

func fxSerialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	return slices.Clone(buf.Bytes())
}

func (p pkt) build(tb testing.TB) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(p.src[:]), DstMAC: net.HardwareAddr(p.dst[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := fxIP(p)
	ls := []gopacket.SerializableLayer{eth, ip}
	for _, l := range p.l4 {
		if c, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			_ = c.SetNetworkLayerForChecksum(ip)
		}
		ls = append(ls, l)
	}
	ls = append(ls, gopacket.Payload(p.payload))
	return fxSerialize(tb, ls...)
}

// ipOnly returns the frame's IPv4 packet (for quotes and tunnel payloads).
// Ethernet padding is not part of it.
func ipOnly(frame []byte) []byte { return frame[14 : 14+(int(frame[16])<<8|int(frame[17]))] }

// tcp4 is a TCP segment between two endpoints, with fixed sequence numbers.
func tcp4(sport, dport uint16, flags string) *layers.TCP {
	t := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, Ack: 2000, Window: 8192}
	for _, f := range flags {
		switch f {
		case 'S':
			t.SYN = true
		case 'A':
			t.ACK = true
		case 'R':
			t.RST = true
		case 'F':
			t.FIN = true
		case 'P':
			t.PSH = true
		}
	}
	if !t.ACK {
		t.Ack = 0
	}
	return t
}

func udp4(sport, dport uint16) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
}

// quote is the first 28 bytes of a TCP/IPv4 packet (header plus 8 bytes),
// what an ICMP error carries at least.
func quote(tb testing.TB, sip, dip string, sport, dport uint16, ttl uint8) []byte {
	b := pkt{src: clientMAC, dst: extMAC, sip: sip, dip: dip, ttl: ttl, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{tcp4(sport, dport, "A")}}.build(tb)
	return ipOnly(b)[:28]
}

func icmpErr(typ, code uint8, rest uint32) *layers.ICMPv4 {
	return &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: uint16(rest >> 16), Seq: uint16(rest)}
}

// tunnelled wraps inner (an IPv4 packet) in the IP-in-IP frame lvsd sends
// to a tunnel real server: inner TTL already decremented by the caller.
func tunnelled(tb testing.TB, outerTTL uint8, inner []byte) []byte {
	return pkt{src: intMAC, dst: rsMAC, sip: fxDirInt, dip: fxRS, ttl: outerTTL, df: true, proto: layers.IPProtocolIPv4,
		payload: inner}.build(tb)
}

type fxStep struct {
	name    string
	fromInt bool
	gso     bool // a TSO super-frame longer than the MTU
	frame   []byte
	ext     [][]byte // frames that must leave on ext, in order
	int     [][]byte // ... on int
	local   [][]byte // ... handed to the local stack (LOCALNODE)
}

type fixture struct {
	name     string
	rules    []string
	marks    []string
	local    []string // the director's own addresses
	ftpOff   bool     // the FTP helper switched off (ftp_test.go)
	steps    []fxStep
	counters map[string]uint64 // every nonzero event counter at the end
}

func (fx *fixture) run(t *testing.T) {
	fe := newFxEngine(t, fx.rules, fx.marks, fx.local)
	if fx.ftpOff {
		_ = fe.SetFTPPorts(nil)
	}
	for _, s := range fx.steps {
		in := fe.ext
		if s.fromInt {
			in = fe.int
		}
		nlocal := len(fe.local.got)
		fe.feed(in, s.frame, s.gso)
		fxCompare(t, s.name, "ext", fe.drain(t, fe.extW), s.ext)
		fxCompare(t, s.name, "int", fe.drain(t, fe.intW), s.int)
		fxCompare(t, s.name, "local", fe.local.got[nlocal:], s.local)
	}
	events, _ := fe.Counters()
	got := map[string]uint64{}
	for k, v := range events {
		if v != 0 {
			got[k] = v
		}
	}
	for k, v := range fx.counters {
		if got[k] != v {
			t.Errorf("counter %s = %d, want %d", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := fx.counters[k]; !ok {
			t.Errorf("counter %s = %d, want 0", k, v)
		}
	}
}

func fxCompare(t *testing.T, step, where string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d frames on %s, want %d", step, len(got), where, len(want))
		for _, g := range got {
			t.Logf("  got %s", gopacket.NewPacket(g, layers.LayerTypeEthernet, gopacket.Default))
		}
		return
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("%s: frame %d on %s differs\n got  %s\n want %s\n%s\nwant\n%s", step, i, where,
				hex.EncodeToString(got[i]), hex.EncodeToString(want[i]),
				gopacket.NewPacket(got[i], layers.LayerTypeEthernet, gopacket.Default),
				gopacket.NewPacket(want[i], layers.LayerTypeEthernet, gopacket.Default))
		}
	}
}

func fixtures(tb testing.TB) []fixture {
	tcp := layers.IPProtocolTCP
	l4 := func(ls ...gopacket.SerializableLayer) []gopacket.SerializableLayer { return ls }
	// Client → VIP and the same packet as each method forwards it.
	syn := pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: tcp, l4: l4(tcp4(40000, 80, "S"))}
	ack := pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: tcp, l4: l4(tcp4(40000, 80, "PA")), payload: []byte("GET / HTTP/1.0\r\n\r\n")}
	// DR changes the MACs and forwards (TTL decremented).
	dr := func(p pkt) pkt { p.src, p.dst, p.ttl = intMAC, rsMAC, p.ttl-1; return p }
	natIn := func(p pkt, l pkt) pkt {
		p.src, p.dst, p.dip, p.ttl = intMAC, rsMAC, fxRS, p.ttl-1
		p.l4 = l.l4
		return p
	}
	tunIn := func(p pkt) []byte {
		p.ttl--
		return tunnelled(tb, p.ttl, ipOnly(p.build(tb)))
	}
	// The NAT real server's replies and what the client receives.
	synack := pkt{src: rsMAC, dst: intMAC, sip: fxRS, dip: fxClient, ttl: 64, df: true, proto: tcp, l4: l4(tcp4(8080, 40000, "SA"))}
	synackOut := pkt{src: extMAC, dst: clientMAC, sip: fxVIP, dip: fxClient, ttl: 63, df: true, proto: tcp, l4: l4(tcp4(80, 40000, "SA"))}

	// ICMP errors. From the client side, about a reply (VIP:80 → client):
	// NAT sends it to the real server with the quote's source translated.
	fragIn := pkt{src: clientMAC, dst: extMAC, sip: fxExtRtr, dip: fxVIP, ttl: 64, df: true, proto: layers.IPProtocolICMPv4,
		l4: l4(icmpErr(3, 4, 1400)), payload: quote(tb, fxVIP, fxClient, 80, 40000, 63)}
	fragInNAT := pkt{src: intMAC, dst: rsMAC, sip: fxExtRtr, dip: fxRS, ttl: 63, df: true, proto: layers.IPProtocolICMPv4,
		l4: l4(icmpErr(3, 4, 1400)), payload: quote(tb, fxRS, fxClient, 8080, 40000, 63)}
	// From the real-server side, about a request (client → RS:8080): the
	// client gets it from the VIP, quoting the packet it sent.
	fragOut := pkt{src: routerMAC, dst: intMAC, sip: fxRouter, dip: fxClient, ttl: 64, df: true, proto: layers.IPProtocolICMPv4,
		l4: l4(icmpErr(3, 4, 1300)), payload: quote(tb, fxClient, fxRS, 40000, 8080, 63)}
	fragOutNAT := pkt{src: extMAC, dst: clientMAC, sip: fxVIP, dip: fxClient, ttl: 63, df: true, proto: layers.IPProtocolICMPv4,
		l4: l4(icmpErr(3, 4, 1300)), payload: quote(tb, fxClient, fxVIP, 40000, 80, 63)}
	// TTL 1 at the director: time exceeded back to the client from the
	// VIP, quoting the header and 8 bytes, precedence "internetwork
	// control" (TOS 0xc0) as icmp_send sets it.
	ttl1 := ack
	ttl1.ttl = 1
	ttl1Frame := ttl1.build(tb)
	timeExceeded := pkt{src: extMAC, dst: clientMAC, sip: fxVIP, dip: fxClient, ttl: 64, tos: 0xc0, id: 1, proto: layers.IPProtocolICMPv4,
		l4: l4(icmpErr(11, 0, 0)), payload: ipOnly(ttl1Frame)[:28]}
	rst := pkt{src: extMAC, dst: clientMAC, sip: fxVIP, dip: fxClient, ttl: 64, df: true, proto: tcp,
		l4: l4(&layers.TCP{SrcPort: 23, DstPort: 40001, Ack: 1001, RST: true, ACK: true})}

	natAck := ack
	natAck.l4 = l4(tcp4(40000, 8080, "PA"))
	natSyn := syn
	natSyn.l4 = l4(tcp4(40000, 8080, "S"))

	udpReq := pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, proto: layers.IPProtocolUDP, l4: l4(udp4(5353, 53)), payload: []byte("query")}
	udpNAT := pkt{src: intMAC, dst: rsMAC, sip: fxClient, dip: fxRS, ttl: 63, proto: layers.IPProtocolUDP, l4: l4(udp4(5353, 5300)), payload: []byte("query")}
	udpRep := pkt{src: rsMAC, dst: intMAC, sip: fxRS, dip: fxClient, ttl: 64, proto: layers.IPProtocolUDP, l4: l4(udp4(5300, 5353)), payload: []byte("answer")}
	udpRepOut := pkt{src: extMAC, dst: clientMAC, sip: fxVIP, dip: fxClient, ttl: 63, proto: layers.IPProtocolUDP, l4: l4(udp4(53, 5353)), payload: []byte("answer")}

	// A TSO super-frame of three segments' payload (1440+1440+80 for the
	// tunnel's 1480-byte path) and the segments tcp_gso_segment makes.
	big := make([]byte, 2960)
	for i := range big {
		big[i] = byte(i)
	}
	superFrame := pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: tcp, l4: l4(tcp4(40000, 80, "PA")), payload: big}
	seg := func(i, off, n int, last bool) []byte {
		t := tcp4(40000, 80, "A")
		t.Seq += uint32(off)
		t.PSH = last
		p := superFrame
		p.id, p.ttl, p.l4, p.payload = uint16(i), 63, l4(t), big[off:off+n]
		return tunnelled(tb, 63, ipOnly(p.build(tb)))
	}
	unresolved := func() []byte {
		p := natIn(syn, natSyn)
		p.dip, p.dst = "172.16.0.3", rs2MAC
		return p.build(tb)
	}()

	// FULLNAT: the real server sees local address → RS both ways; the
	// client sees only the VIP. Two local addresses, taken in turn. The
	// client's sequence numbers are remapped toward the real server (and
	// its acknowledgements back); the SYN and the first ACK carry the TOA,
	// the real server's SYN-ACK offers an MSS 8 lower.
	fnat := func(p pkt, sip string, sport uint16, flags string, toa bool) pkt {
		p.src, p.dst, p.sip, p.dip, p.ttl = intMAC, rsMAC, sip, fxRS, p.ttl-1
		t := tcp4(sport, 8080, flags)
		t.Seq += fxDelta(sip, sport)
		if toa {
			cport := uint16(40000)
			if strings.HasSuffix(sip, ".11") {
				cport = 40001
			}
			t.Options = []layers.TCPOption{{OptionType: rewrite.TCPOptTOA, OptionLength: 8,
				OptionData: []byte{byte(cport >> 8), byte(cport), 10, 0, 0, 2}}}
		}
		p.l4 = l4(t)
		return p
	}
	withMSS := func(t *layers.TCP, mss uint16) *layers.TCP {
		t.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{byte(mss >> 8), byte(mss)}}}
		return t
	}
	// The real server's ISN is 1999: the client's data below (ack 2000)
	// is its first ACK.
	rsSA := tcp4(8080, 5000, "SA")
	rsSA.Seq = 1999
	rsSA.Ack = 1001 + fxDelta("172.16.0.10", 5000)
	fnatSynack := pkt{src: rsMAC, dst: intMAC, sip: fxRS, dip: "172.16.0.10", ttl: 64, df: true, proto: tcp, l4: l4(withMSS(rsSA, 1460))}
	clientSA := tcp4(80, 40000, "SA")
	clientSA.Seq, clientSA.Ack = 1999, 1001
	fnatSynackOut := pkt{src: extMAC, dst: clientMAC, sip: fxVIP, dip: fxClient, ttl: 63, df: true, proto: tcp, l4: l4(withMSS(clientSA, 1452))}
	syn2 := syn
	syn2.l4 = l4(tcp4(40001, 80, "S"))
	fnatFragIn := pkt{src: intMAC, dst: rsMAC, sip: "172.16.0.10", dip: fxRS, ttl: 63, df: true, proto: layers.IPProtocolICMPv4,
		l4: l4(icmpErr(3, 4, 1400)), payload: quote(tb, fxRS, "172.16.0.10", 8080, 5000, 63)}
	fnatFragOut := pkt{src: routerMAC, dst: intMAC, sip: fxRouter, dip: "172.16.0.10", ttl: 64, df: true, proto: layers.IPProtocolICMPv4,
		l4: l4(icmpErr(3, 4, 1300)), payload: quote(tb, "172.16.0.10", fxRS, 5000, 8080, 63)}

	markSyn := syn
	markSyn.dip = fxMarkIP
	markAck := ack
	markAck.dip = fxMarkIP

	return []fixture{{
		name:  "DR",
		rules: []string{"-A -t 10.0.0.100:80 -s rr", "-a -t 10.0.0.100:80 -r 172.16.0.2:80 -g"},
		steps: []fxStep{
			{name: "SYN", frame: syn.build(tb), int: [][]byte{dr(syn).build(tb)}},
			{name: "data", frame: ack.build(tb), int: [][]byte{dr(ack).build(tb)}},
			// DR relays the error unchanged, but for the MACs.
			{name: "ICMP from client side", frame: fragIn.build(tb), int: [][]byte{dr(fragIn).build(tb)}},
			// A DR real server answers the client directly: a reply that
			// reaches the director is not its business.
			{name: "reply through director", fromInt: true, frame: synack.build(tb)},
			{name: "other port", frame: pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: tcp,
				l4: l4(tcp4(40001, 23, "S"))}.build(tb), ext: [][]byte{rst.build(tb)}},
		},
		counters: map[string]uint64{"rx_frames": 5, "tx_frames": 4, "rx_not_ours": 1, "drop_no_service": 1, "tx_resets": 1,
			"conns": 1, "conns_created": 1},
	}, {
		name:  "NAT",
		rules: []string{"-A -t 10.0.0.100:80 -s rr", "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 -m"},
		steps: []fxStep{
			{name: "SYN", frame: syn.build(tb), int: [][]byte{natIn(syn, natSyn).build(tb)}},
			{name: "SYN-ACK", fromInt: true, frame: synack.build(tb), ext: [][]byte{synackOut.build(tb)}},
			{name: "data", frame: ack.build(tb), int: [][]byte{natIn(ack, natAck).build(tb)}},
			{name: "ICMP in", frame: fragIn.build(tb), int: [][]byte{fragInNAT.build(tb)}},
			{name: "ICMP out", fromInt: true, frame: fragOut.build(tb), ext: [][]byte{fragOutNAT.build(tb)}},
			{name: "TTL 1", frame: ttl1Frame, ext: [][]byte{timeExceeded.build(tb)}},
			{name: "not SYN, no conn", frame: pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: tcp,
				l4: l4(tcp4(40009, 80, "A"))}.build(tb), ext: [][]byte{pkt{src: extMAC, dst: clientMAC, sip: fxVIP, dip: fxClient, ttl: 64, df: true, proto: tcp,
				l4: l4(&layers.TCP{SrcPort: 80, DstPort: 40009, Seq: 2000, RST: true})}.build(tb)}},
		},
		counters: map[string]uint64{"rx_frames": 7, "tx_frames": 7, "drop_ttl_expired": 1, "drop_not_syn": 1, "tx_resets": 1,
			"conns": 1, "conns_created": 1},
	}, {
		name:  "NAT UDP",
		rules: []string{"-A -u 10.0.0.100:53 -s rr", "-a -u 10.0.0.100:53 -r 172.16.0.2:5300 -m"},
		steps: []fxStep{
			{name: "request", frame: udpReq.build(tb), int: [][]byte{udpNAT.build(tb)}},
			{name: "answer", fromInt: true, frame: udpRep.build(tb), ext: [][]byte{udpRepOut.build(tb)}},
		},
		counters: map[string]uint64{"rx_frames": 2, "tx_frames": 2, "conns": 1, "conns_created": 1},
	}, {
		name:  "TUN",
		rules: []string{"-A -t 10.0.0.100:80 -s rr", "-a -t 10.0.0.100:80 -r 172.16.0.2:80 -i"},
		steps: []fxStep{
			{name: "SYN", frame: syn.build(tb), int: [][]byte{tunIn(syn)}},
			{name: "data", frame: ack.build(tb), int: [][]byte{tunIn(ack)}},
			// The ICMP error is relayed encapsulated, its TTL decremented.
			{name: "ICMP from client side", frame: fragIn.build(tb), int: [][]byte{tunIn(fragIn)}},
			{name: "reply through director", fromInt: true, frame: synack.build(tb)},
		},
		counters: map[string]uint64{"rx_frames": 4, "tx_frames": 3, "rx_not_ours": 1, "conns": 1, "conns_created": 1},
	}, {
		name:  "TUN GSO",
		rules: []string{"-A -t 10.0.0.100:80 -s rr", "-a -t 10.0.0.100:80 -r 172.16.0.2:80 -i"},
		steps: []fxStep{
			{name: "SYN", frame: syn.build(tb), int: [][]byte{tunIn(syn)}},
			{name: "super-frame", gso: true, frame: superFrame.build(tb), int: [][]byte{seg(0, 0, 1440, false), seg(1, 1440, 1440, false), seg(2, 2880, 80, true)}},
		},
		counters: map[string]uint64{"rx_frames": 2, "rx_gso_segments": 3, "tx_frames": 4, "conns": 1, "conns_created": 1},
	}, {
		// The next hop is unknown: the packet waits for ARP, complete but
		// for its MACs, and leaves when the answer comes.
		name:  "NAT unresolved neighbour",
		rules: []string{"-A -t 10.0.0.100:80 -s rr", "-a -t 10.0.0.100:80 -r 172.16.0.3:8080 -m"},
		steps: []fxStep{
			{name: "SYN", frame: syn.build(tb), int: [][]byte{fxARP(tb, layers.ARPRequest, intMAC, rewrite.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, intMAC, rewrite.MAC{}, fxDirInt, "172.16.0.3")}},
			{name: "ARP reply", fromInt: true, frame: fxARP(tb, layers.ARPReply, rs2MAC, intMAC, rs2MAC, intMAC, "172.16.0.3", fxDirInt), int: [][]byte{unresolved}},
		},
		counters: map[string]uint64{"rx_frames": 2, "tx_frames": 2, "conns": 1, "conns_created": 1},
	}, {
		name:  "FULLNAT",
		rules: []string{"-A -t 10.0.0.100:80 -s rr", "laddr 172.16.0.10 172.16.0.11", "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 --fullnat"},
		steps: []fxStep{
			{name: "SYN", frame: syn.build(tb), int: [][]byte{fnat(syn, "172.16.0.10", 5000, "S", true).build(tb)}},
			{name: "SYN-ACK", fromInt: true, frame: fnatSynack.build(tb), ext: [][]byte{fnatSynackOut.build(tb)}},
			{name: "data", frame: ack.build(tb), int: [][]byte{fnat(ack, "172.16.0.10", 5000, "PA", true).build(tb)}},
			{name: "second connection", frame: syn2.build(tb), int: [][]byte{fnat(syn2, "172.16.0.11", 5000, "S", true).build(tb)}},
			{name: "ICMP in", frame: fragIn.build(tb), int: [][]byte{fnatFragIn.build(tb)}},
			{name: "ICMP out", fromInt: true, frame: fnatFragOut.build(tb), ext: [][]byte{fragOutNAT.build(tb)}},
		},
		counters: map[string]uint64{"rx_frames": 6, "tx_frames": 6, "conns": 2, "conns_created": 2,
			"fullnat_add_toa_ok": 3, "fullnat_mss_reduced": 1},
	}, {
		name:  "LOCALNODE",
		local: []string{fxDirInt},
		rules: []string{"-A -t 10.0.0.100:80 -s rr", "-a -t 10.0.0.100:80 -r 172.16.0.1:80 -g"},
		steps: []fxStep{
			{name: "SYN", frame: syn.build(tb), local: [][]byte{func() []byte {
				p := syn
				p.dst = (&fxLocal{}).MAC()
				return p.build(tb)
			}()}},
		},
		counters: map[string]uint64{"rx_frames": 1, "tx_local_delivered": 1, "conns": 1, "conns_created": 1},
	}, {
		name:  "fwmark",
		marks: []string{"mark=3,proto=tcp,dst=10.0.0.50,dport=80"},
		rules: []string{"-A -f 3 -s rr", "-a -f 3 -r 172.16.0.2 -g"},
		steps: []fxStep{
			{name: "SYN", frame: markSyn.build(tb), int: [][]byte{dr(markSyn).build(tb)}},
			{name: "data", frame: markAck.build(tb), int: [][]byte{dr(markAck).build(tb)}},
			// Port 81 is not classified: the address is not a VIP.
			{name: "unmarked", frame: pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxMarkIP, ttl: 64, df: true, proto: tcp,
				l4: l4(tcp4(40000, 81, "S"))}.build(tb)},
		},
		counters: map[string]uint64{"rx_frames": 3, "tx_frames": 2, "rx_not_ours": 1, "conns": 1, "conns_created": 1},
	}}
}

func TestEngineFixtures(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.name, fx.run)
	}
}

// TestFullNATLocalPorts: ports come from lport_min up, unique per local
// address; an exhausted address drops the connection (counted); a port
// comes back when its connection expires, to the back of the queue.
func TestFullNATLocalPorts(t *testing.T) {
	var r portRing
	first, _ := r.get()
	second, _ := r.get()
	if first != lportMin || second != lportMin+1 {
		t.Fatalf("first ports %d, %d, want %d, %d", first, second, lportMin, lportMin+1)
	}
	for {
		if _, ok := r.get(); !ok {
			break
		}
	}
	r.put(first)
	if p, ok := r.get(); !ok || p != first {
		t.Fatalf("after release got %d %v, want %d", p, ok, first)
	}

	fe := newFxEngine(t, []string{"-A -t 10.0.0.100:80 -s rr", "laddr 172.16.0.10", "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 --fullnat"}, nil, nil)
	l := fe.laddrs[[4]byte{172, 16, 0, 10}]
	for range lportMax - lportMin {
		l.tcp.get() // all but one port in use elsewhere
	}
	syn := func(port uint16) []byte {
		return pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: layers.IPProtocolTCP,
			l4: []gopacket.SerializableLayer{tcp4(port, 80, "S")}}.build(t)
	}
	fe.feed(fe.ext, syn(40000), false)
	fe.feed(fe.ext, syn(40001), false)
	if got := len(fe.drain(t, fe.intW)); got != 1 {
		t.Fatalf("%d SYNs forwarded with one free port, want 1", got)
	}
	if ev, _ := fe.Counters(); ev["drop_fullnat_no_local_port"] != 1 {
		t.Errorf("drop_fullnat_no_local_port = %d, want 1", ev["drop_fullnat_no_local_port"])
	}
	// The first connection expires (SYN_RECV timeout): its port is free.
	fe.clock += int64(10 * time.Minute)
	fe.conns.Expire(fe.clock)
	if l.tcp.count != 1 {
		t.Fatalf("%d free ports after expiry, want 1", l.tcp.count)
	}
	fe.feed(fe.ext, syn(40002), false)
	if got := len(fe.drain(t, fe.intW)); got != 1 {
		t.Fatalf("%d SYNs forwarded after the port came back, want 1", got)
	}
}

func TestFullNATNoAllocsPerPacket(t *testing.T) {
	fe := newFxEngine(t, []string{"-A -t 10.0.0.100:80 -s rr", "laddr 172.16.0.10", "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 --fullnat"}, nil, nil)
	frames := fnatFrames(t)
	fe.feed(fe.ext, frames.syn, false)
	// The MemPort's queue would fill: count allocations of the engine only.
	fe.int.Port, fe.ext.Port = &nullPort{}, &nullPort{}
	for _, c := range []struct {
		name  string
		in    *Iface
		frame []byte
	}{
		{"client data (sequence remap)", fe.ext, frames.data},
		{"retransmitted SYN (timestamps removed, TOA added)", fe.ext, frames.syn},
		{"real server's SYN/ACK (MSS less 8)", fe.int, frames.synack},
		{"real server's data with SACK (remap of ack and edges)", fe.int, frames.sack},
	} {
		if n := testing.AllocsPerRun(1000, func() { fe.feedRaw(c.in, c.frame) }); n != 0 {
			t.Errorf("%s: %.1f allocations per packet", c.name, n)
		}
	}
}

// feedRaw hands frame to the engine as a received slot and flushes, without
// reading anything back.
func (fe *fxEngine) feedRaw(in *Iface, frame []byte) {
	w := fe.w
	n := copy(w.slots[0][headroom:], frame)
	w.rx[0] = capture.Frame{Buf: w.slots[0][headroom:], N: n, Len: n}
	fe.handle(w, in, 0, fe.clock)
	fe.flush(w)
}

type fnatFrameSet struct{ syn, data, synack, sack []byte }

// fnatFrames are a FULLNAT connection's packets in both directions, with
// the options that give the TCP side work: a Linux SYN (MSS, SACK,
// timestamps, window scale), the real server's SYN/ACK and its data with
// two SACK blocks.
func fnatFrames(tb testing.TB) fnatFrameSet {
	syn := tcp4(40000, 80, "S")
	syn.Options = []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 1, 0, 0, 0, 0, 0}},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}
	client := func(t *layers.TCP, payload int) []byte {
		return pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: layers.IPProtocolTCP,
			l4: []gopacket.SerializableLayer{t}, payload: make([]byte, payload)}.build(tb)
	}
	rs := func(t *layers.TCP, payload int) []byte {
		return pkt{src: rsMAC, dst: intMAC, sip: fxRS, dip: "172.16.0.10", ttl: 64, df: true, proto: layers.IPProtocolTCP,
			l4: []gopacket.SerializableLayer{t}, payload: make([]byte, payload)}.build(tb)
	}
	sa := tcp4(8080, 5000, "SA")
	sa.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}
	sack := tcp4(8080, 5000, "A")
	sack.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindSACK, OptionLength: 18, OptionData: make([]byte, 16)}}
	return fnatFrameSet{syn: client(syn, 0), data: client(tcp4(40000, 80, "PA"), 32), synack: rs(sa, 0), sack: rs(sack, 100)}
}

// BenchmarkFullNAT is the per-packet cost of FULLNAT's TCP paths (run with
// make bench; -benchtime=100x checks it runs).
func BenchmarkFullNAT(b *testing.B) {
	fe := newFxEngine(b, []string{"-A -t 10.0.0.100:80 -s rr", "laddr 172.16.0.10", "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 --fullnat"}, nil, nil)
	frames := fnatFrames(b)
	fe.feed(fe.ext, frames.syn, false)
	fe.int.Port, fe.ext.Port = &nullPort{}, &nullPort{}
	for _, c := range []struct {
		name  string
		in    *Iface
		frame []byte
	}{
		{"in", fe.ext, frames.data},
		{"in-SYN-TOA", fe.ext, frames.syn},
		{"out", fe.int, frames.sack},
		{"out-SYNACK", fe.int, frames.synack},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				fe.feedRaw(c.in, c.frame)
			}
		})
	}
}
