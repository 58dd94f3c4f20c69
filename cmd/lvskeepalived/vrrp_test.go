package main

import (
	"fmt"
	"lvslab/internal/vrrptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"lvslab/config"
	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
	"lvslab/ipvs/ctl"
)

// Daemon-level VRRP: lvskeepalived beside lvsd (the VIP is a virtual
// server's, so lvsd answers for it) paired with Debian's keepalived 2.2.7
// (VRRP only, the VIP a kernel address), both ways, for each wire
// variant, beside a keepalived-only pair in the same run. Three namespaces
// on one bridge: directors a and b, and a client that captures the
// adverts and asks ARP for the VIP.

const (
	vaA     = "192.0.2.1"
	vaB     = "192.0.2.2"
	vaC     = "192.0.2.10"
	vaVIP   = "192.0.2.100"
	vaVIP24 = "192.0.2.100/24"
)

type vspec struct {
	version int
	auth    string
	advInt  string
}

func (s vspec) adv() time.Duration {
	d, _ := time.ParseDuration(s.advInt + "s")
	return d
}

// conf is the keepalived.conf of a director: the same vrrp_instance for
// both kinds; lvskeepalived's also has the virtual server lvsd serves.
func (s vspec) conf(prio int, ours bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n  router_id lvslab-%d\n  vrrp_version %d\n}\n", prio, s.version)
	fmt.Fprintf(&b, "vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority %d\n  advert_int %s\n", prio, s.advInt)
	if s.auth != "" {
		fmt.Fprintf(&b, "  authentication {\n    auth_type %s\n    auth_pass secret12\n  }\n", s.auth)
	}
	fmt.Fprintf(&b, "  virtual_ipaddress {\n    %s\n  }\n}\n", vaVIP24)
	if ours {
		fmt.Fprintf(&b, "virtual_server %s 80 {\n  lb_kind DR\n  protocol TCP\n  real_server 192.0.2.50 80 {\n    weight 1\n  }\n}\n", vaVIP)
	}
	return b.String()
}

// vrun is one pairing's sequence. The pairings run concurrently in
// goroutines of one test (t.Parallel would run two at a time on a
// two-core machine, and each is mostly waiting for protocol timers), so
// a fatal problem ends the pairing's goroutine, not the test.
type vrun struct {
	t    *testing.T
	name string
	// main: running on the test's goroutine (setup), where a fatal
	// problem is t.Fatal.
	main bool
}

func (r *vrun) fatalf(format string, args ...any) {
	r.t.Helper()
	if r.main {
		r.t.Fatalf(r.name+": "+format, args...)
	}
	r.t.Errorf(r.name+": "+format, args...)
	runtime.Goexit()
}

func (r *vrun) errorf(format string, args ...any) {
	r.t.Helper()
	r.t.Errorf(r.name+": "+format, args...)
}

func (r *vrun) logf(format string, args ...any) {
	r.t.Helper()
	r.t.Logf(r.name+": "+format, args...)
}

// vnode is one director: lvsd+lvskeepalived ("ours") or keepalived.
type vnode struct {
	t    *testing.T
	r    *vrun
	ns   *nstest.NS
	addr string
	name string
	ours bool
	spec vspec
	dir  string
	p    *nstest.Proc
	log  *nstest.SyncBuffer
	logs []string
	runs int
}

