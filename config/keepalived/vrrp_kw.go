package keepalived

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The root block, global_defs and the VRRP side (keepalived/core/global_parser.c,
// keepalived/vrrp/vrrp_parser.c @v2.2.7).

// rootBlock builds the keyword tree. It is rebuilt per load: blocks are
// plain data, and there is no package-level mutable state.
func rootBlock() *block {
	root := newBlock("root")
	// Process-level keywords (not global_defs).
	for _, k := range []string{"net_namespace_ipvs", "namespace_with_ipsets", "use_pid_dir", "instance", "child_wait_time", "linkbeat_use_polling"} {
		root.add(k, (*parser).rootOther)
	}
	root.add("net_namespace", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok {
			p.cfg.NetNamespace = v
		}
	})
	root.sublevel("global_defs", nil, globalBlock())
	checkBlocks(root)
	vrrpBlocks(root)
	// Root blocks of the VRRP side and BFD, kept as written.
	for _, k := range []string{"track_group", "garp_group", "linkbeat_interfaces", "vrrp_track_process", "interface_up_down_delays",
		"bfd_instance"} {
		root.add(k, func(p *parser, l *line) {
			p.cfg.VRRP.Other = append(p.cfg.VRRP.Other, Statement{Pos: l.pos, Words: l.words})
			p.skipBlock()
		})
	}
	trackFileBlock(root)
	return root
}

// trackFileBlock is keepalived 2.2.7's trackers/track_file.c: the root
// track_file block both the checkers (FILE_CHECK) and VRRP use.
func trackFileBlock(root *block) {
	tf := newBlock("track_file")
	for _, k := range []string{"track_file", "vrrp_track_file"} {
		root.sublevel(k, func(p *parser, l *line) {
			if k == "vrrp_track_file" {
				p.warn(l, ClassDeprecated, "write track_file", "vrrp_track_file is deprecated - please use track_file")
			}
			name, ok := p.need(l, 1)
			if !ok {
				return
			}
			p.tf = &TrackFile{Pos: l.pos, Name: name, Weight: 1}
		}, tf)
	}
	tf.add("file", func(p *parser, l *line) {
		if p.tf == nil {
			return
		}
		if len(l.words) < 2 {
			p.errorf(l, ClassGeneral, "", "track file file name missing")
			return
		}
		if p.tf.File != "" {
			p.errorf(l, ClassGeneral, "", "File already set for track file %s - ignoring %s", p.tf.Name, l.words[1])
			return
		}
		p.tf.File = l.words[1]
	})
	tf.add("weight", func(p *parser, l *line) {
		if p.tf == nil {
			return
		}
		if len(l.words) < 2 {
			p.errorf(l, ClassGeneral, "", "No weight specified for track file %s - ignoring", p.tf.Name)
			return
		}
		n, ok := p.readInt(l, l.words[1], -254, 254)
		if !ok {
			p.errorf(l, ClassGeneral, "", "Weight (%s) for track_file %s must be between [-254..254] inclusive. Ignoring...", l.words[1], p.tf.Name)
			n = 1
		}
		p.tf.Weight = int(n)
		if len(l.words) > 2 {
			if l.words[2] == "reverse" {
				p.tf.Reverse = true
			} else {
				p.errorf(l, ClassGeneral, "", "track_file %s unknown weight option %s", p.tf.Name, l.words[2])
			}
		}
	})
	tf.add("init_file", func(p *parser, l *line) {
		if p.tf == nil {
			return
		}
		p.tf.Init, p.tf.InitValue = true, 0
		for _, w := range l.words[1:] {
			switch {
			case w != "" && (w[0] == '-' || (w[0] >= '0' && w[0] <= '9')):
				n, err := strconv.ParseInt(w, 10, 32)
				if err != nil {
					p.errorf(l, ClassGeneral, "", "Track file %s init value %s is invalid", p.tf.Name, w)
					n = 0
				} else if n < -254 || n > 254 {
					p.errorf(l, ClassGeneral, "", "Track file %s init value %d is outside sensible range [%d, %d]", p.tf.Name, n, -254, 254)
				}
				p.tf.InitValue = int(n)
			case w == "overwrite":
				p.tf.InitOverwrite = true
			default:
				p.errorf(l, ClassGeneral, "", "Unknown track file init option %s", w)
			}
		}
	})
	tf.end = func(p *parser) {
		if p.tf == nil {
			return
		}
		if p.tf.File == "" {
			p.errorf(p.cur(), ClassGeneral, "add file \"/path\"", "No file set for track_file %s - ignoring", p.tf.Name)
		} else {
			p.cfg.TrackFiles = append(p.cfg.TrackFiles, p.tf)
		}
		p.tf = nil
	}
}

// trackFileUses reads a track_file { } block of an instance or sync group
// named owner, with keepalived's vrrp_alloc_track_file messages (a
// track_file is found only if defined earlier in the file).
func (p *parser) trackFileUses(l *line, owner string, have []TrackFileUse) []TrackFileUse {
	var out []TrackFileUse
	for _, v := range p.valueBlock(l, 1) {
		name := v.words[0]
		tf := p.trackFile(name)
		if tf == nil {
			p.errorf(v, ClassGeneral, "define the track_file block before the vrrp_instance that uses it", "(%s) track file %s not found, ignoring...", owner, name)
			continue
		}
		dup := false
		for _, u := range append(slices.Clone(have), out...) {
			dup = dup || u.File == tf
		}
		if dup {
			p.errorf(v, ClassGeneral, "", "(%s) duplicate track_file %s - ignoring", owner, name)
			continue
		}
		u := TrackFileUse{Pos: v.pos, File: tf, Name: name, Weight: tf.Weight, Reverse: tf.Reverse}
		if len(v.words) >= 2 {
			if v.words[1] != "weight" {
				p.errorf(v, ClassGeneral, "", "(%s) unknown track file option %s - ignoring", owner, v.words[1])
				continue
			}
			if len(v.words) == 2 {
				p.errorf(v, ClassGeneral, "", "(%s) weight without value specified for track file %s - ignoring", owner, name)
				continue
			}
			if n, ok := p.readInt(v, v.words[2], -254, 254); ok {
				u.Weight = int(n)
			} else {
				p.errorf(v, ClassGeneral, "", "(%s) weight for track file %s must be in [-254..254] inclusive. Ignoring...", owner, name)
			}
			if len(v.words) >= 4 {
				switch v.words[3] {
				case "reverse":
					u.Reverse = true
				case "noreverse":
					u.Reverse = false
				default:
					p.errorf(v, ClassGeneral, "", "(%s) unknown track file %s weight option %s - ignoring", owner, name, v.words[3])
					continue
				}
			}
		}
		out = append(out, u)
	}
	return out
}

