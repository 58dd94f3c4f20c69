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
	rel := func(pos keepalived.Pos) string {
		if r, err := filepath.Rel(c.s.Dir(), pos.File); err == nil && !strings.HasPrefix(r, "..") {
			pos.File = r
		}
		return pos.String()
	}
	for _, dg := range kc.Diags {
		if dg.Severity != keepalived.SevError && dg.Severity != keepalived.SevFatal {
			continue
		}
		msg := fmt.Sprintf("%s: %s: %s", rel(dg.Pos), dg.Severity, dg.Msg)
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
