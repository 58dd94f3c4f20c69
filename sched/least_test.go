package sched

import (
	"fmt"
	"testing"
)

// dspec is a crafted destination: weight, active, inactive, overloaded.
type dspec struct {
	name          string
	weight        int32
	active, inact uint32
	overloaded    bool
}

func build(specs []dspec) ([]*Dest, named) {
	m := named{}
	out := make([]*Dest, len(specs))
	for i, sp := range specs {
		d := m.dest(sp.name, ip4(10, 9, 0, byte(i+1)), 80, sp.weight)
		d.ActiveConns, d.InactConns = sp.active, sp.inact
		if sp.overloaded {
			d.Flags |= DestOverload
		}
		out[i] = d
	}
	return out, m
}

// pickOnce runs one decision of a fresh scheduler over specs (given in
// kernel list order) and names the result.
func pickOnce(t *testing.T, name string, specs []dspec, opts ...Option) string {
	t.Helper()
	dests, m := build(specs)
	s, err := New(name, 0, opts...)
	if err != nil {
		t.Fatal(err)
	}
	s.Update(dests)
	d := s.Schedule(&Flow{})
	if d == nil {
		return "-"
	}
	return m.name(d)
}

// Every expected value below follows from the selection rules of ipvs.md
// §3.1-3.2 (overhead = active*256 + inactive; h1/w1 > h2/w2 as h1*w2 > h2*w1;
// strict comparisons, so the first in list order wins ties), worked out in
// the comment of each case.
func TestLeastConnFamily(t *testing.T) {
	cases := []struct {
		sched string
		specs []dspec
		want  string
		why   string
	}{
		// lc
		{"lc", []dspec{{name: "A", weight: 1, inact: 40}, {name: "B", weight: 1, active: 1}}, "A",
			"A 40 < B 256 (a <<5 overhead would give B 32)"},
		{"lc", []dspec{{name: "A", weight: 1, active: 1}, {name: "B", weight: 5, active: 1}}, "A",
			"tie 256 = 256, weight ignored: first"},
		{"lc", []dspec{{name: "A", weight: 0}, {name: "B", weight: 1, active: 3}}, "B",
			"A idle but weight 0"},
		{"lc", []dspec{{name: "A", weight: 1, overloaded: true}, {name: "B", weight: 1, active: 3}}, "B",
			"A idle but overloaded"},
		{"lc", []dspec{{name: "A", weight: 0}, {name: "B", weight: 1, overloaded: true}}, "-",
			"nothing usable"},

		// wlc
		{"wlc", []dspec{{name: "A", weight: 1, active: 1}, {name: "B", weight: 1, active: 1}}, "A",
			"tie: first"},
		{"wlc", []dspec{{name: "A", weight: 1, active: 1}, {name: "B", weight: 3, active: 2}}, "B",
			"256*3 = 768 > 512*1"},
		{"wlc", []dspec{{name: "A", weight: 1, active: 1}, {name: "B", weight: 2, active: 2}}, "A",
			"256*2 = 512 > 512*1 is false: tie keeps A"},
		{"wlc", []dspec{{name: "A", weight: 1, active: 1}, {name: "B", weight: 2, active: 1, inact: 1}, {name: "C", weight: 1}}, "C",
			"A 256; B: 256*2 > 257*1 -> B; C: 257*1 > 0*2 -> C"},
		{"wlc", []dspec{{name: "A", weight: 0}, {name: "B", weight: 2, active: 9}}, "B",
			"weight-0 A cannot start, nor win later"},
		{"wlc", []dspec{{name: "A", weight: 1, active: 9}, {name: "B", weight: 0}}, "A",
			"weight-0 B idle: 9*256*0 > 0*1 is false"},
		{"wlc", []dspec{{name: "A", weight: 1, overloaded: true}, {name: "B", weight: 1, active: 1}}, "B",
			"overloaded skipped"},
		{"wlc", []dspec{{name: "A", weight: 1, active: 1}, {name: "B", weight: 1, inact: 300}}, "A",
			"256 < 300: inactive connections count"},

		// sed
		{"sed", []dspec{{name: "A", weight: 1, inact: 1000}, {name: "B", weight: 1, active: 1}}, "A",
			"inactive ignored: (0+1) vs (1+1); wlc would pick B (1000 > 256)"},
		{"sed", []dspec{{name: "A", weight: 1, active: 1}, {name: "B", weight: 3, active: 4}}, "B",
			"(1+1)*3 = 6 > (4+1)*1 = 5"},
		{"sed", []dspec{{name: "A", weight: 1, active: 1}, {name: "B", weight: 2, active: 3}}, "A",
			"2*2 = 4 > 4*1 is false: tie keeps A"},
		{"sed", []dspec{{name: "A", weight: 0}, {name: "B", weight: 1, active: 7}}, "B", "weight 0 skipped"},

		// nq
		{"nq", []dspec{{name: "A", weight: 3, active: 1}, {name: "B", weight: 1}}, "B",
			"B idle wins at once; sed would keep A: 2*1 > 1*3 is false"},
		{"nq", []dspec{{name: "A", weight: 1}, {name: "B", weight: 9}}, "A", "first idle wins"},
		{"nq", []dspec{{name: "A", weight: 0}, {name: "B", weight: 1, active: 2}}, "B",
			"idle but weight 0 does not count"},
		{"nq", []dspec{{name: "A", weight: 1, overloaded: true}, {name: "B", weight: 1, active: 2}}, "B",
			"idle but overloaded does not count"},
		{"nq", []dspec{{name: "A", weight: 1, active: 1}, {name: "B", weight: 3, active: 4}}, "B",
			"none idle: sed choice, (1+1)*3 > (4+1)*1"},

		// fo
		{"fo", []dspec{{name: "A", weight: 2}, {name: "B", weight: 5, active: 100}, {name: "C", weight: 5}}, "B",
			"highest weight, first of equals, load ignored"},
		{"fo", []dspec{{name: "A", weight: 2}, {name: "B", weight: 5, overloaded: true}, {name: "C", weight: 5}}, "C",
			"overloaded skipped"},
		{"fo", []dspec{{name: "A", weight: 0}}, "-", "weight 0 never: bar starts at 0"},

		// ovf
		{"ovf", []dspec{{name: "A", weight: 2, active: 3}, {name: "B", weight: 1}, {name: "C", weight: 2}}, "C",
			"A full (3 > 2); highest of the rest"},
		{"ovf", []dspec{{name: "A", weight: 2, active: 2}, {name: "B", weight: 2}}, "A",
			"2 > 2 is false: A still takes connections; first of equal weight"},
		{"ovf", []dspec{{name: "A", weight: 2, active: 3}, {name: "B", weight: 1, active: 1}, {name: "C", weight: 2, active: 3}}, "B",
			"overflow to the smaller one"},
		{"ovf", []dspec{{name: "A", weight: 0}, {name: "B", weight: 1, overloaded: true}}, "-", "nothing usable"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s", c.sched, c.why), func(t *testing.T) {
			if got := pickOnce(t, c.sched, c.specs); got != c.want {
				t.Fatalf("%s picked %s, want %s (%s)", c.sched, got, c.want, c.why)
			}
		})
	}
}

