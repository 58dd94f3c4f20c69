package rewrite

import (
	"encoding/binary"
	"net/netip"
)

// PacketFlags are facts Parse records about a frame.
type PacketFlags uint8

// Packet flags.
const (
	// FlagVLAN: the frame carries one 802.1Q tag (Packet.TCI).
	FlagVLAN PacketFlags = 1 << iota
	// FlagDF: the IPv4 don't-fragment bit is set.
	FlagDF
	// FlagMF: the IPv4 more-fragments bit is set.
	FlagMF
	// FlagICMPError: an ICMP error whose quoted packet was parsed into
	// Packet.Quote.
	FlagICMPError
)

// Quote describes the packet an ICMP error quotes: offsets in the frame and
// the tuple, as sent by whoever the error is about.
type Quote struct {
	L3, L4           int
	Protocol         uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16 // TCP, UDP and SCTP only
}

// Packet is what Parse learns about a frame: offsets and the fields the
// engine needs for a connection lookup. It holds no reference to the frame.
type Packet struct {
	// L3 is the offset of the ARP or IPv4 header: 14, or 18 when tagged.
	L3 int
	// L4 is the offset just past the IPv4 header (0 for ARP).
	L4 int
	// Payload is the offset of the L4 payload (= L4 when L4 was not parsed).
	Payload int
	// End is the offset just past the IPv4 packet (L3 + total length) or the
	// ARP packet; bytes from End to the end of the frame are padding.
	End int

	EtherType uint16
	TCI       uint16 // 802.1Q tag control information, with FlagVLAN
	Flags     PacketFlags
	Protocol  uint8 // IPv4 protocol
	// FragOffset is the IPv4 fragment offset in bytes.
	FragOffset int

	Src, Dst         netip.Addr
	SrcPort, DstPort uint16 // TCP and UDP
	TCPFlags         uint8
	ICMPType         uint8
	ICMPCode         uint8

	// Quote is filled for ICMP errors (FlagICMPError).
	Quote Quote

	// Partial says the L4 checksum field holds only the pseudo-header sum,
	// not complemented (CHECKSUM_PARTIAL; AF_PACKET reports it as
	// TP_STATUS_CSUMNOTREADY). Parse clears it; the caller sets it from the
	// capture status. Transforms honour it; CompletePartial and InsertTOA
	// clear it.
	Partial bool
}

// HasL4 reports whether Parse read a TCP, UDP or ICMP header.
func (p *Packet) HasL4() bool {
	return p.L4 != 0 && (p.Protocol == ProtoTCP || p.Protocol == ProtoUDP || p.Protocol == ProtoICMP) &&
		p.Payload > p.L4
}

