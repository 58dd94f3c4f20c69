package sched

import (
	"strings"
	"testing"
)

// The reference's worked example (ipvs.md §3.2): weights A=4, B=3, C=2,
// added A, B, C, so the kernel list is C, B, A.
func workedExample(t *testing.T, name string) (*service, named) {
	m := named{}
	v := newService(t, name, 0)
	v.add(m.dest("A", ip4(10, 1, 0, 1), 80, 4))
	v.add(m.dest("B", ip4(10, 1, 0, 2), 80, 3))
	v.add(m.dest("C", ip4(10, 1, 0, 3), 80, 2))
	return v, m
}

func TestRRWorkedExample(t *testing.T) {
	v, m := workedExample(t, "rr")
	equalStrings(t, "rr", v.picks(6, m.name), strings.Fields("C B A C B A"))
}

// rr keeps a pointer to the last chosen destination: an add (at the head)
// does not move it, a delete of it steps back to its predecessor.
func TestRRPositionAcrossUpdates(t *testing.T) {
	m := named{}
	v := newService(t, "rr", 0)
	a := v.add(m.dest("A", ip4(10, 1, 0, 1), 80, 1))
	equalStrings(t, "one dest", v.picks(1, m.name), []string{"A"})
	// List B, A; last = A, so the next one after A wraps to B.
	v.add(m.dest("B", ip4(10, 1, 0, 2), 80, 1))
	equalStrings(t, "after add", v.picks(3, m.name), strings.Fields("B A B"))
	// List C, B, A; last = B. Next after B is A, then C.
	c := v.add(m.dest("C", ip4(10, 1, 0, 3), 80, 1))
	equalStrings(t, "after 2nd add", v.picks(2, m.name), strings.Fields("A C"))
	// last = C. Pick B, then delete B: position steps back to C, so A.
	equalStrings(t, "before del", v.picks(1, m.name), []string{"B"})
	v.del(m.destByName("B"))
	equalStrings(t, "after del", v.picks(3, m.name), strings.Fields("A C A"))
	// Weight 0 and overload are skipped; nothing usable gives nil.
	v.edit(c, 0)
	equalStrings(t, "quiesced C", v.picks(2, m.name), strings.Fields("A A"))
	a.Flags |= DestOverload
	equalStrings(t, "all unusable", v.picks(2, m.name), strings.Fields("- -"))
}

func (m named) destByName(name string) *Dest {
	for d, n := range m {
		if n == name {
			return d
		}
	}
	return nil
}

