package rs

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lvslab/internal/netns"
)

// SavedRoute is an IPv4 default route of the main table, with what is
// needed to put it back as it was. Devices are kept by name: indexes do not
// survive a device being recreated.
type SavedRoute struct {
	Gw       netip.Addr `json:"gw,omitzero"`
	Dev      string     `json:"dev,omitempty"`
	Src      netip.Addr `json:"src,omitzero"`
	Metric   int        `json:"metric,omitempty"`
	Protocol int        `json:"protocol,omitempty"`
	Scope    int        `json:"scope,omitempty"`
	Type     int        `json:"type,omitempty"`
	Flags    int        `json:"flags,omitempty"`
	Nexthops []Nexthop  `json:"nexthops,omitempty"`
}

// Nexthop is one path of a multipath default route.
type Nexthop struct {
	Gw     netip.Addr `json:"gw,omitzero"`
	Dev    string     `json:"dev,omitempty"`
	Weight int        `json:"weight,omitempty"` // netlink's Hops: weight-1
	Flags  int        `json:"flags,omitempty"`
}

func (r SavedRoute) String() string {
	var b strings.Builder
	b.WriteString("default")
	if r.Gw.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Gw)
	}
	if r.Dev != "" {
		fmt.Fprintf(&b, " dev %s", r.Dev)
	}
	for _, nh := range r.Nexthops {
		fmt.Fprintf(&b, " nexthop via %s dev %s weight %d", nh.Gw, nh.Dev, nh.Weight+1)
	}
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " src %s", r.Src)
	}
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	if r.Flags&unix.RTNH_F_ONLINK != 0 {
		b.WriteString(" onlink")
	}
	return b.String()
}

func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

func ipOf(a netip.Addr) net.IP {
	if !a.IsValid() {
		return nil
	}
	return net.IP(a.AsSlice())
}

func linkName(h *netlink.Handle, index int) string {
	if index == 0 {
		return ""
	}
	l, err := h.LinkByIndex(index)
	if err != nil {
		return fmt.Sprintf("if%d", index)
	}
	return l.Attrs().Name
}

func linkIndex(h *netlink.Handle, name string) (int, error) {
	if name == "" {
		return 0, nil
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	return l.Attrs().Index, nil
}

func saveRoute(h *netlink.Handle, r netlink.Route) SavedRoute {
	s := SavedRoute{
		Gw:       addrOf(r.Gw),
		Dev:      linkName(h, r.LinkIndex),
		Src:      addrOf(r.Src),
		Metric:   r.Priority,
		Protocol: int(r.Protocol),
		Scope:    int(r.Scope),
		Type:     r.Type,
		Flags:    r.Flags,
	}
	for _, nh := range r.MultiPath {
		s.Nexthops = append(s.Nexthops, Nexthop{Gw: addrOf(nh.Gw), Dev: linkName(h, nh.LinkIndex), Weight: nh.Hops, Flags: nh.Flags})
	}
	return s
}

func (r SavedRoute) netlink(h *netlink.Handle) (*netlink.Route, error) {
	idx, err := linkIndex(h, r.Dev)
	if err != nil {
		return nil, err
	}
	nr := &netlink.Route{
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		Family:    netlink.FAMILY_V4,
		Table:     unix.RT_TABLE_MAIN,
		Gw:        ipOf(r.Gw),
		LinkIndex: idx,
		Src:       ipOf(r.Src),
		Priority:  r.Metric,
		Protocol:  netlink.RouteProtocol(r.Protocol),
		Scope:     netlink.Scope(r.Scope),
		Type:      r.Type,
		Flags:     r.Flags,
	}
	for _, nh := range r.Nexthops {
		i, err := linkIndex(h, nh.Dev)
		if err != nil {
			return nil, err
		}
		nr.MultiPath = append(nr.MultiPath, &netlink.NexthopInfo{LinkIndex: i, Gw: ipOf(nh.Gw), Hops: nh.Weight, Flags: nh.Flags})
	}
	return nr, nil
}

// defaultRoutes lists the IPv4 default routes of the main table.
func defaultRoutes(h *netlink.Handle) ([]netlink.Route, error) {
	rs, err := netns.Retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netlink.Route
	for _, r := range rs {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// matches reports whether a live default route is the saved one (the
// fields that identify a route to the kernel, plus the next hops).
func (r SavedRoute) matches(h *netlink.Handle, live netlink.Route) bool {
	l := saveRoute(h, live)
	if l.Gw != r.Gw || l.Dev != r.Dev || l.Metric != r.Metric || len(l.Nexthops) != len(r.Nexthops) {
		return false
	}
	for i := range l.Nexthops {
		if l.Nexthops[i].Gw != r.Nexthops[i].Gw || l.Nexthops[i].Dev != r.Nexthops[i].Dev {
			return false
		}
	}
	return true
}
