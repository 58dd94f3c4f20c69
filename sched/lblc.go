package sched

// lblc is ip_vs_lblc: remember which real server each destination address
// went to and keep using it while it is usable; otherwise pick by wlc and
// remember that instead.
type lblc struct {
	base
	cache *cacheTable[*Dest]
}

// Update only takes the new list: the kernel's lblc has no add/del hooks.
// Cache entries may keep pointing at a removed destination; they fail the
// Available check once the engine clears DestAvailable on removal.
func (s *lblc) Update(dests []*Dest) { s.setDests(dests) }

func (s *lblc) Schedule(f *Flow) *Dest {
	s.cache.advance(f.Now)
	en := s.cache.get(f.DstAddr)
	if en != nil {
		en.lastuse = f.Now
		if d := en.val; d.Available() && d.Weight > 0 && !lbOverloaded(d, s.dests) {
			return d
		}
	}
	d := wlcPick(s.dests)
	if d == nil {
		return nil
	}
	// ip_vs_lblc_new: replace a stale mapping, never grow past max_size.
	if en != nil {
		if en.val == d {
			return d
		}
		s.cache.remove(f.DstAddr)
	}
	if !s.cache.full() {
		s.cache.add(f.DstAddr, f.Now, d)
	}
	return d
}