// Parse reads an Ethernet frame in one pass and fills p. It checks what the
// kernel checks before IPVS sees a packet (ip_rcv: version, IHL, header
// checksum, lengths) plus what IPVS needs from L4 (whole TCP/UDP/ICMP header,
// the quote of an ICMP error). When an error comes after the IPv4 header
// passed (ErrFragment, ErrUnknownProtocol, the TCP/UDP/ICMP errors), p is
// valid through L3 and p.L4 is set, which is all DR, tunnelling and the ICMP
// error builders need; its L4 fields are as far as Parse got. After an
// Ethernet, ARP or IPv4 header error p.L4 is 0.
func Parse(frame []byte, p *Packet) error {
	*p = Packet{}
	if len(frame) < EthernetHeaderLen {
		return ErrTruncated
	}
	l3 := EthernetHeaderLen
	et := binary.BigEndian.Uint16(frame[12:14])
	if et == EtherTypeVLAN {
		if len(frame) < EthernetHeaderLen+VLANTagLen {
			return ErrTruncated
		}
		p.Flags |= FlagVLAN
		p.TCI = binary.BigEndian.Uint16(frame[14:16])
		et = binary.BigEndian.Uint16(frame[16:18])
		l3 += VLANTagLen
	}
	p.EtherType = et
	p.L3 = l3
	switch et {
	case EtherTypeIPv4:
	case EtherTypeARP:
		if _, err := ParseARP(frame[l3:]); err != nil {
			return err
		}
		p.End = l3 + ARPLen
		return nil
	default:
		return ErrUnknownEtherType
	}

	ip, err := ParseIPv4(frame[l3:])
	if err != nil {
		return err
	}
	hl := ip.HeaderLen()
	p.End = l3 + len(ip)
	p.L4 = l3 + hl
	p.Payload = p.L4
	p.Protocol = ip[9]
	p.Src = netip.AddrFrom4([4]byte(ip[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
	frag := binary.BigEndian.Uint16(ip[6:8])
	if frag&ipv4FlagDF != 0 {
		p.Flags |= FlagDF
	}
	if frag&ipv4FlagMF != 0 {
		p.Flags |= FlagMF
	}
	p.FragOffset = int(frag&ipv4OffsetMask) * 8
	if frag&(ipv4FlagMF|ipv4OffsetMask) != 0 {
		return ErrFragment
	}
	seg := frame[p.L4:p.End]
	switch p.Protocol {
	case ProtoTCP:
		t, err := ParseTCP(seg)
		if err != nil {
			return err
		}
		p.SrcPort, p.DstPort = t.SrcPort(), t.DstPort()
		p.TCPFlags = t.Flags()
		p.Payload = p.L4 + t.HeaderLen()
	case ProtoUDP:
		u, err := ParseUDP(seg)
		if err != nil {
			return err
		}
		p.SrcPort, p.DstPort = u.SrcPort(), u.DstPort()
		p.Payload = p.L4 + UDPHeaderLen
	case ProtoICMP:
		m, err := ParseICMP(seg)
		if err != nil {
			return err
		}
		p.ICMPType, p.ICMPCode = m.Type(), m.Code()
		p.Payload = p.L4 + ICMPHeaderLen
		if ICMPIsError(p.ICMPType) {
			if err := parseQuote(frame[:p.End], p.Payload, &p.Quote); err != nil {
				return err
			}
			p.Flags |= FlagICMPError
		}
	default:
		return ErrUnknownProtocol
	}
	return nil
}

// parseQuote reads the IPv4 header and first 8 bytes of L4 that an ICMP
// error quotes. The quoted header's checksum and total length describe the
// original packet and are not checked (ip_vs_in_icmp does not either).
func parseQuote(pkt []byte, off int, q *Quote) error {
	b := pkt[off:]
	if len(b) < IPv4MinHeaderLen || b[0]>>4 != 4 {
		return ErrBadICMPQuote
	}
	hl := int(b[0]&0x0f) * 4
	if hl < IPv4MinHeaderLen || hl+ICMPQuoteL4Len > len(b) {
		return ErrBadICMPQuote
	}
	if binary.BigEndian.Uint16(b[6:8])&ipv4OffsetMask != 0 {
		// Not a first fragment: no ports to translate (the kernel accepts it
		// to the local stack instead).
		return ErrBadICMPQuote
	}
	q.L3 = off
	q.L4 = off + hl
	q.Protocol = b[9]
	q.Src = netip.AddrFrom4([4]byte(b[12:16]))
	q.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	switch q.Protocol {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		q.SrcPort = binary.BigEndian.Uint16(b[hl : hl+2])
		q.DstPort = binary.BigEndian.Uint16(b[hl+2 : hl+4])
	}
	return nil
}

// check verifies that p plausibly describes frame, so that a Packet filled
// for another frame (or by hand) cannot make a transform index out of range.
// needL4 also requires a parsed TCP/UDP/ICMP header.
func (p *Packet) check(frame []byte, needL4 bool) error {
	if p.EtherType != EtherTypeIPv4 || p.L3 < EthernetHeaderLen || p.L4 < p.L3+IPv4MinHeaderLen ||
		p.L4 > p.L3+IPv4MaxHeaderLen || p.End < p.L4 || p.End > len(frame) || p.Payload < p.L4 || p.Payload > p.End {
		return ErrBadPacket
	}
	if frame[p.L3]>>4 != 4 || int(frame[p.L3]&0x0f)*4 != p.L4-p.L3 ||
		int(binary.BigEndian.Uint16(frame[p.L3+2:p.L3+4])) != p.End-p.L3 || frame[p.L3+9] != p.Protocol {
		return ErrBadPacket
	}
	if needL4 {
		if !p.HasL4() {
			return ErrWrongProtocol
		}
		switch p.Protocol {
		case ProtoTCP:
			if p.Payload-p.L4 < TCPMinHeaderLen || int(frame[p.L4+12]>>4)*4 != p.Payload-p.L4 {
				return ErrBadPacket
			}
		case ProtoUDP:
			if p.Payload-p.L4 != UDPHeaderLen {
				return ErrBadPacket
			}
		case ProtoICMP:
			if p.Payload-p.L4 != ICMPHeaderLen {
				return ErrBadPacket
			}
		}
	}
	return nil
}

// PeekTuple reads the protocol, addresses and ports of an untagged
// Ethernet/IPv4 TCP or UDP frame without IP options or fragmentation, and
// checks nothing else: a guess at what Parse will find, for warming caches
// before a batch is parsed. ok is false for any other frame.
func PeekTuple(frame []byte) (proto uint8, src, dst [4]byte, sport, dport uint16, ok bool) {
	const l4 = EthernetHeaderLen + IPv4MinHeaderLen
	if len(frame) < l4+4 {
		return 0, src, dst, 0, 0, false
	}
	ip := frame[EthernetHeaderLen:l4:l4]
	proto = ip[9]
	if binary.BigEndian.Uint16(frame[12:14]) != EtherTypeIPv4 || ip[0] != 0x45 ||
		(proto != ProtoTCP && proto != ProtoUDP) || binary.BigEndian.Uint16(ip[6:8])&(ipv4FlagMF|ipv4OffsetMask) != 0 {
		return 0, src, dst, 0, 0, false
	}
	src, dst = [4]byte(ip[12:16]), [4]byte(ip[16:20])
	return proto, src, dst, binary.BigEndian.Uint16(frame[l4 : l4+2]), binary.BigEndian.Uint16(frame[l4+2 : l4+4]), true
}