func (n *vnode) start(prio int) {
	n.t.Helper()
	if n.p != nil {
		n.r.fatalf("%s already running", n.name)
	}
	n.runs++
	conf := filepath.Join(n.dir, fmt.Sprintf("%s-%d.conf", n.name, n.runs))
	if err := os.WriteFile(conf, []byte(n.spec.conf(prio, n.ours)), 0o644); err != nil {
		n.r.fatalf("%v", err)
	}
	pid := func(k string) string { return filepath.Join(n.dir, fmt.Sprintf("%s-%d-%s.pid", n.name, n.runs, k)) }
	if n.ours {
		n.p, n.log = n.ns.Start("env", "TMPDIR="+n.dir, e2e.Bin(n.t, "lvskeepalived"), "-n", "-l", "-G", "-D", "-f", conf,
			"-p", pid("main"), "-r", pid("vrrp"), "-c", pid("chk"))
	} else {
		n.p, n.log = n.ns.Start("keepalived", "-P", "-n", "-l", "-D", "-G", "-R", "-f", conf,
			"-p", pid("main"), "-r", pid("vrrp"), "-c", pid("chk"), "-b", pid("bfd"))
	}
}

// ownership is lvsd's view of the VIP (ours only).
func (n *vnode) ownership() (ctl.VIPOwnership, bool) {
	var out ctl.VIPOwnership
	found := false
	_ = n.ns.Do(func() error {
		c, err := ctl.Dial("lvsd")
		if err != nil {
			return err
		}
		defer c.Close()
		r, err := c.Do(ctl.Request{Command: config.Command{Op: config.OpOwnership}})
		if err != nil {
			return err
		}
		for _, o := range r.Ownership {
			if o.VIP.String() == vaVIP {
				out, found = o, true
			}
		}
		return nil
	})
	return out, found
}

func (n *vnode) kernelVIP() bool {
	addrs, err := n.ns.Netlink().AddrList(n.ns.Link("eth0"), netlink.FAMILY_V4)
	if err != nil {
		n.r.fatalf("%v", err)
	}
	for _, a := range addrs {
		if a.IP.String() == vaVIP {
			return true
		}
	}
	return false
}

// hasVIP: keepalived holds the kernel address; ours has lvsd own it (and
// no kernel address: lvsd answers for it).
func (n *vnode) hasVIP() bool {
	if !n.ours {
		return n.kernelVIP()
	}
	o, ok := n.ownership()
	return ok && o.Owned && o.Served
}

func (n *vnode) master() bool {
	if n.p == nil {
		return false
	}
	l := n.log.String()
	return strings.LastIndex(l, "Entering MASTER STATE") > max(strings.LastIndex(l, "Entering BACKUP STATE"), strings.LastIndex(l, "Entering FAULT STATE"))
}

// termAsync sends SIGTERM and returns the wait for the exit.
func (n *vnode) termAsync() func() {
	n.t.Helper()
	p, log := n.p, n.log
	if err := p.Process.Signal(syscall.SIGTERM); err != nil {
		n.r.fatalf("%v", err)
	}
	return func() {
		_ = p.Wait()
		n.logs = append(n.logs, log.String())
		n.p = nil
	}
}

// kill is SIGKILL of the whole daemon (keepalived's parent and child);
// what it held stays, and is taken away by hand, as an operator would.
func (n *vnode) kill() {
	_ = syscall.Kill(-n.p.Process.Pid, syscall.SIGKILL)
	_ = n.p.Wait()
	n.logs = append(n.logs, n.log.String())
	n.p = nil
}

func (n *vnode) dropVIP() {
	if n.ours {
		_ = n.ns.Do(func() error {
			c, err := ctl.Dial("lvsd")
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Do(ctl.Request{Command: config.Command{Op: config.OpRelease},
				Own: &ctl.OwnRequest{Instance: "operator", VIPs: []netip.Addr{netip.MustParseAddr(vaVIP)}}})
			return err
		})
		return
	}
	if n.kernelVIP() {
		n.ns.Run("ip", "addr", "del", vaVIP24, "dev", "eth0")
	}
}

func (n *vnode) allLogs() string {
	s := strings.Join(n.logs, "\n")
	if n.p != nil {
		s += n.log.String()
	}
	return s
}

func (n *vnode) finish() {
	if n.p != nil {
		n.termAsync()()
	}
}

// vbed is the three namespaces on a bridge.
type vbed struct {
	a, b, c *nstest.NS
	dir     string
}

