package sched

import (
	"math"
	"net/netip"
	"slices"
	"time"
)

// lblc/lblcr cache geometry and ageing (ip_vs_lblc.c, ip_vs_lblcr.c).
const (
	lbTabBits = 10 // CONFIG_IP_VS_LBLC_TAB_BITS, CONFIG_IP_VS_LBLCR_TAB_BITS
	lbTabSize = 1 << lbTabBits
	lbTabMask = lbTabSize - 1
	// lbMaxSize is tbl->max_size: no new entry once entries exceed it.
	lbMaxSize = lbTabSize * 16

	// checkExpireInterval is the GC timer period.
	checkExpireInterval = int64(60 * time.Second)
	// entryTimeout is how long an entry must have been unused before the
	// over-size collection may drop it.
	entryTimeout = int64(6 * 60 * time.Second)
	// countForFullExpiration: every 30th tick (half an hour) without an
	// over-size collection, scan everything for entries unused for the
	// whole expiration.
	countForFullExpiration = 30

	// defaultExpiration is DEFAULT_EXPIRATION, the lblc_expiration and
	// lblcr_expiration sysctls' default.
	defaultExpiration = 24 * time.Hour
)

// cacheEntry maps a destination address (the packet's, not a real server's)
// to what lblc or lblcr remembers for it.
type cacheEntry[V any] struct {
	addr    netip.Addr
	lastuse int64
	val     V
}

// cacheTable is the kernel's 1024-bucket hash of cache entries plus its GC
// timer, run lazily from Flow.Now: the ticks that fell due since the last
// decision run first, each at its own due time, so the outcome is what the
// kernel timer would have produced without this package reading a clock.
type cacheTable[V any] struct {
	// Each bucket keeps its newest entry last (the hlist head), so lookups
	// scan from the end.
	buckets    [lbTabSize][]cacheEntry[V]
	entries    int
	rover      int
	counter    int
	armed      bool
	nextCheck  int64
	expiration int64
}

func newCacheTable[V any](expiration int64) *cacheTable[V] {
	return &cacheTable[V]{counter: 1, expiration: expiration}
}

// lbKey is ip_vs_lblc_hashkey / ip_vs_lblcr_hashkey.
func lbKey(a netip.Addr) uint32 { return hash32(addrFold(a), lbTabBits) }

// get returns the entry for a, or nil. The pointer stays valid until the
// table is next changed.
func (t *cacheTable[V]) get(a netip.Addr) *cacheEntry[V] {
	b := t.buckets[lbKey(a)]
	for i := len(b) - 1; i >= 0; i-- {
		if b[i].addr == a {
			return &b[i]
		}
	}
	return nil
}

// add hashes a new entry at the head of its bucket.
func (t *cacheTable[V]) add(a netip.Addr, now int64, v V) {
	k := lbKey(a)
	t.buckets[k] = append(t.buckets[k], cacheEntry[V]{addr: a, lastuse: now, val: v})
	t.entries++
}

// remove drops the entry for a, if any. Unlike ip_vs_lblc_new, which
// unhashes a replaced entry without decrementing tbl->entries (so the
// kernel's count creeps up with every replacement), the count stays exact.
func (t *cacheTable[V]) remove(a netip.Addr) {
	k := lbKey(a)
	n := len(t.buckets[k])
	t.buckets[k] = slices.DeleteFunc(t.buckets[k], func(e cacheEntry[V]) bool { return e.addr == a })
	t.entries -= n - len(t.buckets[k])
}

// full reports whether a new entry would be refused (entries > max_size).
func (t *cacheTable[V]) full() bool { return t.entries > lbMaxSize }

// advance runs the GC ticks due by now. The timer is armed by the first
// decision (the kernel arms it when the service gets the scheduler).
func (t *cacheTable[V]) advance(now int64) {
	if !t.armed {
		t.armed = true
		t.nextCheck = now + checkExpireInterval
		return
	}
	for t.nextCheck <= now {
		if t.entries == 0 {
			// An empty table only counts: a full check finds nothing and
			// walks all buckets, leaving the rover where it was. Take all
			// remaining ticks at once (the counter cycles 1..30).
			due := (now-t.nextCheck)/checkExpireInterval + 1
			t.counter = int((int64(t.counter)-1+due)%countForFullExpiration) + 1
			t.nextCheck += due * checkExpireInterval
			return
		}
		if t.counter%countForFullExpiration != 0 && t.entries <= lbMaxSize {
			// Ticks that only count up change nothing else: take them
			// in one step, up to the next full check or to now.
			due := (now-t.nextCheck)/checkExpireInterval + 1
			skip := min(int64(countForFullExpiration-t.counter%countForFullExpiration), due)
			t.counter += int(skip)
			t.nextCheck += skip * checkExpireInterval
			continue
		}
		t.checkExpire(t.nextCheck)
		t.nextCheck += checkExpireInterval
	}
}

// checkExpire is one tick of ip_vs_lblc_check_expire.
func (t *cacheTable[V]) checkExpire(now int64) {
	if t.counter%countForFullExpiration == 0 {
		t.sweep(now, t.expiration, math.MaxInt)
		t.counter = 1
		return
	}
	if t.entries <= lbMaxSize {
		t.counter++
		return
	}
	goal := (t.entries - lbMaxSize) * 4 / 3
	if goal > lbMaxSize/2 {
		goal = lbMaxSize / 2
	}
	t.sweep(now, entryTimeout, goal)
}

// sweep walks the buckets from the one after the rover, dropping entries
// unused for at least idle, and stops after the bucket in which goal
// entries have been dropped (or after every bucket).
func (t *cacheTable[V]) sweep(now, idle int64, goal int) {
	j := t.rover
	for range lbTabSize {
		j = (j + 1) & lbTabMask
		b := t.buckets[j]
		n := len(b)
		b = slices.DeleteFunc(b, func(e cacheEntry[V]) bool { return now >= e.lastuse+idle })
		t.buckets[j] = b
		dropped := n - len(b)
		t.entries -= dropped
		goal -= dropped
		if goal <= 0 {
			break
		}
	}
	t.rover = j
}

// len returns the number of entries.
func (t *cacheTable[V]) len() int { return t.entries }

// lbOverloaded is lblc/lblcr's is_overloaded: more active connections than
// weight while some destination is below half its weight.
func lbOverloaded(d *Dest, dests []*Dest) bool {
	if int64(d.ActiveConns) > int64(d.Weight) {
		for _, m := range dests {
			if int64(m.ActiveConns)*2 < int64(m.Weight) {
				return true
			}
		}
	}
	return false
}
