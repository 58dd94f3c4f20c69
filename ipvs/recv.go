package ipvs

// Receive dispatch (ip_vs_in / ip_vs_out in the kernel): every frame read
// from an interface comes here first and goes to exactly one of the local
// stack (local.go: ARP, ping, refusals for owned addresses), connection
// handling (conn.go), the ICMP-error relay (icmp.go), or the kernel.

import (
	"errors"
	"net/netip"
	"time"

	"lvslab/capture"
	"lvslab/conntrack"
	"lvslab/rewrite"
)

// handle processes received frame i of the worker's batch.
func (e *Engine) handle(w *worker, in *Iface, i int, now int64) {
	f := &w.rx[i]
	e.ctr[rxFrames]++
	if f.PktType == capture.PacketOutgoing || f.PktType == capture.PacketOtherHost {
		e.ctr[rxIgnored]++
		return
	}
	if f.Truncated() {
		e.oversized(in, f.Len, now)
		return
	}
	if f.Oversized {
		e.segment(w, in, f.Data(), f.Len, now)
		return
	}
	w.cur = i
	e.handleFrame(w, in, f.Data(), w.slots[i], f.CsumNotReady, now)
	w.cur = -1
}

// segment cuts a TCP segmentation-offload super-frame (veth delivers them
// whole when the sender has TSO on) into MTU-sized segments, as the wire
// would have, and handles each. Anything else too long is dropped and
// counted.
func (e *Engine) segment(w *worker, in *Iface, frame []byte, wireLen int, now int64) {
	gp := &w.gp
	if rewrite.Parse(frame, gp) != nil || gp.Protocol != rewrite.ProtoTCP {
		e.oversized(in, wireLen, now)
		return
	}
	// Cut for the path the segments will take: a tunnel adds a header, and
	// segments cut for the link would each bounce with "fragmentation
	// needed" (the sender's smaller MSS is not visible in a super-frame).
	mtu := in.MTU
	tup := conntrack.Tuple{Proto: gp.Protocol, Src: gp.Src.As4(), SrcPort: gp.SrcPort, Dst: gp.Dst.As4(), DstPort: gp.DstPort}
	if id, dir := e.conns.Lookup(tup); id != 0 && dir == conntrack.DirIn {
		mtu = min(mtu, segmentMTU(e.conns.Conn(id).Fwd(), destOf(e.conns.Dest(id))))
	}
	// Segment buffers are recycled per super-frame: send what is queued.
	e.flush(w)
	_, err := rewrite.SegmentTCP(frame, gp, mtu, headroom, w.nextSeg, func(seg []byte) {
		e.ctr[rxSegments]++
		e.handleFrame(w, in, seg, w.segs[w.nseg-1], false, now)
	})
	if err != nil {
		e.oversized(in, wireLen, now)
	}
	e.flush(w)
}

// handleFrame processes one frame; slot is a buffer whose [headroom:] the
// frame may be moved to when it must grow.
func (e *Engine) handleFrame(w *worker, in *Iface, frame, slot []byte, partial bool, now int64) {
	p := &w.p
	if err := rewrite.Parse(frame, p); err != nil {
		e.parseError(w, in, frame, p, err, now)
		return
	}
	if p.EtherType == rewrite.EtherTypeARP {
		e.handleARP(w, in, frame, p, now)
		return
	}
	p.Partial = partial
	if p.L4-p.L3 > rewrite.IPv4MinHeaderLen && e.isOwned(p.Dst) {
		e.ctr[rxIPOptions]++ // forwarded like any packet, as IPVS does
	}
	switch p.Protocol {
	case rewrite.ProtoTCP, rewrite.ProtoUDP:
		if e.handleConn(w, in, slot, frame, p, now) {
			return
		}
	case rewrite.ProtoICMP:
		if p.Flags&rewrite.FlagICMPError != 0 && !e.martianSource(p) && e.handleICMPError(w, in, frame, p, now) {
			return
		}
	}
	if !e.isOwned(p.Dst) && !e.kernelAddrService(frame, p) && !(len(e.marks) > 0 && p.HasL4() && e.classify(frame, p) != 0) {
		e.ctr[rxIgnored]++ // the kernel's business
		return
	}
	if e.martianSource(p) {
		// The kernel's input path drops these before IPVS sees them: no
		// connection, no RST or echo reply to an address no host has.
		e.ctr[rxMartian]++
		return
	}
	e.handleOwned(w, in, slot, frame, p, now)
}

// isOwned says whether every packet to a is lvsd's: a VIP the kernel does
// not hold. An address the kernel also holds (the director's own) is lvsd's
// only on its services' ports (kernelAddrService), as with the kernel's
// IPVS, which intercepts only the service's port.
func (e *Engine) isOwned(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	k := a.As4()
	return e.owned[k] > 0 && !e.localAddrs[k]
}

// kernelAddrService says whether p is for a service on one of the kernel's
// own addresses.
func (e *Engine) kernelAddrService(frame []byte, p *rewrite.Packet) bool {
	if (p.Protocol != rewrite.ProtoTCP && p.Protocol != rewrite.ProtoUDP) || !p.Dst.Is4() || e.owned[p.Dst.As4()] == 0 {
		return false
	}
	return e.lookupService(frame, p) != nil
}

// answersARP says whether lvsd announces a: the VIPs of its services and the
// addresses its fwmark classifier rules claim.
// A service address the kernel also holds is announced too: it may sit on
// lo with arp_ignore set (a director that is also a real server), where the
// kernel would not answer; on an interface both answer with its MAC.
func (e *Engine) answersARP(a netip.Addr) bool {
	return a.Is4() && (e.owned[a.As4()] > 0 || e.markAddrs[a.As4()])
}

// parseError counts a frame Parse refused. Fragments and unknown protocols
// to a VIP are ours to refuse (the kernel never sees them); everything else
// not addressed to a VIP is left to the kernel.
func (e *Engine) parseError(w *worker, in *Iface, frame []byte, p *rewrite.Packet, err error, now int64) {
	var r rewrite.Reason
	if !errors.As(err, &r) {
		e.ctr[rxMalformed]++
		return
	}
	switch r {
	case rewrite.ErrUnknownEtherType:
		e.ctr[rxIgnored]++ // IPv6, LLDP, ...: not ours
		return
	case rewrite.ErrFragment, rewrite.ErrUnknownProtocol:
		if !e.isOwned(p.Dst) {
			e.ctr[rxIgnored]++
			return
		}
		if r == rewrite.ErrFragment {
			e.ctr[rxFragment]++
			return
		}
		e.ctr[rxUnknownProto]++
		// The VIP is a local address of the director: the kernel would
		// answer an unknown protocol with protocol unreachable.
		e.sendICMPError(w, in, frame, p, rewrite.ICMPDestUnreach, rewrite.ICMPCodeProtoUnreach, 0)
		return
	}
	e.parse[r]++
	e.ctr[rxMalformed]++
}

func (e *Engine) oversized(in *Iface, wireLen int, now int64) {
	e.ctr[rxOversized]++
	if now-e.lastOversizeWarn > int64(10*time.Second) {
		e.lastOversizeWarn = now
		e.log.Warn("dropping oversized frames (non-TCP or truncated GSO/GRO aggregates): turn offloads off, e.g. ethtool -K <peer> tso off gso off, and gro/lro off here",
			"iface", in.Name, "len", wireLen, "mtu", in.MTU, "count", e.ctr[rxOversized])
	}
}

// handleARP answers requests for owned addresses and learns neighbours.
//
