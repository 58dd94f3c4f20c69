package spec

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"lvslab/config"
	"lvslab/config/keepalived"
)

// ProcKeepalived is the process a director with keepalived: gets beside
// lvsd: lvskeepalived -f CONF, programming lvsd over its control socket.
const ProcKeepalived = "lvskeepalived"

// ProcZebra and ProcOSPFD are the processes of a node's frr:.
const (
	ProcZebra = "zebra"
	ProcOSPFD = "ospfd"
)

// ProcNodeKeepalived is the process of a node's keepalived: (either
// implementation).
const ProcNodeKeepalived = "keepalived"

// RunsNodeKeepalived reports whether the node gets the process keepalived
// from its keepalived: field.
func (s *Spec) RunsNodeKeepalived(n *Node) bool {
	if n.Keepalived == nil || n.Keepalived.Config == "" {
		return false
	}
	return n.Keepalived.Impl() == ImplKeepalived || s.RunsLVSD(n)
}

// keepalivedFile is the keepalived.conf that lvskeepalived reads on the
// node (director.keepalived or keepalived: with implementation
// lvskeepalived), "" for none: its virtual servers are the node's rules.
func (s *Spec) keepalivedFile(n *Node) string {
	if n.Director != nil && n.Director.Keepalived != "" {
		return n.Director.Keepalived
	}
	if k := n.Keepalived; k != nil && k.Impl() == ImplLVSKeepalived {
		return k.Config
	}
	return ""
}

// RunsKeepalived reports whether the node gets an lvskeepalived process.
func (s *Spec) RunsKeepalived(n *Node) bool {
	return n.Director != nil && n.Director.Keepalived != "" && s.RunsLVSD(n)
}

// LoadKeepalived reads the director's keepalived.conf with the parser
// lvskeepalived runs (config/keepalived), so validate and the daemon agree
// on what the file says.
func (s *Spec) LoadKeepalived(d *Director) *keepalived.Config {
	return keepalived.Load(s.Abs(d.Keepalived))
}

// loadNodeKeepalived reads a keepalived: file with the parser, its
// vrrp_instance interfaces checked against the node's own.
func (s *Spec) loadNodeKeepalived(n *Node) *keepalived.Config {
	return keepalived.LoadOptions(keepalived.OSFS{}, s.Abs(n.Keepalived.Config), keepalived.Options{
		InterfaceExists: func(name string) bool { return name == "lo" || n.Interface(name) != nil },
	})
}

// keepalivedCommands is the IPVS table a keepalived.conf asks for, as the
// -A/-a commands the ipvsadm path would give: real-server defaults (VIPs,
// interface, ip_forward for NAT) derive from them as from rules:.
func keepalivedCommands(kc *keepalived.Config) []config.Command {
	var out []config.Command
	for _, vs := range kc.Table().Services {
		out = append(out, config.Command{Op: config.OpAddService, Service: vs.Service, HasService: true})
		for _, d := range vs.Dests {
			out = append(out, config.Command{Op: config.OpAddDest, Service: vs.Service, HasService: true, Dest: d})
		}
	}
	return out
}

// keepalived checks the director's keepalived.conf with lvskeepalived's
// parser: what keepalived aborts on or refuses (fatal and error
// severities) is a validation error naming the file and line; warnings are
// lvskeepalived's to log (lvskeepalived -t lists them).
func (c *checker) keepalived(n *Node, p string) {
	d := n.Director
	kc := c.s.LoadKeepalived(d)
	for _, dg := range kc.Diags {
		if dg.Severity != keepalived.SevError && dg.Severity != keepalived.SevFatal {
			continue
		}
		msg := fmt.Sprintf("%s: %s: %s", c.relPos(dg.Pos), dg.Severity, dg.Msg)
		if dg.Hint != "" {
			msg += " (hint: " + dg.Hint + ")"
		}
		c.errorf(p+".keepalived", "%s", msg)
	}
	if kc.Fatal() {
		return
	}
	c.kaFrom[n.Name] = len(c.rules[n.Name])
	c.rules[n.Name] = append(c.rules[n.Name], keepalivedCommands(kc)...)
	for i, a := range d.KeepalivedArgs {
		switch a {
		case "-f", "--use-file", "-t", "--config-test", "-T", "--genhash":
			c.errorf(indexPath(p+".keepalived_args", i), "%s is the lab's to give (keepalived: names the file; -t/-T do not run the daemon)", a)
		}
	}
}

