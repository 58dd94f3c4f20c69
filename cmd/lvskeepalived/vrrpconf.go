package main

// The VRRP side of keepalived.conf (config/keepalived's parsed blocks)
// turned into the vrrp package's configuration. The conversion lives here,
// in the daemon that composes both packages, so that neither imports the
// other.

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"lvslab/config/keepalived"
	"lvslab/vrrp"
)

// vrrpSetup is everything the VRRP side runs from one configuration.
type vrrpSetup struct {
	Instances []vrrp.Config
	Groups    []vrrp.SyncGroup
	Static    vrrp.Static
	// Served are the addresses of this configuration's virtual servers
	// and local_address_groups: a VIP among them is lvsd's to answer for
	// (ownership over the control socket); any other VIP is a kernel
	// address, as keepalived adds it.
	Served map[netip.Addr]bool
	// Sync is lvs_sync_daemon (or an instance's deprecated
	// lvs_sync_daemon_interface) resolved; nil without one.
	Sync *syncSetup
	// Warnings name keywords carried by the parser that the VRRP side
	// does not implement, with their file:line.
	Warnings []string
}

// convertVRRP converts cfg's VRRP side. Every error names the file and
// line of the keyword it is about; the first problems are all returned
// together (errors.Join), nothing is half-converted.
func convertVRRP(cfg *keepalived.Config) (*vrrpSetup, error) {
	out := &vrrpSetup{Served: map[netip.Addr]bool{}}
	var errs []error
	fail := func(pos keepalived.Pos, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: error: %s", pos, fmt.Sprintf(format, args...)))
	}
	warn := func(pos keepalived.Pos, format string, args ...any) {
		out.Warnings = append(out.Warnings, fmt.Sprintf("%s: warning: %s", pos, fmt.Sprintf(format, args...)))
	}

	for _, svc := range cfg.Table().Services {
		if svc.Service.Addr.IsValid() {
			out.Served[svc.Service.Addr] = true
		}
	}
	// A FULLNAT local address is lvsd's too (it answers ARP for it): in a
	// master/backup pair with the sync daemon both directors have the
	// same local addresses, and the one the real servers reply to must
	// follow the master, as a VIP of the instance does.
	for _, g := range cfg.LocalAddressGroups {
		for _, a := range g.Addrs {
			out.Served[a] = true
		}
	}

	g := globalVRRP(cfg.Global.Other, fail)

	scripts := map[string]*keepalived.VRRPScript{}
	for _, s := range cfg.VRRP.Scripts {
		scripts[s.Name] = s
	}
	for _, vi := range cfg.VRRP.Instances {
		c, ok := convertInstance(vi, g, scripts, fail, warn)
		if ok {
			out.Instances = append(out.Instances, c)
		}
	}
	names := map[string]bool{}
	for _, c := range out.Instances {
		names[c.Name] = true
	}
	inGroup := map[string]string{}
	for _, sg := range cfg.VRRP.SyncGroups {
		grp := vrrp.SyncGroup{Name: sg.Name, Members: sg.Members}
		for _, m := range sg.Members {
			if !names[m] {
				fail(sg.Pos, "vrrp_sync_group %s: no vrrp_instance %s", sg.Name, m)
			}
			if other, dup := inGroup[m]; dup {
				fail(sg.Pos, "vrrp_sync_group %s: vrrp_instance %s is already in sync group %s", sg.Name, m, other)
			}
			inGroup[m] = sg.Name
		}
		var err error
		set := func(dst *string, s *keepalived.Script) {
			if s != nil && err == nil {
				*dst, err = commandLine(s)
			}
		}
		set(&grp.NotifyMaster, sg.NotifyMaster)
		set(&grp.NotifyBackup, sg.NotifyBackup)
		set(&grp.NotifyFault, sg.NotifyFault)
		set(&grp.NotifyStop, sg.NotifyStop)
		set(&grp.Notify, sg.Notify)
		if err != nil {
			fail(sg.Pos, "vrrp_sync_group %s: %v", sg.Name, err)
		}
		if len(sg.TrackInterfaces) > 0 || len(sg.TrackScripts) > 0 || len(sg.TrackFiles) > 0 {
			// keepalived 2.2.7 gives a sync group's tracking to every member.
			for i := range out.Instances {
				c := &out.Instances[i]
				if inGroup[c.Name] != sg.Name {
					continue
				}
				for _, t := range sg.TrackInterfaces {
					c.TrackInterface = append(c.TrackInterface, vrrp.TrackInterface{Name: t.Name, Weight: t.Weight, Reverse: t.Reverse})
				}
				for _, t := range sg.TrackScripts {
					ts, ok := trackScript(t, scripts)
					if !ok {
						fail(sg.Pos, "vrrp_sync_group %s: track_script %s: no vrrp_script %s", sg.Name, t.Name, t.Name)
						continue
					}
					c.TrackScript = append(c.TrackScript, ts)
				}
			}
		}
		for _, st := range sg.Other {
			warn(st.Pos, "vrrp_sync_group %s: %s is not implemented by lvskeepalived (ignored)", sg.Name, st.Words[0])
		}
		out.Groups = append(out.Groups, grp)
	}

	for _, a := range cfg.VRRP.StaticAddresses {
		v, err := vipOf(a)
		if err != nil {
			fail(a.Pos, "static_ipaddress: %v", err)
			continue
		}
		if v.Dev == "" {
			fail(a.Pos, "static_ipaddress %s: needs dev IF", a.Prefix)
			continue
		}
		out.Static.Addresses = append(out.Static.Addresses, v)
	}
	for _, st := range cfg.VRRP.StaticRoutes {
		r, err := parseRoute(st.Words)
		if err != nil {
			fail(st.Pos, "static_routes: %v", err)
			continue
		}
		out.Static.Routes = append(out.Static.Routes, r)
	}
	for _, st := range cfg.VRRP.StaticRules {
		warn(st.Pos, "static_rules are not implemented by lvskeepalived (ignored)")
	}
	for _, st := range cfg.VRRP.Other {
		warn(st.Pos, "%s is not implemented by lvskeepalived (ignored)", st.Words[0])
	}
	out.Sync = convertSync(cfg, fail)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Normalize here too, so that a problem vrrp would refuse at start is
	// reported with the instance's place, at load (and at reload, before
	// anything changes).
	for _, c := range out.Instances {
		if _, err := normalized(c); err != nil {
			errs = append(errs, fmt.Errorf("%s: error: %w", instancePos(cfg, c.Name), err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// normalized is c with vrrp's defaults applied, on copies of its slices
// (Normalize fills them in place; the setup stays as converted).
func normalized(c vrrp.Config) (vrrp.Config, error) {
	c = cloneConfig(c)
	err := c.Normalize()
	return c, err
}

// cloneConfig copies the slices Normalize changes in place (vrrp.NewRouter
// normalizes what it is given too), so a setup compares equal to the same
// configuration converted again at a reload.
func cloneConfig(c vrrp.Config) vrrp.Config {
	c.VirtualIPAddress = slices.Clone(c.VirtualIPAddress)
	c.VirtualIPAddressExcluded = slices.Clone(c.VirtualIPAddressExcluded)
	c.TrackScript = slices.Clone(c.TrackScript)
	c.TrackFile = slices.Clone(c.TrackFile)
	return c
}

func instancePos(cfg *keepalived.Config, name string) keepalived.Pos {
	for _, vi := range cfg.VRRP.Instances {
		if vi.Name == name {
			return vi.Pos
		}
	}
	return keepalived.Pos{}
}

// globalDefaults are the global_defs keywords that give every instance a
// default (the parser keeps them in Global.Other, as written).
type globalDefaults struct {
	mcastGroup                      netip.Addr
	garpRefresh                     time.Duration
	garpRefreshRepeat               int
	garpLowerDelay                  time.Duration
	garpLowerRepeat                 int
	downTimerAdverts                int
	lowerPrioNoAdvert, higherPrioTx bool
	checkUnicastSrc, skipCheckAdv   bool
	garpLowerDelaySet               bool
}

func globalVRRP(other []keepalived.Statement, fail func(keepalived.Pos, string, ...any)) globalDefaults {
	var g globalDefaults
	for _, st := range other {
		arg := ""
		if len(st.Words) > 1 {
			arg = st.Words[1]
		}
		var err error
		switch st.Words[0] {
		case "vrrp_mcast_group4":
			g.mcastGroup, err = netip.ParseAddr(arg)
			if err == nil && !g.mcastGroup.IsMulticast() {
				err = fmt.Errorf("%s is not a multicast address", arg)
			}
		case "vrrp_garp_master_refresh":
			g.garpRefresh, err = seconds(arg)
		case "vrrp_garp_master_refresh_repeat":
			g.garpRefreshRepeat, err = count(arg, 1)
		case "vrrp_garp_lower_prio_delay":
			g.garpLowerDelay, err = seconds(arg)
			g.garpLowerDelaySet = true
		case "vrrp_garp_lower_prio_repeat":
			g.garpLowerRepeat, err = count(arg, 1)
		case "vrrp_down_timer_adverts":
			g.downTimerAdverts, err = count(arg, 1)
		case "vrrp_lower_prio_no_advert":
			g.lowerPrioNoAdvert, err = flag(st.Words)
		case "vrrp_higher_prio_send_advert":
			g.higherPrioTx, err = flag(st.Words)
		case "vrrp_check_unicast_src":
			g.checkUnicastSrc = true
		case "vrrp_skip_check_adv_addr":
			g.skipCheckAdv = true
		}
		if err != nil {
			fail(st.Pos, "%s: %v", st.Words[0], err)
		}
	}
	return g
}

// seconds reads keepalived's whole seconds.
func seconds(s string) (time.Duration, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > 4294 {
		return 0, fmt.Errorf("%q: want whole seconds 0-4294", s)
	}
	return time.Duration(n) * time.Second, nil
}

func count(s string, min int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < min {
		return 0, fmt.Errorf("%q: want a number from %d", s, min)
	}
	return n, nil
}

// flag reads an optional true/false word after a keyword (keepalived's
// get_value_bool: absent means true).
func flag(words []string) (bool, error) {
	if len(words) < 2 {
		return true, nil
	}
	switch strings.ToLower(words[1]) {
	case "true", "on", "yes":
		return true, nil
	case "false", "off", "no":
		return false, nil
	}
	return false, fmt.Errorf("%q: want true or false", words[1])
}

func convertInstance(vi *keepalived.VRRPInstance, g globalDefaults, scripts map[string]*keepalived.VRRPScript,
	fail, warn func(keepalived.Pos, string, ...any)) (vrrp.Config, bool) {
	bad := false
	failed := func(pos keepalived.Pos, format string, args ...any) {
		bad = true
		fail(pos, "vrrp_instance "+vi.Name+": "+format, args...)
	}
	c := vrrp.Config{
		Name:                    vi.Name,
		Interface:               vi.Interface,
		Version:                 uint8(vi.Version),
		AdvInt:                  vi.AdvertInt,
		AuthPass:                vi.AuthPass,
		McastDstIP:              g.mcastGroup,
		UnicastPeer:             vi.UnicastPeers,
		CheckUnicastSrc:         g.checkUnicastSrc,
		SkipCheckAdvAddr:        g.skipCheckAdv,
		NoPreempt:               vi.Nopreempt,
		PreemptDelay:            vi.PreemptDelay,
		GarpMasterRepeat:        vi.GarpMasterRepeat,
		GarpMasterRefresh:       vi.GarpMasterRefresh,
		GarpMasterRefreshRepeat: g.garpRefreshRepeat,
		GarpLowerPrioDelay:      g.garpLowerDelay,
		GarpLowerPrioRepeat:     g.garpLowerRepeat,
		DownTimerAdverts:        g.downTimerAdverts,
		LowerPrioNoAdvert:       g.lowerPrioNoAdvert,
		HigherPrioSendAdvert:    g.higherPrioTx,
		DontTrackPrimary:        vi.DontTrackPrimary,
		UseVMAC:                 vi.UseVMAC,
		VMACName:                vi.VMACName,
		VMACXmitBase:            vi.VMACXmitBase,
		LVSSyncDaemonInterface:  vi.LVSSyncDaemonInterface,
	}
	if vi.VRID < 1 || vi.VRID > 255 {
		failed(vi.Pos, "virtual_router_id %d outside 1-255", vi.VRID)
	}
	c.VRID = uint8(vi.VRID)
	if vi.Priority < 0 || vi.Priority > 255 {
		failed(vi.Pos, "priority %d outside 1-255", vi.Priority)
	}
	c.Priority = uint8(vi.Priority)
	c.InitialState = vrrp.Backup
	if vi.WantMaster {
		c.InitialState = vrrp.Master
	}
	switch vi.AuthType {
	case "":
	case "PASS":
		c.AuthType = vrrp.AuthPass
	case "AH":
		c.AuthType = vrrp.AuthAH
	default:
		failed(vi.Pos, "auth_type %s: want PASS or AH", vi.AuthType)
	}
	if vi.GarpMasterRepeat == 0 {
		// An explicit 0 in keepalived sends no GARP batch; vrrp reads 0
		// as "not given" (5), so the nearest is one round.
		c.GarpMasterRepeat = 1
	}
	switch {
	case vi.GarpMasterDelay == 0:
		c.GarpMasterDelay = vrrp.GarpNoDelay
	case vi.GarpMasterDelay > 0:
		c.GarpMasterDelay = vi.GarpMasterDelay
	}
	if !g.garpLowerDelaySet {
		c.GarpLowerPrioDelay = 0 // the instance's garp_master_delay (vrrp's default)
	} else if g.garpLowerDelay == 0 {
		c.GarpLowerPrioDelay = vrrp.GarpNoDelay
	}
	if g.garpRefresh > 0 && c.GarpMasterRefresh == 0 {
		c.GarpMasterRefresh = g.garpRefresh
	}
	src := vi.MCastSrcIP
	if vi.UnicastSrcIP.IsValid() {
		src = vi.UnicastSrcIP
	}
	if src.IsValid() && !src.Is4() {
		failed(vi.Pos, "mcast_src_ip %s: only IPv4 is implemented", src)
	}
	c.McastSrcIP = src

	for _, a := range vi.VIPs {
		v, err := vipOf(a)
		if err != nil {
			failed(a.Pos, "virtual_ipaddress: %v", err)
			continue
		}
		c.VirtualIPAddress = append(c.VirtualIPAddress, v)
	}
	for _, a := range vi.ExcludedVIPs {
		v, err := vipOf(a)
		if err != nil {
			failed(a.Pos, "virtual_ipaddress_excluded: %v", err)
			continue
		}
		c.VirtualIPAddressExcluded = append(c.VirtualIPAddressExcluded, v)
	}
	for _, st := range vi.VirtualRoutes {
		r, err := parseRoute(st.Words)
		if err != nil {
			failed(st.Pos, "virtual_routes: %v", err)
			continue
		}
		c.VirtualRoutes = append(c.VirtualRoutes, r)
	}
	for _, st := range vi.VirtualRules {
		warn(st.Pos, "vrrp_instance %s: virtual_rules are not implemented by lvskeepalived (ignored)", vi.Name)
	}
	for _, t := range vi.TrackInterfaces {
		c.TrackInterface = append(c.TrackInterface, vrrp.TrackInterface{Name: t.Name, Weight: t.Weight, Reverse: t.Reverse})
	}
	for _, t := range vi.TrackScripts {
		ts, ok := trackScript(t, scripts)
		if !ok {
			failed(vi.Pos, "track_script %s: no vrrp_script %s", t.Name, t.Name)
			continue
		}
		c.TrackScript = append(c.TrackScript, ts)
	}
	for _, t := range vi.TrackFiles {
		c.TrackFile = append(c.TrackFile, trackFile(t))
	}
	var err error
	set := func(dst *string, s *keepalived.Script) {
		if s == nil {
			return
		}
		if *dst, err = commandLine(s); err != nil {
			failed(s.Pos, "%v", err)
		}
	}
	set(&c.NotifyMaster, vi.NotifyMaster)
	set(&c.NotifyBackup, vi.NotifyBackup)
	set(&c.NotifyFault, vi.NotifyFault)
	set(&c.NotifyStop, vi.NotifyStop)
	set(&c.Notify, vi.Notify)

	for _, st := range vi.Other {
		arg := ""
		if len(st.Words) > 1 {
			arg = st.Words[1]
		}
		var err error
		switch st.Words[0] {
		case "mcast_dst_ip":
			if c.McastDstIP, err = netip.ParseAddr(arg); err == nil && !c.McastDstIP.IsMulticast() {
				err = fmt.Errorf("%s is not a multicast address", arg)
			}
		case "unicast_ttl":
			var n int
			if n, err = count(arg, 1); err == nil && n > 255 {
				err = fmt.Errorf("%q outside 1-255", arg)
			}
			c.UnicastTTL = uint8(n)
		case "check_unicast_src":
			c.CheckUnicastSrc = true
		case "skip_check_adv_addr":
			c.SkipCheckAdvAddr, err = flag(st.Words)
		case "garp_master_refresh_repeat":
			c.GarpMasterRefreshRepeat, err = count(arg, 1)
		case "garp_lower_prio_delay":
			var d time.Duration
			if d, err = seconds(arg); err == nil {
				c.GarpLowerPrioDelay = d
				if d == 0 {
					c.GarpLowerPrioDelay = vrrp.GarpNoDelay
				}
			}
		case "garp_lower_prio_repeat":
			c.GarpLowerPrioRepeat, err = count(arg, 1)
		case "down_timer_adverts":
			c.DownTimerAdverts, err = count(arg, 1)
		case "lower_prio_no_advert":
			c.LowerPrioNoAdvert, err = flag(st.Words)
		case "higher_prio_send_advert":
			c.HigherPrioSendAdvert, err = flag(st.Words)
		case "preempt":
			// keepalived's default, written out.
		default:
			warn(st.Pos, "vrrp_instance %s: %s is not implemented by lvskeepalived (ignored)", vi.Name, st.Words[0])
		}
		if err != nil {
			failed(st.Pos, "%s: %v", st.Words[0], err)
		}
	}
	return c, !bad
}

// trackScript joins a track_script line with its vrrp_script block; the
// line's weight overrides the script's.
func trackFile(t keepalived.TrackFileUse) vrrp.TrackFile {
	return vrrp.TrackFile{Name: t.Name, Path: t.File.File, Weight: t.Weight, Reverse: t.Reverse}
}

func trackScript(t keepalived.Track, scripts map[string]*keepalived.VRRPScript) (vrrp.TrackScript, bool) {
	s := scripts[t.Name]
	if s == nil {
		return vrrp.TrackScript{}, false
	}
	ts := vrrp.TrackScript{Name: s.Name, Interval: s.Interval, Timeout: s.Timeout, Weight: s.Weight, Reverse: s.Reverse,
		Rise: s.Rise, Fall: s.Fall, InitFail: s.InitFail}
	if s.Script != nil {
		ts.Script, _ = commandLine(s.Script)
	}
	if t.HasWeight {
		ts.Weight, ts.Reverse = t.Weight, t.Reverse
	}
	return ts, true
}

// commandLine turns a parsed script back into the command line vrrp
// splits (quoting each word that needs it).
func commandLine(s *keepalived.Script) (string, error) {
	words := make([]string, len(s.Args))
	for i, a := range s.Args {
		switch {
		case a != "" && !strings.ContainsAny(a, " \t'\""):
			words[i] = a
		case !strings.Contains(a, "'"):
			words[i] = "'" + a + "'"
		case !strings.Contains(a, `"`):
			words[i] = `"` + a + `"`
		default:
			return "", fmt.Errorf("script %q: a word with both quote characters cannot be run", strings.Join(s.Args, " "))
		}
	}
	return strings.Join(words, " "), nil
}

func vipOf(a keepalived.IPAddress) (vrrp.VIP, error) {
	if !a.Prefix.Addr().Is4() {
		return vrrp.VIP{}, fmt.Errorf("%s: only IPv4 is implemented", a.Prefix)
	}
	if len(a.Words) > 0 {
		return vrrp.VIP{}, fmt.Errorf("%s: option %s is not implemented", a.Prefix, a.Words[0])
	}
	return vrrp.VIP{Prefix: a.Prefix, Brd: a.Brd, Dev: a.Dev, Scope: a.Scope, Label: a.Label}, nil
}

// parseRoute reads one virtual_routes / static_routes line:
// [src IP] [to] DST [via|gw GW] [dev|oif IF] [metric|preference N]
// [table N] [scope S] [no_track].
func parseRoute(words []string) (vrrp.Route, error) {
	var r vrrp.Route
	for i := 0; i < len(words); i++ {
		w := words[i]
		val := ""
		if i+1 < len(words) {
			val = words[i+1]
		}
		var err error
		switch w {
		case "src":
			r.Src, err = netip.ParseAddr(val)
			i++
		case "via", "gw":
			r.Via, err = netip.ParseAddr(val)
			i++
		case "dev", "oif":
			r.Dev = val
			i++
		case "metric", "preference", "priority":
			r.Metric, err = strconv.Atoi(val)
			i++
		case "table":
			r.Table, err = strconv.Atoi(val)
			i++
		case "scope":
			r.Scope = val
			i++
		case "no_track":
		case "to":
			continue
		default:
			if r.Dst.IsValid() {
				return r, fmt.Errorf("route %s: %s is not implemented", strings.Join(words, " "), w)
			}
			if w == "default" {
				r.Dst = netip.MustParsePrefix("0.0.0.0/0")
				break
			}
			if r.Dst, err = netip.ParsePrefix(w); err != nil {
				var a netip.Addr
				if a, err = netip.ParseAddr(w); err == nil {
					r.Dst = netip.PrefixFrom(a, a.BitLen())
				}
			}
		}
		if err != nil {
			return r, fmt.Errorf("route %s: %s %s: %v", strings.Join(words, " "), w, val, err)
		}
	}
	if !r.Dst.IsValid() {
		return r, fmt.Errorf("route %s: no destination", strings.Join(words, " "))
	}
	if !r.Dst.Addr().Is4() {
		return r, fmt.Errorf("route %s: only IPv4 is implemented", r.Dst)
	}
	return r, nil
}
