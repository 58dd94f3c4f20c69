package keepalived

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"lvslab/config"
	"lvslab/sched"
)

// The LVS side: virtual_server_group, virtual_server, real_server and the
// checkers (keepalived/check/check_parser.c, check_api.c, check_*.c @v2.2.7).

const (
	defaultDelayLoop      = 60 * time.Second
	defaultConnectTimeout = 5 * time.Second
	ipvsWeightLimit       = 2147483647
	lvsMaxTimeout         = 2678400 // 31 days, as ipvsadm
	// fullnatNote ends the notes on the FULLNAT fork's keywords, which
	// lvsd runs but keepalived 2.2.7 does not know.
	fullnatNote = "the FULLNAT fork's keyword (keepalived 2.2.7 does not know it)"
)

// cur is the logical line just read (end handlers report at the "}").
func (p *parser) cur() *line {
	if p.i > 0 && p.i <= len(p.lines) {
		return &p.lines[p.i-1]
	}
	return &line{}
}

func checkBlocks(root *block) {
	ssl := newBlock("SSL")
	ssl.add("password", func(p *parser, l *line) { p.sslField(l, func(s *SSL, v string) { s.Password = v }) })
	ssl.add("ca", func(p *parser, l *line) { p.sslField(l, func(s *SSL, v string) { s.CA = v }) })
	ssl.add("certificate", func(p *parser, l *line) { p.sslField(l, func(s *SSL, v string) { s.Certificate = v }) })
	ssl.add("key", func(p *parser, l *line) { p.sslField(l, func(s *SSL, v string) { s.Key = v }) })
	root.sublevel("SSL", func(p *parser, l *line) {
		if p.cfg.SSL != nil {
			p.errorf(l, ClassGeneral, "", "SSL context already specified - replacing")
		}
		p.cfg.SSL = &SSL{}
	}, ssl)

	root.add("virtual_server_group", (*parser).vsgHandler)
	root.add("local_address_group", (*parser).laddrGroupHandler)

	vs := newBlock("virtual_server")
	vs.end = (*parser).vsEnd
	root.sublevel("virtual_server", (*parser).vsHandler, vs)
	vs.add("ip_family", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vs == nil {
			return
		}
		switch v {
		case "inet":
			p.vs.IPFamily = 4
		case "inet6":
			p.vs.IPFamily = 6
		default:
			p.errorf(l, ClassGeneral, "inet or inet6", "unknown address family %s", v)
		}
	})
	vs.add("retry", func(p *parser, l *line) {
		p.vsInt(l, func(v *VirtualServer, n int) { v.Retry = n }, "retry value invalid - %s")
	})
	vs.add("delay_before_retry", func(p *parser, l *line) {
		p.vsTimer(l, 0, func(v *VirtualServer, d time.Duration) { v.DelayBeforeRetry = d }, "virtual server delay before retry '%s' invalid - ignoring")
	})
	vs.add("warmup", func(p *parser, l *line) {
		p.vsTimer(l, 0, func(v *VirtualServer, d time.Duration) { v.Warmup = d }, "virtual server warmup '%s' invalid - ignoring")
	})
	vs.add("connect_timeout", func(p *parser, l *line) {
		p.vsTimer(l, time.Second, func(v *VirtualServer, d time.Duration) { v.ConnectTimeout = d }, "virtual server connect_timeout %s invalid - ignoring")
	})
	vs.add("delay_loop", func(p *parser, l *line) {
		p.vsTimer(l, time.Second, func(v *VirtualServer, d time.Duration) { v.DelayLoop = d }, "virtual server delay loop '%s' invalid - ignoring")
	})
	vs.add("inhibit_on_failure", func(p *parser, l *line) {
		if b, ok := p.boolArg(l, "inhibit_on_failure"); ok && p.vs != nil {
			p.vs.InhibitOnFailure = b
		}
	})
	for _, k := range []string{"lb_algo", "lvs_sched"} {
		vs.add(k, (*parser).lbAlgo)
	}
	for _, k := range []string{"hashed", "ops", "flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback"} {
		vs.add(k, (*parser).lbFlag)
	}
	for _, k := range []string{"lb_kind", "lvs_method"} {
		vs.add(k, func(p *parser, l *line) {
			if p.vs == nil {
				return
			}
			p.forwarding(l, "virtual", &p.vs.Forward, &p.vs.TunType, &p.vs.TunPort, &p.vs.TunCsum, p.vs)
		})
	}
	vs.add("persistence_engine", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.vs != nil {
			p.vs.PersistEngine = v
		}
	})
	vs.add("persistence_timeout", func(p *parser, l *line) {
		if p.vs == nil {
			return
		}
		if len(l.words) < 2 || l.slashes == 1 {
			p.vs.PersistTimeout = config.DefaultPersistTimeout
			return
		}
		if n, ok := p.readUint(l, l.words[1], 1, lvsMaxTimeout); ok {
			p.vs.PersistTimeout = time.Duration(n) * time.Second
		} else {
			p.errorf(l, ClassGeneral, "1 to 2678400 seconds", "persistence_timeout invalid")
		}
	})
	vs.add("persistence_granularity", (*parser).persistGranularity)
	vs.add("protocol", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vs == nil {
			return
		}
		switch strings.ToUpper(v) {
		case "TCP":
			p.vs.Protocol = config.ProtoTCP
		case "UDP":
			p.vs.Protocol = config.ProtoUDP
		case "SCTP":
			p.vs.Protocol = config.ProtoSCTP
		default:
			p.errorf(l, ClassGeneral, "TCP, UDP or SCTP", "Unknown protocol %s - ignoring", v)
		}
	})
	vs.add("ha_suspend", func(p *parser, l *line) {
		if p.vs != nil {
			p.extra(l, 1)
			p.vs.HASuspend = true
		}
	})
	vs.add("smtp_alert", func(p *parser, l *line) {
		if b, ok := p.boolArg(l, "virtual_server smtp_alert"); ok && p.vs != nil {
			p.vs.SMTPAlert = b
		}
	})
	vs.add("virtualhost", func(p *parser, l *line) {
		if p.vs == nil {
			return
		}
		if len(l.words) < 2 {
			p.errorf(l, ClassGeneral, "", "virtual server virtualhost missing")
			return
		}
		p.vs.Virtualhost = l.words[1]
	})
	vs.add("snmp_name", nil)
	vs.add("alpha", func(p *parser, l *line) {
		if p.vs != nil {
			p.extra(l, 1)
			p.vs.Alpha = true
		}
	})
	vs.add("omega", func(p *parser, l *line) {
		if p.vs != nil {
			p.extra(l, 1)
			p.vs.Omega = true
		}
	})
	vs.add("quorum_up", func(p *parser, l *line) {
		if s := p.script(l); s != nil && p.vs != nil {
			if p.vs.QuorumUp != nil {
				p.errorf(l, ClassGeneral, "", "quorum_up script already specified - ignoring %s", l.words[1])
				return
			}
			p.vs.QuorumUp = s
		}
	})
	vs.add("quorum_down", func(p *parser, l *line) {
		if s := p.script(l); s != nil && p.vs != nil {
			if p.vs.QuorumDown != nil {
				p.errorf(l, ClassGeneral, "", "quorum_down script already specified - ignoring %s", l.words[1])
				return
			}
			p.vs.QuorumDown = s
		}
	})
	vs.add("quorum", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vs == nil {
			return
		}
		if n, ok := p.readUint(l, v, 1, 4294967295); ok {
			p.vs.Quorum = uint32(n)
		} else {
			p.errorf(l, ClassGeneral, "", "Quorum %s must be in [1, %d]. Setting to 1.", v, uint32(4294967295))
			p.vs.Quorum = 1
		}
	})
	vs.add("hysteresis", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vs == nil {
			return
		}
		if n, ok := p.readUint(l, v, 0, 4294967295); ok {
			p.vs.Hysteresis = uint32(n)
		} else {
			p.errorf(l, ClassGeneral, "", "Hysteresis %s must be in [0, %d] - ignoring", v, uint32(4294967295))
		}
	})
	vs.add("weight", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.vs == nil {
			return
		}
		if n, ok := p.readUint(l, v, 1, ipvsWeightLimit); ok {
			p.vs.Weight = int(n)
		} else {
			p.errorf(l, ClassGeneral, "", "Virtual server weight %s is outside range 1-%d", v, ipvsWeightLimit)
		}
	})
	vs.add("sorry_server", func(p *parser, l *line) {
		ip, ok := p.need(l, 1)
		if !ok || p.vs == nil {
			return
		}
		port := ""
		if len(l.words) > 2 {
			port = l.words[2]
		}
		a, pt, ok := parseAddrPort(ip, port)
		if !ok {
			p.errorf(l, ClassGeneral, "", "Invalid sorry server IP address %s - skipping", ip)
			return
		}
		p.vs.SorryServer = &RealServer{Pos: l.pos, Addr: a, Port: pt, Weight: 1, retry: -1, warmup: -1, delayBeforeRetry: -1}
	})
	vs.add("sorry_server_inhibit", func(p *parser, l *line) {
		if p.vs == nil {
			return
		}
		if p.vs.SorryServer == nil {
			p.errorf(l, ClassGeneral, "", "Ignoring sorry_server inhibit used before or without sorry_server")
			return
		}
		p.vs.SorryServerInhibit = true
	})
	vs.add("sorry_server_lvs_method", func(p *parser, l *line) {
		if p.vs == nil {
			return
		}
		if p.vs.SorryServer == nil {
			p.errorf(l, ClassGeneral, "", "sorry_server forwarding used without sorry_server")
			return
		}
		ss := p.vs.SorryServer
		if p.forwarding(l, "sorry", &ss.Forward, &ss.TunType, &ss.TunPort, &ss.TunCsum, nil) {
			ss.setForward = true
		}
	})
	// The Alibaba fork's FULLNAT keywords.
	vs.add("syn_proxy", func(p *parser, l *line) {
		if p.vs != nil {
			// lvsd proxies SYNs for NAT and FULLNAT real servers
			// (finishCheck refuses the others).
			p.extra(l, 1)
			p.vs.SynProxy = true
		}
	})
	vs.add("laddr_group_name", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if ok && p.vs != nil {
			p.vs.LaddrGroup = v
			p.fullnat(l, "laddr_group_name")
		}
	})
	vs.add("est_timeout", func(p *parser, l *line) {
		if p.vs != nil {
			p.vs.Refused = "not yet supported by lvsd: est_timeout"
			p.errorf(l, ClassFullNAT, "the per-service established timeout of the FULLNAT fork; this virtual server is not installed",
				"est_timeout: %s", p.vs.Refused)
		}
	})

	rs := newBlock("real_server")
	rs.end = (*parser).rsEnd
	vs.sublevel("real_server", (*parser).rsHandler, rs)
	rs.add("weight", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.rs == nil {
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > ipvsWeightLimit {
			p.errorf(l, ClassInvalidNumber, "IPVS weights are 0 to 2147483647 (lvsd: 0 to 65535)", "Real server weight %s is outside range 0-%d", v, ipvsWeightLimit)
			return
		}
		if n > 65535 {
			p.warn(l, ClassLvsdLimit, "lvsd keeps ipvsadm's 0..65535", "real server weight %d clamped to 65535", n)
			n = 65535
		}
		p.rs.Weight, p.rs.setWeight = int(n), true
	})
	rs.add("lvs_method", func(p *parser, l *line) {
		if p.rs != nil && p.forwarding(l, "real", &p.rs.Forward, &p.rs.TunType, &p.rs.TunPort, &p.rs.TunCsum, nil) {
			p.rs.setForward = true
		}
	})
	rs.add("uthreshold", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.rs != nil {
			if n, ok := p.readUint(l, v, 0, 4294967295); ok {
				p.rs.UThreshold = uint32(n)
			} else {
				p.errorf(l, ClassGeneral, "", "Invalid real_server uthreshold '%s' - ignoring", v)
			}
		}
	})
	rs.add("lthreshold", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.rs != nil {
			if n, ok := p.readUint(l, v, 0, 4294967295); ok {
				p.rs.LThreshold = uint32(n)
			} else {
				p.errorf(l, ClassGeneral, "", "Invalid real_server lthreshold '%s' - ignoring", v)
			}
		}
	})
	rs.add("inhibit_on_failure", func(p *parser, l *line) {
		if b, ok := p.boolArg(l, "inhibit_on_failure"); ok && p.rs != nil {
			p.rs.InhibitOnFailure, p.rs.setInhibit = b, true
		}
	})
	rs.add("notify_up", func(p *parser, l *line) {
		if s := p.script(l); s != nil && p.rs != nil {
			if p.rs.NotifyUp != nil {
				p.errorf(l, ClassGeneral, "", "notify_up script already specified - ignoring %s", l.words[1])
				return
			}
			p.rs.NotifyUp = s
		}
	})
	rs.add("notify_down", func(p *parser, l *line) {
		if s := p.script(l); s != nil && p.rs != nil {
			if p.rs.NotifyDown != nil {
				p.errorf(l, ClassGeneral, "", "notify_down script already specified - ignoring %s", l.words[1])
				return
			}
			p.rs.NotifyDown = s
		}
	})
	rs.add("alpha", func(p *parser, l *line) {
		if b, ok := p.boolArg(l, "alpha"); ok && p.rs != nil {
			p.rs.Alpha, p.rs.setAlpha = b, true
		}
	})
	rs.add("retry", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.rs != nil {
			if n, ok := p.readUint(l, v, 1, 4294967295); ok {
				p.rs.retry = int(n)
			} else {
				p.errorf(l, ClassGeneral, "", "retry value invalid - %s", v)
			}
		}
	})
	rs.add("delay_before_retry", func(p *parser, l *line) {
		p.rsTimer(l, 0, &p.rsOrNil().delayBeforeRetry, "real server delay_before_retry '%s' invalid - ignoring")
	})
	rs.add("warmup", func(p *parser, l *line) {
		p.rsTimer(l, 0, &p.rsOrNil().warmup, "real server warmup '%s' invalid - ignoring")
	})
	rs.add("connect_timeout", func(p *parser, l *line) {
		p.rsTimer(l, time.Second, &p.rsOrNil().connectTimeout, "real server connect_timeout %s invalid - ignoring")
	})
	rs.add("delay_loop", func(p *parser, l *line) {
		p.rsTimer(l, time.Second, &p.rsOrNil().delayLoop, "real server delay_loop '%s' invalid - ignoring")
	})
	rs.add("smtp_alert", func(p *parser, l *line) {
		if b, ok := p.boolArg(l, "real_server smtp_alert"); ok && p.rs != nil {
			p.rs.SMTPAlert = b
		}
	})
	rs.add("virtualhost", func(p *parser, l *line) {
		if p.rs == nil {
			return
		}
		if len(l.words) < 2 {
			p.errorf(l, ClassGeneral, "", "real server virtualhost missing")
			return
		}
		p.rs.Virtualhost = l.words[1]
	})
	rs.add("snmp_name", nil)
	checkerBlocks(rs)
}

