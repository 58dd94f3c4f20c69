package rs

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lvslab/internal/netns"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// selftestLab is the kernel IPVS selftest topology (reference/ipvs.md
// §1.2): client ns0 on br0 (10.0.0.2) with the director's veth10
// (10.0.0.1) and the real server's veth20 (10.0.0.3) on one segment; the
// director's veth12 (172.16.0.1) to the real server's veth21 (172.16.0.2).
type selftestLab struct {
	client, director, rs *nstest.NS
}

func newSelftestLab(t *testing.T) *selftestLab {
	t.Helper()
	l := &selftestLab{client: nstest.New(t, "c"), director: nstest.New(t, "d"), rs: nstest.New(t, "rs")}
	nstest.Veth(t, l.client, "veth01", l.director, "veth10", 0)
	nstest.Veth(t, l.client, "veth02", l.rs, "veth20", 0)
	nstest.Veth(t, l.director, "veth12", l.rs, "veth21", 0)
	l.client.Bridge("br0", "veth01", "veth02")
	l.client.Addr("br0", "10.0.0.2/24")
	l.director.Addr("veth10", "10.0.0.1/24")
	l.director.Addr("veth12", "172.16.0.1/24")
	l.rs.Addr("veth21", "172.16.0.2/24")
	l.rs.Addr("veth20", "10.0.0.3/24")
	l.client.Route("207.175.44.110/32", "10.0.0.1", "br0")
	return l
}

func snapshot(t *testing.T, ns *nstest.NS) Snapshot {
	t.Helper()
	var s Snapshot
	if err := ns.Do(func() (err error) { s, err = TakeSnapshot(); return err }); err != nil {
		t.Fatalf("snapshot of %s: %v", ns.Name, err)
	}
	return s
}

func requireSame(t *testing.T, what string, before, after Snapshot) {
	t.Helper()
	if d := before.Diff(after); len(d) > 0 {
		t.Fatalf("%s differs from before start:\n%s", what, strings.Join(d, "\n"))
	}
}

func stopIn(t *testing.T, ns *nstest.NS, opts Options) *State {
	t.Helper()
	var st *State
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := ns.Do(func() (err error) { st, err = Stop(ctx, opts); return err }); err != nil {
		t.Fatalf("stop: %v", err)
	}
	return st
}

func startIn(ns *nstest.NS, cfg Config, opts Options) (*Setup, error) {
	var s *Setup
	err := ns.Do(func() (err error) { s, err = Start(cfg, opts); return err })
	return s, err
}

func testOptions(t *testing.T) Options {
	return Options{StateDir: t.TempDir(), Logger: nil}
}

