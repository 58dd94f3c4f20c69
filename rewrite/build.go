package rewrite

import (
	"encoding/binary"
	"net/netip"
)

// The builders write frames the director originates into a caller-owned
// buffer and return their length. Frames shorter than 60 bytes are
// zero-padded to EthernetMinFrameLen, as a NIC pads on the wire. Where the
// answer goes back where a frame came from, it keeps that frame's 802.1Q tag
// and swaps its MAC addresses. out may alias the frame being answered: all
// fields are read before the first write.

// finishFrame zero-pads out[:n] to the Ethernet minimum and returns the
// padded length.
func finishFrame(out []byte, n int) int {
	if n >= EthernetMinFrameLen {
		return n
	}
	clear(out[n:EthernetMinFrameLen])
	return EthernetMinFrameLen
}

// frameCap returns the padded size of an n-byte frame.
func frameCap(n int) int { return max(n, EthernetMinFrameLen) }

// BuildARPReply answers the ARP request req (parsed into p) with mac as the
// hardware address of the requested target IP, the way arp_process does:
// Ethernet and ARP target are the requester, the sender is mac and the IP
// asked for. Whether that IP is ours is the caller's decision.
func BuildARPReply(out, req []byte, p *Packet, mac MAC) (int, error) {
	if p.EtherType != EtherTypeARP || p.L3 < EthernetHeaderLen || p.L3+ARPLen > len(req) {
		return 0, ErrBadPacket
	}
	a, err := ParseARP(req[p.L3:])
	if err != nil {
		return 0, err
	}
	if a.Op() != ARPRequest {
		return 0, ErrNotARPRequest
	}
	tci := p.TCI
	if p.Flags&FlagVLAN == 0 {
		tci = 0
	}
	sha := a.SenderMAC()
	spa, tpa := [4]byte(a[14:18]), [4]byte(a[24:28])
	n := l2Len(tci) + ARPLen
	if len(out) < frameCap(n) {
		return 0, ErrNoRoom
	}
	l2 := putEthernet(out, sha, mac, tci, EtherTypeARP)
	putARP(out[l2:], ARPReply, mac, tpa, sha, spa)
	return finishFrame(out, n), nil
}

// BuildARPRequest asks who has target, from src at srcMAC, broadcast on the
// VLAN tci (0: untagged), with a zero target hardware address as arp_send
// does.
func BuildARPRequest(out []byte, srcMAC MAC, src, target netip.Addr, tci uint16) (int, error) {
	if !src.Is4() || !target.Is4() {
		return 0, ErrNotIPv4Addr
	}
	n := l2Len(tci) + ARPLen
	if len(out) < frameCap(n) {
		return 0, ErrNoRoom
	}
	bcast := MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	l2 := putEthernet(out, bcast, srcMAC, tci, EtherTypeARP)
	putARP(out[l2:], ARPRequest, srcMAC, src.As4(), MAC{}, target.As4())
	return finishFrame(out, n), nil
}

// BuildGratuitousARP announces that ip is at mac the way keepalived does
// after taking over a VIP (vrrp_arp.c): a broadcast ARP request whose sender
// and target IP are both ip and whose target hardware address is
// ff:ff:ff:ff:ff:ff.
func BuildGratuitousARP(out []byte, mac MAC, ip netip.Addr, tci uint16) (int, error) {
	if !ip.Is4() {
		return 0, ErrNotIPv4Addr
	}
	n := l2Len(tci) + ARPLen
	if len(out) < frameCap(n) {
		return 0, ErrNoRoom
	}
	bcast := MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	l2 := putEthernet(out, bcast, mac, tci, EtherTypeARP)
	putARP(out[l2:], ARPRequest, mac, ip.As4(), bcast, ip.As4())
	return finishFrame(out, n), nil
}

// EchoReply turns an ICMP echo request into its reply in place: MACs and IP
// addresses swapped, type 0, TTL set to ttl (ip_default_ttl is 64), ID and
// TOS kept, ICMP checksum updated incrementally, IP checksum recomputed. A
// request with IP options is refused (ErrHasIPOptions): the kernel echoes
// options through ip_options_echo, which an in-place swap cannot do.
func EchoReply(frame []byte, p *Packet, ttl uint8) error {
	if err := p.check(frame, true); err != nil {
		return err
	}
	if p.Protocol != ProtoICMP || p.ICMPType != ICMPEchoRequest || frame[p.L4] != ICMPEchoRequest {
		return ErrNotEchoRequest
	}
	if p.L4-p.L3 != IPv4MinHeaderLen {
		return ErrHasIPOptions
	}
	var dst, src MAC
	copy(dst[:], frame[0:6])
	copy(src[:], frame[6:12])
	copy(frame[0:6], src[:])
	copy(frame[6:12], dst[:])
	ip := IPv4(frame[p.L3:p.L4])
	s, d := [4]byte(ip[12:16]), [4]byte(ip[16:20])
	ip.SetSrc(d)
	ip.SetDst(s)
	ip.SetTTL(ttl)
	setIPv4Checksum(ip)
	m := frame[p.L4:p.End]
	oldTC := binary.BigEndian.Uint16(m[0:2])
	m[0] = ICMPEchoReply
	binary.BigEndian.PutUint16(m[2:4], UpdateChecksum16(binary.BigEndian.Uint16(m[2:4]), oldTC, binary.BigEndian.Uint16(m[0:2])))
	p.Src, p.Dst = p.Dst, p.Src
	p.ICMPType = ICMPEchoReply
	return nil
}