// rsOrNil returns the current real server, or a throw-away one when the
// block is being skipped (so handlers need no nil checks).
func (p *parser) rsOrNil() *RealServer {
	if p.rs != nil {
		return p.rs
	}
	return &RealServer{}
}

func (p *parser) rsTimer(l *line, min time.Duration, dst *time.Duration, msg string) {
	v, ok := p.need(l, 1)
	if !ok {
		return
	}
	if d, ok := parseTimer(v); ok && d >= min {
		*dst = d
		return
	}
	p.errorf(l, ClassGeneral, "", msg, v)
}

func (p *parser) vsTimer(l *line, min time.Duration, set func(*VirtualServer, time.Duration), msg string) {
	v, ok := p.need(l, 1)
	if !ok || p.vs == nil {
		return
	}
	if d, ok := parseTimer(v); ok && d >= min {
		set(p.vs, d)
		return
	}
	p.errorf(l, ClassGeneral, "", msg, v)
}

func (p *parser) vsInt(l *line, set func(*VirtualServer, int), msg string) {
	v, ok := p.need(l, 1)
	if !ok || p.vs == nil {
		return
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n < 1 {
		p.errorf(l, ClassInvalidNumber, "", msg, v)
		return
	}
	set(p.vs, int(n))
}

func (p *parser) sslField(l *line, set func(*SSL, string)) {
	if p.cfg.SSL == nil {
		return
	}
	if len(l.words) < 2 {
		p.errorf(l, ClassGeneral, "", "SSL %s missing", l.words[0])
		return
	}
	set(p.cfg.SSL, l.words[1])
}

// fullnat notes one of the fork's FULLNAT keywords: lvsd runs them, and
// keepalived 2.2.7 would refuse them, so the note says so.
func (p *parser) fullnat(l *line, what string) *Diag {
	return p.warn(l, ClassFullNAT, "lvsd forwards FULLNAT (lvsadm -P/-b)", "%s: %s", what, fullnatNote)
}

func (p *parser) vsgHandler(l *line) {
	name, ok := p.need(l, 1)
	if !ok {
		return
	}
	g := &VirtualServerGroup{Pos: l.pos, Name: name}
	for _, v := range p.valueBlock(l, 2) {
		if e, ok := p.vsgEntry(v); ok {
			g.Entries = append(g.Entries, e)
		}
	}
	if len(g.Entries) == 0 {
		p.errorf(p.cur(), ClassGeneral, "", "virtual server group %s has no entries - removing", name)
		return
	}
	p.cfg.VirtualServerGroups = append(p.cfg.VirtualServerGroups, g)
}

func (p *parser) vsgEntry(v *line) (VSGroupEntry, bool) {
	e := VSGroupEntry{Pos: v.pos}
	p.extra(v, 2)
	if v.words[0] == "fwmark" {
		s, ok := p.need(v, 1)
		if !ok {
			return e, false
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			p.errorf(v, ClassGeneral, "", "fwmark '%s' must be in [0, %d] - ignoring", s, uint32(4294967295))
			return e, false
		}
		e.Fwmark = uint32(n)
		if len(v.words) > 2 && v.words[2] == "inet6" {
			e.FwmarkIPv6 = true
		}
		return e, true
	}
	addr := v.words[0]
	port := ""
	if len(v.words) > 1 && v.slashes != 1 {
		port = v.words[1]
	}
	first, last, ok := parseRange(addr)
	var pt uint16
	if ok && port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		ok = err == nil
		pt = uint16(n)
	}
	if !ok {
		hint := ""
		switch addr {
		case "delay_loop", "lb_algo", "lb_kind", "protocol", "real_server", "syn_proxy", "laddr_group_name", "alpha", "omega",
			"quorum", "hysteresis", "quorum_up", "quorum_down", "persistence_timeout", "sorry_server", "weight", "TCP_CHECK", "HTTP_GET":
			hint = "a virtual_server keyword inside virtual_server_group: 'virtual_server group NAME {' was probably meant"
		}
		p.errorf(v, ClassGeneral, hint, "Invalid virtual server group IP address %s %s - skipping", addr, port)
		return e, false
	}
	e.First, e.Last, e.Port = first, last, pt
	return e, true
}

