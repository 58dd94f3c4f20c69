package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
)

// Options configure a Router.
type Options struct {
	Instances []Config    // the vrrp_instance blocks
	Groups    []SyncGroup // the vrrp_sync_group blocks (members by instance name)
	Hooks     Hooks       // nil: &KernelHooks{Log: Log}
	Log       *slog.Logger
	// NoLinkMonitor disables the netlink link watcher (tests feeding
	// Instance.Interface themselves).
	NoLinkMonitor bool
}

// Router runs every VRRP instance of a daemon in one event loop: one
// goroutine owns all machines, so sync groups need no locking. Reader,
// script and link goroutines only feed it.
type Router struct {
	opts   Options
	log    *slog.Logger
	insts  []*Instance
	byName map[string]*Instance
	byM    map[*Machine]*Instance
	groups []*Group

	rx      chan rxMsg
	events  chan Event
	scripts chan scriptResult
	reloads chan reloadReq
	quit    chan struct{}
	// scriptGen ends the vrrp_script runners of one configuration (a
	// reload starts the new configuration's).
	scriptGen chan struct{}
	tracked   map[string]*scriptTrack
	// track_files: the numbers last read, by name; files carries the
	// watcher's changes; fileGen ends the watcher of a configuration.
	fileVals map[string]int64
	files    chan fileResult
	fileGen  chan struct{}
	// mu guards insts and byName for readers outside the event loop
	// (Instance, a reload replaces them).
	mu   sync.RWMutex
	kill chan struct{}
	once sync.Once
	done chan struct{}
}

type rxMsg struct {
	inst *Instance
	pkt  []byte
	ack  chan struct{}
}

// Instance is one vrrp_instance at run time.
type Instance struct {
	cfg *Config
	m   *Machine
	chk *Checker
	r   *Router

	rxConn, txConn *Conn
	src            netip.Addr
	dsts           []netip.Addr
	ipID           uint16
	lastRx         Received
	// gone: removed by a reload (a packet its reader had already
	// queued is dropped).
	gone bool

	sbuf [MaxPacketLen]byte

	// pub is cfg for readers outside the event loop (a reload replaces it).
	pub      atomic.Pointer[Config]
	state    atomic.Uint32
	prio     atomic.Uint32
	sent     atomic.Uint64
	received atomic.Uint64
	drops    [NumReasons]atomic.Uint64
}

// NewRouter checks and normalizes the configuration. Nothing is opened yet.
func NewRouter(o Options) (*Router, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Hooks == nil {
		o.Hooks = &KernelHooks{Log: o.Log}
	}
	r := &Router{opts: o, log: o.Log, byName: map[string]*Instance{}, byM: map[*Machine]*Instance{},
		rx: make(chan rxMsg), events: make(chan Event, 64), scripts: make(chan scriptResult, 16), reloads: make(chan reloadReq), files: make(chan fileResult, 16),
		quit: make(chan struct{}), kill: make(chan struct{}), done: make(chan struct{}), tracked: map[string]*scriptTrack{}}
	cfgs, err := normalizeAll(o.Instances, o.Groups)
	if err != nil {
		return nil, err
	}
	for _, c := range cfgs {
		in := &Instance{cfg: c, r: r, chk: NewChecker(c.rules())}
		in.pub.Store(c)
		r.insts = append(r.insts, in)
		r.byName[c.Name] = in
	}
	return r, nil
}

// normalizeAll checks and normalizes a configuration's instances and
// their sync groups.
func normalizeAll(insts []Config, groups []SyncGroup) ([]*Config, error) {
	var out []*Config
	names := map[string]bool{}
	for i := range insts {
		c := insts[i]
		if err := c.Normalize(); err != nil {
			return nil, err
		}
		if names[c.Name] {
			return nil, fmt.Errorf("vrrp: instance %s defined twice", c.Name)
		}
		names[c.Name] = true
		out = append(out, &c)
	}
	for i := range groups {
		g := &groups[i]
		for _, n := range g.Members {
			if !names[n] {
				return nil, fmt.Errorf("vrrp: vrrp_sync_group %s: no vrrp_instance %s", g.Name, n)
			}
		}
	}
	return out, nil
}

// Instance returns the named instance (nil if none).
func (r *Router) Instance(name string) *Instance {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byName[name]
}

