package ipvs

import (
	"lvslab/conntrack"
	"lvslab/rewrite"
)

// handleICMPError relays an ICMP error about a tracked connection to the
// other side (ip_vs_in_icmp / ip_vs_out_icmp). The quoted packet is the one
// the error is about, so the connection is found by the
// quote reversed: an error from the client side about a reply finds the
// connection in the In direction, one from a NAT real server about a request
// finds it in the Out direction.
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
	d := destOf(sd)
	c := e.conns.Conn(id)
	if dir == conntrack.DirOut {
		if c.Fwd() != conntrack.FwdMasq {
			return false
		}
		client := c.Client().Addr()
		r, nh, ok := e.routes.Lookup(client)
		out := e.byIndex[r.Ifindex]
		if !ok || out == nil || rewrite.NATOutICMP(frame, p, c.Virtual()) != nil {
			e.ctr[rxNeighFail]++
			return true
		}
		e.transmit(w, out, nh, frame, now, func(mac rewrite.MAC) error { return rewrite.SetMACs(frame, mac, out.MAC) })
		return true
	}
	if d.out == nil {
		e.ctr[rxNeighFail]++
		return true
	}
	switch c.Fwd() {
	case conntrack.FwdMasq:
		if rewrite.NATInICMP(frame, p, c.Real()) != nil {
			e.ctr[rxMalformed]++
			return true
		}
		e.transmit(w, d.out, d.nh, frame, now, func(mac rewrite.MAC) error { return rewrite.SetMACs(frame, mac, d.out.MAC) })
	case conntrack.FwdRoute:
		// DR/TUN relay the error unchanged to the real server.
		e.transmit(w, d.out, d.nh, frame, now, func(mac rewrite.MAC) error { return rewrite.DR(frame, p, mac, d.out.MAC) })
	case conntrack.FwdTunnel:
		mac, ok := e.neighFor(d.out, d.nh, now)
		if !ok {
			e.ctr[rxNeighFail]++
			return true
		}
		out := make([]byte, len(frame)+rewrite.IPIPOverhead+4) // rare: an ICMP error
		t := e.ipipFor(d, mac)
		if n, err := rewrite.EncapIPIP(out, frame, p, &t); err == nil {
			w.queue(d.out, out[:n])
		}
	}
	return true
}