// parseRange reads A, A-B (last octet or full address) or A/nn.
func parseRange(s string) (netip.Addr, netip.Addr, bool) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		if pfx.Masked() != pfx {
			return netip.Addr{}, netip.Addr{}, false
		}
		return pfx.Addr(), lastOf(pfx), true
	}
	a, b, isRange := strings.Cut(s, "-")
	first, err := netip.ParseAddr(a)
	if err != nil {
		return first, first, false
	}
	if !isRange {
		return first, first, true
	}
	last, err := netip.ParseAddr(b)
	if err != nil && first.Is4() {
		n, e2 := strconv.ParseUint(b, 10, 8)
		if e2 != nil {
			return first, first, false
		}
		f := first.As4()
		f[3] = byte(n)
		last, err = netip.AddrFrom4(f), nil
	}
	if err != nil || last.Less(first) || last.Is4() != first.Is4() {
		return first, first, false
	}
	return first, last, true
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func (p *parser) laddrGroupHandler(l *line) {
	name, ok := p.need(l, 1)
	if !ok {
		return
	}
	g := &LocalAddressGroup{Pos: l.pos, Name: name}
	for _, v := range p.valueBlock(l, 2) {
		p.extra(v, 1)
		g.Entries = append(g.Entries, v.words[0])
		first, last, ok := parseRange(v.words[0])
		if !ok || !first.Is4() || first.IsUnspecified() || first.IsMulticast() {
			p.errorf(v, ClassGeneral, "an IPv4 address or range (A, A-B, A/nn) per line", "local_address_group %s: invalid local address %s - skipping", name, v.words[0])
			continue
		}
		n := 0
		for a := first; a.IsValid() && !last.Less(a); a = a.Next() {
			if n == 256 {
				p.errorf(v, ClassGeneral, "", "local_address_group %s: range %s has more than 256 addresses - taking the first 256", name, v.words[0])
				break
			}
			g.Addrs = append(g.Addrs, a)
			n++
		}
	}
	g.EndLine = p.cur().pos.Line
	if dup := p.laddrGroup(name); dup != nil {
		p.errorf(l, ClassGeneral, "", "local_address_group %s already defined at line %d - ignoring this one", name, dup.Pos.Line)
		return
	}
	p.cfg.LocalAddressGroups = append(p.cfg.LocalAddressGroups, g)
	d := p.fullnat(l, "local_address_group "+name)
	d.EndLine = g.EndLine
}

func (p *parser) laddrGroup(name string) *LocalAddressGroup {
	for _, g := range p.cfg.LocalAddressGroups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

func parseAddrPort(ip, port string) (netip.Addr, uint16, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return a, 0, false
	}
	if port == "" {
		return a, 0, true
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return a, 0, false
	}
	return a, uint16(n), true
}

func (p *parser) vsHandler(l *line) {
	p.vs = nil
	a1, ok := p.need(l, 1)
	if !ok {
		return
	}
	v := &VirtualServer{Pos: l.pos, Quorum: 1, Weight: 1, Retry: -1, Warmup: -1, DelayBeforeRetry: -1,
		DelayLoop: defaultDelayLoop, ConnectTimeout: defaultConnectTimeout, Forward: forwardUnset}
	a2 := ""
	if len(l.words) > 2 {
		a2 = l.words[2]
	}
	switch a1 {
	case "group":
		if _, ok := p.need(l, 2); !ok {
			return
		}
		v.Group = a2
	case "fwmark":
		if _, ok := p.need(l, 2); !ok {
			return
		}
		n, err := strconv.ParseUint(a2, 10, 32)
		if err != nil {
			p.errorf(l, ClassGeneral, "", "virtual server fwmark '%s' must be in [0, %d] - ignoring", a2, uint32(4294967295))
			p.skipBlock()
			return
		}
		v.Fwmark = uint32(n)
	default:
		a, pt, ok := parseAddrPort(a1, a2)
		if !ok {
			if a2 != "" {
				p.errorf(l, ClassGeneral, "", "Invalid virtual server IP address/port %s/%s - skipping", a1, a2)
			} else {
				p.errorf(l, ClassGeneral, "", "Invalid virtual server IP address %s - skipping", a1)
			}
			p.skipBlock()
			return
		}
		v.Addr, v.Port = a, pt
	}
	p.vs = v
	p.cfg.VirtualServers = append(p.cfg.VirtualServers, v)
}

// forwardUnset marks lb_kind not given (keepalived: IP_VS_CONN_F_FWD_MASK).
const forwardUnset config.Forward = 0xff

