package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// Config is one vrrp_instance, as config/keepalived maps it from
// keepalived.conf. Each field names its keyword; zero values mean "not
// given" and Normalize applies keepalived 2.2.7's defaults (reference §2.1,
// §3.6). Durations are time.Duration; the parser converts keepalived's
// (fractional) seconds.
type Config struct {
	Name string // vrrp_instance NAME

	// InitialState: `state MASTER|BACKUP`. keepalived treats MASTER with a
	// priority below 255 exactly like BACKUP (reference §1.5); it matters for
	// the defaults (a MASTER without `priority` gets 255) and clears
	// nopreempt and preempt_delay.
	InitialState State
	Interface    string // interface IF
	VRID         uint8  // virtual_router_id 1-255
	// Priority: `priority 1-255`; 0 means not given (100, or 255 with state
	// MASTER).
	Priority uint8
	Version  uint8         // version 2|3 (or global vrrp_version); 0 means 2
	AdvInt   time.Duration // advert_int (default 1 s; v2 whole seconds, v3 centiseconds)

	// Authentication { auth_type PASS|AH; auth_pass STR }: AuthType is
	// AuthNone, AuthPass or AuthAH; the password is truncated to 8 bytes.
	AuthType uint8
	AuthPass string

	// Addressing.
	McastSrcIP  netip.Addr   // mcast_src_ip (also unicast_src_ip): advert source
	McastDstIP  netip.Addr   // mcast_dst_ip / global vrrp_mcast_group4 (default 224.0.0.18)
	UnicastPeer []netip.Addr // unicast_peer { IP ... }
	// CheckUnicastSrc: check_unicast_src (accept unicast only from peers).
	CheckUnicastSrc bool
	UnicastTTL      uint8 // unicast_ttl (default 255)

	VirtualIPAddress         []VIP   // virtual_ipaddress { ... } (advertised)
	VirtualIPAddressExcluded []VIP   // virtual_ipaddress_excluded { ... } (not advertised)
	VirtualRoutes            []Route // virtual_routes { ... }
	// SkipCheckAdvAddr: skip_check_adv_addr (or vrrp_skip_check_adv_addr).
	SkipCheckAdvAddr bool

	// Preemption.
	NoPreempt    bool          // nopreempt
	PreemptDelay time.Duration // preempt_delay (0-1000 s)

	// GARP (defaults: delay 5 s, repeat 5, refresh 0, refresh_repeat 1;
	// the globals vrrp_garp_* give the instance defaults).
	GarpMasterDelay         time.Duration // garp_master_delay; use GarpNoDelay for an explicit 0
	GarpMasterRepeat        int           // garp_master_repeat
	GarpMasterRefresh       time.Duration // garp_master_refresh
	GarpMasterRefreshRepeat int           // garp_master_refresh_repeat
	GarpLowerPrioDelay      time.Duration // garp_lower_prio_delay (default garp_master_delay)
	GarpLowerPrioRepeat     int           // garp_lower_prio_repeat (default garp_master_repeat)

	// Timers and election tweaks.
	DownTimerAdverts     int  // down_timer_adverts (1-100, default 3)
	LowerPrioNoAdvert    bool // lower_prio_no_advert
	HigherPrioSendAdvert bool // higher_prio_send_advert

	// Tracking.
	TrackInterface   []TrackInterface // track_interface { IF [weight W [reverse]] }
	DontTrackPrimary bool             // dont_track_primary: Interface down is not a FAULT
	TrackScript      []TrackScript    // track_script { NAME [weight W [reverse]] } joined with vrrp_script NAME
	TrackFile        []TrackFile      // track_file { NAME [weight W [reverse]] } joined with track_file NAME

	// VMAC.
	UseVMAC      bool   // use_vmac [NAME]: a macvlan with 00:00:5e:00:01:VRID
	VMACName     string // use_vmac NAME (default vrrp.VRID)
	VMACXmitBase bool   // vmac_xmit_base: send adverts on the base interface

	// Notify scripts (reference §2.7), each a command line run through sh -c.
	Notify       string // notify: gets INSTANCE NAME STATE PRIORITY appended
	NotifyMaster string // notify_master
	NotifyBackup string // notify_backup
	NotifyFault  string // notify_fault
	NotifyStop   string // notify_stop

	// LVSSyncDaemonInterface: lvs_sync_daemon_interface (deprecated in
	// keepalived but accepted); carried for the sync daemon work.
	LVSSyncDaemonInterface string
}

