package sched

import (
	"fmt"
	"net/netip"
	"testing"
)

// Every scheduler New returns is a Scheduler and a FlagSetter.
var (
	_ Scheduler  = (*roundRobin)(nil)
	_ Scheduler  = (*weightedRoundRobin)(nil)
	_ Scheduler  = (*leastConn)(nil)
	_ Scheduler  = (*weightedLeastConn)(nil)
	_ Scheduler  = (*shortestExpectedDelay)(nil)
	_ Scheduler  = (*neverQueue)(nil)
	_ Scheduler  = (*failover)(nil)
	_ Scheduler  = (*overflow)(nil)
	_ Scheduler  = (*twoChoices)(nil)
	_ Scheduler  = (*sourceHash)(nil)
	_ Scheduler  = (*destHash)(nil)
	_ Scheduler  = (*maglev)(nil)
	_ Scheduler  = (*lblc)(nil)
	_ Scheduler  = (*lblcr)(nil)
	_ FlagSetter = (*lblcr)(nil)
)

// service mimics the kernel's destination list: ipvsadm -a adds at the
// head, and every change is reported to the scheduler with Update.
type service struct {
	t     testing.TB
	s     Scheduler
	dests []*Dest
}

func newService(t testing.TB, name string, flags Flags, opts ...Option) *service {
	t.Helper()
	s, err := New(name, flags, opts...)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	return &service{t: t, s: s}
}

// add is ipvsadm -a: list_add_rcu at the head, then the scheduler's hook.
func (v *service) add(d *Dest) *Dest {
	v.dests = append([]*Dest{d}, v.dests...)
	v.s.Update(v.dests)
	return d
}

// del is ipvsadm -d.
func (v *service) del(d *Dest) {
	i := indexOf(v.dests, d)
	if i < 0 {
		v.t.Fatalf("del: %v not in service", d.Addr)
	}
	v.dests = append(v.dests[:i:i], v.dests[i+1:]...)
	v.s.Update(v.dests)
}

// edit is ipvsadm -e -w.
func (v *service) edit(d *Dest, weight int32) {
	d.SetWeight(weight)
	v.s.Update(v.dests)
}

// picks schedules n connections and names each choice ("-" for nil).
func (v *service) picks(n int, name func(*Dest) string) []string {
	out := make([]string, n)
	f := &Flow{}
	for i := range out {
		d := v.s.Schedule(f)
		if d == nil {
			out[i] = "-"
		} else {
			out[i] = name(d)
		}
	}
	return out
}

func ip4(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }

// named builds destinations whose names are looked up by pointer.
type named map[*Dest]string

func (m named) dest(name string, addr netip.Addr, port uint16, weight int32) *Dest {
	d := NewDest(addr, port, weight)
	m[d] = name
	return d
}

func (m named) name(d *Dest) string {
	if n, ok := m[d]; ok {
		return n
	}
	return fmt.Sprintf("?%v", d.Addr)
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d items %v, want %d items %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: item %d: got %q, want %q\n got  %v\n want %v", what, i, got[i], want[i], got, want)
		}
	}
}
