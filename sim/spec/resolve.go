package spec

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"lvslab/config"
	"lvslab/config/keepalived"
)

// Role defaults, applied after validation so that the Spec a lab is built
// from says everything explicitly (the report shows this resolved spec):
//
//   - every interface: MTU from segment or defaults, a MAC derived from the
//     lab, node and interface names (stable across runs, so captures
//     compare), offloads from defaults;
//   - router: net.ipv4.ip_forward=1;
//   - director: lvsd on all its interfaces; ip_forward on when a real
//     server is reached by NAT, off otherwise; send_redirects off;
//   - realserver: the VIPs, interface and (NAT) director address lvsrs
//     needs, from the directors' rules; for DR and TUN a default route via
//     the segment's router, as the seeds' real servers have;
//   - client: a default route via the router of its segment, or via the
//     director when a VIP is off-link (NAT: the director is the gateway).
//
// Nothing given in the file is overridden.

const (
	defaultDuration     = 10 * time.Second
	defaultStopTimeout  = 2 * time.Second
	defaultReadyTimeout = 10 * time.Second
	defaultReadyPoll    = 50 * time.Millisecond
	defaultReqTimeout   = time.Second
	defaultTolerance    = 10
	defaultSnaplen      = 262144
	defaultRing         = 2 << 20
)

type resolver struct {
	s    *Spec
	errs ErrorList
	// rules of each director node, from rules: and rules_file.
	rules map[string][]config.Command
}

func resolve(s *Spec) ErrorList {
	r := &resolver{s: s, rules: map[string][]config.Command{}}
	if s.Duration == 0 {
		s.Duration = Duration(defaultDuration)
	}
	for i := range s.Nodes {
		r.parseRules(&s.Nodes[i])
	}
	for i := range s.Nodes {
		r.plain(&s.Nodes[i])
	}
	// Directors before real servers and clients, which look at them.
	for _, role := range []Role{RoleRouter, RoleDirector, RoleRealServer, RoleClient} {
		for i := range s.Nodes {
			n := &s.Nodes[i]
			if n.Role != role || !s.RoleDefaultsOn(n) {
				continue
			}
			switch role {
			case RoleRouter:
				setDefault(&n.Sysctls, "net.ipv4.ip_forward", "1")
			case RoleDirector:
				r.director(n)
			case RoleRealServer:
				r.realServer(n)
			case RoleClient:
				r.client(n)
			}
		}
	}
	// A node of another role may carry a director or realserver block
	// (a director that is also a real server).
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.Role != RoleRealServer && n.RealServer != nil && s.RoleDefaultsOn(n) {
			r.realServer(n)
		}
	}
	r.rest()
	return r.errs
}

func (r *resolver) errorf(path, format string, args ...any) {
	r.errs = append(r.errs, r.s.Errorf(path, format, args...))
}

func (r *resolver) parseRules(n *Node) {
	if f := r.s.keepalivedFile(n); f != "" {
		defer func() {
			if kc := keepalived.Load(r.s.Abs(f)); !kc.Fatal() {
				r.rules[n.Name] = append(r.rules[n.Name], keepalivedCommands(kc)...)
			}
		}()
	}
	d := n.Director
	if d == nil {
		return
	}
	p := config.Parser{}
	for _, line := range d.Rules {
		args := strings.Fields(line)
		if len(args) > 0 && (path.Base(args[0]) == "ipvsadm" || path.Base(args[0]) == "lvsadm") {
			args = args[1:]
		}
		if cmd, err := p.ParseArgs(args); err == nil {
			r.rules[n.Name] = append(r.rules[n.Name], cmd)
		}
	}
	if d.RulesFile != "" {
		if f, err := os.Open(r.s.Abs(d.RulesFile)); err == nil {
			rules, _ := p.ParseRuleLines(f, d.RulesFile)
			f.Close()
			for _, rl := range rules {
				r.rules[n.Name] = append(r.rules[n.Name], rl.Command)
			}
		}
	}
}