// trackFile is the track_file named, as far as the file has defined it
// (keepalived resolves the name when it reads the reference).
func (p *parser) trackFile(name string) *TrackFile {
	for _, t := range p.cfg.TrackFiles {
		if t.Name == name {
			return t
		}
	}
	return nil
}

func (p *parser) rootOther(l *line) {
	p.cfg.Global.Other = append(p.cfg.Global.Other, Statement{Pos: l.pos, Words: l.words})
}

// globalOther are the global_defs keywords accepted as written.
var globalOther = strings.Fields(`process_names process_name vrrp_process_name checker_process_name lvs_process_name bfd_process_name
smtp_alert_vrrp smtp_alert_checker checker_log_all_failures dynamic_interfaces no_email_faults default_interface
disable_local_igmp lvs_flush_on_stop lvs_flush_onstop vrrp_mcast_group4 vrrp_mcast_group6
vrrp_garp_master_refresh vrrp_garp_master_refresh_repeat vrrp_garp_lower_prio_delay vrrp_garp_lower_prio_repeat
vrrp_down_timer_adverts vrrp_garp_interval vrrp_gna_interval vrrp_min_garp vrrp_garp_extra_if vrrp_vmac_garp_intvl
vrrp_lower_prio_no_advert vrrp_higher_prio_send_advert vrrp_iptables vrrp_ipsets nftables nftables_priority
nftables_ifindex nftables_ipvs nftables_ipvs_priority nftables_ipvs_start_fwmark nftables_counters
vrrp_check_unicast_src vrrp_skip_check_adv_addr vrrp_priority vrrp_no_swap vrrp_rt_priority
vrrp_cpu_affinity vrrp_rlimit_rttime vrrp_rlimit_rtime notify_fifo notify_fifo_script vrrp_notify_fifo vrrp_notify_fifo_script
vrrp_notify_priority_changes fifo_write_vrrp_states_on_reload lvs_notify_fifo lvs_notify_fifo_script checker_priority
checker_no_swap checker_rt_priority checker_cpu_affinity checker_rlimit_rttime checker_rlimit_rtime bfd_priority bfd_no_swap
bfd_rt_priority bfd_cpu_affinity bfd_rlimit_rttime bfd_rlimit_rtime snmp_socket enable_snmp_vrrp enable_snmp_keepalived
enable_snmp_rfc enable_snmp_rfcv2 enable_snmp_rfcv3 enable_snmp_checker enable_dbus dbus_service_name
vrrp_netlink_cmd_rcv_bufs vrrp_netlink_cmd_rcv_bufs_force vrrp_netlink_monitor_rcv_bufs vrrp_netlink_monitor_rcv_bufs_force
process_monitor_rcv_bufs process_monitor_rcv_bufs_force lvs_netlink_cmd_rcv_bufs lvs_netlink_cmd_rcv_bufs_force
lvs_netlink_monitor_rcv_bufs lvs_netlink_monitor_rcv_bufs_force rs_init_notifies no_checker_emails vrrp_rx_bufs_policy
vrrp_rx_bufs_multiplier vrrp_startup_delay log_unknown_vrids vmac_prefix vmac_addr_prefix umask random_seed
reload_check_config reload_time_file reload_repeat reload_file include_check config_save_dir tmp_config_directory
data_use_instance startup_script startup_script_timeout shutdown_script shutdown_script_timeout max_auto_priority
min_auto_priority_delay`)