// GarpNoDelay is an explicit `garp_master_delay 0` (no second GARP batch),
// since the zero Duration means "not given".
const GarpNoDelay = time.Duration(-1)

// VIP is one virtual_ipaddress line: `IP[/MASK] [brd IP] [dev IF] [scope S]
// [label L]`.
type VIP struct {
	Prefix netip.Prefix // IP/MASK (default /32)
	Brd    netip.Addr   // brd
	Dev    string       // dev (default the instance's interface)
	Scope  string       // scope: global, site, link, host, nowhere or a number
	Label  string       // label
}

// Route is one virtual_routes / static_routes line (the subset lvslab
// needs: `[src IP] DST [via GW] [dev IF] [metric N] [table N] [scope S]`).
type Route struct {
	Dst    netip.Prefix
	Src    netip.Addr
	Via    netip.Addr
	Dev    string
	Metric int
	Table  int
	Scope  string
}

// TrackInterface is one track_interface line.
type TrackInterface struct {
	Name    string
	Weight  int // -253..253; 0: down means FAULT
	Reverse bool
}

// TrackScript is one track_script line with its vrrp_script block.
type TrackScript struct {
	Name     string        // vrrp_script NAME
	Script   string        // script "<cmd args>"
	Interval time.Duration // interval (default 1 s)
	Timeout  time.Duration // timeout (default interval)
	Weight   int           // weight -253..253 (track_script's overrides vrrp_script's)
	Reverse  bool          // weight ... reverse
	Rise     int           // rise (default 1)
	Fall     int           // fall (default 1)
	InitFail bool          // init_fail
}

// TrackFile is one track_file line with its track_file block: the
// number in the file times Weight (−Weight with Reverse), clamped to
// [−254, 253], is added to the priority, and −254 is FAULT; with Weight 0
// a non-zero number (zero with Reverse) is FAULT. A missing file reads 0.
type TrackFile struct {
	Name    string // track_file NAME
	Path    string // file "<path>"
	Weight  int    // -254..254
	Reverse bool
}

// SyncGroup is a vrrp_sync_group: members move together (reference §2.6).
type SyncGroup struct {
	Name         string   // vrrp_sync_group NAME
	Members      []string // group { VI_1 VI_2 }
	Notify       string   // notify: gets GROUP NAME STATE 0 appended
	NotifyMaster string
	NotifyBackup string
	NotifyFault  string
	NotifyStop   string
}

// Static is the top-level static_ipaddress / static_routes: installed at
// start whatever the VRRP state, like keepalived.
type Static struct {
	Addresses []VIP   // static_ipaddress { ... }
	Routes    []Route // static_routes { ... }
}

