package rewrite_test

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

// The fixture topology, after the kernel's IPVS selftest, with public
// addresses moved into the documentation ranges.
const (
	macClient   = "02:00:00:00:00:01" // client, or the router toward it
	macDirector = "02:00:00:00:00:0d"
	macRS       = "02:00:00:00:00:02"

	addrClient = "203.0.113.7"
	addrVIP    = "192.0.2.10"
	addrDirOut = "192.0.2.1"    // director, client side
	addrLocal  = "172.16.0.1"   // director, server side: tunnel source and FULLNAT local address
	addrRS     = "172.16.0.2"   // real server
	addrRouter = "198.51.100.1" // a router on the client side

	portClient = 40000
	portVIP    = 80
	portLocal  = 5001
	portRS     = 8080
)

// Values for the package's API.
var (
	hwClient   = rewrite.MAC{2, 0, 0, 0, 0, 1}
	hwDirector = rewrite.MAC{2, 0, 0, 0, 0, 0x0d}
	hwRS       = rewrite.MAC{2, 0, 0, 0, 0, 2}
	apClient   = netip.MustParseAddrPort("203.0.113.7:40000")
	apVIP      = netip.MustParseAddrPort("192.0.2.10:80")
	apLocal    = netip.MustParseAddrPort("172.16.0.1:5001")
	apRS       = netip.MustParseAddrPort("172.16.0.2:8080")
)

// spec describes a frame for gopacket to build. Fixtures write the expected
// output as a copy of the input spec with the fields the transform should
// change, so both sides are built from scratch by gopacket.
type spec struct {
	srcMAC, dstMAC string
	vlan           uint16 // VLAN ID; 0 = untagged
	src, dst       string
	ttl, tos       uint8
	id             uint16
	df             bool
	ipOpts         []layers.IPv4Option
	proto          layers.IPProtocol

	sport, dport uint16
	seq, ack     uint32
	flags        string // TCP flags: S A F R P U
	win          uint16
	tcpOpts      []layers.TCPOption

	icmpType, icmpCode uint8
	icmpID, icmpSeq    uint16

	payload []byte
}

// l3 returns the IPv4 layer and what follows it.
func (s spec) l3() []gopacket.SerializableLayer {
	ip := &layers.IPv4{
		Version: 4, TOS: s.tos, Id: s.id, TTL: s.ttl, Protocol: s.proto,
		SrcIP: ip4(s.src), DstIP: ip4(s.dst), Options: s.ipOpts,
	}
	if s.df {
		ip.Flags = layers.IPv4DontFragment
	}
	ls := []gopacket.SerializableLayer{ip}
	switch s.proto {
	case layers.IPProtocolTCP:
		t := &layers.TCP{
			SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport),
			Seq: s.seq, Ack: s.ack, Window: s.win, Options: s.tcpOpts,
			SYN: strings.Contains(s.flags, "S"), ACK: strings.Contains(s.flags, "A"),
			FIN: strings.Contains(s.flags, "F"), RST: strings.Contains(s.flags, "R"),
			PSH: strings.Contains(s.flags, "P"), URG: strings.Contains(s.flags, "U"),
		}
		ls = append(ls, t)
	case layers.IPProtocolUDP:
		ls = append(ls, &layers.UDP{SrcPort: layers.UDPPort(s.sport), DstPort: layers.UDPPort(s.dport)})
	case layers.IPProtocolICMPv4:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(s.icmpType, s.icmpCode), Id: s.icmpID, Seq: s.icmpSeq})
	}
	if len(s.payload) > 0 {
		ls = append(ls, gopacket.Payload(s.payload))
	}
	return ls
}

// l2 returns the Ethernet header (and tag) for a payload of the given type.
func (s spec) l2(et layers.EthernetType) []gopacket.SerializableLayer {
	eth := &layers.Ethernet{SrcMAC: mac(s.srcMAC), DstMAC: mac(s.dstMAC), EthernetType: et}
	if s.vlan == 0 {
		return []gopacket.SerializableLayer{eth}
	}
	eth.EthernetType = layers.EthernetTypeDot1Q
	return []gopacket.SerializableLayer{eth, &layers.Dot1Q{VLANIdentifier: s.vlan, Type: et}}
}