func globalBlock() *block {
	g := newBlock("global_defs")
	for _, k := range globalOther {
		g.add(k, func(p *parser, l *line) {
			p.cfg.Global.Other = append(p.cfg.Global.Other, Statement{Pos: l.pos, Words: l.words})
		})
	}
	str := func(set func(*Global, string)) func(p *parser, l *line) {
		return func(p *parser, l *line) {
			if v, ok := p.need(l, 1); ok {
				p.extra(l, 2)
				set(&p.cfg.Global, v)
			}
		}
	}
	g.add("router_id", str(func(g *Global, v string) { g.RouterID = v }))
	g.add("notification_email_from", str(func(g *Global, v string) { g.NotificationEmailFrom = v }))
	g.add("smtp_helo_name", str(func(g *Global, v string) { g.SMTPHeloName = v }))
	g.add("smtp_server", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok {
			return
		}
		port := "25"
		if len(l.words) > 2 {
			port = l.words[2]
		}
		a, _, ok := parseAddrPort(v, port)
		if !ok || port == "0" {
			// keepalived resolves a name; one it cannot resolve is refused.
			if _, err := net.LookupHost(v); err != nil || !ok && a.IsValid() {
				p.errorf(l, ClassGeneral, "an IP address, or a name this host resolves", "Invalid smtp server %s %s", v, port)
				return
			}
		}
		p.cfg.Global.SMTPServer = net.JoinHostPort(v, port)
	})
	g.add("smtp_connect_timeout", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok {
			if n, ok := p.readUint(l, v, 0, 4294967295/1000000); ok {
				p.cfg.Global.SMTPConnectTimeout = time.Duration(n) * time.Second
			} else {
				p.errorf(l, ClassGeneral, "", "smtp_connect_timeout '%s' must be in [0, %d] - ignoring", v, 4294967295/1000000)
			}
		}
	})
	g.add("notification_email", func(p *parser, l *line) {
		for _, v := range p.valueBlock(l, 1) {
			p.cfg.Global.NotificationEmail = append(p.cfg.Global.NotificationEmail, v.words...)
		}
	})
	g.add("smtp_alert", func(p *parser, l *line) {
		if b, ok := p.boolArg(l, "smtp_alert"); ok {
			p.cfg.Global.SMTPAlert = b
		}
	})
	g.add("enable_traps", func(p *parser, l *line) { p.cfg.Global.EnableTraps = true })
	g.add("script_user", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok {
			p.cfg.Global.ScriptUser = v
			if len(l.words) > 2 {
				p.cfg.Global.ScriptGroup = l.words[2]
			}
		}
	})
	g.add("enable_script_security", func(p *parser, l *line) { p.cfg.Global.EnableScriptSecurity = true })
	g.add("lvs_timeouts", func(p *parser, l *line) {
		t := &p.cfg.Global.LVSTimeouts
		for i := 1; i+1 < len(l.words); i += 2 {
			n, err := strconv.ParseUint(l.words[i+1], 10, 32)
			if err != nil || n > 2678400 {
				p.errorf(l, ClassGeneral, "", "Invalid lvs_timeout %s %s", l.words[i], l.words[i+1])
				continue
			}
			d := time.Duration(n) * time.Second
			switch l.words[i] {
			case "tcp":
				t.TCP = d
			case "tcpfin":
				t.TCPFin = d
			case "udp":
				t.UDP = d
			default:
				p.errorf(l, ClassGeneral, "tcp, tcpfin or udp", "Unknown option %s specified for lvs_timeouts", l.words[i])
			}
		}
	})
	g.add("lvs_flush", func(p *parser, l *line) { p.cfg.Global.LVSFlush = true })
	g.add("lvs_sync_daemon", parseSyncDaemon)
	g.add("vrrp_version", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok {
			if n, ok := p.readInt(l, v, 2, 3); ok {
				p.cfg.Global.VRRPVersion = int(n)
			}
		}
	})
	g.add("vrrp_strict", func(p *parser, l *line) { p.cfg.Global.VRRPStrict = true })
	g.add("vrrp_garp_master_delay", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok {
			if n, ok := p.readUint(l, v, 0, 4294967295/1000000); ok {
				p.cfg.Global.VRRPGarpMasterDelay = time.Duration(n) * time.Second
			}
		}
	})
	g.add("vrrp_garp_master_repeat", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok {
			if n, ok := p.readUint(l, v, 0, 2147483647); ok {
				p.cfg.Global.VRRPGarpMasterRepeat = int(n)
			}
		}
	})
	return g
}

// vrrpInstanceOther are vrrp_instance keywords carried as written.
var vrrpInstanceOther = strings.Fields(`use_vmac_addr use_ipvlan unicast_fault_no_peer check_unicast_src old_unicast_checksum
native_ipv6 vrf track_process track_bfd mcast_dst_ip track_src_ip unicast_ttl promote_secondaries
linkbeat_use_polling accept no_accept skip_check_adv_addr strict_mode preempt notify_deleted notify_master_rx_lower_pri
notify_priority_changes garp_master_refresh_repeat garp_lower_prio_delay garp_lower_prio_repeat down_timer_adverts
garp_extra_if vmac_garp_intvl lower_prio_no_advert higher_prio_send_advert kernel_rx_buf_size`)

// valueBlockKeywords among them take a { } block of values.
var valueBlockKeywords = map[string]bool{"track_process": true, "track_bfd": true}