// nodeKeepalived checks a node's keepalived: the implementation can run
// there, the file loads (what keepalived aborts on or refuses is an error
// naming FILE:LINE, as for director.keepalived), every vrrp_instance names
// an interface of the node, and Debian's keepalived is not handed virtual
// servers it would silently leave out (it runs VRRP only here).
func (c *checker) nodeKeepalived(n *Node, p string) {
	k := n.Keepalived
	p += ".keepalived"
	if k.Config == "" {
		return // the decoder said config is required
	}
	switch k.Impl() {
	case ImplLVSKeepalived:
		if !c.s.RunsLVSD(n) {
			c.errorf(p+".implementation", "lvskeepalived programs the node's lvsd: node %s runs none (role director, or director: {run: true})", n.Name)
		}
		if n.Director != nil && n.Director.Keepalived != "" {
			c.errorf(p, "node %s already runs lvskeepalived from director.keepalived: give the file in one place", n.Name)
		}
	case ImplKeepalived:
	default:
		return // the decoder named the allowed values
	}
	if !c.fileExists(p+".config", k.Config) {
		return
	}
	kc := c.s.loadNodeKeepalived(n)
	for _, dg := range kc.Diags {
		if dg.Severity != keepalived.SevError && dg.Severity != keepalived.SevFatal {
			continue
		}
		msg := fmt.Sprintf("%s: %s: %s", c.relPos(dg.Pos), dg.Severity, dg.Msg)
		if strings.Contains(dg.Msg, "for vrrp_instance") && strings.Contains(dg.Msg, "doesn't exist") {
			msg += fmt.Sprintf(" (node %s has %s)", n.Name, strings.Join(ifaceNames(n), ", "))
		} else if dg.Hint != "" {
			msg += " (hint: " + dg.Hint + ")"
		}
		c.errorf(p+".config", "%s", msg)
	}
	if kc.Fatal() {
		return
	}
	// The copy lives in another directory: a relative include would
	// resolve elsewhere, and an absolute one would not be edited with it.
	if k.Editable && len(kc.Files) > 1 {
		inc := kc.Files[1]
		if r, err := filepath.Rel(filepath.Dir(c.s.Abs(k.Config)), inc); err == nil {
			inc = r
		}
		c.errorf(p+".editable", "%s includes %s: an editable file is copied alone into the node directory, so it may include nothing", k.Config, inc)
	}
	if k.Impl() == ImplKeepalived {
		if len(kc.VRRP.Instances) == 0 {
			c.errorf(p+".config", "%s has no vrrp_instance: Debian's keepalived runs VRRP only in the lab, so it would have nothing to do", k.Config)
		}
		for _, vs := range kc.VirtualServers {
			c.errorf(p+".config", "%s: Debian's keepalived runs VRRP only in the lab (no kernel ip_vs): this virtual_server would be left out; use implementation: lvskeepalived on a director", c.relPos(vs.Pos))
			break
		}
	} else {
		c.kaFrom[n.Name] = len(c.rules[n.Name])
		c.rules[n.Name] = append(c.rules[n.Name], keepalivedCommands(kc)...)
	}
	for i, a := range k.Args {
		switch a {
		case "-f", "--use-file", "-t", "--config-test", "-T", "--genhash", "-p", "--pid", "-r", "--vrrp_pid", "-c", "--checkers_pid", "-b", "--bfd_pid":
			c.errorf(indexPath(p+".args", i), "%s is the lab's to give (config: names the file, the pid files are in the node directory; -t/-T do not run the daemon)", a)
		}
	}
}

func ifaceNames(n *Node) []string {
	out := make([]string, 0, len(n.Interfaces))
	for _, ifc := range n.Interfaces {
		out = append(out, ifc.Name)
	}
	return out
}

// serviceControls checks status, delay and body against the kind.
func (c *checker) serviceControls(p string, sv Service) {
	http := sv.Kind == ServiceHTTPEcho || sv.Kind == ServiceHTTPSEcho
	if sv.Status != 0 {
		switch {
		case http && (sv.Status < 100 || sv.Status > 999):
			c.errorf(p+".status", "HTTP status %d is not 100..999", sv.Status)
		case sv.Kind == ServiceSMTPBanner && (sv.Status < 200 || sv.Status > 599):
			c.errorf(p+".status", "SMTP greeting code %d is not 200..599", sv.Status)
		case !http && sv.Kind != ServiceSMTPBanner:
			c.errorf(p+".status", "%s has no status; only http-echo, https-echo and smtp-banner", sv.Kind)
		}
	}
	if sv.Delay != 0 && !http && sv.Kind != ServiceSMTPBanner {
		c.errorf(p+".delay", "%s has no delay; only http-echo, https-echo and smtp-banner", sv.Kind)
	}
	if sv.Delay < 0 || sv.Delay.D() > time.Hour {
		c.errorf(p+".delay", "delay %s is not within 0..1h", sv.Delay)
	}
	if sv.Body != nil && !http {
		c.errorf(p+".body", "%s has no body; only http-echo and https-echo", sv.Kind)
	}
	if sv.Body != nil && len(*sv.Body) > 1<<20 {
		c.errorf(p+".body", "body of %d bytes is over 1 MiB", len(*sv.Body))
	}
}

// serviceSet checks a service.set event: its target is a built-in service
// that has the controls it sets.
func (c *checker) serviceSet(p string, e *Event) {
	node, proc, ok := c.processRef(p+".target", e.Target, "")
	if !ok {
		return
	}
	n := c.s.Node(node)
	var sv *Service
	for i := range n.Services {
		if n.Services[i].ServiceName() == proc {
			sv = &n.Services[i]
		}
	}
	if sv == nil {
		c.errorf(p+".target", "%s is not a built-in service (service.set changes http-echo, https-echo, smtp-banner)", e.Target)
		return
	}
	if e.Status == 0 && e.Delay == 0 && e.Body == nil {
		c.errorf(p, "service.set needs status, delay or body")
	}
	set := *sv
	set.Status, set.Delay, set.Body = e.Status, e.Delay, e.Body
	c.serviceControls(p, set)
}

// ServiceControlFile is where a built-in service reads its controls
// (status, delay, body) on every answer; service.set rewrites it.
func ServiceControlFile(nodeDir, service string) string {
	return filepath.Join(nodeDir, service+".control")
}

// relPos is a keepalived.conf position relative to the scenario's
// directory when the file is below it (messages stay short).
func (c *checker) relPos(pos keepalived.Pos) string {
	if r, err := filepath.Rel(c.s.Dir(), pos.File); err == nil && !strings.HasPrefix(r, "..") {
		pos.File = r
	}
	return pos.String()
}
