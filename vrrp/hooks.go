package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// Hooks is what a state change does outside the protocol. The runtime calls
// them from its one event-loop goroutine, in the order the machine emits
// actions. lvskeepalived passes a KernelHooks with its lvsd client as Owner.
type Hooks interface {
	// Prepare runs once before the instance starts (creates the VMAC).
	Prepare(cfg *Config) error
	// SetAddresses adds (up) or removes the instance's virtual_ipaddress,
	// virtual_ipaddress_excluded and virtual_routes.
	SetAddresses(cfg *Config, up bool) error
	// OwnVIPs tells the forwarder the instance owns (or released) its VIPs.
	OwnVIPs(cfg *Config, own bool) error
	// GARP sends repeat gratuitous ARPs for every VIP.
	GARP(cfg *Config, repeat int) error
	// Notify runs the notify scripts of a state change.
	Notify(n Notification)
	// Cleanup undoes Prepare when the instance stops.
	Cleanup(cfg *Config) error
}

// VIPOwner is the forwarder side of a state change: lvskeepalived
// implements it by telling lvsd over its control socket which VIPs it owns
// (lvsd then answers ARP for them).
type VIPOwner interface {
	OwnVIPs(instance string, vips []netip.Prefix, own bool) error
}

// Notification is one notify event (reference §2.7).
type Notification struct {
	// Instance is set for an instance's notification, Group for a sync
	// group's (the generic notify gets "GROUP name state 0").
	Instance *Config
	Group    *SyncGroup
	State    State
	Priority uint8
}

// Scripts returns the command lines keepalived would run, in its order:
// the state's own script as configured (no arguments added), then the
// generic `notify` with TYPE NAME STATE PRIORITY appended.
func (n Notification) Scripts() [][]string {
	var specific, generic, kind, name string
	prio := int(n.Priority)
	pick := func(master, backup, fault, stop string) string {
		switch n.State {
		case Master:
			return master
		case Backup:
			return backup
		case Fault:
			return fault
		case Stopped:
			return stop
		}
		return ""
	}
	if n.Group != nil {
		g := n.Group
		specific, generic, kind, name, prio = pick(g.NotifyMaster, g.NotifyBackup, g.NotifyFault, g.NotifyStop), g.Notify, "GROUP", g.Name, 0
	} else if c := n.Instance; c != nil {
		specific, generic, kind, name = pick(c.NotifyMaster, c.NotifyBackup, c.NotifyFault, c.NotifyStop), c.Notify, "INSTANCE", c.Name
	}
	var out [][]string
	if f := splitCommand(specific); len(f) > 0 {
		out = append(out, f)
	}
	if f := splitCommand(generic); len(f) > 0 {
		out = append(out, append(f, kind, name, n.State.String(), strconv.Itoa(prio)))
	}
	return out
}

// splitCommand splits a keepalived script line into words; double or
// single quotes group words, as keepalived's parser does for quoted
// strings.
func splitCommand(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	in := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '"' || r == '\''):
			quote, in = r, true
		case quote == 0 && (r == ' ' || r == '\t'):
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// KernelHooks carries state changes to the kernel of the current network
// namespace (or of Netlink's), as keepalived does: addresses and routes by
// netlink, GARPs on AF_PACKET, the VMAC as a private macvlan; and to lvsd
// through Owner.
type KernelHooks struct {
	Netlink *netlink.Handle // nil: the calling process's namespace
	Owner   VIPOwner        // nil: nobody to tell
	Log     *slog.Logger
	// ScriptTimeout bounds a notify script (default 10 s).
	ScriptTimeout time.Duration

	mu    sync.Mutex
	garps map[string]*GARP
	nl    *netlink.Handle
	// base holds, per VMAC parent interface, how many VMACs changed its
	// arp_ignore/arp_filter and the values to restore after the last.
	base map[string]*baseARP
}

// baseARP is a VMAC parent's ARP sysctls as found.
type baseARP struct {
	users          int
	ignore, filter string
}

func (k *KernelHooks) handle() (*netlink.Handle, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.Netlink != nil {
		return k.Netlink, nil
	}
	if k.nl == nil {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("vrrp: netlink: %w", err)
		}
		k.nl = h
	}
	return k.nl, nil
}

