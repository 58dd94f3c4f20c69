package fault

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"lvslab/capture"
	"lvslab/internal/netns"
	"lvslab/sim/spec"
)

// The userspace delay wire: delay on a kernel without netem.
//
// In the segment's namespace the node interface's bridge port P leaves
// the bridge, and a new veth pair takes its place: one end, P.dbr, joins
// br0 with P's MTU and bridge port flags; the other end, P.dfw, stays
// outside the bridge (dw<index>.br and .fw when P's name is too long for
// the suffix). Two lanes of a delay line (delayline.go) copy every
// frame between P and P.dfw, through AF_PACKET ports opened inside the
// namespace:
//
//	node ── eth0 ═veth═ P ⇄ [lvslab] ⇄ P.dfw ═veth═ P.dbr ── br0
//
// The node's interface keeps its carrier, addresses and MAC, and its
// bridge port keeps its name, alias and index, so other faults still find
// and act on it: link.down on P still cuts the node off, rate and loss or
// blackhole towards the node (P's egress) still apply to what the wire
// sends through P. The one hook the wire would slip past is P's ingress
// (what the node sends): packet taps run before it. So while a wire is in,
// the ingress chains of blackhole and loss on P are mirrored onto P.dfw's
// egress, in a table of the wire's own (lvslab_wire_<index>).
//
// Undoing it stops the lanes (frames still queued are dropped, as removing
// a netem qdisc drops its queue), deletes the pair and puts P back on the
// bridge with its flags.

// wire is one userspace delay wire in place.
type wire struct {
	ref    ifaceRef
	seg    *segmentNS
	key    rootKey
	port   netlink.Link // P, as it was
	master int          // its bridge
	prot   netlink.Protinfo
	br, fw string // the new pair: on the bridge, towards the forwarder
	table  string // nft table mirroring P's ingress chains, when needed
	line   *delayLine
	at     string // where, for event details

	fwReady  bool // the forwarder end exists (guarded by labActor.wireMu)
	mirrored bool // table exists (guarded by labActor.nftMu)
}

// wireNames names the pair after the port, within the 15 bytes a name may
// have.
func wireNames(port string, index int) (br, fw string) {
	if len(port) <= 11 {
		return port + ".dbr", port + ".dfw"
	}
	return fmt.Sprintf("dw%d.br", index), fmt.Sprintf("dw%d.fw", index)
}

// delay adds latency: netem where the kernel has it, else the userspace
// wire.
func (a *labActor) delay(ctx context.Context, e *spec.Event) (undoFunc, string, error) {
	if a.netem {
		return a.qdisc(e)
	}
	refs, err := a.interfaces(e.Target)
	if err != nil {
		return nil, "", err
	}
	var wires []*wire
	undo := func(ctx context.Context) error {
		var errs []error
		for i := len(wires) - 1; i >= 0; i-- {
			st, err := a.removeWire(ctx, wires[i])
			errs = append(errs, err)
			a.log.Info("delay wire removed", "event", e.Name, "where", wires[i].at, "stats", st)
		}
		return errors.Join(errs...)
	}
	for _, r := range refs {
		p, err := a.port(r)
		if err != nil {
			return nil, "", errors.Join(err, undo(context.WithoutCancel(ctx)))
		}
		w, err := a.addWire(ctx, e, p)
		if err != nil {
			return nil, "", errors.Join(err, undo(context.WithoutCancel(ctx)))
		}
		wires = append(wires, w)
	}
	var where []string
	for _, w := range wires {
		where = append(where, w.at)
	}
	jitter := ""
	if e.Jitter > 0 {
		jitter = " ± " + e.Jitter.String()
	}
	return undo, fmt.Sprintf("delay %s%s %s: userspace delay wire on %s",
		e.Delay, jitter, direction(e.Direction), strings.Join(where, ", ")), nil
}

// laneSeed derives a lane's jitter seed from the scenario seed, so a run
// draws the same sequence of delays for the same frames in the same order.
func laneSeed(seed int64, event string, r ifaceRef, dir string) (uint64, uint64) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s", event, r, dir)
	return uint64(seed), h.Sum64()
}