// Normalize applies keepalived's defaults and checks, and returns the first
// problem (with the instance name) for a config keepalived would refuse.
func (c *Config) Normalize() error {
	if c.VRID == 0 {
		return fmt.Errorf("vrrp_instance %s: the virtual router id must be set", c.Name)
	}
	if c.Interface == "" && len(c.UnicastPeer) == 0 {
		return fmt.Errorf("vrrp_instance %s: no interface and no unicast_peer", c.Name)
	}
	if c.Version == 0 {
		c.Version = 2
	}
	if c.Version != 2 && c.Version != 3 {
		return fmt.Errorf("vrrp_instance %s: version %d: must be 2 or 3", c.Name, c.Version)
	}
	if c.Priority == 0 {
		c.Priority = 100
		if c.InitialState == Master {
			c.Priority = 255
		}
	}
	if c.InitialState == Init {
		c.InitialState = Backup
		if c.Priority == 255 {
			c.InitialState = Master
		}
	}
	if c.AdvInt <= 0 {
		c.AdvInt = time.Second
	}
	if c.Version == 2 {
		c.AdvInt = max(c.AdvInt.Round(time.Second), time.Second)
	} else {
		c.AdvInt = min(max(c.AdvInt.Round(10*time.Millisecond), 10*time.Millisecond), 4095*10*time.Millisecond)
		if len(c.VirtualIPAddress) == 0 {
			return fmt.Errorf("vrrp_instance %s: VRRPv3 needs at least one virtual_ipaddress", c.Name)
		}
		c.AuthType = AuthNone // "VRRP version 3 does not support authentication. Ignoring."
	}
	if c.AuthType == AuthAH && c.InitialState == Master && c.Priority < 255 {
		c.InitialState = Backup // "Initial state master is incompatible with AH authentication - clearing"
	}
	if c.InitialState == Master || c.Priority == 255 {
		c.NoPreempt, c.PreemptDelay = false, 0
	}
	if len(c.VirtualIPAddress) > MaxAddrs {
		c.VirtualIPAddressExcluded = append(c.VirtualIPAddressExcluded, c.VirtualIPAddress[MaxAddrs:]...)
		c.VirtualIPAddress = c.VirtualIPAddress[:MaxAddrs]
	}
	for i, v := range c.VirtualIPAddress {
		if !v.Prefix.Addr().Is4() {
			return fmt.Errorf("vrrp_instance %s: virtual_ipaddress %s: only IPv4 is implemented", c.Name, v.Prefix)
		}
		if v.Dev == "" {
			c.VirtualIPAddress[i].Dev = c.Interface
		}
	}
	for i, v := range c.VirtualIPAddressExcluded {
		if v.Dev == "" {
			c.VirtualIPAddressExcluded[i].Dev = c.Interface
		}
	}
	if c.GarpMasterDelay == 0 {
		c.GarpMasterDelay = 5 * time.Second
	}
	if c.GarpMasterRepeat == 0 {
		c.GarpMasterRepeat = 5
	}
	if c.GarpMasterRefreshRepeat == 0 {
		c.GarpMasterRefreshRepeat = 1
	}
	if c.GarpLowerPrioDelay == 0 {
		c.GarpLowerPrioDelay = c.GarpMasterDelay
	}
	if c.GarpLowerPrioRepeat == 0 {
		c.GarpLowerPrioRepeat = c.GarpMasterRepeat
	}
	if c.DownTimerAdverts == 0 {
		c.DownTimerAdverts = 3
	}
	if c.DownTimerAdverts < 1 || c.DownTimerAdverts > 100 {
		return fmt.Errorf("vrrp_instance %s: down_timer_adverts %d outside 1-100", c.Name, c.DownTimerAdverts)
	}
	if c.UnicastTTL == 0 {
		c.UnicastTTL = TTL
	}
	if !c.McastDstIP.IsValid() {
		c.McastDstIP = MulticastGroup
	}
	for i := range c.TrackScript {
		s := &c.TrackScript[i]
		if s.Interval <= 0 {
			s.Interval = time.Second
		}
		if s.Timeout <= 0 {
			s.Timeout = s.Interval
		}
		s.Rise, s.Fall = max(s.Rise, 1), max(s.Fall, 1)
	}
	if c.UseVMAC && c.VMACName == "" {
		c.VMACName = fmt.Sprintf("vrrp.%d", c.VRID)
	}
	return nil
}

// VMAC is the virtual router MAC 00:00:5e:00:01:VRID (RFC 3768 §7.3).
func (c *Config) VMAC() [6]byte { return [6]byte{0, 0, 0x5e, 0, 1, c.VRID} }

// advertised lists the VIP addresses an advert carries.
func (c *Config) advertised() []netip.Addr {
	out := make([]netip.Addr, len(c.VirtualIPAddress))
	for i, v := range c.VirtualIPAddress {
		out[i] = v.Prefix.Addr()
	}
	return out
}

// rules is what the instance accepts on receive.
func (c *Config) rules() Rules {
	var pass [8]byte
	copy(pass[:], c.AuthPass)
	return Rules{
		Name: c.Name, Version: c.Version, VRID: c.VRID, AuthType: c.AuthType, AuthPass: pass,
		AdvInt: c.AdvInt, VIPs: c.advertised(), Unicast: len(c.UnicastPeer) > 0,
		Peers: c.UnicastPeer, CheckPeers: c.CheckUnicastSrc, SkipAddrCheck: c.SkipCheckAdvAddr,
	}
}
