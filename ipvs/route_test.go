package ipvs

import (
	"net/netip"
	"testing"
)

func TestRouteLookupLongestPrefix(t *testing.T) {
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	tab := NewRouteTable([]Route{
		{Dst: p("0.0.0.0/0"), Gw: a("10.0.0.254"), Ifindex: 1},
		{Dst: p("10.0.0.0/24"), Ifindex: 1},
		{Dst: p("172.16.0.0/24"), Ifindex: 2},
		{Dst: p("172.16.0.128/25"), Gw: a("172.16.0.1"), Ifindex: 3},
	})
	cases := []struct {
		dst     string
		ifindex int
		nh      string
	}{
		{"10.0.0.2", 1, "10.0.0.2"},
		{"172.16.0.3", 2, "172.16.0.3"},
		{"172.16.0.200", 3, "172.16.0.1"},
		{"198.51.100.7", 1, "10.0.0.254"},
	}
	for _, c := range cases {
		r, nh, ok := tab.Lookup(a(c.dst))
		if !ok || r.Ifindex != c.ifindex || nh != a(c.nh) {
			t.Errorf("Lookup(%s) = if %d nh %s ok %v, want if %d nh %s", c.dst, r.Ifindex, nh, ok, c.ifindex, c.nh)
		}
	}
	if _, _, ok := NewRouteTable(nil).Lookup(a("10.0.0.1")); ok {
		t.Error("empty table found a route")
	}
}
