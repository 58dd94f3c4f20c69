// Package topo builds a resolved scenario (sim/spec) into network
// namespaces and tears it down again:
//
//   - one hidden namespace per segment, holding a bridge (br0);
//   - one namespace per node; each interface is a veth whose peer is a port
//     of its segment's bridge, so every interface has an end the lab
//     controls (carrier, impairments, per-port capture);
//   - addresses, routes, neighbours, sysctls, MTU and offloads;
//   - files in a per-node directory, processes started in order and checked
//     for readiness.
//
// Everything is created through netlink handles bound to each namespace;
// only sysctls and ethtool ioctls switch a (locked, discarded) thread into a
// namespace. Nothing is created in the root namespace. Processes are started
// with `ip netns exec`, see proc.go. A registry on disk (registry.go) lets
// Clean remove a lab whose lvslab died.
package topo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"lvslab/internal/netns"
	"lvslab/sim/spec"
)

// Options say where a lab lives and what it runs.
type Options struct {
	// StateDir holds the registry (DefaultStateDir if empty).
	StateDir string
	// RunDir holds the node directories and process logs (default
	// <StateDir>/<lab>). It is removed by Down and Clean only if it is
	// under StateDir.
	RunDir string
	// BinDir is searched first for lvsd, lvsadm, lvsrs and every
	// process's program, and put first in the processes' PATH.
	BinDir string
	// Self is the lvslab binary that runs built-in services
	// (`lvslab service KIND ...`); default os.Executable().
	Self string
	// Mode is ModeRun (the lab belongs to this process) or ModeUp.
	Mode string
	// NoProcesses builds the network only.
	NoProcesses bool
	// NetnsDir is where namespaces are pinned (DefaultNetnsDir if empty);
	// it must be iproute2's for `ip netns exec` to find them.
	NetnsDir string
	Logger   *slog.Logger
}

func (o Options) withDefaults(lab string) (Options, error) {
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.RunDir == "" {
		o.RunDir = filepath.Join(o.StateDir, lab)
	}
	if o.NetnsDir == "" {
		o.NetnsDir = DefaultNetnsDir
	}
	if o.Mode == "" {
		o.Mode = ModeRun
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Self == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("find the lvslab binary: %w", err)
		}
		o.Self = exe
	}
	var err error
	if o.RunDir, err = filepath.Abs(o.RunDir); err != nil {
		return o, err
	}
	if o.BinDir != "" {
		if o.BinDir, err = filepath.Abs(o.BinDir); err != nil {
			return o, err
		}
	}
	return o, nil
}

// Lab is a built lab.
type Lab struct {
	Spec *spec.Spec
	opts Options
	log  *slog.Logger
	reg  *registry
	lock *labLock

	mu       sync.Mutex // guards rec and procs
	rec      *Record
	segments []*segment
	nodes    []*Node
	procs    []*Process
	closed   bool
}

type segment struct {
	name string
	ns   *netns.NS
	mtu  int
	next int // port counter
}

// Node is one node's namespace in a built lab.
type Node struct {
	Name string
	Dir  string // the node directory (files, logs, cwd of processes)
	ns   *netns.NS
	spec *spec.Node
}

// Namespace is the node's namespace name (for ip netns exec).
func (n *Node) Namespace() string { return n.ns.Name() }

// Do runs fn on a thread inside the node's namespace.
func (n *Node) Do(fn func() error) error { return n.ns.Do(fn) }

// Name is the lab's name.
func (l *Lab) Name() string { return l.Spec.Name }

// RunDir is where node directories and logs are.
func (l *Lab) RunDir() string { return l.opts.RunDir }

