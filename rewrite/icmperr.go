package rewrite

import (
	"encoding/binary"
	"net/netip"
)

// The ICMP-error translations follow ip_vs_nat_icmp (and its FULLNAT form in
// alibaba/LVS): an error about a translated flow must reach the other side
// looking like an error about the packet that side actually sent. Each
// rewrites the outer addresses, the quoted IPv4 header's addresses and the
// quoted TCP/UDP/SCTP ports, recomputes the quoted header's checksum and the
// outer one (ip_send_check on both), recomputes the ICMP checksum over the
// whole message (the kernel does not update it incrementally), and
// decrements the outer TTL as forwarding does. The quoted L4 checksum is left
// as it was, as in the kernel. Errors leave the frame unchanged.

// NATInICMP translates an ICMP error from the client side about a reply the
// client received (quote: VIP:vport → CIP:cport) for the NAT real server rs:
// outer destination, quoted source address and quoted source port become rs
// (ip_vs_nat_icmp with inout=0, via ip_vs_icmp_xmit).
func NATInICMP(frame []byte, p *Packet, rs netip.AddrPort) error {
	return translateICMPError(frame, p, netip.Addr{}, rs.Addr(), rs, netip.AddrPort{})
}

// NATOutICMP translates an ICMP error from the real-server side about a
// packet the server received (quote: CIP:cport → RIP:rport) for the client:
// outer source, quoted destination address and quoted destination port
// become vip (ip_vs_nat_icmp with inout=1, from ip_vs_out_icmp).
func NATOutICMP(frame []byte, p *Packet, vip netip.AddrPort) error {
	return translateICMPError(frame, p, vip.Addr(), netip.Addr{}, netip.AddrPort{}, vip)
}

// FULLNATInICMP translates an ICMP error from the client side (quote:
// VIP:vport → CIP:cport) for a FULLNAT real server: the outer packet goes
// local → rs and the quote becomes rs → local, ports included.
func FULLNATInICMP(frame []byte, p *Packet, local, rs netip.AddrPort) error {
	return translateICMPError(frame, p, local.Addr(), rs.Addr(), rs, local)
}

// FULLNATOutICMP translates an ICMP error from the real-server side (quote:
// LADDR:lport → RIP:rport) for the client of a FULLNAT connection: the outer
// packet goes vip → client and the quote becomes client → vip.
func FULLNATOutICMP(frame []byte, p *Packet, vip, client netip.AddrPort) error {
	return translateICMPError(frame, p, vip.Addr(), client.Addr(), client, vip)
}

// translateICMPError sets each valid argument: outer source and destination
// addresses, quoted source and destination address and port.
func translateICMPError(frame []byte, p *Packet, outerSrc, outerDst netip.Addr, quoteSrc, quoteDst netip.AddrPort) error {
	if err := p.check(frame, true); err != nil {
		return err
	}
	if p.Protocol != ProtoICMP || p.Flags&FlagICMPError == 0 {
		return ErrNotICMPError
	}
	q := &p.Quote
	if q.L3 != p.Payload || q.L4 < q.L3+IPv4MinHeaderLen || q.L4+ICMPQuoteL4Len > p.End ||
		int(frame[q.L3]&0x0f)*4 != q.L4-q.L3 {
		return ErrBadPacket
	}
	for _, a := range [...]netip.Addr{outerSrc, outerDst, quoteSrc.Addr(), quoteDst.Addr()} {
		if a.IsValid() && !a.Is4() {
			return ErrNotIPv4Addr
		}
	}
	ip := IPv4(frame[p.L3:p.L4])
	if ip.TTL() <= 1 {
		return ErrTTLExpired
	}
	qip := IPv4(frame[q.L3:q.L4])
	ports := frame[q.L4 : q.L4+4]
	hasPorts := q.Protocol == ProtoTCP || q.Protocol == ProtoUDP || q.Protocol == ProtoSCTP

	if outerSrc.IsValid() {
		ip.SetSrc(outerSrc.As4())
		p.Src = outerSrc
	}
	if outerDst.IsValid() {
		ip.SetDst(outerDst.As4())
		p.Dst = outerDst
	}
	if quoteSrc.IsValid() {
		qip.SetSrc(quoteSrc.Addr().As4())
		q.Src = quoteSrc.Addr()
		if hasPorts {
			binary.BigEndian.PutUint16(ports[0:2], quoteSrc.Port())
			q.SrcPort = quoteSrc.Port()
		}
	}
	if quoteDst.IsValid() {
		qip.SetDst(quoteDst.Addr().As4())
		q.Dst = quoteDst.Addr()
		if hasPorts {
			binary.BigEndian.PutUint16(ports[2:4], quoteDst.Port())
			q.DstPort = quoteDst.Port()
		}
	}
	qip.UpdateChecksum()
	msg := ICMP(frame[p.L4:p.End])
	msg.SetChecksum(0)
	msg.SetChecksum(Checksum(msg))
	ip.DecTTL()
	ip.UpdateChecksum()
	p.Partial = false
	return nil
}
