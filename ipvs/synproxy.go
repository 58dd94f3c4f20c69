package ipvs

// SYN proxy (alibaba/LVS ip_vs_synproxy.c, reference §2.4): for a service
// with the flag, a client's SYN is answered here with a cookie SYN/ACK and
// leaves no state; the connection is created only by an ACK whose cookie
// checks, which also opens the real server's side with a SYN of our own.
// The client's ACK (and anything else it sends meanwhile, up to
// synproxy_ack_skb_store_thresh packets) waits for the real server's
// SYN/ACK, which is not forwarded: it sets the sequence delta and releases
// what waited. From then on every packet of the connection is translated
// through the delta (package synproxy) before its forwarding method's
// transmit stage, in both directions. The packet functions are in
// package synproxy; this file is the state around them and the hooks.
//
// Only methods that see the real server's replies can proxy: NAT and
// FULLNAT. DR and TUN real servers on a SYN-proxy service are refused
// (checkSynProxy), as the fork's DR "cannot work" (DPVS issues #692, #1030).

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"time"

	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/rewrite"
	"lvslab/synproxy"
)

const (
	// synRetryInterval is how long a SYN to the real server waits for an
	// answer before it is re-sent: the fork's SYN_SENT timeout, 3 s.
	synRetryInterval = 3 * time.Second
	// synProxySweep is how often records of connections that expired are
	// collected.
	synProxySweep = 5 * time.Second
	// maxAckStore is the top of synproxy_ack_skb_store_thresh's range.
	maxAckStore = 5
)

// synProxy is the engine's SYN-proxy state. It is guarded by the data-path
// lock like everything else the packet path touches.
type synProxy struct {
	set    synproxy.Settings
	secret *synproxy.Secret
	// recs are the proxied connections. ConnIDs are reused after expiry,
	// so a record also names its connection (proxied.owns).
	recs map[conntrack.ConnID]*proxied
	free []*proxied
	// pending are the connections whose real server has not answered yet
	// (some may have expired since): the timer's retransmission list.
	pending []conntrack.ConnID
	// spent are buffers of released client packets, which a transmit list
	// may still point to until the batch is flushed; the timer (which runs
	// between batches) returns them to bufs.
	spent, bufs [][]byte
	hs          synproxy.Handshake // the handshake newConn is opening
	p           rewrite.Packet     // for frames built or released here
	lastSweep   int64
}

// proxied is one proxied connection.
type proxied struct {
	client, virtual, real netip.AddrPort
	conn                  synproxy.Conn
	hs                    synproxy.Handshake
	in                    *Iface // where the client's packets arrive
	tci                   uint16
	queued                [maxAckStore][]byte
	nq                    int
	retries               int
	nextSYN               int64
}

func (sp *synProxy) init(set synproxy.Settings) error {
	if set == (synproxy.Settings{}) {
		set = synproxy.DefaultSettings()
	}
	if err := set.Validate(); err != nil {
		return fmt.Errorf("SYN proxy: %w", err)
	}
	sec, err := synproxy.NewSecret(rand.Reader)
	if err != nil {
		return err
	}
	sp.set, sp.secret, sp.recs = set, sec, map[conntrack.ConnID]*proxied{}
	return nil
}

// owns says whether r still describes connection c (and not an earlier
// one that had c's ID).
func (r *proxied) owns(c *conntrack.Conn) bool {
	return r.client == c.Client() && r.virtual == c.Virtual() && r.real == c.Real()
}

// lookup returns the record of live connection id, dropping a stale one.
func (sp *synProxy) lookup(id conntrack.ConnID, c *conntrack.Conn) *proxied {
	r := sp.recs[id]
	if r != nil && !r.owns(c) {
		sp.release(id, r)
		return nil
	}
	return r
}

// forget drops any record for id: a connection opened without the proxy.
func (sp *synProxy) forget(id conntrack.ConnID) {
	if r := sp.recs[id]; r != nil {
		sp.release(id, r)
	}
}

func (sp *synProxy) release(id conntrack.ConnID, r *proxied) {
	sp.dropQueue(r)
	delete(sp.recs, id)
	sp.free = append(sp.free, r)
}

// dropQueue hands r's buffers to spent (a transmit list may hold them).
func (sp *synProxy) dropQueue(r *proxied) {
	for i := range r.nq {
		sp.spent = append(sp.spent, r.queued[i][:cap(r.queued[i])])
		r.queued[i] = nil
	}
	r.nq = 0
}