func newVBed(t *testing.T, name string) *vbed {
	t.Helper()
	nstest.Require(t)
	testenv.Tools(t, "keepalived", "tshark", "dumpcap")
	sw := nstest.New(t, name+"s")
	b := &vbed{a: nstest.New(t, name+"a"), b: nstest.New(t, name+"b"), c: nstest.New(t, name+"c"), dir: t.TempDir()}
	for i, x := range []struct {
		ns   *nstest.NS
		addr string
	}{{b.a, vaA}, {b.b, vaB}, {b.c, vaC}} {
		port := fmt.Sprintf("p%d", i)
		nstest.Veth(t, x.ns, "eth0", sw, port, 1500)
		x.ns.Addr("eth0", x.addr+"/24")
	}
	sw.Bridge("br0", "p0", "p1", "p2")
	return b
}

func (b *vbed) nodes(t *testing.T, r *vrun, hiKind, loKind string, s vspec) (hi, lo *vnode) {
	hi = &vnode{t: t, r: r, ns: b.a, addr: vaA, name: hiKind + "-a", ours: hiKind == "ours", spec: s, dir: b.dir}
	lo = &vnode{t: t, r: r, ns: b.b, addr: vaB, name: loKind + "-b", ours: loKind == "ours", spec: s, dir: b.dir}
	for _, n := range []*vnode{hi, lo} {
		if n.ours {
			e2e.StartLVSD(t, n.ns, "eth0", "--metrics", "127.0.0.1:9100")
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s: %s log:\n%s\n%s log:\n%s", r.name, hi.name, hi.allLogs(), lo.name, lo.allLogs())
		}
	})
	return hi, lo
}

