package conntrack

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"lvslab/sched"
)

var benchVIP = ap("203.0.113.10:80")

// clientOf spreads connection i over distinct client address:port pairs.
func clientOf(i int) netip.AddrPort {
	u := uint32(i)
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(u >> 16), byte(u >> 8), byte(u)}), uint16(1024+(u>>24)*7+u%50000))
}

func benchDests() []*sched.Dest {
	ds := make([]*sched.Dest, 8)
	for i := range ds {
		ds[i] = sched.NewDest(netip.AddrFrom4([4]byte{192, 168, 10, byte(1 + i)}), 8080, 1)
	}
	return ds
}

// buildEstablished fills a table with n NAT connections in ESTABLISHED,
// a full handshake each, one every microsecond of clock.
func buildEstablished(tb testing.TB, n, hint int) (*Table, []*sched.Dest, int64) {
	t, err := New(Config{MaxConns: n + 1024, SizeHint: hint, Seed: 42})
	if err != nil {
		tb.Fatal(err)
	}
	ds := benchDests()
	p := ConnParams{Proto: ProtoTCP, Virtual: benchVIP, DestPort: 8080, Fwd: FwdMasq}
	now := int64(time.Hour)
	for i := range n {
		now += 1000
		p.Client = clientOf(i)
		p.Dest = ds[i%len(ds)]
		id, err := t.NewConn(&p, now)
		if err != nil {
			tb.Fatal(err)
		}
		t.Step(id, DirIn, fSYN, 60, now)
		t.Step(id, DirOut, fSYN|fACK, 60, now)
		t.Step(id, DirIn, fACK, 52, now)
	}
	return t, ds, now
}

// lookupKeys is a random sample of both sides of the table's connections:
// even entries client→VIP, odd entries RS→client.
func lookupKeys(t *Table, n int) []Tuple {
	rng := rand.New(rand.NewPCG(7, 8))
	keys := make([]Tuple, 1<<16)
	for j := range keys {
		c := t.Conn(ConnID(1 + rng.IntN(n)))
		if j%2 == 0 {
			keys[j] = c.inKey()
		} else {
			keys[j] = c.outKey()
		}
	}
	return keys
}

// BenchmarkLookupEstablished: hits, alternately client→VIP and RS→client.
// The random variants touch a random connection each time (two DRAM misses:
// index slot, record); "hot" cycles over 512 connections of the 1M table, so
// it shows the hash-probe-compare cost with the table in cache, as under
// traffic with locality.
func BenchmarkLookupEstablished(b *testing.B) {
	for _, c := range []struct {
		name string
		n    int
		hot  bool
	}{{"100k", 100_000, false}, {"1M", 1_000_000, false}, {"1M-hot", 1_000_000, true}} {
		b.Run(c.name, func(b *testing.B) {
			t, _, _ := buildEstablished(b, c.n, 0)
			keys := lookupKeys(t, c.n)
			if c.hot {
				keys = keys[:1024]
			}
			b.ReportAllocs()
			var i int
			for b.Loop() {
				k := keys[i&(len(keys)-1)]
				id, dir := t.Lookup(k)
				if id == 0 || dir != Dir(i&1) {
					b.Fatalf("miss on %+v", k)
				}
				i++
			}
		})
	}
}

