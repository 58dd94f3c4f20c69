package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"lvslab/internal/trackfile"
)

// vrrp_script runners and a reload of the running configuration: both
// follow keepalived 2.2.7 (vrrp_scheduler.c vrrp_script_child_thread,
// vrrp.c clear_diff_vrrp and clear_diff_script).

// scriptResult is one run of a vrrp_script.
type scriptResult struct {
	name     string
	ok       bool
	exited   bool // exited (status); else killed by signal, or timed out
	status   int
	signal   int
	timedOut bool
}

// scriptTrack is keepalived's view of a vrrp_script, for its log lines:
// result counts 0..rise+fall-1, the script is up at rise or more.
type scriptTrack struct {
	rise, fall int
	result     int
	init       bool // no result yet since start (or since it was added by a reload)
	last       int  // last exit status (keepalived starts it at 0)
}

func newScriptTrack(s TrackScript) *scriptTrack {
	t := &scriptTrack{rise: max(s.Rise, 1), fall: max(s.Fall, 1), init: !s.InitFail}
	if t.init {
		t.result = t.rise - 1 // "one success is enough"
	}
	return t
}

// scriptDone logs a result as keepalived does: "Script `NAME` now
// returning N" when the exit status changed, and "VRRP_Script(NAME)
// succeeded" / "failed (exited with status N)" / "timed_out" when the
// script's state changes (after rise successes or fall failures, or on
// the first result).
func (r *Router) scriptDone(res scriptResult) {
	t := r.tracked[res.name]
	if t == nil {
		return // a script the running configuration no longer has
	}
	if res.exited {
		if res.status != t.last {
			r.log.Info(fmt.Sprintf("Script `%s` now returning %d", res.name, res.status))
		}
		t.last = res.status
	}
	wasInit := t.init
	t.init = false
	if res.ok {
		switch {
		case t.result < t.rise-1:
			t.result++
		case t.result != t.rise+t.fall-1:
			if t.result < t.rise {
				r.log.Info(fmt.Sprintf("VRRP_Script(%s) succeeded", res.name))
			}
			t.result = t.rise + t.fall - 1
		}
		return
	}
	if t.result > t.rise {
		t.result--
		return
	}
	if t.result == t.rise || wasInit {
		switch {
		case res.timedOut:
			r.log.Info(fmt.Sprintf("VRRP_Script(%s) timed_out", res.name))
		case res.exited:
			r.log.Info(fmt.Sprintf("VRRP_Script(%s) failed (exited with status %d)", res.name, res.status))
		default:
			r.log.Info(fmt.Sprintf("VRRP_Script(%s) failed (due to signal %d)", res.name, res.signal))
		}
	}
	t.result = 0
}

// startScripts ends the running configuration's script runners and
// starts one per vrrp_script the instances track (keepalived runs a
// script once however many instances track it). A script kept by a
// reload keeps its state, as clear_diff_script does.
func (r *Router) startScripts() {
	if r.scriptGen != nil {
		close(r.scriptGen)
	}
	gen := make(chan struct{})
	r.scriptGen = gen
	old := r.tracked
	r.tracked = map[string]*scriptTrack{}
	for _, in := range r.insts {
		for _, s := range in.cfg.TrackScript {
			if _, ok := r.tracked[s.Name]; ok {
				continue
			}
			t := newScriptTrack(s)
			if o := old[s.Name]; o != nil && !o.init {
				// keepalived scales the old result onto the new rise/fall.
				if o.result < o.rise {
					t.result = 0
					if o.result > 0 {
						t.result = max(t.rise-(o.rise-o.result), 0)
					}
					r.log.Info(fmt.Sprintf("VRRP_Script(%s) considered unsuccessful on reload", s.Name))
				} else {
					t.result = min(t.rise+(o.result-o.rise), t.rise+t.fall-1)
					if o.result == o.rise+o.fall-1 {
						t.result = t.rise + t.fall - 1
					}
					r.log.Info(fmt.Sprintf("VRRP_Script(%s) considered successful on reload", s.Name))
				}
				t.init, t.last = false, o.last
			}
			r.tracked[s.Name] = t
			go r.runScript(s, gen)
		}
	}
}