// (1) dr start sets exactly the sysctls and addresses; stop puts every value
// back and removes only what start added.
func TestDRStartStop(t *testing.T) {
	nstest.Require(t)
	l := newSelftestLab(t)
	r := l.rs
	// Distinct previous values, so a restore to "the default" would show.
	for k, v := range map[string]string{
		"net.ipv4.conf.all.arp_ignore": "0", "net.ipv4.conf.all.arp_announce": "0",
		"net.ipv4.conf.lo.arp_ignore": "1", "net.ipv4.conf.lo.arp_announce": "1",
		"net.ipv4.conf.veth21.arp_ignore": "2", "net.ipv4.conf.veth21.arp_announce": "0",
		"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.veth21.rp_filter": "2",
	} {
		r.Sysctl(k, v)
	}
	// A VIP the operator already put on lo stays when lvsrs stops.
	r.Addr("lo", "207.175.44.111/32")
	opts := testOptions(t)
	before := snapshot(t, r)

	setup, err := startIn(r, Config{Mode: ModeDR, VIPs: []netip.Addr{tVIP, tVIP2}, Iface: "veth21", Label: "lo:0"}, opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	during := snapshot(t, r)
	want := []string{
		"-net/ipv4/conf/all/arp_announce=0", "+net/ipv4/conf/all/arp_announce=2",
		"-net/ipv4/conf/all/arp_ignore=0", "+net/ipv4/conf/all/arp_ignore=1",
		"-net/ipv4/conf/all/rp_filter=1", "+net/ipv4/conf/all/rp_filter=0",
		"-net/ipv4/conf/lo/arp_announce=1", "+net/ipv4/conf/lo/arp_announce=2",
		"-net/ipv4/conf/veth21/arp_announce=0", "+net/ipv4/conf/veth21/arp_announce=2",
		"-net/ipv4/conf/veth21/arp_ignore=2", "+net/ipv4/conf/veth21/arp_ignore=1",
		"-net/ipv4/conf/veth21/rp_filter=2", "+net/ipv4/conf/veth21/rp_filter=0",
		"+lo 207.175.44.110/32 label lo:0 scope 0",
		// The kernel's own local route for the new address, nothing more.
		"+table 255 type 2 207.175.44.110/32 via <nil> dev lo src 207.175.44.110 metric 0 proto 2 scope 254 flags 0x0 nexthops []",
	}
	got := before.Diff(during)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("start changed\n%s\nwant exactly\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	st := setup.State()
	var added, kept int
	for _, it := range st.Items {
		if it.Addr != nil {
			if it.Addr.Added {
				added++
			} else {
				kept++
			}
		}
	}
	if added != 1 || kept != 1 {
		t.Fatalf("address items: %d added, %d already there; want 1 and 1", added, kept)
	}
	if _, err := os.Stat(StatePath(opts.StateDir, st.NetNS)); err != nil {
		t.Fatalf("state file: %v", err)
	}

	var checks []Check
	if err := r.Do(func() (err error) { _, checks, err = Status(opts); return err }); err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, c := range checks {
		if !c.OK {
			t.Errorf("status: %s: %s", c.Item, c.Problem)
		}
	}

	stopIn(t, r, opts)
	requireSame(t, "after stop", before, snapshot(t, r))
	if _, err := os.Stat(StatePath(opts.StateDir, st.NetNS)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file after stop: %v", err)
	}
	err = r.Do(func() error { _, err := Stop(context.Background(), opts); return err })
	if !errors.Is(err, ErrNotStarted) {
		t.Fatalf("second stop: %v, want ErrNotStarted", err)
	}
}

// Start twice: the same setup is a no-op, a different one an error; status
// notices what was undone behind lvsrs's back.
func TestStartTwiceAndDrift(t *testing.T) {
	nstest.Require(t)
	r := nstest.New(t, "rs")
	opts := testOptions(t)
	r.Sysctl("net.ipv4.conf.all.arp_announce", "1")
	before := snapshot(t, r)
	cfg := Config{Mode: ModeDR, VIPs: []netip.Addr{tVIP}}
	if _, err := startIn(r, cfg, opts); err != nil {
		t.Fatalf("start: %v", err)
	}
	again, err := startIn(r, Config{Mode: ModeDR, VIPs: []netip.Addr{tVIP, tVIP}}, opts)
	if err != nil || !again.AlreadyApplied() {
		t.Fatalf("start again: %v (already applied %v)", err, again != nil && again.AlreadyApplied())
	}
	if _, err := startIn(r, Config{Mode: ModeDR, VIPs: []netip.Addr{tVIP2}}, opts); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("start with other VIPs: %v, want ErrAlreadyStarted", err)
	}

	// Undo two things behind its back.
	lo := r.Link("lo")
	if err := r.Netlink().AddrDel(lo, &netlink.Addr{IPNet: &net.IPNet{IP: tVIP.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	r.Sysctl("net.ipv4.conf.all.arp_ignore", "0")
	var checks []Check
	if err := r.Do(func() (err error) { _, checks, err = Status(opts); return err }); err != nil {
		t.Fatalf("status: %v", err)
	}
	var failed []string
	for _, c := range checks {
		if !c.OK {
			failed = append(failed, c.Item+": "+c.Problem)
		}
	}
	if len(failed) != 2 || !strings.Contains(failed[0], "arp_ignore") || !strings.Contains(failed[1], "207.175.44.110/32") {
		t.Fatalf("status failures %q, want the arp_ignore and the address", failed)
	}
	if _, err := startIn(r, cfg, opts); !errors.Is(err, ErrAlreadyStarted) || !strings.Contains(err.Error(), "no longer intact") {
		t.Fatalf("start over a drifted setup: %v", err)
	}

	stopIn(t, r, opts)
	requireSame(t, "after stop", before, snapshot(t, r))
}

// A failing start reverts what it had already changed.
func TestStartRollsBack(t *testing.T) {
	nstest.Require(t)
	l := newSelftestLab(t)
	opts := testOptions(t)
	// The second VIP is on a network interface: refused, after the sysctls
	// and the first VIP were applied.
	l.rs.Addr("veth20", "207.175.44.111/24")
	l.rs.Sysctl("net.ipv4.conf.all.rp_filter", "1")
	before := snapshot(t, l.rs)
	_, err := startIn(l.rs, Config{Mode: ModeDR, VIPs: []netip.Addr{tVIP, tVIP2}, Iface: "veth21"}, opts)
	if err == nil || !strings.Contains(err.Error(), "already configured on veth20") {
		t.Fatalf("start: %v, want the VIP-on-veth20 refusal", err)
	}
	requireSame(t, "after the failed start", before, snapshot(t, l.rs))
	entries, _ := os.ReadDir(opts.StateDir)
	if len(entries) != 0 {
		t.Fatalf("state left after a failed start: %v", entries)
	}
}

// (2) nat start replaces the default routes with one via the director; stop
// puts the previous ones back, metrics and all.
func TestNATStartStop(t *testing.T) {
	nstest.Require(t)
	l := newSelftestLab(t)
	r := l.rs
	opts := testOptions(t)
	r.Route("default", "10.0.0.1", "veth20")
	// A second, less preferred default via another gateway.
	if err := r.Netlink().RouteAdd(&netlink.Route{LinkIndex: r.Link("veth21").Attrs().Index,
		Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: net.ParseIP("172.16.0.254"), Priority: 200}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, r)

	// The director must be on a connected network.
	if _, err := startIn(r, Config{Mode: ModeNAT, DIP: netip.MustParseAddr("192.0.2.99")}, opts); err == nil ||
		!strings.Contains(err.Error(), "not on a directly connected network") {
		t.Fatalf("start with an off-link DIP: %v", err)
	}
	requireSame(t, "after the refused start", before, snapshot(t, r))

	setup, err := startIn(r, Config{Mode: ModeNAT, DIP: tDIP}, opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	var defaults []string
	if err := r.Do(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		rs, err := defaultRoutes(h)
		for _, x := range rs {
			defaults = append(defaults, saveRoute(h, x).String())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(defaults, []string{"default via 172.16.0.1 dev veth21"}) {
		t.Fatalf("default routes during nat: %q", defaults)
	}
	// Nothing but routes changed: no VIP, no sysctl on a NAT real server.
	for _, d := range before.Diff(snapshot(t, r)) {
		if !strings.HasPrefix(d[1:], "table 254 ") {
			t.Errorf("nat start changed more than the main table: %s", d)
		}
	}
	if it := setup.State().Items; len(it) != 1 || it[0].Route == nil || len(it[0].Route.Replaced) != 2 {
		t.Fatalf("items %v, want one route replacing two", it)
	}
	// The real server now reaches the client network through the director.
	out := r.Run("ip", "route", "get", "198.51.100.1")
	if !strings.Contains(out, "via 172.16.0.1 dev veth21") {
		t.Fatalf("route get: %s", out)
	}

	stopIn(t, r, opts)
	requireSame(t, "after stop", before, snapshot(t, r))
}

// (3) tun mode without kernel ipip: IP-in-IP from the director is
// decapsulated in userspace onto the TUN device; socat on the VIP answers
// and the answer goes straight to the client over veth20, as in the
// selftest's TUN mode. Malformed packets are counted and dropped; while the
// decapsulator runs the kernel sends no protocol-unreachable.
func TestTUNUserspaceDecap(t *testing.T) {
	nstest.Require(t)
	l := newSelftestLab(t)
	r := l.rs
	opts := testOptions(t)
	// Strict reverse-path filtering everywhere (also for devices created
	// later): the inner packets from 10.0.0.2 arrive on the TUN device but
	// 10.0.0.2 is reached over veth20, so only rp_filter=0 lets them in.
	for _, k := range []string{"all", "default", "veth21", "veth20"} {
		r.Sysctl("net.ipv4.conf."+k+".rp_filter", "1")
	}
	// The client must not reset the handshake we play from the director.
	l.client.Run("nft", "add table ip lvst")
	l.client.Run("nft", "add chain ip lvst out { type filter hook output priority 0 ; }")
	l.client.Run("nft", "add rule ip lvst out tcp sport 40001 tcp flags & rst == rst drop")
	before := snapshot(t, r)

	send := ipipSender(t, l.director)
	icmp := icmpListener(t, l.director)

	// Control: with nothing listening for protocol 4 the kernel answers
	// protocol-unreachable, so the check below can fail.
	send(innerUDP(t, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(tVIP, 8080), []byte("before")))
	if !icmp.protoUnreachable(t, time.Second) {
		t.Fatal("control: no ICMP protocol-unreachable without the decapsulator")
	}

	ctx, cancel := context.WithCancel(context.Background())
	setupc := make(chan *Setup, 1)
	served := make(chan error, 1)
	go func() {
		served <- r.Do(func() error {
			s, err := Start(Config{Mode: ModeTUN, VIPs: []netip.Addr{tVIP}, Iface: "veth21", Userspace: true}, opts)
			if err != nil {
				return err
			}
			setupc <- s
			return s.Serve(ctx)
		})
	}()
	// Stops the decapsulator once (the test's end or its cleanup).
	waitServe := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-served:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("Serve did not return")
		}
	})
	var setup *Setup
	select {
	case setup = <-setupc:
	case err := <-served:
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = waitServe() })

	r.Start("socat", "-T", "10", "UDP4-RECVFROM:8080,bind=207.175.44.110,fork", "PIPE")
	_, tcpOut := r.Start("socat", "-u", "-T", "10", "TCP4-LISTEN:8081,reuseaddr", "STDOUT")
	waitListening(t, r, "-uln", "207.175.44.110:8080")
	waitListening(t, r, "-tln", ":8081")

	// UDP: the datagram reaches socat, the echo reaches the client directly.
	var conn net.PacketConn
	if err := l.client.Do(func() (err error) { conn, err = net.ListenPacket("udp4", "10.0.0.2:40000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := []byte("lvsrs userspace decap " + r.Name)
	send(innerUDP(t, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(tVIP, 8080), payload))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatalf("client: no UDP reply: %v (decapsulator %s)", err, setup.Stats())
	}
	if string(buf[:n]) != string(payload) || from.String() != "207.175.44.110:8080" {
		t.Fatalf("client got %q from %s, want the echo from the VIP", buf[:n], from)
	}

	// TCP: SYN, the SYN-ACK goes to the client directly, then data.
	tcpTap := tcpListener(t, l.client)
	cl := netip.AddrPortFrom(tClient, 40001)
	svc := netip.AddrPortFrom(tVIP, 8081)
	send(innerTCP(t, cl, svc, 1000, 0, true, false, false, nil))
	synack := tcpTap.await(t, svc, cl, func(s tcpSeg) bool { return s.syn && s.ack && s.ackNum == 1001 })
	data := []byte("tcp through lvsrs " + r.Name)
	send(innerTCP(t, cl, svc, 1001, synack.seq+1, false, true, true, data))
	tcpTap.await(t, svc, cl, func(s tcpSeg) bool { return s.ack && s.ackNum == 1001+uint32(len(data)) })
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(tcpOut.String(), string(data)) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(tcpOut.String(), string(data)) {
		t.Fatalf("socat TCP listener got %q, want %q", tcpOut.String(), data)
	}

	// Malformed or foreign packets: counted, dropped, nothing delivered.
	other := innerUDP(t, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), 8080), []byte("x"))
	prev := setup.Stats()
	send([]byte{0x45, 0x00, 0x00, 0x28, 0, 0, 0, 0}) // inner header cut short
	send(append([]byte{0x60}, make([]byte, 39)...))  // inner IPv6
	send(other)                                      // inner not for a VIP
	waitStats(t, setup, func(s DecapStats) bool { return s.Received == prev.Received+3 })
	s := setup.Stats()
	if s.Delivered() != prev.Delivered() ||
		s.Verdicts[DropInnerHeaderLength] != prev.Verdicts[DropInnerHeaderLength]+1 ||
		s.Verdicts[DropInnerVersion] != prev.Verdicts[DropInnerVersion]+1 ||
		s.Verdicts[DropNotVIP] != prev.Verdicts[DropNotVIP]+1 {
		t.Fatalf("after malformed packets: %s (before %s)", s, prev)
	}
	// An outer header with options is well-formed: delivered.
	send2 := ipipHdrinclSender(t, l.director)
	send2(innerUDP(t, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(tVIP, 8080), []byte("options")))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := conn.ReadFrom(buf); err != nil || string(buf[:n]) != "options" {
		t.Fatalf("outer header with options: reply %q, %v (decapsulator %s)", buf[:n], err, setup.Stats())
	}
	if icmp.protoUnreachable(t, 300*time.Millisecond) {
		t.Fatal("the kernel sent protocol-unreachable while the decapsulator ran")
	}
	t.Logf("decapsulator: %s", setup.Stats())

	if err := waitServe(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	requireSame(t, "after the decapsulator stopped", before, snapshot(t, r))
}

// tun mode with the kernel's ipip: tunl0 up with the VIP, rp_filter off on
// it. Only where the kernel has ipip.
func TestTUNKernel(t *testing.T) {
	nstest.Require(t)
	if !KernelIPIP() {
		testenv.KernelLacks(t, "the ipip module", "the userspace path is TestTUNUserspaceDecap")
	}
	l := newSelftestLab(t)
	r := l.rs
	opts := testOptions(t)
	before := snapshot(t, r)
	setup, err := startIn(r, Config{Mode: ModeTUN, VIPs: []netip.Addr{tVIP}, Iface: "veth21"}, opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if setup.Foreground() {
		t.Fatal("kernel tun mode wants a foreground process")
	}
	if v, _ := readSysctlIn(r, "net/ipv4/conf/tunl0/rp_filter"); v != "0" {
		t.Fatalf("tunl0 rp_filter %q", v)
	}
	if out := r.Run("ip", "-4", "addr", "show", "dev", "tunl0"); !strings.Contains(out, "207.175.44.110/32") || !strings.Contains(out, "UP") {
		t.Fatalf("tunl0: %s", out)
	}
	stopIn(t, r, opts)
	requireSame(t, "after stop", before, snapshot(t, r))
}

func readSysctlIn(ns *nstest.NS, key string) (string, error) {
	var v string
	err := ns.Do(func() (err error) { v, err = netns.ReadSysctl(key); return err })
	return v, err
}

func waitListening(t *testing.T, ns *nstest.NS, flags, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if out, _ := ns.Try("ss", "-H", flags); strings.Contains(out, addr) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: nothing listens on %s", ns.Name, addr)
}

func waitStats(t *testing.T, s *Setup, ok func(DecapStats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(s.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("decapsulator counters stuck at %s", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ipipSender returns a function sending IP-in-IP from the director to the
// real server: a raw IPPROTO_IPIP socket, so the kernel writes the outer
// header (172.16.0.1 → 172.16.0.2, protocol 4) around what it is given.
func ipipSender(t *testing.T, ns *nstest.NS) func(inner []byte) {
	t.Helper()
	var fd int
	if err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP)
		return err
	}); err != nil {
		t.Fatalf("raw IPIP socket in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return func(inner []byte) {
		t.Helper()
		if err := unix.Sendto(fd, inner, 0, &unix.SockaddrInet4{Addr: tRIP.As4()}); err != nil {
			t.Fatalf("send IP-in-IP: %v", err)
		}
	}
}

// ipipHdrinclSender sends with a hand-built outer header carrying IP
// options (IHL 6); the kernel fills in length and checksum.
func ipipHdrinclSender(t *testing.T, ns *nstest.NS) func(inner []byte) {
	t.Helper()
	var fd int
	if err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP)
		if err == nil {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1)
		}
		return err
	}); err != nil {
		t.Fatalf("raw IPIP socket in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return func(inner []byte) {
		t.Helper()
		nop, eol := layers.IPv4Option{OptionType: 1}, layers.IPv4Option{OptionType: 0}
		pkt := encap(t, tDIP, tRIP, 0, inner, nop, nop, nop, eol)
		if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: tRIP.As4()}); err != nil {
			t.Fatalf("send IP-in-IP with options: %v", err)
		}
	}
}

// rawListener reads IPv4 packets of one protocol arriving in a namespace.
type rawListener struct{ f *os.File }

func rawListen(t *testing.T, ns *nstest.NS, proto int) *rawListener {
	t.Helper()
	var fd int
	if err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		return err
	}); err != nil {
		t.Fatalf("raw socket in %s: %v", ns.Name, err)
	}
	f := os.NewFile(uintptr(fd), "raw")
	t.Cleanup(func() { f.Close() })
	return &rawListener{f: f}
}

