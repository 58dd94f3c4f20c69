package report

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	segcap "lvslab/sim/capture"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
)

// Seed 003's LVS-DR example on one segment: client, director, two real
// servers with the VIP on lo.
const drSpec = `
name: walk-dr
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  client:
    role: client
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.10/24, mac: "02:00:00:00:00:0a"}]
  director:
    role: director
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.2/24, mac: "02:00:00:00:00:02"}]
    director:
      rules:
        - -A -t 10.0.0.100:80 -s rr
        - -a -t 10.0.0.100:80 -r 10.0.0.11:80 -g
        - -a -t 10.0.0.100:80 -r 10.0.0.12:80 -g
  rs[1..2]:
    role: realserver
    interfaces: [{name: eth0, segment: lan, addresses: "10.0.0.1{{i}}/24", mac: "02:00:00:00:00:1{{i}}"}]
    realserver: {mode: dr}
    services: [{kind: http-echo, listen: ":80"}]
traffic:
  - {name: web, from: client, kind: http, target: "http://10.0.0.100/"}
report: {walk: {traffic: web}}
`

// VS/NAT as in seed 000: the client on one segment, the real server behind
// the director on another.
const natSpec = `
name: walk-nat
segments:
  wan: {subnets: 203.0.113.0/24}
  lan: {subnets: 172.16.0.0/24}
nodes:
  client:
    role: client
    interfaces: [{name: eth0, segment: wan, addresses: 203.0.113.10/24, mac: "02:00:00:00:01:0a"}]
  director:
    role: director
    interfaces:
      - {name: eth0, segment: wan, addresses: 203.0.113.2/24, mac: "02:00:00:00:01:02"}
      - {name: eth1, segment: lan, addresses: 172.16.0.1/24, mac: "02:00:00:00:02:01"}
    director:
      rules:
        - -A -t 203.0.113.5:80 -s rr
        - -a -t 203.0.113.5:80 -r 172.16.0.2:8000 -m
  rs1:
    role: realserver
    interfaces: [{name: eth0, segment: lan, addresses: 172.16.0.2/24, mac: "02:00:00:00:02:02"}]
    realserver: {mode: nat}
    services: [{kind: http-echo, listen: ":8000"}]
traffic:
  - {name: web, from: client, kind: http, target: "http://203.0.113.5/"}
report: {walk: {traffic: web}}
`

func parse(t *testing.T, src string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse([]byte(src), "walk.yaml", spec.Options{})
	require.NoError(t, err)
	return s
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// frame describes one synthetic frame.
type frame struct {
	at       time.Duration
	src, dst string // MACs
	outer    [2]string
	ipSrc    string
	ipDst    string
	ttl      uint8
	sport    uint16
	dport    uint16
	flags    string // S, SA, A, PA
	seq, ack uint32
	payload  string
	arp      *[2]string // sender IP, target IP (a reply from src)
}

func (f frame) bytes(t *testing.T) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: mustMAC(f.src), DstMAC: mustMAC(f.dst), EthernetType: layers.EthernetTypeIPv4}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	buf := gopacket.NewSerializeBuffer()
	if f.arp != nil {
		eth.EthernetType = layers.EthernetTypeARP
		arp := &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPReply, SourceHwAddress: mustMAC(f.src), SourceProtAddress: net.ParseIP(f.arp[0]).To4(),
			DstHwAddress: mustMAC(f.dst), DstProtAddress: net.ParseIP(f.arp[1]).To4(),
		}
		require.NoError(t, gopacket.SerializeLayers(buf, opts, eth, arp))
		return buf.Bytes()
	}
	ttl := f.ttl
	if ttl == 0 {
		ttl = 64
	}
	ip := &layers.IPv4{Version: 4, TTL: ttl, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(f.ipSrc).To4(), DstIP: net.ParseIP(f.ipDst).To4(), Id: 7, Flags: layers.IPv4DontFragment}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.dport), Seq: f.seq, Ack: f.ack, Window: 64240,
		SYN: strings.Contains(f.flags, "S"), ACK: strings.Contains(f.flags, "A"), PSH: strings.Contains(f.flags, "P"), FIN: strings.Contains(f.flags, "F"), RST: strings.Contains(f.flags, "R")}
	require.NoError(t, tcp.SetNetworkLayerForChecksum(ip))
	ls := []gopacket.SerializableLayer{eth}
	if f.outer[0] != "" {
		ls = append(ls, &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolIPv4, SrcIP: net.ParseIP(f.outer[0]).To4(), DstIP: net.ParseIP(f.outer[1]).To4()})
	}
	ls = append(ls, ip, tcp, gopacket.Payload(f.payload))
	require.NoError(t, gopacket.SerializeLayers(buf, opts, ls...))
	return buf.Bytes()
}

