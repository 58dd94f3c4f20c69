package spec

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"lvslab/config"
	"lvslab/sim/service"
)

// The validator checks what the decoder cannot: names and references
// between parts of the file, addresses against segments, timelines and
// expectations against what exists. It reports everything it finds.

var (
	nameRE    = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	labNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	procRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	ifnameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	sysctlRE  = regexp.MustCompile(`^net\.[a-z0-9_.\-/]+$`)
	metricRE  = regexp.MustCompile(`^([a-z][a-z0-9-]*)\.([a-z0-9_]+)(?:\[([^\]]+)\])?$`)
)

// Name lengths: a namespace is lvsl-<lab>.<name> and shows in ip netns
// list; keep it readable.
const (
	maxLabName  = 40
	maxNodeName = 32
)

// documentation ranges (RFC 5737): where a seed's public addresses go.
var docRanges = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
}

// nonPublic are the IPv4 ranges that never route on the Internet, so a lab
// may use them as the seed does.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// IsPublic reports whether a is a public IPv4 address a lab must not use.
func IsPublic(a netip.Addr) bool {
	if !a.IsValid() || !a.Is4() {
		return false
	}
	return !inAny(a, docRanges) && !inAny(a, nonPublic)
}

type checker struct {
	s       *Spec
	errs    ErrorList
	procs   map[string][]string // node -> process names
	events  map[string]*Event
	traffic map[string]*Traffic
	// identities of http-echo and udp-echo services, for shares.
	identities []string
	// rules holds the parsed rule lines of each director node.
	rules map[string][]config.Command
	// kaFrom is where, in rules, the commands from a director's
	// keepalived.conf start.
	kaFrom map[string]int
}

func (c *checker) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, c.s.Errorf(path, format, args...))
}

