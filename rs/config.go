// Package rs prepares a Linux host to be an LVS real server, as the seeds'
// real-server scripts do, and undoes it exactly.
//
//   - dr:  each VIP as /32 on lo, arp_ignore=1 and arp_announce=2 (all, lo,
//     the given interface), rp_filter=0 (all, the given interface) for the
//     asymmetric return path.
//   - nat: the default route goes via the director (DIP); the previous
//     default routes are remembered and come back on stop.
//   - tun: the VIPs on the tunnel device. With the kernel's ipip that is
//     tunl0; without it a TUN device fed by a userspace IP-in-IP
//     decapsulator (see Decapsulator), which lives as long as the process.
//
// Every change is recorded, with the value it replaced, in a state file
// under StateDir keyed by the network namespace, so a later process can show
// (Status) and revert (Stop) it. Everything here acts on the network
// namespace of the calling OS thread: callers that work on another namespace
// lock the thread and switch it first (nstest.NS.Do does).
package rs

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
)

// Mode is the LVS forwarding method the real server is prepared for.
type Mode string

// The forwarding methods, named as ipvsadm's -g, -m, -i are in the seeds.
const (
	ModeDR  Mode = "dr"
	ModeNAT Mode = "nat"
	ModeTUN Mode = "tun"
)

// DefaultStateDir holds the state files, one per network namespace.
const DefaultStateDir = "/run/lvsrs"

// DefaultTUNName names the TUN device of userspace decapsulation.
const DefaultTUNName = "lvsrs0"

// Config is what `lvsrs start` is asked to apply.
type Config struct {
	Mode Mode `json:"mode"`
	// VIPs are the virtual addresses (IPv4). Required for dr and tun; in nat
	// mode they are only recorded, the real server holds no VIP.
	VIPs []netip.Addr `json:"vips,omitempty"`
	// Iface is the interface facing the director (optional). It gets the arp
	// and rp_filter settings too; in nat mode it is the default route's
	// device.
	Iface string `json:"iface,omitempty"`
	// DIP is the director's address on the real-server network (nat only).
	DIP netip.Addr `json:"dip,omitzero"`
	// Label is an optional address label such as "lo:0", for people who look
	// for the seeds' ifconfig aliases. It must start with the VIP device's
	// name.
	Label string `json:"label,omitempty"`
	// TUNName names the TUN device of userspace decapsulation.
	TUNName string `json:"tun_name,omitempty"`
	// Userspace forces userspace decapsulation in tun mode even where the
	// kernel has ipip (there both would receive the packets: use it only
	// for testing the userspace path).
	Userspace bool `json:"userspace,omitempty"`
}

// Options say where state lives and where logs go.
type Options struct {
	StateDir string       // DefaultStateDir if empty
	Logger   *slog.Logger // discarded if nil
}

func (o Options) stateDir() string {
	if o.StateDir == "" {
		return DefaultStateDir
	}
	return o.StateDir
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// ParseMode accepts dr, nat and tun (and ipvsadm's spellings g, m, i).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "dr", "g", "gatewaying", "direct":
		return ModeDR, nil
	case "nat", "m", "masq", "masquerading":
		return ModeNAT, nil
	case "tun", "i", "ipip", "tunnel":
		return ModeTUN, nil
	}
	return "", fmt.Errorf("unknown mode %q (want dr, nat or tun)", s)
}

// ParseVIPs parses a comma-separated list of IPv4 addresses.
func ParseVIPs(s string) ([]netip.Addr, error) {
	var vips []netip.Addr
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("VIP %q: %w", f, err)
		}
		vips = append(vips, a)
	}
	return vips, nil
}

// normalized returns a copy with defaults filled in and VIPs sorted and
// deduplicated, so two equal requests compare equal.
func (c Config) normalized() Config {
	n := c
	n.VIPs = slices.Clone(c.VIPs)
	slices.SortFunc(n.VIPs, func(a, b netip.Addr) int { return a.Compare(b) })
	n.VIPs = slices.Compact(n.VIPs)
	if n.Mode == ModeTUN && n.TUNName == "" {
		n.TUNName = DefaultTUNName
	}
	if n.Mode != ModeTUN {
		n.TUNName = ""
		n.Userspace = false
	}
	return n
}