// Node returns the built node called name, or nil.
func (l *Lab) Node(name string) *Node {
	for _, n := range l.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Nodes lists the built nodes in file order.
func (l *Lab) Nodes() []*Node { return l.nodes }

// Build creates the lab of a resolved spec. On error everything it created
// is removed again. Leftovers of labs whose lvslab died are removed first.
func Build(ctx context.Context, s *spec.Spec, opts Options) (*Lab, error) {
	opts, err := opts.withDefaults(s.Name)
	if err != nil {
		return nil, err
	}
	if _, err := SweepStale(ctx, opts); err != nil {
		opts.Logger.Warn("removing stale labs", "err", err)
	}
	reg, err := newRegistry(opts.StateDir)
	if err != nil {
		return nil, err
	}
	lock, err := reg.tryLock(s.Name)
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("lab %s is in use by lvslab pid %d", s.Name, reg.holder(s.Name))
	}
	if err != nil {
		return nil, err
	}
	if old, err := reg.load(s.Name); err == nil {
		if old.Mode == ModeUp && old.State == StateUp {
			lock.release()
			return nil, fmt.Errorf("lab %s is up (since %s): lvslab down %s first", s.Name, old.Created.Format(time.TimeOnly), s.Name)
		}
		// A dead owner's leftovers that SweepStale could not take (it
		// raced with us for the lock): ours now.
		if err := destroyRecord(ctx, old, opts.Logger); err != nil {
			lock.release()
			return nil, fmt.Errorf("remove the previous lab %s: %w", s.Name, err)
		}
	}
	l := &Lab{Spec: s, opts: opts, log: opts.Logger.With("lab", s.Name), reg: reg, lock: lock}
	l.rec = &Record{
		Lab: s.Name, Spec: s.File, Mode: opts.Mode, State: StateBuilding, Owner: os.Getpid(),
		Created: time.Now(), RunDir: opts.RunDir, BinDir: opts.BinDir, NetnsDir: opts.NetnsDir,
	}
	// The plan goes on disk before anything exists, so a crash at any
	// point leaves a record naming all of it.
	for _, sg := range s.Segments {
		l.rec.Namespaces = append(l.rec.Namespaces, NSRecord{Name: NamespaceName(s.Name, sg.Name), Kind: "segment", Of: sg.Name})
	}
	for _, n := range s.Nodes {
		l.rec.Namespaces = append(l.rec.Namespaces, NSRecord{Name: NamespaceName(s.Name, n.Name), Kind: "node", Of: n.Name})
	}
	if err := reg.save(l.rec); err != nil {
		lock.release()
		return nil, err
	}
	start := time.Now()
	if err := l.build(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if cerr := l.Close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up after the failed build: %w", cerr))
		}
		return nil, err
	}
	l.mu.Lock()
	l.rec.State = StateUp
	err = reg.save(l.rec)
	l.mu.Unlock()
	if err != nil {
		return l, err
	}
	l.log.Info("lab built", "nodes", len(l.nodes), "segments", len(l.segments), "took", time.Since(start).Round(time.Millisecond))
	return l, nil
}

func (l *Lab) build(ctx context.Context) error {
	s := l.Spec
	if err := netns.EnsureSharedDir(l.opts.NetnsDir); err != nil {
		return err
	}
	if err := os.MkdirAll(l.opts.RunDir, 0o755); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	if !l.opts.NoProcesses {
		if err := l.checkPrograms(); err != nil {
			return err
		}
	}
	ipv6 := s.Defaults != nil && s.Defaults.IPv6
	for i := range s.Segments {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.buildSegment(&s.Segments[i], ipv6); err != nil {
			return err
		}
	}
	if err := l.saveRecord(); err != nil {
		return err
	}
	for i := range s.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.buildNode(&s.Nodes[i], ipv6); err != nil {
			return err
		}
	}
	if err := l.saveRecord(); err != nil {
		return err
	}
	if l.opts.NoProcesses {
		return nil
	}
	return l.startAll(ctx)
}

// noteInode records a namespace's inode (saved with the next save: the
// names are on disk already, which is what a crash needs).
func (l *Lab) noteInode(name string, inode uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.rec.Namespaces {
		if l.rec.Namespaces[i].Name == name {
			l.rec.Namespaces[i].Inode = inode
		}
	}
}

func (l *Lab) saveRecord() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reg.save(l.rec)
}

func (l *Lab) buildSegment(sg *spec.Segment, ipv6 bool) error {
	name := NamespaceName(l.Spec.Name, sg.Name)
	ns, err := netns.NewPinned(l.opts.NetnsDir, name)
	if err != nil {
		return err
	}
	seg := &segment{name: sg.Name, ns: ns, mtu: sg.MTU}
	l.segments = append(l.segments, seg)
	l.noteInode(name, ns.Inode())
	if !ipv6 {
		if err := ns.Do(disableIPv6); err != nil {
			return fmt.Errorf("segment %s: %w", sg.Name, err)
		}
	}
	if err := createBridge(ns.Netlink(), bridgeName, sg, spec.DefaultMAC(l.Spec.Name, sg.Name, bridgeName)); err != nil {
		return fmt.Errorf("segment %s: %w", sg.Name, err)
	}
	return nil
}

func disableIPv6() error {
	for _, k := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
		if err := netns.WriteSysctl(k, "1"); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) segment(name string) *segment {
	for _, sg := range l.segments {
		if sg.name == name {
			return sg
		}
	}
	return nil
}