// State is the instance's current state (safe from any goroutine).
func (in *Instance) State() State { return State(in.state.Load()) }

// Priority is the effective priority.
func (in *Instance) Priority() uint8 { return uint8(in.prio.Load()) }

// Counters: adverts sent, adverts accepted, packets dropped for reason.
func (in *Instance) Sent() uint64                 { return in.sent.Load() }
func (in *Instance) Received() uint64             { return in.received.Load() }
func (in *Instance) Dropped(reason Reason) uint64 { return in.drops[reason].Load() }

// Config is the normalized configuration.
func (in *Instance) Config() *Config { return in.pub.Load() }

// Interface feeds a link state change (the daemon's own link monitor, or
// tests). Safe from any goroutine.
func (r *Router) Interface(name string, up bool) {
	r.send(Event{Kind: EvInterface, Name: name, Up: up})
}

// ScriptResult feeds a vrrp_script result. Safe from any goroutine.
func (r *Router) ScriptResult(name string, ok bool) {
	r.send(Event{Kind: EvScript, Name: name, Up: ok})
}

func (r *Router) send(ev Event) {
	select {
	case r.events <- ev:
	case <-r.done:
	}
}

// Kill stops the router at once, as SIGKILL stops keepalived: no
// priority-0 advert, addresses left in place. For tests of takeover.
func (r *Router) Kill() {
	r.once.Do(func() { close(r.kill) })
	<-r.done
}

func primaryIPv4(ifname string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP.To4()); ok && ipn.IP.To4() != nil {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("no IPv4 address on %s", ifname)
}

func (in *Instance) open() error {
	c := in.cfg
	src := c.McastSrcIP
	if !src.IsValid() {
		var err error
		if src, err = primaryIPv4(c.Interface); err != nil {
			return fmt.Errorf("vrrp: %s: source address: %w", c.Name, err)
		}
	}
	in.src = src
	proto := ProtoVRRP
	if c.AuthType == AuthAH && c.Version == 2 {
		proto = ProtoAH
	}
	group := c.McastDstIP
	in.dsts = []netip.Addr{group}
	if len(c.UnicastPeer) > 0 {
		group = netip.Addr{}
		in.dsts = c.UnicastPeer
	}
	var err error
	if in.rxConn, err = Open(c.Interface, proto, group); err != nil {
		return err
	}
	in.txConn = in.rxConn
	if c.UseVMAC && !c.VMACXmitBase {
		if in.txConn, err = Open(c.VMACName, proto, netip.Addr{}); err != nil {
			in.rxConn.Close()
			return err
		}
	}
	in.m = NewMachine(c, src)
	return nil
}

func (in *Instance) close() {
	if in.txConn != nil && in.txConn != in.rxConn {
		in.txConn.Close()
	}
	if in.rxConn != nil {
		in.rxConn.Close()
	}
}

// reader feeds the event loop from one socket, with a buffer of its own:
// a reload replaces the socket while a packet of the old one may still be
// queued.
func (in *Instance) reader(conn *Conn) {
	buf := make([]byte, 4096)
	ack := make(chan struct{})
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-in.r.quit:
				return
			default:
				continue
			}
		}
		select {
		case in.r.rx <- rxMsg{in, buf[:n], ack}:
		case <-in.r.quit:
			return
		}
		select {
		case <-ack:
		case <-in.r.quit:
			return
		}
	}
}

