package rewrite

import (
	"encoding/binary"
	"net/netip"
)

// IPIPOverhead is what IP-in-IP adds to a packet: one IPv4 header.
const IPIPOverhead = IPv4MinHeaderLen

// IPIP describes how EncapIPIP builds the outer frame of a tunnelled packet.
type IPIP struct {
	// Src is the outer source: the director's address on the route to Dst.
	Src netip.Addr
	// Dst is the outer destination: the real server's address (RIP).
	Dst netip.Addr
	// DstMAC and SrcMAC address the next hop toward Dst from our egress port.
	DstMAC, SrcMAC MAC
	// TCI is the egress 802.1Q tag control information; 0 sends untagged.
	TCI uint16
	// MTU is the egress route MTU. A DF packet longer than MTU-IPIPOverhead
	// is not encapsulated (ErrFragNeeded).
	MTU int
	// ID is the outer IP identification used when the inner packet lacks DF
	// (the kernel's per-destination counter); with DF the kernel sends 0.
	ID uint16
	// NoPMTUDisc mirrors sysctl net.ipv4.vs.pmtu_disc=0: the outer header
	// never carries DF and the DF/MTU test is skipped (the packet is
	// fragmented after encapsulation instead).
	NoPMTUDisc bool
}

// FragNeededMTU returns the MTU to report in the ICMP "fragmentation needed"
// sent to the client when EncapIPIP returns ErrFragNeeded: the egress MTU
// less the tunnel overhead (ip_vs_tunnel_xmit's mtu).
func (t *IPIP) FragNeededMTU() uint16 {
	m := t.MTU - IPIPOverhead
	if m < 0 {
		return 0
	}
	return uint16(min(m, 0xffff))
}

// EncapIPIP encapsulates the IPv4 packet of frame in IP-in-IP toward a
// tunnel real server, as ip_vs_tunnel_xmit does, and writes the result (new
// Ethernet header, outer IPv4 header, inner packet) to out, returning its
// length. The inner TTL is decremented and its checksum updated (to what a
// recomputation gives, IPv4.forwarded); the outer
// header gets TTL = inner TTL after the decrement, TOS = the inner DS field
// with CE turned into ECT(0), DF copied from the inner packet, ID 0 when DF
// is set and t.ID otherwise, protocol 4. The inner L4 checksum is not
// touched: a p.Partial frame stays partial (csum_start moves by the header
// growth, the caller's to account for), so complete it first when sending
// without offload.
//
// out may alias frame. Reading the frame at buf[20:] and passing out = buf
// puts the inner packet already in place for an untagged frame, so nothing
// is copied (the headroom way). Otherwise the packet is moved with copy.
//
// Errors leave frame unchanged: ErrTTLExpired (send time exceeded),
// ErrFragNeeded (send "fragmentation needed" with t.FragNeededMTU() and
// drop), ErrMTUTooSmall, ErrNoRoom. On success p describes the output frame
// as Parse would (protocol 4, L4 fields zero).
func EncapIPIP(out, frame []byte, p *Packet, t *IPIP) (int, error) {
	if err := p.check(frame, false); err != nil {
		return 0, err
	}
	if !t.Src.Is4() || !t.Dst.Is4() {
		return 0, ErrNotIPv4Addr
	}
	inner := frame[p.L3:p.End]
	if IPv4(inner).TTL() <= 1 {
		return 0, ErrTTLExpired
	}
	innerLen := len(inner)
	df := p.Flags&FlagDF != 0 && !t.NoPMTUDisc
	// __ip_vs_get_out_rt: TTL first, then the tunnel MTU floor, then
	// ensure_mtu_is_adequate (skipped for tunnels when pmtu_disc=0).
	mtu := t.MTU - IPIPOverhead
	if mtu < ipv4MinMTU {
		return 0, ErrMTUTooSmall
	}
	if df && innerLen > mtu && p.Flags&FlagICMPError == 0 {
		return 0, ErrFragNeeded
	}
	l2 := l2Len(t.TCI)
	outerOff := l2
	innerOff := l2 + IPIPOverhead
	total := IPIPOverhead + innerLen
	if total > 0xffff {
		return 0, ErrNoRoom
	}
	if len(out) < innerOff+innerLen {
		return 0, ErrNoRoom
	}

	// Move the inner packet first: out may alias frame, and the headers
	// written next may cover where the packet was.
	if &out[innerOff] != &frame[p.L3] {
		copy(out[innerOff:innerOff+innerLen], inner)
	}
	in := IPv4(out[innerOff : innerOff+innerLen])
	hc, src0, dst0 := in.Checksum(), binary.BigEndian.Uint32(in[12:16]), binary.BigEndian.Uint32(in[16:20])
	in.DecTTL()
	in.forwarded(hc, src0, dst0)

	o := out[outerOff:innerOff]
	o[0] = 0x45
	o[1] = ecnEncapsulate(in[1])
	binary.BigEndian.PutUint16(o[2:4], uint16(total))
	if df {
		binary.BigEndian.PutUint16(o[4:6], 0)
		binary.BigEndian.PutUint16(o[6:8], ipv4FlagDF)
	} else {
		binary.BigEndian.PutUint16(o[4:6], t.ID)
		binary.BigEndian.PutUint16(o[6:8], 0)
	}
	o[8] = in.TTL()
	o[9] = ProtoIPIP
	src, dst := t.Src.As4(), t.Dst.As4()
	copy(o[12:16], src[:])
	copy(o[16:20], dst[:])
	setIPv4Checksum(o)
	putEthernet(out, t.DstMAC, t.SrcMAC, t.TCI, EtherTypeIPv4)

	partial := p.Partial
	*p = Packet{
		L3: outerOff, L4: innerOff, Payload: innerOff, End: innerOff + innerLen,
		EtherType: EtherTypeIPv4, TCI: t.TCI, Protocol: ProtoIPIP,
		Src: t.Src, Dst: t.Dst, Partial: partial,
	}
	if t.TCI != 0 {
		p.Flags |= FlagVLAN
	}
	if df {
		p.Flags |= FlagDF
	}
	return innerOff + innerLen, nil
}
