package conntrack

import "math/bits"

// The timer wheel is hierarchical (as tokio's): six levels of 64 slots, a
// slot of level L spanning 64^L ticks of 1 ms, so it covers 2^36 ms (795
// days) with 384 list heads. A connection sits in exactly one slot list,
// linked through its wnext/wprev fields, and a 64-bit occupancy word per level
// finds the next non-empty slot without scanning empty ones. Expire therefore
// costs what expires, plus a bounded number of cascades (at most one per level)
// for each entry on its way down.
//
// Re-arming on every packet is O(1) and usually free: when the new deadline is
// later than the one the entry is filed under, only the deadline field is
// written, and the entry is moved when its slot comes due. Only an earlier
// deadline (a shorter timeout, e.g. ESTABLISHED to FIN_WAIT) unlinks and
// refiles it.
const (
	tickNs      = 1_000_000 // 1 ms, the wheel's resolution
	wheelBits   = 6
	wheelSlots  = 1 << wheelBits
	wheelLevels = 6
	wheelMax    = uint64(1) << (wheelBits * wheelLevels)
	noSlot      = 0xffff
)

type wheel struct {
	elapsed  uint64 // every tick before and at this one has been processed
	started  bool
	occupied [wheelLevels]uint64
	heads    [wheelLevels * wheelSlots]ConnID
}

// start pins the wheel to the first clock reading, so that a large monotonic
// clock does not begin life in the top level.
func (w *wheel) start(nowTick uint64) {
	if !w.started {
		w.started = true
		w.elapsed = nowTick
	}
}

// levelFor picks the level where the slot containing when is the first
// boundary between elapsed and when.
func levelFor(elapsed, when uint64) int {
	masked := (elapsed ^ when) | (wheelSlots - 1)
	if masked >= wheelMax {
		masked = wheelMax - 1
	}
	return (63 - bits.LeadingZeros64(masked)) / wheelBits
}

// next returns the earliest occupied slot and the tick at which it is due.
func (w *wheel) next() (slot int, due uint64, ok bool) {
	for level := range wheelLevels {
		occ := w.occupied[level]
		if occ == 0 {
			continue
		}
		shift := uint(level * wheelBits)
		nowSlot := int((w.elapsed >> shift) % wheelSlots)
		s := (bits.TrailingZeros64(bits.RotateLeft64(occ, -nowSlot)) + nowSlot) % wheelSlots
		levelRange := uint64(1) << (shift + wheelBits)
		due = w.elapsed&^(levelRange-1) + uint64(s)<<shift
		if due < w.elapsed && level == wheelLevels-1 {
			// The top level is a ring: a slot behind elapsed is one
			// rotation ahead.
			due += levelRange
		}
		return level*wheelSlots + s, due, true
	}
	return 0, 0, false
}

// deadlineTick is now + timeout rounded up to the tick, never in the past of
// the wheel.
func (t *Table) deadlineTick(now int64, timeoutMs uint32) uint64 {
	if now < 0 {
		now = 0
	}
	d := (uint64(now)+tickNs-1)/tickNs + uint64(timeoutMs)
	if d <= t.w.elapsed {
		d = t.w.elapsed + 1
	}
	return d
}

// arm (re)starts c's timer to fire at tick deadline: mod_timer.
func (t *Table) arm(id ConnID, c *Conn, deadline uint64) {
	if c.wslot != noSlot {
		// Filed under a deadline no later than c.deadline, so the slot comes
		// due no later than the new deadline either: refile lazily then.
		if deadline >= c.deadline {
			c.deadline = deadline
			return
		}
		t.unfile(c)
	}
	c.deadline = deadline
	t.file(id, c)
}

func (t *Table) file(id ConnID, c *Conn) {
	level := levelFor(t.w.elapsed, c.deadline)
	shift := uint(level * wheelBits)
	s := level*wheelSlots + int((c.deadline>>shift)%wheelSlots)
	head := t.w.heads[s]
	c.wnext, c.wprev = head, 0
	if head != 0 {
		t.conn(head).wprev = id
	}
	t.w.heads[s] = id
	t.w.occupied[level] |= 1 << (s % wheelSlots)
	c.wslot = uint16(s)
}

func (t *Table) unfile(c *Conn) {
	s := int(c.wslot)
	if c.wprev != 0 {
		t.conn(c.wprev).wnext = c.wnext
	} else {
		t.w.heads[s] = c.wnext
		if c.wnext == 0 {
			t.w.occupied[s/wheelSlots] &^= 1 << (s % wheelSlots)
		}
	}
	if c.wnext != 0 {
		t.conn(c.wnext).wprev = c.wprev
	}
	c.wnext, c.wprev, c.wslot = 0, 0, noSlot
}

// Expire runs every timer due at now (ip_vs_conn_expire) and returns how
// many connections and templates were removed. Timers run in deadline order
// as if they had fired on time, so a template that still controls
// connections is re-armed for 60 s from its due time (again, if that is
// still before now and it still controls some). Cost: proportional to the
// entries that come due, not to the table size or the time elapsed.
func (t *Table) Expire(now int64) int {
	if now < 0 {
		now = 0
	}
	nowTick := uint64(now) / tickNs
	t.w.start(nowTick)
	removed := 0
	for {
		s, due, ok := t.w.next()
		if !ok || due > nowTick {
			break
		}
		// Entries refiled or re-armed while this slot drains land in lower
		// levels or later slots, never in this one.
		t.w.elapsed = due
		for id := t.w.heads[s]; id != 0; id = t.w.heads[s] {
			c := t.conn(id)
			t.unfile(c)
			if c.deadline > due {
				t.file(id, c)
				continue
			}
			// Run the timer as if on time: a deferral re-arms from the
			// due tick, as the kernel's punctual timer would.
			if t.expire(id, c, false, int64(due)*tickNs) {
				removed++
			}
		}
	}
	if nowTick > t.w.elapsed {
		t.w.elapsed = nowTick
	}
	return removed
}