// frame builds the whole Ethernet frame.
func (s spec) frame(tb testing.TB) []byte {
	tb.Helper()
	return serialize(tb, append(s.l2(layers.EthernetTypeIPv4), s.l3()...)...)
}

// packet builds the IPv4 packet alone.
func (s spec) packet(tb testing.TB) []byte {
	tb.Helper()
	return serialize(tb, s.l3()...)
}

// quote returns what an ICMP error about s quotes: its IPv4 header and the
// first 8 bytes of its payload.
func (s spec) quote(tb testing.TB) []byte {
	tb.Helper()
	b := s.packet(tb)
	hl := int(b[0]&0x0f) * 4
	return b[:hl+8]
}

// tunnelled builds the IP-in-IP frame carrying inner.
func tunnelled(tb testing.TB, l2 spec, outer spec, inner spec) []byte {
	tb.Helper()
	outer.proto = layers.IPProtocolIPv4
	o := outer.l3()[0]
	ls := append(l2.l2(layers.EthernetTypeIPv4), o)
	return serialize(tb, append(ls, inner.l3()...)...)
}

// arpFrame builds an ARP frame.
func arpFrame(tb testing.TB, l2 spec, op uint16, sha, spa, tha, tpa string) []byte {
	tb.Helper()
	a := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, Operation: op,
		SourceHwAddress: mac(sha), SourceProtAddress: ip4(spa), DstHwAddress: mac(tha), DstProtAddress: ip4(tpa),
	}
	return serialize(tb, append(l2.l2(layers.EthernetTypeARP), a)...)
}

// setPartial replaces the TCP or UDP checksum of frame with the
// non-complemented pseudo-header sum, the way a CHECKSUM_PARTIAL packet
// carries it. It works on a gopacket decoding, not on rewrite's Parse.
func setPartial(tb testing.TB, frame []byte) []byte {
	tb.Helper()
	pkt := decode(tb, frame)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	l4 := pkt.TransportLayer()
	if ip == nil || l4 == nil {
		tb.Fatal("setPartial: no IPv4 TCP/UDP")
	}
	var proto uint8
	var at int
	switch l4.(type) {
	case *layers.TCP:
		proto, at = 6, 16
	case *layers.UDP:
		proto, at = 17, 6
	}
	off := ethLen(frame) + len(ip.Contents)
	seglen := len(ip.Payload)
	out := append([]byte(nil), frame...)
	binary.BigEndian.PutUint16(out[off+at:], refSum(refPseudo(ip.SrcIP.To4(), ip.DstIP.To4(), proto, seglen)))
	return out
}

func ethLen(frame []byte) int {
	if binary.BigEndian.Uint16(frame[12:14]) == 0x8100 {
		return 18
	}
	return 14
}

// zeroUDPChecksum clears the UDP checksum of a frame (a sender that sent
// none).
func zeroUDPChecksum(tb testing.TB, frame []byte) []byte {
	tb.Helper()
	pkt := decode(tb, frame)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil || ip.Protocol != layers.IPProtocolUDP {
		tb.Fatal("zeroUDPChecksum: not UDP")
	}
	out := append([]byte(nil), frame...)
	off := ethLen(frame) + len(ip.Contents) + 6
	out[off], out[off+1] = 0, 0
	return out
}

// synOptions are the options of a Linux SYN.
func synOptions(mss uint16) []layers.TCPOption {
	m := make([]byte, 2)
	binary.BigEndian.PutUint16(m, mss)
	return []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionData: m},
		{OptionType: layers.TCPOptionKindSACKPermitted},
		{OptionType: layers.TCPOptionKindTimestamps, OptionData: []byte{0x00, 0x0a, 0x1b, 0x2c, 0, 0, 0, 0}},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionData: []byte{7}},
	}
}

// toaOption is the TOA option as alibaba/LVS defines it, built by hand from
// the documented layout: kind 254, length 8, port, IPv4 address.
func toaOption(port uint16, addr string) layers.TCPOption {
	d := make([]byte, 6)
	binary.BigEndian.PutUint16(d, port)
	copy(d[2:], ip4(addr))
	return layers.TCPOption{OptionType: 254, OptionData: d}
}

func withOptions(front []layers.TCPOption, rest []layers.TCPOption) []layers.TCPOption {
	return append(append([]layers.TCPOption(nil), front...), rest...)
}
