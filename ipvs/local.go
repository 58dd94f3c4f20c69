package ipvs

// The local stack for the addresses lvsd owns: what the director's own
// kernel would do for a VIP it held, ARP, echo replies, RST and ICMP
// unreachable for what no service takes, and the ICMP errors forwarding
// itself raises (TTL exceeded, fragmentation needed).

import (
	"lvslab/rewrite"
)

// defaultTTL is ip_default_ttl, for packets lvsd originates.
const defaultTTL = 64

// ARP is unauthenticated, so what it may change is narrow, as in Linux's
// arp_process: a sender is learned only on the interface whose subnet holds
// it (an address claimed from another link would send that neighbour's
// traffic there), only into an entry lvsd created by asking (unsolicited
// ARP never grows the table), and never from a sender no host can be: a
// group or zero hardware address, a martian IP or one of ours.
func (e *Engine) handleARP(w *worker, in *Iface, frame []byte, p *rewrite.Packet, now int64) {
	a := rewrite.ARP(frame[p.L3:p.End])
	if badHardwareAddr(a.SenderMAC()) {
		e.ctr[rxARPBadSenderMAC]++
		return
	}
	// 0.0.0.0 is a duplicate address probe (RFC 5227): answered, not learned.
	if sender := a.SenderIP(); !sender.IsUnspecified() {
		if s := sender.As4(); martianAddr(s) || e.ownAddr(s) {
			// A director that released a VIP hears the owner announce it:
			// normal, not counted.
			if !e.answersARP(sender) || !e.released(sender) {
				e.ctr[rxARPBadSenderIP]++
			}
			return // the kernel answers no request from its own address either
		}
		switch n := e.neigh.get(in, sender); {
		case !e.onLink(in, sender):
			e.ctr[rxARPWrongIface]++
		case n == nil:
			e.ctr[rxARPUnsolicited]++
		default:
			e.neigh.learn(sender, a.SenderMAC(), in, now, false)
			if len(n.queue) > 0 {
				e.releaseQueue(w, n)
			}
		}
	}
	if a.Op() != rewrite.ARPRequest || !e.answersARP(a.TargetIP()) || e.released(a.TargetIP()) {
		return
	}
	out := w.genBuf()
	if out == nil {
		e.ctr[txErrors]++
		return
	}
	n, err := rewrite.BuildARPReply(out, frame, p, in.MAC)
	if err != nil {
		e.ctr[txErrors]++
		return
	}
	e.ctr[rxARPReplies]++
	w.queue(in, out[:n])
}

// handleOwned deals with a packet to a VIP that belongs to no connection.
func (e *Engine) handleOwned(w *worker, in *Iface, slot []byte, frame []byte, p *rewrite.Packet, now int64) {
	switch p.Protocol {
	case rewrite.ProtoICMP:
		if p.ICMPType == rewrite.ICMPEchoRequest && !e.released(p.Dst) {
			if err := rewrite.EchoReply(frame, p, defaultTTL); err == nil {
				e.ctr[rxEchoReplies]++
				w.queue(in, frame)
			}
		}
		return
	case rewrite.ProtoTCP, rewrite.ProtoUDP:
		e.newConn(w, in, slot, frame, p, now)
	}
}

// refuse answers a packet to a VIP that no service takes.
func (e *Engine) refuse(w *worker, in *Iface, frame []byte, p *rewrite.Packet) {
	switch p.Protocol {
	case rewrite.ProtoTCP:
		if p.TCPFlags&rewrite.TCPFlagRST != 0 {
			return
		}
		out := w.genBuf()
		if out == nil {
			e.ctr[txErrors]++
			return
		}
		n, err := rewrite.BuildTCPReset(out, frame, p, defaultTTL)
		if err != nil {
			return
		}
		e.ctr[rxResets]++
		w.queue(in, out[:n])
	case rewrite.ProtoUDP:
		e.sendICMPError(w, in, frame, p, rewrite.ICMPDestUnreach, rewrite.ICMPCodePortUnreach, 0)
	}
}

// sendICMPError answers frame with an ICMP error out of the interface it
// came in on, back to the MAC it came from.
func (e *Engine) sendICMPError(w *worker, in *Iface, frame []byte, p *rewrite.Packet, typ, code uint8, rest uint32) {
	out := w.genBuf()
	if out == nil {
		e.ctr[txErrors]++
		return
	}
	src := p.Dst
	if !e.isOwned(src) {
		src = in.srcFor(p.Src)
	}
	e.ipID++
	n, err := rewrite.BuildICMPError(out, frame, p, typ, code, rest, rewrite.ReplyIP{Src: src, TTL: defaultTTL, ID: e.ipID})
	if err != nil {
		return
	}
	if typ == rewrite.ICMPDestUnreach && code != rewrite.ICMPCodeFragNeeded {
		e.ctr[rxPortUnreach]++
	}
	w.queue(in, out[:n])
}

// ttlExpired answers a packet that may not be forwarded any further.
func (e *Engine) ttlExpired(w *worker, in *Iface, frame []byte, p *rewrite.Packet) bool {
	if rewrite.IPv4(frame[p.L3:p.L4]).TTL() > 1 {
		return false
	}
	e.ctr[rxTTLExpired]++
	e.sendICMPError(w, in, frame, p, rewrite.ICMPTimeExceeded, rewrite.ICMPCodeTTLExceeded, 0)
	return true
}

// mtuExceeded answers a DF packet too long for the way out (ensure_mtu_is_adequate).
func (e *Engine) mtuExceeded(w *worker, in *Iface, frame []byte, p *rewrite.Packet, mtu int) bool {
	// Almost every packet fits: CheckMTU's validation of p is the
	// transform's to do, which follows.
	if p.End-p.L3 <= mtu || rewrite.CheckMTU(frame, p, mtu) == nil {
		return false
	}
	e.ctr[rxFragNeeded]++
	e.sendICMPError(w, in, frame, p, rewrite.ICMPDestUnreach, rewrite.ICMPCodeFragNeeded, uint32(mtu))
	return true
}