// enqueue keeps a copy of a client packet until the real server answers.
func (sp *synProxy) enqueue(r *proxied, frame []byte) bool {
	if r.nq >= sp.set.AckStore || r.nq >= maxAckStore {
		return false
	}
	var b []byte
	if n := len(sp.bufs); n > 0 {
		b, sp.bufs = sp.bufs[n-1], sp.bufs[:n-1]
	} else {
		b = make([]byte, slotSize)
	}
	r.queued[r.nq] = b[:copy(b, frame)]
	r.nq++
	return true
}

// checkSynProxy refuses a real server whose method cannot be proxied on a
// SYN-proxy service: the proxy must see the real server's SYN/ACK.
func checkSynProxy(svc config.Service, f config.Forward) error {
	if svc.SynProxy && f != config.ForwardMasq && f != config.ForwardFullNAT {
		return fmt.Errorf("%s: SYN proxy needs the real server's replies to come back through the director; "+
			"forwarding method %s does not (use NAT -m or FULLNAT)", svc.ID(), f.Name())
	}
	return nil
}

// synProxyNew handles a TCP packet to a SYN-proxy service that has no
// connection (newConn). A SYN is answered with a cookie; an ACK with a
// valid cookie returns the handshake for newConn to open, anything else
// proxied is consumed (done). Other packets (RST, FIN) take the normal path.
func (e *Engine) synProxyNew(w *worker, in *Iface, frame []byte, p *rewrite.Packet, svc *Service, now int64) (*synproxy.Handshake, bool) {
	const mask = rewrite.TCPFlagSYN | rewrite.TCPFlagACK | rewrite.TCPFlagRST | rewrite.TCPFlagFIN
	switch p.TCPFlags & mask {
	case rewrite.TCPFlagSYN:
		if !svc.hasWeight() {
			// syn_rcv: a service whose total weight is 0 gets no SYN/ACK.
			e.ctr[spNoDest]++
			return nil, true
		}
		out, err := synproxy.SYNACK(frame, p, &e.sp.set, e.sp.secret, now)
		if err != nil {
			e.ctr[rxMalformed]++
			return nil, true
		}
		e.ctr[spSYN]++
		// Reflected at L2 out of the interface it came in on, as the fork
		// does (dev_queue_xmit on the input device): no route lookup.
		w.queue(in, out)
		return nil, true
	case rewrite.TCPFlagACK:
		hs, err := synproxy.CheckACK(frame, p, e.sp.secret, now)
		if err != nil {
			e.ctr[spBadACK]++
			return nil, true
		}
		if e.sp.set.Defer && p.Payload == p.End {
			e.ctr[spNullACK]++
			return nil, true
		}
		e.ctr[spOKACK]++
		e.sp.hs = hs
		return &e.sp.hs, false
	}
	return nil, false
}

// hasWeight says whether any real server of s would be scheduled.
func (s *Service) hasWeight() bool {
	for _, d := range s.dests {
		if d.Weight > 0 && d.Available() {
			return true
		}
	}
	return false
}

// synProxyOpen starts proxied connection id (just created by newConn for
// the cookie ACK in frame) toward d: the ACK waits, our SYN goes out.
func (e *Engine) synProxyOpen(w *worker, in *Iface, frame []byte, p *rewrite.Packet, id conntrack.ConnID, d *Dest, hs *synproxy.Handshake, now int64) {
	c := e.conns.Conn(id)
	e.sp.forget(id)
	var r *proxied
	if n := len(e.sp.free); n > 0 {
		r, e.sp.free = e.sp.free[n-1], e.sp.free[:n-1]
	} else {
		r = &proxied{}
	}
	*r = proxied{client: c.Client(), virtual: c.Virtual(), real: c.Real(), hs: *hs, in: in,
		conn: synproxy.NewConn(hs, e.sp.set.WScale), nextSYN: now + int64(synRetryInterval)}
	if p.Flags&rewrite.FlagVLAN != 0 {
		r.tci = p.TCI
	}
	e.sp.recs[id] = r
	e.sp.pending = append(e.sp.pending, id)
	complete(frame, p)
	e.sp.enqueue(r, frame)
	e.synProxySendSYN(w, r, id, d, now)
}

