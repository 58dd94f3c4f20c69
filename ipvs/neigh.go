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
	neighQueueLen  = 101 // frames held per unresolved neighbour, as Linux's unres_qlen (212,992 bytes of unres_qlen_bytes); neighMaxQueued bounds them all
)

// Neighbour cache bounds. The table holds only neighbours lvsd asked about
// (so its size follows the traffic lvsd forwards, not what others send), and
// still has a ceiling, as Linux has gc_thresh3 (1024 by default; a director
// with a NAT client network on-link talks to more).
const (
	neighMax = 4096
	// neighMaxQueued bounds the frames held for all unresolved neighbours
	// together (copies, so memory): a flood toward on-link addresses that
	// never answer cannot hold more than about 2 MB.
	neighMaxQueued = 1024
	// neighSweep is how many entries one timer tick examines for expiry:
	// the tick runs under the engine lock, so its cost must not grow with
	// the table. At 10 ticks a second a full table is swept every 1.6 s,
	// well inside neighLifetime.
	neighSweep = 256
)

// neighKey is a neighbour as Linux keys it: the interface and the address.
// An address is a neighbour on one link only; the same address claimed on
// another link is a different (and, for lvsd, unwanted) entry.
type neighKey struct {
	slot int
	addr [4]byte
}

type neighEntry struct {
	key     neighKey
	mac     rewrite.MAC
	ifc     *Iface
	valid   bool  // mac is known
	learned int64 // when mac was last confirmed
	probed  int64 // last request sent
	probes  int
	queue   []pending // frames waiting for resolution (copies)

	idx  int // position in neighTable.all
	wait int // position in neighTable.waiting, or -1
}

// pending is a frame held until its next hop's MAC is known; finish sets the
// MAC (and, for tunnels, encapsulates) and returns the frame to send, or nil.
// A nil finish means the frame only lacks its MACs (out's and the neighbour's).
type pending struct {
	out    *Iface
	frame  []byte
	finish func(frame []byte, mac rewrite.MAC) []byte
}

// neighTable maps (interface, next-hop address) to MAC addresses. It is
// owned by the engine and used under its lock.
//
// all lists every entry so expiry can walk it a slice at a time (a cursor
// over a map is not possible); waiting lists the entries holding frames,
// whose retries are due every second and must not wait for the sweep.
type neighTable struct {
	m       map[neighKey]*neighEntry
	all     []*neighEntry
	waiting []*neighEntry
	cursor  int
	queued  int // frames held in all queues
	max     int

	lastFailWarn int64
	failed       int // neighbours given up on since the last warning

	// hot is the entry get found last: almost every frame goes to the
	// same few next hops (one real server, one client gateway), and
	// hashing the key for the map was 2% of lvsd's CPU forwarding 64-byte
	// frames (perf, the end-to-end bench), more than a FULLNAT rewrite.
	hot *neighEntry
}

func newNeighTable() *neighTable {
	return &neighTable{m: make(map[neighKey]*neighEntry), max: neighMax}
}

func keyOf(ifc *Iface, addr netip.Addr) neighKey {
	return neighKey{slot: ifc.slot, addr: addr.As4()}
}

// Len is the number of entries.
func (t *neighTable) Len() int { return len(t.all) }

// get returns the entry for addr on ifc, or nil.
func (t *neighTable) get(ifc *Iface, addr netip.Addr) *neighEntry {
	if !addr.Is4() {
		return nil
	}
	k := keyOf(ifc, addr)
	if h := t.hot; h != nil && h.key == k {
		return h
	}
	n := t.m[k]
	if n != nil {
		t.hot = n
	}
	return n
}

// lookup returns the MAC for addr on ifc if known and not expired.
func (t *neighTable) lookup(ifc *Iface, addr netip.Addr, now int64) (*neighEntry, bool) {
	n := t.get(ifc, addr)
	if n == nil || !n.valid || now-n.learned > int64(neighLifetime) {
		return n, false
	}
	return n, true
}

// create adds an empty entry for addr on ifc, or returns nil when the table
// is full.
func (t *neighTable) create(ifc *Iface, addr netip.Addr) *neighEntry {
	if len(t.all) >= t.max || !addr.Is4() {
		return nil
	}
	n := &neighEntry{key: keyOf(ifc, addr), ifc: ifc, idx: len(t.all), wait: -1}
	t.m[n.key] = n
	t.all = append(t.all, n)
	return n
}

// remove deletes n, dropping any frames it held.
func (t *neighTable) remove(n *neighEntry) {
	t.unwait(n)
	t.queued -= len(n.queue)
	n.queue = nil
	delete(t.m, n.key)
	if t.hot == n {
		t.hot = nil
	}
	last := t.all[len(t.all)-1]
	t.all[n.idx], last.idx = last, n.idx
	t.all[len(t.all)-1] = nil
	t.all = t.all[:len(t.all)-1]
}

