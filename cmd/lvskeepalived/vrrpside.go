package main

// The VRRP side: the configuration's vrrp_instance blocks run by a
// vrrp.Router in this process, with its state changes carried out by
// splitHooks: a VIP one of the configuration's virtual servers uses is
// lvsd's to answer for (ownership over the control socket, lvsd sends its
// gratuitous ARPs); any other VIP is a kernel address, added and removed
// with netlink and announced by vrrp.KernelHooks, as keepalived does.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"lvslab/ipvs/ctl"
	"lvslab/vrrp"
)

// splitHooks is the vrrp.Hooks of the VRRP side.
type splitHooks struct {
	kernel *vrrp.KernelHooks // its Owner is the lvsdOwner
	owner  *lvsdOwner
	served map[netip.Addr]bool
	log    *logger
	// keep is set on a SIGTERM with -V/--dont-release-vrrp: the stop
	// leaves the addresses and lvsd's ownership as they are.
	keep    atomic.Bool
	scripts sync.WaitGroup
	changed chan struct{} // a state changed: report now
	// onChange (nil: none) is the daemon's: ha_suspend follows.
	onChange chan struct{}
	sync     *syncControl // lvs_sync_daemon; nil without one
}

// split returns copies of c holding only the kernel's VIPs (and all the
// routes) and only lvsd's VIPs.
func (h *splitHooks) split(c *vrrp.Config) (kernel, lvsd *vrrp.Config) {
	k, l := *c, *c
	part := func(vips []vrrp.VIP, served bool) []vrrp.VIP {
		var out []vrrp.VIP
		for _, v := range vips {
			if h.served[v.Prefix.Addr()] == served {
				out = append(out, v)
			}
		}
		return out
	}
	k.VirtualIPAddress, l.VirtualIPAddress = part(c.VirtualIPAddress, false), part(c.VirtualIPAddress, true)
	k.VirtualIPAddressExcluded, l.VirtualIPAddressExcluded = part(c.VirtualIPAddressExcluded, false), part(c.VirtualIPAddressExcluded, true)
	// lvsd's share is announced with the excluded ones too (lvsd answers
	// for them alike); routes stay the kernel's.
	l.VirtualIPAddress = append(l.VirtualIPAddress, l.VirtualIPAddressExcluded...)
	l.VirtualRoutes = nil
	return &k, &l
}

func (h *splitHooks) Prepare(c *vrrp.Config) error {
	if err := h.kernel.Prepare(c); err != nil {
		return err
	}
	// An instance starts in BACKUP: lvsd must not answer for its VIPs
	// (an lvsd started without --no-arp owns them all).
	_, l := h.split(c)
	if len(l.VirtualIPAddress) > 0 {
		if err := h.kernel.OwnVIPs(l, false); err != nil {
			h.log.printf("(%s) lvsd: release at start: %v", c.Name, err)
		}
	}
	return nil
}

func (h *splitHooks) SetAddresses(c *vrrp.Config, up bool) error {
	if !up && h.keep.Load() {
		return nil
	}
	k, _ := h.split(c)
	return h.kernel.SetAddresses(k, up)
}

func (h *splitHooks) OwnVIPs(c *vrrp.Config, own bool) error {
	if !own && h.keep.Load() {
		return nil
	}
	_, l := h.split(c)
	if len(l.VirtualIPAddress) == 0 {
		return nil
	}
	return h.kernel.OwnVIPs(l, own)
}

func (h *splitHooks) GARP(c *vrrp.Config, repeat int) error {
	k, l := h.split(c)
	err := h.kernel.GARP(k, repeat)
	var addrs []netip.Addr
	for _, v := range l.VirtualIPAddress {
		addrs = append(addrs, v.Prefix.Addr())
	}
	if e := h.owner.GARP(c.Name, addrs, repeat); e != nil && err == nil {
		err = e
	}
	return err
}