func vrrpBlocks(root *block) {
	root.add("static_ipaddress", func(p *parser, l *line) {
		for _, v := range p.valueBlock(l, 1) {
			if a, ok := p.ipAddress(v, "static"); ok {
				p.cfg.VRRP.StaticAddresses = append(p.cfg.VRRP.StaticAddresses, a)
			}
		}
	})
	root.add("static_routes", func(p *parser, l *line) {
		for _, v := range p.valueBlock(l, 1) {
			if p.route(v) {
				p.cfg.VRRP.StaticRoutes = append(p.cfg.VRRP.StaticRoutes, Statement{Pos: v.pos, Words: v.words})
			}
		}
	})
	root.add("static_rules", func(p *parser, l *line) {
		for _, v := range p.valueBlock(l, 1) {
			p.cfg.VRRP.StaticRules = append(p.cfg.VRRP.StaticRules, Statement{Pos: v.pos, Words: v.words})
		}
	})

	// vrrp_script
	vs := newBlock("vrrp_script")
	root.sublevel("vrrp_script", func(p *parser, l *line) {
		name, ok := p.need(l, 1)
		if !ok {
			return
		}
		p.scr = &VRRPScript{Pos: l.pos, Name: name, Interval: time.Second, Rise: 1, Fall: 1, Timeout: -1}
		p.cfg.VRRP.Scripts = append(p.cfg.VRRP.Scripts, p.scr)
	}, vs)
	vs.add("script", func(p *parser, l *line) {
		if s := p.script(l); s != nil && p.scr != nil {
			p.scr.Script = s
		}
	})
	vs.add("interval", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.scr != nil {
			if n, ok := p.readUint(l, v, 0, 4294967295/1000000); ok {
				if n == 0 {
					p.errorf(l, ClassGeneral, "", "(%s): vrrp script interval must be greater than 0, setting to 1", p.scr.Name)
					n = 1
				}
				p.scr.Interval = time.Duration(n) * time.Second
			} else {
				p.errorf(l, ClassGeneral, "", "(%s): vrrp script interval '%s' must be between 1 and %d - ignoring", p.scr.Name, v, 4294967295/1000000)
			}
		}
	})
	vs.add("timeout", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.scr != nil {
			if n, ok := p.readUint(l, v, 0, 4294967295/1000000); ok {
				p.scr.Timeout = time.Duration(n) * time.Second
			}
		}
	})
	vs.add("weight", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.scr != nil {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < -253 || n > 253 {
				p.errorf(l, ClassGeneral, "", "vrrp_script %s weight %s must be in [-253, 253]", p.scr.Name, v)
				return
			}
			p.scr.Weight = int(n)
			if len(l.words) > 2 {
				switch l.words[2] {
				case "reverse":
					p.scr.Reverse = true
				case "noreverse":
				default:
					p.errorf(l, ClassGeneral, "", "vrrp_script %s unknown weight option %s", p.scr.Name, l.words[2])
				}
			}
		}
	})
	vs.add("rise", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.scr != nil {
			if n, ok := p.readUint(l, v, 1, 2147483647); ok {
				p.scr.Rise = int(n)
			}
		}
	})
	vs.add("fall", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.scr != nil {
			if n, ok := p.readUint(l, v, 1, 2147483647); ok {
				p.scr.Fall = int(n)
			}
		}
	})
	vs.add("user", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.scr != nil && p.scr.Script != nil {
			p.scr.Script.User = v
		}
	})
	vs.add("init_fail", func(p *parser, l *line) {
		if p.scr != nil {
			p.scr.InitFail = true
		}
	})
	vs.end = func(p *parser) {
		if p.scr != nil {
			if p.scr.Timeout < 0 {
				p.scr.Timeout = p.scr.Interval
			}
		}
		p.scr = nil
	}

	// vrrp_sync_group
	sg := newBlock("vrrp_sync_group")
	root.sublevel("vrrp_sync_group", func(p *parser, l *line) {
		p.sg = nil
		if len(l.words) < 2 {
			p.errorf(l, ClassGeneral, "", "vrrp_sync_group must have a name - skipping")
			p.skipBlock()
			return
		}
		for _, o := range p.cfg.VRRP.SyncGroups {
			if o.Name == l.words[1] {
				p.errorf(l, ClassGeneral, "", "vrrp sync group %s already defined", l.words[1])
				p.skipBlock()
				return
			}
		}
		p.sg = &SyncGroup{Pos: l.pos, Name: l.words[1]}
		p.cfg.VRRP.SyncGroups = append(p.cfg.VRRP.SyncGroups, p.sg)
	}, sg)
	sg.add("group", func(p *parser, l *line) {
		vals := p.valueBlock(l, 1)
		if p.sg == nil {
			return
		}
		if p.sg.Members != nil {
			p.errorf(l, ClassGeneral, "", "Group list already specified for sync group %s", p.sg.Name)
			return
		}
		p.sg.Members = []string{}
		for _, v := range vals {
			p.sg.Members = append(p.sg.Members, v.words...)
		}
		if len(p.sg.Members) == 0 {
			p.errorf(l, ClassGeneral, "", "Warning - sync group %s has empty group block", p.sg.Name)
		}
	})
	sg.add("track_interface", func(p *parser, l *line) {
		tr := p.tracks(l)
		if p.sg != nil {
			p.sg.TrackInterfaces = append(p.sg.TrackInterfaces, tr...)
		}
	})
	sg.add("track_script", func(p *parser, l *line) {
		tr := p.tracks(l)
		if p.sg != nil {
			p.sg.TrackScripts = append(p.sg.TrackScripts, tr...)
		}
	})
	sg.add("track_file", func(p *parser, l *line) {
		if p.sg == nil {
			p.valueBlock(l, 1)
			return
		}
		p.sg.TrackFiles = append(p.sg.TrackFiles, p.trackFileUses(l, p.sg.Name, p.sg.TrackFiles)...)
	})
	for _, k := range []string{"track_process", "track_bfd"} {
		sg.add(k, func(p *parser, l *line) {
			p.valueBlock(l, 1)
			if p.sg != nil {
				p.sg.Other = append(p.sg.Other, Statement{Pos: l.pos, Words: l.words})
			}
		})
	}
	sgScript := func(dst func(*SyncGroup) **Script) func(p *parser, l *line) {
		return func(p *parser, l *line) {
			if s := p.script(l); s != nil && p.sg != nil {
				*dst(p.sg) = s
			}
		}
	}
	sg.add("notify_master", sgScript(func(g *SyncGroup) **Script { return &g.NotifyMaster }))
	sg.add("notify_backup", sgScript(func(g *SyncGroup) **Script { return &g.NotifyBackup }))
	sg.add("notify_fault", sgScript(func(g *SyncGroup) **Script { return &g.NotifyFault }))
	sg.add("notify_stop", sgScript(func(g *SyncGroup) **Script { return &g.NotifyStop }))
	sg.add("notify", sgScript(func(g *SyncGroup) **Script { return &g.Notify }))
	sg.add("smtp_alert", func(p *parser, l *line) {
		if b, ok := p.boolArg(l, "smtp_alert"); ok && p.sg != nil {
			p.sg.SMTPAlert = b
		}
	})
	for _, k := range []string{"global_tracking", "sync_group_tracking_weight", "notify_priority_changes"} {
		sg.add(k, func(p *parser, l *line) {
			if p.sg != nil {
				p.sg.Other = append(p.sg.Other, Statement{Pos: l.pos, Words: l.words})
			}
		})
	}
	sg.end = func(p *parser) {
		p.sg = nil
	}

	// vrrp_instance
	vi := newBlock("vrrp_instance")
	root.sublevel("vrrp_instance", func(p *parser, l *line) {
		p.vi = nil
		if len(l.words) < 2 {
			p.errorf(l, ClassGeneral, "", "vrrp_instance must have a name")
			p.skipBlock()
			return
		}
		for _, o := range p.cfg.VRRP.Instances {
			if o.Name == l.words[1] {
				p.errorf(l, ClassGeneral, "", "vrrp instance %s already defined", l.words[1])
				p.skipBlock()
				return
			}
		}
		p.vi = &VRRPInstance{Pos: l.pos, Name: l.words[1], AdvertInt: time.Second, Version: 0,
			GarpMasterDelay: -1, GarpMasterRepeat: -1}
		p.cfg.VRRP.Instances = append(p.cfg.VRRP.Instances, p.vi)
	}, vi)
	for _, k := range vrrpInstanceOther {
		vi.add(k, func(p *parser, l *line) {
			if valueBlockKeywords[k] {
				p.valueBlock(l, 1)
			}
			if p.vi != nil {
				p.vi.Other = append(p.vi.Other, Statement{Pos: l.pos, Words: l.words})
			}
		})
	}
	vi.add("use_vmac", func(p *parser, l *line) {
		if p.vi != nil {
			p.vi.UseVMAC = true
			if len(l.words) > 1 {
				if n := l.words[1]; len(n) >= 16 || strings.ContainsAny(n, "/ <>:") {
					p.errorf(l, ClassGeneral, "an interface name of at most 15 characters", "VMAC interface name '%s' too long or invalid characters - ignoring", n)
				} else {
					p.vi.VMACName = n
				}
			}
		}
	})
	vi.add("vmac_xmit_base", func(p *parser, l *line) {
		if p.vi != nil {
			p.vi.VMACXmitBase = true
		}
	})
	vi.add("unicast_peer", func(p *parser, l *line) {
		for _, v := range p.valueBlock(l, 1) {
			a, err := netip.ParseAddr(v.words[0])
			if err != nil {
				p.errorf(v, ClassGeneral, "", "(%s) unicast_peer %s is not a valid IP address - skipping", p.viName(), v.words[0])
				continue
			}
			if p.vi != nil {
				p.vi.UnicastPeers = append(p.vi.UnicastPeers, a)
			}
		}
	})
	vi.add("state", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		switch v {
		case "MASTER":
			p.vi.WantMaster, p.vi.stateSet = true, true
		case "BACKUP":
			p.vi.stateSet = true
			if p.vi.WantMaster {
				p.errorf(l, ClassGeneral, "", "(%s) state previously set as MASTER - ignoring BACKUP", p.vi.Name)
			}
		default:
			hint := ""
			if strings.Contains(v, "/") {
				hint = "one value per director: MASTER on one, BACKUP on the other"
			}
			p.errorf(l, ClassGeneral, hint, "(%s) unknown state '%s', defaulting to BACKUP", p.vi.Name, v)
		}
	})
	vi.add("interface", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		if len(v) >= 16 {
			p.errorf(l, ClassGeneral, "", "Interface name '%s' too long - ignoring", v)
			return
		}
		p.vi.Interface = v
		if p.ifExists != nil {
			if !p.ifExists(v) {
				p.errorf(l, ClassGeneral, "run where the interface exists (lvskeepalived -t checks the current network namespace, as keepalived does)",
					"WARNING - interface %s for vrrp_instance %s doesn't exist", v, p.vi.Name)
			} else if v == "lo" {
				p.errorf(l, ClassGeneral, "", "(%s) cannot use a loopback interface (%s) for vrrp - ignoring", p.vi.Name, v)
				p.vi.Interface = ""
			}
		}
	})
	vi.add("dont_track_primary", func(p *parser, l *line) {
		if p.vi != nil {
			p.vi.DontTrackPrimary = true
		}
	})
	vi.add("track_interface", func(p *parser, l *line) {
		tr := p.tracks(l)
		if p.vi != nil {
			p.vi.TrackInterfaces = append(p.vi.TrackInterfaces, tr...)
		}
	})
	vi.add("track_script", func(p *parser, l *line) {
		tr := p.tracks(l)
		if p.vi != nil {
			p.vi.TrackScripts = append(p.vi.TrackScripts, tr...)
		}
	})
	vi.add("track_file", func(p *parser, l *line) {
		if p.vi == nil {
			p.valueBlock(l, 1)
			return
		}
		p.vi.TrackFiles = append(p.vi.TrackFiles, p.trackFileUses(l, p.vi.Name, p.vi.TrackFiles)...)
	})
	addrKw := func(set func(*VRRPInstance, netip.Addr), what string) func(p *parser, l *line) {
		return func(p *parser, l *line) {
			v, ok := p.need(l, 1)
			if !ok || p.vi == nil {
				return
			}
			a, err := netip.ParseAddr(v)
			if err != nil {
				p.errorf(l, ClassGeneral, "", "(%s) %s address %s is invalid - ignoring", p.vi.Name, what, v)
				return
			}
			set(p.vi, a)
		}
	}
	vi.add("mcast_src_ip", addrKw(func(v *VRRPInstance, a netip.Addr) { v.MCastSrcIP = a }, "mcast_src_ip"))
	vi.add("unicast_src_ip", addrKw(func(v *VRRPInstance, a netip.Addr) { v.UnicastSrcIP = a }, "unicast_src_ip"))
	vi.add("virtual_router_id", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		if n, ok := p.readUint(l, v, 1, 255); ok {
			p.vi.VRID = int(n)
		} else {
			p.errorf(l, ClassGeneral, "", "(%s): VRID '%s' not valid - must be between 1 & 255", p.vi.Name, v)
		}
	})
	vi.add("version", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		if n, ok := p.readInt(l, v, 2, 3); ok {
			p.vi.Version = int(n)
		} else {
			p.errorf(l, ClassGeneral, "", "(%s): Version must be either 2 or 3", p.vi.Name)
		}
	})
	vi.add("priority", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		if n, ok := p.readUint(l, v, 1, 255); ok {
			p.vi.Priority, p.vi.prioritySet = int(n), true
		} else {
			hint := ""
			if strings.Contains(v, "/") {
				hint = "one value per director (150 on the master, 90 on the backup)"
			}
			p.errorf(l, ClassGeneral, hint, "(%s) Priority not valid! must be between 1 & 255. Using default 100", p.vi.Name)
		}
	})
	vi.add("advert_int", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		d, ok := parseTimer(v)
		if !ok || d < 10*time.Millisecond || d > 255*time.Second {
			p.errorf(l, ClassGeneral, "", "(%s) Advert interval (%s) not valid! Must be > 0 - ignoring", p.vi.Name, v)
			return
		}
		p.vi.AdvertInt = d
	})
	vi.add("virtual_ipaddress", func(p *parser, l *line) {
		for _, v := range p.valueBlock(l, 1) {
			if a, ok := p.ipAddress(v, "VRRP"); ok && p.vi != nil {
				p.vi.VIPs = append(p.vi.VIPs, a)
			}
		}
	})
	vi.add("virtual_ipaddress_excluded", func(p *parser, l *line) {
		for _, v := range p.valueBlock(l, 1) {
			if a, ok := p.ipAddress(v, "VRRP"); ok && p.vi != nil {
				p.vi.ExcludedVIPs = append(p.vi.ExcludedVIPs, a)
			}
		}
	})
	vi.add("virtual_routes", func(p *parser, l *line) {
		for _, v := range p.valueBlock(l, 1) {
			if p.route(v) && p.vi != nil {
				p.vi.VirtualRoutes = append(p.vi.VirtualRoutes, Statement{Pos: v.pos, Words: v.words})
			}
		}
	})
	vi.add("virtual_rules", func(p *parser, l *line) {
		for _, v := range p.valueBlock(l, 1) {
			if p.vi != nil {
				p.vi.VirtualRules = append(p.vi.VirtualRules, Statement{Pos: v.pos, Words: v.words})
			}
		}
	})
	vi.add("nopreempt", func(p *parser, l *line) {
		if p.vi != nil {
			p.vi.Nopreempt = true
		}
	})
	vi.add("preempt_delay", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		d, ok := parseTimer(v)
		if !ok || d > 1000*time.Second {
			p.errorf(l, ClassGeneral, "", "(%s) Preempt_delay not valid! must be between 0-1000", p.vi.Name)
			return
		}
		p.vi.PreemptDelay = d
	})
	vi.add("debug", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		if n, err := strconv.ParseUint(v, 10, 8); err == nil && n <= 4 {
			p.vi.Debug = int(n)
		} else {
			p.errorf(l, ClassGeneral, "", "(%s) Debug value '%s' not valid; must be between 0-4", p.vi.Name, v)
		}
	})
	viScript := func(dst func(*VRRPInstance) **Script) func(p *parser, l *line) {
		return func(p *parser, l *line) {
			if s := p.script(l); s != nil && p.vi != nil {
				*dst(p.vi) = s
			}
		}
	}
	vi.add("notify_master", viScript(func(v *VRRPInstance) **Script { return &v.NotifyMaster }))
	vi.add("notify_backup", viScript(func(v *VRRPInstance) **Script { return &v.NotifyBackup }))
	vi.add("notify_fault", viScript(func(v *VRRPInstance) **Script { return &v.NotifyFault }))
	vi.add("notify_stop", viScript(func(v *VRRPInstance) **Script { return &v.NotifyStop }))
	vi.add("notify", viScript(func(v *VRRPInstance) **Script { return &v.Notify }))
	vi.add("smtp_alert", func(p *parser, l *line) {
		if b, ok := p.boolArg(l, "smtp_alert"); ok && p.vi != nil {
			p.vi.SMTPAlert = b
		}
	})
	vi.add("lvs_sync_daemon_interface", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if ok && p.vi != nil {
			p.warn(l, ClassDeprecated, "use global_defs' lvs_sync_daemon IF "+p.vi.Name, "(%s) Specifying lvs_sync_daemon_interface against a vrrp is deprecated. Please use global lvs_sync_daemon", p.vi.Name)
			p.vi.LVSSyncDaemonInterface = v
		}
	})
	vi.add("garp_master_delay", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		if n, err := strconv.ParseUint(v, 10, 32); err == nil && n <= 4294 {
			p.vi.GarpMasterDelay = time.Duration(n) * time.Second
		} else {
			p.errorf(l, ClassGeneral, "", "(%s): garp_master_delay '%s' invalid - ignoring", p.vi.Name, v)
		}
	})
	vi.add("garp_master_repeat", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		if n, err := strconv.ParseUint(v, 10, 31); err == nil {
			p.vi.GarpMasterRepeat = int(n)
		} else {
			p.errorf(l, ClassGeneral, "", "(%s): garp_master_repeat '%s' invalid - ignoring", p.vi.Name, v)
		}
	})
	vi.add("garp_master_refresh", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			p.vi.GarpMasterRefresh = time.Duration(n) * time.Second
		} else {
			p.errorf(l, ClassGeneral, "", "(%s): garp_master_refresh '%s' invalid - ignoring", p.vi.Name, v)
		}
	})
	auth := newBlock("authentication")
	vi.sublevel("authentication", nil, auth)
	auth.add("auth_type", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		switch v {
		case "PASS", "AH":
			p.vi.AuthType = v
		default:
			p.errorf(l, ClassGeneral, "PASS or AH", "(%s) unknown authentication type '%s'", p.vi.Name, v)
		}
	})
	auth.add("auth_pass", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vi == nil {
			return
		}
		if len(v) > 8 {
			p.errorf(l, ClassGeneral, "VRRP carries 8 bytes of password", "Truncating auth_pass to 8 characters")
			v = v[:8]
		}
		p.vi.AuthPass = v
	})
}

