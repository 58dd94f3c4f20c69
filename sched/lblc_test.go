package sched

import (
	"net/netip"
	"testing"
	"time"
)

const (
	sec    = int64(time.Second)
	minute = int64(time.Minute)
	day    = int64(24 * time.Hour)
	t0     = 1000 * sec // an arbitrary start of the caller's monotonic clock
)

func TestLBLCKeepsMappingWhileUsable(t *testing.T) {
	m := named{}
	v := newService(t, "lblc", 0)
	a := m.dest("A", ip4(10, 11, 0, 1), 80, 1)
	b := m.dest("B", ip4(10, 11, 0, 2), 80, 1)
	v.dests = []*Dest{a, b}
	v.s.Update(v.dests)
	x := netip.MustParseAddr("198.51.100.7")
	f := func(now int64) *Flow { return &Flow{DstAddr: x, Now: now} }

	// Miss: wlc, tie -> A (first), cached.
	if d := v.s.Schedule(f(t0)); d != a {
		t.Fatalf("miss: %s, want A", m.name(d))
	}
	// A now busier than B: wlc would say B, the cache keeps A while A is
	// not "overloaded" (active 1 > weight 1 is false).
	a.ActiveConns = 1
	if d := v.s.Schedule(f(t0 + sec)); d != a {
		t.Fatalf("hit: %s, want cached A", m.name(d))
	}
	// active 2 > weight 1, and B has 0*2 < 1: overloaded -> wlc -> B, which
	// replaces the entry.
	a.ActiveConns = 2
	if d := v.s.Schedule(f(t0 + 2*sec)); d != b {
		t.Fatalf("overloaded A: %s, want B", m.name(d))
	}
	a.ActiveConns = 0
	b.ActiveConns = 1
	if d := v.s.Schedule(f(t0 + 3*sec)); d != b {
		t.Fatalf("after replacement: %s, want cached B", m.name(d))
	}
	// active > weight but nobody is below half its weight: not overloaded.
	a.ActiveConns, b.ActiveConns = 1, 2
	if d := v.s.Schedule(f(t0 + 4*sec)); d != b {
		t.Fatalf("busy everywhere: %s, want cached B", m.name(d))
	}
	// Unavailable (deleted) or quiesced cached dest: re-pick.
	a.ActiveConns, b.ActiveConns = 0, 0
	b.Flags &^= DestAvailable
	if d := v.s.Schedule(f(t0 + 5*sec)); d != a {
		t.Fatalf("unavailable B: %s, want A", m.name(d))
	}
	v.edit(a, 0)
	if d := v.s.Schedule(f(t0 + 6*sec)); d != b {
		t.Fatalf("quiesced A: %s, want wlc's B (wlc does not check Available)", m.name(d))
	}
	s := v.s.(*lblc)
	if s.cache.len() != 1 {
		t.Fatalf("%d entries, want 1 (replacements do not add)", s.cache.len())
	}
}

// The GC timer ticks every 60 s from the first decision; every 30th tick is
// a full check dropping entries unused for lblc_expiration (24 h). An entry
// last used at t0 (the arming time) is dropped at the first full check at
// or after t0 + 24 h: tick k at t0 + k min is full when k % 30 == 0, and
// 24 h = 1440 min = 48*30, so exactly at t0 + 1440 min.
func TestLBLCFullExpiry(t *testing.T) {
	for _, name := range []string{"lblc", "lblcr"} {
		t.Run(name, func(t *testing.T) {
			v := newService(t, name, 0)
			v.add(NewDest(ip4(10, 12, 0, 1), 80, 1))
			x := netip.MustParseAddr("198.51.100.8")
			y := netip.MustParseAddr("198.51.100.9")
			v.s.Schedule(&Flow{DstAddr: x, Now: t0})
			// y used later keeps its own entry alive.
			v.s.Schedule(&Flow{DstAddr: y, Now: t0 + 1400*minute})
			get, advance := cacheProbe(v.s)
			advance(t0 + 1440*minute - 1)
			if !get(x) {
				t.Fatal("entry dropped before its full check")
			}
			advance(t0 + 1440*minute)
			if get(x) {
				t.Fatal("entry unused for 24 h survived the full check")
			}
			if !get(y) {
				t.Fatal("recently used entry dropped")
			}
		})
	}
}

