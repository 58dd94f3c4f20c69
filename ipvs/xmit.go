package ipvs

// Transmit dispatch, as the kernel's ip_vs_xmit.c: each forwarding method is
// one transmit stage with its in (client → real server), out (real server →
// client) and ICMP-error paths, in xmit_<method>.go. The dispatch is a switch
// on the connection's method, not an interface call per packet, so the hot
// path stays direct calls the compiler can see.

import (
	"math"
	"net/netip"

	"lvslab/conntrack"
	"lvslab/rewrite"
)

// xmitIn sends a client→server packet of connection c on toward its real
// server d.
func (e *Engine) xmitIn(w *worker, in *Iface, slot []byte, frame []byte, p *rewrite.Packet, c *conntrack.Conn, d *Dest, now int64) {
	if d.local {
		complete(frame, p)
		e.localIn(frame)
		return
	}
	if d.out == nil {
		e.ctr[rxNeighFail]++
		return
	}
	complete(frame, p)
	switch c.Fwd() {
	case conntrack.FwdRoute:
		e.drIn(w, in, frame, p, d, now)
	case conntrack.FwdMasq:
		e.natIn(w, in, frame, p, c, d, now)
	case conntrack.FwdTunnel:
		e.tunIn(w, in, slot, frame, p, d, now)
	case conntrack.FwdFullNAT:
		e.fnatIn(w, in, slot, frame, p, c, d, now)
	}
}

// xmitOut sends a server→client packet of connection c on toward the client.
func (e *Engine) xmitOut(w *worker, in *Iface, frame []byte, p *rewrite.Packet, c *conntrack.Conn, now int64) {
	switch c.Fwd() {
	case conntrack.FwdMasq:
		e.natOut(w, in, frame, p, c, now)
	case conntrack.FwdFullNAT:
		e.fnatOut(w, in, frame, p, c, now)
	default:
		// DR and TUN real servers answer the client directly.
		e.ctr[rxIgnored]++
	}
}

// xmitICMPIn relays an ICMP error from the client side about a reply of
// connection c (quote: VIP → client) to its real server d, which has a way
// out (d.out is set).
func (e *Engine) xmitICMPIn(w *worker, frame []byte, p *rewrite.Packet, c *conntrack.Conn, d *Dest, now int64) {
	switch c.Fwd() {
	case conntrack.FwdRoute:
		e.drICMPIn(w, frame, p, d, now)
	case conntrack.FwdMasq:
		e.natICMPIn(w, frame, p, c, d, now)
	case conntrack.FwdTunnel:
		e.tunICMPIn(w, frame, p, d, now)
	case conntrack.FwdFullNAT:
		e.fnatICMPIn(w, frame, p, c, d, now)
	}
}

// xmitICMPOut relays an ICMP error from the real-server side about a
// request of connection c to the client. It returns false when the method
// has no out path (DR, TUN: the error is not about anything lvsd sent).
func (e *Engine) xmitICMPOut(w *worker, frame []byte, p *rewrite.Packet, c *conntrack.Conn, now int64) bool {
	switch c.Fwd() {
	case conntrack.FwdMasq:
		e.natICMPOut(w, frame, p, c, now)
		return true
	case conntrack.FwdFullNAT:
		e.fnatICMPOut(w, frame, p, c, now)
		return true
	}
	return false
}

// segmentMTU is the largest packet the method can send toward d without
// "fragmentation needed": what a GSO super-frame is cut for.
func segmentMTU(fwd conntrack.Fwd, d *Dest) int {
	if fwd == conntrack.FwdTunnel && d.out != nil {
		return d.out.MTU - rewrite.IPIPOverhead
	}
	return math.MaxInt
}

// translatesPort says whether the method rewrites the destination port: NAT
// and FULLNAT do; DR and TUN keep the client's (ipvsadm forces it anyway).
func translatesPort(fwd conntrack.Fwd) bool {
	return fwd == conntrack.FwdMasq || fwd == conntrack.FwdFullNAT
}

// clientRoute finds where packets to the client of c leave.
func (e *Engine) clientRoute(c *conntrack.Conn) (*Iface, netip.Addr, bool) {
	r, nh, ok := e.routes.Lookup(c.Client().Addr())
	out := e.byIndex[r.Ifindex]
	return out, nh, ok && out != nil
}

// complete finishes a CHECKSUM_PARTIAL frame: frames lvsd transmits carry no
// offload metadata, so the receiver checks every byte.
func complete(frame []byte, p *rewrite.Packet) {
	if p.Partial {
		_ = rewrite.CompletePartial(frame, p)
	}
}

// transmit sets the next hop's MACs and queues frame on out, or holds a copy
// until the neighbour answers (the MACs are set on release).
func (e *Engine) transmit(w *worker, out *Iface, nh netip.Addr, frame []byte, now int64) {
	mac, ok := e.neighFor(out, nh, now)
	if !ok {
		e.enqueue(w, out, nh, frame, now, nil)
		return
	}
	if rewrite.SetMACs(frame, mac, out.MAC) == nil {
		w.queue(out, frame)
	}
}