// runScript runs one vrrp_script every interval (start to start), as
// keepalived does: exit 0 is success; a timeout kills it and is a
// failure.
func (r *Router) runScript(s TrackScript, gen chan struct{}) {
	argv := splitCommand(s.Script)
	if len(argv) == 0 {
		return
	}
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
		err := exec.CommandContext(ctx, argv[0], argv[1:]...).Run()
		res := scriptResult{name: s.Name, ok: err == nil, exited: err == nil}
		var ee *exec.ExitError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			res.timedOut = true
		case errors.As(err, &ee):
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				res.signal = int(ws.Signal())
			} else {
				res.exited, res.status = true, ee.ExitCode()
			}
		default:
			// Not started (no such file): keepalived's child exits 127.
			res.exited, res.status = true, 127
		}
		cancel()
		select {
		case r.scripts <- res:
		case <-gen:
			return
		case <-r.quit:
			return
		}
		select {
		case <-t.C:
		case <-gen:
			return
		case <-r.quit:
			return
		}
	}
}

// ErrNotRunning is Reload's answer when Run has returned (or never ran).
var ErrNotRunning = errors.New("vrrp: the router is not running")

// fileEvery is how often the track_files are read (keepalived watches
// them with inotify).
const fileEvery = 100 * time.Millisecond

type fileResult struct {
	name  string
	value int64
}

// readFiles reads every track_file the instances use, afresh (at start
// and at a reload, as keepalived's init_track_files does). A number out of
// range keeps the value known before, as keepalived ignores it.
func (r *Router) readFiles(cfgs []*Config) {
	old := r.fileVals
	r.fileVals = map[string]int64{}
	for _, c := range cfgs {
		for _, t := range c.TrackFile {
			if _, ok := r.fileVals[t.Name]; ok {
				continue
			}
			v, ok := trackfile.Read(t.Path)
			if !ok {
				r.log.Info(fmt.Sprintf("Invalid number %d read from %s - ignoring", v, t.Path))
				v = old[t.Name]
			}
			r.fileVals[t.Name] = v
		}
	}
}

// setFiles gives a machine the track_file numbers read.
func (r *Router) setFiles(m *Machine) {
	for _, t := range m.cfg.TrackFile {
		m.SetFile(t.Name, r.fileVals[t.Name])
	}
}

// watchFiles ends the previous configuration's file watcher and starts
// one reading the running instances' track_files every fileEvery.
func (r *Router) watchFiles() {
	if r.fileGen != nil {
		close(r.fileGen)
		r.fileGen = nil
	}
	paths := map[string]string{}
	last := map[string]int64{}
	for _, in := range r.insts {
		for _, t := range in.cfg.TrackFile {
			paths[t.Name], last[t.Name] = t.Path, r.fileVals[t.Name]
		}
	}
	if len(paths) == 0 {
		return
	}
	gen := make(chan struct{})
	r.fileGen = gen
	go func() {
		t := time.NewTicker(fileEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-gen:
				return
			case <-r.quit:
				return
			}
			for name, path := range paths {
				v, ok := trackfile.Read(path)
				if v == last[name] {
					continue
				}
				if !ok {
					r.log.Info(fmt.Sprintf("Invalid number %d read from %s - ignoring", v, path))
					last[name] = v // said once
					continue
				}
				last[name] = v
				select {
				case r.files <- fileResult{name, v}:
				case <-gen:
					return
				case <-r.quit:
					return
				}
			}
		}
	}()
}

type reloadReq struct {
	cfgs   []*Config
	groups []SyncGroup
	done   chan error
}