func (k *KernelHooks) log() *slog.Logger {
	if k.Log != nil {
		return k.Log
	}
	return slog.Default()
}

// vipDev is where a VIP goes: its dev, or the VMAC when use_vmac.
func vipDev(c *Config, v VIP) string {
	if c.UseVMAC && v.Dev == c.Interface {
		return c.VMACName
	}
	return v.Dev
}

// Prepare creates the VMAC (use_vmac): a macvlan in private mode on the
// interface, address 00:00:5e:00:01:VRID, up; and sets the ARP sysctls
// keepalived's vrrp_vmac.c sets (see vmacSysctls).
func (k *KernelHooks) Prepare(c *Config) error {
	if !c.UseVMAC {
		return nil
	}
	h, err := k.handle()
	if err != nil {
		return err
	}
	if _, err := h.LinkByName(c.VMACName); err != nil {
		if err := k.createVMAC(h, c); err != nil {
			return err
		}
	}
	return k.vmacSysctls(c)
}

func (k *KernelHooks) createVMAC(h *netlink.Handle, c *Config) error {
	parent, err := h.LinkByName(c.Interface)
	if err != nil {
		return fmt.Errorf("vrrp: %s: use_vmac: interface %s: %w", c.Name, c.Interface, err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = c.VMACName
	la.ParentIndex = parent.Attrs().Index
	mac := c.VMAC()
	la.HardwareAddr = net.HardwareAddr(mac[:])
	mv := &netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_PRIVATE}
	if err := h.LinkAdd(mv); err != nil {
		return fmt.Errorf("vrrp: %s: create vmac %s: %w", c.Name, c.VMACName, err)
	}
	// The broadcast queue off (see vmac_bc.go) where the hooks act on the
	// caller's own namespace, as for the sysctls.
	if k.Netlink == nil {
		err := fmt.Errorf("%s not found after creating it", c.VMACName)
		if l, lerr := h.LinkByName(c.VMACName); lerr == nil {
			err = setBCCutoff(l.Attrs().Index, vmacBCCutoffOff)
		}
		if err != nil {
			k.log().Info("VMAC keeps the macvlan broadcast queue: ARP for its VIPs is answered from a workqueue", "instance", c.Name, "vmac", c.VMACName, "err", err)
		}
	}
	if err := h.LinkSetUp(mv); err != nil {
		return fmt.Errorf("vrrp: %s: vmac %s up: %w", c.Name, c.VMACName, err)
	}
	return nil
}

// Cleanup deletes the VMAC Prepare created and, after the last VMAC on
// its parent, restores the parent's arp_ignore and arp_filter.
func (k *KernelHooks) Cleanup(c *Config) error {
	k.mu.Lock()
	for name, g := range k.garps {
		g.Close()
		delete(k.garps, name)
	}
	k.mu.Unlock()
	if !c.UseVMAC {
		return nil
	}
	h, err := k.handle()
	if err != nil {
		return err
	}
	var errs []error
	if l, err := h.LinkByName(c.VMACName); err == nil {
		if err := h.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("vrrp: %s: delete vmac %s: %w", c.Name, c.VMACName, err))
		}
	}
	return errors.Join(append(errs, k.restoreBase(c))...)
}

// procSysConf is where an interface's IPv4 sysctls are.
const procSysConf = "/proc/sys/net/ipv4/conf"

