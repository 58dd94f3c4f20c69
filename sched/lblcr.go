package sched

import "slices"

// destSet is an lblcr server set. members[0] is the newest (the kernel adds
// at the head of the set's list, and searches from there).
type destSet struct {
	members []*Dest
	lastmod int64
}

// min is ip_vs_dest_set_min: wlc over the members that are available, have
// a weight and are not overloaded.
func (s *destSet) min() *Dest {
	start := -1
	for i, d := range s.members {
		if !d.Overloaded() && d.Weight > 0 && d.Available() {
			start = i
			break
		}
	}
	if start < 0 {
		return nil
	}
	least := s.members[start]
	loh := int64(least.Overhead())
	for _, d := range s.members[start+1:] {
		if d.Overloaded() {
			continue
		}
		doh := int64(d.Overhead())
		if loh*int64(d.Weight) > doh*int64(least.Weight) && d.Available() {
			least, loh = d, doh
		}
	}
	return least
}

// max is ip_vs_dest_set_max: the most loaded member with a weight
// (overload and availability do not matter here).
func (s *destSet) max() *Dest {
	start := -1
	for i, d := range s.members {
		if d.Weight > 0 {
			start = i
			break
		}
	}
	if start < 0 {
		return nil
	}
	most := s.members[start]
	moh := int64(most.Overhead())
	for _, d := range s.members[start+1:] {
		doh := int64(d.Overhead())
		if moh*int64(d.Weight) < doh*int64(most.Weight) && d.Weight > 0 {
			most, moh = d, doh
		}
	}
	return most
}

// insert adds d at the head unless it is already a member.
func (s *destSet) insert(d *Dest, now int64) {
	if slices.Contains(s.members, d) {
		return
	}
	s.members = slices.Insert(s.members, 0, d)
	s.lastmod = now
}

// erase removes d.
func (s *destSet) erase(d *Dest, now int64) {
	if i := slices.Index(s.members, d); i >= 0 {
		s.members = slices.Delete(s.members, i, i+1)
		s.lastmod = now
	}
}

// lblcr is ip_vs_lblcr: like lblc, but a destination address maps to a set
// of real servers that grows when all members are busy and sheds its most
// loaded member after the set has been left alone for the expiration time.
type lblcr struct {
	base
	cache *cacheTable[destSet]
}

// Update only takes the new list: the kernel's lblcr has no add/del hooks.
func (s *lblcr) Update(dests []*Dest) { s.setDests(dests) }

func (s *lblcr) Schedule(f *Flow) *Dest {
	now := f.Now
	s.cache.advance(now)
	if en := s.cache.get(f.DstAddr); en != nil {
		en.lastuse = now
		set := &en.val
		d := set.min()
		if len(set.members) > 1 && now > set.lastmod+s.cache.expiration {
			if m := set.max(); m != nil {
				set.erase(m, now)
			}
		}
		if d != nil && !lbOverloaded(d, s.dests) {
			return d
		}
		d = wlcPick(s.dests)
		if d == nil {
			return nil
		}
		set.insert(d, now)
		return d
	}
	d := wlcPick(s.dests)
	if d == nil {
		return nil
	}
	if !s.cache.full() {
		s.cache.add(f.DstAddr, now, destSet{members: []*Dest{d}, lastmod: now})
	}
	return d
}