// synProxySendSYN sends (or re-sends) the SYN that opens the real server's
// side, through d's transmit stage like a client packet.
func (e *Engine) synProxySendSYN(w *worker, r *proxied, id conntrack.ConnID, d *Dest, now int64) {
	out := w.genBuf()
	if out == nil {
		e.ctr[txErrors]++
		return
	}
	n, err := synproxy.ServerSYN(out, &r.hs, r.tci)
	sp := &e.sp.p
	if err != nil || rewrite.Parse(out[:n], sp) != nil {
		e.ctr[rxMalformed]++
		return
	}
	size := sp.End - sp.L3
	e.conns.Step(id, conntrack.DirIn, rewrite.TCPFlagSYN, size, now)
	d.stats.in(size)
	d.svc.stats.in(size)
	w.cid = id
	e.xmitIn(w, r.in, out, out[:n], sp, e.conns.Conn(id), d, now)
}

// synProxyConn forwards a packet of proxied connection id (handleConn).
func (e *Engine) synProxyConn(w *worker, in *Iface, slot, frame []byte, p *rewrite.Packet, id conntrack.ConnID, dir conntrack.Dir, r *proxied, d *Dest, now int64) {
	size := p.End - p.L3
	c := e.conns.Conn(id)
	if dir == conntrack.DirIn {
		if !r.conn.Open {
			// ip_vs_synproxy_filter_ack: while the real server handshakes,
			// ACKs wait (up to the threshold) and anything else is dropped.
			if p.TCPFlags&(rewrite.TCPFlagSYN|rewrite.TCPFlagRST|rewrite.TCPFlagFIN) != 0 ||
				p.TCPFlags&rewrite.TCPFlagACK == 0 || !e.sp.enqueue(r, frame) {
				e.ctr[spSynsentQlen]++
			} else {
				complete(r.queued[r.nq-1], p)
			}
			return
		}
		if synproxy.AdjustIn(frame, p, &r.conn) != nil {
			e.ctr[rxMalformed]++
			return
		}
		e.synProxyStepIn(id, p.TCPFlags, size, now)
		// The FTP helper after the proxy's acknowledgement translation
		// (ftpPacket says why).
		if e.ftp.watches(c) {
			if frame = e.ftpPacket(frame, slot, p, id, c, dir, now); frame == nil {
				return
			}
		}
		d.stats.in(size)
		d.svc.stats.in(size)
		e.xmitIn(w, in, slot, frame, p, c, d, now)
		return
	}
	if !r.conn.Open {
		switch {
		case p.TCPFlags&rewrite.TCPFlagRST != 0:
			// Refused: the client learns it from the RST, moved into its
			// sequence space; what waited is dropped.
			if r.conn.ServerRST(frame, p) != nil {
				e.ctr[rxMalformed]++
				return
			}
			e.sp.dropQueue(r)
			r.conn.Open = true
		case e.fnatServerSYNACK(id, c, frame, p) && r.conn.ServerSYNACK(frame, p) == nil:
			e.conns.Step(id, dir, p.TCPFlags, size, now)
			d.stats.out(size)
			d.svc.stats.out(size)
			e.synProxyRelease(w, r, id, d, now)
			return
		default:
			e.ctr[spSynsentQlen]++ // nothing but the answer to our SYN is expected
			return
		}
	} else if r.conn.AckStorm(frame, p, e.sp.set.AckStorm) {
		e.ctr[spAckStorm]++
		return
	} else {
		// The FTP helper before the proxy's sequence translation: its
		// offsets are in the real server's numbering.
		if e.ftp.watches(c) {
			if frame = e.ftpPacket(frame, slot, p, id, c, dir, now); frame == nil {
				return
			}
		}
		if synproxy.AdjustOut(frame, p, &r.conn) != nil {
			e.ctr[rxMalformed]++
			return
		}
	}
	e.conns.Step(id, dir, p.TCPFlags, size, now)
	d.stats.out(size)
	d.svc.stats.out(size)
	e.xmitOut(w, in, frame, p, c, now)
}

// synProxyStepIn steps an open proxied connection for a client packet
// and, on a sync master, syncs it as handleConn does (its delta goes along,
// synProxySyncOut).
func (e *Engine) synProxyStepIn(id conntrack.ConnID, flags uint8, size int, now int64) {
	old := e.conns.Conn(id).State()
	e.conns.Step(id, conntrack.DirIn, flags, size, now)
	if e.syncM != nil {
		e.syncConn(id, old, now)
	}
}

