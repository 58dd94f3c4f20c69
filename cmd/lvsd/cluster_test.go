package main

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/frr"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// Seed 002's cluster mode: several directors announce the VIP into OSPF
// (FRR's zebra and ospfd, the seed's stub area 0.0.0.11 with MD5, hello 1 s
// and dead 3 s) and a router spreads the flows over them by ECMP. One
// director dies: its route is withdrawn and new connections go on; one is
// added back: the router rehashes. What breaks is measured for the route FRR
// installs (Linux's hash-threshold nexthop group) and, side by side, for a
// resilient nexthop group (kernel 5.13+), which moves only the buckets of
// the director that left or joined: the reason Maglev-style consistent
// hashing exists.
func TestClusterOSPFECMP(t *testing.T) {
	nstest.Require(t)
	frr.Require(t)
	testenv.Tools(t, "socat")
	c := newCluster(t)

	c.routeVia(3, 40*time.Second)
	streams := c.openStreams(t, 60)
	before := c.carriers(t, streams)
	t.Logf("60 streams over 3 directors: %v", countBy(before))
	for d := range 3 {
		if countBy(before)[d] == 0 {
			t.Fatalf("no stream went through director %d: the router does not spread flows (%v)", d+1, countBy(before))
		}
	}

	// Director 3 dies (lvsd and ospfd): the router drops its next hop
	// when the dead interval runs out.
	start := time.Now()
	c.kill(2)
	c.routeVia(2, 20*time.Second)
	t.Logf("director 3 killed: route down to 2 next hops after %v", time.Since(start).Round(100*time.Millisecond))
	brokeOwn, brokeOthers := c.survivors(t, streams, before, 2)
	t.Logf("hash-threshold ECMP, director 3 gone: %d of its %d streams broke; %d of the %d streams of directors 1 and 2 broke (moved by the rehash)",
		brokeOwn, countBy(before)[2], brokeOthers, countBy(before)[0]+countBy(before)[1])
	if brokeOwn != countBy(before)[2] {
		t.Errorf("%d of director 3's %d streams survived its death: they cannot (no director knows them)", countBy(before)[2]-brokeOwn, countBy(before)[2])
	}
	if n := c.newConnections(t, 20); n != 20 {
		t.Errorf("after director 3 died %d of 20 new connections succeeded, want all (no black hole)", n)
	}

	// Director 3 comes back: the router rehashes over three, and streams
	// that were on directors 1 and 2 move to it (or between them).
	streamsB := c.openStreams(t, 60)
	c.restart(2)
	start = time.Now()
	c.routeVia(3, 40*time.Second)
	t.Logf("director 3 added: route back to 3 next hops after %v", time.Since(start).Round(100*time.Millisecond))
	_, addBroke := c.survivors(t, streamsB, make([]int, len(streamsB)), -1)
	t.Logf("hash-threshold ECMP, director 3 added: %d of 60 streams on directors 1 and 2 broke", addBroke)

	// The same two changes with a resilient group the test installs
	// itself (FRR 8.4 installs hash-threshold groups): director 3 leaves,
	// then joins again.
	c.withoutRouting()
	c.resilient(t, []int{0, 1, 2})
	streams3 := c.openStreams(t, 60)
	before3 := c.carriers(t, streams3)
	c.resilient(t, []int{0, 1})
	rOwn, rOthers := c.survivors(t, streams3, before3, 2)
	t.Logf("resilient nexthop group, director 3 leaves: %d of its %d streams broke; %d of the %d streams of directors 1 and 2 broke",
		rOwn, countBy(before3)[2], rOthers, countBy(before3)[0]+countBy(before3)[1])
	if rOthers != 0 {
		t.Errorf("resilient group: %d streams of the directors that stayed broke, want 0 (only the leaving director's buckets move)", rOthers)
	}
	streams4 := c.openStreams(t, 60)
	c.resilient(t, []int{0, 1, 2})
	_, rAdd := c.survivors(t, streams4, make([]int, len(streams4)), -1)
	t.Logf("resilient nexthop group, director 3 joins: %d of 60 streams on directors 1 and 2 broke (the buckets handed to it)", rAdd)
	if rAdd > addBroke && addBroke > 0 {
		t.Logf("note: the resilient group moved more streams on a join (%d) than hash-threshold (%d) in this run", rAdd, addBroke)
	}
}

type cluster struct {
	t       *testing.T
	router  *nstest.NS
	cli     *nstest.NS
	dirs    []*nstest.NS
	lvsd    []*nstest.Proc
	ospf    []*frr.Router
	rospf   *frr.Router
	ospfCfg []frr.OSPF
}

