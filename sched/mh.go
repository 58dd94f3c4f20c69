package sched

import "math/bits"

// Maglev table geometry: CONFIG_IP_VS_MH_TAB_INDEX defaults to 12, which
// selects primes[12-8] = 4093 slots and IP_VS_MH_TAB_BITS = 12/2 = 6.
const (
	mhTabSize = 4093
	mhTabBits = 6
)

// The kernel's fixed (not random) hsiphash key words, generate_hash_secret:
// every director computes the same table, which is what lets a group of
// directors agree on a client's real server without state sync.
const (
	mhKey1Word = 2654435761
	mhKey2Word = 2654446892
)

func mhKey1() sipKey { return sipKey{mhKey1Word, mhKey1Word} }
func mhKey2() sipKey { return sipKey{mhKey2Word, mhKey2Word} }

// maglev is ip_vs_mh: Maglev consistent hashing (NSDI'16 §3.4) over a table
// of 4093 slots, built from last_weight so that quiescing a destination
// (weight 0) leaves the table alone and only makes the slot unavailable.
type maglev struct {
	base
	lookup [mhTabSize]*Dest
	used   [mhTabSize]bool
	setup  []mhDestSetup
}

type mhDestSetup struct {
	offset, skip, perm uint32
	turns              int64
}

func newMaglev(b base) *maglev { return &maglev{base: b} }

// mhHashKey is ip_vs_mh_hashkey: hsiphash of the u32 sum of offset, port
// and folded address.
func mhHashKey(fold uint32, port uint16, key sipKey, offset uint32) uint32 {
	return hsiphash32(offset+uint32(port)+fold, key)
}

// mhOffsetSkip is a destination's permutation: where its preference list
// starts and its stride (never 0, so it visits every slot of the prime-sized
// table).
func mhOffsetSkip(d *Dest) (offset, skip uint32) {
	fold := addrFold(d.Addr)
	offset = mhHashKey(fold, d.Port, mhKey1(), 0) % mhTabSize
	skip = mhHashKey(fold, d.Port, mhKey2(), 0)%(mhTabSize-1) + 1
	return offset, skip
}

// Update is ip_vs_mh_dest_changed: recompute gcd and shift over last_weight,
// then permute and populate the table from scratch.
func (s *maglev) Update(dests []*Dest) {
	s.setDests(dests)
	g := mhGCD(s.dests)
	if g < 1 {
		// No destination with a last weight: empty table.
		clear(s.lookup[:])
		return
	}
	rshift := mhShift(s.dests, g)

	// ip_vs_mh_permutate
	s.setup = s.setup[:0]
	for _, d := range s.dests {
		offset, skip := mhOffsetSkip(d)
		lw := int64(d.LastWeight)
		turns := (lw / g) >> rshift
		if turns == 0 && lw != 0 {
			turns = 1
		}
		s.setup = append(s.setup, mhDestSetup{offset: offset, skip: skip, perm: offset, turns: turns})
	}

	// ip_vs_mh_populate: destinations take turns in list order, each
	// claiming `turns` slots in a row, every claim being the next free
	// slot along its own permutation.
	clear(s.used[:])
	n, dtCount := 0, int64(0)
	for n < mhTabSize {
		for i := 0; i < len(s.dests); {
			ds := &s.setup[i]
			if ds.turns < 1 {
				i++ // added with zero weight: no slots
				continue
			}
			c := ds.perm
			for s.used[c] {
				ds.perm += ds.skip
				if ds.perm >= mhTabSize {
					ds.perm -= mhTabSize
				}
				c = ds.perm
			}
			s.used[c] = true
			s.lookup[c] = s.dests[i]
			if n++; n == mhTabSize {
				return
			}
			if dtCount++; dtCount >= ds.turns {
				dtCount = 0
				i++
			}
		}
	}
}

// mhGCD is the gcd of the positive last weights, 0 when there is none.
func mhGCD(dests []*Dest) int64 {
	var g int64
	for _, d := range dests {
		if w := int64(d.LastWeight); w > 0 {
			if g > 0 {
				g = gcd(w, g)
			} else {
				g = w
			}
		}
	}
	return g
}

// mhShift keeps the largest turns count within IP_VS_MH_TAB_BITS bits, so a
// huge weight cannot make one destination claim the table in one go.
func mhShift(dests []*Dest, g int64) uint {
	var m int64
	for _, d := range dests {
		if w := int64(d.LastWeight); w > m {
			m = w
		}
	}
	shift := bits.Len64(uint64(m/g)) - mhTabBits
	if shift < 0 {
		return 0
	}
	return uint(shift)
}

func (s *maglev) Schedule(f *Flow) *Dest {
	fold := addrFold(f.SrcAddr)
	port := hashPort(f, s.flags&FlagMHPort != 0)
	ihash := mhHashKey(fold, port, mhKey1(), 0) % mhTabSize
	d := s.lookup[ihash]
	if d == nil {
		return nil
	}
	if !shUnavailable(d) {
		return d
	}
	if s.flags&FlagMHFallback == 0 {
		return nil
	}
	// Re-hash with growing offsets until an available slot turns up.
	for off := uint32(0); off < mhTabSize; off++ {
		roffset := (off + ihash) % mhTabSize
		d = s.lookup[mhHashKey(fold, port, mhKey1(), roffset)%mhTabSize]
		if d == nil {
			break
		}
		if !shUnavailable(d) {
			return d
		}
	}
	return nil
}
