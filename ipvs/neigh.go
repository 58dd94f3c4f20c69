package ipvs

import (
	"net/netip"
	"time"

	"lvslab/rewrite"
)

// Neighbour cache timings. Linux keeps an entry REACHABLE for about
// base_reachable_time (30 s) and then revalidates it; lvsd does the same with
// its own ARP, refreshing a used entry after neighReachable and forgetting it
// after neighLifetime without an answer.
const (
	neighReachable = 30 * time.Second
	neighLifetime  = 60 * time.Second
	neighRetry     = time.Second
	neighProbes    = 3
	neighQueueLen  = 8 // frames held per unresolved neighbour (Linux: unres_qlen_bytes)
)

type neighEntry struct {
	mac     rewrite.MAC
	ifc     *Iface
	valid   bool  // mac is known
	learned int64 // when mac was last confirmed
	probed  int64 // last request sent
	probes  int
	queue   []pending // frames waiting for resolution (copies)
}

// pending is a frame held until its next hop's MAC is known; finish sets the
// MAC (and, for tunnels, encapsulates) and returns the frame to send, or nil.
type pending struct {
	out    *Iface
	frame  []byte
	finish func(frame []byte, mac rewrite.MAC) []byte
}

// neighTable maps next-hop addresses to MAC addresses. It is owned by the
// engine and used under its lock.
type neighTable struct {
	m map[netip.Addr]*neighEntry
}

func newNeighTable() *neighTable { return &neighTable{m: make(map[netip.Addr]*neighEntry)} }

// lookup returns the MAC for addr on ifc if known and not expired.
func (t *neighTable) lookup(addr netip.Addr, now int64) (*neighEntry, bool) {
	n := t.m[addr]
	if n == nil || !n.valid || now-n.learned > int64(neighLifetime) {
		return n, false
	}
	return n, true
}

// learn records addr's MAC from an ARP packet seen on ifc and returns the
// frames that were waiting for it.
func (t *neighTable) learn(addr netip.Addr, mac rewrite.MAC, ifc *Iface, now int64, create bool) *neighEntry {
	n := t.m[addr]
	if n == nil {
		if !create {
			return nil
		}
		n = &neighEntry{}
		t.m[addr] = n
	}
	n.mac, n.ifc, n.valid, n.learned, n.probes = mac, ifc, true, now, 0
	return n
}

// neighFor returns the MAC of next hop nh on out. A known entry past its
// reachable time is still used while lvsd asks again.
func (e *Engine) neighFor(out *Iface, nh netip.Addr, now int64) (rewrite.MAC, bool) {
	n, ok := e.neigh.lookup(nh, now)
	if !ok {
		return rewrite.MAC{}, false
	}
	if now-n.learned > int64(neighReachable) && now-n.probed > int64(neighRetry) {
		n.probed = now
		e.pendingARP = append(e.pendingARP, arpProbe{out: out, target: nh})
	}
	return n.mac, true
}

type arpProbe struct {
	out    *Iface
	target netip.Addr
}

// enqueue holds a copy of frame until nh answers, asking for it now.
func (e *Engine) enqueue(w *worker, out *Iface, nh netip.Addr, frame []byte, now int64, finish func([]byte, rewrite.MAC) []byte) {
	n := e.neigh.m[nh]
	if n == nil {
		n = &neighEntry{}
		e.neigh.m[nh] = n
	}
	if n.valid && now-n.learned > int64(neighLifetime) {
		n.valid, n.probes = false, 0 // expired: resolve again
	}
	if len(n.queue) >= neighQueueLen {
		e.ctr[rxNeighQueueFull]++
		return
	}
	n.queue = append(n.queue, pending{out: out, frame: append(make([]byte, 0, len(frame)+64), frame...), finish: finish})
	if n.probes == 0 || now-n.probed > int64(neighRetry) {
		n.probed = now
		n.probes++
		e.sendARPRequest(w, out, nh)
	}
}

func (e *Engine) sendARPRequest(w *worker, out *Iface, target netip.Addr) {
	b := w.genBuf()
	if b == nil {
		e.ctr[txErrors]++
		return
	}
	src := out.srcFor(target)
	if !src.IsValid() {
		e.ctr[rxNeighFail]++
		return
	}
	n, err := rewrite.BuildARPRequest(b, out.MAC, src, target, 0)
	if err != nil {
		e.ctr[txErrors]++
		return
	}
	w.queue(out, b[:n])
}

// releaseQueue sends the frames that waited for n.
func (e *Engine) releaseQueue(w *worker, n *neighEntry) {
	for _, q := range n.queue {
		if b := q.finish(q.frame, n.mac); b != nil {
			w.queue(q.out, b)
		}
	}
	n.queue = nil
}

// neighTimers retries unanswered requests, gives up after neighProbes, sends
// refresh probes, and forgets dead entries.
func (e *Engine) neighTimers(w *worker, now int64) {
	for _, pr := range e.pendingARP {
		e.sendARPRequest(w, pr.out, pr.target)
	}
	e.pendingARP = e.pendingARP[:0]
	for addr, n := range e.neigh.m {
		if len(n.queue) > 0 && !n.valid {
			if now-n.probed < int64(neighRetry) {
				continue
			}
			if n.probes >= neighProbes {
				e.ctr[rxNeighFail] += uint64(len(n.queue))
				e.log.Warn("neighbour does not answer ARP; dropping queued frames", "addr", addr, "frames", len(n.queue))
				delete(e.neigh.m, addr)
				continue
			}
			n.probed = now
			n.probes++
			e.sendARPRequest(w, n.queue[0].out, addr)
			continue
		}
		if n.valid && now-n.learned > int64(neighLifetime) && len(n.queue) == 0 {
			delete(e.neigh.m, addr)
		}
	}
}
