package conntrack

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// flood opens n NAT connections from random sources (seeded) and steps
// their SYN, as hping3 --rand-source leaves them: SYN_RECV with one packet.
func flood(t testing.TB, tb *Table, rng *rand.Rand, n int, now int64) []ConnID {
	t.Helper()
	d := newDest("172.16.0.2:80")
	ids := make([]ConnID, 0, n)
	p := ConnParams{Proto: ProtoTCP, Virtual: ap("203.0.113.5:80"), Dest: d, DestPort: 80, Fwd: FwdMasq}
	for len(ids) < n {
		p.Client = netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(1 + rng.IntN(223)), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}), uint16(1024+rng.IntN(60000)))
		id, err := tb.NewConn(&p, now)
		if errors.Is(err, ErrExists) {
			continue
		}
		if err != nil {
			t.Fatalf("flood connection %d: %v", len(ids), err)
		}
		tb.Step(id, DirIn, fSYN, 40, now)
		ids = append(ids, id)
	}
	return ids
}

// legit opens one connection from a client and completes its handshake.
func legit(t testing.TB, tb *Table, client string, now int64) (ConnID, error) {
	t.Helper()
	d := newDest("172.16.0.2:80")
	p := ConnParams{Proto: ProtoTCP, Client: ap(client), Virtual: ap("203.0.113.5:80"), Dest: d, DestPort: 80, Fwd: FwdMasq}
	if tb.Full() {
		tb.Reclaim(now, 0)
	}
	id, err := tb.NewConn(&p, now)
	if err != nil {
		return 0, err
	}
	tb.Step(id, DirIn, fSYN, 60, now)
	tb.Step(id, DirOut, fSYN|fACK, 60, now)
	tb.Step(id, DirIn, fACK, 52, now)
	return id, nil
}

// The defect of issue 8 item 9 at the table: a SYN flood fills a 5000
// table with SYN_RECV entries that live their full timeout, and a client
// that comes after the flood is refused. With drop_entry on it gets in at
// once, in place of a flood entry.
func TestSYNFloodLocksOutWithoutDropEntry(t *testing.T) {
	for _, mode := range []int{0, 1} {
		tb := newTable(t, Config{MaxConns: 5000, Seed: 9})
		def := DefaultDefense()
		def.DropEntry = mode
		if err := tb.SetDefense(def); err != nil {
			t.Fatal(err)
		}
		now := 100 * sec
		flood(t, tb, rand.New(rand.NewPCG(1, 2)), 5000, now)
		now += 2 * sec // the flood has ended
		tb.Expire(now)
		_, err := legit(t, tb, "198.51.100.2:40000", now)
		switch {
		case mode == 0 && !errors.Is(err, ErrTableFull):
			t.Errorf("drop_entry 0: legitimate client after the flood got %v, want ErrTableFull (the defect this defence is for)", err)
		case mode == 1 && err != nil:
			t.Errorf("drop_entry 1: legitimate client after the flood refused: %v", err)
		}
	}
}

func TestDefenseValidate(t *testing.T) {
	tb := newTable(t, Config{})
	if got := tb.Defense(); got != (Defense{AmemThresh: 1024, AmDropRate: 10}) {
		t.Errorf("defaults %+v, want the kernel's (all 0, amemthresh 1024, am_droprate 10)", got)
	}
	for _, d := range []Defense{
		{DropEntry: 4, AmDropRate: 10}, {DropPacket: -1, AmDropRate: 10}, {SecureTCP: 7, AmDropRate: 10},
		{AmemThresh: -1, AmDropRate: 10}, {AmDropRate: 0},
	} {
		if err := tb.SetDefense(d); !errors.Is(err, ErrDefense) {
			t.Errorf("SetDefense(%+v) = %v, want ErrDefense", d, err)
		}
	}
}