func (p *parser) vsEnd() {
	if p.vs != nil {
		p.vs.EndLine = p.cur().pos.Line
		// keepalived 2.2.7 refuses a FULLNAT virtual server as a whole (and
		// reports its other fork keywords, syn_proxy among them): the notes
		// cover the block.
		if p.vs.Refused != "" || p.vs.Forward == config.ForwardFullNAT || p.vs.LaddrGroup != "" {
			for i := len(p.diags.list) - 1; i >= 0; i-- {
				d := &p.diags.list[i]
				if d.Class == ClassFullNAT && d.Pos.Line >= p.vs.Pos.Line && d.EndLine == 0 {
					d.EndLine = p.vs.EndLine
				}
				if d.Pos.Line < p.vs.Pos.Line {
					break
				}
			}
		}
	}
	p.vs = nil
}

func (p *parser) lbAlgo(l *line) {
	v, ok := p.need(l, 1)
	if !ok || p.vs == nil {
		return
	}
	if !slices.Contains(config.Schedulers(), v) {
		p.errorf(l, ClassGeneral, "schedulers: rr wrr lc wlc lblc sh mh dh fo ovf lblcr sed nq twos", "Invalid lvs_scheduler '%s' - ignoring", v)
		return
	}
	p.vs.Scheduler = v
}

func (p *parser) lbFlag(l *line) {
	if p.vs == nil {
		return
	}
	switch w := l.words[0]; w {
	case "ops":
		p.vs.OnePacket = true
	case "hashed":
	case "flag-1":
		p.vs.SchedFlags |= sched.Flag1
	case "flag-2":
		p.vs.SchedFlags |= sched.Flag2
	case "flag-3":
		p.vs.SchedFlags |= sched.Flag3
	default:
		prefix, flag, _ := strings.Cut(w, "-")
		if p.vs.Scheduler != prefix {
			p.errorf(l, ClassGeneral, "put lb_algo before it", "%s only applies to sh scheduler - ignoring", w)
			return
		}
		if flag == "port" {
			p.vs.SchedFlags |= sched.Flag2
		} else {
			p.vs.SchedFlags |= sched.Flag1
		}
	}
}

// forwarding reads NAT|DR|TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]
// (and the fork's FNAT, refused for vs).
func (p *parser) forwarding(l *line, who string, fwd *config.Forward, tt *config.TunType, tp *uint16, tc *config.TunCsum, vs *VirtualServer) bool {
	v, ok := p.need(l, 1)
	if !ok {
		return false
	}
	switch v {
	case "NAT":
		*fwd = config.ForwardMasq
	case "DR":
		*fwd = config.ForwardRoute
	case "TUN":
		*fwd = config.ForwardTunnel
	case "FNAT":
		*fwd = config.ForwardFullNAT
		if vs != nil {
			p.fullnat(l, "lb_kind FNAT")
		} else {
			p.fullnat(l, who+" server lvs_method FNAT")
		}
		return true
	default:
		p.errorf(l, ClassGeneral, "NAT, DR or TUN", "PARSER : unknown [%s] routing method for %s server.", v, who)
		return false
	}
	p.extra(l, 2)
	for i := 2; i < len(l.words) && i != l.slashes; i++ {
		switch l.words[i] {
		case "type":
			if i+1 >= len(l.words) {
				p.errorf(l, ClassGeneral, "", "Missing tunnel type for %s server.", who)
				return false
			}
			i++
			switch l.words[i] {
			case "ipip":
				*tt = config.TunIPIP
			case "gue":
				*tt = config.TunGUE
			case "gre":
				*tt = config.TunGRE
			default:
				p.errorf(l, ClassGeneral, "", "Unknown tunnel type %s for %s server.", l.words[i], who)
				return false
			}
		case "port":
			if i+1 >= len(l.words) {
				p.errorf(l, ClassGeneral, "", "Missing port for %s server gue tunnel.", who)
				return false
			}
			i++
			n, err := strconv.ParseUint(l.words[i], 10, 16)
			if err != nil || n == 0 {
				p.errorf(l, ClassGeneral, "", "Invalid gue tunnel port %s for %s server.", l.words[i], who)
				return false
			}
			*tp = uint16(n)
		case "nocsum":
			*tc = config.TunNoCsum
		case "csum":
			*tc = config.TunCsumOn
		case "remcsum":
			*tc = config.TunRemCsum
		default:
			p.errorf(l, ClassGeneral, "", "Invalid tunnel option %s for %s server.", l.words[i], who)
			return false
		}
	}
	if (*tt == config.TunGUE) != (*tp != 0) {
		p.errorf(l, ClassGeneral, "", "gue tunnels require port, otherwise cannot have port.")
		return false
	}
	return true
}

func (p *parser) persistGranularity(l *line) {
	v, ok := p.need(l, 1)
	if !ok || p.vs == nil {
		return
	}
	if a, err := netip.ParseAddr(v); err == nil && a.Is4() {
		if _, ok := maskLen(a); !ok {
			p.errorf(l, ClassGeneral, "", "IPv4 persistence_granularity netmask is not solid - %s", v)
			return
		}
		p.vs.PersistGranularity = a
		return
	}
	n, err := strconv.ParseUint(v, 10, 8)
	if err != nil || n < 1 || n > 128 {
		p.errorf(l, ClassGeneral, "", "Invalid IPv4 persistence_granularity specified - %s", v)
		return
	}
	if n <= 32 && !p.vs.Addr.Is6() {
		p.vs.PersistGranularity = prefixMask(int(n), false)
	} else {
		p.vs.PersistGranularity = prefixMask(int(n), true)
	}
}

func maskLen(a netip.Addr) (int, bool) {
	b := a.AsSlice()
	n, seenZero := 0, false
	for _, x := range b {
		for i := 7; i >= 0; i-- {
			if x&(1<<i) != 0 {
				if seenZero {
					return 0, false
				}
				n++
			} else {
				seenZero = true
			}
		}
	}
	return n, true
}

