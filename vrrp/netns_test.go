package vrrp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// Addresses of the two-node test bed (documentation range, as the seeds'
// public addresses are mapped).
var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
	vip   = netip.MustParsePrefix("192.0.2.100/24")
)

// bed is two namespaces joined by a veth pair, both ends veth0.
type bed struct {
	a, b *nstest.NS
	dir  string
}

func newBed(t *testing.T, name string) *bed {
	t.Helper()
	nstest.Require(t)
	testenv.Tools(t, "keepalived")
	a := nstest.New(t, name+"a")
	b := nstest.New(t, name+"b")
	nstest.Veth(t, a, "veth0", b, "veth0", 0)
	a.Addr("veth0", addrA.String()+"/24")
	b.Addr("veth0", addrB.String()+"/24")
	return &bed{a: a, b: b, dir: t.TempDir()}
}

// kaSpec is one keepalived vrrp_instance for the test bed.
type kaSpec struct {
	version  int
	prio     int
	state    string
	auth     string // "", PASS or AH
	pass     string
	advInt   string
	peer     netip.Addr // unicast peer (invalid: multicast)
	nopreemt bool
}

func (s kaSpec) conf() string {
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n  router_id lvslab-test\n  vrrp_version %d\n}\n", max(s.version, 2))
	fmt.Fprintf(&b, "vrrp_instance VI_1 {\n  state %s\n  interface veth0\n  virtual_router_id 51\n  priority %d\n  advert_int %s\n", s.state, s.prio, s.advInt)
	if s.auth != "" {
		fmt.Fprintf(&b, "  authentication {\n    auth_type %s\n    auth_pass %s\n  }\n", s.auth, s.pass)
	}
	if s.peer.IsValid() {
		fmt.Fprintf(&b, "  unicast_peer {\n    %s\n  }\n", s.peer)
	}
	if s.nopreemt {
		b.WriteString("  nopreempt\n")
	}
	fmt.Fprintf(&b, "  virtual_ipaddress {\n    %s\n  }\n}\n", vip)
	return b.String()
}

// config is the same instance as a vrrp.Config.
func (s kaSpec) config() Config {
	c := Config{Name: "VI_1", Interface: "veth0", VRID: 51, Priority: uint8(s.prio), Version: uint8(max(s.version, 2)),
		VirtualIPAddress: []VIP{{Prefix: vip}}, AuthPass: s.pass, NoPreempt: s.nopreemt,
		GarpMasterRepeat: 1, GarpMasterDelay: GarpNoDelay}
	if s.state == "MASTER" {
		c.InitialState = Master
	}
	switch s.auth {
	case "PASS":
		c.AuthType = AuthPass
	case "AH":
		c.AuthType = AuthAH
	}
	d, _ := time.ParseDuration(s.advInt + "s")
	c.AdvInt = d
	if s.peer.IsValid() {
		c.UnicastPeer = []netip.Addr{s.peer}
	}
	return c
}

// keepalived is a running keepalived (VRRP only) in a namespace.
type keepalived struct {
	p   *nstest.Proc
	log *nstest.SyncBuffer
}

func startKeepalived(t *testing.T, ns *nstest.NS, dir, name string, s kaSpec) *keepalived {
	t.Helper()
	conf := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(conf, []byte(s.conf()), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := func(k string) string { return filepath.Join(dir, name+"-"+k+".pid") }
	p, log := ns.Start("keepalived", "-P", "-n", "-l", "-D", "-G", "-R", "-f", conf,
		"-p", pid("main"), "-r", pid("vrrp"), "-c", pid("chk"), "-b", pid("bfd"))
	return &keepalived{p: p, log: log}
}

// term sends SIGTERM to keepalived's parent, which stops its VRRP child
// (priority-0 advert, VIPs removed).
func (k *keepalived) term(t *testing.T) {
	if err := k.p.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = k.p.Wait()
}

// kill sends SIGKILL to both keepalived processes (their process group).
func (k *keepalived) kill() {
	_ = syscall.Kill(-k.p.Process.Pid, syscall.SIGKILL)
	_ = k.p.Wait()
}

// ours is a Router running in a namespace.
type ours struct {
	r    *Router
	errc chan error
	stop context.CancelFunc
	log  *nstest.SyncBuffer
}

func startOurs(t *testing.T, ns *nstest.NS, c Config) *ours {
	t.Helper()
	log := &nstest.SyncBuffer{}
	lg := slogTo(log)
	r, err := NewRouter(Options{Instances: []Config{c}, Hooks: &KernelHooks{Netlink: ns.Netlink(), Log: lg}, Log: lg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &ours{r: r, errc: make(chan error, 1), stop: cancel, log: log}
	go func() { o.errc <- ns.Do(func() error { return r.Run(ctx) }) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
		if t.Failed() {
			t.Logf("our log:\n%s", log.String())
		}
	})
	return o
}

// term shuts down as SIGTERM would and waits.
func (o *ours) term(t *testing.T) {
	o.stop()
	if err := <-o.errc; err != nil {
		t.Fatalf("router: %v", err)
	}
}

func (o *ours) state() State { return o.r.Instance("VI_1").State() }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
