package sched

import (
	"net/netip"
	"strings"
	"testing"
)

// Worked example sh fill (ipvs.md §3.2): list C(2), B(3), A(4); each
// destination takes weight consecutive buckets per round: C C B B B A A A A,
// repeated. 256 = 28*9 + 4, so C 28*2+2 = 58, B 28*3+2 = 86, A 28*4 = 112.
func TestSHWorkedExampleFill(t *testing.T) {
	v, m := workedExample(t, "sh")
	s := v.s.(*sourceHash)
	var names []string
	count := map[string]int{}
	for _, d := range s.buckets {
		names = append(names, m.name(d))
		count[m.name(d)]++
	}
	equalStrings(t, "sh prefix", names[:12], strings.Fields("C C B B B A A A A C C B"))
	if count["C"] != 58 || count["B"] != 86 || count["A"] != 112 {
		t.Fatalf("bucket counts %v, want C 58, B 86, A 112", count)
	}

	// The hash vectors select buckets 137, 235, 89, 174; in the period
	// C C B B B A A A A those are 137%9=2 -> B, 235%9=1 -> C, 89%9=8 -> A,
	// 174%9=3 -> B.
	for addr, want := range map[string]string{
		"10.0.0.2": "B", "10.0.0.3": "C", "192.168.1.100": "A", "207.175.44.110": "B",
	} {
		d := v.s.Schedule(&Flow{Proto: protoTCP, SrcAddr: netip.MustParseAddr(addr), SrcPort: 40000})
		if got := m.name(d); got != want {
			t.Errorf("sh(%s) = %s, want %s", addr, got, want)
		}
	}
}

// Weight 0 still occupies one bucket per round (the fill moves on after
// ++count >= weight), but that bucket schedules nothing.
func TestSHWeightZeroBucket(t *testing.T) {
	m := named{}
	v := newService(t, "sh", 0)
	v.add(m.dest("X", ip4(10, 4, 0, 1), 80, 2))
	v.add(m.dest("Q", ip4(10, 4, 0, 2), 80, 0))
	// List Q(0), X(2): Q X X, repeated; 256 = 85*3 + 1 -> Q 86, X 170.
	s := v.s.(*sourceHash)
	count := map[string]int{}
	for _, d := range s.buckets {
		count[m.name(d)]++
	}
	if count["Q"] != 86 || count["X"] != 170 {
		t.Fatalf("bucket counts %v, want Q 86, X 170", count)
	}
	// 10.0.0.3 hashes to bucket 235 = 3*78 + 1 -> X; 10.0.0.2 to 137 =
	// 3*45 + 2 -> X; 207.175.44.110 to 174 = 3*58 -> Q: no destination.
	if d := v.s.Schedule(&Flow{SrcAddr: netip.MustParseAddr("207.175.44.110")}); d != nil {
		t.Fatalf("bucket of quiesced Q gave %s, want nil", m.name(d))
	}
	if d := v.s.Schedule(&Flow{SrcAddr: netip.MustParseAddr("10.0.0.3")}); m.name(d) != "X" {
		t.Fatalf("10.0.0.3 gave %s, want X", m.name(d))
	}
}

// sh-fallback: an unavailable bucket is replaced by walking the table with
// offsets: probe off looks at bucket (off + ihash + ihash) & 255.
func TestSHFallback(t *testing.T) {
	m := named{}
	v := newService(t, "sh", FlagSHFallback)
	v.add(m.dest("Z", ip4(10, 4, 0, 3), 80, 1))
	v.add(m.dest("Y", ip4(10, 4, 0, 2), 80, 1))
	x := v.add(m.dest("X", ip4(10, 4, 0, 1), 80, 1))
	y, z := m.destByName("Y"), m.destByName("Z")
	// List X, Y, Z, weight 1 each: bucket i holds list[i % 3].
	// 10.0.0.2 -> bucket 137 -> 137 % 3 = 2 -> Z. Make Z unusable: the
	// first probe is (0 + 2*137) & 255 = 18 -> 18 % 3 = 0 -> X.
	f := &Flow{SrcAddr: netip.MustParseAddr("10.0.0.2")}
	if d := v.s.Schedule(f); d != z {
		t.Fatalf("home bucket gave %s, want Z", m.name(d))
	}
	z.Flags |= DestOverload
	if d := v.s.Schedule(f); d != x {
		t.Fatalf("fallback gave %s, want X", m.name(d))
	}
	// X unusable too: probe 1 is bucket 19 -> 19 % 3 = 1 -> Y.
	v.edit(x, 0)
	if d := v.s.Schedule(f); d != y {
		t.Fatalf("second probe gave %s, want Y", m.name(d))
	}
	// Without the flag: nil.
	if err := v.s.(FlagSetter).SetFlags(0); err != nil {
		t.Fatal(err)
	}
	if d := v.s.Schedule(f); d != nil {
		t.Fatalf("no fallback gave %s, want nil", m.name(d))
	}
	// With the flag but everything unusable: nil after the whole walk.
	if err := v.s.(FlagSetter).SetFlags(FlagSHFallback); err != nil {
		t.Fatal(err)
	}
	y.Flags |= DestOverload
	if d := v.s.Schedule(f); d != nil {
		t.Fatalf("all unusable gave %s, want nil", m.name(d))
	}
}

