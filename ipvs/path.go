package ipvs

import (
	"errors"
	"net/netip"
	"time"

	"lvslab/capture"
	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/rewrite"
	"lvslab/sched"
)

// defaultTTL is ip_default_ttl, for packets lvsd originates.
const defaultTTL = 64

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
	e.handleFrame(w, in, f.Data(), w.slots[i], f.CsumNotReady, now)
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
		if d := destOf(e.conns.Dest(id)); d.cfg.Forward == config.ForwardTunnel && d.out != nil {
			mtu = min(mtu, d.out.MTU-rewrite.IPIPOverhead)
		}
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
		e.sendICMPError(w, in, frame, p, 3, 2, 0)
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
			// A backup director (NoARP) hears the master announce the VIPs
			// it holds rules for: normal, not counted.
			if !e.cfg.NoARP || !e.answersARP(sender) {
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
	if e.cfg.NoARP || a.Op() != rewrite.ARPRequest || !e.answersARP(a.TargetIP()) {
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

// handleConn forwards a TCP/UDP packet of a known connection. It returns
// false when there is none (or a SYN reuses a closing one), so the caller
// treats the packet as new.
func (e *Engine) handleConn(w *worker, in *Iface, slot []byte, frame []byte, p *rewrite.Packet, now int64) bool {
	tup := conntrack.Tuple{Proto: p.Protocol, Src: p.Src.As4(), SrcPort: p.SrcPort, Dst: p.Dst.As4(), DstPort: p.DstPort}
	id, dir := e.conns.Lookup(tup)
	if id == 0 {
		return false
	}
	if dir == conntrack.DirIn && p.Protocol == rewrite.ProtoTCP && p.TCPFlags&rewrite.TCPFlagSYN != 0 &&
		p.TCPFlags&rewrite.TCPFlagACK == 0 && e.conns.ReuseOnSYN(id, max(e.cfg.ConnReuseMode, 0)) {
		e.conns.ExpireNow(id, now)
		return false
	}
	sd := e.conns.Dest(id)
	if !sd.Available() {
		if e.cfg.ExpireNodestConn && dir == conntrack.DirIn {
			e.conns.ExpireNow(id, now)
			return false
		}
		e.ctr[rxDestGone]++
		return true
	}
	d := destOf(sd)
	size := p.End - p.L3
	e.conns.Step(id, dir, p.TCPFlags, size, now)
	c := e.conns.Conn(id)
	if dir == conntrack.DirIn {
		d.stats.in(size)
		d.svc.stats.in(size)
		e.forwardIn(w, in, slot, frame, p, c, d, now)
		return true
	}
	d.stats.out(size)
	d.svc.stats.out(size)
	e.forwardOut(w, in, frame, p, c, now)
	return true
}

// handleOwned deals with a packet to a VIP that belongs to no connection.
func (e *Engine) handleOwned(w *worker, in *Iface, slot []byte, frame []byte, p *rewrite.Packet, now int64) {
	switch p.Protocol {
	case rewrite.ProtoICMP:
		if p.ICMPType == rewrite.ICMPEchoRequest && !e.cfg.NoARP {
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

// lookupService finds the service a new packet hits: a classifier mark
// first (fwmark services), then protocol/VIP/port, then a port-zero service.
func (e *Engine) lookupService(frame []byte, p *rewrite.Packet) *Service {
	if len(e.marks) > 0 {
		if m := e.classify(frame, p); m != 0 {
			if s := e.byMark[m]; s != nil {
				return s
			}
		}
	}
	k := svcKey{proto: p.Protocol, addr: p.Dst.As4(), port: p.DstPort}
	if s := e.byKey[k]; s != nil {
		return s
	}
	k.port = 0
	if s := e.byKey[k]; s != nil && s.persist != nil {
		return s
	}
	return nil
}

// newConn schedules a new connection (ip_vs_schedule / ip_vs_sched_persist)
// and forwards its first packet.
func (e *Engine) newConn(w *worker, in *Iface, slot []byte, frame []byte, p *rewrite.Packet, now int64) {
	svc := e.lookupService(frame, p)
	if svc == nil {
		// Other ports of a VIP are refused, as the director's own stack
		// would refuse them: RST for TCP, port unreachable for UDP.
		e.ctr[rxNoService]++
		e.refuse(w, in, frame, p)
		return
	}
	if p.Protocol == rewrite.ProtoTCP && p.TCPFlags&rewrite.TCPFlagSYN == 0 {
		// tcp_conn_schedule: only a SYN creates a connection (sloppy_tcp=0);
		// anything else falls to the local stack, which resets it.
		e.ctr[rxNotSyn]++
		e.refuse(w, in, frame, p)
		return
	}
	if p.Protocol == rewrite.ProtoTCP && p.TCPFlags&rewrite.TCPFlagACK != 0 {
		e.ctr[rxNotSyn]++ // a SYN-ACK from outside is not a new connection
		e.refuse(w, in, frame, p)
		return
	}
	if e.conns.DropPacket() {
		// drop_packet (tcp_conn_schedule's ip_vs_todrop): under pressure,
		// 1 in rate new connections is dropped before scheduling.
		e.ctr[defPacketDropped]++
		return
	}
	// The flow lives in the worker: passed to an interface method it would
	// escape to the heap on every new connection.
	flow := &w.flow
	*flow = sched.Flow{Proto: p.Protocol, SrcAddr: p.Src, DstAddr: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort, Now: now}
	var (
		sd   *sched.Dest
		tmpl conntrack.ConnID
	)
	if svc.persist != nil {
		key, err := svc.persist.Key(p.Protocol, p.Src, p.Dst, p.DstPort)
		if err != nil {
			e.ctr[rxNoDest]++
			return
		}
		tmpl = e.conns.LookupTemplate(&key, e.cfg.ExpireQuiescentTemplate)
		if tmpl != 0 {
			sd = e.conns.Dest(tmpl)
		} else {
			sd = svc.sched.Schedule(flow)
			if sd != nil {
				e.makeRoom(now, 0)
				tmpl, err = e.conns.NewTemplate(&key, sd, svc.persist.Timeout, now)
				if err != nil {
					e.ctr[rxTableFull]++
					return
				}
			}
		}
	} else {
		sd = svc.sched.Schedule(flow)
	}
	if sd == nil {
		// ip_vs_leave: "no destination available" is port unreachable,
		// for TCP too.
		e.ctr[rxNoDest]++
		e.sendICMPError(w, in, frame, p, 3, rewrite.ICMPCodePortUnreach, 0)
		return
	}
	d := destOf(sd)
	fwd, _ := fwdOf(d.cfg.Forward)
	params := conntrack.ConnParams{
		Proto:    p.Protocol,
		Client:   netip.AddrPortFrom(p.Src, p.SrcPort),
		Virtual:  netip.AddrPortFrom(p.Dst, p.DstPort),
		Dest:     sd,
		DestPort: conntrack.DestPort(svc.persist != nil, p.DstPort, svc.cfg.Port, d.Port),
		Fwd:      fwd,
		Template: tmpl,
	}
	if d.cfg.Forward != config.ForwardMasq {
		// DR and TUN keep the destination port (ipvsadm forces it anyway).
		params.DestPort = p.DstPort
	}
	params.OnePacket = svc.cfg.OnePacket && p.Protocol == rewrite.ProtoUDP
	e.makeRoom(now, tmpl)
	id, err := e.conns.NewConn(&params, now)
	if err != nil {
		e.ctr[rxTableFull]++
		if now-e.lastFullWarn > int64(10*time.Second) {
			e.lastFullWarn = now
			e.log.Warn("connection table full: new connections are refused (raise --max-conns; against a SYN flood, --drop-entry 1)",
				"conns", e.conns.Len(), "refused", e.conns.Stats().Refused)
		}
		return
	}
	d.stats.conns++
	svc.stats.conns++
	size := p.End - p.L3
	e.conns.Step(id, conntrack.DirIn, p.TCPFlags, size, now)
	d.stats.in(size)
	svc.stats.in(size)
	e.forwardIn(w, in, slot, frame, p, e.conns.Conn(id), d, now)
	if params.OnePacket {
		e.conns.Release(id, now)
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
		e.sendICMPError(w, in, frame, p, 3, rewrite.ICMPCodePortUnreach, 0)
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
	if typ == 3 && code != rewrite.ICMPCodeFragNeeded {
		e.ctr[rxPortUnreach]++
	}
	w.queue(in, out[:n])
}

// complete finishes a CHECKSUM_PARTIAL frame: frames lvsd transmits carry no
// offload metadata, so the receiver checks every byte.
func complete(frame []byte, p *rewrite.Packet) {
	if p.Partial {
		_ = rewrite.CompletePartial(frame, p)
	}
}

// forwardIn sends a client→server packet on toward the real server.
func (e *Engine) forwardIn(w *worker, in *Iface, slot []byte, frame []byte, p *rewrite.Packet, c *conntrack.Conn, d *Dest, now int64) {
	if d.local {
		complete(frame, p)
		e.deliverLocal(frame)
		return
	}
	if d.out == nil {
		e.ctr[rxNeighFail]++
		return
	}
	complete(frame, p)
	switch c.Fwd() {
	case conntrack.FwdRoute:
		if e.ttlExpired(w, in, frame, p) || e.mtuExceeded(w, in, frame, p, d.out.MTU) {
			return
		}
		// DR keeps the IP packet: only the MACs change.
		e.transmit(w, d.out, d.nh, frame, now, func(mac rewrite.MAC) error {
			return rewrite.DR(frame, p, mac, d.out.MAC)
		})
	case conntrack.FwdMasq:
		if e.ttlExpired(w, in, frame, p) || e.mtuExceeded(w, in, frame, p, d.out.MTU) {
			return
		}
		if err := rewrite.NATIn(frame, p, c.Real()); err != nil {
			e.ctr[rxMalformed]++
			return
		}
		e.transmit(w, d.out, d.nh, frame, now, func(mac rewrite.MAC) error {
			return rewrite.SetMACs(frame, mac, d.out.MAC)
		})
	case conntrack.FwdTunnel:
		e.tunnel(w, in, slot, frame, p, d, now)
	}
}

// deliverLocal hands a packet for a LOCALNODE real server to our own kernel
// (ip_vs_null_xmit): unchanged but for the destination MAC, which becomes
// the local device's so the stack takes it as its own.
func (e *Engine) deliverLocal(frame []byte) {
	if e.local == nil && e.localErr == nil {
		if e.cfg.OpenLocal == nil {
			e.localErr = errors.New("no local delivery device")
		} else {
			e.local, e.localErr = e.cfg.OpenLocal()
		}
		if e.localErr != nil {
			e.log.Error("LOCALNODE real server: cannot reach the local stack", "err", e.localErr)
		}
	}
	if e.local == nil {
		e.ctr[rxNeighFail]++
		return
	}
	mac := e.local.MAC()
	copy(frame[0:6], mac[:])
	if _, err := e.local.Write(frame); err != nil {
		e.ctr[txErrors]++
		return
	}
	e.ctr[txLocal]++
}

// tunnel encapsulates in IP-in-IP in place, using the slot's headroom.
func (e *Engine) tunnel(w *worker, in *Iface, slot []byte, frame []byte, p *rewrite.Packet, d *Dest, now int64) {
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
		e.sendICMPError(w, in, frame, p, 3, rewrite.ICMPCodeFragNeeded, uint32(t.FragNeededMTU()))
	default:
		e.ctr[rxMalformed]++
	}
}

func (e *Engine) ipipFor(d *Dest, mac rewrite.MAC) rewrite.IPIP {
	e.ipID++
	return rewrite.IPIP{Src: d.src, Dst: d.Addr, DstMAC: mac, SrcMAC: d.out.MAC, MTU: d.out.MTU, ID: e.ipID}
}

// forwardOut translates a NAT reply back to the VIP and routes it to the
// client.
func (e *Engine) forwardOut(w *worker, in *Iface, frame []byte, p *rewrite.Packet, c *conntrack.Conn, now int64) {
	if c.Fwd() != conntrack.FwdMasq {
		e.ctr[rxIgnored]++
		return
	}
	client := c.Client().Addr()
	r, nh, ok := e.routes.Lookup(client)
	out := e.byIndex[r.Ifindex]
	if !ok || out == nil {
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
	e.transmit(w, out, nh, frame, now, func(mac rewrite.MAC) error {
		return rewrite.SetMACs(frame, mac, out.MAC)
	})
}

func (e *Engine) ttlExpired(w *worker, in *Iface, frame []byte, p *rewrite.Packet) bool {
	if ttl := frame[p.L3+8]; ttl > 1 {
		return false
	}
	e.ctr[rxTTLExpired]++
	e.sendICMPError(w, in, frame, p, 11, rewrite.ICMPCodeTTLExceeded, 0)
	return true
}

func (e *Engine) mtuExceeded(w *worker, in *Iface, frame []byte, p *rewrite.Packet, mtu int) bool {
	if rewrite.CheckMTU(frame, p, mtu) == nil {
		return false
	}
	e.ctr[rxFragNeeded]++
	e.sendICMPError(w, in, frame, p, 3, rewrite.ICMPCodeFragNeeded, uint32(mtu))
	return true
}

// transmit sets the next hop's MAC with l2 and queues frame on out, or holds
// a copy until the neighbour answers.
func (e *Engine) transmit(w *worker, out *Iface, nh netip.Addr, frame []byte, now int64, l2 func(rewrite.MAC) error) {
	if mac, ok := e.neighFor(out, nh, now); ok {
		if l2(mac) == nil {
			w.queue(out, frame)
		}
		return
	}
	// Rewrite now with a placeholder MAC; the real one is set on release.
	if l2(rewrite.MAC{}) != nil {
		return
	}
	e.enqueue(w, out, nh, frame, now, func(b []byte, mac rewrite.MAC) []byte {
		_ = rewrite.SetMACs(b, mac, out.MAC)
		return b
	})
}
