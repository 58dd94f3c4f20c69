package sched

// IP protocol numbers whose first four L4 bytes are the ports (the only ones
// sh-port and mh-port take a port from).
const (
	protoTCP  = 6
	protoUDP  = 17
	protoSCTP = 132
)

// hashPort is the port sh and mh mix into the hash: the source port with
// the -port flag and a protocol that has ports, 0 otherwise.
func hashPort(f *Flow, portFlag bool) uint16 {
	if !portFlag {
		return 0
	}
	switch f.Proto {
	case protoTCP, protoUDP, protoSCTP:
		return f.SrcPort
	}
	return 0
}

// CONFIG_IP_VS_SH_TAB_BITS default.
const (
	shTabBits = 8
	shTabSize = 1 << shTabBits
	shTabMask = shTabSize - 1
)

// sourceHash is ip_vs_sh: a 256-bucket table filled in list order, each
// destination taking weight consecutive buckets per round (at least one),
// indexed by a hash of the client address (and port with sh-port).
type sourceHash struct {
	base
	buckets [shTabSize]*Dest
}

// Update is ip_vs_sh_reassign, run on add, delete and edit: weights shape
// the table, so any change rebuilds it from bucket 0.
func (s *sourceHash) Update(dests []*Dest) {
	s.setDests(dests)
	n := len(s.dests)
	if n == 0 {
		clear(s.buckets[:])
		return
	}
	p, count := 0, int64(0)
	for i := range s.buckets {
		d := s.dests[p]
		s.buckets[i] = d
		count++
		if count >= int64(d.Weight) {
			p = (p + 1) % n
			count = 0
		}
	}
}

// shKey is ip_vs_sh_hashkey.
func shKey(fold uint32, port uint16, offset uint32) uint32 {
	return (offset + hash32(uint32(port)+fold, shTabBits)) & shTabMask
}

// shUnavailable is the sh/mh is_unavailable: quiesced or overloaded.
func shUnavailable(d *Dest) bool { return d.Weight <= 0 || d.Overloaded() }

func (s *sourceHash) Schedule(f *Flow) *Dest {
	fold := addrFold(f.SrcAddr)
	port := hashPort(f, s.flags&FlagSHPort != 0)
	ihash := shKey(fold, port, 0)
	d := s.buckets[ihash]
	if d == nil {
		return nil
	}
	if !shUnavailable(d) {
		return d
	}
	if s.flags&FlagSHFallback == 0 {
		return nil
	}
	// Walk the table from a point derived from the original hash, so the
	// replacement is deterministic for the client.
	for off := uint32(0); off < shTabSize; off++ {
		roffset := (off + ihash) % shTabSize
		d = s.buckets[shKey(fold, port, roffset)]
		if d == nil {
			break
		}
		if !shUnavailable(d) {
			return d
		}
	}
	return nil
}