// next returns the next packet before the deadline, or nil.
func (l *rawListener) next(deadline time.Time, buf []byte) []byte {
	_ = l.f.SetReadDeadline(deadline)
	n, err := l.f.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func icmpListener(t *testing.T, ns *nstest.NS) *rawListener {
	return rawListen(t, ns, unix.IPPROTO_ICMP)
}

// protoUnreachable reports whether an ICMP protocol-unreachable from the
// real server arrives within d.
func (l *rawListener) protoUnreachable(t *testing.T, d time.Duration) bool {
	buf := make([]byte, 2048)
	deadline := time.Now().Add(d)
	for {
		p := l.next(deadline, buf)
		if p == nil {
			return false
		}
		ihl := int(p[0]&0x0f) * 4
		if len(p) >= ihl+2 && netip.AddrFrom4([4]byte(p[12:16])) == tRIP && p[ihl] == 3 && p[ihl+1] == 2 {
			return true
		}
	}
}

func tcpListener(t *testing.T, ns *nstest.NS) *rawListener {
	return rawListen(t, ns, unix.IPPROTO_TCP)
}

type tcpSeg struct {
	seq, ackNum   uint32
	syn, ack, rst bool
}

// await returns the first TCP segment from src to dst that satisfies ok.
func (l *rawListener) await(t *testing.T, src, dst netip.AddrPort, ok func(tcpSeg) bool) tcpSeg {
	t.Helper()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := l.next(deadline, buf)
		if p == nil {
			t.Fatalf("no matching TCP segment %s → %s arrived", src, dst)
		}
		ihl := int(p[0]&0x0f) * 4
		if len(p) < ihl+20 {
			continue
		}
		th := p[ihl:]
		s := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[12:16])), uint16(th[0])<<8|uint16(th[1]))
		d := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[16:20])), uint16(th[2])<<8|uint16(th[3]))
		if s != src || d != dst {
			continue
		}
		seg := tcpSeg{
			seq:    uint32(th[4])<<24 | uint32(th[5])<<16 | uint32(th[6])<<8 | uint32(th[7]),
			ackNum: uint32(th[8])<<24 | uint32(th[9])<<16 | uint32(th[10])<<8 | uint32(th[11]),
			syn:    th[13]&0x02 != 0, ack: th[13]&0x10 != 0, rst: th[13]&0x04 != 0,
		}
		if ok(seg) {
			return seg
		}
	}
}
