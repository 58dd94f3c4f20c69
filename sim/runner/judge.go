package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
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

// processJudge decides process: expectations from the state of the process
// at the end of the run.
type processJudge struct{}

func (processJudge) Evaluate(_ context.Context, run *Run, e *spec.Expectation) (Outcome, bool) {
	pc := e.Process
	if pc == nil {
		return Outcome{}, false
	}
	node, name, _ := spec.SplitProcessRef(pc.Target)
	p := run.Lab.Process(node, name)
	if p == nil {
		return Outcome{Detail: fmt.Sprintf("%s was never planned", pc.Target)}, true
	}
	st := p.Status()
	held := false
	switch pc.State {
	case "running":
		held = st.State == topo.ProcRunning
	case "exited":
		held = st.State == topo.ProcExited && (pc.ExitCode == nil || *pc.ExitCode == st.ExitCode)
	case "signaled":
		held = st.State == topo.ProcSignaled
	}
	return Outcome{Held: held, Detail: st.String()}, true
}

// stateJudge decides state: expectations without a window, on the lab's
// state at the end of the run. Windows need the timeline's observers.
type stateJudge struct{}

func (stateJudge) Evaluate(ctx context.Context, run *Run, e *spec.Expectation) (Outcome, bool) {
	st := e.State
	if st == nil || len(e.During) > 0 || e.After != "" {
		return Outcome{}, false
	}
	if st.Addr == nil && st.Neighbor == nil && st.Route == nil && st.Command == nil {
		return Outcome{}, false
	}
	return CheckState(ctx, run.Lab, st), true
}

// CheckState evaluates a state check against the live lab, now: the judge
// at the end of a run, and the fault timeline's when: triggers during it.
func CheckState(ctx context.Context, lab *topo.Lab, st *spec.StateCheck) Outcome {
	switch {
	case st.Addr != nil:
		return checkAddr(lab, st.Addr)
	case st.Neighbor != nil:
		return checkNeighbor(lab, st.Neighbor)
	case st.Route != nil:
		return checkRoute(lab, st.Route)
	case st.Command != nil:
		return checkCommand(ctx, lab, st.Command)
	}
	return Outcome{Detail: "empty state check"}
}

func checkCommand(ctx context.Context, lab *topo.Lab, c *spec.CommandCheck) Outcome {
	argv := c.Cmd
	if c.Shell != "" {
		argv = []string{"/bin/sh", "-c", c.Shell}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd, err := lab.Command(cctx, c.Node, argv...)
	if err != nil {
		return Outcome{Detail: err.Error()}
	}
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return Outcome{Detail: fmt.Sprintf("%s: %v", strings.Join(argv, " "), err)}
	}
	want := 0
	if c.ExitCode != nil {
		want = *c.ExitCode
	}
	held, detail := commandVerdict(strings.Join(argv, " "), out, code, want, c.Match, c.NoMatch)
	return Outcome{Held: held, Detail: detail}
}

func nodeOf(lab *topo.Lab, name string) (*topo.Node, error) {
	n := lab.Node(name)
	if n == nil {
		return nil, fmt.Errorf("no node %s", name)
	}
	return n, nil
}

func checkAddr(lab *topo.Lab, c *spec.AddrCheck) Outcome {
	n, err := nodeOf(lab, c.Node)
	if err != nil {
		return Outcome{Detail: err.Error()}
	}
	h := n.Netlink()
	var link netlink.Link
	if c.Dev != "" {
		if link, err = h.LinkByName(c.Dev); err != nil {
			return Outcome{Detail: fmt.Sprintf("%s has no interface %s: %v", c.Node, c.Dev, err)}
		}
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return Outcome{Detail: fmt.Sprintf("list addresses of %s: %v", c.Node, err)}
	}
	var have []string
	found := func(a netip.Addr) bool {
		for _, x := range addrs {
			if xa, ok := netip.AddrFromSlice(x.IP); ok && xa.Unmap() == a {
				return true
			}
		}
		return false
	}
	for _, x := range addrs {
		have = append(have, x.IPNet.String())
	}
	where := c.Node
	if c.Dev != "" {
		where += ":" + c.Dev
	}
	detail := fmt.Sprintf("%s has %s", where, strings.Join(have, ", "))
	if c.Has.IsValid() {
		return Outcome{Held: found(c.Has), Detail: detail}
	}
	return Outcome{Held: !found(c.Lacks), Detail: detail}
}

func checkNeighbor(lab *topo.Lab, c *spec.NeighCheck) Outcome {
	n, err := nodeOf(lab, c.Node)
	if err != nil {
		return Outcome{Detail: err.Error()}
	}
	family := netlink.FAMILY_V4
	if c.IP.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := n.Netlink().NeighList(0, family)
	if err != nil {
		return Outcome{Detail: fmt.Sprintf("list neighbours of %s: %v", c.Node, err)}
	}
	var got net.HardwareAddr
	for _, ne := range neighs {
		a, ok := netip.AddrFromSlice(ne.IP)
		if !ok || a.Unmap() != c.IP {
			continue
		}
		if ne.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 || ne.State == netlink.NUD_NONE || len(ne.HardwareAddr) == 0 {
			continue
		}
		got = ne.HardwareAddr
	}
	if c.Absent {
		if got == nil {
			return Outcome{Held: true, Detail: fmt.Sprintf("%s has no entry for %s", c.Node, c.IP)}
		}
		return Outcome{Detail: fmt.Sprintf("%s has %s at %s", c.Node, c.IP, got)}
	}
	if got == nil {
		return Outcome{Detail: fmt.Sprintf("%s has no usable entry for %s", c.Node, c.IP)}
	}
	want := []string{}
	if c.MAC != "" {
		want = append(want, string(c.MAC))
	}
	for _, ref := range c.MACOf {
		if m, err := lab.Spec.MACOf(ref); err == nil {
			want = append(want, string(m))
		}
	}
	return Outcome{Held: slices.Contains(want, got.String()),
		Detail: fmt.Sprintf("%s has %s at %s (expected %s)", c.Node, c.IP, got, strings.Join(want, " or "))}
}

func checkRoute(lab *topo.Lab, c *spec.RouteCheck) Outcome {
	n, err := nodeOf(lab, c.Node)
	if err != nil {
		return Outcome{Detail: err.Error()}
	}
	h := n.Netlink()
	family := netlink.FAMILY_V4
	if c.Dst.Prefix.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return Outcome{Detail: fmt.Sprintf("list routes of %s: %v", c.Node, err)}
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
		if match == nil {
			return Outcome{Held: true, Detail: fmt.Sprintf("%s has no route to %s", c.Node, c.Dst)}
		}
		return Outcome{Detail: fmt.Sprintf("%s routes %s: %s", c.Node, c.Dst, match)}
	}
	if match == nil {
		return Outcome{Detail: fmt.Sprintf("%s has no route to %s", c.Node, c.Dst)}
	}
	held := true
	if c.Via.IsValid() {
		gw, _ := netip.AddrFromSlice(match.Gw)
		held = held && gw.Unmap() == c.Via
	}
	if c.Dev != "" {
		l, err := h.LinkByIndex(match.LinkIndex)
		held = held && err == nil && l.Attrs().Name == c.Dev
	}
	return Outcome{Held: held, Detail: fmt.Sprintf("%s routes %s: %s", c.Node, c.Dst, match)}
}