// vmacSysctls sets what keepalived 2.2.7 sets for a VMAC (vrrp_vmac.c):
// on the macvlan arp_ignore=1 (answer only for its own addresses, the
// VIPs), accept_local=1 (the address owner hears its own adverts),
// rp_filter=0; on the parent arp_ignore=1 and arp_filter=1, "the
// underlying interface mustn't reply for our address(es)". Without the
// parent's, the kernel answers ARP for the VIP on the parent as well,
// with the parent's own MAC (arp_ignore=0 answers for any local address
// on any interface): two hardware addresses answer every request, a
// neighbour that keeps the physical one does not follow a failover (the
// VIP's MAC is meant to move with VRRP), and its traffic goes to the old
// master until the entry goes stale.
//
// /proc/sys/net is the namespace of the calling thread, so this is done
// only when the hooks act on the caller's own namespace (Netlink nil, a
// daemon in the namespace it serves); with a handle into another, the
// caller sets them.
func (k *KernelHooks) vmacSysctls(c *Config) error {
	if k.Netlink != nil {
		return nil
	}
	var errs []error
	for _, kv := range [][2]string{{"arp_ignore", "1"}, {"accept_local", "1"}, {"rp_filter", "0"}} {
		errs = append(errs, writeConf(c.VMACName, kv[0], kv[1]))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if b := k.base[c.Interface]; b != nil {
		b.users++
		return errors.Join(errs...)
	}
	ignore, err1 := readConf(c.Interface, "arp_ignore")
	filter, err2 := readConf(c.Interface, "arp_filter")
	if err := errors.Join(err1, err2); err != nil {
		return errors.Join(append(errs, fmt.Errorf("vrrp: %s: use_vmac: %w", c.Name, err))...)
	}
	if k.base == nil {
		k.base = map[string]*baseARP{}
	}
	k.base[c.Interface] = &baseARP{users: 1, ignore: ignore, filter: filter}
	errs = append(errs, writeConf(c.Interface, "arp_ignore", "1"), writeConf(c.Interface, "arp_filter", "1"))
	return errors.Join(errs...)
}

// restoreBase puts the parent's ARP sysctls back after its last VMAC.
func (k *KernelHooks) restoreBase(c *Config) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.base[c.Interface]
	if b == nil {
		return nil
	}
	if b.users--; b.users > 0 {
		return nil
	}
	delete(k.base, c.Interface)
	return errors.Join(writeConf(c.Interface, "arp_ignore", b.ignore), writeConf(c.Interface, "arp_filter", b.filter))
}

func readConf(iface, key string) (string, error) {
	b, err := os.ReadFile(filepath.Join(procSysConf, iface, key))
	if err != nil {
		return "", fmt.Errorf("sysctl net.ipv4.conf.%s.%s: %w", iface, key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeConf(iface, key, value string) error {
	if err := os.WriteFile(filepath.Join(procSysConf, iface, key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("vrrp: sysctl net.ipv4.conf.%s.%s=%s: %w", iface, key, value, err)
	}
	return nil
}

func parseScope(s string) (netlink.Scope, error) {
	switch s {
	case "", "global":
		return netlink.SCOPE_UNIVERSE, nil
	case "site":
		return netlink.SCOPE_SITE, nil
	case "link":
		return netlink.SCOPE_LINK, nil
	case "host":
		return netlink.SCOPE_HOST, nil
	case "nowhere":
		return netlink.SCOPE_NOWHERE, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("scope %q: want global, site, link, host, nowhere or 0-255", s)
	}
	return netlink.Scope(n), nil
}

// SetAddresses adds or removes VIPs, eVIPs and virtual routes. Adding is
// idempotent (replace); removing ignores addresses already gone.
func (k *KernelHooks) SetAddresses(c *Config, up bool) error {
	var errs []error
	for _, v := range append(append([]VIP(nil), c.VirtualIPAddress...), c.VirtualIPAddressExcluded...) {
		errs = append(errs, k.setAddr(c.Name, vipDev(c, v), v, up))
	}
	for _, r := range c.VirtualRoutes {
		errs = append(errs, k.setRoute(c.Name, r, up))
	}
	return errors.Join(errs...)
}

// ApplyStatic installs static_ipaddress and static_routes (at start, for
// the daemon; keepalived keeps them whatever the VRRP state).
func (k *KernelHooks) ApplyStatic(s Static) error {
	var errs []error
	for _, v := range s.Addresses {
		errs = append(errs, k.setAddr("static_ipaddress", v.Dev, v, true))
	}
	for _, r := range s.Routes {
		errs = append(errs, k.setRoute("static_routes", r, true))
	}
	return errors.Join(errs...)
}

// ReplaceStatic is a reload's static_ipaddress and static_routes: what the
// old configuration had and the new one has not is removed, the new ones
// are installed (keepalived's clear_diff_static_addresses and _routes).
func (k *KernelHooks) ReplaceStatic(old, s Static) error {
	var errs []error
	for _, v := range old.Addresses {
		if !slices.Contains(s.Addresses, v) {
			errs = append(errs, k.setAddr("static_ipaddress", v.Dev, v, false))
		}
	}
	for _, r := range old.Routes {
		if !slices.Contains(s.Routes, r) {
			errs = append(errs, k.setRoute("static_routes", r, false))
		}
	}
	return errors.Join(append(errs, k.ApplyStatic(s))...)
}

func (k *KernelHooks) setAddr(who, dev string, v VIP, up bool) error {
	h, err := k.handle()
	if err != nil {
		return err
	}
	l, err := h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("vrrp: %s: address %s dev %s: %w", who, v.Prefix, dev, err)
	}
	p := v.Prefix
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, Label: v.Label}
	if v.Brd.IsValid() {
		a.Broadcast = v.Brd.AsSlice()
	}
	sc, err := parseScope(v.Scope)
	if err != nil {
		return fmt.Errorf("vrrp: %s: address %s: %w", who, v.Prefix, err)
	}
	a.Scope = int(sc)
	if up {
		if err := h.AddrReplace(l, a); err != nil {
			return fmt.Errorf("vrrp: %s: add %s dev %s: %w", who, v.Prefix, dev, err)
		}
		return nil
	}
	if err := h.AddrDel(l, a); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("vrrp: %s: delete %s dev %s: %w", who, v.Prefix, dev, err)
	}
	return nil
}

func (k *KernelHooks) setRoute(who string, r Route, up bool) error {
	h, err := k.handle()
	if err != nil {
		return err
	}
	rt := &netlink.Route{Priority: r.Metric, Table: r.Table}
	if r.Dst.IsValid() {
		rt.Dst = &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())}
	}
	if r.Via.IsValid() {
		rt.Gw = r.Via.AsSlice()
	}
	if r.Src.IsValid() {
		rt.Src = r.Src.AsSlice()
	}
	if r.Dev != "" {
		l, err := h.LinkByName(r.Dev)
		if err != nil {
			return fmt.Errorf("vrrp: %s: route %s dev %s: %w", who, r.Dst, r.Dev, err)
		}
		rt.LinkIndex = l.Attrs().Index
	}
	sc, err := parseScope(r.Scope)
	if err != nil {
		return fmt.Errorf("vrrp: %s: route %s: %w", who, r.Dst, err)
	}
	rt.Scope = sc
	if up {
		err = h.RouteReplace(rt)
	} else if err = h.RouteDel(rt); errors.Is(err, syscall.ESRCH) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("vrrp: %s: route %s: %w", who, r.Dst, err)
	}
	return nil
}