func prefixMask(bits int, v6 bool) netip.Addr {
	size := 4
	if v6 {
		size = 16
	}
	b := make([]byte, size)
	for i := 0; i < bits && i < size*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func (p *parser) rsHandler(l *line) {
	p.rs = nil
	ip, ok := p.need(l, 1)
	if !ok || p.vs == nil {
		if ok {
			p.skipBlock()
		}
		return
	}
	port := ""
	if len(l.words) > 2 {
		port = l.words[2]
	}
	a, pt, ok := parseAddrPort(ip, port)
	if !ok {
		p.errorf(l, ClassGeneral, "", "Invalid real server ip address/port %s/%s - skipping", ip, port)
		p.skipBlock()
		return
	}
	p.rs = &RealServer{Pos: l.pos, Addr: a, Port: pt, Weight: p.vs.Weight, retry: -1, warmup: -1, delayBeforeRetry: -1}
	p.vs.RealServers = append(p.vs.RealServers, p.rs)
}

func (p *parser) rsEnd() { p.rs = nil }

// --- checkers ------------------------------------------------------------

func checkerBlocks(rs *block) {
	common := func(b *block, conn bool) {
		if conn {
			b.add("connect_ip", func(p *parser, l *line) {
				p.chkAddr(l, func(c *Checker, a netip.Addr) { c.ConnectIP = a }, "connect_ip address")
			})
			b.add("connect_port", func(p *parser, l *line) {
				p.chkPort(l, func(c *Checker, n uint16) { c.ConnectPort = n }, "Invalid checker connect_port '%s'")
			})
			b.add("bindto", func(p *parser, l *line) {
				p.chkAddr(l, func(c *Checker, a netip.Addr) { c.BindTo = a }, "bindto address")
			})
			b.add("bind_port", func(p *parser, l *line) {
				p.chkPort(l, func(c *Checker, n uint16) { c.BindPort = n }, "Invalid checker bind_port '%s'")
			})
			b.add("bind_if", func(p *parser, l *line) {
				if v, ok := p.need(l, 1); ok && p.chk != nil {
					p.chk.BindIf = v
				}
			})
			b.add("connect_timeout", func(p *parser, l *line) {
				p.chkTimer(l, time.Second/1000, func(c *Checker, d time.Duration) { c.connectTimeout = d }, "connect_timeout %s invalid - ignoring")
			})
			b.add("fwmark", func(p *parser, l *line) {
				if v, ok := p.need(l, 1); ok && p.chk != nil {
					n, err := strconv.ParseUint(v, 10, 32)
					if err != nil {
						p.errorf(l, ClassGeneral, "", "Invalid fwmark connection value '%s'", v)
						return
					}
					p.chk.Fwmark = uint32(n)
				}
			})
		}
		b.add("retry", func(p *parser, l *line) {
			if v, ok := p.need(l, 1); ok && p.chk != nil {
				n, err := strconv.ParseUint(v, 10, 31)
				if err != nil {
					p.errorf(l, ClassGeneral, "", "Invalid retry connection value '%s'", v)
					return
				}
				p.chk.retry = int(n)
			}
		})
		b.add("delay_before_retry", func(p *parser, l *line) {
			p.chkTimer(l, 0, func(c *Checker, d time.Duration) { c.delayBeforeRetry = d }, "Invalid delay_before_retry connection value '%s'")
		})
		b.add("warmup", func(p *parser, l *line) {
			p.chkTimer(l, 0, func(c *Checker, d time.Duration) { c.warmup = d }, "Invalid warmup connection value '%s'")
		})
		b.add("delay_loop", func(p *parser, l *line) {
			p.chkTimer(l, time.Second, func(c *Checker, d time.Duration) { c.delayLoop = d }, "delay_loop '%s' is invalid - ignoring")
		})
		b.add("alpha", func(p *parser, l *line) {
			if v, ok := p.boolArg(l, "alpha"); ok && p.chk != nil {
				p.chk.Alpha, p.chk.alphaSet = v, true
			}
		})
		b.add("log_all_failures", func(p *parser, l *line) {
			if v, ok := p.boolArg(l, "log_all_failures"); ok && p.chk != nil {
				p.chk.LogAllFailures = v
			}
		})
	}
	start := func(kind CheckerKind) func(p *parser, l *line) {
		return func(p *parser, l *line) {
			p.chk = nil
			if p.rs == nil {
				return
			}
			p.extra(l, 1)
			c := &Checker{Kind: kind, Pos: l.pos, retry: -1, warmup: -1, delayBeforeRetry: -1}
			switch kind {
			case CheckHTTP, CheckSSL:
				c.HTTP = &HTTPCheck{Protocol: "1.0"}
			case CheckMisc:
				c.Misc = &MiscCheck{}
			case CheckSMTP:
				c.SMTP = &SMTPCheck{HeloName: "smtpchecker.keepalived.org"}
			case CheckUDP:
				c.UDP = &UDPCheck{}
			case CheckDNS:
				c.DNS = &DNSCheck{Type: "SOA", Name: "."}
			case CheckFile:
				c.File = &FileCheck{}
			}
			p.chk = c
			p.rs.Checkers = append(p.rs.Checkers, c)
		}
	}
	end := func(p *parser) { p.chk = nil }

	tcp := newBlock("TCP_CHECK")
	common(tcp, true)
	tcp.end = end
	rs.sublevel("TCP_CHECK", start(CheckTCP), tcp)

	ping := newBlock("PING_CHECK")
	common(ping, true)
	ping.end = end
	rs.sublevel("PING_CHECK", start(CheckPing), ping)

	for _, kind := range []CheckerKind{CheckHTTP, CheckSSL} {
		h := newBlock(kind.String())
		common(h, true)
		h.end = func(p *parser) {
			if p.chk != nil && len(p.chk.HTTP.URLs) == 0 {
				p.errorf(p.cur(), ClassGeneral, "an HTTP_GET needs at least one url { path ... }", "HTTP/SSL_GET checker has no urls specified - ignoring")
				p.dropChecker()
			}
			p.chk = nil
		}
		h.add("nb_get_retry", func(p *parser, l *line) {
			p.warn(l, ClassDeprecated, "write 'retry N'", "nb_get_retry is deprecated - please use 'retry'")
			if v, ok := p.need(l, 1); ok && p.chk != nil {
				n, err := strconv.ParseUint(v, 10, 31)
				if err != nil {
					p.errorf(l, ClassGeneral, "", "Invalid nb_get_retry value '%s'", v)
					return
				}
				p.chk.retry = int(n)
			}
		})
		h.add("virtualhost", func(p *parser, l *line) {
			if p.chk == nil {
				return
			}
			if len(l.words) < 2 {
				p.errorf(l, ClassGeneral, "", "HTTP_GET virtualhost name missing")
				return
			}
			p.chk.HTTP.Virtualhost = l.words[1]
		})
		h.add("http_protocol", func(p *parser, l *line) {
			if p.chk == nil {
				return
			}
			if len(l.words) < 2 {
				p.errorf(l, ClassGeneral, "", "Missing http_protocol version")
				return
			}
			switch v := l.words[1]; v {
			case "1.0", "1.1", "1.0C", "1.0c":
				p.chk.HTTP.Protocol = strings.ToUpper(v)
			default:
				p.errorf(l, ClassGeneral, "1.0, 1.0C or 1.1", "Invalid http_protocol version %s", v)
			}
		})
		h.add("enable_sni", func(p *parser, l *line) {
			if v, ok := p.boolArg(l, "enable_sni"); ok && p.chk != nil {
				p.chk.HTTP.EnableSNI = v
			}
		})
		h.add("fast_recovery", func(p *parser, l *line) {
			if v, ok := p.boolArg(l, "fast_recovery"); ok && p.chk != nil {
				p.chk.HTTP.FastRecovery = v
			}
		})
		u := newBlock("url")
		h.sublevel("url", func(p *parser, l *line) {
			p.url = nil
			if p.chk == nil {
				return
			}
			p.extra(l, 1)
			p.chk.HTTP.URLs = append(p.chk.HTTP.URLs, URL{Pos: l.pos})
			p.url = &p.chk.HTTP.URLs[len(p.chk.HTTP.URLs)-1]
		}, u)
		u.end = func(p *parser) {
			if p.url != nil && p.url.Path == "" {
				p.errorf(p.cur(), ClassGeneral, "add 'path /...' to the url block", "HTTP/SSL_GET checker url has no path - ignoring")
				p.chk.HTTP.URLs = p.chk.HTTP.URLs[:len(p.chk.HTTP.URLs)-1]
			}
			p.url = nil
		}
		u.add("path", func(p *parser, l *line) {
			if v, ok := p.need(l, 1); ok && p.url != nil {
				p.extra(l, 2)
				p.url.Path = v
			}
		})
		u.add("digest", func(p *parser, l *line) {
			v, ok := p.need(l, 1)
			if !ok || p.url == nil {
				return
			}
			if len(v) != 32 {
				p.errorf(l, ClassGeneral, "genhash (lvskeepalived -T) prints the 32 hex digits", "digest '%s' character length should be 32 rather than %d", v, len(v))
				return
			}
			if _, err := hex.DecodeString(v); err != nil {
				p.errorf(l, ClassGeneral, "", "Unable to interpret hex digit in '%s'", v)
				return
			}
			p.url.Digest = strings.ToLower(v)
		})
		u.add("status_code", func(p *parser, l *line) {
			if p.url == nil {
				return
			}
			p.extra(l, 2)
			for i := 1; i < len(l.words) && i != l.slashes; i++ {
				s := l.words[i]
				a, b, isRange := strings.Cut(s, "-")
				lo, e1 := strconv.Atoi(a)
				hi := lo
				var e2 error
				if isRange {
					hi, e2 = strconv.Atoi(b)
				}
				if e1 != nil || e2 != nil || lo < 100 || hi > 999 || lo > hi {
					p.errorf(l, ClassGeneral, "", "Invalid HTTP_GET status code '%s'", s)
					continue
				}
				p.url.StatusCodes = append(p.url.StatusCodes, StatusRange{lo, hi})
			}
		})
		u.add("virtualhost", func(p *parser, l *line) {
			if p.url == nil {
				return
			}
			if len(l.words) < 2 {
				p.errorf(l, ClassGeneral, "", "Missing HTTP_GET virtualhost name")
				return
			}
			p.url.Virtualhost = l.words[1]
		})
		u.add("regex", func(p *parser, l *line) {
			if v, ok := p.need(l, 1); ok && p.url != nil {
				p.url.Regex = v
			}
		})
		u.add("regex_no_match", func(p *parser, l *line) {
			if p.url != nil {
				p.url.RegexNoMatch = true
			}
		})
		for _, k := range []string{"regex_options", "regex_min_offset", "regex_max_offset", "regex_stack"} {
			u.add(k, nil)
		}
		rs.sublevel(kind.String(), start(kind), h)
	}

	misc := newBlock("MISC_CHECK")
	common(misc, false)
	misc.add("misc_path", func(p *parser, l *line) {
		if s := p.script(l); s != nil && p.chk != nil {
			p.chk.Misc.Path = s
		}
	})
	misc.add("misc_timeout", func(p *parser, l *line) {
		v, ok := p.need(l, 1)
		if !ok || p.chk == nil {
			return
		}
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			p.errorf(l, ClassGeneral, "", "Invalid misc_timeout value '%s'", v)
			return
		}
		p.chk.Misc.Timeout = time.Duration(n) * time.Second
	})
	misc.add("misc_dynamic", func(p *parser, l *line) {
		if p.chk != nil {
			p.extra(l, 1)
			p.chk.Misc.Dynamic = true
		}
	})
	misc.add("user", func(p *parser, l *line) {
		if p.chk == nil || p.chk.Misc.Path == nil {
			return
		}
		if len(l.words) < 2 {
			p.errorf(l, ClassGeneral, "", "No user specified for misc checker script")
			return
		}
		p.chk.Misc.Path.User = l.words[1]
		if len(l.words) > 2 {
			p.chk.Misc.Path.Group = l.words[2]
		}
	})
	misc.end = func(p *parser) {
		if p.chk != nil && p.chk.Misc.Path == nil {
			p.errorf(p.cur(), ClassGeneral, "add misc_path \"/path/to/script args\"", "No script path has been specified for MISC_CHECKER - skipping")
			p.dropChecker()
		} else if p.chk != nil && p.chk.Misc.Path.User == "" && p.cfg.Global.ScriptUser == "" && p.cfg.Global.EnableScriptSecurity && !p.userExists("keepalived_script") {
			// With script security keepalived will not default to root.
			p.errorf(p.cur(), ClassGeneral, "set script_user in global_defs, 'user' in MISC_CHECK, or create the keepalived_script user",
				"Unable to set default user for misc script %s - removing", strings.Join(p.chk.Misc.Path.Args, " "))
			p.dropChecker()
		}
		p.chk = nil
	}
	rs.sublevel("MISC_CHECK", start(CheckMisc), misc)

	smtp := newBlock("SMTP_CHECK")
	common(smtp, true)
	smtp.add("helo_name", func(p *parser, l *line) {
		if p.chk == nil {
			return
		}
		if len(l.words) < 2 {
			p.errorf(l, ClassGeneral, "", "SMTP_CHECK helo name missing")
			return
		}
		p.chk.SMTP.HeloName = l.words[1]
	})
	host := newBlock("host")
	common(host, true)
	smtp.sublevel("host", func(p *parser, l *line) {
		if p.chk != nil {
			p.chk.SMTP.Hosts = append(p.chk.SMTP.Hosts, SMTPHost{})
		}
	}, host)
	host.end = func(p *parser) {}
	smtp.end = end
	rs.sublevel("SMTP_CHECK", start(CheckSMTP), smtp)

	udp := newBlock("UDP_CHECK")
	common(udp, true)
	udp.add("payload", func(p *parser, l *line) {
		if p.chk == nil {
			return
		}
		if len(l.words) < 2 {
			p.errorf(l, ClassGeneral, "", "UDP_CHECK payload requires a payload")
			return
		}
		b, err := hex.DecodeString(strings.Join(l.words[1:], ""))
		if err != nil {
			p.errorf(l, ClassGeneral, "", "Invalid hex string for UDP_CHECK payload")
			return
		}
		p.chk.UDP.Payload = b
	})
	udp.add("require_reply", func(p *parser, l *line) {
		if p.chk == nil {
			return
		}
		p.chk.UDP.RequireReply = true
		if len(l.words) > 1 {
			b, err := hex.DecodeString(strings.Join(l.words[1:], ""))
			if err != nil {
				p.errorf(l, ClassGeneral, "", "Invalid hex string for UDP_CHECK reply")
				return
			}
			p.chk.UDP.Reply = b
		}
	})
	udp.add("min_reply_length", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.chk != nil {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				p.errorf(l, ClassGeneral, "", "UDP_CHECK min length %s not valid - must be between 0 & 65535", v)
				return
			}
			p.chk.UDP.MinReplyLen = int(n)
		}
	})
	udp.add("max_reply_length", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.chk != nil {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				p.errorf(l, ClassGeneral, "", "UDP_CHECK max length %s not valid - must be between 0 & 65535", v)
				return
			}
			p.chk.UDP.MaxReplyLen = int(n)
		}
	})
	udp.end = end
	rs.sublevel("UDP_CHECK", start(CheckUDP), udp)

	dns := newBlock("DNS_CHECK")
	common(dns, true)
	dns.add("type", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.chk != nil {
			p.chk.DNS.Type = strings.ToUpper(v)
		}
	})
	dns.add("name", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.chk != nil {
			p.chk.DNS.Name = v
		}
	})
	dns.end = end
	rs.sublevel("DNS_CHECK", start(CheckDNS), dns)

	// FILE_CHECK (check_file.c): no connection, so none of the common
	// keywords; the weight defaults to the track_file's.
	file := newBlock("FILE_CHECK")
	file.add("track_file", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.chk != nil {
			p.chk.Name = v
			if t := p.trackFile(v); t != nil {
				p.chk.File.Track = t
			} else {
				p.errorf(l, ClassGeneral, "define the track_file block before the virtual_server that uses it", "track_file %s not found", v)
			}
		}
	})
	file.add("weight", func(p *parser, l *line) {
		if p.chk == nil {
			return
		}
		if len(l.words) < 2 {
			p.errorf(l, ClassGeneral, "", "track file weight missing")
			return
		}
		n, ok := p.readInt(l, l.words[1], -2147483647, 2147483647)
		if !ok {
			p.errorf(l, ClassGeneral, "", "weight for track file must be in [%d..%d] inclusive. Ignoring...", -2147483647, 2147483647)
			return
		}
		reverse := false
		if len(l.words) > 2 {
			switch l.words[2] {
			case "reverse":
				reverse = true
			case "noreverse":
			default:
				p.errorf(l, ClassGeneral, "", "unknown track file weight option %s - ignoring", l.words[2])
				return
			}
		}
		p.chk.File.Weight, p.chk.File.Reverse, p.chk.File.weightSet = int(n), reverse, true
	})
	file.end = func(p *parser) {
		if p.chk == nil {
			return
		}
		f := p.chk.File
		switch {
		case f.Track == nil:
			p.errorf(p.cur(), ClassGeneral, "", "FILE_CHECK has no track_file specified - ignoring")
			p.dropChecker()
		case !f.weightSet:
			f.Weight, f.Reverse = f.Track.Weight, f.Track.Reverse
		}
		p.chk = nil
	}
	rs.sublevel("FILE_CHECK", start(CheckFile), file)

	bfd := newBlock("BFD_CHECK")
	bfd.add("name", func(p *parser, l *line) {
		if v, ok := p.need(l, 1); ok && p.chk != nil {
			p.chk.Name = v
		}
	})
	bfd.add("alpha", nil)
	bfd.end = end
	rs.sublevel("BFD_CHECK", start(CheckBFD), bfd)
}