// setDefault adds key=value unless key is set.
func setDefault(list *[]Sysctl, key, value string) {
	for _, sc := range *list {
		if strings.ReplaceAll(sc.Key, "/", ".") == key {
			return
		}
	}
	*list = append(*list, Sysctl{Key: key, Value: value})
}

// DefaultMAC is the hardware address an interface gets when the file gives
// none: locally administered, unicast, from a hash of the names.
func DefaultMAC(lab, node, iface string) MAC {
	h := sha256.Sum256([]byte(lab + "/" + node + "/" + iface))
	hw := net.HardwareAddr{0x02, h[0], h[1], h[2], h[3], h[4]}
	return MAC(hw.String())
}

// plain fills what every node gets regardless of role.
func (r *resolver) plain(n *Node) {
	s := r.s
	if k := n.Keepalived; k != nil && k.Implementation == "" {
		k.Implementation = k.Impl()
	}
	var defOff []Offload
	defMTU := 0
	if s.Defaults != nil {
		defOff, defMTU = s.Defaults.Offloads, s.Defaults.MTU
	}
	for j := range n.Interfaces {
		ifc := &n.Interfaces[j]
		if ifc.MTU == 0 {
			if sg := s.Segment(ifc.Segment); sg != nil && sg.MTU != 0 {
				ifc.MTU = sg.MTU
			} else {
				ifc.MTU = defMTU
			}
		}
		if ifc.MAC == "" {
			ifc.MAC = DefaultMAC(s.Name, n.Name, ifc.Name)
		}
		for _, o := range defOff {
			if !slices.ContainsFunc(ifc.Offloads, func(x Offload) bool { return x.Feature == o.Feature }) {
				ifc.Offloads = append(ifc.Offloads, o)
			}
		}
	}
	for j := range n.Files {
		if n.Files[j].Mode == 0 {
			n.Files[j].Mode = 0o644
		}
	}
	for j := range n.Services {
		sv := &n.Services[j]
		if sv.Name == "" {
			sv.Name = string(sv.Kind)
		}
		if sv.Identity == "" {
			sv.Identity = n.Name
		}
	}
	for j := range n.Processes {
		pr := &n.Processes[j]
		if pr.StopSignal == "" {
			pr.StopSignal = "TERM"
		}
		if pr.StopTimeout == 0 {
			pr.StopTimeout = Duration(defaultStopTimeout)
		}
		if pr.Ready != nil {
			if pr.Ready.Timeout == 0 {
				pr.Ready.Timeout = Duration(defaultReadyTimeout)
			}
			if pr.Ready.Interval == 0 {
				pr.Ready.Interval = Duration(defaultReadyPoll)
			}
		}
	}
}

var natKeepalived = regexp.MustCompile(`(?im)^\s*lb_kind\s+NAT\b`)

func (r *resolver) director(n *Node) {
	if n.Director == nil {
		n.Director = &Director{}
	}
	d := n.Director
	if d.Binary == "" {
		d.Binary = ProcLVSD
	}
	if len(d.Interfaces) == 0 {
		for _, ifc := range n.Interfaces {
			d.Interfaces = append(d.Interfaces, ifc.Name)
		}
	}
	fwd := false
	if d.Forwarding != nil {
		fwd = *d.Forwarding
	} else {
		for _, cmd := range r.rules[n.Name] {
			if (cmd.Op == config.OpAddDest || cmd.Op == config.OpEditDest) && cmd.Dest.Forward == config.ForwardMasq {
				fwd = true
			}
		}
		if f := r.s.keepalivedFile(n); f != "" {
			if b, err := os.ReadFile(r.s.Abs(f)); err == nil && natKeepalived.Match(b) {
				fwd = true
			}
		}
		d.Forwarding = &fwd
	}
	v := "0"
	if fwd {
		v = "1"
	}
	setDefault(&n.Sysctls, "net.ipv4.ip_forward", v)
	// A one-armed NAT director would otherwise redirect real servers'
	// replies straight to the client, past the rewrite.
	setDefault(&n.Sysctls, "net.ipv4.conf.all.send_redirects", "0")
	setDefault(&n.Sysctls, "net.ipv4.conf.default.send_redirects", "0")
}