// Notify runs the scripts as vrrp.KernelHooks does (asynchronously, one
// notification's scripts in order), counted so a stop waits for
// notify_stop.
func (h *splitHooks) Notify(n vrrp.Notification) {
	for _, c := range []chan struct{}{h.changed, h.onChange} {
		if c == nil {
			continue
		}
		select {
		case c <- struct{}{}:
		default:
		}
	}
	if h.sync != nil && n.Instance != nil {
		h.sync.state(n.Instance.Name, n.State)
	}
	scripts := n.Scripts()
	if len(scripts) == 0 {
		return
	}
	h.scripts.Add(1)
	go func() {
		defer h.scripts.Done()
		for _, argv := range scripts {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
			cancel()
			if err != nil {
				h.log.printf("notify script %s failed: %v %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
			}
		}
	}()
}

func (h *splitHooks) Cleanup(c *vrrp.Config) error {
	if h.keep.Load() && c.UseVMAC {
		return nil // the VIPs stay on the VMAC
	}
	return h.kernel.Cleanup(c)
}

// vrrpSide runs one configuration's VRRP instances until stopped or
// replaced by a reload.
type vrrpSide struct {
	log   *logger
	owner *lvsdOwner

	onChange chan struct{}

	setup  *vrrpSetup
	router *vrrp.Router
	hooks  *splitHooks
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	since map[string]time.Time
	last  map[string]vrrp.State
	// stopReport ends the reporter of the running router.
	stopReport chan struct{}
	reported   chan struct{}
}

// startVRRP starts a converted setup's instances (nothing if it has none).
// changed (may be nil) hears of every state change, after its addresses
// and ownership were carried out.
func startVRRP(s *vrrpSetup, socket string, log *logger, changed chan struct{}) *vrrpSide {
	v := &vrrpSide{log: log, owner: &lvsdOwner{socket: socket, logf: log.printf, notify: changed}, onChange: changed}
	v.start(s)
	return v
}

func (v *vrrpSide) start(s *vrrpSetup) {
	for _, w := range s.Warnings {
		v.log.printf("%s", w)
	}
	v.setup = s
	v.owner.reset()
	slogger := slog.New(&printfHandler{log: v.log})
	h := &splitHooks{owner: v.owner, served: s.Served, log: v.log, changed: make(chan struct{}, 1), onChange: v.onChange,
		kernel: &vrrp.KernelHooks{Owner: v.owner, Log: slogger}}
	v.hooks = h
	if s.Sync != nil {
		h.sync = newSyncControl(v.owner.socket, *s.Sync, v.log)
	}
	if err := h.kernel.ApplyStatic(s.Static); err != nil {
		v.log.printf("static addresses and routes: %v", err)
	}
	v.since, v.last = map[string]time.Time{}, map[string]vrrp.State{}
	v.stopReport, v.reported = make(chan struct{}), make(chan struct{})
	if len(s.Instances) == 0 {
		close(v.reported)
		return
	}
	insts := make([]vrrp.Config, len(s.Instances))
	for i, c := range s.Instances {
		insts[i] = cloneConfig(c)
	}
	r, err := vrrp.NewRouter(vrrp.Options{Instances: insts, Groups: s.Groups, Hooks: h, Log: slogger})
	if err != nil {
		// convertVRRP normalized every instance already: only a rule
		// NewRouter adds (an instance twice) can be left.
		v.log.printf("VRRP: %v", err)
		close(v.reported)
		return
	}
	v.router = r
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	v.done = make(chan struct{})
	go func() {
		defer close(v.done)
		if err := r.Run(ctx); err != nil {
			// keepalived logs and carries on with the checkers too.
			v.log.printf("VRRP: %v", err)
		}
	}()
	go v.reporter(r, h)
}

// reporter tells lvsd the instances' states when one changes (and every
// resendEvery, with the ownership, in case lvsd restarted).
func (v *vrrpSide) reporter(r *vrrp.Router, h *splitHooks) {
	defer close(v.reported)
	poll := time.NewTicker(100 * time.Millisecond) // priority changes of track_script weights notify nothing
	defer poll.Stop()
	lastSent, prev := time.Time{}, ""
	for {
		st := v.status(r)
		key := fmt.Sprint(st)
		switch {
		case key != prev:
			_ = v.owner.Report(st)
			prev, lastSent = key, time.Now()
		case time.Since(lastSent) >= resendEvery:
			_ = v.owner.Resend()
			lastSent = time.Now()
		}
		select {
		case <-v.stopReport:
			return
		case <-h.changed:
		case <-poll.C:
		}
	}
}

// status is the instances as lvsd's report shows them.
func (v *vrrpSide) status(r *vrrp.Router) []ctl.VRRPStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []ctl.VRRPStatus
	for _, c := range v.setup.Instances {
		in := r.Instance(c.Name)
		if in == nil {
			continue
		}
		s := in.State()
		if old, ok := v.last[c.Name]; !ok || old != s {
			v.last[c.Name], v.since[c.Name] = s, time.Now()
		}
		st := ctl.VRRPStatus{Instance: c.Name, VRID: c.VRID, Interface: c.Interface, State: s.String(), Priority: in.Priority(), Since: v.since[c.Name]}
		for _, a := range c.VirtualIPAddress {
			st.VIPs = append(st.VIPs, a.Prefix.Addr())
		}
		out = append(out, st)
	}
	return out
}

// stop ends the router as SIGTERM does (priority 0, VIPs released unless
// keep, notify_stop), then tells lvsd the final states.
func (v *vrrpSide) stop(keep bool) {
	if v.router == nil {
		v.stopSync()
		return
	}
	v.hooks.keep.Store(keep)
	v.cancel()
	<-v.done
	close(v.stopReport)
	<-v.reported
	_ = v.owner.Report(v.status(v.router))
	// The releases of the stop and this report are queued: they must reach
	// lvsd before the process exits or the side restarts.
	if !v.owner.flush(3 * time.Second) {
		v.log.printf("lvsd: the last ownership changes and states were not all sent")
	}
	v.stopSync()
	done := make(chan struct{})
	go func() { v.hooks.scripts.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		v.log.printf("VRRP: notify scripts still running at stop")
	}
	v.router = nil
}

