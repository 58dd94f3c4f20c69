package ipvs

// FULLNAT (the Alibaba fork's ip_vs_fnat_xmit): in, the source becomes a
// local address of the director and the destination the real server; out,
// the source becomes the VIP and the destination the client. The real
// server only ever sees the director, so its replies come back here, and
// ICMP errors are translated through both pairs.

import (
	"lvslab/conntrack"
	"lvslab/rewrite"
)

// fnatIn rewrites a client packet for real server d from c's local address
// (for TCP also the sequence remap, and the TOA, which may move the frame
// into slot to grow it).
func (e *Engine) fnatIn(w *worker, in *Iface, slot []byte, frame []byte, p *rewrite.Packet, c *conntrack.Conn, d *Dest, now int64) {
	if e.ttlExpired(w, in, frame, p) || e.mtuExceeded(w, in, frame, p, d.out.MTU) {
		return
	}
	if p.Protocol == rewrite.ProtoTCP {
		frame = e.fnatTCPIn(w, slot, frame, p, c, d.out.MTU, now)
	}
	if err := rewrite.FULLNATIn(frame, p, c.Local(), c.Real()); err != nil {
		e.ctr[rxMalformed]++
		return
	}
	e.transmit(w, d.out, d.nh, frame, now)
}

// fnatOut rewrites a real server's reply to come from the VIP to the client.
func (e *Engine) fnatOut(w *worker, in *Iface, frame []byte, p *rewrite.Packet, c *conntrack.Conn, now int64) {
	out, nh, ok := e.clientRoute(c)
	if !ok {
		e.ctr[rxNeighFail]++
		return
	}
	complete(frame, p)
	if e.ttlExpired(w, in, frame, p) || e.mtuExceeded(w, in, frame, p, out.MTU) {
		return
	}
	if p.Protocol == rewrite.ProtoTCP {
		e.fnatTCPOut(w, frame, p)
	}
	if err := rewrite.FULLNATOut(frame, p, c.Virtual(), c.Client()); err != nil {
		e.ctr[rxMalformed]++
		return
	}
	e.transmit(w, out, nh, frame, now)
}

// fnatICMPIn translates an error about a reply (quote VIP → client) for the
// real server: local → RS outside, RS → local quoted.
func (e *Engine) fnatICMPIn(w *worker, frame []byte, p *rewrite.Packet, c *conntrack.Conn, d *Dest, now int64) {
	if rewrite.FULLNATInICMP(frame, p, c.Local(), c.Real()) != nil {
		e.ctr[rxMalformed]++
		return
	}
	e.transmit(w, d.out, d.nh, frame, now)
}

// fnatICMPOut translates an error about a request (quote local → RS) for
// the client: VIP → client outside, client → VIP quoted.
func (e *Engine) fnatICMPOut(w *worker, frame []byte, p *rewrite.Packet, c *conntrack.Conn, now int64) {
	out, nh, ok := e.clientRoute(c)
	if !ok || rewrite.FULLNATOutICMP(frame, p, c.Virtual(), c.Client()) != nil {
		e.ctr[rxNeighFail]++
		return
	}
	e.transmit(w, out, nh, frame, now)
}