// holds reports whether n has address a on an interface or lo.
func holds(n *Node, a netip.Addr) (iface string, ok bool) {
	for _, ifc := range n.Interfaces {
		for _, p := range ifc.Addresses {
			if p.Addr() == a {
				return ifc.Name, true
			}
		}
	}
	return "", false
}

func (r *resolver) realServer(n *Node) {
	rs := n.RealServer
	if rs == nil {
		return
	}
	p := keyPath("nodes", n.Name) + ".realserver"
	derive := len(rs.VIPs) == 0
	var named []netip.Addr         // this node's addresses the rules name
	for _, dn := range r.s.Nodes { // in file order, so the result is stable
		for _, cmd := range r.rules[dn.Name] {
			if cmd.Op != config.OpAddDest && cmd.Op != config.OpEditDest {
				continue
			}
			if _, ok := holds(n, cmd.Dest.Addr); !ok {
				continue
			}
			named = append(named, cmd.Dest.Addr)
			if a := cmd.Service.Addr; derive && a.IsValid() && !slices.Contains(rs.VIPs, a) {
				rs.VIPs = append(rs.VIPs, a)
			}
		}
	}
	if len(rs.VIPs) == 0 && rs.Mode != ModeNAT {
		r.errorf(p, "cannot tell the VIPs of real server %s: no director rule names its addresses; set realserver.vips", n.Name)
	}
	if rs.Iface == "" {
		for _, a := range named {
			if ifn, ok := holds(n, a); ok {
				rs.Iface = ifn
				break
			}
		}
		if rs.Iface == "" && len(n.Interfaces) > 0 {
			rs.Iface = n.Interfaces[0].Name
		}
	}
	ifc := n.Interface(rs.Iface)
	if rs.Mode == ModeNAT && !rs.DIP.IsValid() && ifc != nil {
		var found []netip.Addr
		for _, other := range r.s.Nodes {
			if !r.s.RunsLVSD(&other) && other.Role != RoleDirector {
				continue
			}
			for _, oi := range other.Interfaces {
				if oi.Segment != ifc.Segment {
					continue
				}
				for _, op := range oi.Addresses {
					for _, mine := range ifc.Addresses {
						if mine.Masked().Contains(op.Addr()) && !slices.Contains(found, op.Addr()) {
							found = append(found, op.Addr())
						}
					}
				}
			}
		}
		switch len(found) {
		case 0:
			r.errorf(p, "nat real server %s: no director shares a subnet with %s:%s; set realserver.dip", n.Name, n.Name, rs.Iface)
		case 1:
			rs.DIP = found[0]
		default:
			r.errorf(p, "nat real server %s: several director addresses (%v) could be its gateway; set realserver.dip", n.Name, found)
		}
	}
	if (rs.Mode == ModeDR || rs.Mode == ModeTUN) && ifc != nil {
		r.defaultRoute(n, ifc, false)
	}
}

// client gets a default route toward its router, or toward a director when
// one of the director's VIPs is off-link.
func (r *resolver) client(n *Node) {
	for j := range n.Interfaces {
		if len(n.Interfaces[j].Addresses) > 0 {
			r.defaultRoute(n, &n.Interfaces[j], true)
			return
		}
	}
}

func hasDefaultRoute(n *Node) bool {
	return slices.ContainsFunc(n.Routes, func(rt Route) bool { return rt.Dst.IsDefault() })
}