func vwait(r *vrun, what string, limit time.Duration, cond func() bool) time.Duration {
	r.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			r.fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// arpAnswers asks ARP for the VIP from the client (scapy, every reply
// within the timeout) and returns the MACs that answered.
func (b *vbed) arpAnswers(r *vrun) []string {
	r.t.Helper()
	out := b.c.Run(testenv.Scapy, "-c", `
from scapy.all import Ether, ARP, srp, conf
conf.verb = 0
ans, _ = srp(Ether(dst="ff:ff:ff:ff:ff:ff")/ARP(pdst="`+vaVIP+`"), iface="eth0", timeout=1, multi=True)
for _, r in ans:
    print(r[ARP].hwsrc)
`)
	macs := strings.Fields(out)
	slices.Sort(macs)
	return slices.Compact(macs)
}

type vtakeover struct{ term, kill time.Duration }

// runVPair is the failover sequence with hi at the higher priority:
// election; SIGTERM hi (lo takes over); hi restarts and preempts; SIGKILL
// hi (lo takes over). Exactly one holds the VIP whenever both run; with
// arp set, the client sees exactly the master's MAC answer for the VIP.
func runVPair(r *vrun, b *vbed, hi, lo *vnode, arp bool, middle func()) vtakeover {
	r.t.Helper()
	adv := hi.spec.adv()
	limit := 3*adv + 5*time.Second
	lo.start(100)
	hi.start(150)
	vwait(r, hi.name+" master", limit, func() bool { return hi.master() && hi.hasVIP() })
	time.Sleep(2 * adv)
	if lo.master() || lo.hasVIP() || !hi.hasVIP() {
		r.fatalf("after election: %s master=%v vip=%v, %s vip=%v", lo.name, lo.master(), lo.hasVIP(), hi.name, hi.hasVIP())
	}
	if hi.ours && hi.kernelVIP() {
		r.errorf("%s: the VIP lvsd serves was added to the kernel too", hi.name)
	}
	if arp {
		if got, want := b.arpAnswers(r), hi.ns.MAC("eth0").String(); len(got) != 1 || got[0] != want {
			r.errorf("ARP for the VIP with %s master: answered by %v, want only %s", hi.name, got, want)
		}
	}
	if middle != nil {
		middle()
	}
	var tk vtakeover
	start := time.Now()
	wait := hi.termAsync()
	vwait(r, lo.name+" takes over after SIGTERM", 3*adv+3*time.Second, lo.hasVIP)
	tk.term = time.Since(start)
	wait()
	if hi.hasVIP() {
		r.errorf("%s kept the VIP after SIGTERM", hi.name)
	}
	hi.start(150)
	vwait(r, hi.name+" preempts", limit, func() bool { return hi.hasVIP() && !lo.hasVIP() })
	vwait(r, lo.name+" backup", 2*time.Second, func() bool { return !lo.master() })
	if arp {
		if got, want := b.arpAnswers(r), hi.ns.MAC("eth0").String(); len(got) != 1 || got[0] != want {
			r.errorf("ARP for the VIP after %s preempted: answered by %v, want only %s", hi.name, got, want)
		}
	}
	start = time.Now()
	hi.kill()
	vwait(r, lo.name+" takes over after SIGKILL", 3*adv+4*time.Second, lo.hasVIP)
	tk.kill = time.Since(start)
	if hi.ours {
		// lvsd outlives its lvskeepalived: it still has its tables.
		if out := e2e.LVSADM(r.t, hi.ns, "-S -n"); !strings.Contains(out, "-A -t "+vaVIP+":80") {
			r.errorf("lvsd lost its service when lvskeepalived was killed:\n%s", out)
		}
		if o, _ := hi.ownership(); !o.Owned {
			r.errorf("lvsd released the VIP by itself when lvskeepalived was killed")
		}
	}
	hi.dropVIP()
	if arp {
		if got, want := b.arpAnswers(r), lo.ns.MAC("eth0").String(); len(got) != 1 || got[0] != want {
			r.errorf("ARP for the VIP after SIGKILL of %s: answered by %v, want only %s", hi.name, got, want)
		}
	}
	return tk
}

func noBogus(r *vrun, who, log string) {
	r.t.Helper()
	other, replays := vrrptest.Rejections(log)
	for _, l := range other {
		r.errorf("%s logged a rejected advert: %s", who, l)
	}
	if len(replays) > vrrptest.MaxReplayDrops {
		r.errorf("%s logged %d AH replay drops, more than a preemption's worth (%d):\n%s", who, len(replays), vrrptest.MaxReplayDrops, strings.Join(replays, "\n"))
	}
}

// capture records VRRP and AH on the client's link.
func (b *vbed) capture(t *testing.T, r *vrun) (file string, stop func()) {
	file = filepath.Join(b.dir, "vrrp.pcapng")
	p, log := b.c.Start("dumpcap", "-q", "-i", "eth0", "-f", "ip proto 112 or ip proto 51", "-w", file)
	vwait(r, "dumpcap", 10*time.Second, func() bool { st, err := os.Stat(file); return err == nil && st.Size() > 0 })
	return file, func() {
		_ = p.Process.Signal(syscall.SIGINT)
		if err := p.Wait(); err != nil && !strings.Contains(err.Error(), "signal") {
			r.logf("dumpcap: %v %s", err, log.String())
		}
	}
}

// checkTshark: tshark decodes the adverts from src as VRRP, with no expert
// warning or error on any of them.
func checkTshark(r *vrun, file, src string) {
	r.t.Helper()
	all, err := e2e.Tshark(file, "-Y", "vrrp && ip.src == "+src, "-T", "fields", "-e", "frame.number")
	if err != nil {
		r.fatalf("tshark: %v", err)
	}
	n := len(strings.Fields(all))
	if n == 0 {
		r.fatalf("tshark decoded no VRRP advert from %s", src)
	}
	bad, err := e2e.Tshark(file, "-Y", "ip.src == "+src+" && (_ws.expert.severity >= 6291456 || _ws.malformed || vrrp.checksum.status == 0)", "-V")
	if err != nil {
		r.fatalf("tshark: %v", err)
	}
	if strings.TrimSpace(bad) != "" {
		r.errorf("tshark warns about adverts from %s:\n%s", src, bad)
	}
	good, _ := e2e.Tshark(file, "-Y", "vrrp && ip.src == "+src+" && vrrp.checksum.status == 1", "-T", "fields", "-e", "frame.number")
	r.logf("tshark: %d adverts from %s decoded as VRRP (%d with the checksum verified good), no expert warning", n, src, len(strings.Fields(good)))
}

func vbounds(adv time.Duration, prio int, v3 bool) (term, kill time.Duration) {
	skew := time.Duration(256-prio) * time.Second / 256
	if v3 {
		skew = time.Duration(256-prio) * adv / 256
	}
	return skew, 3*adv + skew
}

func vms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestVRRPDaemonInterop: per variant, lvskeepalived+lvsd over keepalived,
// keepalived over lvskeepalived+lvsd, and a keepalived-only pair, in
// parallel; the takeover times are logged side by side and judged against
// the protocol's bounds (with slack for a loaded machine unless
// LVSLAB_VRRP_STRICT=1: SIGKILL ≤ 3×advert_int + skew + 100 ms, SIGTERM ≤
// skew + 100 ms); v3 at advert_int 0.1 must take over in under a second.
func TestVRRPDaemonInterop(t *testing.T) {
	variants := []struct {
		name string
		spec vspec
	}{
		{"v2-pass", vspec{version: 2, auth: "PASS", advInt: "1"}},
		{"v2-ah", vspec{version: 2, auth: "AH", advInt: "1"}},
		{"v3", vspec{version: 3, advInt: "0.1"}},
	}
	nstest.Require(t)
	testenv.Tools(t, "keepalived", "tshark", "dumpcap")
	testenv.RequireScapy(t)
	var wg sync.WaitGroup
	for _, v := range variants {
		for _, pairing := range []struct{ hi, lo string }{{"ours", "keepalived"}, {"keepalived", "ours"}, {"keepalived", "keepalived"}} {
			r := &vrun{t: t, name: v.name + "/" + pairing.hi + "-over-" + pairing.lo, main: true}
			// Set up here, on the test's goroutine; the sequence runs
			// concurrently with the others.
			b := newVBed(t, "vd")
			hi, lo := b.nodes(t, r, pairing.hi, pairing.lo, v.spec)
			file, stopCapture := b.capture(t, r)
			r.main = false
			wg.Add(1)
			go func() {
				defer wg.Done()
				arp := v.name == "v3" && pairing.lo != pairing.hi
				var middle func()
				if v.name == "v3" && pairing.hi == "ours" {
					middle = func() { checkVisible(r, hi) }
				}
				tk := runVPair(r, b, hi, lo, arp, middle)
				lo.finish()
				hi.finish()
				stopCapture()
				for _, n := range []*vnode{hi, lo} {
					noBogus(r, n.name, n.allLogs())
					if n.ours {
						checkTshark(r, file, n.addr)
					}
				}
				adv := v.spec.adv()
				v3 := v.spec.version == 3
				term, kill := vbounds(adv, 100, v3)
				r.logf("TAKEOVER %-8s %-26s SIGTERM %7.1f ms (bound %6.1f)  SIGKILL %7.1f ms (bound %6.1f)", v.name, pairing.hi+" over "+pairing.lo,
					vms(tk.term), vms(term+100*time.Millisecond), vms(tk.kill), vms(kill+100*time.Millisecond))
				slack := 100 * time.Millisecond
				if os.Getenv("LVSLAB_VRRP_STRICT") == "" {
					slack = adv + 2*time.Second
				}
				if tk.term > term+slack {
					r.errorf("SIGTERM takeover %v > skew %v + %v", tk.term, term, slack)
				}
				if tk.kill > kill+slack {
					r.errorf("SIGKILL takeover %v > 3×advert_int + skew %v + %v", tk.kill, kill, slack)
				}
				if v3 && (tk.kill >= time.Second || tk.term >= time.Second) {
					r.errorf("advert_int 0.1: takeover not sub-second (SIGTERM %v, SIGKILL %v)", tk.term, tk.kill)
				}
			}()
		}
	}
	wg.Wait()
}

// checkVisible: with ours MASTER, lvsadm -L -n shows the instance after
// ipvsadm's table, lvsd's metrics export its state, and SIGUSR1 writes
// keepalived's data dump.
func checkVisible(r *vrun, n *vnode) {
	r.t.Helper()
	var list string
	hasLine := func(fields ...string) bool {
		for _, l := range strings.Split(list, "\n") {
			if slices.Equal(strings.Fields(l), fields) {
				return true
			}
		}
		return false
	}
	limit := time.Now().Add(3 * time.Second)
	for list = e2e.LVSADM(r.t, n.ns, "-L -n"); !hasLine("VI_1", "51", "MASTER", "150", "eth0", vaVIP); list = e2e.LVSADM(r.t, n.ns, "-L -n") {
		if time.Now().After(limit) {
			r.fatalf("lvsadm -L -n does not show VI_1 MASTER:\n%s", list)
		}
		time.Sleep(50 * time.Millisecond)
	}
	table, _, _ := strings.Cut(list, "\n\n")
	if !strings.HasPrefix(table, "IP Virtual Server version 1.2.1") || !strings.Contains(table, "TCP  "+vaVIP+":80 wlc") {
		r.errorf("lvsadm -L -n table:\n%s", list)
	}
	// garp_master_repeat 5 at the transition and 5 more after
	// garp_master_delay (5 s): a loaded machine may look after the second.
	if !hasLine(vaVIP, "owns", "VI_1", "eth0", "5") && !hasLine(vaVIP, "owns", "VI_1", "eth0", "10") {
		r.errorf("lvsadm -L -n does not show lvsd owning the VIP after 5 or 10 gratuitous ARPs:\n%s", list)
	}
	data := filepath.Join(n.dir, "keepalived.data")
	_ = os.Remove(data)
	if err := n.p.Process.Signal(syscall.SIGUSR1); err != nil {
		r.fatalf("%v", err)
	}
	vwait(r, "keepalived.data", 3*time.Second, func() bool {
		b, err := os.ReadFile(data)
		return err == nil && strings.Contains(string(b), "------< VRRP Topology >------")
	})
	dump, _ := os.ReadFile(data)
	for _, want := range []string{" VRRP Instance = VI_1", "   State = MASTER", "   Virtual Router ID = 51", "   Priority = 150",
		"   Advert interval = 100 milli-sec", "     " + vaVIP24 + " dev eth0 scope global set (lvsd owns)"} {
		if !strings.Contains(string(dump), want+"\n") {
			r.errorf("keepalived.data lacks %q:\n%s", want, dump)
		}
	}
	metrics := n.ns.Run("curl", "-s", "http://127.0.0.1:9100/metrics")
	for _, want := range []string{`lvsd_vrrp_state{instance="VI_1",state="MASTER",vrid="51"} 1`, `lvsd_vrrp_state{instance="VI_1",state="BACKUP",vrid="51"} 0`,
		`lvsd_vrrp_priority{instance="VI_1",vrid="51"} 150`, `lvsd_vip_owned{vip="` + vaVIP + `"} 1`} {
		if !strings.Contains(metrics, want+"\n") {
			r.errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(metrics, "lvsd_gratuitous_arps_total ") || strings.Contains(metrics, "lvsd_gratuitous_arps_total 0\n") {
		r.errorf("no gratuitous ARP counted:\n%s", grepLines(metrics, "arp"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
