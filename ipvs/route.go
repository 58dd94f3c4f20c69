package ipvs

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Route is one IPv4 route of the namespace's main table, reduced to what a
// forwarder needs.
type Route struct {
	Dst     netip.Prefix
	Gw      netip.Addr // invalid for on-link routes
	Ifindex int
	Src     netip.Addr // preferred source, if the route names one
}

// RouteTable is a snapshot of the kernel's IPv4 main table with a
// longest-prefix-match lookup. Lab tables hold a handful of routes, so a
// linear scan over routes sorted by prefix length beats any trie here.
type RouteTable struct {
	routes []Route
}

// NewRouteTable builds a table from routes (any order).
func NewRouteTable(routes []Route) *RouteTable {
	rs := slices.Clone(routes)
	slices.SortStableFunc(rs, func(a, b Route) int { return cmp.Compare(b.Dst.Bits(), a.Dst.Bits()) })
	return &RouteTable{routes: rs}
}

// LoadRoutes reads the main IPv4 table of the calling thread's namespace.
func LoadRoutes(h *netlink.Handle) (*RouteTable, error) {
	list, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list IPv4 routes: %w", err)
	}
	var rs []Route
	for _, r := range list {
		if r.Type != unix.RTN_UNICAST && r.Type != 0 {
			continue
		}
		rt := Route{Ifindex: r.LinkIndex, Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0)}
		if r.Dst != nil {
			a, ok := netip.AddrFromSlice(r.Dst.IP.To4())
			ones, _ := r.Dst.Mask.Size()
			if !ok {
				continue
			}
			rt.Dst = netip.PrefixFrom(a, ones)
		}
		if gw, ok := netip.AddrFromSlice(r.Gw.To4()); ok {
			rt.Gw = gw
		}
		if src, ok := netip.AddrFromSlice(r.Src.To4()); ok {
			rt.Src = src
		}
		if rt.Ifindex == 0 && len(r.MultiPath) > 0 {
			// ECMP: the first hop is enough for a lab director.
			nh := r.MultiPath[0]
			rt.Ifindex = nh.LinkIndex
			if gw, ok := netip.AddrFromSlice(nh.Gw.To4()); ok {
				rt.Gw = gw
			}
		}
		rs = append(rs, rt)
	}
	return NewRouteTable(rs), nil
}

// Lookup returns the route to dst and the next hop on it (the gateway, or
// dst itself when the route is on-link).
func (t *RouteTable) Lookup(dst netip.Addr) (Route, netip.Addr, bool) {
	for _, r := range t.routes {
		if r.Dst.Contains(dst) {
			nh := dst
			if r.Gw.IsValid() {
				nh = r.Gw
			}
			return r, nh, true
		}
	}
	return Route{}, netip.Addr{}, false
}

// Routes returns the table's routes, longest prefix first.
func (t *RouteTable) Routes() []Route { return t.routes }

func netipAddrPort(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
