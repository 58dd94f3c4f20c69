package rs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lvslab/internal/netns"
)

// ErrAlreadyStarted says this namespace already has a different or a
// running setup.
var ErrAlreadyStarted = errors.New("lvsrs is already started in this network namespace")

// Setup is an applied configuration.
type Setup struct {
	state   *State
	opts    Options
	already bool
	tun     *os.File // userspace tun mode: the device lives while this is open
	raw     *os.File
	decap   *Decapsulator
}

// State returns what was applied (a copy).
func (s *Setup) State() State {
	st := *s.state
	st.Items = append([]Item(nil), s.state.Items...)
	return st
}

// AlreadyApplied is true when Start found the same configuration in place
// and changed nothing.
func (s *Setup) AlreadyApplied() bool { return s.already }

// Foreground reports whether this setup needs the process to stay: the
// userspace decapsulator must run (Serve) for tun mode to work.
func (s *Setup) Foreground() bool { return s.decap != nil }

// Stats returns the decapsulator's counters (zero outside userspace tun).
func (s *Setup) Stats() DecapStats {
	if s.decap == nil {
		return DecapStats{}
	}
	return s.decap.Stats()
}

// Serve runs the userspace decapsulator until ctx is done, then reverts
// everything Start changed. Call it on a thread in the namespace Start ran
// in.
func (s *Setup) Serve(ctx context.Context) error {
	if s.decap == nil {
		return errors.New("this setup needs no foreground process")
	}
	log := s.opts.logger()
	log.Info("decapsulating IP-in-IP in userspace", "tun", s.state.Config.TUNName, "vips", s.state.Config.VIPs)
	runErr := s.decap.Run(ctx)
	if runErr != nil {
		log.Error("decapsulator stopped", "err", runErr)
	}
	log.Info("decapsulator counters", "stats", s.decap.Stats().String())
	return errors.Join(runErr, s.Revert())
}

// Revert undoes everything Start changed and removes the state file. Call
// it on a thread in the namespace Start ran in.
func (s *Setup) Revert() error {
	if s.raw != nil {
		s.raw.Close()
		s.raw = nil
	}
	st, err := openStore(s.opts.stateDir())
	if err != nil {
		return err
	}
	if !s.state.NetNS.Same(st.ns) {
		return fmt.Errorf("revert called in network namespace %d, the setup is in %d", st.ns.Inode, s.state.NetNS.Inode)
	}
	if err := st.Lock(); err != nil {
		return err
	}
	defer st.Unlock()
	err = revertAndForget(st, s.state, s.tun, s.opts.logger())
	s.tun = nil
	return err
}

// Start applies cfg to the calling thread's network namespace and records
// it. If the same configuration is already applied and intact it changes
// nothing (AlreadyApplied); a different one is ErrAlreadyStarted. On error
// everything it changed is reverted.
func Start(cfg Config, opts Options) (*Setup, error) {
	cfg = cfg.normalized()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	log := opts.logger()
	st, err := openStore(opts.stateDir())
	if err != nil {
		return nil, err
	}
	if err := st.Lock(); err != nil {
		return nil, err
	}
	defer st.Unlock()

	old, err := st.load()
	switch {
	case err == nil:
		return alreadyStarted(old, cfg, opts)
	case errors.Is(err, errStale):
		log.Warn("replacing a state file left by a network namespace that no longer exists", "path", st.Path())
	case !errors.Is(err, ErrNotStarted):
		return nil, err
	}

	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	state := &State{Version: stateVersion, NetNS: st.ns, Config: cfg, Started: time.Now().UTC().Truncate(time.Second)}
	setup := &Setup{state: state, opts: opts}
	a := &applier{h: h, st: state, store: st, log: log, seen: map[string]bool{}}
	if err := a.apply(setup); err != nil {
		if setup.raw != nil {
			setup.raw.Close()
		}
		rerr := revertAndForget(st, state, setup.tun, log)
		return nil, errors.Join(err, rerr)
	}
	log.Info("applied", "config", cfg.String(), "state", st.Path())
	return setup, nil
}

