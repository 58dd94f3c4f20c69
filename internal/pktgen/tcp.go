package pktgen

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"lvslab/rewrite"
)

const (
	tcpLen = 20
	// TCPHeadersLen is the bytes before the payload of a TCP segment
	// without options.
	TCPHeadersLen = ethLen + ipv4Len + tcpLen
	// DefaultTCPPayload makes a 64-byte data segment, the size of the UDP
	// frames.
	DefaultTCPPayload = 64 - TCPHeadersLen
)

// TCPHeader is what BuildTCP writes beyond the MACs.
type TCPHeader struct {
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    uint8
	Window   uint16
	// Options are written as they are; their length must be a multiple
	// of 4.
	Options []byte
}

// BuildTCP writes an Ethernet/IPv4/TCP frame filling all of b: the
// headers, h's options, and as payload whatever b has room for after them
// (left as it is), with complete IP and TCP checksums.
func BuildTCP(b []byte, srcMAC, dstMAC [6]byte, h TCPHeader) {
	hl := tcpLen + len(h.Options)
	if len(h.Options)%4 != 0 || hl > 60 {
		panic(errors.New("pktgen: TCP options not a multiple of 4 bytes, or over 40"))
	}
	if len(b) < ethLen+ipv4Len+hl {
		panic(errors.New("pktgen: frame buffer shorter than the headers"))
	}
	ipHeader(b, srcMAC, dstMAC, h.Src.Addr(), h.Dst.Addr(), rewrite.ProtoTCP)
	tcp := b[ethLen+ipv4Len:]
	binary.BigEndian.PutUint16(tcp[0:2], h.Src.Port())
	binary.BigEndian.PutUint16(tcp[2:4], h.Dst.Port())
	binary.BigEndian.PutUint32(tcp[4:8], h.Seq)
	binary.BigEndian.PutUint32(tcp[8:12], h.Ack)
	tcp[12] = byte(hl/4) << 4
	tcp[13] = h.Flags
	binary.BigEndian.PutUint16(tcp[14:16], h.Window)
	tcp[16], tcp[17], tcp[18], tcp[19] = 0, 0, 0, 0 // checksum, urgent pointer
	copy(tcp[tcpLen:], h.Options)
	sum := ^rewrite.OnesSum(tcp, rewrite.PseudoHeaderSum(h.Src.Addr(), h.Dst.Addr(), rewrite.ProtoTCP, uint16(len(tcp))))
	binary.BigEndian.PutUint16(tcp[16:18], sum)
}

// ipHeader writes the Ethernet and IPv4 headers of a frame filling b.
func ipHeader(b []byte, srcMAC, dstMAC [6]byte, src, dst netip.Addr, proto uint8) {
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], srcMAC[:])
	binary.BigEndian.PutUint16(b[12:14], rewrite.EtherTypeIPv4)
	ip := b[ethLen : ethLen+ipv4Len]
	ip[0] = 0x45 // version 4, 20-byte header
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(b)-ethLen))
	binary.BigEndian.PutUint16(ip[4:6], 0)      // ID: DF set, never fragmented
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64                                  // TTL
	ip[9] = proto
	ip[10], ip[11] = 0, 0
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:12], rewrite.Checksum(ip))
}

// Segment is a received TCP segment's fields, as ParseTCP reads them.
type Segment struct {
	SrcMAC, DstMAC [6]byte
	Src, Dst       netip.AddrPort
	Seq, Ack       uint32
	Flags          uint8
	Payload        int // payload bytes
}

// ParseTCP reads an untagged, unfragmented IPv4/TCP frame's headers. It
// checks no checksum: the frames it reads come from the lab's own
// forwarders, which the tests of package rewrite check.
func ParseTCP(frame []byte) (Segment, bool) {
	var s Segment
	if len(frame) < TCPHeadersLen || binary.BigEndian.Uint16(frame[12:14]) != rewrite.EtherTypeIPv4 {
		return s, false
	}
	ip := frame[ethLen:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < ipv4Len || ip[9] != rewrite.ProtoTCP || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		return s, false
	}
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if total > len(ip) || total < ihl+tcpLen {
		return s, false
	}
	tcp := ip[ihl:total]
	doff := int(tcp[12]>>4) * 4
	if doff < tcpLen || doff > len(tcp) {
		return s, false
	}
	copy(s.DstMAC[:], frame[0:6])
	copy(s.SrcMAC[:], frame[6:12])
	s.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(tcp[0:2]))
	s.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(tcp[2:4]))
	s.Seq = binary.BigEndian.Uint32(tcp[4:8])
	s.Ack = binary.BigEndian.Uint32(tcp[8:12])
	s.Flags = tcp[13]
	s.Payload = len(tcp) - doff
	return s, true
}

// MatchTCPData reports whether frame is an IPv4/TCP segment carrying data
// to port dport and, if dst is valid, to address dst: the TCP sink's
// filter, which leaves out the handshakes' segments (no payload).
func MatchTCPData(frame []byte, dst netip.Addr, dport uint16) bool {
	s, ok := ParseTCP(frame)
	return ok && s.Payload > 0 && s.Dst.Port() == dport && (!dst.IsValid() || s.Dst.Addr() == dst)
}

// mssOption is the one option of the SYNs and SYN/ACKs built here: MSS
// 1460, what a 1500-byte MTU gives.
var mssOption = []byte{2, 4, 0x05, 0xb4}
