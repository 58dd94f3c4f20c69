package sched

// roundRobin is ip_vs_rr: continue after the last selected destination,
// take the next one with weight > 0 that is not overloaded.
type roundRobin struct {
	base
	// pos is the index of the last selected destination; -1 is the list
	// head (the kernel's initial svc->sched_data).
	pos     int
	scratch []*Dest
}

// Update keeps the position on the same destination, as the kernel keeps a
// pointer to it (rr has no add_dest hook, so new destinations, added at the
// head, do not move it). If that destination was removed the position steps
// back to its nearest surviving predecessor, as ip_vs_rr_del_dest does.
func (s *roundRobin) Update(dests []*Dest) {
	old := s.pos
	s.scratch = append(s.scratch[:0], s.dests...)
	s.setDests(dests)
	s.pos = -1
	for i := old; i >= 0 && i < len(s.scratch); i-- {
		if j := indexOf(s.dests, s.scratch[i]); j >= 0 {
			s.pos = j
			break
		}
	}
	clear(s.scratch)
}

// Schedule checks, in list order, every destination after the last one
// selected, wrapping around and ending with that last one itself (the
// kernel's two passes).
func (s *roundRobin) Schedule(*Flow) *Dest {
	n := len(s.dests)
	for k := range n {
		i := (s.pos + 1 + k) % n
		d := s.dests[i]
		if !d.Overloaded() && d.Weight > 0 {
			s.pos = i
			return d
		}
	}
	return nil
}

func indexOf(dests []*Dest, d *Dest) int {
	for i, x := range dests {
		if x == d {
			return i
		}
	}
	return -1
}