// BenchmarkStateStep: the per-packet step (counters, state table, dest
// counters, timer re-arm).
func BenchmarkStateStep(b *testing.B) {
	b.Run("established-ack", func(b *testing.B) {
		// Random ESTABLISHED connections of 100k, ACKs both ways: no state
		// change, the common case.
		const n = 100_000
		t, _, now := buildEstablished(b, n, n)
		rng := rand.New(rand.NewPCG(9, 10))
		ids := make([]ConnID, 1<<16)
		for j := range ids {
			ids[j] = ConnID(1 + rng.IntN(n))
		}
		b.ReportAllocs()
		var i int
		for b.Loop() {
			now += 100
			t.Step(ids[i&(len(ids)-1)], Dir(i&1), fACK, 1500, now)
			i++
		}
	})
	b.Run("lifecycle", func(b *testing.B) {
		// One NAT connection driven around the §1.5 cycle again and again:
		// every packet changes state (SYN from TIME_WAIT restarts it), moves
		// the dest counters, and shortens or lengthens the timer.
		t, err := New(Config{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		d := benchDests()[0]
		id, err := t.NewConn(&ConnParams{Proto: ProtoTCP, Client: clientOf(1), Virtual: benchVIP, Dest: d, DestPort: 8080}, 0)
		if err != nil {
			b.Fatal(err)
		}
		seq := [...]struct {
			dir   Dir
			flags uint8
		}{
			{DirIn, fSYN}, {DirOut, fSYN | fACK}, {DirIn, fACK}, {DirIn, fFIN | fACK},
			{DirOut, fACK}, {DirOut, fFIN | fACK}, {DirIn, fACK},
		}
		b.ReportAllocs()
		var i int
		now := int64(0)
		for b.Loop() {
			now += 100
			p := seq[i%len(seq)]
			t.Step(id, p.dir, p.flags, 60, now)
			i++
		}
		if d.ActiveConns+d.InactConns != 1 {
			b.Fatalf("dest counts %d/%d", d.ActiveConns, d.InactConns)
		}
	})
}

// BenchmarkInsertExpire: steady state of 100k live connections, each
// operation creating one (NewConn + SYN) and expiring about one (Expire),
// the clock advancing so that a SYN_RECV connection (60 s) dies as 100k
// newer ones have arrived.
func BenchmarkInsertExpire(b *testing.B) {
	const live = 100_000
	t, err := New(Config{MaxConns: 2 * live, SizeHint: 2 * live, Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	ds := benchDests()
	step := int64(60*time.Second) / live
	p := ConnParams{Proto: ProtoTCP, Virtual: benchVIP, DestPort: 8080, Fwd: FwdRoute}
	i := 0
	now := int64(0)
	insert := func() {
		now += step
		p.Client = clientOf(i)
		p.Dest = ds[i%len(ds)]
		id, err := t.NewConn(&p, now)
		if err != nil {
			b.Fatal(err)
		}
		t.Step(id, DirIn, fSYN, 60, now)
		t.Expire(now)
		i++
	}
	for range 2 * live { // reach the steady state before measuring
		insert()
	}
	b.ReportAllocs()
	for b.Loop() {
		insert()
	}
	if l := t.Len(); l < live-2000 || l > live+2000 {
		b.Fatalf("not in steady state: %d live", l)
	}
	b.ReportMetric(float64(t.Len()), "live")
}

// BenchmarkBytesPerConn builds a table of 1M ESTABLISHED NAT connections
// (slab, both index entries, timer wheel) and reports the memory it holds
// per connection: the growth of runtime.MemStats.HeapAlloc across the build,
// each reading taken after a forced GC. That is exactly the live bytes the
// table keeps, independent of GOGC and of the garbage index growth leaves.
// Sys (memory taken from the OS) is not used: it includes spans the runtime
// retains from earlier benchmarks of the same process and from that garbage,
// so its delta cannot be attributed to the table.
func BenchmarkBytesPerConn(b *testing.B) {
	const n = 1_000_000
	var perConn float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t, ds, _ := buildEstablished(b, n, 0)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if t.Len() != n || int(ds[0].ActiveConns) != n/len(ds) {
			b.Fatalf("table holds %d, dest %d active", t.Len(), ds[0].ActiveConns)
		}
		perConn = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
		runtime.KeepAlive(t)
	}
	b.ReportMetric(perConn, "B/conn")
}

// The per-packet operations allocate nothing (the style rule, enforced by
// go test, not only shown by the benchmarks).
func TestNoAllocsPerPacket(t *testing.T) {
	tb, ds, now := buildEstablished(t, 5000, 0)
	tb.max = DefaultMaxConns // room for the churn below next to the 5000
	keys := lookupKeys(tb, 5000)
	i := 0
	if a := testing.AllocsPerRun(1000, func() {
		tb.Lookup(keys[i%len(keys)])
		i++
	}); a != 0 {
		t.Errorf("Lookup: %v allocs", a)
	}
	if a := testing.AllocsPerRun(1000, func() {
		now += 1000
		tb.Step(ConnID(1+i%5000), Dir(i&1), fACK, 100, now)
		i++
	}); a != 0 {
		t.Errorf("Step: %v allocs", a)
	}
	// Steady churn: new connection, SYN, expiry of old ones. Slots and
	// index room are reused, so nothing is allocated.
	p := ConnParams{Proto: ProtoTCP, Virtual: benchVIP, DestPort: 8080, Fwd: FwdRoute, Dest: ds[0]}
	churn := func() {
		now += int64(60*time.Second) / 5000
		p.Client = clientOf(1_000_000 + i)
		id, err := tb.NewConn(&p, now)
		if err != nil {
			t.Fatal(err)
		}
		tb.Step(id, DirIn, fSYN, 60, now)
		tb.Expire(now)
		i++
	}
	for range 20000 {
		churn()
	}
	if a := testing.AllocsPerRun(1000, churn); a != 0 {
		t.Errorf("NewConn+Step+Expire: %v allocs", a)
	}
	// Refusing when full costs nothing either (flood).
	full, _, _ := buildEstablished(t, 10, 0)
	full.max = full.Len()
	p.Client = clientOf(99)
	if a := testing.AllocsPerRun(100, func() { _, _ = full.NewConn(&p, now) }); a != 0 {
		t.Errorf("refused NewConn: %v allocs", a)
	}
}