// Reload replaces the running configuration with o's instances and
// groups (o's Hooks and Log are not used: the router keeps its own), the
// way keepalived 2.2.7's SIGHUP does:
//
//   - an instance is the same instance if its virtual_router_id,
//     interface, unicast or multicast addressing (and the multicast group,
//     or the unicast source) and use_vmac are the same (vrrp.c vrrp_exist;
//     the name may change); it keeps its state (see Machine.Resume), its
//     AH sequence number and its counters; a MASTER removes the addresses
//     the new configuration dropped, adds the new ones and then sends
//     garp_master_repeat gratuitous ARPs, and advertises at once;
//   - an instance no longer configured sends priority 0 if it was MASTER,
//     removes its addresses and runs notify_fault (keepalived's default
//     notification for a deleted instance), then stops;
//   - a new instance starts in BACKUP as at startup;
//   - vrrp_scripts keep their results by name.
//
// A configuration that does not normalize changes nothing. Reload waits
// until the event loop has applied it; it returns ErrNotRunning (and
// changes nothing) if the router is not running.
func (r *Router) Reload(o Options) error {
	cfgs, err := normalizeAll(o.Instances, o.Groups)
	if err != nil {
		return err
	}
	req := reloadReq{cfgs: cfgs, groups: slices.Clone(o.Groups), done: make(chan error, 1)}
	select {
	case r.reloads <- req:
	case <-r.done:
		return ErrNotRunning
	}
	select {
	case err := <-req.done:
		return err
	case <-r.done:
		return ErrNotRunning
	}
}

// same is keepalived's vrrp_exist.
func same(a, b *Config) bool {
	if a.VRID != b.VRID || a.Interface != b.Interface || (len(a.UnicastPeer) > 0) != (len(b.UnicastPeer) > 0) || a.UseVMAC != b.UseVMAC {
		return false
	}
	if len(a.UnicastPeer) > 0 {
		return a.McastSrcIP == b.McastSrcIP
	}
	return a.McastDstIP == b.McastDstIP && (!a.UseVMAC || a.VMACName == b.VMACName)
}

// minus is c with only the addresses and routes of c that n does not
// have.
func minus(c, n *Config) *Config {
	out := *c
	keepVIP := func(vs, of []VIP) []VIP {
		var r []VIP
		for _, v := range vs {
			if !slices.Contains(of, v) {
				r = append(r, v)
			}
		}
		return r
	}
	out.VirtualIPAddress = keepVIP(c.VirtualIPAddress, n.VirtualIPAddress)
	out.VirtualIPAddressExcluded = keepVIP(c.VirtualIPAddressExcluded, n.VirtualIPAddressExcluded)
	out.VirtualRoutes = nil
	for _, rt := range c.VirtualRoutes {
		if !slices.Contains(n.VirtualRoutes, rt) {
			out.VirtualRoutes = append(out.VirtualRoutes, rt)
		}
	}
	return &out
}