const clusterVIP = "1.1.1.1"

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t}
	c.router = nstest.New(t, "cr")
	c.cli = nstest.New(t, "ccli")
	lan := nstest.New(t, "clan")
	nstest.Veth(t, c.cli, "eth0", c.router, "cli", 1500)
	c.cli.Addr("eth0", "10.1.0.2/24")
	c.cli.Route("default", "10.1.0.1", "eth0")
	c.router.Addr("cli", "10.1.0.1/24")
	c.router.Sysctl("net.ipv4.ip_forward", "1")
	// Hash on ports too: the flows of one client spread.
	c.router.Sysctl("net.ipv4.fib_multipath_hash_policy", "1")
	nstest.Veth(t, c.router, "lan", lan, "pr", 1500)
	c.router.Addr("lan", "172.16.0.254/24")
	ports := []string{"pr"}
	var links, nets []string
	for i := range 3 {
		d := nstest.New(t, fmt.Sprintf("cd%d", i+1))
		c.dirs = append(c.dirs, d)
		up := fmt.Sprintf("up%d", i+1)
		nstest.Veth(t, c.router, up, d, "up", 1500)
		c.router.Addr(up, fmt.Sprintf("192.168.0.%d/30", 4*i+1))
		d.Addr("up", fmt.Sprintf("192.168.0.%d/30", 4*i+2))
		links = append(links, up)
		nets = append(nets, fmt.Sprintf("192.168.0.%d/30", 4*i))
		nstest.Veth(t, d, "in", lan, fmt.Sprintf("pd%d", i+1), 1500)
		ports = append(ports, fmt.Sprintf("pd%d", i+1))
		d.Addr("in", fmt.Sprintf("172.16.0.%d/24", 11+i))
		d.Route("default", fmt.Sprintf("192.168.0.%d", 4*i+1), "up")
		// What the seed's quorum_up does: the VIP on lo, so ospfd
		// announces it.
		d.Run("ip", "addr", "add", clusterVIP+"/32", "dev", "lo")
		c.ospfCfg = append(c.ospfCfg, frr.OSPF{RouterID: fmt.Sprintf("192.168.0.%d", 4*i+2), Area: "0.0.0.11", Stub: true,
			Networks: []string{"1.1.1.0/24", fmt.Sprintf("192.168.0.%d/30", 4*i)}, Links: []string{"up"}, Key: "123456"})
	}
	for i := range 2 {
		rs := nstest.New(t, fmt.Sprintf("crs%d", i+1))
		nstest.Veth(t, rs, "eth0", lan, fmt.Sprintf("ps%d", i+1), 1500)
		ports = append(ports, fmt.Sprintf("ps%d", i+1))
		rs.Addr("eth0", fmt.Sprintf("172.16.0.%d/24", 21+i))
		rs.Route("default", "172.16.0.254", "eth0")
		rs.Run(e2e.Bin(t, "lvsrs"), "start", "--mode", "dr", "--vip", clusterVIP, "--iface", "eth0")
		t.Cleanup(func() { _, _ = rs.Try(e2e.Bin(t, "lvsrs"), "stop") })
		startEchoServer(t, rs)
	}
	lan.Bridge("br0", ports...)
	c.rospf = frr.Start(t, c.router, frr.OSPF{RouterID: "192.168.0.1", Area: "0.0.0.11", Stub: true, Networks: nets, Links: links, Key: "123456", MaxPaths: 8})
	for i := range c.dirs {
		c.lvsd = append(c.lvsd, nil)
		c.ospf = append(c.ospf, nil)
		c.restart(i)
	}
	return c
}

// restart starts director i's lvsd (with the service) and ospfd.
func (c *cluster) restart(i int) {
	t, d := c.t, c.dirs[i]
	c.lvsd[i], _ = e2e.StartLVSDProc(t, d, "up,in")
	e2e.LVSADM(t, d, "-A -t "+clusterVIP+":80 -s rr")
	for _, rip := range []string{"172.16.0.21", "172.16.0.22"} {
		e2e.LVSADM(t, d, "-a -t "+clusterVIP+":80 -r "+rip+":80 -g")
	}
	if c.ospf[i] == nil {
		c.ospf[i] = frr.Start(t, d, c.ospfCfg[i])
	} else {
		c.ospf[i].StartOSPF() // zebra kept running; a director's reboot would restart both
	}
}

// kill takes director i down hard: lvsd and ospfd SIGKILLed.
func (c *cluster) kill(i int) {
	_ = syscall.Kill(c.lvsd[i].Process.Pid, syscall.SIGKILL)
	_ = c.lvsd[i].Wait()
	c.ospf[i].KillOSPF()
}

func (c *cluster) routeVia(n int, within time.Duration) {
	show := func() string {
		var b strings.Builder
		for _, r := range append([]*frr.Router{c.rospf}, c.ospf...) {
			for _, cmd := range []string{"show ip ospf neighbor", "show ip ospf route"} {
				out, _ := r.Vtysh(cmd)
				fmt.Fprintf(&b, "%s: %s\n%s", r.Name(), cmd, out)
			}
			b.WriteString(r.Log())
		}
		return b.String()
	}
	frr.WaitNexthops(c.t, c.router, clusterVIP, n, within, show)
}