// addWire puts a delay wire in front of bridge port p.
func (a *labActor) addWire(ctx context.Context, e *spec.Event, p *port) (_ *wire, err error) {
	seg, attrs := p.seg, p.link.Attrs()
	if attrs.MasterIndex == 0 {
		return nil, fmt.Errorf("bridge port %s of %s is on no bridge", p.name(), p.ref)
	}
	key := rootKey{seg.Name(), attrs.Index}
	a.wireMu.Lock()
	if owner, busy := a.wires[key]; busy {
		a.wireMu.Unlock()
		return nil, fmt.Errorf("%s is already delayed by timeline %s", p.ref, owner.event)
	}
	w := &wire{ref: p.ref, seg: seg, key: key, port: p.link, master: attrs.MasterIndex}
	a.wires[key] = wireOwner{event: e.Name, w: w}
	a.wireMu.Unlock()

	// Undo what was done so far when a later step fails.
	var undo []func() error
	defer func() {
		if err == nil {
			return
		}
		// No filter may mirror onto the pair from here on.
		a.wireMu.Lock()
		w.fwReady = false
		a.wireMu.Unlock()
		for i := len(undo) - 1; i >= 0; i-- {
			err = errors.Join(err, undo[i]())
		}
		a.wireMu.Lock()
		delete(a.wires, key)
		a.wireMu.Unlock()
	}()

	// br0 never filters VLANs (sim/topo), so there is no port VLAN
	// membership to carry over; the port flags are.
	h := seg.Netlink()
	if w.prot, err = h.LinkGetProtinfo(p.link); err != nil {
		return nil, fmt.Errorf("bridge port flags of %s: %w", p.name(), err)
	}
	w.br, w.fw = wireNames(p.name(), attrs.Index)
	w.table = fmt.Sprintf("lvslab_wire_%d", attrs.Index)
	w.at = fmt.Sprintf("%s (bridge port %s replaced on the bridge by %s, frames forwarded %s <-> %s)", p.ref, p.name(), w.br, p.name(), w.fw)

	la := netlink.NewLinkAttrs()
	la.Name = w.br
	la.MTU = attrs.MTU
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: w.fw, PeerMTU: uint32(attrs.MTU)}); err != nil {
		return nil, fmt.Errorf("veth %s/%s in segment %s: %w", w.br, w.fw, seg.segment, err)
	}
	undo = append(undo, func() error { return delLink(h, w.br) })
	br, err := netns.Retry(func() (netlink.Link, error) { return h.LinkByName(w.br) })
	if err != nil {
		return nil, fmt.Errorf("veth %s: %w", w.br, err)
	}
	fw, err := netns.Retry(func() (netlink.Link, error) { return h.LinkByName(w.fw) })
	if err != nil {
		return nil, fmt.Errorf("veth %s: %w", w.fw, err)
	}
	a.wireMu.Lock()
	w.fwReady = true
	a.wireMu.Unlock()
	// Say in `ip link` what they are; never the port's own alias, by
	// which faults find the port.
	for _, l := range []struct {
		link netlink.Link
		side string
	}{{br, "bridge side"}, {fw, "forwarder side"}} {
		if err := h.LinkSetAlias(l.link, fmt.Sprintf("lvslab delay wire of %s, %s", p.ref, l.side)); err != nil {
			return nil, fmt.Errorf("alias of %s: %w", l.link.Attrs().Name, err)
		}
	}

	var nodePort, fwPort *capture.AFPacket
	err = seg.Do(func() error {
		// No IPv6 on the pair (a lab with IPv6 leaves it on in the
		// segment): its link-local address, DAD and MLD would be frames
		// on the segment that no scenario sent.
		for _, n := range []string{w.br, w.fw} {
			err := netns.WriteSysctl("net/ipv6/conf/"+n+"/disable_ipv6", "1")
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("disable IPv6 on %s: %w", n, err)
			}
		}
		cfg := capture.Config{
			// Promiscuous: veth delivers every frame anyway, but the
			// bridge's promiscuity goes with P leaving it, and frames for
			// other hosts must not depend on a driver detail.
			Promisc: true,
			TXMode:  capture.TXSendmmsg, // plain sends: no ring memory, per-frame errors
			// A 64 KiB offload frame fits a block; 2 MiB per ring.
			BlockSize: 128 << 10,
			Blocks:    16,
		}
		var err error
		cfg.Ifindex = attrs.Index
		if nodePort, err = capture.Open(cfg); err != nil {
			return err
		}
		cfg.Ifindex = fw.Attrs().Index
		if fwPort, err = capture.Open(cfg); err != nil {
			nodePort.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", seg.segment, err)
	}
	closePorts := func() error { return errors.Join(nodePort.Close(), fwPort.Close()) }
	undo = append(undo, closePorts)

	if err := a.syncWireTable(ctx, w); err != nil {
		return nil, err
	}
	undo = append(undo, func() error { return a.dropWireTable(context.Background(), w) })

	// The swap. P's frames read before it went through the bridge
	// already: the lanes drop what was received before since.
	if err := h.LinkSetNoMaster(p.link); err != nil {
		return nil, fmt.Errorf("take %s off the bridge: %w", p.name(), err)
	}
	since := time.Now().UnixNano()
	undo = append(undo, func() error {
		// The pair first, as in removeWire, so P gets its port number
		// back (the later delLink finds nothing to do).
		return errors.Join(delLink(h, w.br), a.restorePort(w))
	})
	if err := h.LinkSetMasterByIndex(br, w.master); err != nil {
		return nil, fmt.Errorf("put %s on the bridge: %w", w.br, err)
	}
	if err := setProtinfo(h, br, w.prot); err != nil {
		return nil, fmt.Errorf("%s: %w", w.br, err)
	}
	for _, l := range []netlink.Link{fw, br} {
		if err := h.LinkSetUp(l); err != nil {
			return nil, fmt.Errorf("%s up: %w", l.Attrs().Name, err)
		}
	}

	if a.wireFault != nil {
		if err := a.wireFault("up"); err != nil {
			return nil, err
		}
	}

	mtu := attrs.MTU
	egress, ingress := laneConfig{Name: p.ref.String() + " egress", In: nodePort, Out: fwPort, MTU: mtu, Since: since},
		laneConfig{Name: p.ref.String() + " ingress", In: fwPort, Out: nodePort, MTU: mtu, Since: since}
	for _, l := range []*laneConfig{&egress, &ingress} {
		dir := strings.Fields(l.Name)[1]
		if e.Direction == "" || e.Direction == "both" || string(e.Direction) == dir {
			l.Delay, l.Jitter = e.Delay.D(), e.Jitter.D()
			l.Rand = rand.New(rand.NewPCG(laneSeed(a.seed, e.Name, p.ref, dir)))
		}
	}
	w.line = startLine(a.log.With("event", e.Name), []capture.Port{nodePort, fwPort}, egress, ingress)
	return w, nil
}