func alreadyStarted(old *State, cfg Config, opts Options) (*Setup, error) {
	if !old.Config.Equal(cfg) {
		return nil, fmt.Errorf("%w with %s; run stop first", ErrAlreadyStarted, old.Config)
	}
	if old.Owner != nil {
		if old.Owner.Alive() {
			return nil, fmt.Errorf("%w: its decapsulator runs as pid %d", ErrAlreadyStarted, old.Owner.PID)
		}
		return nil, fmt.Errorf("%w: the decapsulator (pid %d) ended without reverting; run stop first", ErrAlreadyStarted, old.Owner.PID)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	var bad []string
	for _, c := range verify(h, old) {
		if !c.OK {
			bad = append(bad, c.Item+": "+c.Problem)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w, but no longer intact (%s); run stop, then start", ErrAlreadyStarted, strings.Join(bad, "; "))
	}
	return &Setup{state: old, opts: opts, already: true}, nil
}

// applier makes the changes, recording each one as soon as it is made.
type applier struct {
	h     *netlink.Handle
	st    *State
	store *store
	log   *slog.Logger
	seen  map[string]bool // sysctl keys already planned
}

func (a *applier) record(it Item) error {
	a.st.Items = append(a.st.Items, it)
	a.log.Debug("applied", "item", it.String())
	return a.store.save(a.st)
}

func (a *applier) apply(s *Setup) error {
	cfg := a.st.Config
	if cfg.Iface != "" {
		if _, err := a.h.LinkByName(cfg.Iface); err != nil {
			return fmt.Errorf("interface %s: %w", cfg.Iface, err)
		}
	}
	if err := a.store.save(a.st); err != nil {
		return err
	}
	switch cfg.Mode {
	case ModeDR:
		// ARP settings before the VIPs, so no VIP is ever announced.
		if err := a.arpSysctls(); err != nil {
			return err
		}
		if err := a.rpFilter("all", cfg.Iface); err != nil {
			return err
		}
		return a.vips("lo")
	case ModeNAT:
		return a.natRoute()
	case ModeTUN:
		var dev string
		if !cfg.Userspace && KernelIPIP() {
			var err error
			if dev, err = a.tunl0(); err != nil {
				return err
			}
		} else {
			a.st.Userspace = true
			owner, err := selfOwner()
			if err != nil {
				return err
			}
			a.st.Owner = owner
			if dev, err = a.userspaceTUN(s, cfg.TUNName); err != nil {
				return err
			}
		}
		if err := a.arpSysctls(); err != nil {
			return err
		}
		if err := a.rpFilter("all", dev, cfg.Iface); err != nil {
			return err
		}
		if err := a.vips(dev); err != nil {
			return err
		}
		if a.st.Userspace {
			raw, err := openIPIPSocket()
			if err != nil {
				return err
			}
			s.raw = raw
			s.decap = NewDecapsulator(raw, s.tun, cfg.VIPs)
		}
		return nil
	}
	return fmt.Errorf("unknown mode %q", cfg.Mode)
}

// arpSysctls: answer ARP only for addresses of the receiving interface,
// and never source ARP from the VIP (the seeds' four lines, plus the
// interface facing the director as seed 003 advises).
func (a *applier) arpSysctls() error {
	for _, dev := range []string{"all", "lo", a.st.Config.Iface} {
		if err := a.sysctl(confKey(dev, "arp_ignore"), "1"); err != nil {
			return err
		}
		if err := a.sysctl(confKey(dev, "arp_announce"), "2"); err != nil {
			return err
		}
	}
	return nil
}

// rpFilter turns reverse-path filtering off where the requests arrive: the
// replies leave by another path. The effective value is the maximum of
// "all" and the device's, so both.
func (a *applier) rpFilter(devs ...string) error {
	for _, dev := range devs {
		if err := a.sysctl(confKey(dev, "rp_filter"), "0"); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) sysctl(key, want string) error {
	if strings.Contains(key, "//") || a.seen[key] { // no device given, or twice
		return nil
	}
	a.seen[key] = true
	prev, err := netns.ReadSysctl(key)
	if err != nil {
		return err
	}
	it := &SysctlItem{Key: key, Want: want, Prev: prev}
	if prev != want {
		if err := netns.WriteSysctl(key, want); err != nil {
			return err
		}
		it.Changed = true
	}
	return a.record(Item{Sysctl: it})
}

func (a *applier) vips(dev string) error {
	label := a.st.Config.Label
	if label != "" && label != dev && !strings.HasPrefix(label, dev+":") {
		return fmt.Errorf("label %q must start with %q, the device holding the VIPs", label, dev+":")
	}
	link, err := a.h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("VIP device %s: %w", dev, err)
	}
	have, err := addrList(a.h)
	if err != nil {
		return err
	}
	for _, vip := range a.st.Config.VIPs {
		it := &AddrItem{Dev: dev, Prefix: netip.PrefixFrom(vip, 32), Label: label}
		present := false
		for _, ad := range have {
			if addrOf(ad.IP) != vip {
				continue
			}
			if ad.LinkIndex != link.Attrs().Index {
				// On a network interface the RS would answer ARP for the VIP
				// and steal the director's traffic.
				return fmt.Errorf("VIP %s is already configured on %s; a real server holds it only on %s", vip, linkName(a.h, ad.LinkIndex), dev)
			}
			present = true
		}
		if !present {
			if err := a.h.AddrAdd(link, nlAddr(it)); err != nil {
				return fmt.Errorf("add %s to %s: %w", it.Prefix, dev, err)
			}
			it.Added = true
		}
		if err := a.record(Item{Addr: it}); err != nil {
			return err
		}
	}
	return nil
}

func nlAddr(it *AddrItem) *netlink.Addr {
	p := it.Prefix
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Label: it.Label,
	}
}

func addrList(h *netlink.Handle) ([]netlink.Addr, error) {
	as, err := netns.Retry(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	return as, nil
}

func (a *applier) natRoute() error {
	cfg := a.st.Config
	dev := cfg.Iface
	if dev == "" {
		rs, err := a.h.RouteGet(ipOf(cfg.DIP))
		if err != nil || len(rs) == 0 {
			return fmt.Errorf("no route to the director %s: %w", cfg.DIP, err)
		}
		if rs[0].Gw != nil {
			return fmt.Errorf("director %s is not on a directly connected network (reached via %s)", cfg.DIP, rs[0].Gw)
		}
		dev = linkName(a.h, rs[0].LinkIndex)
	}
	want := SavedRoute{Gw: cfg.DIP, Dev: dev, Type: unix.RTN_UNICAST}
	olds, err := defaultRoutes(a.h)
	if err != nil {
		return err
	}
	it := &RouteItem{Want: want}
	keep := false
	for _, old := range olds {
		if want.matches(a.h, old) && !keep {
			keep = true
			continue
		}
		saved := saveRoute(a.h, old)
		if err := a.h.RouteDel(&old); err != nil {
			return errors.Join(fmt.Errorf("delete default route %s: %w", saved, err), a.restoreRoutes(it.Replaced))
		}
		it.Replaced = append(it.Replaced, saved)
	}
	if !keep {
		nr, err := want.netlink(a.h)
		if err == nil {
			err = a.h.RouteAdd(nr)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("add %s: %w", want, err), a.restoreRoutes(it.Replaced))
		}
		it.Added = true
	}
	return a.record(Item{Route: it})
}

func (a *applier) restoreRoutes(rs []SavedRoute) error {
	var errs []error
	for _, r := range rs {
		if err := addRoute(a.h, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func addRoute(h *netlink.Handle, r SavedRoute) error {
	nr, err := r.netlink(h)
	if err == nil {
		err = h.RouteAdd(nr)
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("restore %s: %w", r, err)
	}
	return nil
}

// tunl0 makes sure the kernel's fallback IP-in-IP device exists and is up.
func (a *applier) tunl0() (string, error) {
	const name = "tunl0"
	it := &LinkItem{Name: name, Kind: "ipip"}
	l, err := a.h.LinkByName(name)
	if err != nil {
		if !isLinkNotFound(err) {
			return "", fmt.Errorf("link %s: %w", name, err)
		}
		// Namespaces may be created without fallback tunnels
		// (net.core.fb_tunnels_only_for_init_net): make one.
		la := netlink.NewLinkAttrs()
		la.Name = name
		// As the fallback device is: any endpoints, PMTU discovery on.
		if err := a.h.LinkAdd(&netlink.Iptun{LinkAttrs: la, PMtuDisc: 1, Proto: unix.IPPROTO_IPIP}); err != nil {
			return "", fmt.Errorf("create %s: %w", name, err)
		}
		it.Created = true
		if err := a.record(Item{Link: it}); err != nil {
			return "", err
		}
		if l, err = a.h.LinkByName(name); err != nil {
			return "", fmt.Errorf("link %s: %w", name, err)
		}
	} else if l.Type() != "ipip" {
		return "", fmt.Errorf("%s exists but is a %s device, not ipip", name, l.Type())
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := a.h.LinkSetUp(l); err != nil {
			return "", fmt.Errorf("set %s up: %w", name, err)
		}
		it.SetUp = !it.Created
	}
	if it.Created {
		return name, a.store.save(a.st) // the item is already recorded
	}
	return name, a.record(Item{Link: it})
}

// userspaceTUN creates the TUN device the decapsulator writes to.
func (a *applier) userspaceTUN(s *Setup, name string) (string, error) {
	if _, err := a.h.LinkByName(name); err == nil {
		return "", fmt.Errorf("device %s already exists (another decapsulator? choose another name)", name)
	}
	f, got, err := openTUN(name)
	if err != nil {
		return "", err
	}
	s.tun = f
	if err := a.record(Item{Link: &LinkItem{Name: got, Kind: "tun", Created: true}}); err != nil {
		return "", err
	}
	l, err := a.h.LinkByName(got)
	if err == nil {
		err = a.h.LinkSetUp(l)
	}
	if err != nil {
		return "", fmt.Errorf("set %s up: %w", got, err)
	}
	return got, nil
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// revertAndForget reverts st and removes the state file; what could not be
// reverted stays recorded for a later stop. tun is the open TUN device of a
// userspace setup owned by this process, or nil.
func revertAndForget(s *store, st *State, tun *os.File, log *slog.Logger) error {
	h, err := netlink.NewHandle()
	if err != nil {
		if tun != nil {
			tun.Close()
		}
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	left, rerr := revertItems(h, st.Items, tun, log)
	if len(left) == 0 {
		return errors.Join(rerr, s.remove())
	}
	st.Items = left
	return errors.Join(rerr, s.save(st))
}

// revertItems undoes items in reverse order, returning those it could not.
func revertItems(h *netlink.Handle, items []Item, tun *os.File, log *slog.Logger) ([]Item, error) {
	var errs []error
	var left []Item
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		if err := revertItem(h, it, tun, log); err != nil {
			errs = append(errs, err)
			left = append([]Item{it}, left...)
		}
	}
	return left, errors.Join(errs...)
}

func revertItem(h *netlink.Handle, it Item, tun *os.File, log *slog.Logger) error {
	switch {
	case it.Sysctl != nil:
		s := it.Sysctl
		if !s.Changed {
			return nil
		}
		err := netns.WriteSysctl(s.Key, s.Prev)
		if errors.Is(err, fs.ErrNotExist) {
			// The device went away, and its settings with it.
			log.Debug("nothing to restore, device gone", "key", s.Key)
			return nil
		}
		if err == nil {
			log.Debug("reverted", "item", it.String())
		}
		return err
	case it.Addr != nil:
		a := it.Addr
		if !a.Added {
			return nil
		}
		l, err := h.LinkByName(a.Dev)
		if err != nil {
			if isLinkNotFound(err) {
				return nil
			}
			return fmt.Errorf("link %s: %w", a.Dev, err)
		}
		if err := h.AddrDel(l, nlAddr(a)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("delete %s from %s: %w", a.Prefix, a.Dev, err)
		}
		log.Debug("reverted", "item", it.String())
		return nil
	case it.Link != nil:
		return revertLink(h, it.Link, tun, log)
	case it.Route != nil:
		r := it.Route
		var errs []error
		if r.Added {
			live, err := defaultRoutes(h)
			if err != nil {
				return err
			}
			for _, lr := range live {
				if r.Want.matches(h, lr) {
					if err := h.RouteDel(&lr); err != nil {
						errs = append(errs, fmt.Errorf("delete %s: %w", r.Want, err))
					}
				}
			}
		}
		for _, old := range r.Replaced {
			if err := addRoute(h, old); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 {
			log.Debug("reverted", "item", it.String())
		}
		return errors.Join(errs...)
	}
	return nil
}

func revertLink(h *netlink.Handle, l *LinkItem, tun *os.File, log *slog.Logger) error {
	switch {
	case l.Kind == "tun" && l.Created:
		if tun != nil {
			// The device is not persistent: closing its only file removes it.
			if err := tun.Close(); err != nil {
				return fmt.Errorf("close TUN device %s: %w", l.Name, err)
			}
			log.Debug("removed TUN device", "name", l.Name)
			return nil
		}
		// Its owner is gone, and the device with it. One by this name now
		// belongs to someone else.
		if _, err := h.LinkByName(l.Name); err == nil {
			log.Warn("a device of the decapsulator's name exists but its owner has exited; left alone", "name", l.Name)
		}
		return nil
	case l.Created:
		lk, err := h.LinkByName(l.Name)
		if err != nil {
			if isLinkNotFound(err) {
				return nil
			}
			return fmt.Errorf("link %s: %w", l.Name, err)
		}
		if err := h.LinkDel(lk); err != nil {
			return fmt.Errorf("delete %s: %w", l.Name, err)
		}
		return nil
	case l.SetUp:
		lk, err := h.LinkByName(l.Name)
		if err != nil {
			if isLinkNotFound(err) {
				return nil
			}
			return fmt.Errorf("link %s: %w", l.Name, err)
		}
		if err := h.LinkSetDown(lk); err != nil {
			return fmt.Errorf("set %s down: %w", l.Name, err)
		}
	}
	return nil
}

// Check is one verified item of Status.
type Check struct {
	Item    string
	OK      bool
	Problem string // why not OK
}

func verify(h *netlink.Handle, st *State) []Check {
	var cs []Check
	if st.Owner != nil {
		c := Check{Item: fmt.Sprintf("decapsulator process %d", st.Owner.PID), OK: st.Owner.Alive()}
		if !c.OK {
			c.Problem = "not running"
		}
		cs = append(cs, c)
	}
	addrs, addrErr := addrList(h)
	for _, it := range st.Items {
		c := Check{Item: it.String(), OK: true}
		switch {
		case it.Sysctl != nil:
			v, err := netns.ReadSysctl(it.Sysctl.Key)
			switch {
			case err != nil:
				c.OK, c.Problem = false, err.Error()
			case v != it.Sysctl.Want:
				c.OK, c.Problem = false, fmt.Sprintf("is %s", v)
			}
		case it.Addr != nil:
			l, err := h.LinkByName(it.Addr.Dev)
			if err != nil {
				c.OK, c.Problem = false, fmt.Sprintf("device %s: %v", it.Addr.Dev, err)
				break
			}
			if addrErr != nil {
				c.OK, c.Problem = false, addrErr.Error()
				break
			}
			found := false
			for _, ad := range addrs {
				if ad.LinkIndex == l.Attrs().Index && addrOf(ad.IP) == it.Addr.Prefix.Addr() {
					found = true
				}
			}
			if !found {
				c.OK, c.Problem = false, "address missing"
			}
		case it.Link != nil:
			l, err := h.LinkByName(it.Link.Name)
			switch {
			case err != nil:
				c.OK, c.Problem = false, "device missing"
			case l.Attrs().Flags&net.FlagUp == 0:
				c.OK, c.Problem = false, "device down"
			}
		case it.Route != nil:
			live, err := defaultRoutes(h)
			if err != nil {
				c.OK, c.Problem = false, err.Error()
				break
			}
			found := false
			for _, lr := range live {
				if it.Route.Want.matches(h, lr) {
					found = true
				}
			}
			if !found {
				c.OK, c.Problem = false, "default route missing"
			} else if len(live) > 1 {
				c.OK, c.Problem = false, fmt.Sprintf("%d default routes, want only this one", len(live))
			}
		}
		cs = append(cs, c)
	}
	return cs
}

// Status verifies the setup recorded for the calling thread's network
// namespace. It returns ErrNotStarted if there is none.
func Status(opts Options) (*State, []Check, error) {
	s, err := openStore(opts.stateDir())
	if err != nil {
		return nil, nil, err
	}
	if err := s.Lock(); err != nil {
		return nil, nil, err
	}
	defer s.Unlock()
	st, err := s.load()
	if errors.Is(err, errStale) {
		return nil, nil, fmt.Errorf("%w (%s is stale: %w)", ErrNotStarted, s.Path(), err)
	}
	if err != nil {
		return nil, nil, err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	return st, verify(h, st), nil
}

// Stop reverts the setup recorded for the calling thread's network
// namespace and removes its state file. A running foreground decapsulator
// is sent SIGTERM and reverts itself; Stop waits for that until ctx is
// done. It returns ErrNotStarted if nothing is recorded.
func Stop(ctx context.Context, opts Options) (*State, error) {
	s, err := openStore(opts.stateDir())
	if err != nil {
		return nil, err
	}
	if err := s.Lock(); err != nil {
		return nil, err
	}
	st, err := s.load()
	if errors.Is(err, errStale) {
		rerr := s.remove()
		s.Unlock()
		return nil, errors.Join(fmt.Errorf("%w (removed stale %s)", ErrNotStarted, s.Path()), rerr)
	}
	if err != nil {
		s.Unlock()
		return nil, err
	}
	if st.Owner.Alive() {
		s.Unlock()
		if st.Owner.PID == os.Getpid() {
			return st, errors.New("the decapsulator runs in this process: cancel its Serve context instead")
		}
		return st, stopOwner(ctx, s, st.Owner, opts.logger())
	}
	defer s.Unlock()
	return st, revertAndForget(s, st, nil, opts.logger())
}

// stopOwner asks the foreground process to revert, and finishes the job
// itself if that process dies without doing it.
func stopOwner(ctx context.Context, s *store, o *Owner, log *slog.Logger) error {
	log.Info("asking the decapsulator to stop", "pid", o.PID)
	if err := syscall.Kill(o.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal decapsulator pid %d: %w", o.PID, err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(s.Path()); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !o.Alive() {
			if err := s.Lock(); err != nil {
				return err
			}
			defer s.Unlock()
			st, err := s.load()
			if errors.Is(err, ErrNotStarted) {
				return nil
			}
			if err != nil {
				return err
			}
			log.Warn("the decapsulator exited without reverting everything; reverting the rest", "pid", o.PID)
			return revertAndForget(s, st, nil, log)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("decapsulator pid %d did not stop: %w", o.PID, ctx.Err())
		case <-tick.C:
		}
	}
}