// WithExpiration shortens the full-check expiry: 10 min unused is gone at
// the 30th tick.
func TestLBLCExpirationOption(t *testing.T) {
	v := newService(t, "lblc", 0, WithExpiration(10*time.Minute))
	v.add(NewDest(ip4(10, 12, 0, 1), 80, 1))
	x := netip.MustParseAddr("198.51.100.8")
	v.s.Schedule(&Flow{DstAddr: x, Now: t0})
	get, advance := cacheProbe(v.s)
	advance(t0 + 29*minute)
	if !get(x) {
		t.Fatal("dropped before the 30th tick")
	}
	advance(t0 + 30*minute)
	if get(x) {
		t.Fatal("not dropped at the 30th tick")
	}
}

func cacheProbe(s Scheduler) (get func(netip.Addr) bool, advance func(int64)) {
	switch c := s.(type) {
	case *lblc:
		return func(a netip.Addr) bool { return c.cache.get(a) != nil }, c.cache.advance
	case *lblcr:
		return func(a netip.Addr) bool { return c.cache.get(a) != nil }, c.cache.advance
	}
	panic("not a cache scheduler")
}

// Over max_size (16384): new entries are refused once entries > max_size,
// so the table stops at 16385. Each tick then collects: goal = (16385 -
// 16384)*4/3 = 1, dropping entries unused for ENTRY_TIMEOUT (6 min) bucket
// by bucket from the rover, stopping after the bucket that met the goal.
// Entries made at t0 are not 6 min old until the 6th tick (t0 + 6 min): the
// 5 ticks before drop nothing; the 6th drops all of bucket 1 (the first
// after rover 0) and stops.
func TestLBLCOverSizeCollection(t *testing.T) {
	v := newService(t, "lblc", 0)
	v.add(NewDest(ip4(10, 12, 0, 1), 80, 1))
	s := v.s.(*lblc)
	for i := range lbMaxSize + 10 {
		v.s.Schedule(&Flow{DstAddr: ip4(100, 64+byte(i>>16), byte(i>>8), byte(i)), Now: t0})
	}
	if s.cache.len() != lbMaxSize+1 {
		t.Fatalf("%d entries, want max_size+1 = %d", s.cache.len(), lbMaxSize+1)
	}
	bucket1 := len(s.cache.buckets[1])
	if bucket1 == 0 {
		t.Fatal("bucket 1 empty; the test needs it populated")
	}
	s.cache.advance(t0 + 6*minute - 1)
	if s.cache.len() != lbMaxSize+1 {
		t.Fatalf("collected before ENTRY_TIMEOUT: %d entries", s.cache.len())
	}
	s.cache.advance(t0 + 6*minute)
	if got, want := s.cache.len(), lbMaxSize+1-bucket1; got != want || len(s.cache.buckets[1]) != 0 {
		t.Fatalf("after 6th tick: %d entries (bucket 1 has %d), want %d", got, len(s.cache.buckets[1]), want)
	}
	if s.cache.rover != 1 {
		t.Fatalf("rover %d, want 1", s.cache.rover)
	}
}

// lblcr: a set grows with wlc's choice when its least loaded member is
// overloaded, and after the set has been left unmodified for more than
// lblcr_expiration its most loaded member is dropped.
func TestLBLCRSetGrowsAndShrinks(t *testing.T) {
	m := named{}
	v := newService(t, "lblcr", 0)
	a := m.dest("A", ip4(10, 13, 0, 1), 80, 1)
	b := m.dest("B", ip4(10, 13, 0, 2), 80, 1)
	v.dests = []*Dest{a, b}
	v.s.Update(v.dests)
	s := v.s.(*lblcr)
	x := netip.MustParseAddr("198.51.100.10")
	f := func(now int64) *Flow { return &Flow{DstAddr: x, Now: now} }
	members := func() []string {
		var out []string
		for _, d := range s.cache.get(x).val.members {
			out = append(out, m.name(d))
		}
		return out
	}

	// Miss: wlc tie -> A; set {A}.
	if d := v.s.Schedule(f(t0)); d != a {
		t.Fatalf("miss: %s, want A", m.name(d))
	}
	// A overloaded (2 > 1, B has 0*2 < 1): wlc over all -> B (0 < 512),
	// added at the head: {B, A}, lastmod t0+1s.
	a.ActiveConns = 2
	if d := v.s.Schedule(f(t0 + sec)); d != b {
		t.Fatalf("grow: %s, want B", m.name(d))
	}
	equalStrings(t, "set after grow", members(), []string{"B", "A"})
	// set_min: B (0) beats A (512).
	if d := v.s.Schedule(f(t0 + 2*sec)); d != b {
		t.Fatalf("set min: %s, want B", m.name(d))
	}
	// Exactly lastmod + 24 h: not after it, no shrink.
	v.s.Schedule(f(t0 + sec + day))
	equalStrings(t, "set at expiry", members(), []string{"B", "A"})
	// One tick later: set_max is A (0*1 < 512*1), erased.
	if d := v.s.Schedule(f(t0 + sec + day + 1)); d != b {
		t.Fatalf("shrink: %s, want B", m.name(d))
	}
	equalStrings(t, "set after shrink", members(), []string{"B"})
}

