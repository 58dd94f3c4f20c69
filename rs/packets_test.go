package rs

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Packet builders for the tests, on gopacket so that the bytes come from an
// independent encoder with its own checksum code.

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ip4(src, dst netip.Addr, proto layers.IPProtocol, tos uint8) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TOS: tos, TTL: 64, Flags: layers.IPv4DontFragment,
		Protocol: proto, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
}

// innerUDP is a client's UDP datagram as the director received it.
func innerUDP(t testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
	ip := ip4(src.Addr(), dst.Addr(), layers.IPProtocolUDP, 0)
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ip, udp, gopacket.Payload(payload))
}

// innerTCP is a client's TCP segment.
func innerTCP(t testing.TB, src, dst netip.AddrPort, seq, ack uint32, syn, isACK, psh bool, payload []byte) []byte {
	ip := ip4(src.Addr(), dst.Addr(), layers.IPProtocolTCP, 0)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: seq, Ack: ack, SYN: syn, ACK: isACK, PSH: psh, Window: 64240}
	if syn {
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ip, tcp, gopacket.Payload(payload))
}

// encap wraps inner in an outer IPv4 header, protocol 4, as the director's
// tunnel transmit does (reference/ipvs.md §7.3).
func encap(t testing.TB, src, dst netip.Addr, tos uint8, inner []byte, opts ...layers.IPv4Option) []byte {
	ip := ip4(src, dst, layers.IPProtocolIPv4, tos)
	ip.Options = opts
	return serialize(t, ip, gopacket.Payload(inner))
}
