package fault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lvslab/internal/netns"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// segmentNS is a segment's hidden namespace, holding its bridge and one
// port per attached interface.
type segmentNS struct {
	segment string
	*netns.NS
}

// segment opens a segment's namespace (once) by its pin.
func (a *labActor) segment(name string) (*segmentNS, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.segs[name]; ok {
		return s, nil
	}
	nsName := topo.NamespaceName(a.lab.Name(), name)
	path := filepath.Join(a.netnsDir, nsName)
	ns, err := netns.Open(path)
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", name, err)
	}
	s := &segmentNS{segment: name, NS: ns}
	a.segs[name] = s
	return s, nil
}

// ifaceRef is one node interface.
type ifaceRef struct{ node, iface string }

func (r ifaceRef) String() string { return r.node + ":" + r.iface }

// interfaces expands a target: node:iface, or every interface of node.
func (a *labActor) interfaces(target string) ([]ifaceRef, error) {
	if n, i, ok := spec.SplitIfaceRef(target); ok {
		return []ifaceRef{{n, i}}, nil
	}
	sn := a.lab.Spec.Node(target)
	if sn == nil {
		return nil, fmt.Errorf("no node %q", target)
	}
	var out []ifaceRef
	for _, ifc := range sn.Interfaces {
		out = append(out, ifaceRef{target, ifc.Name})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("node %s has no interfaces", target)
	}
	return out, nil
}

