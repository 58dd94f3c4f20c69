package sched

// The connection-counting schedulers. None keeps state between decisions;
// all compare loads without division: h1/w1 > h2/w2 is h1*w2 > h2*w1 in 64
// bits, and every comparison is strict, so the first destination in list
// order wins a tie.

// stateless is the Update of schedulers that only read the list.
type stateless struct{ base }

func (s *stateless) Update(dests []*Dest) { s.setDests(dests) }

// leastConn is ip_vs_lc: the smallest overhead (active*256 + inactive)
// among destinations that are not overloaded and have a weight.
type leastConn struct{ stateless }

func (s *leastConn) Schedule(*Flow) *Dest {
	var least *Dest
	var loh uint64
	for _, d := range s.dests {
		if d.Overloaded() || d.Weight == 0 {
			continue
		}
		if doh := d.Overhead(); least == nil || doh < loh {
			least, loh = d, doh
		}
	}
	return least
}

// weightedLeastConn is ip_vs_wlc, the default scheduler.
type weightedLeastConn struct{ stateless }

func (s *weightedLeastConn) Schedule(*Flow) *Dest { return wlcPick(s.dests) }

// wlcPick is the weighted least-connection choice shared by wlc, lblc and
// lblcr: start from the first destination with weight > 0 that is not
// overloaded, then take any later one with a strictly smaller
// overhead/weight. A weight-0 destination never wins (loh*0 > ... is false).
func wlcPick(dests []*Dest) *Dest {
	start := -1
	for i, d := range dests {
		if !d.Overloaded() && d.Weight > 0 {
			start = i
			break
		}
	}
	if start < 0 {
		return nil
	}
	least := dests[start]
	loh := int64(least.Overhead())
	for _, d := range dests[start+1:] {
		if d.Overloaded() {
			continue
		}
		doh := int64(d.Overhead())
		if loh*int64(d.Weight) > doh*int64(least.Weight) {
			least, loh = d, doh
		}
	}
	return least
}

// sedOverhead is the shortest-expected-delay load: active connections plus
// the one being scheduled. Inactive connections do not count.
func sedOverhead(d *Dest) int64 { return int64(d.ActiveConns) + 1 }

// shortestExpectedDelay is ip_vs_sed: wlc with (active+1) as the overhead.
type shortestExpectedDelay struct{ stateless }

func (s *shortestExpectedDelay) Schedule(*Flow) *Dest {
	start := -1
	for i, d := range s.dests {
		if !d.Overloaded() && d.Weight > 0 {
			start = i
			break
		}
	}
	if start < 0 {
		return nil
	}
	least := s.dests[start]
	loh := sedOverhead(least)
	for _, d := range s.dests[start+1:] {
		if d.Overloaded() {
			continue
		}
		doh := sedOverhead(d)
		if loh*int64(d.Weight) > doh*int64(least.Weight) {
			least, loh = d, doh
		}
	}
	return least
}

// neverQueue is ip_vs_nq: the first idle destination (no active
// connections) wins at once; otherwise the sed choice.
type neverQueue struct{ stateless }

func (s *neverQueue) Schedule(*Flow) *Dest {
	var least *Dest
	var loh int64
	for _, d := range s.dests {
		if d.Overloaded() || d.Weight == 0 {
			continue
		}
		doh := sedOverhead(d)
		if d.ActiveConns == 0 {
			return d
		}
		if least == nil || loh*int64(d.Weight) > doh*int64(least.Weight) {
			least, loh = d, doh
		}
	}
	return least
}

// failover is ip_vs_fo: the highest weight among destinations that are not
// overloaded; weight 0 never qualifies since the bar starts at 0.
type failover struct{ stateless }

func (s *failover) Schedule(*Flow) *Dest {
	var best *Dest
	var hw int32
	for _, d := range s.dests {
		if !d.Overloaded() && d.Weight > hw {
			best, hw = d, d.Weight
		}
	}
	return best
}

// overflow is ip_vs_ovf: the highest weight among destinations that are not
// overloaded, have a weight, and have no more active connections than their
// weight; traffic overflows to the next one when the first fills up.
type overflow struct{ stateless }

func (s *overflow) Schedule(*Flow) *Dest {
	var best *Dest
	var hw int32
	for _, d := range s.dests {
		w := d.Weight
		if d.Overloaded() || int64(d.ActiveConns) > int64(w) || w == 0 {
			continue
		}
		if best == nil || w > hw {
			best, hw = d, w
		}
	}
	return best
}