func (l *Lab) buildNode(sn *spec.Node, ipv6 bool) error {
	name := NamespaceName(l.Spec.Name, sn.Name)
	ns, err := netns.NewPinned(l.opts.NetnsDir, name)
	if err != nil {
		return err
	}
	node := &Node{Name: sn.Name, Dir: filepath.Join(l.opts.RunDir, "nodes", sn.Name), ns: ns, spec: sn}
	l.nodes = append(l.nodes, node)
	l.noteInode(name, ns.Inode())
	wrap := func(err error) error { return fmt.Errorf("node %s: %w", sn.Name, err) }
	if !ipv6 {
		// Before the interfaces exist, so they inherit it: no router
		// solicitations, DAD or MLD in the captures.
		if err := ns.Do(disableIPv6); err != nil {
			return wrap(err)
		}
	}
	for i := range sn.Interfaces {
		if err := l.attach(node, &sn.Interfaces[i]); err != nil {
			return wrap(err)
		}
	}
	if err := configureAddresses(ns.Netlink(), sn); err != nil {
		return wrap(err)
	}
	if err := configureRoutes(ns.Netlink(), sn); err != nil {
		return wrap(err)
	}
	if err := configureNeighbors(ns.Netlink(), l.Spec, sn); err != nil {
		return wrap(err)
	}
	if err := ns.Do(func() error { return configureInside(sn) }); err != nil {
		return wrap(err)
	}
	if err := writeFiles(l.Spec, sn, node.Dir); err != nil {
		return wrap(err)
	}
	return nil
}

// portName names the bridge port of node:iface in the segment namespace:
// "node-iface" when it fits in 15 bytes, else p<N>. The alias always says
// node:iface.
func portName(node, iface string, n int) string {
	if s := node + "-" + iface; len(s) <= 15 {
		return s
	}
	return fmt.Sprintf("p%d", n)
}

func (l *Lab) attach(node *Node, ifc *spec.Interface) error {
	sg := l.segment(ifc.Segment)
	if sg == nil {
		return fmt.Errorf("interface %s: segment %s not built", ifc.Name, ifc.Segment)
	}
	sg.next++
	port := portName(node.Name, ifc.Name, sg.next)
	mac, err := net.ParseMAC(string(ifc.MAC))
	if err != nil {
		return fmt.Errorf("interface %s: %w", ifc.Name, err)
	}
	portMAC, _ := net.ParseMAC(string(spec.DefaultMAC(l.Spec.Name, "port:"+node.Name, ifc.Name)))
	if err := createVeth(sg.ns.Netlink(), node.ns, node.Name, port, portMAC, ifc, mac); err != nil {
		return fmt.Errorf("interface %s on segment %s: %w", ifc.Name, ifc.Segment, err)
	}
	return nil
}

// Close tears the lab down in reverse order: processes (stop signal, then
// KILL), anything else still in its namespaces, node namespaces, segment
// namespaces, the registry entry. It is safe to call more than once.
func (l *Lab) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.rec.State = StateStopping
	_ = l.reg.save(l.rec)
	procs := append([]*Process(nil), l.procs...)
	l.mu.Unlock()

	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop(ctx)
	}
	inodes := map[uint64]bool{}
	for _, n := range l.nodes {
		inodes[n.ns.Inode()] = true
	}
	for _, sg := range l.segments {
		inodes[sg.ns.Inode()] = true
	}
	if err := killInNamespaces(ctx, inodes); err != nil {
		errs = append(errs, err)
	}
	var names []string
	for i := len(l.nodes) - 1; i >= 0; i-- {
		n := l.nodes[i]
		names = append(names, n.ns.Name())
		if err := n.ns.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	removeFRR(names)
	for i := len(l.segments) - 1; i >= 0; i-- {
		sg := l.segments[i]
		if err := sg.ns.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	// Planned namespaces never created are not touched: a pin of that name
	// may belong to another lab (NewPinned removed its own partial
	// work).
	if len(errs) == 0 {
		if l.opts.Mode == ModeUp && isUnder(l.opts.RunDir, l.opts.StateDir) {
			os.RemoveAll(l.opts.RunDir)
		}
		l.reg.remove(l.Spec.Name)
	}
	l.lock.release()
	if len(errs) > 0 {
		return fmt.Errorf("tear down lab %s: %w", l.Spec.Name, errors.Join(errs...))
	}
	l.log.Info("lab removed")
	return nil
}

// Detach leaves the lab running and gives up ownership: for lvslab up, whose
// lab outlives it. The namespaces stay pinned, the processes keep running.
func (l *Lab) Detach() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.rec.Mode = ModeUp
	err := l.reg.save(l.rec)
	for _, n := range l.nodes {
		_ = n.ns.Close()
	}
	for _, sg := range l.segments {
		_ = sg.ns.Close()
	}
	l.lock.release()
	return err
}

func isUnder(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}

// Netlink is a netlink handle inside the node's namespace (valid until the
// lab is closed or detached).
func (n *Node) Netlink() *netlink.Handle { return n.ns.Netlink() }
