package synproxy

import (
	"bytes"
	"encoding/binary"
	"net"
	"slices"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

// The test world: a client, a VIP, MACs of the client and the director.
var (
	clientMAC = rewrite.MAC{2, 0, 0, 0, 0, 1}
	dirMAC    = rewrite.MAC{2, 0, 0, 0, 0, 2}
	clientIP  = [4]byte{10, 0, 0, 2}
	vipIP     = [4]byte{10, 0, 0, 100}
)

// seg describes one segment for gopacket to build.
type seg struct {
	srcMAC, dstMAC rewrite.MAC
	src, dst       [4]byte
	sport, dport   uint16
	seq, ack       uint32
	flags          string // S A R F P
	window         uint16
	ttl, tos       uint8
	id             uint16
	df             bool
	opts           []layers.TCPOption
	payload        []byte
}

func opt(kind layers.TCPOptionKind, data ...byte) layers.TCPOption {
	if kind == layers.TCPOptionKindNop || kind == layers.TCPOptionKindEndList {
		return layers.TCPOption{OptionType: kind, OptionLength: 1}
	}
	return layers.TCPOption{OptionType: kind, OptionLength: uint8(2 + len(data)), OptionData: data}
}

func nop() layers.TCPOption { return opt(layers.TCPOptionKindNop) }

func mssOpt(v uint16) layers.TCPOption {
	return opt(layers.TCPOptionKindMSS, byte(v>>8), byte(v))
}

func tsOpt(val, ecr uint32) layers.TCPOption {
	var b [8]byte
	binary.BigEndian.PutUint32(b[0:], val)
	binary.BigEndian.PutUint32(b[4:], ecr)
	return opt(layers.TCPOptionKindTimestamps, b[:]...)
}

func sackOpt(edges ...uint32) layers.TCPOption {
	b := make([]byte, 4*len(edges))
	for i, e := range edges {
		binary.BigEndian.PutUint32(b[4*i:], e)
	}
	return opt(layers.TCPOptionKindSACK, b...)
}

func (s seg) build(tb testing.TB) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(s.srcMAC[:]), DstMAC: net.HardwareAddr(s.dstMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: s.ttl, TOS: s.tos, Id: s.id, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP(s.src[:]), DstIP: net.IP(s.dst[:])}
	if s.df {
		ip.Flags = layers.IPv4DontFragment
	}
	t := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport), Seq: s.seq, Ack: s.ack,
		Window: s.window, Options: s.opts}
	for _, f := range s.flags {
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
	_ = t.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, t, gopacket.Payload(s.payload))
	if err != nil {
		tb.Fatal(err)
	}
	return slices.Clone(buf.Bytes())
}

// padded is frame zero-padded to the Ethernet minimum, as the functions
// here leave their output.
func padded(frame []byte) []byte {
	if len(frame) >= minFrameLen {
		return frame
	}
	return append(slices.Clone(frame), make([]byte, minFrameLen-len(frame))...)
}

func parse(tb testing.TB, frame []byte) *rewrite.Packet {
	tb.Helper()
	p := &rewrite.Packet{}
	if err := rewrite.Parse(frame, p); err != nil {
		tb.Fatalf("parse: %v", err)
	}
	return p
}

// withRoom returns frame in a buffer with spare capacity, as the engine's
// receive slots are.
func withRoom(frame []byte) []byte {
	b := make([]byte, len(frame), 2048)
	copy(b, frame)
	return b
}

func sameFrame(tb testing.TB, what string, got, want []byte) {
	tb.Helper()
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs\n got %x\nwant %x\n got %v\nwant %v", what, got, want,
			gopacket.NewPacket(got, layers.LayerTypeEthernet, gopacket.Default),
			gopacket.NewPacket(want, layers.LayerTypeEthernet, gopacket.Default))
	}
}

// tcpChecksumOK verifies a frame's TCP checksum from scratch.
func tcpChecksumOK(frame []byte, p *rewrite.Packet) bool {
	segm := frame[p.L4:p.End]
	ph := rewrite.PseudoHeaderSum(p.Src, p.Dst, rewrite.ProtoTCP, uint16(len(segm)))
	return rewrite.OnesSum(segm, ph) == 0xffff
}

// fixedSecret is a Secret from a counting byte source, so tests are
// repeatable.
func fixedSecret(tb testing.TB, base byte) *Secret {
	tb.Helper()
	var b [128]byte
	for i := range b {
		b[i] = base + byte(i)
	}
	s, err := NewSecret(bytes.NewReader(b[:]))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
