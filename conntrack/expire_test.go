package conntrack

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"lvslab/sched"
)

// A connection lives exactly its state's timeout past its last packet.
func TestExpiryExactTimeout(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.2:8080")
	t0 := 1000*sec + 123_456_789 // not on a tick boundary
	id := mustConn(t, tb, ProtoTCP, "10.0.0.2:1", "207.175.44.110:8080", d, FwdMasq, t0)

	// A new connection, never stepped, lives 3 s.
	if n := tb.Expire(t0 + 3*sec - 1); n != 0 {
		t.Fatal("new connection expired before 3 s")
	}
	tb.Step(id, DirIn, fSYN, 60, t0+sec) // SYN_RECV: 60 s
	if n := tb.Expire(t0 + 3*sec); n != 0 {
		t.Fatal("stepped connection expired on its old timer")
	}
	tb.Step(id, DirIn, fACK, 60, t0+2*sec) // ESTABLISHED: 900 s from t0+2s
	last := t0 + 2*sec
	for _, at := range []int64{last + 899*sec, last + 900*sec - 1} {
		if n := tb.Expire(at); n != 0 || !tb.Live(id) {
			t.Fatalf("expired at +%v, before 900 s", time.Duration(at-last))
		}
	}
	if d.ActiveConns != 1 {
		t.Fatalf("dest %v", counts(d))
	}
	// The wheel has a 1 ms resolution: the deadline rounds up to it.
	if n := tb.Expire(last + 900*sec + tickNs); n != 1 || tb.Live(id) {
		t.Fatalf("still there 900 s after the last packet (expired %d)", n)
	}
	if counts(d) != [3]uint32{} || tb.Len() != 0 || tb.Stats().Expired != 1 {
		t.Fatalf("after expiry: dest %v, len %d, stats %+v", counts(d), tb.Len(), tb.Stats())
	}
}

// On tick-aligned clocks expiry is exact to the nanosecond.
func TestExpiryOnTheDot(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.2:8080")
	id := mustConn(t, tb, ProtoUDP, "10.0.0.2:1", "207.175.44.110:53", d, FwdMasq, 0)
	tb.Step(id, DirIn, 0, 60, 7*sec)
	if tb.Expire(307*sec-1) != 0 {
		t.Fatal("early")
	}
	if tb.Expire(307*sec) != 1 {
		t.Fatal("not expired exactly at 300 s")
	}
}

// Every packet restarts the timer; a quiet period of timeout kills.
func TestEveryPacketRearms(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.2:8080")
	id := mustConn(t, tb, ProtoTCP, "10.0.0.2:1", "207.175.44.110:8080", d, FwdRoute, 0)
	tb.Step(id, DirIn, fSYN, 60, 0)
	now := int64(0)
	for range 10 { // 10 packets 50 s apart: SYN_RECV (60 s) ... then ES
		now += 50 * sec
		if tb.Expire(now) != 0 {
			t.Fatalf("expired at %v despite packets every 50 s", time.Duration(now))
		}
		tb.Step(id, DirIn, fSYN, 60, now) // stays SYN_RECV
	}
	if tb.Expire(now+60*sec-1) != 0 || tb.Expire(now+60*sec) != 1 {
		t.Fatal("SYN_RECV did not expire 60 s after the last SYN")
	}
}

// ES -> FIN_WAIT shortens the timer: the earlier deadline wins.
func TestShorterTimeoutMovesDeadlineEarlier(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.2:8080")
	id := mustConn(t, tb, ProtoTCP, "10.0.0.2:1", "207.175.44.110:8080", d, FwdRoute, 0)
	tb.Step(id, DirIn, fSYN, 60, 0)
	tb.Step(id, DirIn, fACK, 60, sec) // ES, 900 s
	tb.Step(id, DirIn, fFIN|fACK, 60, 2*sec)
	if tb.Expire(122*sec-1) != 0 || tb.Expire(122*sec) != 1 {
		t.Fatal("FIN_WAIT did not expire 120 s after the FIN")
	}
	if counts(d) != [3]uint32{} {
		t.Fatalf("dest %v", counts(d))
	}
}

