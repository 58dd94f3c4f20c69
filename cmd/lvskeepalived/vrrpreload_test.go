package main

import (
	"fmt"
	"os"
	"path/filepath"
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

func (s *solo) waitLog(what string, n int) {
	vwait(s.r, fmt.Sprintf("%d× %q in the log", n, what), 5*time.Second, func() bool { return strings.Count(s.n.log.String(), what) >= n })
}

// TestVRRPDaemonReload: SIGHUP with the VRRP part unchanged keeps the
// instances as they are; a configuration with a fatal error keeps the
// running one; a changed one stops the old instances (releasing and
// removing what they held) and starts the new; a VIP no virtual server
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
	s.waitLog("VRRP configuration reloaded (1 instances)", 1)
	vwait(s.r, "VI_2's kernel VIP removed", 3*time.Second, func() bool { return !s.hasKernel("192.0.2.200") })
	s.waitLog("Entering MASTER STATE", 3)
	vwait(s.r, "VI_1 owned again", 3*time.Second, s.n.hasVIP)
	vwait(s.r, "notify_master ran", 3*time.Second, func() bool { _, err := os.Stat(filepath.Join(s.n.dir, "master")); return err == nil })
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
