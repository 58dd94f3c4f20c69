package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"lvslab/check"
	"lvslab/config"
	"lvslab/config/keepalived"
)

// The daemon is one process with sides: the checker side (this file)
// and the VRRP side (vrrpside.go; -P/--vrrp, -C/--check select one). Each side
// is a goroutine fed by the same signal handling; keepalived's separate
// child processes become goroutines, and its parent's respawning is
// unnecessary because a crash of lvskeepalived leaves lvsd forwarding with
// the tables it has.

// rsState is one real server of a virtual server at run time.
type rsState struct {
	rs     *keepalived.RealServer
	alive  bool
	weight int // the current weight (misc_dynamic changes it)
	failed []bool
	jobs   []*check.Job
	// fileW is, per checker, what a FILE_CHECK adds to the weight (0 for
	// the others).
	fileW []int
}

// vsState is one virtual server at run time.
type vsState struct {
	vs       *keepalived.VirtualServer
	key      string
	svcs     []config.Service
	rss      []*rsState
	quorumUp bool
	// sorryOn: the sorry server is in the pool (quorum lost).
	sorryOn bool
	name    string // keepalived's FMT_VS
	// local (ha_suspend) says whether the director holds the service's
	// address; suspended is what it said at the last refresh.
	local     func() bool
	suspended bool
}

type event struct {
	gen int
	ev  check.Event
}

type daemon struct {
	// vrrpChanged: a VRRP state change (ha_suspend refreshes then).
	vrrpChanged chan struct{}
	files       trackFiles
	fileEvents  chan fileEvent
	opts        options
	log         *logger
	lvsd        *lvsdTables
	cfg         *keepalived.Config
	vss         []*vsState
	events      chan event
	gen         int
	stop        context.CancelFunc
	done        chan struct{}
	// owned are the services this configuration put in lvsd.
	owned   map[config.ServiceID]bool
	dirty   bool // a sync failed: resynchronise everything
	addrs   localAddrs
	limit   int
	scripts sync.WaitGroup
	// vrrp is the VRRP side (nil with -C); cfgAll the configuration
	// running (either side's).
	vrrp   *vrrpSide
	cfgAll *keepalived.Config
}

// checkers and vrrpSide say which sides run: both by default, one with
// -C/--check or -P/--vrrp, both with both (as keepalived).
func (d *daemon) checkers() bool { return !d.opts.vrrpOnly || d.opts.checkOnly }
func (d *daemon) vrrpSide() bool { return !d.opts.checkOnly || d.opts.vrrpOnly }