// ipvsadm --set: changed values apply from the next packet; 0 keeps a value.
func TestSetTimeouts(t *testing.T) {
	tb := newTable(t, Config{})
	if tcp, fin, udp := tb.Timeouts(); tcp != 900*time.Second || fin != 120*time.Second || udp != 300*time.Second {
		t.Fatalf("defaults %v %v %v, want 900s 120s 300s", tcp, fin, udp)
	}
	d := newDest("172.16.0.2:8080")
	es := mustConn(t, tb, ProtoTCP, "10.0.0.2:1", "207.175.44.110:8080", d, FwdRoute, 0)
	tb.Step(es, DirIn, fSYN, 60, 0)
	tb.Step(es, DirIn, fACK, 60, 0) // ES, expires at 900 s
	fw := mustConn(t, tb, ProtoTCP, "10.0.0.2:2", "207.175.44.110:8080", d, FwdRoute, 0)
	u := mustConn(t, tb, ProtoUDP, "10.0.0.2:3", "207.175.44.110:8080", d, FwdMasq, 0)
	tb.Step(u, DirIn, 0, 60, 0)

	// The seed's ipvsadm --set 1200 5 60.
	if err := tb.SetTimeouts(1200*time.Second, 5*time.Second, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if tcp, fin, udp := tb.Timeouts(); tcp != 1200*time.Second || fin != 5*time.Second || udp != 60*time.Second {
		t.Fatalf("read back %v %v %v", tcp, fin, udp)
	}
	// Not yet applied to the running timers.
	if e, _ := entryOf(tb, es, 10*sec); e.Expires != 890*time.Second {
		t.Fatalf("ES timer changed without a packet: %v", e.Expires)
	}
	// Next packets pick them up.
	tb.Step(es, DirIn, fACK, 60, 10*sec)
	if e, _ := entryOf(tb, es, 10*sec); e.Expires != 1200*time.Second {
		t.Fatalf("ES after a packet: %v, want 20m0s", e.Expires)
	}
	tb.Step(fw, DirIn, fSYN, 60, 10*sec)
	tb.Step(fw, DirIn, fACK, 60, 10*sec)
	tb.Step(fw, DirIn, fFIN|fACK, 60, 10*sec)
	tb.Step(u, DirOut, 0, 60, 10*sec)
	if tb.Expire(15*sec-1) != 0 {
		t.Fatal("FIN_WAIT expired before 5 s")
	}
	if tb.Expire(15*sec) != 1 || tb.Live(fw) {
		t.Fatal("FIN_WAIT not expired 5 s after its FIN")
	}
	if tb.Expire(70*sec-1) != 0 || tb.Expire(70*sec) != 1 || tb.Live(u) {
		t.Fatal("UDP not expired 60 s after its packet")
	}

	// 0 leaves unchanged.
	if err := tb.SetTimeouts(0, 0, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if tcp, fin, udp := tb.Timeouts(); tcp != 1200*time.Second || fin != 5*time.Second || udp != 30*time.Second {
		t.Fatalf("after --set 0 0 30: %v %v %v", tcp, fin, udp)
	}
	for _, bad := range [][3]time.Duration{{-time.Second, 0, 0}, {0, MaxTimeout + time.Second, 0}} {
		if err := tb.SetTimeouts(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("SetTimeouts(%v) accepted", bad)
		}
	}
	if tcp, _, _ := tb.Timeouts(); tcp != 1200*time.Second {
		t.Fatal("a rejected --set changed something")
	}
	// Other tables are independent (per network namespace in the kernel).
	if tcp, _, _ := newTable(t, Config{}).Timeouts(); tcp != 900*time.Second {
		t.Fatal("timeouts leaked between tables")
	}
}

// Many connections, all states, in bulk: counters on every dest go back to
// zero once the clock passes every timeout.
func TestExpiryBulkCounters(t *testing.T) {
	tb := newTable(t, Config{})
	ds := []Fwd{FwdMasq, FwdRoute, FwdTunnel}
	rng := rand.New(rand.NewPCG(3, 4))
	var d [3]*sched.Dest
	for i := range d {
		d[i] = newDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16, 0, byte(2 + i)}), 80).String())
	}
	flagSet := []uint8{fSYN, fACK, fFIN | fACK, fRST, fSYN | fACK, 0}
	now := int64(0)
	for i := range 3000 {
		k := i % 3
		cl := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i))
		id := mustConn(t, tb, ProtoTCP, cl.String(), "207.175.44.110:80", d[k], ds[k], now)
		for range rng.IntN(6) {
			now += int64(rng.IntN(1000)) * int64(time.Millisecond)
			dir := DirIn
			if ds[k] == FwdMasq && rng.IntN(2) == 0 {
				dir = DirOut
			}
			tb.Step(id, dir, flagSet[rng.IntN(len(flagSet))], 60, now)
		}
		if i%100 == 0 {
			tb.Expire(now)
		}
	}
	total := 0
	for _, x := range d {
		total += int(x.ActiveConns + x.InactConns)
	}
	if total != tb.Len() {
		t.Fatalf("dest counts %d, table %d", total, tb.Len())
	}
	tb.Expire(now + 901*sec)
	for i, x := range d {
		if counts(x) != [3]uint32{} {
			t.Errorf("dest %d counts %v after everything expired", i, counts(x))
		}
	}
	if tb.Len() != 0 || tb.Stats().Conns != 0 {
		t.Fatalf("len %d", tb.Len())
	}
	// Every slot went back to the free list and is reused.
	hw := tb.hw
	for i := range 100 {
		mustConn(t, tb, ProtoUDP, netip.AddrPortFrom(addr("10.9.9.9"), uint16(i+1)).String(), "207.175.44.110:80", d[0], FwdMasq, now+902*sec)
	}
	if tb.hw != hw {
		t.Fatalf("slab grew from %d to %d instead of reusing", hw, tb.hw)
	}
}

