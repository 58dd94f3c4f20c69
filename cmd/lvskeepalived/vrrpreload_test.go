package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// soloConf is a director alone on its link: VI_1's VIP is a virtual
// server's (lvsd answers for it), VI_2's is not (a kernel address).
func soloConf(prio int, withVI2 bool, notifyDir ...string) string {
	var b strings.Builder
	notify := ""
	for _, d := range notifyDir {
		notify = fmt.Sprintf("  notify_master \"/usr/bin/touch %s/master\"\n  notify_stop \"/usr/bin/touch %s/stopped\"\n", d, d)
	}
	fmt.Fprintf(&b, "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  priority %d\n  version 3\n  advert_int 0.1\n%s  virtual_ipaddress {\n    %s\n  }\n}\n", prio, notify, vaVIP24)
	if withVI2 {
		b.WriteString("vrrp_instance VI_2 {\n  interface eth0\n  virtual_router_id 52\n  priority 100\n  version 3\n  advert_int 0.1\n  virtual_ipaddress {\n    192.0.2.200/24\n  }\n}\n")
	}
	fmt.Fprintf(&b, "virtual_server %s 80 {\n  lb_kind DR\n  protocol TCP\n  real_server 192.0.2.50 80 {\n    weight 1\n  }\n}\n", vaVIP)
	return b.String()
}

type solo struct {
	t    *testing.T
	r    *vrun
	n    *vnode
	conf string
}

func newSolo(t *testing.T) *solo {
	s := newSoloNoLVSD(t)
	e2e.StartLVSD(t, s.n.ns, "eth0")
	return s
}

func newSoloNoLVSD(t *testing.T) *solo {
	nstest.Require(t)
	testenv.Tools(t, "keepalived")
	d := nstest.New(t, "vsd")
	p := nstest.New(t, "vsp")
	nstest.Veth(t, d, "eth0", p, "eth0", 1500)
	d.Addr("eth0", vaA+"/24")
	p.Addr("eth0", vaB+"/24")
	dir := t.TempDir()
	r := &vrun{t: t, name: "solo", main: true}
	s := &solo{t: t, r: r, n: &vnode{t: t, r: r, ns: d, addr: vaA, name: "ours", ours: true, dir: dir}, conf: filepath.Join(dir, "keepalived.conf")}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lvskeepalived log:\n%s", s.n.allLogs())
		}
	})
	return s
}