func (t *neighTable) unwait(n *neighEntry) {
	if n.wait < 0 {
		return
	}
	last := t.waiting[len(t.waiting)-1]
	t.waiting[n.wait], last.wait = last, n.wait
	t.waiting[len(t.waiting)-1] = nil
	t.waiting = t.waiting[:len(t.waiting)-1]
	n.wait = -1
}

// learn records addr's MAC on ifc and returns the entry (whose queued
// frames the caller releases). Without create only an existing entry is
// updated: one lvsd asked about, or one it already uses.
func (t *neighTable) learn(addr netip.Addr, mac rewrite.MAC, ifc *Iface, now int64, create bool) *neighEntry {
	n := t.get(ifc, addr)
	if n == nil {
		if !create {
			return nil
		}
		if n = t.create(ifc, addr); n == nil {
			return nil
		}
	}
	n.mac, n.valid, n.learned, n.probes = mac, true, now, 0
	return n
}

// neighFor returns the MAC of next hop nh on out. A known entry past its
// reachable time is still used while lvsd asks again.
func (e *Engine) neighFor(out *Iface, nh netip.Addr, now int64) (rewrite.MAC, bool) {
	n, ok := e.neigh.lookup(out, nh, now)
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

// enqueue holds a copy of frame until nh answers on out, asking for it now.
// Asking is what creates an entry: ARP traffic alone never does.
func (e *Engine) enqueue(w *worker, out *Iface, nh netip.Addr, frame []byte, now int64, finish func([]byte, rewrite.MAC) []byte) {
	t := e.neigh
	if t.queued >= neighMaxQueued {
		e.ctr[rxNeighQueueFull]++
		return
	}
	n := t.get(out, nh)
	if n == nil {
		if n = t.create(out, nh); n == nil {
			e.ctr[rxNeighTableFull]++
			return
		}
	}
	if n.valid && now-n.learned > int64(neighLifetime) {
		n.valid, n.probes = false, 0 // expired: resolve again
	}
	if len(n.queue) >= neighQueueLen {
		e.ctr[rxNeighQueueFull]++
		return
	}
	n.queue = append(n.queue, pending{out: out, frame: append(make([]byte, 0, len(frame)+64), frame...), finish: finish})
	t.queued++
	if n.wait < 0 {
		n.wait = len(t.waiting)
		t.waiting = append(t.waiting, n)
	}
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
		b := q.frame
		if q.finish == nil {
			// The common case: the frame is complete but for its MACs.
			_ = rewrite.SetMACs(b, n.mac, q.out.MAC)
		} else {
			b = q.finish(b, n.mac)
		}
		if b != nil {
			w.queue(q.out, b)
		}
	}
	e.neigh.queued -= len(n.queue)
	n.queue = nil
	e.neigh.unwait(n)
}

// neighTimers retries unanswered requests, gives up after neighProbes, sends
// refresh probes, and forgets dead entries. Its work per call is bounded:
// the waiting entries (bounded by neighMaxQueued) and neighSweep entries of
// the table, never the whole table.
func (e *Engine) neighTimers(w *worker, now int64) {
	t := e.neigh
	for _, pr := range e.pendingARP {
		e.sendARPRequest(w, pr.out, pr.target)
	}
	e.pendingARP = e.pendingARP[:0]
	for i := 0; i < len(t.waiting); {
		n := t.waiting[i]
		if n.valid || now-n.probed < int64(neighRetry) {
			i++
			continue
		}
		if n.probes >= neighProbes {
			e.ctr[rxNeighFail] += uint64(len(n.queue))
			// One line per 10 s, not one per neighbour: a flood toward
			// addresses that never answer must not become a log flood.
			t.failed++
			if now-t.lastFailWarn > int64(10*time.Second) {
				e.log.Warn("neighbour does not answer ARP; dropping queued frames",
					"addr", netip.AddrFrom4(n.key.addr), "iface", n.ifc.Name, "frames", len(n.queue),
					"neighbours_failed_since_last_warning", t.failed)
				t.lastFailWarn, t.failed = now, 0
			}
			t.remove(n) // moves the last waiting entry to i
			continue
		}
		n.probed = now
		n.probes++
		e.sendARPRequest(w, n.queue[0].out, netip.AddrFrom4(n.key.addr))
		i++
	}
	for k := 0; k < neighSweep && len(t.all) > 0; k++ {
		if t.cursor >= len(t.all) {
			t.cursor = 0
		}
		n := t.all[t.cursor]
		// An entry that never resolved and holds nothing (its frames were
		// refused) goes when it would have expired had it resolved.
		dead := len(n.queue) == 0 &&
			((n.valid && now-n.learned > int64(neighLifetime)) || (!n.valid && now-n.probed > int64(neighLifetime)))
		if dead {
			t.remove(n) // the last entry moves to the cursor: look at it next
			continue
		}
		t.cursor++
	}
}
