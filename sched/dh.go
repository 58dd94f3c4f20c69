package sched

// CONFIG_IP_VS_DH_TAB_BITS default.
const (
	dhTabBits = 8
	dhTabSize = 1 << dhTabBits
)

// destHash is ip_vs_dh: a 256-bucket table filled round-robin over the list,
// one bucket per destination per round (weights ignored), indexed by a hash
// of the packet's destination address. No fallback.
type destHash struct {
	base
	buckets [dhTabSize]*Dest
}

// Update is ip_vs_dh_reassign. The kernel runs it on add and delete only;
// the table depends on nothing else, so rebuilding on an edit is a no-op.
func (s *destHash) Update(dests []*Dest) {
	s.setDests(dests)
	n := len(s.dests)
	if n == 0 {
		clear(s.buckets[:])
		return
	}
	for i := range s.buckets {
		s.buckets[i] = s.dests[i%n]
	}
}

func (s *destHash) Schedule(f *Flow) *Dest {
	d := s.buckets[hash32(addrFold(f.DstAddr), dhTabBits)]
	if d == nil || !d.Available() || d.Weight <= 0 || d.Overloaded() {
		return nil
	}
	return d
}