// sh-port mixes the source port into the hash (TCP/UDP/SCTP only):
// bucket = hash_32(port + ntohl(addr), 8).
func TestSHPort(t *testing.T) {
	m := named{}
	v := newService(t, "sh", FlagSHPort)
	for i := range 4 {
		v.add(m.dest(string(rune('P'+i)), ip4(10, 5, 0, byte(i+1)), 80, 1))
	}
	s := v.s.(*sourceHash)
	src := netip.MustParseAddr("10.0.0.2")
	fold := uint32(0x0a000002)
	for _, port := range []uint16{0, 1, 80, 45678, 65535} {
		want := s.buckets[hash32(uint32(port)+fold, 8)]
		for _, proto := range []uint8{protoTCP, protoUDP, protoSCTP} {
			if d := v.s.Schedule(&Flow{Proto: proto, SrcAddr: src, SrcPort: port}); d != want {
				t.Errorf("proto %d port %d: got %s, want %s", proto, port, m.name(d), m.name(want))
			}
		}
		// ICMP (1) has no ports: port 0 is hashed.
		if d := v.s.Schedule(&Flow{Proto: 1, SrcAddr: src, SrcPort: port}); d != s.buckets[137] {
			t.Errorf("icmp port %d: got %s, want bucket 137's %s", port, m.name(d), m.name(s.buckets[137]))
		}
	}
}

// Same key, same destination, call after call; a destination address does
// not matter to sh, a source address does not matter to dh.
func TestSHDHStable(t *testing.T) {
	for _, name := range []string{"sh", "dh"} {
		m := named{}
		v := newService(t, name, 0)
		for i := range 5 {
			v.add(m.dest(string(rune('A'+i)), ip4(10, 6, 0, byte(i+1)), 80, int32(i+1)))
		}
		for i := range 500 {
			key := ip4(192, 0, 2, byte(i))
			f := &Flow{SrcAddr: key, DstAddr: key}
			first := v.s.Schedule(f)
			for j := range 5 {
				other := ip4(203, 0, 113, byte(j))
				g := &Flow{SrcAddr: key, DstAddr: key}
				if name == "sh" {
					g.DstAddr = other
				} else {
					g.SrcAddr = other
				}
				if d := v.s.Schedule(g); d != first {
					t.Fatalf("%s: key %v moved from %s to %s", name, key, m.name(first), m.name(d))
				}
			}
		}
	}
}

// dh fills bucket i with list[i % n] (one bucket per destination per
// round). Deleting one of three therefore moves more than its own keys.
// List X Y Z, delete Z: old period X Y Z, new X Y. Over one common period
// of 6 buckets: old X Y Z X Y Z, new X Y X Y X Y -> moved at 2 (Z), 3, 4,
// 5 (Z). 256 = 42*6 + 4; the last 4 buckets: old X Y Z X, new X Y X Y ->
// 2 moved. Total 42*4 + 2 = 170 of 256; Z had 85 (i%3 == 2), so 85 keys
// that were not on Z moved too. sh with equal weights fills the same way.
func TestDHSHDeleteMovesPerFillRule(t *testing.T) {
	for _, name := range []string{"dh", "sh"} {
		t.Run(name, func(t *testing.T) {
			m := named{}
			v := newService(t, name, 0)
			z := v.add(m.dest("Z", ip4(10, 7, 0, 3), 80, 1))
			v.add(m.dest("Y", ip4(10, 7, 0, 2), 80, 1))
			v.add(m.dest("X", ip4(10, 7, 0, 1), 80, 1))
			keys := bucketKeys(t)
			before := make([]*Dest, len(keys))
			for b, k := range keys {
				before[b] = v.s.Schedule(flowFor(name, k))
				if want := v.dests[b%3]; before[b] != want {
					t.Fatalf("bucket %d: %s, want list[%d] = %s", b, m.name(before[b]), b%3, m.name(want))
				}
			}
			v.del(z)
			moved, movedNotZ := 0, 0
			for b, k := range keys {
				after := v.s.Schedule(flowFor(name, k))
				if after != v.dests[b%2] {
					t.Fatalf("after delete, bucket %d: %s, want list[%d]", b, m.name(after), b%2)
				}
				if after != before[b] {
					moved++
					if before[b] != z {
						movedNotZ++
					}
				}
			}
			if moved != 170 || movedNotZ != 85 {
				t.Fatalf("moved %d (of them %d not from Z), want 170 and 85", moved, movedNotZ)
			}
		})
	}
}

// bucketKeys finds, for each of the 256 buckets, an address hashing there
// (by the reference formula hash_32(ntohl(addr), 8)).
func bucketKeys(t *testing.T) []netip.Addr {
	keys := make([]netip.Addr, 256)
	found := 0
	for x := uint32(0x0a000000); found < 256; x++ {
		b := hash32(x, 8)
		if !keys[b].IsValid() {
			keys[b] = netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
			found++
		}
		if x > 0x0a100000 {
			t.Fatal("did not cover all buckets")
		}
	}
	return keys
}

func flowFor(name string, key netip.Addr) *Flow {
	if name == "dh" {
		return &Flow{DstAddr: key}
	}
	return &Flow{SrcAddr: key}
}

// dh checks Available (a deleted destination still in a table is refused)
// besides weight and overload.
func TestDHChecksAvailable(t *testing.T) {
	m := named{}
	v := newService(t, "dh", 0)
	a := v.add(m.dest("A", ip4(10, 8, 0, 1), 80, 1))
	f := &Flow{DstAddr: netip.MustParseAddr("10.0.0.2")}
	if d := v.s.Schedule(f); d != a {
		t.Fatalf("got %s, want A", m.name(d))
	}
	a.Flags &^= DestAvailable
	if d := v.s.Schedule(f); d != nil {
		t.Fatalf("unavailable A still chosen")
	}
}