func (s *solo) write(text string) {
	if err := os.WriteFile(s.conf, []byte(text), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *solo) start(extra ...string) {
	args := append([]string{"TMPDIR=" + s.n.dir, e2e.Bin(s.t, "lvskeepalived"), "-n", "-l", "-G", "-f", s.conf,
		"-p", filepath.Join(s.n.dir, "ka.pid"), "-r", filepath.Join(s.n.dir, "vrrp.pid"), "-c", filepath.Join(s.n.dir, "chk.pid")}, extra...)
	s.n.p, s.n.log = s.n.ns.Start("env", args...)
}

func (s *solo) hup() {
	if err := s.n.p.Process.Signal(syscall.SIGHUP); err != nil {
		s.t.Fatal(err)
	}
}

func (s *solo) hasKernel(addr string) bool {
	out := s.n.ns.Run("ip", "-4", "-o", "addr", "show", "dev", "eth0")
	return strings.Contains(out, " "+addr+"/")
}

func (s *solo) waitLog(what string, n int) { s.waitLogFor(what, n, 5*time.Second) }

func (s *solo) waitLogFor(what string, n int, limit time.Duration) {
	vwait(s.r, fmt.Sprintf("%d× %q in the %s log", n, what, s.n.name), limit, func() bool { return strings.Count(s.n.log.String(), what) >= n })
}

// TestVRRPDaemonReload: SIGHUP with the VRRP part unchanged keeps the
// instances as they are; a configuration with a fatal error keeps the
// running one; a changed one keeps the instances that stay (a MASTER
// keeps its VIPs) and stops the removed ones; a VIP no virtual server
// uses is a kernel address, one lvsd serves is lvsd's and never the
// kernel's.
func TestVRRPDaemonReload(t *testing.T) {
	s := newSolo(t)
	s.write(soloConf(150, true))
	s.start()
	vwait(s.r, "both instances master", 5*time.Second, func() bool {
		return s.n.hasVIP() && s.hasKernel("192.0.2.200") && strings.Count(s.n.log.String(), "Entering MASTER STATE") == 2
	})
	if s.hasKernel(vaVIP) {
		t.Error("the VIP lvsd serves was added to the kernel")
	}
	if o, _ := s.n.ownership(); o.GARPs != 5 {
		t.Errorf("lvsd sent %d gratuitous ARPs on taking the VIP over, want garp_master_repeat 5", o.GARPs)
	}
	transitions := func() int { return strings.Count(s.n.log.String(), "Entering ") }
	before := transitions()
	s.hup()
	s.waitLog("VRRP configuration unchanged", 1)
	s.write("vrrp_instance VI_1 {\n  priority\n}\n") // a keyword without its value: fatal
	s.hup()
	s.waitLog("Reload failed", 1)
	// One the VRRP side cannot run (an IPv6 VIP) is refused whole too.
	s.write(strings.Replace(soloConf(150, true), "192.0.2.200/24", "2001:db8::200", 1))
	s.hup()
	s.waitLog("Reload failed: the VRRP side cannot run", 1)
	time.Sleep(300 * time.Millisecond) // three adverts: nothing may have moved
	if transitions() != before {
		t.Fatalf("a reload that changed nothing moved an instance:\n%s", s.n.log.String())
	}
	if !s.n.hasVIP() || !s.hasKernel("192.0.2.200") {
		t.Fatal("a refused reload dropped a VIP")
	}
	s.write(soloConf(160, false, s.n.dir))
	s.hup()
	// keepalived 2.2.7 carries VI_1's state over: it stays MASTER (no
	// new transition, no notify_master); VI_2, gone, gives its address up.
	s.waitLog("VRRP configuration reloaded (1 instances, states kept)", 1)
	s.waitLog("(VI_2) removed by the reload (was MASTER)", 1)
	vwait(s.r, "VI_2's kernel VIP removed", 3*time.Second, func() bool { return !s.hasKernel("192.0.2.200") })
	time.Sleep(300 * time.Millisecond)
	if transitions() != before || !s.n.hasVIP() {
		t.Fatalf("the reload moved VI_1 (vip owned %v):\n%s", s.n.hasVIP(), s.n.log.String())
	}
	if _, err := os.Stat(filepath.Join(s.n.dir, "master")); err == nil {
		t.Error("notify_master ran for an instance that stayed MASTER across the reload")
	}
	s.n.termAsync()()
	if s.n.hasVIP() {
		t.Error("SIGTERM left lvsd owning the VIP")
	}
	if _, err := os.Stat(filepath.Join(s.n.dir, "stopped")); err != nil {
		t.Errorf("notify_stop had not run when lvskeepalived exited: %v", err)
	}
	// lvsd keeps the service lvskeepalived put there only with -I; the
	// report says STOP.
	list := e2e.LVSADM(t, s.n.ns, "-L -n")
	if !strings.Contains(list, "VRRP (lvskeepalived pid") || !strings.Contains(list, " STOP ") {
		t.Errorf("lvsadm -L -n after SIGTERM:\n%s", list)
	}
}

// TestVRRPDaemonDontRelease: with -V, SIGTERM sends priority 0 but leaves
// the VIPs where they are (lvsd still owns its VIP, the kernel keeps the
// other); without -I the service itself goes, as keepalived removes its
// IPVS topology.
func TestVRRPDaemonDontRelease(t *testing.T) {
	s := newSolo(t)
	s.write(soloConf(150, true))
	s.start("-V")
	// lvsd owns every VIP until lvskeepalived first releases it: wait
	// for the transitions, then for what they did.
	s.waitLog("(VI_1) Entering MASTER STATE", 1)
	s.waitLog("(VI_2) Entering MASTER STATE", 1)
	vwait(s.r, "both instances master", 5*time.Second, func() bool { return s.n.hasVIP() && s.hasKernel("192.0.2.200") })
	s.n.termAsync()()
	if o, _ := s.n.ownership(); !o.Owned || !s.hasKernel("192.0.2.200") {
		t.Errorf("-V: SIGTERM released (lvsd owns %v, kernel holds 192.0.2.200 %v)", o.Owned, s.hasKernel("192.0.2.200"))
	}
}

// TestVRRPDaemonSides: -C runs the checkers only (lvsd gets the service,
// nobody owns or releases anything), -P the VRRP side only (no service is
// programmed, the instance runs).
func TestVRRPDaemonSides(t *testing.T) {
	s := newSolo(t)
	s.write(soloConf(150, false))
	s.start("-C")
	vwait(s.r, "the service programmed", 5*time.Second, func() bool {
		return strings.Contains(e2e.LVSADM(t, s.n.ns, "-S -n"), "-A -t "+vaVIP+":80")
	})
	time.Sleep(500 * time.Millisecond) // five advert intervals
	if strings.Contains(s.n.log.String(), "Entering") {
		t.Errorf("-C ran VRRP:\n%s", s.n.log.String())
	}
	if strings.Contains(e2e.LVSADM(t, s.n.ns, "-L -n"), "VRRP (") {
		t.Error("-C reported VRRP state")
	}
	s.n.termAsync()()
	if out := e2e.LVSADM(t, s.n.ns, "-S -n"); strings.Contains(out, "-A -t") {
		t.Fatalf("SIGTERM left the service:\n%s", out)
	}
	s.start("-P")
	s.waitLog("(VI_1) Entering MASTER STATE", 1)
	// The configuration's virtual server makes the VIP lvsd's, whoever
	// programs the service (an lvskeepalived -C beside this one).
	vwait(s.r, "VI_1 owned", 3*time.Second, func() bool { o, _ := s.n.ownership(); return o.Owned })
	if s.hasKernel(vaVIP) {
		t.Error("-P added lvsd's VIP to the kernel")
	}
	if out := e2e.LVSADM(t, s.n.ns, "-S -n"); strings.Contains(out, "-A -t") {
		t.Errorf("-P programmed services:\n%s", out)
	}
}

// TestVRRPDaemonLvsdRestart: an lvsd restarted under a running MASTER
// (here with --no-arp, every VIP released) owns the VIP again within the
// resend interval, without a VRRP transition; lvskeepalived killed leaves
// lvsd owning it. (The checker side reprograms a restarted lvsd's services
// only at its next change or failed sync: not this test's subject.)
func TestVRRPDaemonLvsdRestart(t *testing.T) {
	s := newSoloNoLVSD(t)
	startLVSD := func(extra ...string) *nstest.Proc {
		p, _ := s.n.ns.Start(e2e.Bin(t, "lvsd"), append([]string{"-i", "eth0", "--state-dir", t.TempDir()}, extra...)...)
		vwait(s.r, "lvsd up", 10*time.Second, func() bool { _, err := s.n.ns.Try(e2e.Bin(t, "lvsadm"), "-L", "-n"); return err == nil })
		return p
	}
	lvsd := startLVSD()
	s.write(soloConf(150, false))
	s.start()
	s.waitLog("(VI_1) Entering MASTER STATE", 1)
	vwait(s.r, "VI_1 master, lvsd owns the VIP", 5*time.Second, s.n.hasVIP)
	_ = syscall.Kill(-lvsd.Process.Pid, syscall.SIGKILL)
	_ = lvsd.Wait()
	startLVSD("--no-arp")
	owned := func() bool { o, _ := s.n.ownership(); return o.Owned }
	vwait(s.r, "the new lvsd owns the VIP", 2*resendEvery+3*time.Second, owned)
	if n := strings.Count(s.n.log.String(), "Entering MASTER STATE"); n != 1 {
		t.Errorf("lvsd's restart moved the instance (%d MASTER transitions)", n)
	}
	s.n.kill()
	time.Sleep(2 * resendEvery)
	if !owned() {
		t.Error("lvsd gave up the VIP when lvskeepalived was killed")
	}
}

// TestVRRPDaemonFault: the instance's interface going down is FAULT, and
// lvsd releases the VIP; back up, the instance is MASTER again and lvsd
// owns it.
func TestVRRPDaemonFault(t *testing.T) {
	s := newSolo(t)
	s.write(soloConf(150, false))
	s.start()
	owned := func() bool { o, _ := s.n.ownership(); return o.Owned }
	s.waitLog("(VI_1) Entering MASTER STATE", 1)
	vwait(s.r, "VI_1 master, lvsd owns the VIP", 5*time.Second, owned)
	// The start may pass through FAULT too (the veth's carrier comes up
	// a moment after the link): count from here.
	faults := strings.Count(s.n.log.String(), "(VI_1) Entering FAULT STATE")
	s.n.ns.Run("ip", "link", "set", "eth0", "down")
	s.waitLog("(VI_1) Entering FAULT STATE", faults+1)
	vwait(s.r, "lvsd releases the VIP in FAULT", 3*time.Second, func() bool { return !owned() })
	s.n.ns.Run("ip", "link", "set", "eth0", "up")
	s.waitLog("(VI_1) Entering MASTER STATE", 2)
	vwait(s.r, "lvsd owns the VIP again", 3*time.Second, owned)
	list := e2e.LVSADM(t, s.n.ns, "-L -n")
	if !strings.Contains(list, " MASTER ") {
		t.Errorf("lvsadm -L -n:\n%s", list)
	}
}

// reloadConf is ours in TestVRRPReloadInterop: VI_1 (when present) with
// the VIP lvsd serves and, with extra, a kernel address no service uses
// (virtual_ipaddress_excluded: a VIP added to the advertised set on one
// side only would make keepalived drop the adverts, "unexpected ip
// number count").
func reloadConf(present bool, prio int, adv string, extra bool, dir string) string {
	var b strings.Builder
	b.WriteString("global_defs {\n  vrrp_version 3\n}\n")
	if present {
		fmt.Fprintf(&b, "vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority %d\n  advert_int %s\n", prio, adv)
		fmt.Fprintf(&b, "  notify_fault \"/usr/bin/touch %s/fault\"\n  notify_master \"/usr/bin/touch %s/master\"\n", dir, dir)
		fmt.Fprintf(&b, "  virtual_ipaddress {\n    %s\n  }\n", vaVIP24)
		if extra {
			// Not advertised: the peer checks the advertised set.
			b.WriteString("  virtual_ipaddress_excluded {\n    192.0.2.201/24\n  }\n")
		}
		b.WriteString("}\n")
	}
	fmt.Fprintf(&b, "virtual_server %s 80 {\n  lb_kind DR\n  protocol TCP\n  real_server 192.0.2.50 80 {\n    weight 1\n  }\n}\n", vaVIP)
	return b.String()
}

// TestVRRPReloadInterop: SIGHUP on an lvskeepalived MASTER paired with
// Debian's keepalived 2.2.7 (v3, advert_int 0.1) carries the state over
// as keepalived's reload does. Adding a VIP and changing advert_int: it
// stays MASTER (no transition on either side, no priority-0 advert), the
// new VIP comes up and the adverts go out at the new interval. Lowering
// the priority below the peer's: the peer preempts. Raising it again on
// the BACKUP: ours preempts back. Removing the instance: a priority-0
// advert (the peer takes over within its skew), the VIPs released,
// notify_fault run.
func TestVRRPReloadInterop(t *testing.T) {
	b := newVBed(t, "vr")
	r := &vrun{t: t, name: "reload", main: true}
	ours, peer := b.nodes(t, r, "ours", "keepalived", vspec{version: 3, advInt: "0.1"})
	file, stopCapture := b.capture(t, r)
	peer.start(100)
	conf := filepath.Join(b.dir, "ours.conf")
	write := func(present bool, prio int, adv string, extra bool) {
		if err := os.WriteFile(conf, []byte(reloadConf(present, prio, adv, extra, b.dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hup := func(n int) {
		if err := ours.p.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		vwait(r, fmt.Sprintf("reload %d done", n), 5*time.Second, func() bool { return strings.Count(ours.log.String(), "Reload finished") >= n })
	}
	kernel := func(addr string) bool {
		return strings.Contains(ours.ns.Run("ip", "-4", "-o", "addr", "show", "dev", "eth0"), " "+addr+"/")
	}
	count := func(n *vnode, s string) int { return strings.Count(n.log.String(), s) }
	write(true, 150, "0.1", false)
	ours.p, ours.log = ours.ns.Start("env", "TMPDIR="+b.dir, e2e.Bin(t, "lvskeepalived"), "-n", "-l", "-G", "-D", "-f", conf,
		"-p", filepath.Join(b.dir, "ka.pid"), "-r", filepath.Join(b.dir, "vrrp.pid"), "-c", filepath.Join(b.dir, "chk.pid"))
	vwait(r, "ours master", 8*time.Second, func() bool { return ours.master() && ours.hasVIP() && !peer.hasVIP() })
	time.Sleep(500 * time.Millisecond)

	// 1. A new VIP and advert_int 0.2: nothing moves.
	oursEnter, peerEnter, peerZero := count(ours, "Entering "), count(peer, "Entering "), count(peer, "received priority 0")
	write(true, 150, "0.2", true)
	reloaded := time.Now()
	hup(1)
	vwait(r, "the new VIP on ours", 3*time.Second, func() bool { return kernel("192.0.2.201") })
	time.Sleep(time.Second)
	if count(ours, "Entering ") != oursEnter || count(peer, "Entering ") != peerEnter || count(peer, "received priority 0") != peerZero {
		t.Fatalf("adding a VIP moved an instance or sent priority 0:\nours:\n%s\npeer:\n%s", ours.log.String(), peer.log.String())
	}
	if !ours.hasVIP() || peer.hasVIP() {
		t.Fatalf("after the reload: ours holds the VIP %v, the peer %v", ours.hasVIP(), peer.hasVIP())
	}
	if _, err := os.Stat(filepath.Join(b.dir, "master")); err != nil {
		t.Fatalf("notify_master of the first election did not run: %v", err)
	}
	_ = os.Remove(filepath.Join(b.dir, "master"))

	// 2. Priority 50, below the peer's 100: the peer preempts.
	write(true, 50, "0.2", true)
	hup(2)
	vwait(r, "the peer preempts", 5*time.Second, func() bool { return peer.master() && peer.hasVIP() && !ours.master() && !ours.hasVIP() })
	vwait(r, "ours drops the kernel VIP", 2*time.Second, func() bool { return !kernel("192.0.2.201") })

	// 3. Priority 200 on the BACKUP: ours preempts back.
	write(true, 200, "0.2", true)
	hup(3)
	vwait(r, "ours preempts", 5*time.Second, func() bool { return ours.master() && ours.hasVIP() && !peer.hasVIP() })
	vwait(r, "notify_master", 2*time.Second, func() bool { _, err := os.Stat(filepath.Join(b.dir, "master")); return err == nil })
	time.Sleep(500 * time.Millisecond)

	// 4. VI_1 removed: priority 0, the peer takes over at once.
	peerZero = count(peer, "received priority 0")
	write(false, 0, "", false)
	start := time.Now()
	if err := ours.p.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	took := vwait(r, "the peer takes over", 3*time.Second, func() bool { return peer.hasVIP() })
	vwait(r, "reload 4 done", 3*time.Second, func() bool { return count(ours, "Reload finished") >= 4 })
	r.logf("removed instance: the peer held the VIP %v after the SIGHUP", took)
	if count(peer, "received priority 0") == peerZero {
		t.Errorf("the removed MASTER sent no priority 0:\n%s", peer.log.String())
	}
	// Priority 0 makes the backup wait its skew, (256-100)/256 × 0.1 s.
	if took > 500*time.Millisecond {
		t.Errorf("takeover after removing the instance took %v", took)
	}
	vwait(r, "ours releases", 2*time.Second, func() bool { return !ours.hasVIP() && !kernel("192.0.2.201") })
	vwait(r, "notify_fault", 2*time.Second, func() bool { _, err := os.Stat(filepath.Join(b.dir, "fault")); return err == nil })
	if !strings.Contains(ours.log.String(), "(VI_1) removed by the reload (was MASTER)") {
		t.Error("no log line for the removed instance")
	}
	ours.finish()
	peer.finish()
	stopCapture()
	noBogus(r, ours.name, ours.allLogs())
	noBogus(r, peer.name, peer.allLogs())
	checkTshark(r, file, vaA)
	// On the wire: no priority 0 from ours before the instance was
	// removed; the adverts after the first reload at 20 cs.
	zero, err := e2e.Tshark(file, "-Y", "vrrp.prio == 0 && ip.src == "+vaA, "-T", "fields", "-e", "frame.time_epoch")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(zero) {
		var sec float64
		fmt.Sscan(f, &sec)
		if ts := time.Unix(0, int64(sec*1e9)); ts.Before(start) {
			t.Errorf("priority 0 from ours at %v, before the instance was removed (at %v)", ts.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano))
		}
	}
	ints, err := e2e.Tshark(file, "-Y", "vrrp && vrrp.prio != 0 && ip.src == "+vaA, "-T", "fields", "-e", "frame.time_epoch", "-e", "vrrp.short_adver_int")
	if err != nil {
		t.Fatal(err)
	}
	var before, after []string
	lines := strings.Split(strings.TrimSpace(ints), "\n")
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		var sec float64
		fmt.Sscan(f[0], &sec)
		if time.Unix(0, int64(sec*1e9)).Before(reloaded) {
			before = append(before, f[1])
		} else {
			after = append(after, f[1])
		}
	}
	if len(before) == 0 || len(after) == 0 || slices.ContainsFunc(before, func(s string) bool { return s != "10" }) || after[len(after)-1] != "20" {
		t.Errorf("advert intervals before the first reload %v, after %v: want 10 then 20 (cs)", before, after)
	}
}