func (p *parser) dropChecker() {
	if p.rs != nil && len(p.rs.Checkers) > 0 && p.rs.Checkers[len(p.rs.Checkers)-1] == p.chk {
		p.rs.Checkers = p.rs.Checkers[:len(p.rs.Checkers)-1]
	}
}

func (p *parser) chkAddr(l *line, set func(*Checker, netip.Addr), what string) {
	v, ok := p.need(l, 1)
	if !ok {
		return
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		p.errorf(l, ClassGeneral, "", "Invalid %s %s - ignoring", what, v)
		return
	}
	if p.chk != nil {
		if p.chk.Kind == CheckSMTP && len(p.chk.SMTP.Hosts) > 0 && p.inHost(l) {
			h := &p.chk.SMTP.Hosts[len(p.chk.SMTP.Hosts)-1]
			if strings.HasPrefix(what, "connect") {
				h.ConnectIP = a
			} else {
				h.BindTo = a
			}
			return
		}
		set(p.chk, a)
	}
}

// inHost: SMTP host { } blocks reuse the connection keywords; the line
// belongs to the last host block if it comes after it.
func (p *parser) inHost(l *line) bool {
	hs := p.chk.SMTP.Hosts
	return len(hs) > 0 && p.smtpHostOpen()
}

func (p *parser) smtpHostOpen() bool {
	// Walk back to the nearest "host" or "}" at this checker's level.
	depth := 0
	for i := p.i - 1; i >= 0; i-- {
		w := p.lines[i].words
		if len(w) == 0 {
			continue
		}
		switch w[0] {
		case "}":
			depth++
		case "{":
			if depth > 0 {
				depth--
			}
		case "host":
			return depth == 0
		case "SMTP_CHECK":
			return false
		}
	}
	return false
}

