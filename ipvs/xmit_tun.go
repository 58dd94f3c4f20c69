package ipvs

// IP-in-IP tunnelling (ip_vs_tunnel_xmit): the packet is kept whole inside
// an outer IPv4 header from the director to the real server, which answers
// the client directly, so there is no out path.

import (
	"errors"

	"lvslab/rewrite"
)

// tunIn encapsulates a client packet in IP-in-IP in place, using the
// slot's headroom.
func (e *Engine) tunIn(w *worker, in *Iface, slot []byte, frame []byte, p *rewrite.Packet, d *Dest, now int64) {
	if e.ttlExpired(w, in, frame, p) {
		return
	}
	mac, ok := e.neighFor(d.out, d.nh, now)
	if !ok {
		// Resolve first; the encapsulation happens when the frame is
		// released (a copy is kept, so redo everything then).
		e.enqueue(w, d.out, d.nh, frame, now, func(b []byte, mac rewrite.MAC) []byte {
			var q rewrite.Packet
			if rewrite.Parse(b, &q) != nil {
				return nil
			}
			out := make([]byte, len(b)+rewrite.IPIPOverhead+4)
			t := e.ipipFor(d, mac)
			n, err := rewrite.EncapIPIP(out, b, &q, &t)
			if err != nil {
				return nil
			}
			return out[:n]
		})
		return
	}
	t := e.ipipFor(d, mac)
	if len(frame) > len(slot)-headroom {
		e.ctr[rxOversized]++
		return
	}
	if &frame[0] != &slot[headroom] {
		// Lent from the ring, which has no headroom: move it into the slot
		// (the Packet's offsets are relative to the frame, so they hold).
		frame = slot[headroom : headroom+copy(slot[headroom:], frame)]
	}
	// frame starts at slot[headroom:]; out = slot[headroom-20:] makes the
	// inner packet land where it already is.
	out := slot[headroom-rewrite.IPIPOverhead:]
	n, err := rewrite.EncapIPIP(out, frame, p, &t)
	switch {
	case err == nil:
		w.queue(d.out, out[:n])
	case errors.Is(err, rewrite.ErrFragNeeded):
		// The client must send smaller packets: tell it the tunnel MTU.
		e.ctr[rxFragNeeded]++
		e.sendICMPError(w, in, frame, p, rewrite.ICMPDestUnreach, rewrite.ICMPCodeFragNeeded, uint32(t.FragNeededMTU()))
	default:
		e.ctr[rxMalformed]++
	}
}

// tunICMPIn relays an ICMP error to real server d, encapsulated.
func (e *Engine) tunICMPIn(w *worker, frame []byte, p *rewrite.Packet, d *Dest, now int64) {
	mac, ok := e.neighFor(d.out, d.nh, now)
	if !ok {
		e.ctr[rxNeighFail]++
		return
	}
	out := make([]byte, len(frame)+rewrite.IPIPOverhead+4) // rare: an ICMP error
	t := e.ipipFor(d, mac)
	if n, err := rewrite.EncapIPIP(out, frame, p, &t); err == nil {
		w.queue(d.out, out[:n])
	}
}

func (e *Engine) ipipFor(d *Dest, mac rewrite.MAC) rewrite.IPIP {
	e.ipID++
	return rewrite.IPIP{Src: d.src, Dst: d.Addr, DstMAC: mac, SrcMAC: d.out.MAC, MTU: d.out.MTU, ID: e.ipID}
}
