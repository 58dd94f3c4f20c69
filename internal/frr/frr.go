// Package frr runs FRR's zebra and ospfd inside test namespaces: the real
// routing daemons of seed 002's cluster mode, where every director
// announces the VIP by OSPF and a router spreads the flows over them by
// ECMP. How they run here is in reference/real-peers.md: one runtime
// directory per namespace (-N), the daemons in the foreground so the test
// owns them, point-to-point links with short hello and dead intervals.
package frr

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// Dir is where Debian installs the daemons.
const Dir = "/usr/lib/frr"

// OSPF is one router's OSPF configuration in the seed's shape: network
// statements in one area (the seed's 0.0.0.11, a stub with no summaries),
// point-to-point links, MD5 authentication when Key is set.
type OSPF struct {
	RouterID string
	Area     string   // default 0.0.0.0
	Stub     bool     // area AREA stub no-summary
	Networks []string // prefixes whose interfaces join the area (a VIP's /24 on lo, the uplinks)
	Links    []string // interfaces that are point-to-point links to neighbours
	Hello    int      // seconds; default 1
	Dead     int      // seconds; default 3
	Key      string   // ip ospf message-digest-key 8 md5 KEY on every link, and area authentication
	MaxPaths int      // maximum-paths, for the ECMP router
}

func (o OSPF) config(hostname string) string {
	area := o.Area
	if area == "" {
		area = "0.0.0.0"
	}
	hello, dead := o.Hello, o.Dead
	if hello == 0 {
		hello = 1
	}
	if dead == 0 {
		dead = 3
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hostname %s\n", hostname)
	for _, l := range o.Links {
		fmt.Fprintf(&b, "interface %s\n ip ospf network point-to-point\n ip ospf hello-interval %d\n ip ospf dead-interval %d\n", l, hello, dead)
		if o.Key != "" {
			fmt.Fprintf(&b, " ip ospf message-digest-key 8 md5 %s\n", o.Key)
		}
	}
	fmt.Fprintf(&b, "router ospf\n ospf router-id %s\n log-adjacency-changes\n", o.RouterID)
	if o.MaxPaths > 0 {
		fmt.Fprintf(&b, " maximum-paths %d\n", o.MaxPaths)
	}
	for _, n := range o.Networks {
		fmt.Fprintf(&b, " network %s area %s\n", n, area)
	}
	if o.Key != "" {
		fmt.Fprintf(&b, " area %s authentication message-digest\n", area)
	}
	if o.Stub {
		fmt.Fprintf(&b, " area %s stub no-summary\n", area)
	}
	return b.String()
}

// Router is zebra and ospfd running in one namespace.
type Router struct {
	t     testing.TB
	ns    *nstest.NS
	dir   string
	conf  string
	ospfd *nstest.Proc
	zlog  *nstest.SyncBuffer
	olog  *nstest.SyncBuffer
}

// Require skips (or, under CI, fails) a test when FRR is not installed.
func Require(t testing.TB) {
	t.Helper()
	for _, d := range []string{"zebra", "ospfd"} {
		if _, err := os.Stat(filepath.Join(Dir, d)); err != nil {
			testenv.Skip(t, fmt.Sprintf("FRR's %s is not installed (Debian package frr; make deps installs it)", d))
		}
	}
	testenv.Tools(t, "vtysh")
}

// Start runs zebra and ospfd in ns with o. The daemons are killed and
// their runtime directory removed when the test ends.
func Start(t testing.TB, ns *nstest.NS, o OSPF) *Router {
	t.Helper()
	run := filepath.Join("/var/run/frr", ns.Name)
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if u, err := user.Lookup("frr"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		_ = os.Chown(run, uid, gid)
	}
	t.Cleanup(func() { _ = os.RemoveAll(run) })
	// Beside the runtime files: the frr user must read it after ospfd drops
	// its privileges (a test's TempDir is private to root).
	conf := filepath.Join(run, "ospfd.conf")
	if err := os.WriteFile(conf, []byte(o.config(ns.Name)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, zlog := ns.Start(filepath.Join(Dir, "zebra"), "-N", ns.Name, "-f", "/dev/null", "-i", filepath.Join(run, "zebra.pid"))
	r := &Router{t: t, ns: ns, dir: run, conf: conf, zlog: zlog}
	// ospfd talks to zebra over zserv.api: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(run, "zserv.api")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: zebra did not start:\n%s", ns.Name, zlog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.StartOSPF()
	return r
}

// StartOSPF starts ospfd (again, after KillOSPF).
func (r *Router) StartOSPF() {
	r.t.Helper()
	r.ospfd, r.olog = r.ns.Start(filepath.Join(Dir, "ospfd"), "-N", r.ns.Name, "-f", r.conf, "-i", filepath.Join(r.dir, "ospfd.pid"))
}

// Name is the namespace's.
func (r *Router) Name() string { return r.ns.Name }

// Log is what the daemons wrote.
func (r *Router) Log() string {
	return "zebra (" + r.ns.Name + "):\n" + r.zlog.String() + "ospfd:\n" + r.olog.String()
}

// KillOSPF kills ospfd with SIGKILL: the router's adjacencies go when its
// neighbours' dead interval runs out, as when a director dies.
func (r *Router) KillOSPF() {
	_ = syscall.Kill(r.ospfd.Process.Pid, syscall.SIGKILL)
	_ = r.ospfd.Wait()
}

// Vtysh runs one vtysh command against this namespace's daemons.
func (r *Router) Vtysh(cmd string) (string, error) {
	out, err := exec.Command("vtysh", "-N", r.ns.Name, "-c", cmd).CombinedOutput()
	return string(out), err
}

// Nexthops is how many next hops the kernel route to prefix has in ns (0
// when there is none), read with ip route.
func Nexthops(ns *nstest.NS, prefix string) int {
	out, err := ns.Try("ip", "route", "show", prefix)
	if err != nil || strings.TrimSpace(out) == "" {
		return 0
	}
	if n := strings.Count(out, "nexthop via"); n > 0 {
		return n
	}
	return 1
}

// WaitNexthops waits until the route to prefix in ns has n next hops and
// returns how long that took.
func WaitNexthops(t testing.TB, ns *nstest.NS, prefix string, n int, within time.Duration, logs ...func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for Nexthops(ns, prefix) != n {
		if time.Since(start) > within {
			var b strings.Builder
			for _, l := range logs {
				b.WriteString(l())
			}
			out, _ := ns.Try("ip", "route")
			t.Fatalf("%s: route to %s has %d next hops after %v, want %d\n%s\n%s", ns.Name, prefix, Nexthops(ns, prefix), within, n, out, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}