// The automatic modes switch 1 -> 2 under pressure and back, as
// update_defense_level rewrites the sysctls; 0 never acts, 3 always.
func TestDefenseModes(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 100})
	if err := tb.SetDefense(Defense{DropEntry: 1, DropPacket: 1, SecureTCP: 1, AmemThresh: 10, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	ids := flood(t, tb, rng, 90, sec) // 10 free: not below 10
	r := tb.DefenseTick(sec)
	if r.Pressure || r.DropEntry || r.DropRate != 0 || r.SecureTCP || tb.SecureTCP() {
		t.Fatalf("10 free of 100, amemthresh 10: %+v, want no pressure", r)
	}
	ids = append(ids, flood(t, tb, rng, 1, sec)...) // 9 free
	r = tb.updateDefense()
	if !r.Pressure || !r.DropEntry || r.DropRate != 10/(10-9) || !r.SecureTCP || !r.SecureTCPChanged || !tb.SecureTCP() {
		t.Fatalf("9 free: %+v, want every defence on, drop rate 10", r)
	}
	if got := tb.Defense(); got.DropEntry != 2 || got.DropPacket != 2 || got.SecureTCP != 2 {
		t.Errorf("under pressure the modes read %+v, want 2 (on)", got)
	}
	for _, id := range ids[:50] {
		tb.ExpireNow(id, sec)
	}
	r = tb.updateDefense()
	if r.Pressure || r.DropEntry || r.DropRate != 0 || r.SecureTCP || !r.SecureTCPChanged || tb.SecureTCP() {
		t.Fatalf("pressure gone: %+v, want every defence off again", r)
	}
	if got := tb.Defense(); got.DropEntry != 1 || got.DropPacket != 1 || got.SecureTCP != 1 {
		t.Errorf("after pressure the modes read %+v, want 1 (automatic, off)", got)
	}
	// 2 written without pressure turns into 1 at once.
	if err := tb.SetDefense(Defense{SecureTCP: 2, AmemThresh: 10, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	if got := tb.Defense().SecureTCP; got != 1 || tb.SecureTCP() {
		t.Errorf("secure_tcp 2 without pressure reads %d (table on: %v), want 1 and off", got, tb.SecureTCP())
	}
	if err := tb.SetDefense(Defense{DropEntry: 3, DropPacket: 3, SecureTCP: 3, AmemThresh: 10, AmDropRate: 4}); err != nil {
		t.Fatal(err)
	}
	r = tb.updateDefense()
	if !r.DropEntry || r.DropRate != 4 || !tb.SecureTCP() {
		t.Errorf("mode 3 without pressure: %+v, want every defence on, rate am_droprate", r)
	}
	if err := tb.SetDefense(Defense{AmemThresh: 1000, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	if r := tb.updateDefense(); !r.Pressure || r.DropEntry || r.DropRate != 0 || r.SecureTCP || tb.SecureTCP() {
		t.Errorf("mode 0 under pressure: %+v, want nothing on", r)
	}
}

// drop_packet drops 1 in amemthresh/(amemthresh-free) new connections.
func TestDropPacketRate(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1000})
	if err := tb.SetDefense(Defense{DropPacket: 1, AmemThresh: 100, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	drops := func(n int) int {
		k := 0
		for range n {
			if tb.DropPacket() {
				k++
			}
		}
		return k
	}
	if k := drops(100); k != 0 {
		t.Fatalf("no pressure: %d of 100 dropped", k)
	}
	flood(t, tb, rng, 950, sec) // 50 free: rate 100/50 = 2
	tb.DefenseTick(sec)
	if k := drops(100); k != 50 {
		t.Errorf("50 free of amemthresh 100: %d of 100 dropped, want 50 (1 in 2)", k)
	}
	flood(t, tb, rng, 50, sec) // full: rate 1, every one
	tb.DefenseTick(sec)
	if k := drops(100); k != 100 {
		t.Errorf("full table: %d of 100 dropped, want all", k)
	}
	if err := tb.SetDefense(Defense{DropPacket: 3, AmemThresh: 100, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	if k := drops(100); k != 10 {
		t.Errorf("mode 3, am_droprate 10: %d of 100 dropped, want 10", k)
	}
}

// The walk drops the SYN_RECV entries of 1/32 of the table each second,
// and ESTABLISHED ones only when idle for 60 s, preferring few packets.
func TestRandomDropEntry(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 3200, Seed: 11})
	if err := tb.SetDefense(Defense{DropEntry: 3, AmemThresh: 0, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	now := 100 * sec
	flood(t, tb, rand.New(rand.NewPCG(7, 8)), 1600, now)
	for i := range 1600 {
		if _, err := legit(t, tb, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 250)}), uint16(20000+i)).String(), now); err != nil {
			t.Fatal(err)
		}
	}
	now += sec
	r := tb.DefenseTick(now)
	if r.Dropped < 25 || r.Dropped > 100 {
		t.Fatalf("one walk over 100 of 3200 slots (half SYN_RECV) dropped %d", r.Dropped)
	}
	st := stateCounts(tb, now)
	if st[StateEstablished] != 1600 || st[StateSynRecv] != 1600-r.Dropped {
		t.Errorf("after one walk: %v; want all 1600 ESTABLISHED kept and %d SYN_RECV left", st, 1600-r.Dropped)
	}
	// Idle for 60 s (a 900 s timeout keeps them), with 2 packets in: the
	// walk drops every other one it meets.
	now += 61 * sec
	total := 0
	for range 64 {
		total += tb.DefenseTick(now).Dropped
	}
	st = stateCounts(tb, now)
	if st[StateEstablished] == 1600 || st[StateEstablished] < 400 {
		t.Errorf("64 walks over idle ESTABLISHED entries with 2 packets left %d of 1600", st[StateEstablished])
	}
	if total == 0 {
		t.Error("no entry dropped")
	}
	// The walk is the seed's: a second table with the same seed drops the
	// same entries.
	tb2 := newTable(t, Config{MaxConns: 3200, Seed: 11})
	_ = tb2.SetDefense(Defense{DropEntry: 3, AmDropRate: 10})
	flood(t, tb2, rand.New(rand.NewPCG(7, 8)), 1600, 100*sec)
	tb3 := newTable(t, Config{MaxConns: 3200, Seed: 11})
	_ = tb3.SetDefense(Defense{DropEntry: 3, AmDropRate: 10})
	flood(t, tb3, rand.New(rand.NewPCG(7, 8)), 1600, 100*sec)
	if a, b := tb2.DefenseTick(101*sec).Dropped, tb3.DefenseTick(101*sec).Dropped; a != b {
		t.Errorf("same seed, different walks: %d and %d dropped", a, b)
	}
}

func stateCounts(tb *Table, now int64) map[State]int {
	m := map[State]int{}
	for i := uint32(1); i <= tb.hw; i++ {
		if c := tb.conn(ConnID(i)); c.flags&flagLive != 0 {
			m[c.state]++
		}
	}
	return m
}

// Reclaim takes an embryonic entry's place in a full table, never an
// established one, and only with drop_entry on; the hand comes back to the
// entry it just made room for last.
func TestReclaim(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 100, Seed: 3})
	now := 10 * sec
	flood(t, tb, rand.New(rand.NewPCG(9, 10)), 100, now)
	if tb.Reclaim(now, 0) {
		t.Fatal("Reclaim with drop_entry 0 dropped an entry")
	}
	if err := tb.SetDefense(Defense{DropEntry: 1, AmemThresh: 0, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	if tb.Reclaim(now, 0) {
		t.Fatal("Reclaim with drop_entry 1 and amemthresh 0 (never under pressure) dropped an entry")
	}
	if err := tb.SetDefense(Defense{DropEntry: 1, AmemThresh: 1, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	// A client whose handshake stalls in SYN_RECV (its SYN got in, nothing
	// else yet) survives the next 99 reclaims.
	d := newDest("172.16.0.2:80")
	p := ConnParams{Proto: ProtoTCP, Client: ap("198.51.100.2:1000"), Virtual: ap("203.0.113.5:80"), Dest: d, DestPort: 80, Fwd: FwdMasq}
	if !tb.Reclaim(now, 0) {
		t.Fatal("Reclaim in a table full of SYN_RECV entries found nothing")
	}
	slow, err := tb.NewConn(&p, now)
	if err != nil {
		t.Fatal(err)
	}
	tb.Step(slow, DirIn, fSYN, 60, now)
	for i := range 99 {
		if !tb.Reclaim(now, 0) {
			t.Fatalf("reclaim %d found nothing", i)
		}
		if !tb.Live(slow) {
			t.Fatalf("the stalled handshake was reclaimed after %d others", i)
		}
		if _, err := legit(t, tb, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, 3}), uint16(2000+i)).String(), now); err != nil {
			t.Fatal(err)
		}
	}
	// Now 99 ESTABLISHED and the stalled one: it is the only victim left.
	if !tb.Reclaim(now, 0) || tb.Live(slow) {
		t.Fatal("the last SYN_RECV entry was not reclaimed")
	}
	if _, err := legit(t, tb, "198.51.100.4:1", now); err != nil {
		t.Fatal(err)
	}
	if tb.Reclaim(now, 0) {
		t.Error("Reclaim dropped an ESTABLISHED entry")
	}
	if st := tb.Stats(); st.Refused != 0 || st.Conns != 100 {
		t.Errorf("stats %+v, want 100 connections and none refused", st)
	}
}

// secure_tcp steps with tcp_states_dos and the short DOS timeouts; a
// shorter --set value still wins.
func TestSecureTCPTimeouts(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 10})
	if err := tb.SetDefense(Defense{SecureTCP: 3, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	d := newDest("172.16.0.2:80")
	id := mustConn(t, tb, ProtoTCP, "198.51.100.2:1000", "203.0.113.5:80", d, FwdMasq, sec)
	tb.Step(id, DirIn, fSYN, 60, sec)
	if got := tb.Conn(id).Timeout(); got != 10*time.Second {
		t.Errorf("SYN_RECV under secure_tcp: timeout %v, want 10s", got)
	}
	tb.Step(id, DirIn, fACK, 60, sec) // dos: an input ACK leaves SYN_RECV alone
	if s := tb.Conn(id).State(); s != StateSynRecv {
		t.Errorf("input ACK in SYN_RECV under secure_tcp: %s, want SYN_RECV", StateName(ProtoTCP, 0, s))
	}
	if err := tb.SetTimeouts(5*time.Second, 0, 0); err != nil {
		t.Fatal(err)
	}
	tb.Step(id, DirOut, fSYN|fACK, 60, sec)
	tb.Step(id, DirOut, fACK, 60, sec)
	if got := tb.Conn(id).Timeout(); tb.Conn(id).State() != StateEstablished || got != 5*time.Second {
		t.Errorf("ESTABLISHED under secure_tcp with --set 5: %s, timeout %v, want 5s", StateName(ProtoTCP, 0, tb.Conn(id).State()), got)
	}
	if tcp, _, _ := tb.Timeouts(); tcp != 5*time.Second {
		t.Errorf("--timeout reads %v, want the set 5s", tcp)
	}
	if err := tb.SetDefense(Defense{AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	if err := tb.SetTimeouts(900*time.Second, 0, 0); err != nil {
		t.Fatal(err)
	}
	tb.Step(id, DirIn, fACK, 60, sec)
	if got := tb.Conn(id).Timeout(); got != 900*time.Second {
		t.Errorf("secure_tcp off again: ESTABLISHED timeout %v, want 900s", got)
	}
}

func TestDefenseNoAllocs(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64, SizeHint: 64})
	_ = tb.SetDefense(Defense{DropEntry: 3, DropPacket: 3, AmDropRate: 10})
	flood(t, tb, rand.New(rand.NewPCG(1, 1)), 64, sec)
	d := newDest("172.16.0.2:80")
	p := ConnParams{Proto: ProtoTCP, Client: ap("198.51.100.2:1"), Virtual: ap("203.0.113.5:80"), Dest: d, DestPort: 80, Fwd: FwdMasq}
	_ = tb.Reclaim(sec, 0)
	if _, err := tb.NewConn(&p, sec); err != nil { // the dest's handle is allocated once
		t.Fatal(err)
	}
	port := uint16(2)
	allocs := testing.AllocsPerRun(200, func() {
		_ = tb.DropPacket()
		if tb.Reclaim(sec, 0) {
			p.Client = netip.AddrPortFrom(p.Client.Addr(), port)
			port++
			if id, err := tb.NewConn(&p, sec); err == nil {
				tb.Step(id, DirIn, fSYN, 60, sec)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("DropPacket + Reclaim + NewConn: %v allocs/op", allocs)
	}
}

// A reclaimed embryonic connection takes its unassured template with it,
// except the template the caller is linking a new connection to.
func TestReclaimPersistent(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 2})
	if err := tb.SetDefense(Defense{DropEntry: 3, AmDropRate: 10}); err != nil {
		t.Fatal(err)
	}
	d := newDest("172.16.0.2:80")
	k := TemplateKey{Proto: ProtoTCP, SNet: [4]byte{198, 51, 100, 2}, VAddr: [4]byte{203, 0, 113, 5}, VPort: 80}
	tmpl, err := tb.NewTemplate(&k, d, 300*time.Second, sec)
	if err != nil {
		t.Fatal(err)
	}
	p := ConnParams{Proto: ProtoTCP, Client: ap("198.51.100.2:1000"), Virtual: ap("203.0.113.5:80"), Dest: d, DestPort: 80, Fwd: FwdMasq, Template: tmpl}
	id, err := tb.NewConn(&p, sec)
	if err != nil {
		t.Fatal(err)
	}
	tb.Step(id, DirIn, fSYN, 60, sec)
	if tb.Reclaim(sec, tmpl) {
		t.Fatal("Reclaim dropped a child of the template it was told to keep")
	}
	if !tb.Reclaim(sec, 0) || tb.Live(id) || tb.Live(tmpl) || tb.Len() != 0 {
		t.Errorf("Reclaim: conn live %v, template live %v, %d entries left; want both gone", tb.Live(id), tb.Live(tmpl), tb.Len())
	}
}
