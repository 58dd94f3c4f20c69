// Package observe holds the always-on observers of a run: they claim no part
// of the spec and only record.
//
//   - Stage ("observe") subscribes to netlink in every node and records
//     address, neighbour, link and route changes with their time since T0
//     into <run dir>/events.jsonl, and as runner events of kind "observer"
//     named NODE.KIND ("dir2.addr"), so reports can mark "the VIP appeared on
//     dir2" next to the faults.
//   - StatsStage ("lvsd-stats") samples the counters of every director's
//     lvsd through its control socket into <run dir>/lvsd-stats.jsonl.
//
// Both should start before and stop after the timeline stage, so they see
// the faults and their reverts.
package observe

import (
	"bytes"
	"context"
	"encoding/json"
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
	"golang.org/x/sys/unix"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// StageName is the netlink observer's stage name.
const StageName = "observe"

// EventsFile is the observer's output in the run directory.
const EventsFile = "events.jsonl"

// KindObserver is the Kind of the runner events the observer produces.
const KindObserver = "observer"

// Options configure the netlink observer.
type Options struct {
	Logger *slog.Logger
	// MaxPerNode caps the records kept per node (default 5000); further
	// changes are counted and reported in one final record per node.
	MaxPerNode int
}

// Record is one line of events.jsonl.
type Record struct {
	T      float64 `json:"t"` // seconds since T0
	Node   string  `json:"node"`
	Kind   string  `json:"kind"`   // addr, neigh, link, route, dropped
	Action string  `json:"action"` // add, del, change
	Dev    string  `json:"dev,omitempty"`
	Addr   string  `json:"addr,omitempty"` // address/prefix, neighbour address, route destination
	MAC    string  `json:"mac,omitempty"`
	State  string  `json:"state,omitempty"`
	Detail string  `json:"detail"`

	at time.Duration
}

// Stage records netlink changes in every node.
type Stage struct {
	opts Options
	log  *slog.Logger

	t0   time.Time
	path string
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	out     *os.File
	records []Record
	count   map[string]int // per node
	dropped map[string]int
	stopped bool
}

// New makes the netlink observer. It claims nothing of the spec.
func New(_ *spec.Spec, opts Options) *Stage {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxPerNode <= 0 {
		opts.MaxPerNode = 5000
	}
	return &Stage{opts: opts, log: opts.Logger.With("stage", StageName),
		count: map[string]int{}, dropped: map[string]int{}}
}

// Name is "observe".
func (st *Stage) Name() string { return StageName }

// Claims is empty: the observer carries out no part of the spec.
func (st *Stage) Claims(*spec.Spec) []string { return nil }

// Path is the events.jsonl being written ("" before Start).
func (st *Stage) Path() string { return st.path }

// Start subscribes in every node of the lab.
func (st *Stage) Start(ctx context.Context, lab *topo.Lab, t0 time.Time) error {
	if st.done != nil {
		return errors.New("observe stage started twice")
	}
	st.t0 = t0
	st.path = filepath.Join(lab.RunDir(), EventsFile)
	f, err := os.Create(st.path)
	if err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	st.out = f
	st.done = make(chan struct{})
	for _, n := range lab.Nodes() {
		if err := st.watch(n); err != nil {
			_ = st.Stop(ctx)
			return fmt.Errorf("observe node %s: %w", n.Name, err)
		}
	}
	return nil
}

// watch subscribes to one node's changes. The sockets are opened on a
// thread inside the node (Node.Do) and keep its namespace; reading them
// needs no namespace.
func (st *Stage) watch(n *topo.Node) error {
	links := make(chan netlink.LinkUpdate, 256)
	addrs := make(chan netlink.AddrUpdate, 256)
	neighs := make(chan netlink.NeighUpdate, 256)
	routes := make(chan netlink.RouteUpdate, 256)
	onErr := func(err error) {
		st.mu.Lock()
		stopped := st.stopped
		st.mu.Unlock()
		if !stopped {
			st.log.Warn("netlink subscription", "node", n.Name, "err", err)
		}
	}
	w := &nodeWatch{st: st, node: n.Name, h: n.Netlink(), names: map[int]string{},
		links: map[int]string{}, neighs: map[string]string{}}
	w.seed()
	subscribed := 0
	err := n.Do(func() error {
		if err := netlink.LinkSubscribeWithOptions(links, st.done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
			return fmt.Errorf("links: %w", err)
		}
		subscribed++
		if err := netlink.AddrSubscribeWithOptions(addrs, st.done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
			return fmt.Errorf("addresses: %w", err)
		}
		subscribed++
		if err := netlink.NeighSubscribeWithOptions(neighs, st.done, netlink.NeighSubscribeOptions{ErrorCallback: onErr}); err != nil {
			return fmt.Errorf("neighbours: %w", err)
		}
		subscribed++
		if err := netlink.RouteSubscribeWithOptions(routes, st.done, netlink.RouteSubscribeOptions{ErrorCallback: onErr}); err != nil {
			return fmt.Errorf("routes: %w", err)
		}
		subscribed++
		return nil
	})
	// Each subscription made closes its channel once done is closed.
	chans := []func(){
		func() {
			for u := range links {
				w.link(u)
			}
		},
		func() {
			for u := range addrs {
				w.addr(u)
			}
		},
		func() {
			for u := range neighs {
				w.neigh(u)
			}
		},
		func() {
			for u := range routes {
				w.route(u)
			}
		},
	}
	for _, f := range chans[:subscribed] {
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			f()
		}()
	}
	return err
}