// defaultRoute adds "default via G" where G is a router's (or, when
// viaDirector, a director's) address on ifc's segment and subnet.
func (r *resolver) defaultRoute(n *Node, ifc *Interface, viaDirector bool) {
	if hasDefaultRoute(n) {
		return
	}
	gw := func(role Role) netip.Addr {
		for _, other := range r.s.Nodes {
			if other.Name == n.Name || other.Role != role {
				continue
			}
			for _, oi := range other.Interfaces {
				if oi.Segment != ifc.Segment {
					continue
				}
				for _, op := range oi.Addresses {
					for _, mine := range ifc.Addresses {
						if mine.Bits() < mine.Addr().BitLen() && mine.Masked().Contains(op.Addr()) {
							return op.Addr()
						}
					}
				}
			}
		}
		return netip.Addr{}
	}
	if g := gw(RoleRouter); g.IsValid() {
		n.Routes = append(n.Routes, Route{Dst: RouteDst{netip.PrefixFrom(netip.IPv4Unspecified(), 0)}, Via: g})
		return
	}
	if !viaDirector || !r.offLinkVIP(n, ifc) {
		return
	}
	if g := gw(RoleDirector); g.IsValid() {
		n.Routes = append(n.Routes, Route{Dst: RouteDst{netip.PrefixFrom(netip.IPv4Unspecified(), 0)}, Via: g})
	}
}

// offLinkVIP reports whether some director's VIP is outside ifc's subnets.
func (r *resolver) offLinkVIP(n *Node, ifc *Interface) bool {
	for _, cmds := range r.rules {
		for _, cmd := range cmds {
			a := cmd.Service.Addr
			if !a.IsValid() {
				continue
			}
			if !slices.ContainsFunc(ifc.Addresses, func(p netip.Prefix) bool { return p.Masked().Contains(a) }) {
				return true
			}
		}
	}
	return false
}

// rest fills the defaults of traffic, timeline, expectations and capture.
func (r *resolver) rest() {
	s := r.s
	for i := range s.Traffic {
		t := &s.Traffic[i]
		if t.Concurrency == 0 {
			t.Concurrency = 1
		}
		if t.Jitter == "" {
			t.Jitter = JitterFor(s.APIVersion)
		}
		if t.Timeout == 0 {
			t.Timeout = Duration(defaultReqTimeout)
		}
		if t.Stop == 0 {
			t.Stop = s.Duration
		}
		if t.Kind == TrafficHTTP && t.NewConnection == nil {
			yes := true
			t.NewConnection = &yes
		}
		if t.Kind == TrafficTCPStream && t.Streams == 0 {
			t.Streams = 1
		}
	}
	for i := range s.Timeline {
		e := &s.Timeline[i]
		if e.Fault == FaultProcessKill && e.Signal == "" {
			e.Signal = "KILL"
		}
		switch e.Fault {
		case FaultBlackhole, FaultLoss, FaultRate, FaultDelay:
			if e.Direction == "" {
				e.Direction = "both"
			}
		}
		if e.Fault == FaultRate && e.Burst == 0 {
			e.Burst = 32 << 10
		}
	}
	for i := range s.Expect {
		e := &s.Expect[i]
		if e.Severity == "" {
			e.Severity = "fail"
		}
		if e.Shares != nil && e.Shares.Tolerance == 0 {
			e.Shares.Tolerance = defaultTolerance
		}
	}
	if c := s.Capture; c != nil {
		if c.Snaplen == 0 {
			c.Snaplen = defaultSnaplen
		}
		if c.Ring == 0 {
			c.Ring = defaultRing
		}
		if len(c.Segments) == 0 {
			for _, sg := range s.Segments {
				if sg.Capture == nil || *sg.Capture {
					c.Segments = append(c.Segments, sg.Name)
				}
			}
		}
	}
	if rp := s.Report; rp != nil && rp.Walk != nil && rp.Walk.Request == 0 {
		rp.Walk.Request = 1
	}
	r.checkMACs()
}

// checkMACs catches the (unlikely) clash of a derived MAC with another.
func (r *resolver) checkMACs() {
	seen := map[string]string{}
	for _, n := range r.s.Nodes {
		for j, ifc := range n.Interfaces {
			k := ifc.Segment + "/" + string(ifc.MAC)
			if other, dup := seen[k]; dup {
				r.errorf(indexPath(keyPath("nodes", n.Name)+".interfaces", j)+".mac",
					"derived MAC %s clashes with %s on segment %s; give one of them a mac:", ifc.MAC, other, ifc.Segment)
			}
			seen[k] = fmt.Sprintf("%s:%s", n.Name, ifc.Name)
		}
	}
}