// Run opens the sockets, starts every instance and runs until ctx is
// cancelled (then it shuts down as SIGTERM does: priority-0 adverts,
// addresses removed, notify_stop) or Kill is called.
func (r *Router) Run(ctx context.Context) error {
	defer close(r.done)
	defer close(r.quit)
	var opened []*Instance
	// The instances running at the end (a reload replaces them) are
	// closed and cleaned up, whatever the reason.
	defer func() {
		for _, in := range opened {
			in.close()
			if err := r.opts.Hooks.Cleanup(in.cfg); err != nil {
				r.log.Warn("vrrp cleanup", "instance", in.cfg.Name, "err", err)
			}
		}
	}()
	for _, in := range r.insts {
		if err := r.opts.Hooks.Prepare(in.cfg); err != nil {
			return err
		}
		if err := in.open(); err != nil {
			return err
		}
		opened = append(opened, in)
		r.byM[in.m] = in
	}
	r.groups = r.buildGroups(r.opts.Groups)
	for _, in := range r.insts {
		go in.reader(in.rxConn)
	}
	r.startScripts()
	cfgs := make([]*Config, len(r.insts))
	for i, in := range r.insts {
		cfgs[i] = in.cfg
	}
	r.readFiles(cfgs)
	for _, in := range r.insts {
		r.setFiles(in.m)
	}
	r.watchFiles()
	if !r.opts.NoLinkMonitor {
		r.watchLinks()
	}
	now := time.Now()
	for _, in := range r.insts {
		in.initialLinks(now)
		r.step(in, Event{Kind: EvStart, Now: now})
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.arm(timer)
		select {
		case <-ctx.Done():
			now := time.Now()
			stopped := map[*Group]bool{}
			for _, in := range r.insts {
				if g := in.m.group; g != nil {
					if stopped[g] {
						continue
					}
					stopped[g] = true
				}
				r.step(in, Event{Kind: EvShutdown, Now: now})
			}
			opened = r.insts
			return nil
		case <-r.kill:
			opened = r.insts
			return nil
		case msg := <-r.rx:
			if !msg.inst.gone {
				msg.inst.receive(msg.pkt)
			}
			msg.ack <- struct{}{}
		case req := <-r.reloads:
			req.done <- r.reload(req.cfgs, req.groups, time.Now())
			opened = r.insts
		case res := <-r.scripts:
			r.scriptDone(res)
			ev := Event{Kind: EvScript, Name: res.name, Up: res.ok, Now: time.Now()}
			for _, in := range r.insts {
				if in.m.State() != Stopped {
					r.step(in, ev)
				}
			}
		case f := <-r.files:
			if r.fileVals[f.name] == f.value {
				continue
			}
			r.fileVals[f.name] = f.value
			ev := Event{Kind: EvFile, Name: f.name, Value: f.value, Now: time.Now()}
			for _, in := range r.insts {
				if in.m.State() != Stopped {
					r.step(in, ev)
				}
			}
		case ev := <-r.events:
			ev.Now = time.Now()
			for _, in := range r.insts {
				if in.m.State() != Stopped {
					r.step(in, ev)
				}
			}
		case <-timer.C:
			now := time.Now()
			for _, in := range r.insts {
				if d := in.m.Deadline(); !d.IsZero() && !now.Before(d) {
					r.step(in, Event{Kind: EvTimer, Now: now})
				}
			}
		}
	}
}

func (r *Router) buildGroups(gs []SyncGroup) []*Group {
	var out []*Group
	for i := range gs {
		g := &gs[i]
		ms := make([]*Machine, len(g.Members))
		for j, n := range g.Members {
			ms[j] = r.byName[n].m
		}
		out = append(out, NewGroup(g, ms))
	}
	return out
}

func (r *Router) arm(t *time.Timer) {
	var d time.Time
	for _, in := range r.insts {
		if x := in.m.Deadline(); !x.IsZero() && (d.IsZero() || x.Before(d)) {
			d = x
		}
	}
	wait := time.Hour
	if !d.IsZero() {
		wait = max(time.Until(d), 0)
	}
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(wait)
}

// initialLinks tells the machine which tracked links are down at start.
func (in *Instance) initialLinks(now time.Time) {
	names := []string{in.cfg.Interface}
	for _, t := range in.cfg.TrackInterface {
		names = append(names, t.Name)
	}
	for _, n := range names {
		if ifi, err := net.InterfaceByName(n); err != nil || ifi.Flags&net.FlagRunning == 0 {
			in.m.Step(Event{Kind: EvInterface, Name: n, Up: false, Now: now})
		}
	}
}

func (r *Router) watchLinks() {
	ch := make(chan netlink.LinkUpdate, 16)
	if err := netlink.LinkSubscribe(ch, r.quit); err != nil {
		r.log.Warn("vrrp: no link monitor", "err", err)
		return
	}
	go func() {
		last := map[string]bool{}
		for u := range ch {
			a := u.Attrs()
			up := a.Flags&net.FlagUp != 0 && a.RawFlags&0x40 != 0 // IFF_RUNNING
			if prev, ok := last[a.Name]; ok && prev == up {
				continue
			}
			last[a.Name] = up
			select {
			case r.events <- Event{Kind: EvInterface, Name: a.Name, Up: up}:
			case <-r.quit:
				return
			}
		}
	}()
}