// writePcapng writes frames as a segment capture of dir, as the capture
// stage would.
func writePcapng(t *testing.T, dir, seg string, base time.Time, frames []frame) {
	t.Helper()
	path := segcap.SegmentFile(dir, seg)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	w, err := pcapgo.NewNgWriterInterface(f, pcapgo.NgInterface{Name: seg, LinkType: layers.LinkTypeEthernet, SnapLength: 256}, pcapgo.DefaultNgWriterOptions)
	require.NoError(t, err)
	for _, fr := range frames {
		b := fr.bytes(t)
		require.NoError(t, w.WritePacket(gopacket.CaptureInfo{Timestamp: base.Add(fr.at), CaptureLength: len(b), Length: len(b)}, b))
	}
	require.NoError(t, w.Flush())
}

const (
	macClient = "02:00:00:00:00:0a"
	macDir    = "02:00:00:00:00:02"
	macRS1    = "02:00:00:00:00:11"
	macRS2    = "02:00:00:00:00:12"
	ms        = time.Millisecond
)

// drFrames: request 1 (port 40000) goes to rs1, request 2 (port 40001) to
// rs2; every reply goes straight from the real server to the client.
func drFrames() []frame {
	syn := func(at time.Duration, src, dst string, port uint16, seq uint32) frame {
		return frame{at: at, src: src, dst: dst, ipSrc: "10.0.0.10", ipDst: "10.0.0.100", sport: port, dport: 80, flags: "S", seq: seq}
	}
	synack := func(at time.Duration, src string, port uint16, seq, ack uint32) frame {
		return frame{at: at, src: src, dst: macClient, ipSrc: "10.0.0.100", ipDst: "10.0.0.10", sport: 80, dport: port, flags: "SA", seq: seq, ack: ack}
	}
	return []frame{
		{at: 0, src: macDir, dst: macClient, arp: &[2]string{"10.0.0.100", "10.0.0.10"}},
		syn(1*ms, macClient, macDir, 40000, 1000),
		{at: 1100 * time.Microsecond, src: macRS1, dst: macDir, arp: &[2]string{"10.0.0.11", "10.0.0.2"}},
		syn(1200*time.Microsecond, macDir, macRS1, 40000, 1000),
		synack(1500*time.Microsecond, macRS1, 40000, 5000, 1001),
		{at: 1600 * time.Microsecond, src: macClient, dst: macDir, ipSrc: "10.0.0.10", ipDst: "10.0.0.100", sport: 40000, dport: 80, flags: "A", seq: 1001, ack: 5001},
		{at: 1700 * time.Microsecond, src: macDir, dst: macRS1, ipSrc: "10.0.0.10", ipDst: "10.0.0.100", sport: 40000, dport: 80, flags: "A", seq: 1001, ack: 5001},
		syn(50*ms, macClient, macDir, 40001, 9000),
		syn(50*ms+200*time.Microsecond, macDir, macRS2, 40001, 9000),
		synack(50*ms+500*time.Microsecond, macRS2, 40001, 7000, 9001),
	}
}