func (p *parser) viName() string {
	if p.vi == nil {
		return "?"
	}
	return p.vi.Name
}

// tracks reads a track_interface/track_script value block:
// NAME [weight W [reverse|noreverse]].
func (p *parser) tracks(l *line) []Track {
	var out []Track
	for _, v := range p.valueBlock(l, 1) {
		t := Track{Name: v.words[0]}
		for i := 1; i < len(v.words); i++ {
			switch v.words[i] {
			case "weight":
				if i+1 >= len(v.words) {
					p.errorf(v, ClassGeneral, "", "track %s weight missing", t.Name)
					break
				}
				i++
				n, err := strconv.ParseInt(v.words[i], 10, 32)
				if err != nil || n < -254 || n > 254 {
					p.errorf(v, ClassGeneral, "", "weight for %s must be between [-254..254] inclusive. Ignoring...", t.Name)
					continue
				}
				t.Weight, t.HasWeight = int(n), true
			case "reverse":
				t.Reverse = true
			case "noreverse":
			}
		}
		out = append(out, t)
	}
	return out
}

// ipAddress reads IP[/MASK] [brd IP] [dev IF] [scope S] [label L] ...
func (p *parser) ipAddress(v *line, who string) (IPAddress, bool) {
	a := IPAddress{Pos: v.pos}
	s := v.words[0]
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		addr, e2 := netip.ParseAddr(s)
		if e2 != nil {
			p.errorf(v, ClassGeneral, "", "%s parsed invalid IP %s. skipping IP...", who, s)
			return a, false
		}
		pfx = netip.PrefixFrom(addr, addr.BitLen())
	}
	a.Prefix = pfx
	for i := 1; i < len(v.words); i++ {
		w := v.words[i]
		val := ""
		if i+1 < len(v.words) {
			val = v.words[i+1]
		}
		switch w {
		case "brd", "broadcast":
			if b, err := netip.ParseAddr(val); err == nil {
				a.Brd = b
			} else if val != "+" && val != "-" {
				p.errorf(v, ClassGeneral, "", "%s is not a valid broadcast address - ignoring", val)
			}
			i++
		case "dev":
			a.Dev = val
			i++
		case "scope":
			a.Scope = val
			i++
		case "label":
			a.Label = val
			i++
		default:
			a.Words = append(a.Words, w)
		}
	}
	return a, true
}