// serve is the daemon: load, apply, check, until SIGTERM.
func serve(o options) int {
	lg, err := newLogger(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitFatal
	}
	defer lg.close()
	cleanup, err := writePidFiles(o)
	if err != nil {
		lg.printf("%v", err)
		return exitFatal
	}
	defer cleanup()
	lg.printf("Starting lvskeepalived (keepalived 2.2.7 compatible), pid %d", os.Getpid())
	cfg := load(o)
	if cfg.Fatal() {
		for _, d := range cfg.Diags {
			lg.printf("%s", d)
		}
		lg.printf("Stopping: fatal error in configuration %s", o.file)
		return exitConfig
	}
	for _, d := range cfg.Diags {
		lg.printf("%s", d)
	}
	socket := o.lvsdSocket
	if socket == "" {
		socket = os.Getenv("LVSD_SOCKET")
	}
	if socket == "" {
		socket = "lvsd"
	}
	d := &daemon{opts: o, log: lg, events: make(chan event, 8192), owned: map[config.ServiceID]bool{}, vrrpChanged: make(chan struct{}, 1),
		fileEvents: make(chan fileEvent, 16), files: trackFiles{logf: lg.printf},
		lvsd: &lvsdTables{socket: socket, logf: lg.printf}, cfgAll: cfg}
	// Both sides read the track_files: init_file first (keepalived does it
	// as it parses).
	d.files.initFiles(cfg.TrackFiles, false)
	d.refreshLocal()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	var setup *vrrpSetup
	if d.vrrpSide() {
		// Checked before anything is applied: a configuration the VRRP
		// side cannot run changes nothing.
		if setup, err = convertVRRP(cfg); err != nil {
			lg.printf("%v", err)
			lg.printf("Stopping: the VRRP side cannot run configuration %s", o.file)
			return exitConfig
		}
	}
	if d.checkers() {
		if cfg.Global.LVSFlush {
			if err := d.lvsd.do(config.Command{Op: config.OpClear}); err != nil {
				lg.printf("IPVS: flush: %v", err)
			}
		}
		d.install(cfg, nil)
	}
	if setup != nil {
		// After the checkers' first sync, so lvsd has the services when
		// an instance takes its VIPs over.
		d.vrrp = startVRRP(setup, socket, lg, d.vrrpChanged)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				d.reload()
			case syscall.SIGUSR1:
				if d.vrrp != nil {
					lg.printf("Printing VRRP data for process(%d) on signal", os.Getpid())
					if err := d.vrrp.writeData(d.cfgAll, dataFile()); err != nil {
						lg.printf("VRRP data: %v", err)
					}
				}
			default:
				lg.printf("Stopping")
				if d.vrrp != nil {
					d.vrrp.stop(o.dontReleaseVRRP)
					d.vrrp.owner.close()
				}
				d.shutdown()
				return exitOK
			}
		case e := <-d.events:
			if e.gen == d.gen {
				d.handle(e.ev)
			}
		case e := <-d.fileEvents:
			if e.gen == d.gen {
				d.fileChanged(e.name, e.value)
			}
		case <-d.vrrpChanged:
			// A VRRP transition owned or released VIPs: ha_suspend's
			// checkers follow at once, not at the next tick.
			d.refreshLocal()
		case <-tick.C:
			d.refreshLocal()
			if d.dirty {
				d.resync()
			}
		}
	}
}

func load(o options) *keepalived.Config {
	return keepalived.LoadOptions(keepalived.OSFS{}, o.file, keepalived.Options{InterfaceExists: interfaceExists})
}

// fmtVS is keepalived's FMT_VS.
func fmtVS(vs *keepalived.VirtualServer) string {
	switch {
	case vs.Fwmark != 0:
		return fmt.Sprintf("FWM %d", vs.Fwmark)
	case vs.Group != "":
		return "[" + vs.Group + "]"
	}
	return fmt.Sprintf("[%s]:%s:%d", vs.Addr, protoName(vs.Protocol), vs.Port)
}

// fmtRS is keepalived's FMT_RS.
func fmtRS(rs *keepalived.RealServer, vs *keepalived.VirtualServer) string {
	return fmt.Sprintf("[%s]:%s:%d", rs.Addr, protoName(vs.Protocol), rs.Port)
}

// fmtChk is keepalived's FMT_CHK: the checked address.
func fmtChk(c *keepalived.Checker, rs *keepalived.RealServer, vs *keepalived.VirtualServer) string {
	to := check.Target(c, rs, vs.Port)
	return fmt.Sprintf("[%s]:%s:%d", to.Addr(), protoName(vs.Protocol), to.Port())
}

func protoName(p config.Protocol) string {
	switch p {
	case config.ProtoUDP:
		return "udp"
	case config.ProtoSCTP:
		return "sctp"
	}
	return "tcp"
}

func vsKey(vs *keepalived.VirtualServer) string {
	switch {
	case vs.Fwmark != 0:
		return fmt.Sprintf("fwm %d %d", vs.Fwmark, vs.IPFamily)
	case vs.Group != "":
		return "group " + vs.Group + " " + vs.Protocol.Name()
	}
	return fmt.Sprintf("%s %s", vs.Protocol.Name(), netip.AddrPortFrom(vs.Addr, vs.Port))
}