// scriptedRand returns queued values and records the bounds it was asked for.
type scriptedRand struct {
	vals   []uint32
	bounds []uint32
}

func (r *scriptedRand) Uint32N(n uint32) uint32 {
	r.bounds = append(r.bounds, n)
	v := r.vals[0]
	r.vals = r.vals[1:]
	if v >= n {
		panic(fmt.Sprintf("scripted value %d out of [0,%d)", v, n))
	}
	return v
}

func TestTwos(t *testing.T) {
	// A w1, B w2, C w3: total 6, draws in [0, 6]. Walking the list
	// subtracting weights: r = 0 or 1 -> A; 2, 3 -> B; 4, 5, 6 -> C.
	specs := []dspec{
		{name: "A", weight: 1, active: 1},
		{name: "B", weight: 2, active: 2},
		{name: "C", weight: 3},
	}
	cases := []struct {
		r1, r2 uint32
		want   string
		why    string
	}{
		{0, 4, "C", "A (oh 256, w1) vs C (oh 0, w3): 3*256 > 1*0 -> C"},
		{4, 0, "C", "C vs A: 1*0 > 3*256 is false -> keep C"},
		{1, 3, "A", "A (256, w1) vs B (512, w2): 2*256 > 1*512 is false (tie) -> A"},
		{2, 6, "C", "B (512, w2) vs C (0, w3): 3*512 > 2*0 -> C"},
		{5, 5, "C", "same choice twice"},
	}
	for _, c := range cases {
		r := &scriptedRand{vals: []uint32{c.r1, c.r2}}
		if got := pickOnce(t, "twos", specs, WithRand(r)); got != c.want {
			t.Errorf("r1=%d r2=%d: got %s, want %s (%s)", c.r1, c.r2, got, c.want, c.why)
		}
		if len(r.bounds) != 2 || r.bounds[0] != 7 || r.bounds[1] != 7 {
			t.Errorf("draw bounds %v, want [7 7] (total weight + 1)", r.bounds)
		}
	}

	// Overloaded and weight-0 destinations are out of the draw: total is
	// B's 2 alone, so the bound is 3 and both draws land on B.
	r := &scriptedRand{vals: []uint32{0, 2}}
	got := pickOnce(t, "twos", []dspec{
		{name: "A", weight: 1, overloaded: true},
		{name: "B", weight: 2, active: 5},
		{name: "C", weight: 0},
	}, WithRand(r))
	if got != "B" || r.bounds[0] != 3 {
		t.Fatalf("got %s with bounds %v, want B with bound 3", got, r.bounds)
	}

	r = &scriptedRand{}
	if got := pickOnce(t, "twos", []dspec{{name: "A", weight: 0}}, WithRand(r)); got != "-" || len(r.bounds) != 0 {
		t.Fatalf("no usable dest: got %s after %d draws, want - without drawing", got, len(r.bounds))
	}
}

