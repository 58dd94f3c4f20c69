package conntrack

import (
	"encoding/binary"
	"math/bits"
)

// Tuple is a packet's 5-tuple as it appears on the wire, IPv4 only. The same
// shape keys every index entry: a packet's own (src, sport, dst, dport).
type Tuple struct {
	Proto   uint8
	Src     [4]byte
	SrcPort uint16
	Dst     [4]byte
	DstPort uint16
}

// Index entry kinds, in the low two bits of a slot's ref.
const (
	kindIn  = 1 // client side: caddr, cport, vaddr, vport
	kindOut = 2 // server side: daddr, dport, laddr, lport
	kindTpl = 3 // template: snet, 0, vaddr, vport
)

// islot is one open-addressing slot: 8 bytes, eight to a cache line. The
// stored hash both filters probes without touching the connection record and
// gives the home slot when entries move (growth, backward-shift deletion).
type islot struct {
	hash uint32
	ref  uint32 // ConnID<<2 | kind; 0 is empty
}

// index is a linear-probing hash table with backward-shift deletion, so
// there are no tombstones and probe sequences stay short under churn.
type index struct {
	slots []islot
	mask  uint32
	n     int
}

const minIndexSlots = 64

func (x *index) init(entries int) {
	n := minIndexSlots
	for n*3 < entries*4 { // keep the load at or below 3/4
		n <<= 1
	}
	x.slots = make([]islot, n)
	x.mask = uint32(n - 1)
	x.n = 0
}

func (x *index) insert(h, ref uint32) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow()
	}
	x.place(h, ref)
	x.n++
}

func (x *index) place(h, ref uint32) {
	i := h & x.mask
	for x.slots[i].ref != 0 {
		i = (i + 1) & x.mask
	}
	x.slots[i] = islot{hash: h, ref: ref}
}

// grow doubles the table. It allocates, so it runs on inserts only and is
// amortised; Config.SizeHint avoids it altogether.
func (x *index) grow() {
	old := x.slots
	x.slots = make([]islot, 2*len(old))
	x.mask = uint32(len(x.slots) - 1)
	for _, s := range old {
		if s.ref != 0 {
			x.place(s.hash, s.ref)
		}
	}
}

// remove deletes the entry with exactly this ref, whose hash is h.
func (x *index) remove(h, ref uint32) bool {
	i := h & x.mask
	for {
		s := x.slots[i]
		if s.ref == 0 {
			return false
		}
		if s.ref == ref {
			break
		}
		i = (i + 1) & x.mask
	}
	// Backward shift (Knuth 6.4 algorithm R): pull later entries of the
	// cluster into the hole unless their home lies cyclically in (i, j].
	j := i
	for {
		j = (j + 1) & x.mask
		s := x.slots[j]
		if s.ref == 0 {
			break
		}
		k := s.hash & x.mask
		if i <= j {
			if i < k && k <= j {
				continue
			}
		} else if i < k || k <= j {
			continue
		}
		x.slots[i] = s
		i = j
	}
	x.slots[i] = islot{}
	x.n--
	return true
}

// hasher is a keyed multiply-mix hash: keyed so that clients cannot choose
// tuples that collide (the kernel keys jhash with a random ip_vs_conn_rnd).
type hasher struct{ k0, k1, k2 uint64 }

func newHasher(seed uint64) hasher {
	return hasher{k0: splitmix(&seed), k1: splitmix(&seed), k2: splitmix(&seed)}
}

func splitmix(s *uint64) uint64 {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func (h *hasher) sum(t *Tuple) uint32 {
	x := uint64(binary.LittleEndian.Uint32(t.Src[:]))<<32 | uint64(binary.LittleEndian.Uint32(t.Dst[:]))
	y := uint64(t.SrcPort)<<48 | uint64(t.DstPort)<<32 | uint64(t.Proto)
	v := mum(x^h.k0, y^h.k1)
	return uint32(mum(v^h.k2, 0x2d358dccaa6c78a5^y))
}