// segmentInterfaces lists every node interface attached to the segment.
func (a *labActor) segmentInterfaces(segment string) ([]ifaceRef, error) {
	var out []ifaceRef
	for _, n := range a.lab.Spec.Nodes {
		for _, ifc := range n.Interfaces {
			if ifc.Segment == segment {
				out = append(out, ifaceRef{n.Name, ifc.Name})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no node interface on segment %q", segment)
	}
	return out, nil
}

// targets are the interfaces a blackhole or loss acts on: segment: or
// target:.
func (a *labActor) targets(e *spec.Event) ([]ifaceRef, error) {
	if e.Segment != "" {
		return a.segmentInterfaces(e.Segment)
	}
	return a.interfaces(e.Target)
}

// port is the bridge side of a node interface.
type port struct {
	ref  ifaceRef
	seg  *segmentNS
	link netlink.Link
}

func (p *port) name() string { return p.link.Attrs().Name }

// port finds the bridge port of node:iface: topo sets its alias to
// "node:iface".
func (a *labActor) port(r ifaceRef) (*port, error) {
	sn := a.lab.Spec.Node(r.node)
	if sn == nil {
		return nil, fmt.Errorf("no node %q", r.node)
	}
	ifc := sn.Interface(r.iface)
	if ifc == nil {
		return nil, fmt.Errorf("node %s has no interface %q", r.node, r.iface)
	}
	seg, err := a.segment(ifc.Segment)
	if err != nil {
		return nil, err
	}
	links, err := netns.Retry(seg.Netlink().LinkList)
	if err != nil {
		return nil, fmt.Errorf("segment %s: list links: %w", seg.segment, err)
	}
	for _, l := range links {
		if l.Attrs().Alias == r.String() {
			return &port{ref: r, seg: seg, link: l}, nil
		}
	}
	return nil, fmt.Errorf("segment %s has no bridge port for %s", seg.segment, r)
}

// nodeLink is the node side of an interface.
func (a *labActor) nodeLink(r ifaceRef) (*netlink.Handle, netlink.Link, error) {
	n := a.lab.Node(r.node)
	if n == nil {
		return nil, nil, fmt.Errorf("no node %q", r.node)
	}
	h := n.Netlink()
	l, err := netns.Retry(func() (netlink.Link, error) { return h.LinkByName(r.iface) })
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", r, err)
	}
	return h, l, nil
}

func (a *labActor) linkDown(e *spec.Event) (undoFunc, string, error) {
	refs, err := a.interfaces(e.Target)
	if err != nil {
		return nil, "", err
	}
	var downed []*port
	undo := func(context.Context) error {
		var errs []error
		for _, p := range downed {
			if err := p.seg.Netlink().LinkSetUp(p.link); err != nil {
				errs = append(errs, fmt.Errorf("bridge port %s of %s up: %w", p.name(), p.ref, err))
			}
		}
		return errors.Join(errs...)
	}
	var parts []string
	for _, r := range refs {
		p, err := a.port(r)
		if err != nil {
			return nil, "", errors.Join(err, undo(context.Background()))
		}
		if p.link.Attrs().Flags&net.FlagUp == 0 {
			parts = append(parts, fmt.Sprintf("%s already without carrier", r))
			continue
		}
		if err := p.seg.Netlink().LinkSetDown(p.link); err != nil {
			return nil, "", errors.Join(fmt.Errorf("bridge port %s of %s down: %w", p.name(), r, err), undo(context.Background()))
		}
		downed = append(downed, p)
		parts = append(parts, fmt.Sprintf("%s lost carrier (bridge port %s in segment %s down)", r, p.name(), p.seg.segment))
	}
	return undo, strings.Join(parts, "; "), nil
}

func (a *labActor) linkUp(e *spec.Event) (undoFunc, string, error) {
	refs, err := a.interfaces(e.Target)
	if err != nil {
		return nil, "", err
	}
	var parts []string
	for _, r := range refs {
		p, err := a.port(r)
		if err != nil {
			return nil, "", err
		}
		if err := p.seg.Netlink().LinkSetUp(p.link); err != nil {
			return nil, "", fmt.Errorf("bridge port %s of %s up: %w", p.name(), r, err)
		}
		// An interface the spec left down (down: true) comes up too.
		h, l, err := a.nodeLink(r)
		if err != nil {
			return nil, "", err
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			if err := h.LinkSetUp(l); err != nil {
				return nil, "", fmt.Errorf("%s up: %w", r, err)
			}
		}
		parts = append(parts, r.String()+" up with carrier")
	}
	return nil, strings.Join(parts, "; "), nil
}

// filter installs an nftables netdev table per segment on the bridge ports
// of the targets: blackhole, loss and partition.
func (a *labActor) filter(ctx context.Context, e *spec.Event) (undoFunc, string, error) {
	bySeg := map[*segmentNS][]chainSpec{}
	var segs []*segmentNS
	add := func(p *port, c chainSpec) {
		if _, ok := bySeg[p.seg]; !ok {
			segs = append(segs, p.seg)
		}
		bySeg[p.seg] = append(bySeg[p.seg], c)
	}
	var where []string
	// Chains on a port's ingress hook: a delay wire on the port mirrors
	// them (wire.go), since its packet tap reads before that hook.
	ingress := map[rootKey][]string{}
	switch e.Fault {
	case spec.FaultBlackhole, spec.FaultLoss:
		refs, err := a.targets(e)
		if err != nil {
			return nil, "", err
		}
		rule := "drop"
		if e.Fault == spec.FaultLoss {
			rule = lossRule(float64(e.Loss))
		}
		match, err := protoOnly(e.Proto)
		if err != nil {
			return nil, "", err
		}
		if match != "" {
			rule = match + " " + rule
		}
		for _, r := range refs {
			p, err := a.port(r)
			if err != nil {
				return nil, "", err
			}
			for _, hook := range portHooks(e.Direction) {
				add(p, chainSpec{Device: p.name(), Hook: hook, Rules: []string{rule}})
				if hook == "ingress" {
					key := rootKey{p.seg.Name(), p.link.Attrs().Index}
					ingress[key] = append(ingress[key], rule)
				}
			}
			where = append(where, fmt.Sprintf("%s (bridge port %s)", r, p.name()))
		}
	case spec.FaultPartition:
		sides := [2][]ifaceRef{}
		for i, s := range e.Between {
			refs, err := a.interfaces(s)
			if err != nil {
				return nil, "", err
			}
			sides[i] = refs
		}
		for i := range 2 {
			other, err := a.identity(sides[1-i])
			if err != nil {
				return nil, "", err
			}
			rules, err := partitionRules(other, e.Proto)
			if err != nil {
				return nil, "", err
			}
			for _, r := range sides[i] {
				p, err := a.port(r)
				if err != nil {
					return nil, "", err
				}
				// The port's egress is what reaches this side: drop
				// what comes from the other side.
				add(p, chainSpec{Device: p.name(), Hook: "egress", Rules: rules})
				where = append(where, fmt.Sprintf("%s (bridge port %s) drops from %s", r, p.name(), e.Between[1-i]))
			}
		}
	default:
		return nil, "", fmt.Errorf("not a filter fault: %s", e.Fault)
	}
	table := tableName(e.Name)
	var installed []*segmentNS
	undo := func(ctx context.Context) error {
		var errs []error
		if len(ingress) > 0 {
			errs = append(errs, a.noteIngressChains(ctx, table, ingress, false))
		}
		for _, s := range installed {
			if err := runNft(ctx, s, "delete table netdev "+table+"\n"); err != nil {
				errs = append(errs, fmt.Errorf("segment %s: %w", s.segment, err))
			}
		}
		return errors.Join(errs...)
	}
	for _, s := range segs {
		if err := runNft(ctx, s, nftTable(table, bySeg[s])); err != nil {
			err = fmt.Errorf("segment %s: %w", s.segment, err)
			return nil, "", errors.Join(err, undo(context.WithoutCancel(ctx)))
		}
		installed = append(installed, s)
	}
	if len(ingress) > 0 {
		if err := a.noteIngressChains(ctx, table, ingress, true); err != nil {
			return nil, "", errors.Join(err, undo(context.WithoutCancel(ctx)))
		}
	}
	what := string(e.Fault)
	switch e.Fault {
	case spec.FaultLoss:
		what = fmt.Sprintf("loss %s %s", e.Loss, direction(e.Direction))
	case spec.FaultBlackhole:
		what = "blackhole " + direction(e.Direction)
	}
	switch {
	case e.Fault == spec.FaultPartition:
	case e.Segment != "" && e.Proto != "":
		what += " proto " + e.Proto + " on segment " + e.Segment
	case e.Segment != "":
		what += " on segment " + e.Segment
	case e.Proto != "":
		what += " proto " + e.Proto
	}
	switch e.Fault {
	case spec.FaultPartition:
		what = "partition " + strings.Join(e.Between, " | ")
		if e.Proto != "" {
			what += " proto " + e.Proto
		}
	}
	return undo, fmt.Sprintf("%s: nft table netdev %s on %s", what, table, strings.Join(where, ", ")), nil
}

func direction(d spec.Direction) string {
	if d == "" {
		return "both"
	}
	return string(d)
}

// portHooks maps a direction seen from the node to the hooks of its bridge
// port: the node's egress arrives at the port (ingress hook), the node's
// ingress leaves through it (egress hook).
func portHooks(d spec.Direction) []string {
	switch d {
	case "egress":
		return []string{"ingress"}
	case "ingress":
		return []string{"egress"}
	}
	return []string{"ingress", "egress"}
}

// sideIdentity is what frames from one side of a partition carry: its
// interfaces' hardware addresses and the addresses on those interfaces.
type sideIdentity struct {
	MACs  []string
	Addrs []netip.Addr
}

// identity reads the live hardware and interface addresses of refs (not
// lo: a DR VIP there is shared with other hosts).
func (a *labActor) identity(refs []ifaceRef) (sideIdentity, error) {
	var id sideIdentity
	for _, r := range refs {
		h, l, err := a.nodeLink(r)
		if err != nil {
			return id, err
		}
		if hw := l.Attrs().HardwareAddr; len(hw) > 0 {
			id.MACs = append(id.MACs, hw.String())
		}
		addrs, err := netns.Retry(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
		if err != nil {
			return id, fmt.Errorf("addresses of %s: %w", r, err)
		}
		for _, ad := range addrs {
			ip, ok := netip.AddrFromSlice(ad.IP)
			if !ok || ip.IsLinkLocalUnicast() {
				continue
			}
			id.Addrs = append(id.Addrs, ip.Unmap())
		}
	}
	return id, nil
}

// runNft feeds a script to nft inside a segment namespace.
func runNft(ctx context.Context, s *segmentNS, script string) error {
	var argv []string
	if p, err := exec.LookPath("nsenter"); err == nil {
		argv = []string{p, "--net=" + s.Path(), "nft", "-f", "-"}
	} else {
		argv = []string{"ip", "netns", "exec", s.Name(), "nft", "-f", "-"}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("nft -f - in %s: %w: %s", s.Name(), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// rootKey names a root qdisc slot: namespace and interface index.
type rootKey struct {
	ns    string
	index int
}

// qdisc installs tbf (rate) or netem (delay) as the root qdisc: egress on
// the node's interface, ingress on its bridge port.
func (a *labActor) qdisc(e *spec.Event) (undoFunc, string, error) {
	refs, err := a.interfaces(e.Target)
	if err != nil {
		return nil, "", err
	}
	type installed struct {
		h   *netlink.Handle
		q   netlink.Qdisc
		key rootKey
	}
	var done []installed
	undo := func(context.Context) error {
		var errs []error
		for i := len(done) - 1; i >= 0; i-- {
			d := done[i]
			if err := d.h.QdiscDel(d.q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("remove %s qdisc: %w", d.q.Type(), err))
			}
			a.mu.Lock()
			delete(a.roots, d.key)
			a.mu.Unlock()
		}
		return errors.Join(errs...)
	}
	fail := func(err error) (undoFunc, string, error) {
		return nil, "", errors.Join(err, undo(context.Background()))
	}
	var where []string
	for _, r := range refs {
		for _, side := range qdiscSides(e.Direction) {
			var h *netlink.Handle
			var l netlink.Link
			var ns, what string
			if side == "egress" {
				var err error
				if h, l, err = a.nodeLink(r); err != nil {
					return fail(err)
				}
				ns, what = a.lab.Node(r.node).Namespace(), r.String()+" egress"
			} else {
				p, err := a.port(r)
				if err != nil {
					return fail(err)
				}
				h, l, ns = p.seg.Netlink(), p.link, p.seg.Name()
				what = fmt.Sprintf("%s ingress (bridge port %s)", r, p.name())
			}
			key := rootKey{ns, l.Attrs().Index}
			a.mu.Lock()
			owner, busy := a.roots[key]
			if !busy {
				a.roots[key] = e.Name
			}
			a.mu.Unlock()
			if busy {
				return fail(fmt.Errorf("%s is already shaped by timeline %s", what, owner))
			}
			if err := checkRootFree(h, l); err != nil {
				a.mu.Lock()
				delete(a.roots, key)
				a.mu.Unlock()
				return fail(fmt.Errorf("%s: %w", what, err))
			}
			q, err := makeQdisc(e, l.Attrs().Index)
			if err == nil {
				err = h.QdiscAdd(q)
			}
			if err != nil {
				a.mu.Lock()
				delete(a.roots, key)
				a.mu.Unlock()
				return fail(fmt.Errorf("%s: add %s qdisc: %w", what, e.Fault, err))
			}
			done = append(done, installed{h, q, key})
			where = append(where, what)
		}
	}
	var what string
	if e.Fault == spec.FaultRate {
		what = fmt.Sprintf("tbf rate %s burst %s", e.Rate, burstOf(e))
	} else {
		what = fmt.Sprintf("netem delay %s jitter %s", e.Delay, e.Jitter)
	}
	return undo, what + " on " + strings.Join(where, ", "), nil
}

// qdiscSides maps a direction (seen from the node) to where the qdisc goes.
func qdiscSides(d spec.Direction) []string {
	switch d {
	case "egress", "ingress":
		return []string{string(d)}
	}
	return []string{"egress", "ingress"}
}

// checkRootFree refuses to replace a root qdisc someone configured (a veth
// starts with noqueue, which is not a configured one).
func checkRootFree(h *netlink.Handle, l netlink.Link) error {
	qs, err := netns.Retry(func() ([]netlink.Qdisc, error) { return h.QdiscList(l) })
	if err != nil {
		return fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qs {
		at := q.Attrs()
		if at.Parent == netlink.HANDLE_ROOT && at.Handle != 0 && q.Type() != "noqueue" {
			return fmt.Errorf("already has a root %s qdisc", q.Type())
		}
	}
	return nil
}

// qdiscHandle is the handle of the root qdiscs the stage installs (1fa:,
// an arbitrary major number that makes them recognisable in tc output).
const qdiscHandle uint32 = 0x1fa << 16

const defaultBurst = 32 << 10

func burstOf(e *spec.Event) spec.Size {
	if e.Burst != 0 {
		return e.Burst
	}
	return defaultBurst
}

func makeQdisc(e *spec.Event, index int) (netlink.Qdisc, error) {
	attrs := netlink.QdiscAttrs{LinkIndex: index, Handle: qdiscHandle, Parent: netlink.HANDLE_ROOT}
	switch e.Fault {
	case spec.FaultRate:
		return tbfQdisc(attrs, e.Rate.BitsPerSecond(), burstOf(e).Bytes())
	case spec.FaultDelay:
		return netlink.NewNetem(attrs, netlink.NetemQdiscAttrs{
			Latency: uint32(e.Delay.D().Microseconds()),
			Jitter:  uint32(e.Jitter.D().Microseconds()),
		}), nil
	}
	return nil, fmt.Errorf("not a qdisc fault: %s", e.Fault)
}

// tbfQdisc is tc's "tbf rate R burst B latency 100ms".
func tbfQdisc(attrs netlink.QdiscAttrs, bits, burst uint64) (*netlink.Tbf, error) {
	rate := bits / 8 // the kernel's rate spec is in bytes per second
	if rate == 0 {
		return nil, fmt.Errorf("rate %d bit/s is below one byte per second", bits)
	}
	if burst > 1<<31 {
		return nil, fmt.Errorf("burst %d bytes is too large", burst)
	}
	return &netlink.Tbf{
		QdiscAttrs: attrs,
		Rate:       rate,
		Buffer:     netlink.Xmittime(rate, uint32(burst)),
		// Room for 100 ms of queue at the rate, as tc's latency would
		// give: a transfer slows down instead of losing every burst.
		Limit: uint32(min(burst+rate/10, 1<<31)),
	}, nil
}

func neighFamily(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// arpFlush removes neighbour entries of a node: of one interface (dev:) or
// all, of one address (ip:) or all. Unlike `ip neigh flush` it also removes
// permanent entries (a neigh.wrong, a static entry of the spec): the
// scenarios flush to make the node resolve again. NOARP entries stay.
func (a *labActor) arpFlush(e *spec.Event) (undoFunc, string, error) {
	n := a.lab.Node(e.Target)
	if n == nil {
		return nil, "", fmt.Errorf("no node %s", e.Target)
	}
	h := n.Netlink()
	index := 0
	if e.Dev != "" {
		l, err := netns.Retry(func() (netlink.Link, error) { return h.LinkByName(e.Dev) })
		if err != nil {
			return nil, "", fmt.Errorf("%s:%s: %w", e.Target, e.Dev, err)
		}
		index = l.Attrs().Index
	}
	families := []int{netlink.FAMILY_V4, netlink.FAMILY_V6}
	if e.IP.IsValid() {
		families = []int{neighFamily(e.IP)}
	}
	var flushed []string
	var errs []error
	for _, fam := range families {
		list, err := netns.Retry(func() ([]netlink.Neigh, error) { return h.NeighList(index, fam) })
		if err != nil {
			return nil, "", fmt.Errorf("list neighbours of %s: %w", e.Target, err)
		}
		for _, ne := range list {
			ip, ok := netip.AddrFromSlice(ne.IP)
			if !ok || ne.State&netlink.NUD_NOARP != 0 {
				continue
			}
			if e.IP.IsValid() && ip.Unmap() != e.IP {
				continue
			}
			if err := h.NeighDel(&ne); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete neighbour %s: %w", ip, err))
				continue
			}
			flushed = append(flushed, describeNeigh(h, ne))
		}
	}
	if len(errs) > 0 {
		return nil, "", errors.Join(errs...)
	}
	scope := e.Target
	if e.Dev != "" {
		scope += ":" + e.Dev
	}
	if e.IP.IsValid() {
		scope += " " + e.IP.String()
	}
	if len(flushed) == 0 {
		return nil, "flushed " + scope + ": no entries", nil
	}
	return nil, fmt.Sprintf("flushed %s: %s", scope, strings.Join(flushed, "; ")), nil
}

func describeNeigh(h *netlink.Handle, ne netlink.Neigh) string {
	dev := fmt.Sprint(ne.LinkIndex)
	if l, err := h.LinkByIndex(ne.LinkIndex); err == nil {
		dev = l.Attrs().Name
	}
	s := fmt.Sprintf("%s dev %s", net.IP(ne.IP), dev)
	if len(ne.HardwareAddr) > 0 {
		s += " lladdr " + ne.HardwareAddr.String()
	}
	return s + " " + neighState(ne.State)
}

func neighState(s int) string {
	names := []struct {
		bit  int
		name string
	}{
		{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"},
		{netlink.NUD_STALE, "STALE"}, {netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"},
		{netlink.NUD_FAILED, "FAILED"}, {netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"},
	}
	var out []string
	for _, n := range names {
		if s&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return "NONE"
	}
	return strings.Join(out, ",")
}

// neighDev is the interface of node whose connected subnet holds ip.
func neighDev(h *netlink.Handle, sn *spec.Node, ip netip.Addr) (string, error) {
	links, err := netns.Retry(h.LinkList)
	if err != nil {
		return "", err
	}
	for _, l := range links {
		addrs, err := netns.Retry(func() ([]netlink.Addr, error) { return h.AddrList(l, neighFamily(ip)) })
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			a, ok := netip.AddrFromSlice(ad.IP)
			if !ok || ad.IPNet == nil || l.Attrs().Name == "lo" {
				continue
			}
			bits, _ := ad.Mask.Size()
			if netip.PrefixFrom(a.Unmap(), bits).Masked().Contains(ip) {
				return l.Attrs().Name, nil
			}
		}
	}
	if sn != nil {
		for _, ifc := range sn.Interfaces {
			for _, p := range ifc.Addresses {
				if p.Masked().Contains(ip) {
					return ifc.Name, nil
				}
			}
		}
	}
	return "", fmt.Errorf("no interface of %s is on a subnet holding %s (give dev:)", sn.Name, ip)
}

// neighWrong installs a permanent neighbour entry ip -> a wrong hardware
// address (given, or the live one of node:interface). Undo puts back what
// was there: a permanent entry as it was, a learned one as STALE (so the
// kernel checks it again), nothing as nothing; an entry someone changed
// meanwhile is left alone.
func (a *labActor) neighWrong(e *spec.Event) (undoFunc, string, error) {
	n := a.lab.Node(e.Target)
	if n == nil {
		return nil, "", fmt.Errorf("no node %s", e.Target)
	}
	h := n.Netlink()
	var mac net.HardwareAddr
	macFrom := ""
	if e.MACOf != "" {
		node, iface, _ := spec.SplitIfaceRef(e.MACOf)
		if _, l, err := a.nodeLink(ifaceRef{node, iface}); err == nil {
			mac = l.Attrs().HardwareAddr
		} else if m, serr := a.lab.Spec.MACOf(e.MACOf); serr == nil {
			mac = m.HardwareAddr()
		} else {
			return nil, "", fmt.Errorf("mac_of %s: %w", e.MACOf, err)
		}
		macFrom = " (" + e.MACOf + ")"
	} else {
		mac = e.MAC.HardwareAddr()
	}
	if len(mac) == 0 {
		return nil, "", errors.New("neigh.wrong needs mac or mac_of")
	}
	dev := e.Dev
	if dev == "" {
		var err error
		if dev, err = neighDev(h, a.lab.Spec.Node(e.Target), e.IP); err != nil {
			return nil, "", err
		}
	}
	l, err := netns.Retry(func() (netlink.Link, error) { return h.LinkByName(dev) })
	if err != nil {
		return nil, "", fmt.Errorf("%s:%s: %w", e.Target, dev, err)
	}
	prev, err := findNeigh(h, l.Attrs().Index, e.IP)
	if err != nil {
		return nil, "", err
	}
	wrong := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: neighFamily(e.IP), State: netlink.NUD_PERMANENT,
		IP: e.IP.AsSlice(), HardwareAddr: mac}
	if err := h.NeighSet(wrong); err != nil {
		return nil, "", fmt.Errorf("neighbour %s lladdr %s dev %s: %w", e.IP, mac, dev, err)
	}
	undo := func(context.Context) error {
		cur, err := findNeigh(h, wrong.LinkIndex, e.IP)
		if err != nil {
			return err
		}
		if cur == nil || cur.State&netlink.NUD_PERMANENT == 0 || cur.HardwareAddr.String() != mac.String() {
			return nil // flushed or replaced since: not ours any more
		}
		switch {
		case prev != nil && prev.State&netlink.NUD_PERMANENT != 0:
			return h.NeighSet(prev)
		case prev != nil && len(prev.HardwareAddr) > 0:
			back := *prev
			back.State = netlink.NUD_STALE
			return h.NeighSet(&back)
		}
		if err := h.NeighDel(wrong); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
		return nil
	}
	was := "no entry before"
	if prev != nil {
		was = "was " + describeNeigh(h, *prev)
	}
	return undo, fmt.Sprintf("%s: %s lladdr %s%s dev %s PERMANENT (%s)", e.Target, e.IP, mac, macFrom, dev, was), nil
}

// findNeigh returns the entry for ip on the interface, or nil.
func findNeigh(h *netlink.Handle, index int, ip netip.Addr) (*netlink.Neigh, error) {
	list, err := netns.Retry(func() ([]netlink.Neigh, error) { return h.NeighList(index, neighFamily(ip)) })
	if err != nil {
		return nil, fmt.Errorf("list neighbours: %w", err)
	}
	i := slices.IndexFunc(list, func(ne netlink.Neigh) bool {
		a, ok := netip.AddrFromSlice(ne.IP)
		return ok && a.Unmap() == ip
	})
	if i < 0 {
		return nil, nil
	}
	ne := list[i]
	if ne.Family == 0 {
		ne.Family = neighFamily(ip)
	}
	return &ne, nil
}
