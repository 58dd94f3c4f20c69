package conntrack

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// Reclaim remembers where each evicted handshake was going; RecallEvicted
// finds it once, by the client's tuple, for as long as the cache holds it
// (the last evictedWays*evictedSets evictions, oldest out first within a
// set), and never for FULLNAT or a tuple that was not evicted.
func TestEvictedHandshakes(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1000, Seed: 3})
	def := DefaultDefense()
	def.DropEntry = 3
	if err := tb.SetDefense(def); err != nil {
		t.Fatal(err)
	}
	now := 100 * sec
	rng := rand.New(rand.NewPCG(7, 8))
	flood(t, tb, rng, 1000, now)
	// One embryonic entry of interest, then enough flood to evict it.
	d := newDest("172.16.0.9:8080")
	p := ConnParams{Proto: ProtoTCP, Client: ap("198.51.100.2:40000"), Virtual: ap("203.0.113.5:80"), Dest: d, DestPort: 8080, Fwd: FwdMasq}
	if !tb.Reclaim(now, 0) {
		t.Fatal("Reclaim found nothing to evict in a table full of SYN_RECV")
	}
	id, err := tb.NewConn(&p, now)
	if err != nil {
		t.Fatal(err)
	}
	tb.Step(id, DirIn, fSYN, 60, now)
	for range 1000 {
		if !tb.Reclaim(now, 0) {
			t.Fatal("Reclaim stopped evicting")
		}
		flood(t, tb, rng, 1, now)
	}
	tup := Tuple{Proto: ProtoTCP, Src: [4]byte{198, 51, 100, 2}, SrcPort: 40000, Dst: [4]byte{203, 0, 113, 5}, DstPort: 80}
	if id, _ := tb.Lookup(tup); id != 0 {
		t.Fatal("the entry survived a lap of the table")
	}
	ev, ok := tb.RecallEvicted(tup)
	if !ok || ev.Real != netip.MustParseAddrPort("172.16.0.9:8080") {
		t.Fatalf("RecallEvicted = %v %v, want 172.16.0.9:8080", ev, ok)
	}
	if _, ok := tb.RecallEvicted(tup); ok {
		t.Error("a recalled handshake was recalled twice")
	}
	other := tup
	other.SrcPort++
	if _, ok := tb.RecallEvicted(other); ok {
		t.Error("RecallEvicted found a tuple that was never evicted")
	}
	if tb.Stats().Recalled != 1 {
		t.Errorf("Stats().Recalled %d, want 1", tb.Stats().Recalled)
	}
}

// Within one set the oldest way goes first: a set filled beyond its ways
// keeps the newest ones.
func TestEvictedOldestWayReplaced(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 10, Seed: 3})
	mk := func(port uint16) *Conn {
		return &Conn{caddr: [4]byte{10, 0, 0, 1}, cport: port, vaddr: [4]byte{10, 0, 0, 100}, vport: 80, daddr: [4]byte{172, 16, 0, 2}, dport: 80, proto: ProtoTCP, flags: Flags(FwdMasq)}
	}
	// Ports landing in one set.
	var ports []uint16
	want := tb.evictedSetIndex(mk(1))
	for port := uint16(1); len(ports) < evictedWays+2; port++ {
		if tb.evictedSetIndex(mk(port)) == want {
			ports = append(ports, port)
		}
	}
	for _, port := range ports {
		tb.remember(mk(port))
	}
	for i, port := range ports {
		c := mk(port)
		_, ok := tb.RecallEvicted(Tuple{Proto: c.proto, Src: c.caddr, SrcPort: c.cport, Dst: c.vaddr, DstPort: c.vport})
		if old := i < len(ports)-evictedWays; ok == old {
			t.Errorf("port %d (%d of %d into one set): recalled %v, want %v", port, i+1, len(ports), ok, !old)
		}
	}
	fn := mk(9)
	fn.flags = Flags(FwdFullNAT)
	tb.remember(fn)
	if _, ok := tb.RecallEvicted(Tuple{Proto: ProtoTCP, Src: fn.caddr, SrcPort: 9, Dst: fn.vaddr, DstPort: 80}); ok {
		t.Error("a FULLNAT handshake was remembered (its local port is gone)")
	}
}

// evictedSetIndex is the set c's client tuple falls in (for tests).
func (t *Table) evictedSetIndex(c *Conn) uint32 {
	in := Tuple{Proto: c.proto, Src: c.caddr, SrcPort: c.cport, Dst: c.vaddr, DstPort: c.vport}
	return t.h.sum(&in) & (evictedSets - 1)
}