func TestWalkDR(t *testing.T) {
	s := parse(t, drSpec)
	dir := t.TempDir()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	writePcapng(t, dir, "lan", base, drFrames())

	recs := []Record{
		{Request: runner.Request{Seq: 1, Backend: "rs1", Local: netip.MustParseAddrPort("10.0.0.10:40000"), Remote: netip.MustParseAddrPort("10.0.0.100:80")}, Start: base.Add(ms)},
		{Request: runner.Request{Seq: 2, Backend: "rs2", Local: netip.MustParseAddrPort("10.0.0.10:40001"), Remote: netip.MustParseAddrPort("10.0.0.100:80")}, Start: base.Add(50 * ms)},
	}
	q, err := QueryFor(s, "web", 1, recs)
	require.NoError(t, err)
	w, err := Trace(dir, s, q)
	require.NoError(t, err)

	require.Len(t, w.Request, 2)
	require.Len(t, w.Reply, 1)
	assert.Equal(t, "DR", w.Mode)
	h1, h2, h3 := w.Request[0], w.Request[1], w.Reply[0]
	assert.Equal(t, []string{"client:eth0", "director:eth0"}, []string{h1.SrcName, h1.DstName})
	assert.Equal(t, []string{"director:eth0", "rs1:eth0"}, []string{h2.SrcName, h2.DstName})
	assert.Equal(t, []string{"rs1:eth0", "client:eth0"}, []string{h3.SrcName, h3.DstName})
	// The director changed the MACs only: the IP destination is still the VIP.
	for _, h := range []Hop{h1, h2} {
		assert.Equal(t, "10.0.0.100", h.IP.Dst.String())
		assert.Equal(t, uint16(80), h.DstPort)
		assert.Equal(t, "[SYN]", h.Flags)
	}
	assert.Equal(t, []string{"source MAC client:eth0 → director:eth0", "destination MAC director:eth0 → rs1:eth0"}, h2.Changed)
	assert.Equal(t, "10.0.0.100", h3.IP.Src.String())
	assert.Equal(t, "[SYN, ACK]", h3.Flags)
	assert.Equal(t, 200*time.Microsecond, h2.Since)
	assert.Contains(t, h1.ARP, "10.0.0.100 is-at 02:00:00:00:00:02 (director:eth0)")
	assert.Contains(t, h2.ARP, "10.0.0.11 is-at 02:00:00:00:00:11 (rs1:eth0)")
	assert.Equal(t, 2, h1.Frame)
	assert.Equal(t, "pcap/lan.pcapng", h1.File)

	ok := func(sub string) {
		t.Helper()
		for _, f := range w.Findings {
			if strings.Contains(f.Text, sub) {
				assert.True(t, f.OK, f.Text)
				return
			}
		}
		t.Errorf("no finding %q in %+v", sub, w.Findings)
	}
	ok("rewriting only the MAC addresses (LVS-DR)")
	ok("rs1 received the frame addressed to its own MAC (rs1:eth0) while the IP destination stayed the VIP 10.0.0.100")
	ok("the reply bypassed the director")
	ok("the reply left rs1 (the one the request went to)")
	for _, f := range w.Findings {
		assert.True(t, f.OK, f.Text)
	}
	// The conversation: SYN twice, SYN-ACK, ACK twice; not the other flow.
	assert.Len(t, w.Conversation, 5)

	var out bytes.Buffer
	require.NoError(t, w.WriteText(&out))
	text := out.String()
	t.Log("\n" + text)
	for _, want := range []string{
		"Walk of request 1 of traffic web (http): 10.0.0.10:40000 → 10.0.0.100:80",
		"① +0.000000s  segment lan  (frame 2 of pcap/lan.pcapng)",
		"   Ethernet    02:00:00:00:00:0a (client:eth0) → 02:00:00:00:00:02 (director:eth0)",
		"   IPv4        10.0.0.10 → 10.0.0.100  TTL 64",
		"   TCP         40000 → 80  [SYN]  seq 1000  len 0",
		"② +0.000200s  segment lan",
		"   Ethernet    02:00:00:00:00:02 (director:eth0) → 02:00:00:00:00:11 (rs1:eth0)",
		"③ +0.000500s  segment lan",
		"   Ethernet    02:00:00:00:00:11 (rs1:eth0) → 02:00:00:00:00:0a (client:eth0)",
		"   TCP         80 → 40000  [SYN, ACK]  seq 5000  ack 1001  len 0",
		"Forwarding: LVS-DR",
		"✔ the reply bypassed the director",
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "④")

	// Request 2 went to rs2.
	q2, err := QueryFor(s, "web", 2, recs)
	require.NoError(t, err)
	w2, err := Trace(dir, s, q2)
	require.NoError(t, err)
	assert.Equal(t, "rs2:eth0", w2.Request[len(w2.Request)-1].DstName)
	assert.Equal(t, "rs2:eth0", w2.Reply[0].SrcName)

	// Without records: the second new flow from the client is request 2.
	q3, err := QueryFor(s, "web", 2, nil)
	require.NoError(t, err)
	w3, err := Trace(dir, s, q3)
	require.NoError(t, err)
	assert.Equal(t, uint16(40001), w3.Request[0].SrcPort)
	assert.Contains(t, w3.Matched, "new flow number 2")

	// A later request over the same (kept-alive) connection: the walk
	// shows the connection's opening and says so.
	q5 := q
	q5.At = base.Add(2 * time.Second)
	w5, err := Trace(dir, s, q5)
	require.NoError(t, err)
	assert.Equal(t, uint16(40000), w5.Request[0].SrcPort)
	assert.Contains(t, w5.Matched, "used a connection opened 1.999s before it")

	// A request the captures do not show.
	q4, err := QueryFor(s, "web", 3, nil)
	require.NoError(t, err)
	_, err = Trace(dir, s, q4)
	assert.ErrorIs(t, err, ErrNotFound)
}