// removeWire stops a wire and puts its port back as it was.
func (a *labActor) removeWire(ctx context.Context, w *wire) (lineStats, error) {
	a.wireMu.Lock()
	w.fwReady = false
	a.wireMu.Unlock()
	var errs []error
	errs = append(errs, w.line.close())
	var st lineStats
	for _, l := range w.line.lanes {
		s := l.stats()
		st.Frames += s.Frames
		st.Segmented += s.Segmented
		st.Overflow += s.Overflow
		st.Unfit += s.Unfit
		st.Stale += s.Stale
		st.WriteErrs += s.WriteErrs
		st.Unsent += s.Unsent
		st.MaxQueued = max(st.MaxQueued, s.MaxQueued)
		st.ReadErrors += s.ReadErrors
	}
	// The pair goes before P rejoins: P then gets back the bridge port
	// number the pair's end had taken over from it (the lowest free one).
	errs = append(errs, a.dropWireTable(ctx, w), delLink(w.seg.Netlink(), w.br), a.restorePort(w))
	a.wireMu.Lock()
	delete(a.wires, w.key)
	a.wireMu.Unlock()
	return st, errors.Join(errs...)
}

// restorePort puts P back on its bridge with the flags it had (joining a
// bridge resets them).
func (a *labActor) restorePort(w *wire) error {
	h := w.seg.Netlink()
	cur, err := netns.Retry(func() (netlink.Link, error) { return h.LinkByIndex(w.port.Attrs().Index) })
	if err != nil {
		return fmt.Errorf("bridge port %s: %w", w.port.Attrs().Name, err)
	}
	if cur.Attrs().MasterIndex != w.master {
		if err := h.LinkSetMasterByIndex(cur, w.master); err != nil {
			return fmt.Errorf("put %s back on the bridge: %w", cur.Attrs().Name, err)
		}
	}
	if err := setProtinfo(h, cur, w.prot); err != nil {
		return fmt.Errorf("%s: %w", cur.Attrs().Name, err)
	}
	return nil
}

func delLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// setProtinfo sets the bridge port flags of l that differ from want.
func setProtinfo(h *netlink.Handle, l netlink.Link, want netlink.Protinfo) error {
	have, err := h.LinkGetProtinfo(l)
	if err != nil {
		return fmt.Errorf("bridge port flags: %w", err)
	}
	flags := []struct {
		name       string
		have, want bool
		set        func(netlink.Link, bool) error
	}{
		{"hairpin", have.Hairpin, want.Hairpin, h.LinkSetHairpin},
		{"guard", have.Guard, want.Guard, h.LinkSetGuard},
		{"fastleave", have.FastLeave, want.FastLeave, h.LinkSetFastLeave},
		{"root_block", have.RootBlock, want.RootBlock, h.LinkSetRootBlock},
		{"learning", have.Learning, want.Learning, h.LinkSetLearning},
		{"flood", have.Flood, want.Flood, h.LinkSetFlood},
		{"proxy_arp", have.ProxyArp, want.ProxyArp, h.LinkSetBrProxyArp},
		{"proxy_arp_wifi", have.ProxyArpWiFi, want.ProxyArpWiFi, h.LinkSetBrProxyArpWiFi},
		{"isolated", have.Isolated, want.Isolated, h.LinkSetIsolated},
		{"neigh_suppress", have.NeighSuppress, want.NeighSuppress, h.LinkSetBrNeighSuppress},
	}
	var errs []error
	for _, f := range flags {
		if f.have != f.want {
			if err := f.set(l, f.want); err != nil {
				errs = append(errs, fmt.Errorf("bridge port flag %s %v: %w", f.name, f.want, err))
			}
		}
	}
	return errors.Join(errs...)
}

// wireOwner is a wire in place and the entry that put it there.
type wireOwner struct {
	event string
	w     *wire
}

// ingressChain is a filter chain on a bridge port's ingress hook, which a
// wire on that port mirrors (see the top of this file).
type ingressChain struct {
	table string // the filter's table, which owns it
	rules []string
}

// noteIngressChains records the ingress chains a filter installed (or,
// with add false, removed) and brings the mirrors of wires on those ports
// up to date.
func (a *labActor) noteIngressChains(ctx context.Context, table string, chains map[rootKey][]string, add bool) error {
	a.wireMu.Lock()
	var touched []*wire
	for key, rules := range chains {
		list := a.ingress[key]
		list = deleteTable(list, table)
		if add {
			list = append(list, ingressChain{table: table, rules: rules})
		}
		if len(list) == 0 {
			delete(a.ingress, key)
		} else {
			a.ingress[key] = list
		}
		if o, ok := a.wires[key]; ok && o.w.fwReady {
			touched = append(touched, o.w)
		}
	}
	a.wireMu.Unlock()
	var errs []error
	for _, w := range touched {
		errs = append(errs, a.syncWireTable(ctx, w))
	}
	return errors.Join(errs...)
}

func deleteTable(list []ingressChain, table string) []ingressChain {
	out := list[:0]
	for _, c := range list {
		if c.table != table {
			out = append(out, c)
		}
	}
	return out
}

// syncWireTable makes the wire's nft table mirror the ingress chains
// recorded for its port onto the forwarder end's egress: the frames the
// node sends leave there, through a hook packet taps do not skip. It reads
// the record when it runs, so the last sync after a change wins.
func (a *labActor) syncWireTable(ctx context.Context, w *wire) error {
	a.nftMu.Lock()
	defer a.nftMu.Unlock()
	a.wireMu.Lock()
	var chains []chainSpec
	if w.fwReady {
		for _, c := range a.ingress[w.key] {
			chains = append(chains, chainSpec{Device: w.fw, Hook: "egress", Rules: c.rules})
		}
	}
	a.wireMu.Unlock()
	if len(chains) == 0 && !w.mirrored {
		return nil // nothing to mirror, nothing mirrored: no nft run per wire
	}
	// Declaring the table first lets the delete succeed when it does not
	// exist; the script is one transaction.
	script := fmt.Sprintf("table netdev %s\ndelete table netdev %s\n", w.table, w.table)
	if len(chains) > 0 {
		script += nftTable(w.table, chains)
	}
	if err := runNft(ctx, w.seg, script); err != nil {
		return fmt.Errorf("segment %s: mirror of the filters on %s: %w", w.seg.segment, w.ref, err)
	}
	w.mirrored = len(chains) > 0
	return nil
}

// dropWireTable removes the wire's mirror table, if it has one.
func (a *labActor) dropWireTable(ctx context.Context, w *wire) error {
	a.nftMu.Lock()
	defer a.nftMu.Unlock()
	if !w.mirrored {
		return nil
	}
	if err := runNft(ctx, w.seg, fmt.Sprintf("table netdev %s\ndelete table netdev %s\n", w.table, w.table)); err != nil {
		return fmt.Errorf("segment %s: remove %s: %w", w.seg.segment, w.table, err)
	}
	w.mirrored = false
	return nil
}