// Worked example, wrr with the scheduler bound to a service that already has
// its three destinations (init_svc: cw = mw). di = gcd(4,3,2) = 1, mw = 4:
// cw=4: A | cw=3: B A | cw=2: C B A | cw=1: C B A | cw back to 4: A ...
func TestWRRWorkedExampleBoundLate(t *testing.T) {
	m := named{}
	a := m.dest("A", ip4(10, 1, 0, 1), 80, 4)
	b := m.dest("B", ip4(10, 1, 0, 2), 80, 3)
	c := m.dest("C", ip4(10, 1, 0, 3), 80, 2)
	s, err := New("wrr", 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Update([]*Dest{c, b, a})
	v := &service{t: t, s: s}
	period := strings.Fields("A B A C B A C B A")
	equalStrings(t, "wrr", v.picks(27, m.name), append(append(append([]string{}, period...), period...), period...))
}

// Worked example, wrr with destinations added one by one (ipvsadm -a):
// add A(4): di = 4, mw = 4-(4-1) = 1, cw 0 -> 1.
// add B(3): di = 1, mw = 4, cw = 1 kept (not > mw, not 0, di = 1).
// add C(2): di = 1, mw = 4, cw = 1 kept.
// So the first pass runs at cw = 1: C B A, then cw wraps to mw = 4 and the
// period of 9 follows.
func TestWRRWorkedExampleAddedOneByOne(t *testing.T) {
	v, m := workedExample(t, "wrr")
	want := strings.Fields("C B A  A B A C B A C B A  A B A C B A C B A")
	equalStrings(t, "wrr", v.picks(len(want), m.name), want)
}

// Seed 000's VS/NAT example: 172.16.0.2:80 weight 1 and 172.16.0.3:8000
// weight 2, added in that order, so the kernel list is .3, .2.
//
// By hand, from ip_vs_wrr_dest_changed and ip_vs_wrr_schedule:
//
//	-A: no dests: di = 1, mw = 0, cw = 0.
//	-a .2 w1: di = 1, mw = 1; cw == 0 -> cw = 1.
//	-a .3 w2: di = gcd(2,1) = 1, mw = 2-(1-1) = 2; cw = 1 kept; cl = head.
//	pick 1: cw=1 from head: .3 (2 >= 1)
//	pick 2: after .3: .2 (1 >= 1)
//	pick 3: list end, cw = 0 -> cw = mw = 2; from head: .3 (2 >= 2)
//	pick 4: after .3: .2 (1 < 2); list end, cw = 1; from head: .3
//	pick 5: after .3: .2 (1 >= 1)
//	pick 6: list end, cw = 0 -> 2: .3 ... as pick 3.
//
// So the sequence is (.3 .2 .3) repeated: 300 picks are exactly 100
// periods, 200 to .3 and 100 to .2.
//
// Had the scheduler been bound with both destinations present (di = 1,
// mw = 2, cw starting at 2), the period is (.3 .3 .2): same counts.
func TestWRRSeedNATExample(t *testing.T) {
	m := named{}
	v := newService(t, "wrr", 0)
	r2 := v.add(m.dest(".2", ip4(172, 16, 0, 2), 80, 1))
	r3 := v.add(m.dest(".3", ip4(172, 16, 0, 3), 8000, 2))

	got := v.picks(300, m.name)
	want := make([]string, 0, 300)
	for range 100 {
		want = append(want, ".3", ".2", ".3")
	}
	equalStrings(t, "wrr seed NAT, added one by one", got, want)
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	if count[".2"] != 100 || count[".3"] != 200 {
		t.Fatalf("counts %v, want .2:100 .3:200", count)
	}

	s, err := New("wrr", 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Update([]*Dest{r3, r2})
	late := &service{t: t, s: s}
	want = want[:0]
	for range 100 {
		want = append(want, ".3", ".3", ".2")
	}
	equalStrings(t, "wrr seed NAT, bound late", late.picks(300, m.name), want)
}

// A gcd above 1: weights 4 and 2, added 4 then 2 (list Y2, X4).
// add X4: di = 4, mw = 1, cw = 1. add Y2: di = 2, mw = 4-1 = 3;
// cw = 1 is kept but di > 1 gives cw = (1/2)*2+1 = 1.
// cw=1: Y X | -2 -> cw<=0 -> cw = 3: X | cw=1: Y X | cw=3: X ...
func TestWRRGCDStep(t *testing.T) {
	m := named{}
	v := newService(t, "wrr", 0)
	v.add(m.dest("X", ip4(10, 2, 0, 1), 80, 4))
	v.add(m.dest("Y", ip4(10, 2, 0, 2), 80, 2))
	equalStrings(t, "wrr gcd 2", v.picks(9, m.name), strings.Fields("Y X X Y X X Y X X"))
}

// Overload and weight 0 are skipped; with every destination unusable wrr
// stops after its last pass instead of looping.
func TestWRRSkipsAndStops(t *testing.T) {
	m := named{}
	v := newService(t, "wrr", 0)
	x := v.add(m.dest("X", ip4(10, 2, 0, 1), 80, 3))
	y := v.add(m.dest("Y", ip4(10, 2, 0, 2), 80, 1))
	x.Flags |= DestOverload
	equalStrings(t, "X overloaded", v.picks(4, m.name), strings.Fields("Y Y Y Y"))
	y.Flags |= DestOverload
	equalStrings(t, "all overloaded", v.picks(2, m.name), strings.Fields("- -"))
	x.Flags &^= DestOverload
	y.Flags &^= DestOverload
	v.edit(x, 0)
	v.edit(y, 0)
	equalStrings(t, "all weight 0", v.picks(2, m.name), strings.Fields("- -"))
	v.edit(y, 2)
	equalStrings(t, "Y back", v.picks(3, m.name), strings.Fields("Y Y Y"))
}

// A failed wrr decision that started mid-list stops at the destination it
// started from and stays there. List P Q R (weight 1, bound together: di 1,
// mw 1, cw 1). Picks P, Q; then all overloaded: from Q, R fails, list end:
// cw 0 -> mw 1 (restarted); last pass (cw <= di) with restarted: stop = Q;
// from the head P fails, Q fails and is the stop: nil, position stays at Q.
// Once the overload clears, the next pick is the one after Q: R.
func TestWRRStopsAtLast(t *testing.T) {
	m := named{}
	p := m.dest("P", ip4(10, 2, 1, 1), 80, 1)
	q := m.dest("Q", ip4(10, 2, 1, 2), 80, 1)
	r := m.dest("R", ip4(10, 2, 1, 3), 80, 1)
	s, err := New("wrr", 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Update([]*Dest{p, q, r})
	v := &service{t: t, s: s}
	equalStrings(t, "first", v.picks(2, m.name), []string{"P", "Q"})
	for _, d := range []*Dest{p, q, r} {
		d.Flags |= DestOverload
	}
	equalStrings(t, "all overloaded", v.picks(1, m.name), []string{"-"})
	for _, d := range []*Dest{p, q, r} {
		d.Flags &^= DestOverload
	}
	equalStrings(t, "recovered", v.picks(4, m.name), strings.Fields("R P Q R"))
}