// withoutRouting stops the router's ospfd, leaving the kernel route as it
// is, so the test can install nexthop groups itself.
func (c *cluster) withoutRouting() { c.rospf.KillOSPF() }

// resilient points the VIP at a resilient nexthop group of the given
// directors (replacing the group in place when it exists, as a routing
// daemon would on a change).
func (c *cluster) resilient(t *testing.T, dirs []int) {
	var ids []string
	for _, i := range dirs {
		id := strconv.Itoa(101 + i)
		c.router.Run("ip", "nexthop", "replace", "id", id, "via", fmt.Sprintf("192.168.0.%d", 4*i+2), "dev", fmt.Sprintf("up%d", i+1))
		ids = append(ids, id)
	}
	c.router.Run("ip", "nexthop", "replace", "id", "100", "group", strings.Join(ids, "/"), "type", "resilient", "buckets", "64", "idle_timer", "0")
	c.router.Run("ip", "route", "replace", clusterVIP+"/32", "nhid", "100")
}

// startEchoServer runs a socat echo server on port 80 of ns and waits
// until it listens.
func startEchoServer(t *testing.T, ns *nstest.NS) {
	t.Helper()
	_, log := ns.Start("socat", "TCP-LISTEN:80,fork,reuseaddr", "PIPE")
	waitFor(t, "echo server", func() bool {
		o, _ := ns.Try("ss", "-ltn", "sport = :80")
		return strings.Contains(o, "LISTEN")
	}, log.String)
}

// echoStream is one long-lived connection to an echo server.
type echoStream struct {
	c    net.Conn
	rd   *bufio.Reader
	port int
}

func (s *echoStream) roundTrip(msg string) error {
	_ = s.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(s.c, msg); err != nil {
		return err
	}
	line, err := s.rd.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != msg {
		return fmt.Errorf("echo %q, want %q", line, msg)
	}
	return nil
}

func (c *cluster) openStreams(t *testing.T, n int) []*echoStream {
	var out []*echoStream
	_ = c.cli.Do(func() error {
		for i := range n {
			conn, err := net.DialTimeout("tcp4", clusterVIP+":80", 5*time.Second)
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			out = append(out, &echoStream{c: conn, rd: bufio.NewReader(conn), port: conn.LocalAddr().(*net.TCPAddr).Port})
		}
		return nil
	})
	for i, s := range out {
		if err := s.roundTrip(fmt.Sprintf("hello %d", i)); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	return out
}

// carriers says which director each stream goes through, from the
// directors' own connection listings.
func (c *cluster) carriers(t *testing.T, streams []*echoStream) []int {
	byPort := map[int]int{}
	for i, d := range c.dirs {
		out, err := d.Try(e2e.Bin(t, "lvsadm"), "-L", "-n", "-c")
		if err != nil {
			continue // a dead director
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 6 && f[2] == "ESTABLISHED" && strings.HasPrefix(f[3], "10.1.0.2:") {
				p, _ := strconv.Atoi(strings.TrimPrefix(f[3], "10.1.0.2:"))
				byPort[p] = i
			}
		}
	}
	out := make([]int, len(streams))
	for i, s := range streams {
		d, ok := byPort[s.port]
		if !ok {
			t.Fatalf("stream %d (port %d) is in no director's table", i, s.port)
		}
		out[i] = d
	}
	return out
}

func countBy(carriers []int) [3]int {
	var n [3]int
	for _, d := range carriers {
		n[d]++
	}
	return n
}

// survivors sends one more round on every stream and counts the broken
// ones: those of director gone, and the others.
func (c *cluster) survivors(t *testing.T, streams []*echoStream, carriers []int, gone int) (own, others int) {
	for i, s := range streams {
		if err := s.roundTrip(fmt.Sprintf("again %d", i)); err != nil {
			if carriers[i] == gone {
				own++
			} else {
				others++
			}
		}
	}
	return own, others
}

func (c *cluster) newConnections(t *testing.T, n int) int {
	ok := 0
	_ = c.cli.Do(func() error {
		for i := range n {
			conn, err := net.DialTimeout("tcp4", clusterVIP+":80", 3*time.Second)
			if err != nil {
				t.Logf("new connection %d: %v", i, err)
				continue
			}
			s := &echoStream{c: conn, rd: bufio.NewReader(conn)}
			if err := s.roundTrip(fmt.Sprintf("new %d", i)); err != nil {
				t.Logf("new connection %d: %v", i, err)
			} else {
				ok++
			}
			_ = conn.Close()
		}
		return nil
	})
	return ok
}