// lblcr set_min skips members that are unavailable, quiesced or overloaded;
// with none left, wlc over the service picks and joins the set.
func TestLBLCRSetMinSkipsUnusable(t *testing.T) {
	m := named{}
	v := newService(t, "lblcr", 0)
	a := m.dest("A", ip4(10, 13, 0, 1), 80, 1)
	b := m.dest("B", ip4(10, 13, 0, 2), 80, 1)
	c := m.dest("C", ip4(10, 13, 0, 3), 80, 1)
	v.dests = []*Dest{a, b, c}
	v.s.Update(v.dests)
	s := v.s.(*lblcr)
	x := netip.MustParseAddr("198.51.100.11")
	v.s.Schedule(&Flow{DstAddr: x, Now: t0}) // {A}
	set := &s.cache.get(x).val
	set.insert(b, t0) // {B, A}
	b.ActiveConns = 1
	// set_min: B first usable (256), A (0): 256*1 > 0*1 -> A.
	if d := v.s.Schedule(&Flow{DstAddr: x, Now: t0 + sec}); d != a {
		t.Fatalf("%s, want A", m.name(d))
	}
	// Delete A from the service: the engine clears Available (the kernel
	// moves it to the trash); the set still references it.
	v.del(a)
	a.Flags &^= DestAvailable
	if d := v.s.Schedule(&Flow{DstAddr: x, Now: t0 + 2*sec}); d != b {
		t.Fatalf("A unavailable: %s, want B", m.name(d))
	}
	// B overloaded too: no usable member, wlc over the service (B skipped,
	// C) picks C, which joins the set at its head.
	b.Flags |= DestOverload
	if d := v.s.Schedule(&Flow{DstAddr: x, Now: t0 + 3*sec}); d != c {
		t.Fatalf("no usable member: %s, want C", m.name(d))
	}
	if len(set.members) != 3 || set.members[0] != c {
		t.Fatalf("C not added at the head of the set")
	}
	// A quiesced member is skipped as well: C quiesced, B back.
	b.Flags &^= DestOverload
	v.edit(c, 0)
	if d := v.s.Schedule(&Flow{DstAddr: x, Now: t0 + 4*sec}); d != b {
		t.Fatalf("C quiesced: %s, want B", m.name(d))
	}
}

// Ticks taken lazily equal the timer's: an entry made at t0 (arming time)
// goes at the full check of tick 1440 (counter back to 1); after that the
// table is empty and the counter cycles 1..30 once per tick. At t0 + 10
// years + 7 min, 10*365*1440 + 7 = 5256007 ticks are due; 5256007 - 1440 =
// 5254567 after the full check, and 5254567 % 30 = 7, so the counter is 8
// and the next tick is due at t0 + 5256008 min.
func TestLBLCLongIdle(t *testing.T) {
	v := newService(t, "lblc", 0)
	v.add(NewDest(ip4(10, 12, 0, 1), 80, 1))
	s := v.s.(*lblc)
	v.s.Schedule(&Flow{DstAddr: netip.MustParseAddr("198.51.100.8"), Now: t0})
	now := t0 + (10*365*1440+7)*minute
	s.cache.advance(now)
	if s.cache.len() != 0 || s.cache.counter != 8 || s.cache.nextCheck != t0+5256008*minute || s.cache.rover != 0 {
		t.Fatalf("entries %d counter %d next %d rover %d; want 0 8 %d 0",
			s.cache.len(), s.cache.counter, s.cache.nextCheck, s.cache.rover, t0+5256008*minute)
	}
}