// Validate reports what is wrong with c, before anything is changed.
func (c Config) Validate() error {
	var errs []error
	switch c.Mode {
	case ModeDR, ModeTUN:
		if len(c.VIPs) == 0 {
			errs = append(errs, fmt.Errorf("mode %s needs at least one VIP", c.Mode))
		}
		if c.DIP.IsValid() {
			errs = append(errs, fmt.Errorf("the director address only applies to nat mode"))
		}
	case ModeNAT:
		if !c.DIP.IsValid() {
			errs = append(errs, errors.New("nat mode needs the director's address (DIP) for the default route"))
		} else if !c.DIP.Is4() {
			errs = append(errs, fmt.Errorf("DIP %s: only IPv4 is supported", c.DIP))
		}
		if c.Label != "" {
			errs = append(errs, errors.New("an address label only applies to dr and tun mode"))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown mode %q (want dr, nat or tun)", c.Mode))
	}
	for _, v := range c.VIPs {
		if !v.Is4() {
			errs = append(errs, fmt.Errorf("VIP %s: only IPv4 is supported", v))
		} else if v.IsUnspecified() || v.IsMulticast() || v.IsLoopback() {
			errs = append(errs, fmt.Errorf("VIP %s is not a unicast service address", v))
		}
	}
	if c.Label != "" {
		if dev := c.vipDevice(); dev != "" && c.Label != dev && !strings.HasPrefix(c.Label, dev+":") {
			errs = append(errs, fmt.Errorf("label %q must start with %q, the device holding the VIPs", c.Label, dev+":"))
		}
		if len(c.Label) > 15 {
			errs = append(errs, fmt.Errorf("label %q is longer than 15 bytes", c.Label))
		}
	}
	if c.Mode == ModeTUN && c.TUNName != "" && len(c.TUNName) > 15 {
		errs = append(errs, fmt.Errorf("TUN name %q is longer than 15 bytes", c.TUNName))
	}
	return errors.Join(errs...)
}

// vipDevice is the device that will hold the VIPs, as far as it is known
// without asking the kernel ("" for tun: tunl0 or the TUN device).
func (c Config) vipDevice() string {
	switch c.Mode {
	case ModeDR:
		return "lo"
	case ModeTUN:
		if c.Userspace {
			return c.normalized().TUNName
		}
	}
	return ""
}

// String renders c as the command-line flags that would produce it.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--mode %s", c.Mode)
	if len(c.VIPs) > 0 {
		vs := make([]string, len(c.VIPs))
		for i, v := range c.VIPs {
			vs[i] = v.String()
		}
		fmt.Fprintf(&b, " --vip %s", strings.Join(vs, ","))
	}
	if c.Iface != "" {
		fmt.Fprintf(&b, " --iface %s", c.Iface)
	}
	if c.DIP.IsValid() {
		fmt.Fprintf(&b, " --dip %s", c.DIP)
	}
	if c.Label != "" {
		fmt.Fprintf(&b, " --label %s", c.Label)
	}
	if c.Mode == ModeTUN && c.TUNName != "" && c.TUNName != DefaultTUNName {
		fmt.Fprintf(&b, " --tun-dev %s", c.TUNName)
	}
	if c.Userspace {
		b.WriteString(" --userspace")
	}
	return b.String()
}

// Equal reports whether two configurations ask for the same setup.
func (c Config) Equal(o Config) bool {
	a, b := c.normalized(), o.normalized()
	return a.Mode == b.Mode && slices.Equal(a.VIPs, b.VIPs) && a.Iface == b.Iface &&
		a.DIP == b.DIP && a.Label == b.Label && a.TUNName == b.TUNName && a.Userspace == b.Userspace
}