// ReplyIP holds the IPv4 fields of a locally generated ICMP error that the
// kernel would choose itself.
type ReplyIP struct {
	// Src is our address toward the offender: the address the packet was
	// sent to when it is ours (a VIP), else the egress interface address.
	Src netip.Addr
	// TTL is the IPv4 default TTL, 64 unless configured.
	TTL uint8
	// ID is the IP identification (the kernel's per-destination counter).
	ID uint16
}

// BuildPortUnreachable answers orig with ICMP destination unreachable, port
// unreachable.
func BuildPortUnreachable(out, orig []byte, p *Packet, r ReplyIP) (int, error) {
	return BuildICMPError(out, orig, p, ICMPDestUnreach, ICMPCodePortUnreach, 0, r)
}

// BuildFragNeeded answers orig with ICMP destination unreachable,
// fragmentation needed and DF set, carrying the next-hop mtu (RFC 1191).
func BuildFragNeeded(out, orig []byte, p *Packet, mtu uint16, r ReplyIP) (int, error) {
	return BuildICMPError(out, orig, p, ICMPDestUnreach, ICMPCodeFragNeeded, uint32(mtu), r)
}

// BuildTimeExceeded answers orig with ICMP time exceeded in transit.
func BuildTimeExceeded(out, orig []byte, p *Packet, r ReplyIP) (int, error) {
	return BuildICMPError(out, orig, p, ICMPTimeExceeded, ICMPCodeTTLExceeded, 0, r)
}

// BuildICMPError answers the IPv4 packet in orig (p as Parse left it, which
// may be after ErrFragment or ErrUnknownProtocol) with an ICMP error of the
// given type and code; rest fills header bytes 4-7 (the next-hop MTU of
// fragmentation needed goes in its low 16 bits). The message quotes the
// offending IP header and the first 8 bytes of its payload (RFC 792). The
// outer header is what icmp_send builds: TOS = precedence 6 (0xC0) plus the
// offender's TOS bits, no DF, protocol 1. It refuses what RFC 1122 3.2.2
// forbids answering: a non-first fragment (ErrFragment) and an ICMP error
// (ErrAboutICMPError).
func BuildICMPError(out, orig []byte, p *Packet, typ, code uint8, rest uint32, r ReplyIP) (int, error) {
	if err := p.check(orig, false); err != nil {
		return 0, err
	}
	if !r.Src.Is4() {
		return 0, ErrNotIPv4Addr
	}
	if p.FragOffset != 0 {
		return 0, ErrFragment
	}
	if p.Protocol == ProtoICMP && p.End > p.L4 && ICMPIsError(orig[p.L4]) {
		return 0, ErrAboutICMPError
	}
	quoteLen := min(p.L4-p.L3+ICMPQuoteL4Len, p.End-p.L3)
	tci := p.TCI
	if p.Flags&FlagVLAN == 0 {
		tci = 0
	}
	l2 := l2Len(tci)
	n := l2 + IPv4MinHeaderLen + ICMPHeaderLen + quoteLen
	if len(out) < frameCap(n) {
		return 0, ErrNoRoom
	}
	ethDst, ethSrc := MAC(orig[6:12]), MAC(orig[0:6])
	tos := orig[p.L3+1]&0x1e | 0xc0 // IPTOS_TOS_MASK | IPTOS_PREC_INTERNETCONTROL
	offender := [4]byte(orig[p.L3+12 : p.L3+16])

	qOff := l2 + IPv4MinHeaderLen + ICMPHeaderLen
	copy(out[qOff:qOff+quoteLen], orig[p.L3:p.L3+quoteLen])
	putEthernet(out, ethDst, ethSrc, tci, EtherTypeIPv4)
	putIPv4(out[l2:], tos, uint16(n-l2), r.ID, 0, r.TTL, ProtoICMP, r.Src.As4(), offender)
	m := out[l2+IPv4MinHeaderLen : n]
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint16(m[2:4], 0)
	binary.BigEndian.PutUint32(m[4:8], rest)
	binary.BigEndian.PutUint16(m[2:4], Checksum(m))
	return finishFrame(out, n), nil
}