// OwnVIPs passes the change to Owner (nothing for no VIPs: a reload's
// difference is often empty).
func (k *KernelHooks) OwnVIPs(c *Config, own bool) error {
	if k.Owner == nil || len(c.VirtualIPAddress) == 0 {
		return nil
	}
	vips := make([]netip.Prefix, len(c.VirtualIPAddress))
	for i, v := range c.VirtualIPAddress {
		vips[i] = v.Prefix
	}
	return k.Owner.OwnVIPs(c.Name, vips, own)
}

// GARP sends repeat rounds of gratuitous ARPs, one per VIP per round, from
// the MAC of the VIP's interface (the VMAC with use_vmac).
func (k *KernelHooks) GARP(c *Config, repeat int) error {
	var errs []error
	for range repeat {
		for _, v := range c.VirtualIPAddress {
			if !v.Prefix.Addr().Is4() {
				continue
			}
			g, err := k.garp(vipDev(c, v))
			if err == nil {
				err = g.Send(v.Prefix.Addr())
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (k *KernelHooks) garp(dev string) (*GARP, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if g, ok := k.garps[dev]; ok {
		return g, nil
	}
	g, err := OpenGARP(dev)
	if err != nil {
		return nil, err
	}
	if k.garps == nil {
		k.garps = map[string]*GARP{}
	}
	k.garps[dev] = g
	return g, nil
}

// Notify runs the scripts asynchronously, as keepalived does (so quick
// transitions may finish out of order; reference §2.7), each one after the
// other for one notification.
func (k *KernelHooks) Notify(n Notification) {
	scripts := n.Scripts()
	if len(scripts) == 0 {
		return
	}
	timeout := k.ScriptTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	go func() {
		for _, argv := range scripts {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
			cancel()
			if err != nil {
				k.log().Warn("notify script failed", "script", strings.Join(argv, " "), "err", err, "output", string(out))
			}
		}
	}()
}
