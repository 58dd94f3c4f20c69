package sched

import (
	"errors"
	"net/netip"
	"testing"
)

// Upper threshold only (ipvs.md §3.1): bind sets OVERLOAD when total >= u
// after the increment; unbind clears it when 4*total < 3*u. With u = 4:
// total 4 sets it; 4*3 = 12 < 12 is false at total 3, 4*2 = 8 < 12 at
// total 2 clears it.
func TestUpperThresholdAndThreeQuarters(t *testing.T) {
	m := named{}
	v := newService(t, "rr", 0)
	v.add(m.dest("O", ip4(10, 20, 0, 2), 80, 1))
	d := v.add(m.dest("D", ip4(10, 20, 0, 1), 80, 1))
	d.SetThresholds(4, 0)
	for i := 1; i <= 3; i++ {
		d.BindConn()
		if d.Overloaded() {
			t.Fatalf("overloaded at %d connections, threshold 4", i)
		}
	}
	d.BindConn()
	if !d.Overloaded() {
		t.Fatal("not overloaded at 4 connections, threshold 4")
	}
	// Schedulers now skip D.
	for _, name := range Names() {
		s, err := New(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.Update(v.dests)
		for i := range 50 {
			f := &Flow{SrcAddr: ip4(192, 0, 2, byte(i)), DstAddr: ip4(198, 51, 100, byte(i)), Now: t0}
			if got := s.Schedule(f); got == d {
				t.Fatalf("%s picked overloaded D", name)
			}
		}
	}
	equalStrings(t, "rr skips D", v.picks(3, m.name), []string{"O", "O", "O"})

	// Activation moves a connection between counters, the total stays.
	d.ConnActivated()
	if d.ActiveConns != 1 || d.InactConns != 3 || !d.Overloaded() {
		t.Fatalf("after activation: active %d inact %d overloaded %v", d.ActiveConns, d.InactConns, d.Overloaded())
	}
	d.UnbindConn(true) // total 3
	if !d.Overloaded() {
		t.Fatal("cleared at total 3: 4*3 < 3*4 is false")
	}
	d.UnbindConn(false) // total 2
	if d.Overloaded() {
		t.Fatal("still overloaded at total 2: 4*2 < 3*4")
	}
	if d.ActiveConns != 0 || d.InactConns != 2 {
		t.Fatalf("counters active %d inact %d, want 0 2", d.ActiveConns, d.InactConns)
	}
	equalStrings(t, "rr uses D again", v.picks(2, m.name), []string{"D", "O"})
}

// With a lower threshold the clearing rule is total < l instead.
func TestLowerThreshold(t *testing.T) {
	d := NewDest(ip4(10, 20, 0, 1), 80, 1)
	d.SetThresholds(4, 2)
	for range 4 {
		d.BindConn()
	}
	if !d.Overloaded() {
		t.Fatal("not overloaded at u")
	}
	d.UnbindConn(false) // 3
	d.UnbindConn(false) // 2: 2 < 2 is false
	if !d.Overloaded() {
		t.Fatal("cleared at total 2 with l = 2")
	}
	d.UnbindConn(false) // 1
	if d.Overloaded() {
		t.Fatal("still overloaded at total 1 < l = 2")
	}
}

// Templates (persistence) count apart and never trip the thresholds.
func TestTemplatesDoNotCount(t *testing.T) {
	d := NewDest(ip4(10, 20, 0, 1), 80, 1)
	d.SetThresholds(1, 0)
	d.BindTemplate()
	d.BindTemplate()
	if d.Overloaded() || d.PersistConns != 2 || d.TotalConns() != 0 {
		t.Fatalf("templates: overloaded %v persist %d total %d", d.Overloaded(), d.PersistConns, d.TotalConns())
	}
	d.UnbindTemplate()
	d.UnbindTemplate()
	d.UnbindTemplate() // does not wrap
	if d.PersistConns != 0 {
		t.Fatalf("persist %d after unbinding", d.PersistConns)
	}
}

// Without thresholds nothing sets OVERLOAD, and an unbind clears one that
// was set under a threshold since removed.
func TestNoThresholds(t *testing.T) {
	d := NewDest(ip4(10, 20, 0, 1), 80, 1)
	for range 1000 {
		d.BindConn()
	}
	if d.Overloaded() {
		t.Fatal("overloaded without thresholds")
	}
	if d.Overhead() != 1000 {
		t.Fatalf("overhead %d, want 1000", d.Overhead())
	}
	d.ConnActivated()
	if d.Overhead() != 256+999 {
		t.Fatalf("overhead %d, want 256*1 + 999", d.Overhead())
	}
}

// Editing thresholds (__ip_vs_update_dest): removing or raising u clears
// OVERLOAD at once; lowering it or changing l does not.
func TestSetThresholdsEditRule(t *testing.T) {
	d := NewDest(ip4(10, 20, 0, 1), 80, 1)
	d.SetThresholds(4, 0)
	for range 4 {
		d.BindConn()
	}
	d.SetThresholds(3, 0) // lowered
	if !d.Overloaded() {
		t.Fatal("lowering u cleared OVERLOAD")
	}
	d.SetThresholds(3, 1) // same u, new l
	if !d.Overloaded() {
		t.Fatal("same u cleared OVERLOAD")
	}
	d.SetThresholds(5, 0) // raised
	if d.Overloaded() {
		t.Fatal("raising u kept OVERLOAD")
	}
	d.BindConn() // total 5 >= 5
	if !d.Overloaded() {
		t.Fatal("not overloaded at the raised threshold")
	}
	d.SetThresholds(0, 0) // removed
	if d.Overloaded() {
		t.Fatal("removing u kept OVERLOAD")
	}
	if d.UThreshold != 0 || d.LThreshold != 0 {
		t.Fatal("thresholds not stored")
	}
}

// The kernel's add/edit validation: weight >= 0 and l <= u, else ERANGE.
func TestValidateDestParams(t *testing.T) {
	for _, c := range []struct {
		w    int32
		u, l uint32
		ok   bool
	}{
		{1, 0, 0, true},
		{0, 10, 5, true},
		{65535, 10, 10, true},
		{-1, 0, 0, false},
		{1, 5, 10, false},
		{1, 0, 1, false},
	} {
		err := ValidateDestParams(c.w, c.u, c.l)
		if (err == nil) != c.ok {
			t.Errorf("w %d u %d l %d: err %v, want ok %v", c.w, c.u, c.l, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrDestParams) {
			t.Errorf("error %v does not wrap ErrDestParams", err)
		}
	}
}

// LastWeight keeps the last non-zero weight (mh builds from it).
func TestLastWeight(t *testing.T) {
	d := NewDest(ip4(10, 20, 0, 1), 80, 5)
	d.SetWeight(0)
	if d.Weight != 0 || d.LastWeight != 5 {
		t.Fatalf("weight %d last %d, want 0 5", d.Weight, d.LastWeight)
	}
	d.SetWeight(2)
	if d.LastWeight != 2 {
		t.Fatalf("last %d, want 2", d.LastWeight)
	}
	if z := NewDest(ip4(10, 20, 0, 2), 80, 0); z.LastWeight != 0 {
		t.Fatalf("added with weight 0: last %d, want 0", z.LastWeight)
	}
}

// Templates run the kernel's threshold tests on bind and unbind without
// counting in the total.
func TestTemplateBindRunsThresholds(t *testing.T) {
	d := NewDest(netip.MustParseAddr("10.0.0.1"), 80, 1)
	d.SetThresholds(2, 0)
	d.BindTemplate()
	if d.Overloaded() {
		t.Fatal("a template alone overloaded the destination")
	}
	d.BindConn()
	d.BindConn()
	if !d.Overloaded() {
		t.Fatal("two connections did not reach the upper threshold 2")
	}
	d.BindTemplate()
	if !d.Overloaded() || d.PersistConns != 2 {
		t.Fatalf("template bind changed the overload state: %+v", d)
	}
	// Lower threshold raised above the total: the next unbind of any kind
	// clears the flag.
	d.LThreshold = 3
	d.UnbindTemplate()
	if d.Overloaded() {
		t.Fatalf("template unbind with total 2 below the lower threshold 3 kept OVERLOAD: %+v", d)
	}
}