// BuildTCPReset answers the TCP segment in orig with a RST as
// tcp_v4_send_reset does (RFC 793 "Reset Generation"): if the segment has
// ACK the RST carries seq = its ack; otherwise it is RST|ACK with seq 0 and
// ack = its seq + payload length + 1 for SYN + 1 for FIN. Addresses, ports
// and MACs are swapped; window 0; no options; DF set and ID 0 as Linux's
// reply socket sends; TOS copied without the ECN bits; TTL is ttl. A RST is
// never answered (ErrIsReset).
func BuildTCPReset(out, orig []byte, p *Packet, ttl uint8) (int, error) {
	if err := p.check(orig, true); err != nil {
		return 0, err
	}
	if p.Protocol != ProtoTCP {
		return 0, ErrWrongProtocol
	}
	seg := TCP(orig[p.L4:p.End])
	flags := seg.Flags()
	if flags&TCPFlagRST != 0 {
		return 0, ErrIsReset
	}
	var seq, ack uint32
	rflags := uint8(TCPFlagRST)
	if flags&TCPFlagACK != 0 {
		seq = seg.Ack()
	} else {
		ack = seg.Seq() + uint32(p.End-p.Payload)
		if flags&TCPFlagSYN != 0 {
			ack++
		}
		if flags&TCPFlagFIN != 0 {
			ack++
		}
		rflags |= TCPFlagACK
	}
	tci := p.TCI
	if p.Flags&FlagVLAN == 0 {
		tci = 0
	}
	l2 := l2Len(tci)
	n := l2 + IPv4MinHeaderLen + TCPMinHeaderLen
	if len(out) < frameCap(n) {
		return 0, ErrNoRoom
	}
	ethDst, ethSrc := MAC(orig[6:12]), MAC(orig[0:6])
	tos := orig[p.L3+1] &^ 0x03
	src, dst := [4]byte(orig[p.L3+16:p.L3+20]), [4]byte(orig[p.L3+12:p.L3+16])
	sport, dport := seg.DstPort(), seg.SrcPort()

	putEthernet(out, ethDst, ethSrc, tci, EtherTypeIPv4)
	putIPv4(out[l2:], tos, IPv4MinHeaderLen+TCPMinHeaderLen, 0, ipv4FlagDF, ttl, ProtoTCP, src, dst)
	t := out[l2+IPv4MinHeaderLen : n]
	binary.BigEndian.PutUint16(t[0:2], sport)
	binary.BigEndian.PutUint16(t[2:4], dport)
	binary.BigEndian.PutUint32(t[4:8], seq)
	binary.BigEndian.PutUint32(t[8:12], ack)
	t[12] = (TCPMinHeaderLen / 4) << 4
	t[13] = rflags
	clear(t[14:20])
	binary.BigEndian.PutUint16(t[16:18], l4Checksum(t, src[:], dst[:], ProtoTCP))
	return finishFrame(out, n), nil
}

// BuildReset writes a RST|ACK from src to dst with the given sequence and
// acknowledgement numbers, as a director sends both ends of a connection it
// expires (alibaba/LVS ip_vs_conn_expire_send_rst). The Ethernet addresses
// are left zero for the caller to set; DF is set, ID 0, window 0.
func BuildReset(out []byte, src, dst netip.AddrPort, seq, ack uint32, ttl uint8) (int, error) {
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return 0, ErrNotIPv4Addr
	}
	n := EthernetHeaderLen + IPv4MinHeaderLen + TCPMinHeaderLen
	if len(out) < frameCap(n) {
		return 0, ErrNoRoom
	}
	sa, da := src.Addr().As4(), dst.Addr().As4()
	putEthernet(out, MAC{}, MAC{}, 0, EtherTypeIPv4)
	putIPv4(out[EthernetHeaderLen:], 0, IPv4MinHeaderLen+TCPMinHeaderLen, 0, ipv4FlagDF, ttl, ProtoTCP, sa, da)
	t := out[EthernetHeaderLen+IPv4MinHeaderLen : n]
	binary.BigEndian.PutUint16(t[0:2], src.Port())
	binary.BigEndian.PutUint16(t[2:4], dst.Port())
	binary.BigEndian.PutUint32(t[4:8], seq)
	binary.BigEndian.PutUint32(t[8:12], ack)
	t[12] = (TCPMinHeaderLen / 4) << 4
	t[13] = TCPFlagRST | TCPFlagACK
	clear(t[14:20])
	binary.BigEndian.PutUint16(t[16:18], l4Checksum(t, sa[:], da[:], ProtoTCP))
	return finishFrame(out, n), nil
}

// putIPv4 writes an option-less IPv4 header with its checksum.
func putIPv4(b []byte, tos uint8, total, id, frag uint16, ttl, proto uint8, src, dst [4]byte) {
	h := b[:IPv4MinHeaderLen]
	h[0] = 0x45
	h[1] = tos
	binary.BigEndian.PutUint16(h[2:4], total)
	binary.BigEndian.PutUint16(h[4:6], id)
	binary.BigEndian.PutUint16(h[6:8], frag)
	h[8] = ttl
	h[9] = proto
	copy(h[12:16], src[:])
	copy(h[16:20], dst[:])
	setIPv4Checksum(h)
}