func (r *Router) step(in *Instance, ev Event) {
	for _, a := range in.m.Step(ev) {
		r.do(r.byM[a.From], a)
	}
	for _, x := range r.insts {
		x.state.Store(uint32(x.m.State()))
		x.prio.Store(uint32(x.m.Priority()))
	}
}

func (in *Instance) receive(pkt []byte) {
	rx, reason := in.chk.Check(pkt)
	if reason != OK {
		in.drops[reason].Add(1)
		if reason.Bogus() {
			in.r.log.Info(in.chk.LogLine(reason, pkt))
			in.r.log.Info(BogusLine(in.cfg.Interface))
		}
		return
	}
	if rx.Src == in.src {
		return // our own advert (a looped unicast copy)
	}
	in.received.Add(1)
	in.lastRx = rx
	in.r.step(in, Event{Kind: EvAdvert, Now: time.Now(), Priority: rx.Priority, Src: rx.Src, Interval: rx.Interval})
}

func (r *Router) do(in *Instance, a Action) {
	c := in.cfg
	h := r.opts.Hooks
	var err error
	switch a.Kind {
	case ActSendAdvert:
		err = in.sendAdvert(a.Priority)
	case ActAddAddresses:
		if err = h.SetAddresses(c, true); err == nil {
			err = h.OwnVIPs(c, true)
		}
	case ActRemoveAddresses:
		err = errors.Join(h.OwnVIPs(c, false), h.SetAddresses(c, false))
	case ActGARP:
		err = h.GARP(c, a.Repeat)
	case ActNotify:
		if a.Group != nil {
			r.log.Info(fmt.Sprintf("VRRP_Group(%s) Syncing instances to %s state", a.Group.Name(), a.State))
			h.Notify(Notification{Group: a.Group.Config(), State: a.State})
			return
		}
		r.log.Info(fmt.Sprintf("(%s) Entering %s STATE", c.Name, a.State))
		h.Notify(Notification{Instance: c, State: a.State, Priority: a.Priority})
	case ActPriority:
		r.log.Info(fmt.Sprintf("(%s) Changing effective priority from %d to %d", c.Name, a.Old, a.Priority))
	case ActDiscardLower:
		r.log.Info(fmt.Sprintf("(%s) received lower priority (%d) advert from %s - discarding", c.Name, a.Priority, a.Src))
	case ActForceElection:
		r.log.Info(fmt.Sprintf("(%s) Master received advert from %s with lower priority %d, ours %d, forcing new election", c.Name, a.Src, a.Priority, in.m.Priority()))
		if in.lastRx.HasAH {
			// "Syncing seq_num" (reference §1.6.2).
			in.chk.Seq = in.lastRx.Seq + 1
		}
	}
	if err != nil {
		r.log.Warn("vrrp action failed", "instance", c.Name, "action", a.Kind, "err", err)
	}
}

// sendAdvert sends one advert to the group or to every unicast peer; with
// AH all peers of a round share one sequence number.
func (in *Instance) sendAdvert(prio uint8) error {
	c := in.cfg
	spec := AdvertSpec{
		Version: c.Version, VRID: c.VRID, Priority: prio, Interval: c.AdvInt,
		VIPs: in.chk.R.VIPs, AuthType: c.AuthType, AuthPass: in.chk.R.AuthPass,
		Src: in.src, TTL: TTL, Unicast: len(c.UnicastPeer) > 0,
	}
	if spec.Unicast {
		spec.TTL = c.UnicastTTL
	}
	if c.AuthType == AuthAH && c.Version == 2 {
		in.chk.Seq++
		spec.AH, spec.Seq = in.chk.ah, in.chk.Seq
	}
	var errs []error
	for _, dst := range in.dsts {
		in.ipID++
		if in.ipID == 0 {
			in.ipID = 1
		}
		spec.ID, spec.Dst = in.ipID, dst
		n, err := BuildAdvert(in.sbuf[:], &spec)
		if err == nil {
			err = in.txConn.WriteTo(in.sbuf[:n], dst)
		}
		if err == nil {
			in.sent.Add(1)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
