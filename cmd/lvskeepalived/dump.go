package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lvslab/config/keepalived"
	"lvslab/vrrp"
)

// dataFile is where SIGUSR1 writes the VRRP data, as keepalived 2.2.7 does
// (/tmp/keepalived.data; $TMPDIR moves it, for tests and for several
// daemons on one host).
func dataFile() string { return filepath.Join(os.TempDir(), "keepalived.data") }

// writeData is keepalived's SIGUSR1 dump (vrrp_print_data): readable, with
// keepalived's headings and line texts where lvskeepalived has the same
// facts, plus its own lines about who answers for each VIP.
//
// The dump is written whole to a temporary file beside path and renamed
// over it, so a reader polling for the file never reads half a dump (a
// test did, on a loaded machine, between two of the dump's writes).
func (v *vrrpSide) writeData(cfg *keepalived.Config, path string) error {
	var b bytes.Buffer
	v.dump(cfg, &b)
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(b.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

func secs(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%d", d/time.Second)
	}
	return fmt.Sprintf("%g", d.Seconds())
}

func (v *vrrpSide) dump(cfg *keepalived.Config, w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("------< Global definitions >------")
	p(" Network namespace = (default)")
	p(" Router ID = %s", cfg.Global.RouterID)
	p(" VRRP IPv4 mcast group = %s", vrrp.MulticastGroup)
	p(" Gratuitous ARP delay = %s", secs(cfg.Global.VRRPGarpMasterDelay))
	p(" Gratuitous ARP repeat = %d", cfg.Global.VRRPGarpMasterRepeat)
	p(" VRRP default protocol version = %d", cfg.Global.VRRPVersion)
	p(" VRRP strict mode = %v", cfg.Global.VRRPStrict)
	p(" Script security %s", map[bool]string{true: "enabled", false: "disabled"}[cfg.Global.EnableScriptSecurity])
	p(" lvsd control socket = %s", ctlName(v.owner.socket))

	p("------< VRRP Topology >------")
	groupOf := map[string]string{}
	for _, g := range v.setup.Groups {
		for _, m := range g.Members {
			groupOf[m] = g.Name
		}
	}
	states := map[string]vrrp.State{}
	for _, c0 := range v.setup.Instances {
		var in *vrrp.Instance
		if v.router != nil {
			in = v.router.Instance(c0.Name)
		}
		c, _ := normalized(c0)
		state, prio := vrrp.Init, c.Priority
		if in != nil {
			c, state, prio = *in.Config(), in.State(), in.Priority()
		}
		states[c.Name] = state
		p(" VRRP Instance = %s", c.Name)
		p("   VRRP Version = %d", c.Version)
		if g := groupOf[c.Name]; g != "" {
			p("   Sync group = %s", g)
		}
		p("   State = %s", state)
		v.mu.Lock()
		since := v.since[c.Name]
		v.mu.Unlock()
		if !since.IsZero() {
			p("   Last transition = %d.%06d (%s)", since.Unix(), since.Nanosecond()/1000, since.Format("Mon Jan _2 15:04:05.000000 2006"))
		}
		skew := time.Duration(256-int(prio)) * c.AdvInt / 256
		p("   Master down timer = %d usecs", (time.Duration(c.DownTimerAdverts)*c.AdvInt + skew).Microseconds())
		p("   Interface = %s", c.Interface)
		if c.McastSrcIP.IsValid() {
			p("   Using src_ip = %s", c.McastSrcIP)
		}
		if len(c.UnicastPeer) > 0 {
			p("   Unicast Peer = %d", len(c.UnicastPeer))
			for _, a := range c.UnicastPeer {
				p("     %s", a)
			}
		} else {
			p("   Multicast address %s", c.McastDstIP)
		}
		garpDelay := c.GarpMasterDelay
		if garpDelay < 0 {
			garpDelay = 0
		}
		p("   Gratuitous ARP delay = %s", secs(garpDelay))
		p("   Gratuitous ARP repeat = %d", c.GarpMasterRepeat)
		p("   Gratuitous ARP refresh = %s", secs(c.GarpMasterRefresh))
		p("   Gratuitous ARP refresh repeat = %d", c.GarpMasterRefreshRepeat)
		p("   Down timer adverts = %d", c.DownTimerAdverts)
		p("   Virtual Router ID = %d", c.VRID)
		p("   Priority = %d", c.Priority)
		p("   Effective priority = %d", prio)
		if c.AdvInt%time.Second == 0 {
			p("   Advert interval = %d sec", c.AdvInt/time.Second)
		} else {
			p("   Advert interval = %d milli-sec", c.AdvInt.Milliseconds())
		}
		p("   Preempt = %s", map[bool]string{true: "disabled", false: "enabled"}[c.NoPreempt])
		if c.PreemptDelay > 0 {
			p("   Preempt delay = %s secs", secs(c.PreemptDelay))
		}
		switch c.AuthType {
		case vrrp.AuthPass:
			p("   Authentication type = SIMPLE_PASSWORD")
			p("   Password = %s", c.AuthPass)
		case vrrp.AuthAH:
			p("   Authentication type = IPSEC_AH")
			p("   Password = %s", c.AuthPass)
		default:
			p("   Authentication type = none")
		}
		if c.UseVMAC {
			p("   Use VMAC, i/f %s, xmit %s i/f", c.VMACName, map[bool]string{true: "base", false: "vmac"}[c.VMACXmitBase])
		}
		set := "unset"
		if state == vrrp.Master {
			set = "set"
		}
		vips := func(title string, list []vrrp.VIP) {
			if len(list) == 0 {
				return
			}
			p("   %s (%d):", title, len(list))
			for _, a := range list {
				who := "kernel address"
				if v.setup.Served[a.Prefix.Addr()] {
					who = "lvsd owns"
				}
				dev := a.Dev
				if dev == "" {
					dev = c.Interface
				}
				scope := a.Scope
				if scope == "" {
					scope = "global"
				}
				p("     %s dev %s scope %s %s (%s)", a.Prefix, dev, scope, set, who)
			}
		}
		vips("Virtual IP", c.VirtualIPAddress)
		vips("Virtual IP Excluded", c.VirtualIPAddressExcluded)
		if len(c.VirtualRoutes) > 0 {
			p("   Virtual Routes (%d):", len(c.VirtualRoutes))
			for _, r := range c.VirtualRoutes {
				p("     %s%s%s", r.Dst, ifSet(" via ", r.Via.String(), r.Via.IsValid()), ifSet(" dev ", r.Dev, r.Dev != ""))
			}
		}
		if len(c.TrackInterface) > 0 {
			p("   Tracked interfaces :")
			for _, t := range c.TrackInterface {
				p("     %s weight %d%s", t.Name, t.Weight, ifSet("", " reverse", t.Reverse))
			}
		}
		if len(c.TrackScript) > 0 {
			p("   Tracked scripts :")
			for _, t := range c.TrackScript {
				p("     %s weight %d%s", t.Name, t.Weight, ifSet("", " reverse", t.Reverse))
			}
		}
		for _, n := range []struct{ what, cmd string }{{"Master", c.NotifyMaster}, {"Backup", c.NotifyBackup},
			{"Fault", c.NotifyFault}, {"Stop", c.NotifyStop}, {"Generic", c.Notify}} {
			if n.cmd != "" {
				p("   %s state transition script = %s", n.what, n.cmd)
			}
		}
		if in != nil {
			p("   Adverts sent = %d", in.Sent())
			p("   Adverts received = %d", in.Received())
		}
	}
	if len(v.setup.Groups) > 0 {
		p("------< VRRP Sync groups >------")
		for _, g := range v.setup.Groups {
			st := vrrp.Init
			if len(g.Members) > 0 {
				st = states[g.Members[0]]
			}
			p(" VRRP Sync Group = %s, %s", g.Name, st)
			p("   VRRP member instances :")
			for _, m := range g.Members {
				p("     %s", m)
			}
		}
	}
	var scripts []vrrp.TrackScript
	seen := map[string]bool{}
	for _, c := range v.setup.Instances {
		for _, t := range c.TrackScript {
			if !seen[t.Name] {
				seen[t.Name] = true
				scripts = append(scripts, t)
			}
		}
	}
	if len(scripts) > 0 {
		p("------< VRRP Scripts >------")
		for _, t := range scripts {
			p(" VRRP Script = %s", t.Name)
			p("   Command = '%s'", t.Script)
			p("   Interval = %s sec", secs(t.Interval))
			p("   Timeout = %s sec", secs(t.Timeout))
			p("   Weight = %d%s", t.Weight, ifSet("", " reverse", t.Reverse))
			p("   Rise = %d", max(t.Rise, 1))
			p("   Fall = %d", max(t.Fall, 1))
		}
	}
}

func ifSet(prefix, s string, ok bool) string {
	if !ok {
		return ""
	}
	return prefix + s
}

func ctlName(s string) string {
	if strings.Contains(s, "/") {
		return s
	}
	return "@" + strings.TrimPrefix(s, "@")
}
