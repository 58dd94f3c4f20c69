package sched

// weightedRoundRobin is ip_vs_wrr. All weights lie in [di..mw] in steps of
// di; each pass over the list takes the destinations whose weight is at
// least cw, and cw drops by di after every pass. mw is lowered by di-1 so
// the last pass runs at cw = 1 and catches a weight that fell below di.
type weightedRoundRobin struct {
	base
	cl int // index of the current destination; -1 is the list head
	cw int64
	mw int64
	di int64
}

// Update is ip_vs_wrr_dest_changed (called on add, delete and edit): back to
// the head, recompute di and mw, and keep cw where it is when still valid.
// Note that cw is kept across an add: adding a heavier destination to a
// running service does not restart the sequence at the new maximum.
func (s *weightedRoundRobin) Update(dests []*Dest) {
	s.setDests(dests)
	s.cl = -1
	s.di = wrrGCD(s.dests)
	s.mw = wrrMaxWeight(s.dests) - (s.di - 1)
	if s.cw > s.mw || s.cw == 0 {
		s.cw = s.mw
	} else if s.di > 1 {
		s.cw = (s.cw/s.di)*s.di + 1
	}
}

// Schedule is ip_vs_wrr_schedule.
func (s *weightedRoundRobin) Schedule(*Flow) *Dest {
	if s.mw == 0 {
		return nil
	}
	n := len(s.dests)
	last := s.cl
	stop := -2 // none; -1 would be the head
	lastPass, restarted := false, false
	i := s.cl
	for {
		for i++; i < n; i++ {
			d := s.dests[i]
			if !d.Overloaded() && int64(d.Weight) >= s.cw {
				s.cl = i
				return d
			}
			if i == stop {
				// All destinations were checked at weight >= 1.
				s.cl = i
				return nil
			}
		}
		s.cw -= s.di
		if s.cw <= 0 {
			s.cw = s.mw
			// Stop if a full pass at cw <= di already ran, or if this
			// call started from the head (its one traversal was it).
			if lastPass || last == -1 {
				s.cl = -1
				return nil
			}
			restarted = true
		}
		lastPass = s.cw <= s.di
		if lastPass && restarted && last != -1 {
			// The first traversal checked w >= 1 only after last; now
			// check the ones up to last.
			stop = last
		}
		i = -1
	}
}

// wrrGCD is the gcd of the positive weights, 1 when there is none.
func wrrGCD(dests []*Dest) int64 {
	var g int64
	for _, d := range dests {
		if w := int64(d.Weight); w > 0 {
			if g > 0 {
				g = gcd(w, g)
			} else {
				g = w
			}
		}
	}
	if g == 0 {
		return 1
	}
	return g
}

func wrrMaxWeight(dests []*Dest) int64 {
	var m int64
	for _, d := range dests {
		if w := int64(d.Weight); w > m {
			m = w
		}
	}
	return m
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
