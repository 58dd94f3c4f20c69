package ipvs

import (
	"lvslab/conntrack"
	"lvslab/rewrite"
)

// handleICMPError relays an ICMP error about a tracked connection to the
// other side (ip_vs_in_icmp / ip_vs_out_icmp) through the connection's
// transmit stage. The quoted packet is the one the error is about, so the
// connection is found by the quote reversed: an error from the client side
// about a reply finds the connection in the In direction, one from a NAT
// real server about a request finds it in the Out direction.
func (e *Engine) handleICMPError(w *worker, in *Iface, frame []byte, p *rewrite.Packet, now int64) bool {
	q := &p.Quote
	if q.Protocol != rewrite.ProtoTCP && q.Protocol != rewrite.ProtoUDP {
		return false
	}
	tup := conntrack.Tuple{Proto: q.Protocol, Src: q.Dst.As4(), SrcPort: q.DstPort, Dst: q.Src.As4(), DstPort: q.SrcPort}
	id, dir := e.conns.Lookup(tup)
	if id == 0 {
		return false
	}
	sd := e.conns.Dest(id)
	if !sd.Available() {
		e.ctr[rxDestGone]++
		return true
	}
	c := e.conns.Conn(id)
	if dir == conntrack.DirOut {
		return e.xmitICMPOut(w, frame, p, c, now)
	}
	d := destOf(sd)
	if d.out == nil {
		e.ctr[rxNeighFail]++
		return true
	}
	e.xmitICMPIn(w, frame, p, c, d, now)
	return true
}
