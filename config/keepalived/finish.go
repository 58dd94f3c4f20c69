package keepalived

import (
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strings"

	"lvslab/config"
)

// Options change what LoadOptions checks.
type Options struct {
	// InterfaceExists, when set, is asked about every vrrp_instance
	// interface; keepalived -t warns about missing ones, so lvskeepalived -t
	// passes a lookup in the current network namespace.
	InterfaceExists func(name string) bool
	// UserExists reports whether a system user exists (keepalived runs
	// scripts as keepalived_script when that user exists). Nil: os/user.
	UserExists func(name string) bool
	// ScriptExists reports whether a script's program exists (a name
	// without "/" is looked up on PATH). Nil: the file system.
	ScriptExists func(prog string) bool
	// ConfigID is keepalived's -i: lines starting "@ID " are read only
	// when ID matches ("@^ID " when it does not). Empty: the short host name.
	ConfigID string
}

// LoadOptions is LoadFS with options.
func LoadOptions(fsys FS, name string, o Options) *Config {
	return load(fsys, name, o)
}

func (p *parser) finish() {
	n := len(p.diags.list)
	if !p.dead["check"] {
		p.finishCheck()
	}
	if !p.dead["vrrp"] {
		p.finishVRRP()
	}
	p.scriptSecurity()
	for i := n; i < len(p.diags.list); i++ {
		p.diags.list[i].Unplaced = true
	}
}

// scriptSecurity is keepalived's check_script_secure summary: scripts that
// would run as root without enable_script_security are a SECURITY
// VIOLATION (keepalived -t exits 6).
func (p *parser) scriptSecurity() {
	if p.cfg.Global.EnableScriptSecurity {
		return
	}
	var first *Script
	visit := func(s *Script) {
		if s != nil && first == nil && p.runsAsRoot(s) {
			first = s
		}
	}
	for _, vs := range p.cfg.VirtualServers {
		visit(vs.QuorumUp)
		visit(vs.QuorumDown)
		for _, rs := range vs.RealServers {
			visit(rs.NotifyUp)
			visit(rs.NotifyDown)
			for _, c := range rs.Checkers {
				if c.Misc != nil {
					visit(c.Misc.Path)
				}
			}
		}
	}
	for _, s := range p.cfg.VRRP.Scripts {
		visit(s.Script)
	}
	for _, vi := range p.cfg.VRRP.Instances {
		for _, s := range []*Script{vi.NotifyMaster, vi.NotifyBackup, vi.NotifyFault, vi.NotifyStop, vi.Notify} {
			visit(s)
		}
	}
	for _, g := range p.cfg.VRRP.SyncGroups {
		for _, s := range []*Script{g.NotifyMaster, g.NotifyBackup, g.NotifyFault, g.NotifyStop, g.Notify} {
			visit(s)
		}
	}
	if first != nil {
		p.diags.add(first.Pos, SevSecurity, ClassSecurity,
			"SECURITY VIOLATION - check scripts are being executed but script_security not enabled.",
			"add enable_script_security (and script_user) to global_defs, or create the keepalived_script user")
	}
}

func (p *parser) runsAsRoot(s *Script) bool {
	// keepalived only flags scripts it finds (check_script_secure); a
	// missing one is not run at all.
	if !p.scriptExists(s.Args[0]) {
		return false
	}
	u := s.User
	if u == "" {
		u = p.cfg.Global.ScriptUser
	}
	if u == "" {
		return !p.userExists("keepalived_script")
	}
	return u == "root" || u == "0"
}

func (p *parser) scriptExists(prog string) bool {
	if p.opts.ScriptExists != nil {
		return p.opts.ScriptExists(prog)
	}
	if strings.Contains(prog, "/") {
		st, err := os.Stat(prog)
		return err == nil && !st.IsDir()
	}
	_, err := exec.LookPath(prog)
	return err == nil
}