// Stop ends the subscriptions and closes events.jsonl.
func (st *Stage) Stop(context.Context) error {
	if st.done == nil {
		return nil
	}
	st.mu.Lock()
	if st.stopped {
		st.mu.Unlock()
		return nil
	}
	st.stopped = true
	st.mu.Unlock()
	close(st.done)
	st.wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	at := time.Since(st.t0)
	var err error
	for node, n := range st.dropped {
		r := Record{T: at.Seconds(), Node: node, Kind: "dropped", Action: "change",
			Detail: fmt.Sprintf("%d further changes not recorded (limit %d per node)", n, st.opts.MaxPerNode), at: at}
		st.records = append(st.records, r)
		err = errors.Join(err, st.write(r))
	}
	if st.out != nil {
		err = errors.Join(err, st.out.Close())
		st.out = nil
	}
	return err
}

// Records returns what was recorded so far.
func (st *Stage) Records() []Record {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]Record(nil), st.records...)
}

// Events returns the records as runner events: name NODE.KIND, kind
// "observer".
func (st *Stage) Events() []runner.Event {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]runner.Event, 0, len(st.records))
	for _, r := range st.records {
		out = append(out, runner.Event{Name: r.Node + "." + r.Kind, At: r.at, Kind: KindObserver, Detail: r.Detail})
	}
	return out
}

func (st *Stage) add(r Record) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.stopped && st.out == nil {
		return
	}
	if st.count[r.Node] >= st.opts.MaxPerNode {
		st.dropped[r.Node]++
		return
	}
	st.count[r.Node]++
	r.at = time.Since(st.t0)
	r.T = float64(r.at.Microseconds()) / 1e6
	st.records = append(st.records, r)
	if err := st.write(r); err != nil {
		st.log.Warn("write events", "err", err)
	}
}

// write appends one line; the caller holds mu. Unbuffered: the volume is
// small and a crashed run still leaves every line on disk.
func (st *Stage) write(r Record) error {
	if st.out == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = st.out.Write(append(b, '\n'))
	return err
}

// nodeWatch turns one node's netlink updates into records, dropping
// updates that change nothing a reader cares about (a neighbour going
// REACHABLE -> STALE -> DELAY -> REACHABLE with the same address is one
// record, not four).
type nodeWatch struct {
	st   *Stage
	node string
	h    *netlink.Handle

	mu     sync.Mutex
	names  map[int]string    // ifindex -> name
	links  map[int]string    // ifindex -> last summary
	neighs map[string]string // ifindex/ip -> last summary
}

func (w *nodeWatch) devName(index int) string {
	w.mu.Lock()
	name, ok := w.names[index]
	w.mu.Unlock()
	if ok {
		return name
	}
	if l, err := w.h.LinkByIndex(index); err == nil {
		name = l.Attrs().Name
		w.mu.Lock()
		w.names[index] = name
		w.mu.Unlock()
		return name
	}
	return fmt.Sprintf("if%d", index)
}

func (w *nodeWatch) link(u netlink.LinkUpdate) {
	a := u.Attrs()
	if a == nil {
		return
	}
	w.mu.Lock()
	w.names[a.Index] = a.Name
	prev, seen := w.links[a.Index]
	w.mu.Unlock()
	if u.Header.Type == unix.RTM_DELLINK {
		w.mu.Lock()
		delete(w.links, a.Index)
		w.mu.Unlock()
		w.st.add(Record{Node: w.node, Kind: "link", Action: "del", Dev: a.Name, Detail: "del " + a.Name})
		return
	}
	state, sum := linkSummary(a)
	if seen && sum == prev {
		return
	}
	w.mu.Lock()
	w.links[a.Index] = sum
	w.mu.Unlock()
	action := "change"
	if !seen {
		action = "add"
	}
	w.st.add(Record{Node: w.node, Kind: "link", Action: action, Dev: a.Name, MAC: a.HardwareAddr.String(), State: state,
		Detail: fmt.Sprintf("%s %s %s", action, a.Name, sum)})
}