// install builds the run-time state of cfg, carrying the state of the
// virtual and real servers that old (the running configuration) has, and
// applies it; then starts the checkers.
func (d *daemon) install(cfg *keepalived.Config, old map[string]*vsState) {
	groups := map[string]*keepalived.VirtualServerGroup{}
	for _, g := range cfg.VirtualServerGroups {
		groups[g.Name] = g
	}
	d.gen++
	gen := d.gen
	// Read afresh: a reload sees the files as they are now.
	d.files.vals = nil
	var vss []*vsState
	var jobs []*check.Job
	owned := map[config.ServiceID]bool{}
	for _, vs := range cfg.VirtualServers {
		if vs.Refused != "" {
			continue
		}
		v := &vsState{vs: vs, key: vsKey(vs), svcs: cfg.Services(vs, groups), name: fmtVS(vs)}
		for _, s := range v.svcs {
			owned[s.ID()] = true
		}
		if vs.HASuspend {
			v.local = d.addrs.localFunc(v.svcs)
		}
		prev := old[v.key]
		prevRS := map[string]*rsState{}
		if prev != nil {
			for _, r := range prev.rss {
				prevRS[netip.AddrPortFrom(r.rs.Addr, r.rs.Port).String()] = r
			}
		}
		for _, rs := range vs.RealServers {
			r := &rsState{rs: rs, alive: !rs.Alpha, weight: rs.Weight, failed: make([]bool, len(rs.Checkers)), fileW: make([]int, len(rs.Checkers))}
			p := prevRS[netip.AddrPortFrom(rs.Addr, rs.Port).String()]
			if p != nil {
				// keepalived: a server that was down stays down until its
				// checker succeeds (issue 1720); a dynamic weight stays.
				r.alive = p.alive
				if p.weight != p.rs.Weight {
					r.weight = p.weight
				}
			}
			for i, c := range rs.Checkers {
				st := check.NewState(c.Retry, c.DelayLoop, c.DelayBeforeRetry, c.Alpha || rs.Alpha)
				if p != nil && i < len(p.jobs) && i < len(p.rs.Checkers) && p.rs.Checkers[i].Kind == c.Kind {
					ps := p.jobs[i].State
					st.Up, st.HasRun, st.RetryIt = ps.Up, ps.HasRun, min(ps.RetryIt, st.Retry)
				} else if p != nil {
					st.Up = p.alive
				}
				r.failed[i] = !st.Up
				if c.Kind == keepalived.CheckFile {
					// No probe: the file's value decides (files.go).
					r.failed[i], r.fileW[i] = d.files.initial(c.File)
					continue
				}
				svcPort := vs.Port
				probe, err := check.ProbeFor(c, rs, svcPort, d.runner(cfg))
				if err != nil {
					d.log.printf("%s: %s of %s: %v", c.Pos, c.Kind, fmtRS(rs, vs), err)
					continue
				}
				timeout := c.ConnectTimeout
				if c.Kind == keepalived.CheckMisc && c.Misc != nil && c.Misc.Timeout > 0 {
					timeout = c.Misc.Timeout
				}
				j := &check.Job{ID: len(jobs), State: st, Warmup: c.Warmup, Timeout: timeout, Probe: probe,
					Ref: &jobRef{vs: v, rs: r, idx: i}}
				if v.local != nil {
					local := v.local
					j.Skip = func() bool { return !local() }
				}
				r.jobs = append(r.jobs, j)
				jobs = append(jobs, j)
			}
			if p == nil && len(rs.Checkers) > 0 {
				r.alive = !slices.Contains(r.failed, true)
			}
			v.rss = append(v.rss, r)
		}
		if v.local != nil {
			if prev != nil && prev.local != nil {
				v.suspended = prev.suspended // the next refresh logs a change
			} else if v.suspended = !v.local(); v.suspended {
				// keepalived's register_checkers_thread says so per checker.
				for _, r := range v.rss {
					for range r.rs.Checkers {
						d.log.printf("Deactivating healthchecker for service %s for VS %s", fmtRS(r.rs, vs), v.name)
					}
				}
			}
		}
		sum := v.weightSum()
		if prev != nil {
			v.quorumUp = prev.quorumUp
		} else {
			v.quorumUp = sum >= int(vs.Quorum+vs.Hysteresis)
		}
		v.sorryOn = !v.quorumUp && vs.SorryServer != nil
		vss = append(vss, v)
	}
	// Services of the running configuration that are gone.
	for id := range d.owned {
		if !owned[id] {
			if err := d.lvsd.remove(id); err != nil {
				d.log.printf("%v", err)
				d.dirty = true
			}
		}
	}
	for _, v := range old {
		if !containsKey(vss, v.key) {
			d.log.printf("Removing Virtual Server %s", v.name)
		}
	}
	d.owned, d.vss, d.cfg = owned, vss, cfg
	for _, v := range vss {
		d.apply(v)
	}
	if d.stop != nil {
		d.stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.stop = cancel
	done := make(chan struct{})
	d.done = done
	eng := check.Engine{Limit: d.limit, Emit: func(ev check.Event) { d.events <- event{gen, ev} }}
	go func() { eng.Run(ctx, jobs); close(done) }()
	var watched []*keepalived.TrackFile
	last := map[string]int64{}
	for _, tf := range cfg.TrackFiles {
		if v, ok := d.files.vals[tf.Name]; ok {
			watched, last[tf.Name] = append(watched, tf), v
		}
	}
	if len(watched) > 0 {
		go watchFiles(ctx, gen, watched, last, d.fileEvents, d.log.printf)
	}
	// A real server carried over by a reload moves now if its files say
	// so (a new one started in the state they give).
	for _, v := range vss {
		for _, r := range v.rss {
			if slices.ContainsFunc(r.rs.Checkers, func(c *keepalived.Checker) bool { return c.Kind == keepalived.CheckFile }) {
				d.settle(v, r)
			}
		}
	}
	d.log.printf("Activating healthchecker for %d real servers (%d checkers)", countRS(vss), len(jobs))
}

type jobRef struct {
	vs  *vsState
	rs  *rsState
	idx int
}

func containsKey(vss []*vsState, key string) bool {
	for _, v := range vss {
		if v.key == key {
			return true
		}
	}
	return false
}

func countRS(vss []*vsState) int {
	n := 0
	for _, v := range vss {
		n += len(v.rss)
	}
	return n
}

func (v *vsState) weightSum() int {
	s := 0
	for _, r := range v.rss {
		if r.alive {
			s += r.effWeight()
		}
	}
	return s
}

// effWeight is the weight lvsd gets: the configured (or misc_dynamic)
// weight plus what FILE_CHECKs add, as keepalived's real_weight clamps
// it.
func (r *rsState) effWeight() int {
	w := int64(r.weight)
	for _, f := range r.fileW {
		w += int64(f)
	}
	return int(min(max(w, 0), math.MaxInt32))
}

// want is the pool keepalived would have in IPVS for one service.
func (v *vsState) want(svc config.Service) []config.Dest {
	var out []config.Dest
	if v.sorryOn {
		out = append(out, v.vs.SorryServer.Dest(svc))
		for _, r := range v.rss {
			if r.rs.InhibitOnFailure {
				d := r.rs.Dest(svc)
				d.Weight = 0
				out = append(out, d)
			}
		}
		return out
	}
	for _, r := range v.rss {
		d := r.rs.Dest(svc)
		d.Weight = r.effWeight()
		switch {
		case r.alive:
		case r.rs.InhibitOnFailure:
			d.Weight = 0
		default:
			continue
		}
		out = append(out, d)
	}
	if s := v.vs.SorryServer; s != nil && v.vs.SorryServerInhibit {
		d := s.Dest(svc)
		d.Weight = 0
		out = append(out, d)
	}
	return out
}

// apply makes lvsd's services of v what v wants.
func (d *daemon) apply(v *vsState) {
	for _, svc := range v.svcs {
		if err := d.lvsd.sync(svc, v.vs.Laddrs, v.want(svc)); err != nil {
			d.log.printf("%v", err)
			d.dirty = true
		}
	}
}

// resync reconnects to lvsd (reading its tables again) and reapplies all.
func (d *daemon) resync() {
	d.lvsd.close()
	if err := d.lvsd.connect(); err != nil {
		return
	}
	d.dirty = false
	for _, v := range d.vss {
		d.apply(v)
	}
	if !d.dirty {
		d.log.printf("IPVS: tables of lvsd synchronised")
	}
}

// handle applies one checker result (keepalived's update_svr_checker_state,
// perform_svr_state, update_quorum_state).
func (d *daemon) handle(ev check.Event) {
	ref := ev.Job.Ref.(*jobRef)
	v, r := ref.vs, ref.rs
	c := r.rs.Checkers[ref.idx]
	chk := fmtChk(c, r.rs, v.vs)
	kind := c.Kind.String()
	switch ev.Transition {
	case check.Up:
		switch c.Kind {
		case keepalived.CheckTCP:
			d.log.printf("TCP connection to %s success.", chk)
		case keepalived.CheckHTTP, keepalived.CheckSSL:
			d.log.printf("HTTP status code success to %s url(s).", chk)
		case keepalived.CheckMisc:
			d.log.printf("Misc check for [%s] success.", strings.Join(c.Misc.Path.Args, " "))
		default:
			d.log.printf("%s on service %s succeeded.", kind, chk)
		}
		r.failed[ref.idx] = false
	case check.Down:
		why := ""
		if ev.Outcome.Err != nil && (c.LogAllFailures || c.Kind != keepalived.CheckTCP) {
			why = " (" + ev.Outcome.Err.Error() + ")"
		}
		switch {
		case c.Kind == keepalived.CheckMisc:
			d.log.printf("Misc check for [%s] failed.%s", strings.Join(c.Misc.Path.Args, " "), why)
		case ev.Retries > 0 && ev.Job.State.HasRun && r.alive:
			d.log.printf("%s on service %s failed after %d retries.%s", kind, chk, ev.Retries, why)
		default:
			d.log.printf("%s on service %s failed.%s", kind, chk, why)
		}
		r.failed[ref.idx] = true
	}
	if ev.Outcome.HasWeight && ev.Outcome.Weight != r.weight {
		d.setWeight(v, r, func() { r.weight = ev.Outcome.Weight })
	}
	d.settle(v, r)
}

// setWeight makes change (to r.weight or r.fileW) and, if lvsd's weight
// moved, logs it as keepalived's update_svr_wgt does and applies it.
func (d *daemon) setWeight(v *vsState, r *rsState, change func()) {
	old := r.effWeight()
	change()
	if w := r.effWeight(); w != old {
		state := "inactive"
		if r.alive {
			state = "active"
		}
		d.log.printf("Changing weight from %d to %d for %s service %s of VS %s", old, w, state, fmtRS(r.rs, v.vs), v.name)
		report := d.quorum(v)
		d.apply(v)
		report()
	}
}

// settle carries out a real server's change of state after its checkers
// changed (keepalived's perform_svr_state).
func (d *daemon) settle(v *vsState, r *rsState) {
	alive := !slices.Contains(r.failed, true)
	if alive == r.alive {
		return
	}
	rsName := fmtRS(r.rs, v.vs)
	// keepalived's texts: Adding/Removing, or Enabling/Disabling when the
	// real server is only inhibited (weight 0).
	verb, prep, script := "Removing", "from", r.rs.NotifyDown
	switch {
	case alive && r.rs.InhibitOnFailure:
		verb, prep, script = "Enabling", "to", r.rs.NotifyUp
	case alive:
		verb, prep, script = "Adding", "to", r.rs.NotifyUp
	case r.rs.InhibitOnFailure:
		verb = "Disabling"
	}
	r.alive = alive
	// The real server's change and what it does to the quorum (the sorry
	// server in or out) go to lvsd in one apply, additions first, and are
	// logged once lvsd has them: with two applies, a service that lost its
	// last real server had no destination until the sorry server's
	// command landed, a round trip later, and the SYNs in between were
	// dropped (a loaded CI run lost 2 connects after "Adding sorry
	// server"). keepalived's two netlink commands leave no such window.
	report := d.quorum(v)
	d.apply(v)
	d.log.printf("%s service %s %s VS %s", verb, rsName, prep, v.name)
	if script != nil {
		d.log.printf("Executing [%s] for service %s in VS %s", strings.Join(script.Args, " "), rsName, v.name)
		d.notify(script)
	}
	report()
}

// quorum is keepalived's update_quorum_state: it moves the virtual
// server's quorum state and the sorry server with it, and returns what
// keepalived logs and runs for the change, for the caller to do once the
// change is applied.
func (d *daemon) quorum(v *vsState) (report func()) {
	sum := v.weightSum()
	vs := v.vs
	up := int(vs.Quorum + vs.Hysteresis)
	down := int(vs.Quorum) - int(vs.Hysteresis)
	switch {
	case !v.quorumUp && sum >= up:
		v.quorumUp = true
		sorryOff := vs.SorryServer != nil && v.sorryOn
		v.sorryOn = false
		return func() {
			d.log.printf("Gained quorum %d+%d=%d <= %d for VS %s", vs.Quorum, vs.Hysteresis, up, sum, v.name)
			if sorryOff {
				verb := "Removing"
				if vs.SorryServerInhibit {
					verb = "Disabling"
				}
				d.log.printf("%s sorry server %s from VS %s", verb, fmtRS(vs.SorryServer, vs), v.name)
			}
			if s := vs.QuorumUp; s != nil {
				d.log.printf("Executing [%s] for VS %s", strings.Join(s.Args, " "), v.name)
				d.notify(s)
			}
		}
	case v.quorumUp && (sum == 0 || sum < down):
		v.quorumUp = false
		if vs.SorryServer != nil {
			v.sorryOn = true
		}
		return func() {
			d.log.printf("Lost quorum %d-%d=%d > %d for VS %s", vs.Quorum, vs.Hysteresis, down, sum, v.name)
			if s := vs.QuorumDown; s != nil {
				d.log.printf("Executing [%s] for VS %s", strings.Join(s.Args, " "), v.name)
				d.notify(s)
			}
			if s := vs.SorryServer; s != nil {
				verb := "Adding"
				if vs.SorryServerInhibit {
					verb = "Enabling"
				}
				d.log.printf("%s sorry server %s to VS %s", verb, fmtRS(s, vs), v.name)
			}
		}
	}
	return func() {}
}

// reload is SIGHUP: a configuration with a fatal error changes nothing.
func (d *daemon) reload() {
	d.log.printf("Reloading")
	cfg := load(d.opts)
	if cfg.Fatal() {
		for _, dg := range cfg.Diags {
			if dg.Severity == keepalived.SevFatal {
				d.log.printf("%s", dg)
			}
		}
		d.log.printf("Reload failed: fatal error in configuration %s, keeping the running configuration", d.opts.file)
		return
	}
	for _, dg := range cfg.Diags {
		d.log.printf("%s", dg)
	}
	d.files.initFiles(cfg.TrackFiles, true)
	if d.vrrp != nil {
		setup, err := convertVRRP(cfg)
		if err != nil {
			d.log.printf("%v", err)
			d.log.printf("Reload failed: the VRRP side cannot run configuration %s, keeping the running configuration", d.opts.file)
			return
		}
		d.vrrp.reload(setup)
	}
	d.cfgAll = cfg
	old := map[string]*vsState{}
	for _, v := range d.vss {
		old[v.key] = v
	}
	if !d.checkers() {
		d.log.printf("Reload finished")
		return
	}
	d.install(cfg, old)
	d.log.printf("Reload finished")
}

// shutdown is SIGTERM: with omega the down scripts run; unless -I the
// services are removed from lvsd, as keepalived removes its IPVS topology.
func (d *daemon) shutdown() {
	if d.stop != nil {
		d.stop()
		<-d.done
	}
	for _, v := range d.vss {
		if !v.vs.Omega {
			continue
		}
		for _, r := range v.rss {
			if r.alive && r.rs.NotifyDown != nil {
				d.log.printf("Executing [%s] for service %s in VS %s", strings.Join(r.rs.NotifyDown.Args, " "), fmtRS(r.rs, v.vs), v.name)
				d.notify(r.rs.NotifyDown)
			}
		}
		if v.quorumUp && v.vs.QuorumDown != nil {
			d.log.printf("Executing [%s] for VS %s", strings.Join(v.vs.QuorumDown.Args, " "), v.name)
			d.notify(v.vs.QuorumDown)
		}
	}
	if !d.opts.dontReleaseIPVS {
		for id := range d.owned {
			if err := d.lvsd.remove(id); err != nil {
				d.log.printf("%v", err)
			}
		}
	}
	d.lvsd.close()
	done := make(chan struct{})
	go func() { d.scripts.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// credential is who runs a script: its own user, else script_user, else
// keepalived_script if that user exists, else root.
func credential(cfg *keepalived.Config, s *keepalived.Script) *syscall.Credential {
	name, group := s.User, s.Group
	if name == "" {
		name, group = cfg.Global.ScriptUser, cfg.Global.ScriptGroup
	}
	if name == "" {
		if _, err := user.Lookup("keepalived_script"); err == nil {
			name = "keepalived_script"
		}
	}
	if name == "" || name == "root" {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if group != "" {
		if g, err := user.LookupGroup(group); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func (d *daemon) runner(cfg *keepalived.Config) check.Runner {
	return func(ctx context.Context, s *keepalived.Script) (int, error) {
		return check.RunScript(ctx, s, credential(cfg, s))
	}
}

// notify runs a notify or quorum script without waiting for it, as
// keepalived forks it; a script is bounded to a minute.
func (d *daemon) notify(s *keepalived.Script) {
	cred := credential(d.cfg, s)
	d.scripts.Add(1)
	go func() {
		defer d.scripts.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Scripts run as keepalived 2.x runs them, by execve without a
		// shell: a line written for 1.x's system() ("ip addr add A dev
		// lo; ip addr add B dev lo;") fails, and an operator must hear of
		// it rather than find a VIP that was never bound.
		code, err := check.RunScript(ctx, s, cred)
		switch {
		case err != nil:
			d.log.printf("%s: %v", s.Pos, err)
		case code != 0:
			d.log.printf("%s: script %q exited with status %d (scripts run without a shell: write /bin/sh -c '...' for ';' and the like)", s.Pos, strings.Join(s.Args, " "), code)
		}
	}()
}

// refreshLocal re-reads which addresses the director holds and logs
// ha_suspend's changes as keepalived's update_checker_activity does, per
// checker.
func (d *daemon) refreshLocal() {
	if !slices.ContainsFunc(d.vss, func(v *vsState) bool { return v.local != nil }) {
		return
	}
	if owned, err := d.lvsd.ownedVIPs(); err == nil {
		d.addrs.lvsd = owned
	}
	d.addrs.refresh()
	for _, v := range d.vss {
		if v.local == nil {
			continue
		}
		if s := !v.local(); s != v.suspended {
			v.suspended = s
			verb := "Activating"
			if s {
				verb = "Suspending"
			}
			for _, r := range v.rss {
				for range r.rs.Checkers {
					d.log.printf("%s healthchecker for service %s for VS %s", verb, fmtRS(r.rs, v.vs), v.name)
				}
			}
		}
	}
}

// localAddrs caches the addresses the director holds, for ha_suspend:
// keepalived's are the kernel's (on a backup the VIP is not configured);
// here a VIP lvsd serves is never a kernel address, lvsd answers for it
// while it owns it (the VRRP MASTER's, or every served VIP without VRRP),
// so lvsd's owned VIPs count too.
type localAddrs struct {
	mu   sync.Mutex
	set  map[netip.Addr]bool
	lvsd map[netip.Addr]bool // the daemon goroutine's: read by refresh
}

func (l *localAddrs) refresh() {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return
	}
	set := map[netip.Addr]bool{}
	for a := range l.lvsd {
		set[a] = true
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			set[p.Addr().Unmap()] = true
		}
	}
	l.mu.Lock()
	l.set = set
	l.mu.Unlock()
}

// localFunc reports whether any of the services' addresses is local
// (fwmark services count as local).
func (l *localAddrs) localFunc(svcs []config.Service) func() bool {
	return func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, s := range svcs {
			if !s.Addr.IsValid() || l.set[s.Addr] {
				return true
			}
		}
		return false
	}
}
