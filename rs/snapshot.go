package rs

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lvslab/internal/netns"
)

// Snapshot is the part of a network namespace's configuration lvsrs may
// touch, as sorted lines, for before/after comparisons: links (name, kind,
// up), IPv4 addresses, IPv4 routes of every table, and the per-device
// sysctls lvsrs may change (arp_ignore, arp_announce, rp_filter) of every
// device and of all/default.
type Snapshot struct {
	Links   []string
	Addrs   []string
	Routes  []string
	Sysctls []string
}

// TakeSnapshot records the calling thread's network namespace.
func TakeSnapshot() (Snapshot, error) {
	var s Snapshot
	h, err := netlink.NewHandle()
	if err != nil {
		return s, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return s, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		up := "down"
		if l.Attrs().Flags&net.FlagUp != 0 {
			up = "up"
		}
		s.Links = append(s.Links, fmt.Sprintf("%s %s %s", l.Attrs().Name, l.Type(), up))
	}
	addrs, err := addrList(h)
	if err != nil {
		return s, err
	}
	for _, a := range addrs {
		s.Addrs = append(s.Addrs, fmt.Sprintf("%s %s label %s scope %d", linkName(h, a.LinkIndex), a.IPNet, a.Label, a.Scope))
	}
	routes, err := netns.Retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return s, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		var nhs []string
		for _, nh := range r.MultiPath {
			nhs = append(nhs, fmt.Sprintf("%s@%s/%d", nh.Gw, linkName(h, nh.LinkIndex), nh.Hops))
		}
		s.Routes = append(s.Routes, fmt.Sprintf("table %d type %d %s via %s dev %s src %s metric %d proto %d scope %d flags %#x nexthops %v",
			r.Table, r.Type, r.Dst, r.Gw, linkName(h, r.LinkIndex), r.Src, r.Priority, r.Protocol, r.Scope, r.Flags, nhs))
	}
	devs, err := os.ReadDir("/proc/sys/net/ipv4/conf")
	if err != nil {
		return s, fmt.Errorf("list sysctl devices: %w", err)
	}
	for _, d := range devs {
		for _, name := range [...]string{"arp_ignore", "arp_announce", "rp_filter"} {
			key := confKey(d.Name(), name)
			v, err := netns.ReadSysctl(key)
			if err != nil {
				return s, err
			}
			s.Sysctls = append(s.Sysctls, key+"="+v)
		}
	}
	for _, l := range [][]string{s.Links, s.Addrs, s.Routes, s.Sysctls} {
		slices.Sort(l)
	}
	return s, nil
}

// Diff lists what changed from s to t: "-line" gone, "+line" new.
func (s Snapshot) Diff(t Snapshot) []string {
	var out []string
	for _, p := range [][2][]string{{s.Links, t.Links}, {s.Addrs, t.Addrs}, {s.Routes, t.Routes}, {s.Sysctls, t.Sysctls}} {
		for _, l := range p[0] {
			if !slices.Contains(p[1], l) {
				out = append(out, "-"+l)
			}
		}
		for _, l := range p[1] {
			if !slices.Contains(p[0], l) {
				out = append(out, "+"+l)
			}
		}
	}
	return out
}

func (s Snapshot) String() string {
	var b strings.Builder
	for _, l := range [][]string{s.Links, s.Addrs, s.Routes, s.Sysctls} {
		for _, x := range l {
			b.WriteString(x)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