// linkSummary is what a link record says: the state (admin, carrier,
// operational) and, for change detection, MTU and hardware address.
func linkSummary(a *netlink.LinkAttrs) (state, sum string) {
	admin := "down"
	if a.Flags&net.FlagUp != 0 {
		admin = "up"
	}
	carrier := "no-carrier"
	if a.RawFlags&unix.IFF_LOWER_UP != 0 {
		carrier = "carrier"
	}
	state = fmt.Sprintf("%s,%s,oper=%s", admin, carrier, a.OperState)
	return state, fmt.Sprintf("%s mtu %d mac %s", state, a.MTU, a.HardwareAddr)
}

// seed learns the links and neighbours that exist before the subscription,
// so their first update is a change, not an addition (Start runs at T0: a
// change in the instant between the two is not recorded).
func (w *nodeWatch) seed() {
	if links, err := w.h.LinkList(); err == nil {
		for _, l := range links {
			a := l.Attrs()
			w.names[a.Index] = a.Name
			_, w.links[a.Index] = linkSummary(a)
		}
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := w.h.NeighList(0, fam)
		if err != nil {
			continue
		}
		for _, ne := range list {
			if ne.IP != nil {
				w.neighs[neighKey(ne.LinkIndex, ne.IP)] = neighClass(ne.State) + " " + ne.HardwareAddr.String()
			}
		}
	}
}

func neighKey(index int, ip net.IP) string { return fmt.Sprintf("%d/%s", index, ip) }

func (w *nodeWatch) addr(u netlink.AddrUpdate) {
	action := "del"
	if u.NewAddr {
		action = "add"
	}
	dev := w.devName(u.LinkIndex)
	p := u.LinkAddress.String()
	w.st.add(Record{Node: w.node, Kind: "addr", Action: action, Dev: dev, Addr: p,
		Detail: fmt.Sprintf("%s %s dev %s", action, p, dev)})
}

// neighClass is the part of a neighbour state worth a record.
func neighClass(s int) string {
	switch {
	case s&netlink.NUD_PERMANENT != 0:
		return "PERMANENT"
	case s&netlink.NUD_NOARP != 0:
		return "NOARP"
	case s&netlink.NUD_FAILED != 0:
		return "FAILED"
	case s&netlink.NUD_INCOMPLETE != 0:
		return "INCOMPLETE"
	case s == netlink.NUD_NONE:
		return "NONE"
	}
	return "VALID" // REACHABLE, STALE, DELAY, PROBE: resolved
}

func (w *nodeWatch) neigh(u netlink.NeighUpdate) {
	if u.IP == nil {
		return // bridge fdb entries
	}
	dev := w.devName(u.LinkIndex)
	key := neighKey(u.LinkIndex, u.IP)
	if u.Type == unix.RTM_DELNEIGH {
		w.mu.Lock()
		_, seen := w.neighs[key]
		delete(w.neighs, key)
		w.mu.Unlock()
		if seen {
			w.st.add(Record{Node: w.node, Kind: "neigh", Action: "del", Dev: dev, Addr: u.IP.String(),
				Detail: fmt.Sprintf("del %s dev %s", u.IP, dev)})
		}
		return
	}
	class := neighClass(u.State)
	sum := class + " " + u.HardwareAddr.String()
	w.mu.Lock()
	prev, seen := w.neighs[key]
	w.neighs[key] = sum
	w.mu.Unlock()
	if seen && prev == sum {
		return
	}
	action := "change"
	if !seen {
		action = "add"
	}
	detail := fmt.Sprintf("%s %s dev %s %s", action, u.IP, dev, class)
	if len(u.HardwareAddr) > 0 {
		detail = fmt.Sprintf("%s %s dev %s lladdr %s %s", action, u.IP, dev, u.HardwareAddr, class)
	}
	w.st.add(Record{Node: w.node, Kind: "neigh", Action: action, Dev: dev, Addr: u.IP.String(),
		MAC: u.HardwareAddr.String(), State: class, Detail: detail})
}

func (w *nodeWatch) route(u netlink.RouteUpdate) {
	r := u.Route
	// The local table holds one entry per address (and broadcast
	// entries): the addr records say that already.
	if r.Table != unix.RT_TABLE_MAIN && r.Table != 0 {
		return
	}
	action := "add"
	if u.Type == unix.RTM_DELROUTE {
		action = "del"
	}
	dst := "default"
	if r.Dst != nil {
		dst = r.Dst.String()
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s", action, dst)
	if r.Gw != nil {
		fmt.Fprintf(&b, " via %s", r.Gw)
	}
	dev := ""
	if r.LinkIndex > 0 {
		dev = w.devName(r.LinkIndex)
		fmt.Fprintf(&b, " dev %s", dev)
	}
	if r.Type != 0 && r.Type != unix.RTN_UNICAST {
		fmt.Fprintf(&b, " type %d", r.Type)
	}
	w.st.add(Record{Node: w.node, Kind: "route", Action: action, Dev: dev, Addr: dst,
		Detail: strings.TrimSpace(b.String())})
}
