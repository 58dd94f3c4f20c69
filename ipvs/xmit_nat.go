package ipvs

// NAT (ip_vs_nat_xmit, and ip_vs_out's handling of replies): in, the
// destination becomes the real server; out, the source becomes the VIP;
// ICMP errors are translated through the same pair, quote included.

import (
	"lvslab/conntrack"
	"lvslab/rewrite"
)

// natIn rewrites a client packet for real server d.
func (e *Engine) natIn(w *worker, in *Iface, frame []byte, p *rewrite.Packet, c *conntrack.Conn, d *Dest, now int64) {
	if e.ttlExpired(w, in, frame, p) || e.mtuExceeded(w, in, frame, p, d.out.MTU) {
		return
	}
	if err := rewrite.NATIn(frame, p, c.Real()); err != nil {
		e.ctr[rxMalformed]++
		return
	}
	e.transmit(w, d.out, d.nh, frame, now)
}

// natOut rewrites a real server's reply back to the VIP and routes it to the
// client.
func (e *Engine) natOut(w *worker, in *Iface, frame []byte, p *rewrite.Packet, c *conntrack.Conn, now int64) {
	out, nh, ok := e.clientRoute(c)
	if !ok {
		e.ctr[rxNeighFail]++
		return
	}
	complete(frame, p)
	if e.ttlExpired(w, in, frame, p) || e.mtuExceeded(w, in, frame, p, out.MTU) {
		return
	}
	if err := rewrite.NATOut(frame, p, c.Virtual()); err != nil {
		e.ctr[rxMalformed]++
		return
	}
	e.transmit(w, out, nh, frame, now)
}

// natICMPIn translates an error about a reply for real server d.
func (e *Engine) natICMPIn(w *worker, frame []byte, p *rewrite.Packet, c *conntrack.Conn, d *Dest, now int64) {
	if rewrite.NATInICMP(frame, p, c.Real()) != nil {
		e.ctr[rxMalformed]++
		return
	}
	e.transmit(w, d.out, d.nh, frame, now)
}

// natICMPOut translates an error about a request for the client.
func (e *Engine) natICMPOut(w *worker, frame []byte, p *rewrite.Packet, c *conntrack.Conn, now int64) {
	out, nh, ok := e.clientRoute(c)
	if !ok || rewrite.NATOutICMP(frame, p, c.Virtual()) != nil {
		e.ctr[rxNeighFail]++
		return
	}
	e.transmit(w, out, nh, frame, now)
}