func (p *parser) chkPort(l *line, set func(*Checker, uint16), msg string) {
	v, ok := p.need(l, 1)
	if !ok {
		return
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil {
		p.errorf(l, ClassGeneral, "", msg, v)
		return
	}
	if p.chk != nil {
		if p.chk.Kind == CheckSMTP && p.inHost(l) && msg[len("Invalid checker "):][0] == 'c' {
			p.chk.SMTP.Hosts[len(p.chk.SMTP.Hosts)-1].ConnectPort = uint16(n)
			return
		}
		set(p.chk, uint16(n))
	}
}

func (p *parser) chkTimer(l *line, min time.Duration, set func(*Checker, time.Duration), msg string) {
	v, ok := p.need(l, 1)
	if !ok {
		return
	}
	d, ok := parseTimer(v)
	if !ok || d < min {
		p.errorf(l, ClassGeneral, "", msg, v)
		return
	}
	if p.chk != nil {
		set(p.chk, d)
	}
}

// finishCheck validates the LVS side after parsing (validate_check_config)
// and resolves inheritance. keepalived prints these without a place; here
// they name the virtual server's line.
func (p *parser) finishCheck() {
	groups := map[string]*VirtualServerGroup{}
	for _, g := range p.cfg.VirtualServerGroups {
		groups[g.Name] = g
	}
	kept := p.cfg.VirtualServers[:0]
	for _, vs := range p.cfg.VirtualServers {
		at := &line{pos: vs.Pos}
		name := vs.describe()
		if len(vs.RealServers) == 0 {
			p.errorf(at, ClassGeneral, "a virtual_server needs at least one real_server (was the block closed early?)", "Virtual server %s has no real servers - ignoring", name)
			continue
		}
		if vs.Group != "" && groups[vs.Group] == nil {
			p.errorf(at, ClassGeneral, "define virtual_server_group "+vs.Group+" { VIP PORT ... } (did you write 'virtual_server_group' for 'virtual_server group'?)",
				"Virtual server group %s specified but not configured - ignoring virtual server %s", vs.Group, name)
			continue
		}
		byAddr := vs.Fwmark == 0 && (vs.Group == "" || groupHasAddrs(groups[vs.Group]))
		if vs.HASuspend && (vs.Fwmark != 0 || (vs.Group != "" && !groupHasAddrs(groups[vs.Group]))) {
			p.warn(at, ClassGeneral, "", "Virtual server %s: cannot use ha_suspend with fwmarks - clearing ha_suspend", name)
			vs.HASuspend = false
		}
		if byAddr {
			if vs.Protocol == 0 {
				p.warn(at, ClassGeneral, "add 'protocol TCP' (keepalived's default is UDP, as the kernel's)", "Virtual server %s: no protocol set - defaulting to UDP", name)
				vs.Protocol = config.ProtoUDP
			}
			if vs.OnePacket && vs.Protocol != config.ProtoUDP {
				p.warn(at, ClassGeneral, "", "Virtual server %s: one packet scheduling requires UDP - resetting", name)
				vs.OnePacket = false
			}
			if vs.PersistTimeout == 0 && vs.Group == "" && vs.Port == 0 {
				p.warn(at, ClassGeneral, "", "Virtual server %s: zero port only valid for persistent services - setting", name)
				vs.PersistTimeout = config.DefaultPersistTimeout
			}
		} else if vs.Protocol != 0 {
			p.warn(at, ClassGeneral, "", "Warning: Virtual server %s: protocol specified for fwmark - protocol will be ignored", name)
			vs.Protocol = 0
		}
		if vs.Fwmark != 0 || (vs.Group != "" && !byAddr) {
			vs.Protocol = config.ProtoFwmark
		}
		if vs.Scheduler == "" {
			p.warn(at, ClassGeneral, "add 'lb_algo wlc' (or another scheduler)", "Virtual server %s: no scheduler set, setting default 'wlc'", name)
			vs.Scheduler = config.DefaultScheduler
		}
		var rss []*RealServer
		var sum uint64
		for _, rs := range vs.RealServers {
			dup := false
			for _, o := range rss {
				if o.Addr == rs.Addr && o.Port == rs.Port {
					dup = true
				}
			}
			if dup {
				p.errorf(&line{pos: rs.Pos}, ClassGeneral, "", "VS %s: real server %s is duplicated - removing second rs", name, rs.describe())
				continue
			}
			if !rs.setForward {
				if vs.Forward == forwardUnset {
					p.warn(at, ClassGeneral, "add 'lb_kind NAT|DR|TUN'", "Virtual server %s: no forwarding method set, setting default NAT", name)
					vs.Forward = config.ForwardMasq
				}
				rs.Forward, rs.TunType, rs.TunPort, rs.TunCsum = vs.Forward, vs.TunType, vs.TunPort, vs.TunCsum
			}
			p.resolveRS(vs, rs)
			sum += uint64(rs.Weight)
			rss = append(rss, rs)
		}
		vs.RealServers = rss
		if !p.resolveLaddrs(vs, at, name) {
			continue
		}
		p.checkPorts(vs, groups[vs.Group], at, name)
		if vs.Forward == forwardUnset {
			vs.Forward = config.ForwardMasq
		}
		if ss := vs.SorryServer; ss != nil {
			if !ss.setForward {
				ss.Forward, ss.TunType, ss.TunPort, ss.TunCsum = vs.Forward, vs.TunType, vs.TunPort, vs.TunCsum
			}
			ss.InhibitOnFailure = vs.SorryServerInhibit
			p.resolveRS(vs, ss)
		}
		if uint64(vs.Quorum) > sum && sum > 0 {
			p.warn(at, ClassGeneral, "", "Warning - quorum %d for %s exceeds total weight of real servers %d, reducing quorum to %d", vs.Quorum, name, sum, sum)
			vs.Quorum = uint32(sum)
		}
		if vs.Hysteresis >= vs.Quorum && vs.Quorum > 0 {
			p.warn(at, ClassGeneral, "", "Virtual server %s: hysteresis %d >= quorum %d; setting hysteresis to %d", name, vs.Hysteresis, vs.Quorum, vs.Quorum-1)
			vs.Hysteresis = vs.Quorum - 1
		}
		if vs.Retry < 0 {
			vs.Retry = 0 // "unset" is resolved per checker
		}
		if !p.synProxyOK(vs, at, name) {
			continue
		}
		kept = append(kept, vs)
	}
	p.cfg.VirtualServers = kept
}

// synProxyOK refuses syn_proxy where lvsd cannot proxy: a service that is
// not TCP, or a real server whose replies bypass the director (DR, TUN).
func (p *parser) synProxyOK(vs *VirtualServer, at *line, name string) bool {
	if !vs.SynProxy {
		return true
	}
	if vs.Protocol != config.ProtoTCP {
		p.errorf(at, ClassGeneral, "syn_proxy is for 'protocol TCP' services", "Virtual server %s: syn_proxy with protocol %s - ignoring virtual server", name, vs.Protocol.Name())
		return false
	}
	for _, rs := range vs.RealServers {
		if rs.Forward != config.ForwardMasq && rs.Forward != config.ForwardFullNAT {
			kind := map[config.Forward]string{config.ForwardRoute: "DR", config.ForwardTunnel: "TUN"}[rs.Forward]
			if kind == "" {
				kind = rs.Forward.Name()
			}
			p.errorf(&line{pos: rs.Pos}, ClassGeneral, "use lb_kind NAT or FNAT: the SYN proxy must see the real server's SYN/ACK",
				"Virtual server %s: syn_proxy with real server %s forwarded by %s - ignoring virtual server", name, rs.describe(), kind)
			return false
		}
	}
	return true
}

func groupHasAddrs(g *VirtualServerGroup) bool {
	if g == nil {
		return false
	}
	for _, e := range g.Entries {
		if e.First.IsValid() {
			return true
		}
	}
	return false
}

// resolveRS fills a real server's and its checkers' inherited settings:
// checker <- real_server <- virtual_server <- keepalived's defaults.
func (p *parser) resolveRS(vs *VirtualServer, rs *RealServer) {
	if !rs.setInhibit {
		rs.InhibitOnFailure = vs.InhibitOnFailure
	}
	if !rs.setAlpha {
		rs.Alpha = vs.Alpha
	}
	if rs.Virtualhost == "" {
		rs.Virtualhost = vs.Virtualhost
	}
	pick := func(vals ...time.Duration) time.Duration {
		for _, v := range vals {
			if v >= 0 {
				return v
			}
		}
		return 0
	}
	rsDelay := rs.delayLoop
	if rsDelay == 0 {
		rsDelay = -1
	}
	rsCT := rs.connectTimeout
	if rsCT == 0 {
		rsCT = -1
	}
	for _, c := range rs.Checkers {
		cd := c.delayLoop
		if cd == 0 {
			cd = -1
		}
		cct := c.connectTimeout
		if cct == 0 {
			cct = -1
		}
		c.DelayLoop = pick(cd, rsDelay, vs.DelayLoop)
		c.ConnectTimeout = pick(cct, rsCT, vs.ConnectTimeout)
		c.Warmup = pick(c.warmup, rs.warmup, vs.Warmup, c.DelayLoop)
		defRetry, defDBR := 1, time.Second
		switch c.Kind {
		case CheckHTTP, CheckSSL:
			defDBR = 3 * time.Second
		case CheckMisc:
			defRetry = 0
		case CheckDNS:
			defRetry, defDBR = 3, c.DelayLoop
		}
		c.Retry = defRetry
		for _, r := range []int{c.retry, rs.retry, vs.Retry} {
			if r >= 0 {
				c.Retry = r
				break
			}
		}
		c.DelayBeforeRetry = pick(c.delayBeforeRetry, rs.delayBeforeRetry, vs.DelayBeforeRetry, defDBR)
		if !c.alphaSet {
			c.Alpha = rs.Alpha
		}
		if c.HTTP != nil && c.HTTP.Virtualhost == "" {
			c.HTTP.Virtualhost = rs.Virtualhost
		}
		if c.Misc != nil && c.Misc.Timeout == 0 {
			c.Misc.Timeout = c.DelayLoop
		}
	}
}

func (vs *VirtualServer) describe() string {
	switch {
	case vs.Group != "":
		return "[" + vs.Group + "]"
	case vs.Fwmark != 0:
		return fmt.Sprintf("FWM %d", vs.Fwmark)
	}
	proto := "tcp"
	switch vs.Protocol {
	case config.ProtoUDP, 0:
		proto = "udp"
	case config.ProtoSCTP:
		proto = "sctp"
	}
	return fmt.Sprintf("[%s]:%s:%d", vs.Addr, proto, vs.Port)
}

func (rs *RealServer) describe() string { return fmt.Sprintf("[%s]:%d", rs.Addr, rs.Port) }

// checkPorts: unless NAT, real servers have the virtual server's port, and
// none for a fwmark (validate_check_config's last loop).
func (p *parser) checkPorts(vs *VirtualServer, g *VirtualServerGroup, at *line, name string) {
	servers := append([]*RealServer(nil), vs.RealServers...)
	ss := vs.SorryServer
	if g != nil {
		hasMark := false
		for _, e := range g.Entries {
			hasMark = hasMark || !e.First.IsValid()
		}
		for _, rs := range servers {
			if rs.Forward == config.ForwardMasq || rs.Port == 0 {
				continue
			}
			if hasMark {
				p.warn(at, ClassGeneral, "", "WARNING - fwmark virtual server %s, real server %s has port specified - port will be ignored", name, rs.describe())
			}
			for _, e := range g.Entries {
				if e.First.IsValid() && e.Port != rs.Port {
					p.warn(at, ClassGeneral, "", "virtual server %s:[%s] and real server %s ports don't match", name, e.First, rs.describe())
				}
			}
		}
		return
	}
	for _, rs := range servers {
		if rs.Forward == config.ForwardMasq {
			if vs.Fwmark == 0 && rs.Port == 0 {
				rs.Port = vs.Port
			}
			continue
		}
		switch {
		case vs.Fwmark != 0 && rs.Port != 0:
			p.warn(at, ClassGeneral, "", "WARNING - fwmark virtual server %s, real server %s has port specified - clearing", name, rs.describe())
			rs.Port = 0
		case vs.Fwmark == 0 && rs.Port == 0:
			rs.Port = vs.Port
		case vs.Fwmark == 0 && rs.Port != vs.Port:
			p.warn(at, ClassGeneral, "DR and TUN cannot change the port", "WARNING - virtual server %s and real server %s ports don't match - resetting", name, rs.describe())
			rs.Port = vs.Port
		}
	}
	if ss != nil && ss.Forward != config.ForwardMasq && ss.Forward != forwardUnset {
		switch {
		case vs.Fwmark != 0 && ss.Port != 0:
			p.warn(at, ClassGeneral, "", "WARNING - virtual server %s, sorry server has port specified - clearing", name)
			ss.Port = 0
		case vs.Fwmark == 0 && ss.Port == 0:
			ss.Port = vs.Port
		case vs.Fwmark == 0 && ss.Port != vs.Port:
			p.warn(at, ClassGeneral, "", "WARNING - virtual server %s and sorry server ports don't match - resetting", name)
			ss.Port = vs.Port
		}
	}
}

// resolveLaddrs gives a FULLNAT virtual server the addresses of its
// laddr_group_name; false drops the virtual server, as lvsd could not
// forward its real servers without a source.
func (p *parser) resolveLaddrs(vs *VirtualServer, at *line, name string) bool {
	fnat := slices.ContainsFunc(vs.RealServers, func(rs *RealServer) bool { return rs.Forward == config.ForwardFullNAT }) ||
		(vs.SorryServer != nil && vs.SorryServer.Forward == config.ForwardFullNAT)
	switch {
	case vs.LaddrGroup == "" && fnat:
		p.errorf(at, ClassGeneral, "add 'laddr_group_name NAME' and a 'local_address_group NAME { ... }' block",
			"Virtual server %s: FULLNAT real servers need local addresses - ignoring virtual server", name)
		return false
	case vs.LaddrGroup == "":
		return true
	}
	g := p.laddrGroup(vs.LaddrGroup)
	if g == nil || len(g.Addrs) == 0 {
		p.errorf(at, ClassGeneral, "define local_address_group "+vs.LaddrGroup+" { LADDR ... }",
			"Virtual server %s: local_address_group %s specified but not configured (or empty) - ignoring virtual server", name, vs.LaddrGroup)
		return false
	}
	if !fnat {
		p.warn(at, ClassGeneral, "local addresses are for lb_kind FNAT", "Virtual server %s: laddr_group_name %s without FULLNAT real servers - ignoring it", name, vs.LaddrGroup)
		return true
	}
	vs.Laddrs = slices.Clone(g.Addrs)
	return true
}