// keyErrorf reports at the name of a keyed entry (nodes.rs1 -> "rs1:").
func (c *checker) keyErrorf(path, format string, args ...any) {
	if p, ok := c.s.pos[path+"#key"]; ok {
		c.errs = append(c.errs, Error{File: c.s.File, Line: p.Line, Column: p.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
		return
	}
	c.errorf(path, format, args...)
}

func validate(s *Spec) ErrorList {
	c := &checker{
		s:       s,
		procs:   map[string][]string{},
		events:  map[string]*Event{},
		traffic: map[string]*Traffic{},
		rules:   map[string][]config.Command{},
		kaFrom:  map[string]int{},
	}
	c.header()
	c.names()
	c.segments()
	for i := range s.Nodes {
		c.node(i)
	}
	c.addressesPerSegment()
	c.publicAddresses()
	c.processOrder()
	c.realServers()
	for i := range s.Traffic {
		c.trafficGen(i)
	}
	c.timeline()
	for i := range s.Expect {
		c.expectation(i)
	}
	c.capture()
	return c.errs
}

func (c *checker) header() {
	s := c.s
	if s.APIVersion != "" && s.APIVersion != APIVersion && s.APIVersion != APIVersionV1Alpha1 {
		c.errorf("apiVersion", "unsupported apiVersion %q (this lvslab reads %s and %s)", s.APIVersion, APIVersion, APIVersionV1Alpha1)
	}
	if s.Kind != "" && s.Kind != "Scenario" {
		c.errorf("kind", "kind must be Scenario, not %q", s.Kind)
	}
	if !labNameRE.MatchString(s.Name) || len(s.Name) > maxLabName {
		c.errorf("name", "invalid name %q: lower case letters, digits and '-', at most %d characters", s.Name, maxLabName)
	}
	if src := s.Source; src != nil {
		for i, m := range src.AddressMap {
			p := indexPath("source.address_map", i)
			if !m.Seed.IsValid() || !m.Lab.IsValid() {
				continue
			}
			if m.Seed.Bits() != m.Lab.Bits() {
				c.errorf(p, "seed %s and lab %s differ in prefix length", m.Seed, m.Lab)
			}
			if !inAny(m.Lab.Addr(), docRanges) || !inAny(m.Lab.Masked().Addr(), docRanges) {
				c.errorf(p+".lab", "%s is not in a documentation range (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)", m.Lab)
			}
			if inAny(m.Seed.Addr(), docRanges) {
				c.errorf(p+".seed", "%s is already a documentation address; nothing to map", m.Seed)
			}
		}
	}
	seen := map[string]bool{}
	for i, r := range s.Requires {
		if seen[r.Feature] {
			c.errorf(indexPath("requires", i), "%s required twice", r.Feature)
		}
		seen[r.Feature] = true
	}
}

// names checks node and segment names: one name space for both, since each
// becomes a namespace lvsl-<lab>.<name>.
func (c *checker) names() {
	seen := map[string]string{}
	check := func(kind, name, path string) {
		if !nameRE.MatchString(name) || len(name) > maxNodeName {
			c.keyErrorf(path, "invalid %s name %q: start with a letter; lower case letters, digits and '-'; at most %d characters", kind, name, maxNodeName)
		}
		if other, dup := seen[name]; dup {
			c.keyErrorf(path, "%s %q has the same name as %s %q: nodes and segments share one name space", kind, name, other, name)
		}
		seen[name] = kind
	}
	for _, sg := range c.s.Segments {
		check("segment", sg.Name, keyPath("segments", sg.Name))
	}
	for _, n := range c.s.Nodes {
		check("node", n.Name, keyPath("nodes", n.Name))
	}
}

func (c *checker) segments() {
	for _, sg := range c.s.Segments {
		p := keyPath("segments", sg.Name)
		for i, sn := range sg.Subnets {
			sp := indexPath(p+".subnets", i)
			if sn.Masked() != sn {
				c.errorf(sp, "subnet %s has host bits set (did you mean %s?)", sn, sn.Masked())
			}
			for j := range i {
				if sg.Subnets[j].Overlaps(sn) {
					c.errorf(sp, "subnet %s overlaps %s of the same segment", sn, sg.Subnets[j])
				}
			}
		}
		c.mtu(p+".mtu", sg.MTU)
	}
	if d := c.s.Defaults; d != nil {
		c.mtu("defaults.mtu", d.MTU)
		c.offloads("defaults.offloads", d.Offloads)
	}
}

func (c *checker) mtu(path string, mtu int) {
	if mtu != 0 && (mtu < 68 || mtu > 65535) {
		c.errorf(path, "MTU %d outside 68..65535", mtu)
	}
}

// offloadNames maps ethtool -K's short names to the kernel feature names
// they set; kernel names (ethtool -k's indented ones) are accepted as is.
func offloadNames() map[string][]string {
	return map[string][]string{
		"rx":                    {"rx-checksum"},
		"tx":                    {"tx-checksum-ipv4", "tx-checksum-ip-generic", "tx-checksum-ipv6", "tx-checksum-fcoe-crc", "tx-checksum-sctp"},
		"sg":                    {"tx-scatter-gather"},
		"tso":                   {"tx-tcp-segmentation", "tx-tcp-ecn-segmentation", "tx-tcp-mangleid-segmentation", "tx-tcp6-segmentation"},
		"gso":                   {"tx-generic-segmentation"},
		"gro":                   {"rx-gro"},
		"lro":                   {"rx-lro"},
		"ufo":                   {"tx-udp-fragmentation"},
		"rxvlan":                {"rx-vlan-hw-parse"},
		"txvlan":                {"tx-vlan-hw-insert"},
		"rx-gro-list":           {"rx-gro-list"},
		"rx-udp-gro-forwarding": {"rx-udp-gro-forwarding"},
	}
}

// OffloadFeatures expands a feature name of the spec to kernel names.
func OffloadFeatures(name string) []string {
	if k, ok := offloadNames()[name]; ok {
		return k
	}
	return []string{name}
}

var kernelFeatureRE = regexp.MustCompile(`^(rx|tx|highdma|loopback|esp|l2-fwd|hsr|macsec|netns-local|fcoe|vlan)[a-z0-9-]*$`)

func (c *checker) offloads(path string, offs []Offload) {
	known := offloadNames()
	short := make([]string, 0, len(known))
	for k := range known {
		short = append(short, k)
	}
	slices.Sort(short)
	for _, o := range offs {
		if _, ok := known[o.Feature]; ok || (kernelFeatureRE.MatchString(o.Feature) && strings.Contains(o.Feature, "-")) {
			continue
		}
		c.keyErrorf(keyPath(path, o.Feature), "unknown offload feature %q%s; use %s or a kernel feature name (ethtool -k)",
			o.Feature, suggest(o.Feature, short), strings.Join(short, ", "))
	}
}

func (c *checker) node(i int) {
	s := c.s
	n := &s.Nodes[i]
	p := keyPath("nodes", n.Name)
	ifnames := map[string]bool{}
	segNames := make([]string, 0, len(s.Segments))
	for _, sg := range s.Segments {
		segNames = append(segNames, sg.Name)
	}
	for j, ifc := range n.Interfaces {
		ip := indexPath(p+".interfaces", j)
		switch {
		case len(ifc.Name) > 15 || !ifnameRE.MatchString(ifc.Name):
			c.errorf(ip+".name", "invalid interface name %q: at most 15 letters, digits, '.', '_' or '-'", ifc.Name)
		case ifc.Name == "lo":
			c.errorf(ip+".name", "lo is the loopback; put its addresses under loopback:")
		case ifnames[ifc.Name]:
			c.errorf(ip+".name", "interface %q defined twice in node %s", ifc.Name, n.Name)
		}
		ifnames[ifc.Name] = true
		if s.Segment(ifc.Segment) == nil {
			c.errorf(ip+".segment", "unknown segment %q%s", ifc.Segment, suggest(ifc.Segment, segNames))
		}
		c.mtu(ip+".mtu", ifc.MTU)
		c.offloads(ip+".offloads", ifc.Offloads)
		for k, a := range ifc.Addresses {
			c.ipVersion(indexPath(ip+".addresses", k), a.Addr())
		}
		if hw := ifc.MAC.HardwareAddr(); hw != nil && hw[0]&1 == 1 {
			c.errorf(ip+".mac", "%s is a multicast address", ifc.MAC)
		}
	}
	for k, a := range n.Loopback {
		c.ipVersion(indexPath(p+".loopback", k), a.Addr())
	}
	hasDev := func(dev string) bool { return dev == "lo" || ifnames[dev] }
	devNames := func() []string {
		out := []string{"lo"}
		for _, ifc := range n.Interfaces {
			out = append(out, ifc.Name)
		}
		return out
	}
	routes := map[string]bool{}
	for j, r := range n.Routes {
		rp := indexPath(p+".routes", j)
		if r.Dev != "" && !hasDev(r.Dev) {
			c.errorf(rp+".dev", "node %s has no interface %q%s", n.Name, r.Dev, suggest(r.Dev, devNames()))
		}
		key := r.Dst.String() + "/" + strconv.Itoa(r.Metric)
		if routes[key] {
			c.errorf(rp+".dst", "route to %s (metric %d) given twice", r.Dst, r.Metric)
		}
		routes[key] = true
		switch r.Type {
		case "", "unicast":
			if !r.Via.IsValid() && r.Dev == "" {
				c.errorf(rp, "route to %s needs via or dev", r.Dst)
			}
			if r.Via.IsValid() && !c.onLink(n, r.Dev, r.Via) {
				c.errorf(rp+".via", "gateway %s is not on a subnet of %s", r.Via, onWhat(n.Name, r.Dev))
			}
		default:
			if r.Via.IsValid() || r.Dev != "" {
				c.errorf(rp, "a %s route takes no via or dev", r.Type)
			}
		}
		if r.Src.IsValid() && !c.nodeHas(n, r.Src) {
			c.errorf(rp+".src", "node %s has no address %s", n.Name, r.Src)
		}
	}
	for j, nb := range n.Neighbors {
		np := indexPath(p+".neighbors", j)
		if (nb.MAC == "") == (nb.MACOf == "") {
			c.errorf(np, "give exactly one of mac and mac_of")
		}
		if nb.MACOf != "" {
			c.ifaceRef(np+".mac_of", nb.MACOf)
		}
		if nb.Dev != "" && !hasDev(nb.Dev) {
			c.errorf(np+".dev", "node %s has no interface %q%s", n.Name, nb.Dev, suggest(nb.Dev, devNames()))
		}
		if nb.Dev == "" && !c.onLink(n, "", nb.IP) {
			c.errorf(np+".ip", "%s is on no subnet of node %s; give dev", nb.IP, n.Name)
		}
	}
	c.sysctls(p+".sysctls", n, n.Sysctls, "are applied")
	for _, f := range n.Files {
		fp := keyPath(p+".files", f.Path)
		clean := path.Clean("/" + f.Path)
		if f.Path == "" || strings.Contains(f.Path, "..") || clean == "/" {
			c.keyErrorf(fp, "file path %q must name a file inside the node directory", f.Path)
		}
		if (f.Content == nil) == (f.From == "") {
			c.errorf(fp, "give exactly one of content and from")
		}
		if f.From != "" {
			c.fileExists(fp+".from", f.From)
		}
	}
	// Process names: the implicit ones first, so a clash names the explicit one.
	names := map[string]bool{}
	if RunsLVSRS(n) {
		names[ProcLVSRS] = true
	}
	if s.RunsLVSD(n) {
		names[ProcLVSD] = true
	}
	if s.RunsKeepalived(n) {
		names[ProcKeepalived] = true
	}
	if s.RunsNodeKeepalived(n) {
		names[ProcNodeKeepalived] = true
	}
	if n.FRR != nil {
		names[ProcZebra], names[ProcOSPFD] = true, true
	}
	for j, sv := range n.Services {
		sp := indexPath(p+".services", j)
		name := sv.ServiceName()
		if !procRE.MatchString(name) {
			c.errorf(sp+".name", "invalid process name %q", name)
		}
		if names[name] {
			c.errorf(sp, "process name %q used twice in node %s; give the service a name:", name, n.Name)
		}
		names[name] = true
		c.serviceControls(sp, sv)
		if sv.TOA && sv.Kind != ServiceHTTPEcho {
			c.errorf(sp+".toa", "toa is for http-echo, not %s", sv.Kind)
		}
		if sv.Kind.NamesBackend() {
			id := sv.Identity
			if id == "" {
				id = n.Name
			}
			c.identities = append(c.identities, id)
		}
		if sv.Listen.Addr.IsValid() && !sv.Listen.Addr.IsUnspecified() && !sv.Listen.Addr.IsLoopback() &&
			!c.nodeHas(n, sv.Listen.Addr) && !slices.Contains(c.vipsOf(n), sv.Listen.Addr) {
			c.errorf(sp+".listen", "node %s has no address %s to listen on", n.Name, sv.Listen.Addr)
		}
	}
	for j, pr := range n.Processes {
		pp := indexPath(p+".processes", j)
		if !procRE.MatchString(pr.Name) {
			c.errorf(pp+".name", "invalid process name %q: lower case letters, digits, '.', '_' or '-'", pr.Name)
		}
		if names[pr.Name] {
			c.errorf(pp+".name", "process name %q used twice in node %s", pr.Name, n.Name)
		}
		names[pr.Name] = true
		if (len(pr.Cmd) == 0) == (pr.Shell == "") {
			c.errorf(pp, "give exactly one of cmd and shell")
		}
		if pr.Oneshot && pr.Ready != nil {
			c.errorf(pp+".ready", "a oneshot process is ready when it exits 0; drop ready:")
		}
		if pr.Ready != nil {
			c.ready(pp+".ready", pr.Ready)
		}
	}
	c.procs[n.Name] = s.ProcessNames(n)
	if d := n.Director; d != nil || (n.Role == RoleDirector && s.RoleDefaultsOn(n)) {
		c.director(n, p+".director")
	}
	if n.Keepalived != nil {
		c.nodeKeepalived(n, p)
	}
	if n.FRR != nil && n.FRR.OSPFD != "" {
		c.frr(n, p+".frr")
	}
	if n.Role == RoleRealServer && n.RealServer == nil && s.RoleDefaultsOn(n) {
		c.keyErrorf(p, "a realserver needs realserver: {mode: dr|tun|nat} (or role_defaults: false)")
	}
	if rs := n.RealServer; rs != nil {
		rp := p + ".realserver"
		if rs.Iface != "" && !ifnames[rs.Iface] {
			c.errorf(rp+".iface", "node %s has no interface %q%s", n.Name, rs.Iface, suggest(rs.Iface, devNames()))
		}
		if rs.DIP.IsValid() && rs.Mode != ModeNAT {
			c.errorf(rp+".dip", "dip is for nat real servers only")
		}
		for k, v := range rs.VIPs {
			c.ipVersion(indexPath(rp+".vips", k), v)
		}
	}
}

func onWhat(node, dev string) string {
	if dev != "" {
		return node + ":" + dev
	}
	return "node " + node
}

func (c *checker) ipVersion(path string, a netip.Addr) {
	if a.Is6() && !a.Is4In6() && (c.s.Defaults == nil || !c.s.Defaults.IPv6) {
		c.errorf(path, "IPv6 address %s, but IPv6 is disabled (set defaults.ipv6: true)", a)
	}
}

// onLink reports whether a lies in a subnet of one of n's interfaces (of
// dev only, when given).
func (c *checker) onLink(n *Node, dev string, a netip.Addr) bool {
	for _, ifc := range n.Interfaces {
		if dev != "" && ifc.Name != dev {
			continue
		}
		for _, p := range ifc.Addresses {
			if p.Masked().Contains(a) && p.Bits() < p.Addr().BitLen() {
				return true
			}
		}
	}
	return false
}

func (c *checker) nodeHas(n *Node, a netip.Addr) bool {
	for _, ifc := range n.Interfaces {
		for _, p := range ifc.Addresses {
			if p.Addr() == a {
				return true
			}
		}
	}
	for _, p := range n.Loopback {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// vipsOf lists the VIPs a node will hold through lvsrs, as far as the file
// says them explicitly.
func (c *checker) vipsOf(n *Node) []netip.Addr {
	if n.RealServer == nil {
		return nil
	}
	return n.RealServer.VIPs
}

// sysctls checks net.* keys; per-interface keys must name an interface
// that exists when they are applied.
func (c *checker) sysctls(path string, n *Node, list []Sysctl, when string) {
	for _, sc := range list {
		kp := keyPath(path, sc.Key)
		key := strings.ReplaceAll(sc.Key, "/", ".")
		if !sysctlRE.MatchString(key) {
			c.keyErrorf(kp, "sysctl %q is not a net.* key: only those belong to a network namespace", sc.Key)
			continue
		}
		parts := strings.Split(key, ".")
		if len(parts) >= 5 && (parts[1] == "ipv4" || parts[1] == "ipv6") && (parts[2] == "conf" || parts[2] == "neigh") {
			dev := parts[3]
			if n == nil || dev == "all" || dev == "default" || dev == "lo" || n.Interface(dev) != nil {
				continue
			}
			c.keyErrorf(kp, "sysctl %s names interface %q, which node %s does not have when sysctls %s", sc.Key, dev, n.Name, when)
		}
	}
}

func (c *checker) fileExists(path, ref string) bool {
	if _, err := os.Stat(c.s.Abs(ref)); err != nil {
		c.errorf(path, "cannot read %s: %v", c.s.Abs(ref), unwrapPathErr(err))
		return false
	}
	return true
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (c *checker) ready(path string, r *Ready) {
	kinds := 0
	if r.TCP != "" {
		kinds++
		if _, err := netip.ParseAddrPort(r.TCP); err != nil {
			c.errorf(path+".tcp", "invalid address %q (want addr:port, e.g. 127.0.0.1:80)", r.TCP)
		}
	}
	if r.Unix != "" {
		kinds++
	}
	if r.File != "" {
		kinds++
	}
	if len(r.Command) > 0 {
		kinds++
	}
	if r.Log.Regexp != nil {
		kinds++
	}
	if kinds != 1 {
		c.errorf(path, "give exactly one of tcp, unix, file, command and log")
	}
}

func (c *checker) director(n *Node, p string) {
	d := n.Director
	if d == nil {
		return
	}
	for k, ifn := range d.Interfaces {
		if n.Interface(ifn) == nil {
			c.errorf(indexPath(p+".interfaces", k), "node %s has no interface %q", n.Name, ifn)
		}
	}
	parser := config.Parser{}
	for k, line := range d.Rules {
		lp := indexPath(p+".rules", k)
		args := strings.Fields(line)
		if len(args) > 0 && (path.Base(args[0]) == "ipvsadm" || path.Base(args[0]) == "lvsadm") {
			args = args[1:]
		}
		if len(args) == 0 {
			c.errorf(lp, "empty rule line")
			continue
		}
		cmd, err := parser.ParseArgs(args)
		if err != nil {
			c.errorf(lp, "%v", err)
			continue
		}
		if !cmd.Op.Mutates() || cmd.Op == config.OpRestore {
			c.errorf(lp, "%s does not configure the director; only -A -E -D -C -a -e -d -Z --set belong in rules", args[0])
			continue
		}
		c.rules[n.Name] = append(c.rules[n.Name], cmd)
	}
	if d.RulesFile != "" {
		c.fileExists(p+".rules_file", d.RulesFile)
		if f, err := os.Open(c.s.Abs(d.RulesFile)); err == nil {
			rules, perr := parser.ParseRuleLines(f, d.RulesFile)
			f.Close()
			if perr != nil {
				c.errorf(p+".rules_file", "%v", perr)
			}
			for _, r := range rules {
				c.rules[n.Name] = append(c.rules[n.Name], r.Command)
			}
		}
	}
	if d.Keepalived != "" {
		c.fileExists(p+".keepalived", d.Keepalived)
		c.keepalived(n, p)
	} else if len(d.KeepalivedArgs) > 0 {
		c.errorf(p+".keepalived_args", "keepalived_args without keepalived: lvskeepalived only runs with a keepalived.conf")
	}
	if d.Socket != "" && strings.ContainsAny(d.Socket, " \t\n") {
		c.errorf(p+".socket", "invalid socket name %q", d.Socket)
	}
}

// segAddr is one address on a segment and who holds it.
type segAddr struct {
	prefix netip.Prefix
	path   string
	owner  string
}

// addressesPerSegment checks every interface address against its segment:
// inside a declared subnet, not the subnet's network or broadcast address,
// not held twice, and not overlapping another address's subnet with a
// different prefix length (hosts on one wire would disagree about who is
// on-link).
func (c *checker) addressesPerSegment() {
	bySeg := map[string][]segAddr{}
	macs := map[string]map[MAC]string{}
	for _, n := range c.s.Nodes {
		for j, ifc := range n.Interfaces {
			sg := c.s.Segment(ifc.Segment)
			if sg == nil {
				continue
			}
			ip := indexPath(keyPath("nodes", n.Name)+".interfaces", j)
			if ifc.MAC != "" {
				if macs[sg.Name] == nil {
					macs[sg.Name] = map[MAC]string{}
				}
				if other, dup := macs[sg.Name][ifc.MAC]; dup {
					c.errorf(ip+".mac", "MAC %s already used on segment %s by %s", ifc.MAC, sg.Name, other)
				}
				macs[sg.Name][ifc.MAC] = n.Name + ":" + ifc.Name
			}
			for k, a := range ifc.Addresses {
				ap := indexPath(ip+".addresses", k)
				owner := n.Name + ":" + ifc.Name
				if len(sg.Subnets) > 0 && !slices.ContainsFunc(sg.Subnets, func(sn netip.Prefix) bool { return sn.Contains(a.Addr()) }) {
					c.errorf(ap, "%s is outside segment %s's subnets (%s)", a, sg.Name, joinPrefixes(sg.Subnets))
				}
				if a.Addr().Is4() && a.Bits() <= 30 {
					m := a.Masked()
					if a.Addr() == m.Addr() {
						c.errorf(ap, "%s is the network address of %s", a.Addr(), m)
					} else if a.Addr() == lastAddr(m) {
						c.errorf(ap, "%s is the broadcast address of %s", a.Addr(), m)
					}
				}
				for _, o := range bySeg[sg.Name] {
					switch {
					case o.prefix.Addr() == a.Addr():
						c.errorf(ap, "duplicate address %s on segment %s: already on %s (%s)", a.Addr(), sg.Name, o.owner, o.path)
					case a.Bits() != o.prefix.Bits() && a.Bits() < a.Addr().BitLen() && o.prefix.Bits() < o.prefix.Addr().BitLen() &&
						a.Masked().Overlaps(o.prefix.Masked()):
						c.errorf(ap, "%s overlaps %s on %s with a different prefix length: one subnet, one mask on a segment", a, o.prefix, o.owner)
					}
				}
				bySeg[sg.Name] = append(bySeg[sg.Name], segAddr{a, ap, owner})
			}
		}
	}
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// publicAddresses refuses public addresses: the seeds' public ones map into
// documentation ranges, with the mapping in source.address_map.
func (c *checker) publicAddresses() {
	check := func(path string, a netip.Addr) {
		if !IsPublic(a) {
			return
		}
		if src := c.s.Source; src != nil {
			for _, m := range src.AddressMap {
				if m.Seed.Contains(a) {
					c.errorf(path, "%s is the seed's public address; source.address_map says to use %s", a, m.Lab)
					return
				}
			}
		}
		c.errorf(path, "public address %s: use a documentation range (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) and record the mapping in source.address_map", a)
	}
	for _, sg := range c.s.Segments {
		for i, sn := range sg.Subnets {
			check(indexPath(keyPath("segments", sg.Name)+".subnets", i), sn.Addr())
		}
	}
	for _, n := range c.s.Nodes {
		p := keyPath("nodes", n.Name)
		for j, ifc := range n.Interfaces {
			for k, a := range ifc.Addresses {
				check(indexPath(indexPath(p+".interfaces", j)+".addresses", k), a.Addr())
			}
		}
		for k, a := range n.Loopback {
			check(indexPath(p+".loopback", k), a.Addr())
		}
		for j, r := range n.Routes {
			if !r.Dst.IsDefault() {
				check(indexPath(p+".routes", j)+".dst", r.Dst.Prefix.Addr())
			}
			check(indexPath(p+".routes", j)+".via", r.Via)
		}
		for j, nb := range n.Neighbors {
			check(indexPath(p+".neighbors", j)+".ip", nb.IP)
		}
		if rs := n.RealServer; rs != nil {
			for k, v := range rs.VIPs {
				check(indexPath(p+".realserver.vips", k), v)
			}
		}
		for k, cmd := range c.rules[n.Name] {
			path := indexPath(p+".director.rules", k)
			if n.Director != nil && k >= len(n.Director.Rules) {
				path = p + ".director.rules_file"
			}
			if from, ok := c.kaFrom[n.Name]; ok && k >= from {
				path = p + ".director.keepalived"
				if n.Keepalived != nil && n.Keepalived.Impl() == ImplLVSKeepalived {
					path = p + ".keepalived.config"
				}
			}
			check(path, cmd.Service.Addr)
			check(path, cmd.Dest.Addr)
		}
	}
}

// processRef resolves "node/process" or, for a process of the same node,
// "process".
func (c *checker) processRef(path, ref, self string) (node, proc string, ok bool) {
	node, proc, ok = SplitProcessRef(ref)
	if !ok {
		if self == "" || strings.Contains(ref, "/") || ref == "" {
			c.errorf(path, "%q is not node/process", ref)
			return "", "", false
		}
		node, proc = self, ref
	}
	names, known := c.procs[node]
	if !known {
		c.errorf(path, "unknown node %q%s", node, suggest(node, c.nodeNames()))
		return "", "", false
	}
	if !slices.Contains(names, proc) {
		hint := suggest(proc, names)
		if hint == "" && len(names) > 0 {
			hint = "; it has " + strings.Join(names, ", ")
		}
		c.errorf(path, "node %s has no process %q%s", node, proc, hint)
		return "", "", false
	}
	return node, proc, true
}

func (c *checker) nodeNames() []string {
	out := make([]string, len(c.s.Nodes))
	for i, n := range c.s.Nodes {
		out[i] = n.Name
	}
	return out
}

func (c *checker) nodeRef(path, name string) *Node {
	n := c.s.Node(name)
	if n == nil {
		c.errorf(path, "unknown node %q%s", name, suggest(name, c.nodeNames()))
	}
	return n
}

// ifaceRef resolves "node:interface"; with node only when allowNode.
func (c *checker) ifaceRef(path, ref string) {
	node, iface, ok := SplitIfaceRef(ref)
	if !ok {
		c.errorf(path, "%q is not node:interface", ref)
		return
	}
	if n := c.nodeRef(path, node); n != nil && n.Interface(iface) == nil {
		names := make([]string, len(n.Interfaces))
		for i, ifc := range n.Interfaces {
			names[i] = ifc.Name
		}
		c.errorf(path, "node %s has no interface %q%s", node, iface, suggest(iface, names))
	}
}

// processOrder checks after: references and that they form no cycle.
func (c *checker) processOrder() {
	type key struct{ node, proc string }
	edges := map[key][]key{}
	for _, n := range c.s.Nodes {
		for j, pr := range n.Processes {
			for k, a := range pr.After {
				p := indexPath(indexPath(keyPath("nodes", n.Name)+".processes", j)+".after", k)
				if node, proc, ok := c.processRef(p, a, n.Name); ok {
					edges[key{n.Name, pr.Name}] = append(edges[key{n.Name, pr.Name}], key{node, proc})
				}
			}
		}
	}
	state := map[key]int{} // 1 visiting, 2 done
	var visit func(k key, trail []key) bool
	visit = func(k key, trail []key) bool {
		switch state[k] {
		case 1:
			var names []string
			for _, t := range append(trail, k) {
				names = append(names, t.node+"/"+t.proc)
			}
			c.errorf(keyPath("nodes", k.node)+".processes", "processes wait for each other: %s", strings.Join(names, " -> "))
			return false
		case 2:
			return true
		}
		state[k] = 1
		for _, e := range edges[k] {
			if !visit(e, append(trail, k)) {
				return false
			}
		}
		state[k] = 2
		return true
	}
	for _, n := range c.s.Nodes {
		for _, pr := range n.Processes {
			if !visit(key{n.Name, pr.Name}, nil) {
				return
			}
		}
	}
}

// realServers checks real servers against the directors' rules: mode and
// forwarding method agree.
func (c *checker) realServers() {
	for _, n := range c.s.Nodes {
		rs := n.RealServer
		if rs == nil {
			continue
		}
		for dir, cmds := range c.rules {
			for _, cmd := range cmds {
				if cmd.Op != config.OpAddDest && cmd.Op != config.OpEditDest {
					continue
				}
				if !c.nodeHas(&n, cmd.Dest.Addr) {
					continue
				}
				want := map[config.Forward]RSMode{
					config.ForwardMasq:   ModeNAT,
					config.ForwardTunnel: ModeTUN,
					config.ForwardRoute:  ModeDR,
				}[cmd.Dest.Forward]
				if want != "" && want != rs.Mode {
					c.errorf(keyPath("nodes", n.Name)+".realserver.mode", "director %s forwards to %s by %s (%s), but this real server is prepared for %s",
						dir, cmd.Dest.Addr, cmd.Dest.Forward.Name(), cmd.Dest.Forward.Switch(), rs.Mode)
				}
			}
		}
	}
}

func (c *checker) trafficGen(i int) {
	t := &c.s.Traffic[i]
	p := indexPath("traffic", i)
	if !nameRE.MatchString(t.Name) {
		c.errorf(p+".name", "invalid traffic name %q: lower case letters, digits and '-'", t.Name)
	}
	if _, dup := c.traffic[t.Name]; dup {
		c.errorf(p+".name", "traffic %q defined twice", t.Name)
	}
	c.traffic[t.Name] = t
	from := c.nodeRef(p+".from", t.From)
	switch t.Kind {
	case TrafficHTTP:
		u, err := url.Parse(t.Target)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			c.errorf(p+".target", "http target %q must be a URL like http://203.0.113.5:80/", t.Target)
		} else if _, err := netip.ParseAddr(u.Hostname()); err != nil {
			c.errorf(p+".target", "http target %q: the host must be an IP address (the lab has no DNS)", t.Target)
		}
	case TrafficICMP:
		if _, err := netip.ParseAddr(t.Target); err != nil {
			c.errorf(p+".target", "icmp target %q must be an IP address", t.Target)
		}
	default:
		if _, err := netip.ParseAddrPort(t.Target); err != nil {
			c.errorf(p+".target", "%s target %q must be addr:port", t.Kind, t.Target)
		}
	}
	if t.Source.IsValid() && from != nil && !c.nodeHas(from, t.Source) {
		c.errorf(p+".source", "node %s has no address %s", t.From, t.Source)
	}
	if t.Streams != 0 && t.Kind != TrafficTCPStream {
		c.errorf(p+".streams", "streams is for tcp-stream traffic")
	}
	if t.Verify && t.Kind != TrafficTCPStream && t.Kind != TrafficUDP && t.Kind != TrafficFTP {
		c.errorf(p+".verify", "verify is for tcp-stream, udp and ftp traffic")
	}
	if t.FTPMode != "" && t.Kind != TrafficFTP {
		c.errorf(p+".ftp_mode", "ftp_mode is for ftp traffic")
	}
	if t.Kind == TrafficFTP && t.Payload != 0 && !slices.Contains(service.FTPFiles, int64(t.Payload)) {
		c.errorf(p+".payload", "ftp payload %d bytes: the vsftpd service serves only %v", int64(t.Payload), service.FTPFiles)
	}
	if t.NewConnection != nil && t.Kind != TrafficHTTP {
		c.errorf(p+".new_connection", "new_connection is for http traffic")
	}
	if t.Concurrency < 0 || t.Count < 0 || t.Streams < 0 {
		c.errorf(p, "concurrency, count and streams cannot be negative")
	}
	if t.Stop != 0 && t.Stop <= t.Start {
		c.errorf(p+".stop", "stop %s is not after start %s", t.Stop, t.Start)
	}
	if d := c.s.Duration; d != 0 && (t.Start >= d || t.Stop > d) {
		c.errorf(p, "start and stop must lie within duration %s", d)
	}
}

// revertible faults may take for:.
func revertible(k FaultKind) bool {
	switch k {
	case FaultProcessStop, FaultLinkDown, FaultBlackhole, FaultPartition, FaultLoss,
		FaultRate, FaultDelay, FaultSysctl, FaultNeighWrong, FaultServiceSet, FaultNodeKill:
		return true
	}
	return false
}

// faultParams lists the parameters each fault kind takes besides name, at,
// when, fault, target and for.
func faultParams(k FaultKind) []string {
	switch k {
	case FaultProcessKill, FaultNodeKill:
		return []string{"signal"}
	case FaultPartition:
		return []string{"between", "proto"}
	case FaultLoss:
		return []string{"loss", "direction", "proto", "segment"}
	case FaultRate:
		return []string{"rate", "burst", "direction"}
	case FaultDelay:
		return []string{"delay", "jitter", "direction"}
	case FaultBlackhole:
		return []string{"direction", "proto", "segment"}
	case FaultSysctl:
		return []string{"set"}
	case FaultARPFlush:
		return []string{"ip", "dev"}
	case FaultNeighWrong:
		return []string{"ip", "mac", "mac_of", "dev"}
	case FaultExec:
		return []string{"cmd", "shell"}
	case FaultServiceSet:
		return []string{"status", "delay", "body"}
	}
	return nil
}

// givenParams lists the optional parameters an event sets.
func givenParams(e *Event) []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(e.Signal != "", "signal")
	add(len(e.Between) > 0, "between")
	add(e.Proto != "", "proto")
	add(e.Segment != "", "segment")
	add(e.Direction != "", "direction")
	add(e.Loss != 0, "loss")
	add(e.Rate != 0, "rate")
	add(e.Burst != 0, "burst")
	add(e.Delay != 0, "delay")
	add(e.Jitter != 0, "jitter")
	add(len(e.Set) > 0, "set")
	add(e.IP.IsValid(), "ip")
	add(e.MAC != "", "mac")
	add(e.MACOf != "", "mac_of")
	add(e.Dev != "", "dev")
	add(len(e.Cmd) > 0, "cmd")
	add(e.Shell != "", "shell")
	add(e.Status != 0, "status")
	add(e.Body != nil, "body")
	return out
}

var protoRE = regexp.MustCompile(`^(tcp|udp|icmp|vrrp|arp|[0-9]{1,3})$`)

func (c *checker) timeline() {
	for i := range c.s.Timeline {
		e := &c.s.Timeline[i]
		p := indexPath("timeline", i)
		if !nameRE.MatchString(e.Name) {
			c.errorf(p+".name", "invalid event name %q: lower case letters, digits and '-'", e.Name)
		}
		if _, dup := c.events[e.Name]; dup {
			c.errorf(p+".name", "event %q defined twice", e.Name)
		}
		c.events[e.Name] = e
	}
	for i := range c.s.Timeline {
		c.event(i)
	}
	// when: event chains must not loop.
	for i := range c.s.Timeline {
		seen := map[string]bool{}
		e := &c.s.Timeline[i]
		for e != nil && e.When != nil && e.When.Event+e.When.Since != "" {
			if seen[e.Name] {
				c.errorf(indexPath("timeline", i)+".when", "events trigger each other in a loop")
				break
			}
			seen[e.Name] = true
			dep := e.When.Event
			if dep == "" {
				dep = e.When.Since
			}
			e = c.events[strings.TrimSuffix(dep, ".end")]
		}
	}
}

func (c *checker) event(i int) {
	e := &c.s.Timeline[i]
	p := indexPath("timeline", i)
	if (e.At == nil) == (e.When == nil) {
		c.errorf(p, "give exactly one of at and when")
	}
	if e.At != nil && c.s.Duration != 0 && *e.At >= c.s.Duration {
		c.errorf(p+".at", "at %s is not before the end of the run (duration %s)", *e.At, c.s.Duration)
	}
	if e.When != nil {
		c.trigger(p+".when", e.When, e.Name)
	}
	if e.For != 0 && !revertible(e.Fault) {
		c.errorf(p+".for", "%s cannot be undone; for: is for %s", e.Fault, "process.stop, link.down, blackhole, partition, loss, rate, delay, sysctl, neigh.wrong, service.set, node.kill")
	}
	allowed := faultParams(e.Fault)
	for _, g := range givenParams(e) {
		if !slices.Contains(allowed, g) {
			c.errorf(p+"."+g, "%s is not a parameter of %s", g, e.Fault)
		}
	}
	switch e.Fault {
	case FaultProcessKill, FaultProcessStop, FaultProcessCont, FaultProcessStart, FaultProcessRestart:
		c.processRef(p+".target", e.Target, "")
	case FaultLinkDown, FaultLinkUp:
		c.ifaceRef(p+".target", e.Target)
	case FaultNodeKill:
		c.nodeRef(p+".target", e.Target)
	case FaultBlackhole, FaultLoss, FaultRate, FaultDelay:
		switch {
		case e.Segment != "" && e.Target != "":
			c.errorf(p+".segment", "give target: or segment:, not both")
		case e.Segment != "":
			if c.s.Segment(e.Segment) == nil {
				c.errorf(p+".segment", "unknown segment %q", e.Segment)
			}
		case strings.Contains(e.Target, ":"):
			c.ifaceRef(p+".target", e.Target)
		default:
			c.nodeRef(p+".target", e.Target)
		}
		if e.Proto != "" && !protoRE.MatchString(e.Proto) {
			c.errorf(p+".proto", "unknown protocol %q (tcp, udp, icmp, vrrp, arp or a number)", e.Proto)
		}
		switch {
		case e.Fault == FaultLoss && e.Loss == 0:
			c.errorf(p, "loss needs loss: (e.g. 30%%)")
		case e.Fault == FaultRate && e.Rate == 0:
			c.errorf(p, "rate needs rate: (e.g. 8mbit)")
		case e.Fault == FaultDelay && e.Delay == 0:
			c.errorf(p, "delay needs delay: (e.g. 100ms)")
		case e.Fault == FaultDelay && e.Jitter > e.Delay:
			c.errorf(p+".jitter", "jitter %s exceeds delay %s", e.Jitter, e.Delay)
		}
	case FaultPartition:
		if e.Target != "" {
			c.errorf(p+".target", "partition takes between:, not target:")
		}
		if len(e.Between) != 2 {
			c.errorf(p, "partition needs between: [A, B]")
		}
		for k, side := range e.Between {
			if strings.Contains(side, ":") {
				c.ifaceRef(indexPath(p+".between", k), side)
			} else {
				c.nodeRef(indexPath(p+".between", k), side)
			}
		}
		if e.Proto != "" && !protoRE.MatchString(e.Proto) {
			c.errorf(p+".proto", "unknown protocol %q (tcp, udp, icmp, vrrp, arp or a number)", e.Proto)
		}
	case FaultSysctl:
		n := c.nodeRef(p+".target", e.Target)
		if len(e.Set) == 0 {
			c.errorf(p, "sysctl needs set: {key: value}")
		}
		if n != nil {
			// Interfaces created by lvsrs exist by the time faults run.
			c.sysctls(p+".set", nil, e.Set, "run")
		}
	case FaultARPFlush, FaultNeighWrong, FaultExec:
		n := c.nodeRef(p+".target", e.Target)
		if n != nil && e.Dev != "" && n.Interface(e.Dev) == nil {
			c.errorf(p+".dev", "node %s has no interface %q", n.Name, e.Dev)
		}
		if e.Fault == FaultNeighWrong {
			if !e.IP.IsValid() {
				c.errorf(p, "neigh.wrong needs ip:")
			}
			if (e.MAC == "") == (e.MACOf == "") {
				c.errorf(p, "neigh.wrong needs exactly one of mac and mac_of")
			}
			if e.MACOf != "" {
				c.ifaceRef(p+".mac_of", e.MACOf)
			}
		}
		if e.Fault == FaultExec && (len(e.Cmd) == 0) == (e.Shell == "") {
			c.errorf(p, "exec needs exactly one of cmd and shell")
		}
	case FaultServiceSet:
		c.serviceSet(p, e)
	}
}

// eventRef checks "name" or "name.end" (the latter only for events with for:).
func (c *checker) eventRef(path, ref string) {
	name, end := strings.CutSuffix(ref, ".end")
	e, ok := c.events[name]
	if !ok {
		names := make([]string, 0, len(c.events))
		for k := range c.events {
			names = append(names, k)
		}
		slices.Sort(names)
		c.errorf(path, "unknown event %q%s", ref, suggest(name, names))
		return
	}
	if end && e.For == 0 {
		c.errorf(path, "event %s has no for:, so there is no %s", name, ref)
	}
}

func (c *checker) trigger(p string, t *Trigger, self string) {
	kinds := 0
	if t.Event != "" {
		kinds++
		if strings.TrimSuffix(t.Event, ".end") == self {
			c.errorf(p+".event", "an event cannot wait for itself")
		} else {
			c.eventRef(p+".event", t.Event)
		}
	}
	if t.Log != nil {
		kinds++
		c.processRef(p+".log.process", t.Log.Process, "")
	}
	if t.State != nil {
		kinds++
		c.state(p+".state", t.State)
	}
	if kinds != 1 {
		c.errorf(p, "give exactly one of event, log and state")
	}
	if t.Since != "" {
		switch {
		case t.Event != "":
			c.errorf(p+".since", "since is for log and state triggers; an event trigger already waits for its event")
		case strings.TrimSuffix(t.Since, ".end") == self:
			c.errorf(p+".since", "an event cannot wait for itself")
		default:
			c.eventRef(p+".since", t.Since)
		}
	}
}

func (c *checker) state(p string, st *StateCheck) {
	kinds := 0
	if a := st.Addr; a != nil {
		kinds++
		if n := c.nodeRef(p+".addr.node", a.Node); n != nil && a.Dev != "" && a.Dev != "lo" && n.Interface(a.Dev) == nil {
			c.errorf(p+".addr.dev", "node %s has no interface %q", n.Name, a.Dev)
		}
		if a.Has.IsValid() == a.Lacks.IsValid() {
			c.errorf(p+".addr", "give exactly one of has and lacks")
		}
	}
	if nb := st.Neighbor; nb != nil {
		kinds++
		c.nodeRef(p+".neighbor.node", nb.Node)
		n := 0
		if nb.MAC != "" {
			n++
		}
		if len(nb.MACOf) > 0 {
			n++
		}
		if nb.Absent {
			n++
		}
		if n != 1 {
			c.errorf(p+".neighbor", "give exactly one of mac, mac_of and absent")
		}
		for k, ref := range nb.MACOf {
			c.ifaceRef(indexPath(p+".neighbor.mac_of", k), ref)
		}
	}
	if r := st.Route; r != nil {
		kinds++
		if n := c.nodeRef(p+".route.node", r.Node); n != nil && r.Dev != "" && n.Interface(r.Dev) == nil {
			c.errorf(p+".route.dev", "node %s has no interface %q", n.Name, r.Dev)
		}
		if r.Absent && (r.Via.IsValid() || r.Dev != "") {
			c.errorf(p+".route", "absent takes no via or dev")
		}
	}
	if cc := st.Command; cc != nil {
		kinds++
		c.nodeRef(p+".command.node", cc.Node)
		if (len(cc.Cmd) == 0) == (cc.Shell == "") {
			c.errorf(p+".command", "give exactly one of cmd and shell")
		}
	}
	if kinds != 1 {
		c.errorf(p, "give exactly one of addr, neighbor, route and command")
	}
}

// metricUnits says what each metric measures and which traffic has it.
func metricUnit(metric string, kind TrafficKind) (Unit, bool) {
	switch metric {
	case "requests", "errors":
		return UnitNumber, true
	case "error_ratio":
		return UnitPercent, true
	case "max_gap", "latency_p50", "latency_p99", "latency_max":
		return UnitDuration, true
	case "share", "max_share":
		return UnitPercent, kind.NamesBackend()
	case "backends":
		return UnitNumber, kind.NamesBackend()
	case "broken_streams":
		return UnitNumber, kind == TrafficTCPStream
	case "bytes":
		return UnitNumber, kind == TrafficTCPStream || kind == TrafficFTP
	}
	return "", false
}

func (e *Expectation) comparisons() []*Quantity {
	var out []*Quantity
	for _, q := range []*Quantity{e.Eq, e.Ne, e.Lt, e.Le, e.Gt, e.Ge} {
		if q != nil {
			out = append(out, q)
		}
	}
	return out
}

func (c *checker) expectation(i int) {
	e := &c.s.Expect[i]
	p := indexPath("expect", i)
	seen := map[string]bool{}
	for j := range i {
		seen[c.s.Expect[j].Name] = true
	}
	if seen[e.Name] {
		c.errorf(p+".name", "expectation %q defined twice", e.Name)
	}
	if len(e.During) == 2 {
		if e.During[0] >= e.During[1] {
			c.errorf(p+".during", "window [%s, %s] is empty", e.During[0], e.During[1])
		}
		if d := c.s.Duration; d != 0 && e.During[1] > d {
			c.errorf(p+".during", "window ends at %s, after the run (duration %s)", e.During[1], d)
		}
		if e.After != "" {
			c.errorf(p, "give during or after, not both")
		}
	}
	if e.After != "" {
		c.eventRef(p+".after", e.After)
	}
	if e.Within != 0 && e.After == "" {
		c.errorf(p+".within", "within needs after:")
	}
	kinds := 0
	cmps := e.comparisons()
	if e.Metric != "" {
		kinds++
		c.metric(p, e, cmps)
	}
	if sh := e.Shares; sh != nil {
		kinds++
		if t := c.trafficRef(p+".shares.traffic", sh.Traffic); t != nil && !t.Kind.NamesBackend() {
			c.errorf(p+".shares.traffic", "shares need http, udp, ftp or dns traffic; %s is %s", t.Name, t.Kind)
		}
		if (len(sh.Weights) > 0) == sh.Even {
			c.errorf(p+".shares", "give weights or even: true")
		}
		for _, w := range sh.Weights {
			wp := keyPath(p+".shares.weights", w.Backend)
			if !slices.Contains(c.identities, w.Backend) {
				c.keyErrorf(wp, "no http-echo or udp-echo service answers as %q%s", w.Backend, suggest(w.Backend, c.identities))
			}
			if w.Weight < 0 {
				c.errorf(wp, "negative weight")
			}
		}
	}
	if e.Backends != nil {
		kinds++
		c.backendsCheck(p+".backends", e.Backends)
	}
	if e.State != nil {
		kinds++
		c.state(p+".state", e.State)
	}
	if pc := e.Pcap; pc != nil {
		kinds++
		if (pc.Segment == "") == (pc.Interface == "") {
			c.errorf(p+".pcap", "give exactly one of segment and interface")
		}
		if pc.Segment != "" && c.s.Segment(pc.Segment) == nil {
			c.errorf(p+".pcap.segment", "unknown segment %q", pc.Segment)
		}
		if pc.Interface != "" {
			c.ifaceRef(p+".pcap.interface", pc.Interface)
		}
		if len(cmps) != 1 {
			c.errorf(p, "a pcap count takes exactly one of eq, ne, lt, le, gt, ge")
		}
		for _, q := range cmps {
			if q.Unit != UnitNumber {
				c.errorf(p, "a packet count compares with a number, not %s", q.Text)
			}
		}
	}
	if pc := e.Process; pc != nil {
		kinds++
		c.processRef(p+".process.target", pc.Target, "")
		if pc.ExitCode != nil && pc.State != "exited" {
			c.errorf(p+".process.exit_code", "exit_code goes with state: exited")
		}
	}
	if v := e.VIP; v != nil {
		kinds++
		c.vipCheck(p, e, cmps)
	}
	if v := e.VRRP; v != nil {
		kinds++
		c.vrrpCheck(p, e)
	}
	if kinds != 1 {
		c.errorf(p, "give exactly one of metric, shares, backends, state, pcap, process, vip and vrrp")
	}
	if e.Metric == "" && e.Pcap == nil && (e.VIP == nil || !e.VIP.GARPs) && len(cmps) > 0 {
		c.errorf(p, "comparisons (eq, lt, ...) go with metric, pcap or vip.garps")
	}
}

// vipCheck checks a vip: expectation: the address lies on one segment,
// exactly one question is asked, the nodes it names exist.
func (c *checker) vipCheck(p string, e *Expectation, cmps []*Quantity) {
	v := e.VIP
	vp := p + ".vip"
	if v.Segment != "" {
		sg := c.s.Segment(v.Segment)
		switch {
		case sg == nil:
			c.errorf(vp+".segment", "unknown segment %q", v.Segment)
		case v.Address.IsValid() && !slices.ContainsFunc(sg.Subnets, func(pf netip.Prefix) bool { return pf.Contains(v.Address) }):
			c.errorf(vp+".address", "%s is not in a subnet of segment %s", v.Address, v.Segment)
		}
	} else if v.Address.IsValid() {
		if _, err := c.s.VIPSegment(v); err != nil {
			c.errorf(vp+".address", "%v", err)
		}
	}
	if v.Address.IsValid() && !v.Address.Is4() {
		c.errorf(vp+".address", "ARP probes are IPv4; %s is not", v.Address)
	}
	asked := 0
	if v.Holders != nil {
		asked++
		if *v.Holders < 0 {
			c.errorf(vp+".holders", "a count of holders cannot be negative")
		}
	}
	if v.Holder != "" {
		asked++
		c.nodeRef(vp+".holder", v.Holder)
	}
	if v.GARPs {
		asked++
		if len(cmps) != 1 {
			c.errorf(p, "garps takes exactly one of eq, ne, lt, le, gt, ge")
		}
		for _, q := range cmps {
			if q.Unit != UnitNumber {
				c.errorf(p, "a count of gratuitous ARPs compares with a number, not %s", q.Text)
			}
		}
	}
	if v.From != "" {
		if !v.GARPs {
			c.errorf(vp+".from", "from goes with garps")
		}
		c.nodeRef(vp+".from", v.From)
	}
	if asked != 1 {
		c.errorf(vp, "give exactly one of holders, holder and garps")
	}
	if (v.Holders != nil || v.Holder != "") && len(e.During) != 2 && (e.After == "" || e.Within == 0) {
		c.errorf(p, "a vip holder check needs a window: during: [from, to], or after: with within:")
	}
}

// vrrpCheck checks a vrrp: expectation.
func (c *checker) vrrpCheck(p string, e *Expectation) {
	v := e.VRRP
	vp := p + ".vrrp"
	if v.Segment != "" && c.s.Segment(v.Segment) == nil {
		c.errorf(vp+".segment", "unknown segment %q", v.Segment)
	}
	if v.VRID < 1 || v.VRID > 255 {
		c.errorf(vp+".vrid", "virtual_router_id %d is not 1..255", v.VRID)
	}
	asked := 0
	for _, given := range []bool{v.Masters != nil, v.Master != "", len(v.Routers) > 0} {
		if given {
			asked++
		}
	}
	if asked != 1 {
		c.errorf(vp, "give exactly one of masters, master and routers")
	}
	for k, r := range v.Routers {
		c.nodeRef(indexPath(vp+".routers", k), r)
	}
	if v.Masters != nil && *v.Masters < 0 {
		c.errorf(vp+".masters", "a count of masters cannot be negative")
	}
	if v.Master != "" {
		c.nodeRef(vp+".master", v.Master)
	}
	if len(e.During) != 2 && (e.After == "" || e.Within == 0) {
		c.errorf(p, "a vrrp check needs a window: during: [from, to], or after: with within:")
	}
}

func (c *checker) trafficRef(path, name string) *Traffic {
	t, ok := c.traffic[name]
	if !ok {
		names := make([]string, 0, len(c.traffic))
		for k := range c.traffic {
			names = append(names, k)
		}
		c.errorf(path, "unknown traffic %q%s", name, suggest(name, names))
	}
	return t
}

func (c *checker) metric(p string, e *Expectation, cmps []*Quantity) {
	m := metricRE.FindStringSubmatch(e.Metric)
	if m == nil {
		c.errorf(p+".metric", "metric %q is not traffic.metric or traffic.metric[backend]", e.Metric)
		return
	}
	t := c.trafficRef(p+".metric", m[1])
	if t == nil {
		return
	}
	unit, ok := metricUnit(m[2], t.Kind)
	if !ok {
		all := []string{"requests", "errors", "error_ratio", "max_gap", "latency_p50", "latency_p99", "latency_max", "share", "backends", "max_share", "broken_streams", "bytes"}
		if slices.Contains(all, m[2]) {
			c.errorf(p+".metric", "%s traffic has no metric %q (it is for %s traffic)", t.Kind, m[2], metricKinds(m[2]))
		} else {
			c.errorf(p+".metric", "%s traffic has no metric %q%s", t.Kind, m[2], suggest(m[2], all))
		}
		return
	}
	if m[3] != "" && m[2] != "share" && m[2] != "requests" && m[2] != "errors" {
		c.errorf(p+".metric", "metric %s has no per-backend form", m[2])
	}
	if m[2] == "share" && m[3] == "" {
		c.errorf(p+".metric", "share needs a backend: %s.share[name]", m[1])
	}
	if m[3] != "" && !slices.Contains(c.identities, m[3]) {
		c.errorf(p+".metric", "no http-echo or udp-echo service answers as %q%s", m[3], suggest(m[3], c.identities))
	}
	if len(cmps) != 1 {
		c.errorf(p, "a metric takes exactly one of eq, ne, lt, le, gt, ge")
		return
	}
	if cmps[0].Unit != unit && !(unit == UnitPercent && cmps[0].Unit == UnitNumber && cmps[0].Value == 0) &&
		!(unit == UnitDuration && cmps[0].Unit == UnitNumber && cmps[0].Value == 0) {
		c.errorf(p, "%s is a %s; compare it with one (got %s)", m[2], unit, cmps[0].Text)
	}
}

func (c *checker) capture() {
	cp := c.s.Capture
	if cp != nil {
		for k, sg := range cp.Segments {
			if c.s.Segment(sg) == nil {
				c.errorf(indexPath("capture.segments", k), "unknown segment %q", sg)
			}
		}
		for k, ref := range cp.Interfaces {
			c.ifaceRef(indexPath("capture.interfaces", k), ref)
		}
		if cp.Snaplen < 0 {
			c.errorf("capture.snaplen", "negative snaplen")
		}
	}
	if r := c.s.Report; r != nil && r.Walk != nil {
		c.trafficRef("report.walk.traffic", r.Walk.Traffic)
		if r.Walk.Request < 0 {
			c.errorf("report.walk.request", "requests count from 1")
		}
	}
}

// frr checks a node's frr: the file is there and names only interfaces
// the node has (ospfd would silently wait for an interface that never
// comes), with the file's line in the message.
func (c *checker) frr(n *Node, p string) {
	if !c.fileExists(p+".ospfd", n.FRR.OSPFD) {
		return
	}
	b, err := os.ReadFile(c.s.Abs(n.FRR.OSPFD))
	if err != nil {
		return
	}
	have := map[string]bool{"lo": true}
	for _, ifc := range n.Interfaces {
		have[ifc.Name] = true
	}
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "interface" && !have[f[1]] {
			c.errorf(p+".ospfd", "%s:%d: interface %s: node %s has no such interface (it has lo, %s)", n.FRR.OSPFD, i+1, f[1], n.Name, strings.Join(ifaceNames(n), ", "))
		}
	}
}