// TestWalkDRReplyThroughDirector: a misconfigured real server whose reply
// goes back via the director must not pass the DR check.
func TestWalkDRReplyThroughDirector(t *testing.T) {
	s := parse(t, drSpec)
	dir := t.TempDir()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fr := drFrames()[:4]
	fr = append(fr,
		frame{at: 1500 * time.Microsecond, src: macRS1, dst: macDir, ipSrc: "10.0.0.100", ipDst: "10.0.0.10", sport: 80, dport: 40000, flags: "SA", seq: 5000, ack: 1001},
		frame{at: 1800 * time.Microsecond, src: macDir, dst: macClient, ipSrc: "10.0.0.100", ipDst: "10.0.0.10", sport: 80, dport: 40000, flags: "SA", seq: 5000, ack: 1001},
	)
	writePcapng(t, dir, "lan", base, fr)
	q, err := QueryFor(s, "web", 1, nil)
	require.NoError(t, err)
	w, err := Trace(dir, s, q)
	require.NoError(t, err)
	require.Len(t, w.Reply, 2)
	var bad []string
	for _, f := range w.Findings {
		if !f.OK {
			bad = append(bad, f.Text)
		}
	}
	require.Len(t, bad, 1, "%+v", w.Findings)
	assert.Contains(t, bad[0], "the reply passed a director at hop 3 (rs1:eth0 → director:eth0)")
}

func TestWalkNAT(t *testing.T) {
	s := parse(t, natSpec)
	dir := t.TempDir()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const (
		cMAC, d0MAC, d1MAC, rsMAC = "02:00:00:00:01:0a", "02:00:00:00:01:02", "02:00:00:00:02:01", "02:00:00:00:02:02"
	)
	writePcapng(t, dir, "wan", base, []frame{
		{at: 1 * ms, src: cMAC, dst: d0MAC, ipSrc: "203.0.113.10", ipDst: "203.0.113.5", sport: 41000, dport: 80, flags: "S", seq: 111},
		{at: 2 * ms, src: d0MAC, dst: cMAC, ipSrc: "203.0.113.5", ipDst: "203.0.113.10", sport: 80, dport: 41000, flags: "SA", seq: 222, ack: 112},
		{at: 3 * ms, src: cMAC, dst: d0MAC, ipSrc: "203.0.113.10", ipDst: "203.0.113.5", sport: 41000, dport: 80, flags: "A", seq: 112, ack: 223},
	})
	writePcapng(t, dir, "lan", base, []frame{
		{at: 1300 * time.Microsecond, src: d1MAC, dst: rsMAC, ipSrc: "203.0.113.10", ipDst: "172.16.0.2", ttl: 63, sport: 41000, dport: 8000, flags: "S", seq: 111},
		{at: 1600 * time.Microsecond, src: rsMAC, dst: d1MAC, ipSrc: "172.16.0.2", ipDst: "203.0.113.10", sport: 8000, dport: 41000, flags: "SA", seq: 222, ack: 112},
		{at: 3300 * time.Microsecond, src: d1MAC, dst: rsMAC, ipSrc: "203.0.113.10", ipDst: "172.16.0.2", ttl: 63, sport: 41000, dport: 8000, flags: "A", seq: 112, ack: 223},
	})
	q, err := QueryFor(s, "web", 1, []Record{{Request: runner.Request{Seq: 1, Backend: "rs1", Local: netip.MustParseAddrPort("203.0.113.10:41000")}, Start: base}})
	require.NoError(t, err)
	w, err := Trace(dir, s, q)
	require.NoError(t, err)
	assert.Equal(t, "NAT", w.Mode)
	require.Len(t, w.Request, 2)
	require.Len(t, w.Reply, 2)
	assert.Equal(t, []string{"wan", "lan", "lan", "wan"}, []string{w.Request[0].Segment, w.Request[1].Segment, w.Reply[0].Segment, w.Reply[1].Segment})
	assert.Equal(t, "172.16.0.2", w.Request[1].IP.Dst.String())
	assert.Equal(t, uint16(8000), w.Request[1].DstPort)
	assert.Equal(t, []string{"segment wan → lan", "source MAC client:eth0 → director:eth1", "destination MAC director:eth0 → rs1:eth0",
		"destination 203.0.113.5:80 → 172.16.0.2:8000", "TTL 64 → 63"}, w.Request[1].Changed)
	assert.Equal(t, "director:eth0", w.Reply[1].SrcName)
	assert.Equal(t, "203.0.113.5", w.Reply[1].IP.Src.String())
	for _, f := range w.Findings {
		assert.True(t, f.OK, f.Text)
	}
	var out bytes.Buffer
	require.NoError(t, w.WriteText(&out))
	text := out.String()
	t.Log("\n" + text)
	for _, want := range []string{
		"① +0.000000s  segment wan",
		"② +0.000300s  segment lan",
		"   IPv4        203.0.113.10 → 172.16.0.2  TTL 63",
		"   TCP         41000 → 8000  [SYN]  seq 111  len 0",
		"③ +0.000600s  segment lan",
		"④ +0.001000s  segment wan",
		"   Ethernet    02:00:00:00:01:02 (director:eth0) → 02:00:00:00:01:0a (client:eth0)",
		"✔ director rewrote the destination 203.0.113.5:80 → 172.16.0.2:8000 (LVS-NAT)",
		"✔ the reply came back through director, which rewrote the source 172.16.0.2:8000 → 203.0.113.5:80",
	} {
		assert.Contains(t, text, want)
	}
	assert.Len(t, w.Conversation, 6)

	md := w.Markdown("#")
	assert.True(t, strings.HasPrefix(md, "# Hop-by-hop walk\n"))
	assert.Contains(t, md, "```text\nThe request, hop by hop:")
	assert.Contains(t, md, "- ✔ director rewrote the destination")
}

