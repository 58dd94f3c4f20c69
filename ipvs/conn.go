package ipvs

// Connection handling: packets of known connections are accounted and
// handed to their forwarding method's transmit stage (xmit.go); new ones are
// scheduled (ip_vs_schedule, ip_vs_sched_persist) and their connection
// created.

import (
	"net/netip"
	"time"

	"lvslab/conntrack"
	"lvslab/rewrite"
	"lvslab/sched"
	"lvslab/synproxy"
)

// handleConn forwards a TCP/UDP packet of a known connection. It returns
// false when there is none (or a SYN reuses a closing one), so the caller
// treats the packet as new.
func (e *Engine) handleConn(w *worker, in *Iface, slot []byte, frame []byte, p *rewrite.Packet, now int64) bool {
	tup := conntrack.Tuple{Proto: p.Protocol, Src: p.Src.As4(), SrcPort: p.SrcPort, Dst: p.Dst.As4(), DstPort: p.DstPort}
	var (
		id  conntrack.ConnID
		dir conntrack.Dir
	)
	if i := w.cur; i >= 0 && w.peeked[i] == tup {
		id, dir = e.conns.LookupHash(tup, w.hashes[i]) // hashed by warm
	} else {
		id, dir = e.conns.Lookup(tup)
	}
	if id == 0 && e.ftp.n > 0 && p.Protocol == rewrite.ProtoTCP {
		// A passive FTP data connection expected without the client's
		// port (ip_vs_conn_in_get's NO_CPORT retry).
		id, dir = e.conns.FillClientPort(tup), conntrack.DirIn
	}
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
	w.cid = id
	if len(e.sp.recs) != 0 {
		if r := e.sp.lookup(id, e.conns.Conn(id)); r != nil {
			e.synProxyConn(w, in, slot, frame, p, id, dir, r, d, now)
			return true
		}
	}
	size := p.End - p.L3
	old := e.conns.Conn(id).State()
	e.conns.Step(id, dir, p.TCPFlags, size, now)
	c := e.conns.Conn(id)
	if dir == conntrack.DirIn && e.syncM != nil {
		e.syncConn(id, old, now)
	}
	if e.ftp.watches(c) {
		if frame = e.ftpPacket(frame, slot, p, id, c, dir, now); frame == nil {
			return true
		}
	}
	if dir == conntrack.DirIn {
		d.stats.in(size)
		d.svc.stats.in(size)
		e.xmitIn(w, in, slot, frame, p, c, d, now)
		return true
	}
	d.stats.out(size)
	d.svc.stats.out(size)
	e.xmitOut(w, in, frame, p, c, now)
	return true
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
		e.refuseOrDrop(w, in, frame, p, rxNoService)
		return
	}
	// hs: the handshake a SYN-proxy cookie ACK proved (synproxy.go).
	var hs *synproxy.Handshake
	if svc.cfg.SynProxy && p.Protocol == rewrite.ProtoTCP {
		var done bool
		if hs, done = e.synProxyNew(w, in, frame, p, svc, now); done {
			return
		}
	}
	// recalled: the real server of a handshake drop_entry evicted from a
	// full table, which this packet (the client's ACK, or its first data)
	// completes.
	var recalled *sched.Dest
	if p.Protocol == rewrite.ProtoTCP && p.TCPFlags&rewrite.TCPFlagSYN == 0 && hs == nil {
		recalled = e.recallEvicted(svc, p)
		if recalled == nil {
			// tcp_conn_schedule: only a SYN creates a connection
			// (sloppy_tcp=0); anything else falls to the local stack,
			// which resets it.
			e.refuseOrDrop(w, in, frame, p, rxNotSyn)
			return
		}
	} else if p.Protocol == rewrite.ProtoTCP && p.TCPFlags&rewrite.TCPFlagACK != 0 && svc.cfg.SynProxy && hs == nil {
		// A SYN proxy answers handshakes itself: a SYN-ACK from outside is
		// none of its.
		e.refuseOrDrop(w, in, frame, p, rxNotSyn)
		return
	}
	// Elsewhere a SYN-ACK is scheduled like a SYN: tcp_conn_schedule has
	// "no !th->ack check to allow scheduling on SYN+ACK for Active FTP" -
	// in DR the real server's active data connection reaches the client
	// directly, and the client's SYN-ACK to VIP:20 must follow the
	// persistence template to the same real server.
	if recalled == nil && e.conns.DropPacket() {
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
		if tmpl != 0 && recalled != nil && e.conns.Dest(tmpl) != recalled {
			tmpl = 0 // the template moved on; the handshake stays where it was
			sd = recalled
		} else if tmpl != 0 {
			sd = e.conns.Dest(tmpl)
		} else {
			sd = recalled
			if sd == nil {
				sd = svc.sched.Schedule(flow)
			}
			if sd != nil {
				e.makeRoom(now, 0)
				tmpl, err = e.conns.NewTemplate(&key, sd, svc.persist.Timeout, now)
				if err != nil {
					e.ctr[rxTableFull]++
					return
				}
			}
		}
	} else if sd = recalled; sd == nil {
		sd = svc.sched.Schedule(flow)
	}
	if sd == nil {
		// ip_vs_leave: "no destination available" is port unreachable,
		// for TCP too.
		e.ctr[rxNoDest]++
		e.sendICMPError(w, in, frame, p, rewrite.ICMPDestUnreach, rewrite.ICMPCodePortUnreach, 0)
		return
	}
	d := destOf(sd)
	fwd, _ := fwdOf(d.cfg.Forward)
	params := conntrack.ConnParams{
		Proto:    p.Protocol,
		Client:   netip.AddrPortFrom(p.Src, p.SrcPort),
		Virtual:  netip.AddrPortFrom(p.Dst, p.DstPort),
		Dest:     sd,
		DestPort: p.DstPort,
		Fwd:      fwd,
		Template: tmpl,
	}
	if translatesPort(fwd) {
		params.DestPort = conntrack.DestPort(svc.persist != nil, p.DstPort, svc.cfg.Port, d.Port)
	}
	if fwd == conntrack.FwdFullNAT {
		local, ok := svc.allocLocal(p.Protocol)
		if !ok {
			e.ctr[rxNoLocalPort]++
			return
		}
		params.Local = local
	}
	params.OnePacket = svc.cfg.OnePacket && p.Protocol == rewrite.ProtoUDP
	e.makeRoom(now, tmpl)
	id, err := e.conns.NewConn(&params, now)
	if err != nil {
		if params.Local.IsValid() {
			e.releaseLocal(p.Protocol, params.Local, netip.AddrPort{})
		}
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
	if fwd == conntrack.FwdFullNAT {
		e.fnatNew(id)
	}
	w.cid = id
	if hs != nil {
		e.synProxyOpen(w, in, frame, p, id, d, hs, now)
		return
	}
	if len(e.sp.recs) != 0 {
		e.sp.forget(id)
	}
	size := p.End - p.L3
	e.conns.Step(id, conntrack.DirIn, p.TCPFlags, size, now)
	d.stats.in(size)
	svc.stats.in(size)
	e.xmitIn(w, in, slot, frame, p, e.conns.Conn(id), d, now)
	if params.OnePacket {
		e.conns.Release(id, now)
	}
}

// recallEvicted finds the real server of a handshake drop_entry evicted for
// the connection packet p would belong to (conntrack/evicted.go), if that
// server is still in svc and available.
func (e *Engine) recallEvicted(svc *Service, p *rewrite.Packet) *sched.Dest {
	ev, ok := e.conns.RecallEvicted(conntrack.Tuple{Proto: p.Protocol, Src: p.Src.As4(), SrcPort: p.SrcPort, Dst: p.Dst.As4(), DstPort: p.DstPort})
	if !ok {
		return nil
	}
	for _, d := range svc.dests {
		if d.Addr == ev.Real.Addr() && (d.Port == ev.Real.Port() || d.Port == 0) && d.Available() {
			e.ctr[defEntriesRecalled]++
			return &d.Dest
		}
	}
	return nil
}