// finishVRRP is vrrp_complete_instance's checks that name a place.
func (p *parser) finishVRRP() {
	kept := p.cfg.VRRP.Instances[:0]
	for _, vi := range p.cfg.VRRP.Instances {
		at := &line{pos: vi.Pos}
		if vi.VRID == 0 {
			p.errorf(at, ClassGeneral, "add virtual_router_id 1..255 (the same on every director of this instance)", "(%s) the virtual router id must be set", vi.Name)
			continue
		}
		if vi.Version == 0 {
			vi.Version = p.cfg.Global.VRRPVersion
		}
		if vi.GarpMasterDelay < 0 {
			vi.GarpMasterDelay = p.cfg.Global.VRRPGarpMasterDelay
		}
		if vi.GarpMasterRepeat < 0 {
			vi.GarpMasterRepeat = p.cfg.Global.VRRPGarpMasterRepeat
		}
		if len(vi.VIPs) == 0 {
			if vi.Version == 3 {
				p.errorf(at, ClassGeneral, "", "(%s) No VIP specified; at least one is required", vi.Name)
				continue
			}
			p.warn(at, ClassGeneral, "", "(%s) No VIP specified; at least one is sensible", vi.Name)
		}
		if !vi.prioritySet {
			vi.Priority = 100
			if vi.WantMaster {
				vi.Priority = 255
			}
		}
		if !vi.stateSet && vi.Priority == 255 {
			vi.WantMaster = true
		}
		if vi.AuthType != "" {
			switch {
			case vi.Version == 3:
				p.warn(at, ClassGeneral, "RFC 5798 has no authentication", "(%s) VRRP version 3 does not support authentication. Ignoring.", vi.Name)
				vi.AuthType, vi.AuthPass = "", ""
			case vi.AuthPass == "":
				p.warn(at, ClassGeneral, "", "(%s) Authentication specified but no password given. Ignoring", vi.Name)
				vi.AuthType = ""
			case vi.AuthType == "AH" && vi.WantMaster && vi.Priority != 255:
				p.warn(at, ClassGeneral, "an AH instance must hear an advert before it may take over", "(%s) Initial state master is incompatible with AH authentication - clearing", vi.Name)
				vi.WantMaster = false
			}
		}
		if vi.Priority == 255 && vi.Nopreempt {
			p.warn(at, ClassGeneral, "", "(%s) nopreempt is incompatible with priority 255. resetting nopreempt", vi.Name)
			vi.Nopreempt = false
		}
		if vi.WantMaster {
			if vi.Nopreempt {
				p.warn(at, ClassGeneral, "nopreempt needs state BACKUP on every director", "(%s) Warning - nopreempt will not work with initial state MASTER - clearing", vi.Name)
				vi.Nopreempt = false
			}
			if vi.PreemptDelay > 0 {
				p.warn(at, ClassGeneral, "", "(%s) Warning - preempt delay will not work with initial state MASTER - clearing", vi.Name)
				vi.PreemptDelay = 0
			}
		}
		if vi.PreemptDelay > 0 && vi.Nopreempt {
			p.warn(at, ClassGeneral, "", "(%s) preempt_delay is incompatible with nopreempt mode - resetting", vi.Name)
			vi.PreemptDelay = 0
		}
		if vi.Interface == "" && len(vi.UnicastPeers) == 0 {
			p.errorf(at, ClassGeneral, "add interface IF", "(%s) Unknown interface!", vi.Name)
			continue
		}
		kept = append(kept, vi)
	}
	p.cfg.VRRP.Instances = kept
	for _, g := range p.cfg.VRRP.SyncGroups {
		for _, m := range g.Members {
			found := false
			for _, vi := range p.cfg.VRRP.Instances {
				found = found || vi.Name == m
			}
			if !found {
				p.warn(&line{pos: g.Pos}, ClassGeneral, "", "Virtual router %s specified in sync group %s doesn't exist - ignoring", m, g.Name)
			}
		}
	}
}