// Weight 0 quiesces and OVERLOAD excludes, for every scheduler: over many
// flows (varied source and destination addresses and ports) neither X
// (weight 0) nor Z (overloaded) is ever chosen; the hash schedulers may
// answer nil where the key lands on X or Z (no fallback), the others always
// find Y.
func TestNoSchedulerPicksQuiescedOrOverloaded(t *testing.T) {
	hashing := map[string]bool{"sh": true, "dh": true, "mh": true}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			m := named{}
			v := newService(t, name, 0)
			x := v.add(m.dest("X", ip4(10, 3, 0, 1), 80, 1))
			y := v.add(m.dest("Y", ip4(10, 3, 0, 2), 80, 1))
			z := v.add(m.dest("Z", ip4(10, 3, 0, 3), 80, 1))
			v.edit(x, 0)
			z.SetThresholds(1, 0)
			z.BindConn()
			if !z.Overloaded() {
				t.Fatal("Z not overloaded after reaching its upper threshold")
			}
			nils := 0
			for i := range 2000 {
				f := &Flow{
					Proto:   protoTCP,
					SrcAddr: ip4(192, 0, 2, byte(i)), SrcPort: uint16(1024 + i),
					DstAddr: ip4(198, 51, 100, byte(i/8)), DstPort: 80,
					Now: int64(i) * 1e6,
				}
				switch d := v.s.Schedule(f); d {
				case nil:
					nils++
				case y:
				default:
					t.Fatalf("flow %d: picked %s", i, m.name(d))
				}
			}
			if !hashing[name] && nils != 0 {
				t.Fatalf("%d flows found no destination although Y is usable", nils)
			}
			if hashing[name] && nils == 2000 {
				t.Fatal("no flow reached Y")
			}
		})
	}
}