// TestWalkTUN: the director wraps the packet in IP-in-IP; the walk shows
// both headers and recognises the packet inside.
func TestWalkTUN(t *testing.T) {
	s := parse(t, strings.ReplaceAll(strings.ReplaceAll(drSpec, " -g", " -i"), "mode: dr", "mode: tun"))
	dir := t.TempDir()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	writePcapng(t, dir, "lan", base, []frame{
		{at: ms, src: macClient, dst: macDir, ipSrc: "10.0.0.10", ipDst: "10.0.0.100", sport: 40000, dport: 80, flags: "S", seq: 1000},
		{at: 2 * ms, src: macDir, dst: macRS2, outer: [2]string{"10.0.0.2", "10.0.0.12"}, ipSrc: "10.0.0.10", ipDst: "10.0.0.100", sport: 40000, dport: 80, flags: "S", seq: 1000},
		{at: 3 * ms, src: macRS2, dst: macClient, ipSrc: "10.0.0.100", ipDst: "10.0.0.10", sport: 80, dport: 40000, flags: "SA", seq: 3, ack: 1001},
	})
	q, err := QueryFor(s, "web", 1, nil)
	require.NoError(t, err)
	w, err := Trace(dir, s, q)
	require.NoError(t, err)
	assert.Equal(t, "TUN", w.Mode)
	require.Len(t, w.Request, 2)
	require.NotNil(t, w.Request[1].Outer)
	assert.Equal(t, "10.0.0.12", w.Request[1].Outer.Dst.String())
	for _, f := range w.Findings {
		assert.True(t, f.OK, f.Text)
	}
	var out bytes.Buffer
	require.NoError(t, w.WriteText(&out))
	t.Log("\n" + out.String())
	assert.Contains(t, out.String(), "   IPv4 outer  10.0.0.2 → 10.0.0.12  TTL 64  protocol 4 (IP-in-IP)\n   IPv4 inner  10.0.0.10 → 10.0.0.100  TTL 64\n")
	assert.Contains(t, out.String(), "encapsulated in IP-in-IP 10.0.0.2 → 10.0.0.12")
}

// TestWalkRefusedByDirector: a port without a virtual service; the
// director answers with a reset instead of forwarding.
func TestWalkRefusedByDirector(t *testing.T) {
	s := parse(t, drSpec)
	dir := t.TempDir()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	writePcapng(t, dir, "lan", base, []frame{
		{at: ms, src: macClient, dst: macDir, ipSrc: "10.0.0.10", ipDst: "10.0.0.100", sport: 40000, dport: 22, flags: "S", seq: 1000},
		{at: 2 * ms, src: macDir, dst: macClient, ipSrc: "10.0.0.100", ipDst: "10.0.0.10", sport: 22, dport: 40000, flags: "RA", ack: 1001},
	})
	q, err := QueryFor(s, "web", 1, nil)
	require.NoError(t, err)
	q.Remote = netip.MustParseAddrPort("10.0.0.100:22")
	w, err := Trace(dir, s, q)
	require.NoError(t, err)
	assert.Equal(t, "", w.Mode)
	require.Len(t, w.Reply, 1)
	assert.Equal(t, "[RST, ACK]", w.Reply[0].Flags)
	require.NotEmpty(t, w.Findings)
	assert.Equal(t, Finding{OK: true, Text: "director answered the request itself (it owns 10.0.0.100) instead of forwarding it"}, w.Findings[0])
}