// Route keywords that take a value (ip-route(8) as keepalived's
// parse_route reads it, vrrp_iproute.c).
var routeValueWords = map[string]bool{"src": true, "via": true, "gw": true, "dev": true, "oif": true, "table": true, "metric": true,
	"preference": true, "pref": true, "mtu": true, "advmss": true, "rtt": true, "rttvar": true, "reordering": true, "window": true,
	"cwnd": true, "ssthresh": true, "realms": true, "rto_min": true, "initcwnd": true, "initrwnd": true, "features": true,
	"quickack": true, "congctl": true, "scope": true, "protocol": true, "proto": true, "expires": true, "hoplimit": true,
	"fastopen_no_cookie": true, "ttl-propagate": true, "tos": true, "dsfield": true, "track_group": true, "vrf": true}

var routeTypes = map[string]bool{"unicast": true, "blackhole": true, "unreachable": true, "prohibit": true, "local": true,
	"broadcast": true, "anycast": true, "multicast": true, "throw": true, "nat": true}

// route checks one static_routes/virtual_routes line as keepalived does
// (a destination, and a device to track it by).
func (p *parser) route(v *line) bool {
	dest, dev, noTrack := "", false, false
	for i := 0; i < len(v.words); i++ {
		w := v.words[i]
		switch {
		case routeValueWords[w]:
			dev = dev || w == "dev" || w == "oif"
			i++
		case w == "no_track":
			noTrack = true
		case w == "onlink" || w == "nexthop" || w == "or":
			if w != "onlink" {
				i = len(v.words)
			}
		default:
			if w == "to" && i+1 < len(v.words) {
				i++
				w = v.words[i]
			}
			if routeTypes[w] && i+1 < len(v.words) {
				i++
				w = v.words[i]
			}
			_, e1 := netip.ParsePrefix(w)
			_, e2 := netip.ParseAddr(w)
			if e1 != nil && e2 != nil && w != "default" && w != "all" {
				p.errorf(v, ClassGeneral, "", "unknown route keyword %s", w)
				return false
			}
			dest = w
		}
	}
	if dest == "" {
		p.errorf(v, ClassGeneral, "", "Route must have a destination")
		return false
	}
	if !dev && !noTrack {
		p.warn(v, ClassGeneral, "add 'dev IF' (or no_track)", "Warning - cannot track route %s with no interface specified, not tracking", dest)
	}
	return true
}

