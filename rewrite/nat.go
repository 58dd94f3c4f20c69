package rewrite

import (
	"encoding/binary"
	"net/netip"
)

// NATIn rewrites a client→virtual-service packet for a NAT real server
// (IPVS ip_vs_nat_xmit with tcp/udp_dnat_handler): destination address and
// port become rs, TTL is decremented, and the IPv4 header checksum (what
// ip_send_check computes; see IPv4.forwarded) and the TCP/UDP checksum are
// updated incrementally. With
// p.Partial only the pseudo-header part of the L4 checksum is updated (the
// ports are summed later by whoever completes it). A UDP datagram without a
// checksum gets a full one computed, as the kernel does. TTL <= 1 returns
// ErrTTLExpired and leaves the frame unchanged.
func NATIn(frame []byte, p *Packet, rs netip.AddrPort) error {
	return translate(frame, p, netip.AddrPort{}, rs)
}

// NATOut rewrites a real-server→client reply of a NAT connection
// (tcp/udp_snat_handler): source address and port become vip, with the same
// TTL and checksum handling as NATIn. The kernel's forward path decrements
// the TTL of replies; the engine replaces that path, so NATOut does it.
func NATOut(frame []byte, p *Packet, vip netip.AddrPort) error {
	return translate(frame, p, vip, netip.AddrPort{})
}

// FULLNATIn rewrites a client→virtual-service packet of a FULLNAT
// connection (tcp_fnat_in_handler): the source becomes the local address
// local, the destination becomes rs. TTL and checksums as in NATIn.
// Sequence-number remapping and TOA insertion are separate steps (InsertTOA).
func FULLNATIn(frame []byte, p *Packet, local, rs netip.AddrPort) error {
	return translate(frame, p, local, rs)
}

// FULLNATOut rewrites a real-server→local-address reply of a FULLNAT
// connection (tcp_fnat_out_handler): the source becomes vip, the destination
// becomes client. TTL and checksums as in NATIn; the SYN-ACK MSS reduction is
// a separate step (ReduceMSSForTOA).
func FULLNATOut(frame []byte, p *Packet, vip, client netip.AddrPort) error {
	return translate(frame, p, vip, client)
}

// translate sets the source to src and the destination to dst (each only
// when valid) on a TCP or UDP packet, then decrements the TTL and fixes both
// checksums. Everything is checked before the first write.
func translate(frame []byte, p *Packet, src, dst netip.AddrPort) error {
	if err := p.check(frame, true); err != nil {
		return err
	}
	var sumOff int
	switch p.Protocol {
	case ProtoTCP:
		sumOff = p.L4 + TCPChecksumOffset
	case ProtoUDP:
		sumOff = p.L4 + UDPChecksumOffset
	default:
		return ErrWrongProtocol
	}
	if (src.IsValid() && !src.Addr().Is4()) || (dst.IsValid() && !dst.Addr().Is4()) {
		return ErrNotIPv4Addr
	}
	ip := IPv4(frame[p.L3:p.L4])
	if ip.TTL() <= 1 {
		return ErrTTLExpired
	}
	l4 := frame[p.L4:p.End]
	sum := binary.BigEndian.Uint16(frame[sumOff:])
	udpNoSum := p.Protocol == ProtoUDP && sum == 0 && !p.Partial
	ipSum, oldSrc, oldDst := ip.Checksum(), binary.BigEndian.Uint32(ip[12:16]), binary.BigEndian.Uint32(ip[16:20])

	if src.IsValid() {
		sum = setEndpoint(ip[12:16], l4[0:2], src, sum, p.Partial, udpNoSum)
		p.Src, p.SrcPort = src.Addr(), src.Port()
	}
	if dst.IsValid() {
		sum = setEndpoint(ip[16:20], l4[2:4], dst, sum, p.Partial, udpNoSum)
		p.Dst, p.DstPort = dst.Addr(), dst.Port()
	}
	if udpNoSum {
		// IPVS fills an absent UDP checksum rather than leaving it absent
		// (udp_dnat_handler: "full checksum calculation" when check == 0).
		binary.BigEndian.PutUint16(l4[6:8], 0)
		sum = l4Checksum(l4, ip[12:16], ip[16:20], ProtoUDP)
	}
	if p.Protocol == ProtoUDP && !p.Partial {
		sum = UDPWireChecksum(sum)
	}
	binary.BigEndian.PutUint16(frame[sumOff:], sum)
	ip.DecTTL()
	ip.forwarded(ipSum, oldSrc, oldDst)
	return nil
}