func (p *parser) userExists(name string) bool {
	if p.opts.UserExists != nil {
		return p.opts.UserExists(name)
	}
	_, err := user.Lookup(name)
	return err == nil
}

// Table is the IPVS configuration the virtual servers ask for, in the
// types the ipvsadm path uses (what lvsadm -R would build), with every real
// server present at its configured weight: the daemon starts from it and
// applies checker results (removal or weight 0) on top; a FULLNAT service
// carries its local addresses. Refused services (est_timeout) and servers the engine cannot express are left out; a virtual
// server over a group becomes one service per group address (ranges
// expanded, at most 256 per entry) and fwmark.
func (c *Config) Table() config.Table {
	var t config.Table
	t.Timeouts = c.Global.LVSTimeouts
	groups := map[string]*VirtualServerGroup{}
	for _, g := range c.VirtualServerGroups {
		groups[g.Name] = g
	}
	for _, vs := range c.VirtualServers {
		if vs.Refused != "" {
			continue
		}
		for _, svc := range c.Services(vs, groups) {
			v := config.VirtualService{Service: svc, Laddrs: slices.Clone(vs.Laddrs)}
			for _, rs := range vs.RealServers {
				v.Dests = append(v.Dests, rs.Dest(svc))
			}
			t.Services = append(t.Services, v)
		}
	}
	return t
}

// Services are the IPVS services of one virtual server.
func (c *Config) Services(vs *VirtualServer, groups map[string]*VirtualServerGroup) []config.Service {
	base := config.Service{Protocol: vs.Protocol, Scheduler: vs.Scheduler, Flags: vs.SchedFlags, OnePacket: vs.OnePacket, PE: vs.PersistEngine,
		SynProxy: vs.SynProxy}
	if vs.PersistTimeout > 0 {
		base.Persistent, base.PersistTimeout = true, vs.PersistTimeout
		if m := vs.PersistGranularity; m.IsValid() {
			if bits, _ := maskLen(m); bits < m.BitLen() {
				base.Netmask = m
			}
		}
	}
	var out []config.Service
	switch {
	case vs.Fwmark != 0:
		s := base
		s.Protocol, s.Fwmark, s.FwmarkIPv6 = config.ProtoFwmark, vs.Fwmark, vs.IPFamily == 6
		out = append(out, s)
	case vs.Group != "":
		g := groups[vs.Group]
		if g == nil {
			return nil
		}
		for _, e := range g.Entries {
			if !e.First.IsValid() {
				s := base
				s.Protocol, s.Fwmark, s.FwmarkIPv6 = config.ProtoFwmark, e.Fwmark, e.FwmarkIPv6
				out = append(out, s)
				continue
			}
			n := 0
			for a := e.First; a.IsValid() && !e.Last.Less(a) && n < 256; a = a.Next() {
				s := base
				if s.Protocol == config.ProtoFwmark || s.Protocol == 0 {
					s.Protocol = config.ProtoUDP
				}
				s.Addr, s.Port = a, e.Port
				out = append(out, s)
				n++
			}
		}
	default:
		s := base
		s.Addr, s.Port = vs.Addr, vs.Port
		out = append(out, s)
	}
	return out
}

// Dest is the real server as an IPVS destination of svc.
func (rs *RealServer) Dest(svc config.Service) config.Dest {
	d := config.Dest{Addr: rs.Addr, Port: rs.Port, Forward: rs.Forward, Weight: rs.Weight,
		UThreshold: rs.UThreshold, LThreshold: rs.LThreshold, TunType: rs.TunType, TunPort: rs.TunPort, TunCsum: rs.TunCsum}
	if d.Port == 0 || (svc.Protocol != config.ProtoFwmark && (d.Forward == config.ForwardRoute || d.Forward == config.ForwardTunnel)) {
		if svc.Protocol != config.ProtoFwmark {
			d.Port = svc.Port
		}
	}
	if d.Forward != config.ForwardTunnel {
		d.TunType, d.TunPort, d.TunCsum = 0, 0, 0
	}
	return d
}
