package fault

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// State triggers (when: {state: ...}) are the same checks as the runner's
// end-of-run state expectations, read live. The runner keeps its versions
// unexported; these follow the same rules.

// stateNode is the node a state check reads.
func stateNode(st *spec.StateCheck) string {
	switch {
	case st.Addr != nil:
		return st.Addr.Node
	case st.Neighbor != nil:
		return st.Neighbor.Node
	case st.Route != nil:
		return st.Route.Node
	case st.Command != nil:
		return st.Command.Node
	}
	return ""
}

func describeState(st *spec.StateCheck) string {
	switch {
	case st.Addr != nil && st.Addr.Has.IsValid():
		return fmt.Sprintf("%s holds %s", st.Addr.Node, st.Addr.Has)
	case st.Addr != nil:
		return fmt.Sprintf("%s lacks %s", st.Addr.Node, st.Addr.Lacks)
	case st.Neighbor != nil && st.Neighbor.Absent:
		return fmt.Sprintf("%s has no entry for %s", st.Neighbor.Node, st.Neighbor.IP)
	case st.Neighbor != nil:
		want := slices.Clone(st.Neighbor.MACOf)
		if st.Neighbor.MAC != "" {
			want = append(want, string(st.Neighbor.MAC))
		}
		return fmt.Sprintf("%s resolves %s to %s", st.Neighbor.Node, st.Neighbor.IP, strings.Join(want, " or "))
	case st.Route != nil && st.Route.Absent:
		return fmt.Sprintf("%s has no route to %s", st.Route.Node, st.Route.Dst)
	case st.Route != nil:
		return fmt.Sprintf("%s routes %s", st.Route.Node, st.Route.Dst)
	case st.Command != nil:
		c := st.Command
		argv := strings.Join(c.Cmd, " ")
		if c.Shell != "" {
			argv = c.Shell
		}
		return fmt.Sprintf("`%s` in %s succeeds", argv, c.Node)
	}
	return "(empty state check)"
}

// checkState evaluates a state check against the live lab. err is for
// checks that cannot be evaluated at all (no such node).
func checkState(ctx context.Context, lab *topo.Lab, st *spec.StateCheck) (bool, error) {
	n := lab.Node(stateNode(st))
	if n == nil {
		return false, fmt.Errorf("no node %q", stateNode(st))
	}
	h := n.Netlink()
	switch {
	case st.Addr != nil:
		return checkAddr(h, st.Addr)
	case st.Neighbor != nil:
		return checkNeigh(lab, h, st.Neighbor)
	case st.Route != nil:
		return checkRoute(h, st.Route)
	case st.Command != nil:
		return checkCommand(ctx, lab, st.Command)
	}
	return false, errors.New("empty state check")
}

func checkAddr(h *netlink.Handle, c *spec.AddrCheck) (bool, error) {
	var link netlink.Link
	if c.Dev != "" {
		l, err := retry(func() (netlink.Link, error) { return h.LinkByName(c.Dev) })
		if err != nil {
			// The interface may appear later (lvsrs makes tunl0).
			return c.Lacks.IsValid(), nil
		}
		link = l
	}
	addrs, err := retry(func() ([]netlink.Addr, error) { return h.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", c.Node, err)
	}
	want := c.Has
	if !want.IsValid() {
		want = c.Lacks
	}
	found := slices.ContainsFunc(addrs, func(a netlink.Addr) bool {
		x, ok := netip.AddrFromSlice(a.IP)
		return ok && x.Unmap() == want
	})
	if c.Has.IsValid() {
		return found, nil
	}
	return !found, nil
}

func checkNeigh(lab *topo.Lab, h *netlink.Handle, c *spec.NeighCheck) (bool, error) {
	list, err := retry(func() ([]netlink.Neigh, error) { return h.NeighList(0, neighFamily(c.IP)) })
	if err != nil {
		return false, fmt.Errorf("list neighbours of %s: %w", c.Node, err)
	}
	var got string
	for _, ne := range list {
		a, ok := netip.AddrFromSlice(ne.IP)
		if !ok || a.Unmap() != c.IP {
			continue
		}
		if ne.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 || ne.State == netlink.NUD_NONE || len(ne.HardwareAddr) == 0 {
			continue
		}
		got = ne.HardwareAddr.String()
	}
	if c.Absent {
		return got == "", nil
	}
	if got == "" {
		return false, nil
	}
	if c.MAC != "" && string(c.MAC) == got {
		return true, nil
	}
	for _, ref := range c.MACOf {
		if m, err := lab.Spec.MACOf(ref); err == nil && string(m) == got {
			return true, nil
		}
	}
	return false, nil
}

func checkRoute(h *netlink.Handle, c *spec.RouteCheck) (bool, error) {
	family := netlink.FAMILY_V4
	if c.Dst.Prefix.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return false, fmt.Errorf("list routes of %s: %w", c.Node, err)
	}
	var match *netlink.Route
	for i, r := range routes {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if family == netlink.FAMILY_V6 {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if r.Dst != nil {
			a, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			dst = netip.PrefixFrom(a.Unmap(), ones)
		}
		if dst == c.Dst.Prefix {
			match = &routes[i]
			break
		}
	}
	if c.Absent {
		return match == nil, nil
	}
	if match == nil {
		return false, nil
	}
	if c.Via.IsValid() {
		gw, _ := netip.AddrFromSlice(match.Gw)
		if gw.Unmap() != c.Via {
			return false, nil
		}
	}
	if c.Dev != "" {
		l, err := h.LinkByIndex(match.LinkIndex)
		if err != nil || l.Attrs().Name != c.Dev {
			return false, nil
		}
	}
	return true, nil
}

func checkCommand(ctx context.Context, lab *topo.Lab, c *spec.CommandCheck) (bool, error) {
	argv := c.Cmd
	if c.Shell != "" {
		argv = []string{"/bin/sh", "-c", c.Shell}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd, err := lab.Command(cctx, c.Node, argv...)
	if err != nil {
		return false, err
	}
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	want := 0
	if c.ExitCode != nil {
		want = *c.ExitCode
	}
	held := code == want
	if c.Match.Regexp != nil {
		held = held && c.Match.Match(out)
	}
	if c.NoMatch.Regexp != nil {
		held = held && !c.NoMatch.Match(out)
	}
	return held, nil
}
