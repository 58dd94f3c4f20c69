package conntrack

import "net/netip"

// Evicted handshakes. Reclaim keeps a full table open to new clients by
// dropping the oldest embryonic entry, which under a fast flood is only a
// few milliseconds old: 5,000 slots and 280,000 spoofed SYNs a second give
// every entry 18 ms, less than a legitimate handshake takes through a
// saturated director. The client's ACK then finds nothing, is refused, and
// the connection the client believes open is reset.
//
// The kernel does not meet this because its limit is soft: the table grows
// while the drop_entry walk catches up. lvsd's cap is hard, so it remembers
// instead, in a fixed-size, pointer-free cache, where the handshakes it
// evicted were going: client, virtual service and real server, 24 bytes
// each. A non-SYN packet with no connection asks it (RecallEvicted); a hit
// re-creates the connection on the same real server, which still holds its
// half of the handshake, and the packet carries on as if nothing happened.
// The cache is 4-way set associative with the oldest way replaced, so it
// behaves as a FIFO of the last evictedWays*evictedSets evictions: at the
// rate above, a further 230 ms.
//
// It adds nothing an attacker could not do without it: a blind attacker who
// completes its own spoofed handshakes can already do so while the entry is
// in the table. FULLNAT entries are not remembered: their local port goes
// back to the pool on eviction and the real server knows the connection by
// it.

const (
	evictedWays = 4
	evictedSets = 1 << 14 // 65,536 handshakes, 1.5 MiB, allocated on first use
)

type evictedEntry struct {
	caddr, vaddr, daddr [4]byte
	cport, vport, dport uint16
	proto               uint8
	seq                 uint32 // insertion order; 0 = empty
}

type evictedCache struct {
	sets *[evictedSets][evictedWays]evictedEntry
	seq  uint32
}

// Evicted is where an evicted handshake was going.
type Evicted struct {
	Real netip.AddrPort // the real server and port
}

func (t *Table) evictedSet(tup *Tuple) *[evictedWays]evictedEntry {
	return &t.evicted.sets[t.h.sum(tup)&(evictedSets-1)]
}

// remember records an embryonic connection Reclaim is about to drop.
func (t *Table) remember(c *Conn) {
	if c.Fwd() == FwdFullNAT {
		return
	}
	ev := &t.evicted
	if ev.sets == nil {
		ev.sets = new([evictedSets][evictedWays]evictedEntry)
	}
	in := Tuple{Proto: c.proto, Src: c.caddr, SrcPort: c.cport, Dst: c.vaddr, DstPort: c.vport}
	set := t.evictedSet(&in)
	ev.seq++
	if ev.seq == 0 {
		ev.seq = 1
	}
	victim := 0
	for w := range set {
		if set[w].seq == 0 {
			victim = w
			break
		}
		if ev.seq-set[w].seq > ev.seq-set[victim].seq {
			victim = w
		}
	}
	set[victim] = evictedEntry{
		caddr: c.caddr, vaddr: c.vaddr, daddr: c.daddr,
		cport: c.cport, vport: c.vport, dport: c.dport,
		proto: c.proto, seq: ev.seq,
	}
}

// RecallEvicted looks up, and forgets, a handshake Reclaim evicted whose
// client-to-virtual tuple is tup.
func (t *Table) RecallEvicted(tup Tuple) (Evicted, bool) {
	if t.evicted.sets == nil {
		return Evicted{}, false
	}
	set := t.evictedSet(&tup)
	for w := range set {
		e := &set[w]
		if e.seq != 0 && e.proto == tup.Proto && e.caddr == tup.Src && e.cport == tup.SrcPort &&
			e.vaddr == tup.Dst && e.vport == tup.DstPort {
			r := Evicted{Real: netip.AddrPortFrom(netip.AddrFrom4(e.daddr), e.dport)}
			*e = evictedEntry{}
			t.st.Recalled++
			return r, true
		}
	}
	return Evicted{}, false
}