// DR forwards a packet to a direct-routing real server (ip_vs_dr_xmit): the
// destination MAC becomes the real server's, the source MAC ours, the TTL is
// decremented and the IPv4 header checksum recomputed; addresses, ports and
// any 802.1Q tag stay (the checksum is updated as in NATIn). Any IPv4 packet qualifies (fragments and fwmark
// services included). TTL <= 1 returns ErrTTLExpired and leaves the frame
// unchanged.
func DR(frame []byte, p *Packet, dst, src MAC) error {
	if err := p.check(frame, false); err != nil {
		return err
	}
	ip := IPv4(frame[p.L3:p.L4])
	if ip.TTL() <= 1 {
		return ErrTTLExpired
	}
	eth := Ethernet(frame)
	eth.SetDst(dst)
	eth.SetSrc(src)
	a := binary.BigEndian.Uint32(ip[12:16])
	b := binary.BigEndian.Uint32(ip[16:20])
	hc := ip.Checksum()
	ip.DecTTL()
	ip.forwarded(hc, a, b)
	return nil
}

// SetMACs sets the destination and source MAC addresses of a frame: the L2
// half of forwarding for NAT and FULLNAT, whose next hop comes from the
// engine's routing and neighbour tables rather than from the packet.
func SetMACs(frame []byte, dst, src MAC) error {
	if len(frame) < EthernetHeaderLen {
		return ErrTruncated
	}
	eth := Ethernet(frame)
	eth.SetDst(dst)
	eth.SetSrc(src)
	return nil
}

// CheckMTU applies the kernel's ensure_mtu_is_adequate test for IPv4: a
// packet with DF set that is longer than mtu returns ErrFragNeeded (the
// caller sends ICMP fragmentation needed with mtu and drops it), except ICMP
// errors, which are never answered with another. GSO super-frames are the
// caller's to exempt, as the kernel does.
func CheckMTU(frame []byte, p *Packet, mtu int) error {
	if err := p.check(frame, false); err != nil {
		return err
	}
	if p.Flags&FlagDF != 0 && p.End-p.L3 > mtu && p.Flags&FlagICMPError == 0 {
		return ErrFragNeeded
	}
	return nil
}

// CompletePartial finishes a CHECKSUM_PARTIAL frame in software, as
// skb_checksum_help does: the checksum field holds the pseudo-header sum, so
// summing the whole segment over it and complementing gives the checksum. A
// result of 0 is stored as 0xFFFF (skb_checksum_help does this for every
// protocol; for TCP both verify). It clears p.Partial; it is a no-op on a
// frame that is not partial.
func CompletePartial(frame []byte, p *Packet) error {
	if !p.Partial {
		return nil
	}
	if err := p.check(frame, true); err != nil {
		return err
	}
	var sumOff int
	switch p.Protocol {
	case ProtoTCP:
		sumOff = p.L4 + TCPChecksumOffset
	case ProtoUDP:
		sumOff = p.L4 + UDPChecksumOffset
	default:
		return ErrWrongProtocol
	}
	sum := ^OnesSum(frame[p.L4:p.End], 0)
	binary.BigEndian.PutUint16(frame[sumOff:], UDPWireChecksum(sum))
	p.Partial = false
	return nil
}

// setEndpoint writes ap's address into addr (4 bytes of the IPv4 header)
// and its port into port (2 bytes of the L4 header), and returns the L4
// checksum updated for both: under CHECKSUM_PARTIAL only the address counts
// (the pseudo-header), and an absent UDP checksum is left to be filled.
func setEndpoint(addr, port []byte, ap netip.AddrPort, sum uint16, partial, noSum bool) uint16 {
	a := ap.Addr().As4()
	oldAddr, newAddr := binary.BigEndian.Uint32(addr), binary.BigEndian.Uint32(a[:])
	oldPort := binary.BigEndian.Uint16(port)
	copy(addr, a[:])
	binary.BigEndian.PutUint16(port, ap.Port())
	switch {
	case partial:
		return UpdatePartial32(sum, oldAddr, newAddr)
	case noSum:
		return sum
	}
	return UpdateChecksum16(UpdateChecksum32(sum, oldAddr, newAddr), oldPort, ap.Port())
}