// stopSync stops lvsd's sync daemons at the end of the VRRP side, as
// keepalived's stop_vrrp does.
func (v *vrrpSide) stopSync() {
	if v.hooks != nil && v.hooks.sync != nil {
		v.hooks.sync.stop()
		v.hooks.sync = nil
	}
}

// reload is SIGHUP for the VRRP side. An unchanged VRRP configuration
// keeps running untouched; a changed one is handed to the running router,
// which carries each instance's state over as keepalived 2.2.7 does (a
// MASTER stays MASTER with its VIPs, gains the new ones and drops the
// removed ones; see vrrp.Router.Reload). Two changes restart the VRRP
// side instead (SIGTERM's stop, then a fresh start, the peer holding the
// VIPs meanwhile): lvs_sync_daemon changed, or a VIP moved between
// lvsd's and the kernel's (a virtual server added or removed on it). The
// caller has converted the configuration (one the VRRP side cannot run
// changes nothing, on either side).
func (v *vrrpSide) reload(s *vrrpSetup) {
	if v.setup != nil && reflect.DeepEqual(s.Instances, v.setup.Instances) && reflect.DeepEqual(s.Groups, v.setup.Groups) &&
		reflect.DeepEqual(s.Static, v.setup.Static) && reflect.DeepEqual(s.Served, v.setup.Served) && reflect.DeepEqual(s.Sync, v.setup.Sync) {
		v.log.printf("VRRP configuration unchanged")
		return
	}
	why := ""
	switch {
	case v.router == nil:
		why = "no instances were running"
	case !reflect.DeepEqual(s.Sync, v.setup.Sync):
		why = "lvs_sync_daemon changed"
	case v.movedVIP(s):
		why = "a VIP moved between lvsd and the kernel"
	}
	if why == "" {
		insts := make([]vrrp.Config, len(s.Instances))
		for i, c := range s.Instances {
			insts[i] = cloneConfig(c)
		}
		err := v.router.Reload(vrrp.Options{Instances: insts, Groups: s.Groups})
		if errors.Is(err, vrrp.ErrNotRunning) {
			why = "the VRRP side had stopped"
		} else {
			for _, w := range s.Warnings {
				v.log.printf("%s", w)
			}
			if err != nil {
				v.log.printf("VRRP reload: %v", err)
			}
			// The static addresses are changed with hooks of their own:
			// the router's belong to its event loop. The router's hooks
			// keep the old served map: every VIP in use is classed as
			// before (movedVIP), so it gives the same answers.
			static := &vrrp.KernelHooks{Log: slog.New(&printfHandler{log: v.log})}
			if err := static.ReplaceStatic(v.setup.Static, s.Static); err != nil {
				v.log.printf("static addresses and routes: %v", err)
			}
			v.mu.Lock()
			v.setup = s
			v.mu.Unlock()
			select {
			case v.hooks.changed <- struct{}{}:
			default:
			}
			v.log.printf("VRRP configuration reloaded (%d instances, states kept)", len(s.Instances))
			return
		}
	}
	v.log.printf("VRRP side restarting: %s", why)
	v.stop(false)
	v.start(s)
	v.log.printf("VRRP configuration reloaded (%d instances)", len(s.Instances))
}

// movedVIP: a VIP of the running or the new instances is lvsd's in one
// configuration and the kernel's in the other.
func (v *vrrpSide) movedVIP(s *vrrpSetup) bool {
	for _, set := range [][]vrrp.Config{v.setup.Instances, s.Instances} {
		for _, c := range set {
			for _, a := range append(slices.Clone(c.VirtualIPAddress), c.VirtualIPAddressExcluded...) {
				if v.setup.Served[a.Prefix.Addr()] != s.Served[a.Prefix.Addr()] {
					return true
				}
			}
		}
	}
	return false
}

// printfHandler is slog onto the logger: the vrrp package's messages are
// keepalived's texts, the attributes follow as key=value.
type printfHandler struct {
	log   *logger
	attrs []slog.Attr
}

func (p *printfHandler) Enabled(context.Context, slog.Level) bool { return true }

func (p *printfHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value.Any())
		return true
	}
	for _, a := range p.attrs {
		add(a)
	}
	r.Attrs(add)
	p.log.printf("%s", b.String())
	return nil
}

func (p *printfHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &printfHandler{log: p.log, attrs: append(slices.Clone(p.attrs), as...)}
}

func (p *printfHandler) WithGroup(string) slog.Handler { return p }