// synProxySyncOut adds an open proxied connection's sequence delta to its
// sync entry (lvsd's LVSLAB_OPT_SYNPROXY, on the wire the real server's
// ISN minus the cookie), so that a backup taking over keeps translating it.
// The timestamp delta and window shifts do not travel: with the defaults
// (synproxy_timestamp and synproxy_wscale off) there are none.
func (e *Engine) synProxySyncOut(id conntrack.ConnID, sc *conntrack.SyncConn) {
	if len(e.sp.recs) == 0 {
		return
	}
	if r := e.sp.lookup(id, e.conns.Conn(id)); r != nil && r.conn.Open {
		sc.HasSynproxy, sc.SynproxyDelta = true, -r.conn.Delta
	}
}

// synProxySyncIn makes a synced connection that carries a SYN-proxy delta
// a proxied connection on this backup.
func (e *Engine) synProxySyncIn(id conntrack.ConnID, sc *conntrack.SyncConn) {
	if !sc.HasSynproxy || sc.Flags&uint32(conntrack.FlagTemplate) != 0 {
		return
	}
	c := e.conns.Conn(id)
	r := e.sp.lookup(id, c)
	if r == nil {
		if n := len(e.sp.free); n > 0 {
			r, e.sp.free = e.sp.free[n-1], e.sp.free[:n-1]
		} else {
			r = &proxied{}
		}
		*r = proxied{client: c.Client(), virtual: c.Virtual(), real: c.Real()}
		e.sp.recs[id] = r
	}
	r.conn = synproxy.Conn{Open: true, Delta: -sc.SynproxyDelta}
}

// synProxyRelease sends what the client sent while the real server
// handshook: its ACK first, which completes the server's handshake.
func (e *Engine) synProxyRelease(w *worker, r *proxied, id conntrack.ConnID, d *Dest, now int64) {
	sp := &e.sp.p
	w.cid = id
	for i := range r.nq {
		f := r.queued[i]
		if rewrite.Parse(f, sp) != nil || synproxy.AdjustIn(f, sp, &r.conn) != nil {
			e.ctr[rxMalformed]++
			continue
		}
		size := sp.End - sp.L3
		e.synProxyStepIn(id, sp.TCPFlags, size, now)
		d.stats.in(size)
		d.svc.stats.in(size)
		e.xmitIn(w, r.in, f[:cap(f)], f, sp, e.conns.Conn(id), d, now)
	}
	e.sp.dropQueue(r)
}

// synProxyTimers re-sends SYNs real servers have not answered
// (synproxy_syn_retry; each counts as synproxy_rs_error), expires the
// connection when the retries are spent, and collects the records of
// connections that went away. It runs between batches (timerLoop).
func (e *Engine) synProxyTimers(w *worker, now int64) {
	sp := &e.sp
	sp.bufs = append(sp.bufs, sp.spent...)
	clear(sp.spent)
	sp.spent = sp.spent[:0]
	if len(sp.recs) == 0 {
		return
	}
	keep := sp.pending[:0]
	for _, id := range sp.pending {
		r := sp.recs[id]
		if r == nil || r.conn.Open {
			continue
		}
		if !e.conns.Live(id) || !r.owns(e.conns.Conn(id)) {
			sp.release(id, r)
			continue
		}
		if now >= r.nextSYN {
			e.ctr[spRSError]++
			if r.retries >= sp.set.SynRetry {
				e.conns.ExpireNow(id, now)
				sp.release(id, r)
				continue
			}
			r.retries++
			r.nextSYN = now + int64(synRetryInterval)
			if sd := e.conns.Dest(id); sd.Available() {
				if w.ngen == len(w.gen) {
					// A tick may re-send more SYNs than a batch has
					// buffers for (a burst lost together comes due
					// together): send what is built and reuse them.
					e.flush(w)
				}
				e.synProxySendSYN(w, r, id, destOf(sd), now)
			}
		}
		keep = append(keep, id)
	}
	sp.pending = keep
	if now-sp.lastSweep < int64(synProxySweep) {
		return
	}
	sp.lastSweep = now
	for id, r := range sp.recs {
		if !e.conns.Live(id) || !r.owns(e.conns.Conn(id)) {
			sp.release(id, r)
		}
	}
}
