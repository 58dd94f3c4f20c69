package ipvs

// Direct routing (ip_vs_dr_xmit): the IP packet is kept, only the MACs
// change (and the TTL, as forwarding does). A DR real server answers the
// client directly, so there is no out path.

import "lvslab/rewrite"

// drIn forwards a client packet to real server d.
func (e *Engine) drIn(w *worker, in *Iface, frame []byte, p *rewrite.Packet, d *Dest, now int64) {
	if e.ttlExpired(w, in, frame, p) || e.mtuExceeded(w, in, frame, p, d.out.MTU) {
		return
	}
	// The MACs are set by transmit, once the neighbour is known.
	if rewrite.DR(frame, p, rewrite.MAC{}, d.out.MAC) != nil {
		return
	}
	e.transmit(w, d.out, d.nh, frame, now)
}

// drICMPIn relays an ICMP error unchanged to real server d.
func (e *Engine) drICMPIn(w *worker, frame []byte, p *rewrite.Packet, d *Dest, now int64) {
	if rewrite.DR(frame, p, rewrite.MAC{}, d.out.MAC) != nil {
		return
	}
	e.transmit(w, d.out, d.nh, frame, now)
}
