package sched

// twoChoices is ip_vs_twos: draw two destinations with probability
// proportional to weight (r uniform in [0, total], so r = 0 lands on the
// first), keep the less loaded by overhead/weight, the first on a tie.
type twoChoices struct {
	stateless
	rand Rand
}

func (s *twoChoices) Schedule(*Flow) *Dest {
	var total int64
	found := false
	for _, d := range s.dests {
		if !d.Overloaded() && d.Weight > 0 {
			total += int64(d.Weight)
			found = true
		}
	}
	if !found {
		return nil
	}
	// get_random_u32_below(total + 1): inclusive of total.
	r1 := int64(s.rand.Uint32N(uint32(total + 1)))
	r2 := int64(s.rand.Uint32N(uint32(total + 1)))
	var c1, c2 *Dest
	var w1, w2, oh1, oh2 int64
	for _, d := range s.dests {
		if d.Overloaded() || d.Weight <= 0 {
			continue
		}
		w := int64(d.Weight)
		r1 -= w
		r2 -= w
		if r1 <= 0 && c1 == nil {
			c1, w1, oh1 = d, w, int64(d.Overhead())
		}
		if r2 <= 0 && c2 == nil {
			c2, w2, oh2 = d, w, int64(d.Overhead())
		}
		if c1 != nil && c2 != nil {
			break
		}
	}
	if w2*oh1 > w1*oh2 {
		return c2
	}
	return c1
}