// The wheel against a model: random deadlines from 1 ms to 40 days, random
// re-arms (later and earlier), random clock steps small and large. Nothing
// expires early, nothing late.
func TestWheelModel(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.2:80")
	rng := rand.New(rand.NewPCG(5, 6))
	deadline := map[ConnID]uint64{} // ms
	nowMs := uint64(5_000_000)
	tb.Expire(int64(nowMs) * tickNs)
	randTimeout := func() uint32 {
		switch rng.IntN(4) {
		case 0:
			return uint32(1 + rng.IntN(100))
		case 1:
			return uint32(1 + rng.IntN(100_000))
		case 2:
			return uint32(1 + rng.IntN(10_000_000))
		}
		return uint32(1 + rng.IntN(3_500_000_000))
	}
	next := 0
	for step := range 30000 {
		switch r := rng.IntN(10); {
		case r < 4 || len(deadline) == 0:
			next++
			cl := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(next >> 16), byte(next >> 8), byte(next)}), 1)
			id := mustConn(t, tb, ProtoUDP, cl.String(), "207.175.44.110:53", d, FwdMasq, int64(nowMs)*tickNs)
			to := randTimeout()
			c := tb.Conn(id)
			c.timeout = to
			tb.arm(id, c, tb.deadlineTick(int64(nowMs)*tickNs, to))
			deadline[id] = nowMs + uint64(to)
		case r < 7:
			for id := range deadline { // a random live one
				to := randTimeout()
				c := tb.Conn(id)
				tb.arm(id, c, tb.deadlineTick(int64(nowMs)*tickNs, to))
				deadline[id] = nowMs + uint64(to)
				break
			}
		default:
			switch rng.IntN(3) {
			case 0:
				nowMs += uint64(rng.IntN(5))
			case 1:
				nowMs += uint64(rng.IntN(200_000))
			default:
				nowMs += uint64(rng.IntN(100_000_000))
			}
			want := 0
			for id, dl := range deadline {
				if dl <= nowMs {
					want++
					delete(deadline, id)
				}
			}
			if got := tb.Expire(int64(nowMs) * tickNs); got != want {
				t.Fatalf("step %d at %d ms: expired %d, want %d", step, nowMs, got, want)
			}
			for id := range deadline {
				if !tb.Live(id) {
					t.Fatalf("step %d: %d gone early (deadline %d, now %d)", step, id, deadline[id], nowMs)
				}
			}
		}
	}
	if tb.Len() != len(deadline) {
		t.Fatalf("table %d, model %d", tb.Len(), len(deadline))
	}
}