// parseSyncDaemon is keepalived 2.2.7's set_lvs_sync_daemon: the
// interface, then the instance (a bare word, or after "inst"; a bare
// number after it is the old positional syncid, accepted with a warning),
// then keyword/value options. An option keepalived rejects is an error
// here and leaves lvs_sync_daemon unset (never a half-configured daemon).
func parseSyncDaemon(p *parser, l *line) {
	ifname, ok := p.need(l, 1)
	if !ok {
		return
	}
	d := &SyncDaemon{Pos: l.pos, Interface: ifname, SyncID: -1}
	w := l.words
	i := 2
	if i < len(w) && w[i] == "inst" {
		if i+1 >= len(w) {
			p.errorf(l, ClassGeneral, "lvs_sync_daemon IF inst VRRP_INSTANCE", "lvs_sync_daemon: inst needs a vrrp_instance name")
			return
		}
		d.Instance = w[i+1]
		i += 2
	} else if i < len(w) && !syncDaemonOption(w[i]) {
		d.Instance = w[i]
		i++
	}
	if d.Instance != "" && i < len(w) && !syncDaemonOption(w[i]) {
		// The old form lvs_sync_daemon IF VI SYNCID.
		n, ok := p.readInt(l, w[i], 0, 255)
		if !ok {
			p.errorf(l, ClassGeneral, "give id 0-255", "lvs_sync_daemon: invalid syncid %s", w[i])
			return
		}
		p.warn(l, ClassDeprecated, "write id "+w[i], "Please use keyword \"id\" before lvs_sync_daemon syncid value")
		d.SyncID = int(n)
		i++
	}
	for ; i < len(w); i += 2 {
		opt := w[i]
		if !syncDaemonOption(opt) {
			p.errorf(l, ClassGeneral, "options are id, maxlen, port, ttl and group", "Unknown option %s specified for lvs_sync_daemon", opt)
			return
		}
		if i+1 >= len(w) {
			p.errorf(l, ClassGeneral, "give "+opt+" its value", "lvs_sync_daemon: %s needs a value", opt)
			return
		}
		v := w[i+1]
		var bad bool
		switch opt {
		case "id":
			n, ok := p.readInt(l, v, 0, 255)
			d.SyncID, bad = int(n), !ok
		case "maxlen":
			n, ok := p.readInt(l, v, 1, 65535-20-8)
			d.MaxLen, bad = int(n), !ok
		case "port":
			n, ok := p.readInt(l, v, 1, 65535)
			d.Port, bad = uint16(n), !ok
		case "ttl":
			n, ok := p.readInt(l, v, 1, 255)
			d.TTL, bad = uint8(n), !ok
		case "group":
			a, err := netip.ParseAddr(v)
			if err != nil || !a.IsMulticast() {
				p.errorf(l, ClassGeneral, "a multicast address, 224.0.0.81 by default", "lvs_sync_daemon: group %s is not a multicast address", v)
				return
			}
			d.Group = a
		}
		if bad {
			p.errorf(l, ClassGeneral, "", "lvs_sync_daemon: invalid %s %s", opt, v)
			return
		}
	}
	p.cfg.Global.LVSSyncDaemon = d
}

func syncDaemonOption(w string) bool {
	switch w {
	case "id", "maxlen", "port", "ttl", "group":
		return true
	}
	return false
}