func (r *Router) reload(cfgs []*Config, groups []SyncGroup, now time.Time) error {
	h := r.opts.Hooks
	var errs []error
	oldGroups := map[string]State{}
	for _, g := range r.groups {
		oldGroups[g.Name()] = g.State()
	}
	r.readFiles(cfgs)
	// Pair the new instances with the running ones.
	match := make([]*Instance, len(cfgs))
	taken := map[*Instance]bool{}
	for i, c := range cfgs {
		for _, in := range r.insts {
			if !taken[in] && same(in.cfg, c) {
				match[i], taken[in] = in, true
				break
			}
		}
	}
	// Gone: priority 0 from a MASTER, addresses removed, notify_fault.
	for _, in := range r.insts {
		if taken[in] {
			continue
		}
		c := in.cfg
		st := in.m.State()
		if st == Master {
			errs = append(errs, in.sendAdvert(0), h.OwnVIPs(c, false), h.SetAddresses(c, false))
		}
		r.log.Info(fmt.Sprintf("(%s) removed by the reload (was %s)", c.Name, st))
		if st != Fault {
			h.Notify(Notification{Instance: c, State: Fault, Priority: in.m.Priority()})
		}
		in.gone = true
		in.close()
		errs = append(errs, h.Cleanup(c))
		in.state.Store(uint32(Stopped))
	}
	down := map[string]bool{}
	linkDown := func(name string) {
		if _, ok := down[name]; ok {
			return
		}
		ifi, err := net.InterfaceByName(name)
		down[name] = err != nil || ifi.Flags&net.FlagRunning == 0
	}
	var insts []*Instance
	var fresh []*Instance
	byM := map[*Machine]*Instance{}
	for i, c := range cfgs {
		in := match[i]
		if in == nil {
			in = &Instance{cfg: c, r: r, chk: NewChecker(c.rules())}
			in.pub.Store(c)
			if err := h.Prepare(c); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := in.open(); err != nil {
				errs = append(errs, err)
				_ = h.Cleanup(c)
				continue
			}
			go in.reader(in.rxConn)
			r.setFiles(in.m)
			fresh = append(fresh, in)
			insts = append(insts, in)
			byM[in.m] = in
			continue
		}
		oldCfg, oldM, oldConns, oldSrc, oldDsts := in.cfg, in.m, [2]*Conn{in.rxConn, in.txConn}, in.src, in.dsts
		seq := in.chk.Seq
		in.cfg = c
		in.chk = NewChecker(c.rules())
		in.chk.Seq = seq
		if err := in.open(); err != nil {
			// The old sockets stay: the instance carries on under its
			// old configuration rather than go silent.
			in.cfg = oldCfg
			in.chk = NewChecker(oldCfg.rules())
			in.chk.Seq = seq
			in.rxConn, in.txConn, in.m, in.src, in.dsts = oldConns[0], oldConns[1], oldM, oldSrc, oldDsts
			errs = append(errs, err)
			insts = append(insts, in)
			byM[in.m] = in
			continue
		}
		if oldConns[1] != nil && oldConns[1] != oldConns[0] {
			oldConns[1].Close()
		}
		oldConns[0].Close()
		go in.reader(in.rxConn)
		linkDown(c.Interface)
		for _, t := range c.TrackInterface {
			linkDown(t.Name)
		}
		wasMaster := oldM.State() == Master
		if wasMaster {
			// What the new configuration dropped goes first.
			gone := minus(oldCfg, c)
			if oldCfg.Name != c.Name {
				gone = oldCfg // lvsd's ownership is by instance name
			}
			errs = append(errs, h.OwnVIPs(gone, false), h.SetAddresses(gone, false))
		}
		r.setFiles(in.m)
		for _, a := range in.m.Resume(oldM, now, down) {
			r.do(in, a)
		}
		added := minus(c, oldCfg)
		switch {
		case wasMaster && in.m.State() == Master:
			errs = append(errs, h.SetAddresses(c, true), h.OwnVIPs(c, true))
			if len(added.VirtualIPAddress)+len(added.VirtualIPAddressExcluded) > 0 {
				errs = append(errs, h.GARP(c, c.GarpMasterRepeat))
			}
		case in.m.State() != Master && len(added.VirtualIPAddress)+len(added.VirtualIPAddressExcluded) > 0:
			// As Prepare at a start: a forwarder that answers for every
			// address it serves until told otherwise must not answer for
			// a VIP this BACKUP just gained.
			errs = append(errs, h.OwnVIPs(added, false))
		}
		insts = append(insts, in)
		byM[in.m] = in
	}
	r.mu.Lock()
	r.insts = insts
	r.byName = map[string]*Instance{}
	for _, in := range insts {
		r.byName[in.cfg.Name] = in
	}
	r.mu.Unlock()
	r.byM = byM
	var keptGroups []SyncGroup
	for _, g := range groups {
		ok := true
		for _, n := range g.Members {
			ok = ok && r.byName[n] != nil
		}
		if ok {
			keptGroups = append(keptGroups, g)
		}
	}
	r.opts.Groups = keptGroups
	r.groups = r.buildGroups(keptGroups)
	for _, g := range r.groups {
		old, ok := oldGroups[g.Name()]
		if !ok {
			old = Init
		}
		acts := g.resume(now, old)
		for _, a := range acts {
			r.do(r.byM[a.From], a)
		}
	}
	r.startScripts()
	r.watchFiles()
	for _, in := range fresh {
		in.initialLinks(now)
		r.step(in, Event{Kind: EvStart, Now: now})
	}
	for _, x := range r.insts {
		x.pub.Store(x.cfg)
		x.state.Store(uint32(x.m.State()))
		x.prio.Store(uint32(x.m.Priority()))
	}
	return errors.Join(errs...)
}
