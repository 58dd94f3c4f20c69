package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"lvslab/internal/nstest"
	"lvslab/rs"
)

// The test binary doubles as lvsrs: with this variable set it runs main's
// logic, so the namespace tests drive the real command line in processes
// of their own (a separate stop, signals, exit codes).
const asCommand = "LVSRS_TEST_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(asCommand) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, exitUsage, "usage:"},
		{[]string{"-h"}, exitOK, "usage:"},
		{[]string{"frobnicate", "--mode", "dr", "--vip", "192.0.2.1"}, exitUsage, "unknown command"},
		{[]string{"start"}, exitUsage, "start needs --mode"},
		{[]string{"start", "--mode", "dr"}, exitUsage, "at least one VIP"},
		{[]string{"start", "--mode", "fullnat", "--vip", "192.0.2.1"}, exitUsage, "unknown mode"},
		{[]string{"start", "--mode", "nat"}, exitUsage, "DIP"},
		{[]string{"start", "--mode", "nat", "--dip", "not-an-address"}, exitUsage, "--dip"},
		{[]string{"start", "--mode", "dr", "--vip", "192.0.2.1,bad"}, exitUsage, "bad"},
		{[]string{"start", "--mode", "dr", "--vip", "192.0.2.1", "--label", "eth0:1"}, exitUsage, "label"},
		{[]string{"status", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"stop", "--vip", "192.0.2.1"}, exitUsage, "need --mode"},
		{[]string{"start", "--no-such-flag"}, exitUsage, "no-such-flag"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.msg) {
			t.Errorf("lvsrs %q: exit %d, output %q; want exit %d mentioning %q", c.args, code, out.String()+errb.String(), c.code, c.msg)
		}
	}
}

// lvsrs runs the command in a namespace and returns its output and exit code.
func lvsrs(t *testing.T, ns *nstest.NS, args ...string) (string, int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := ns.Try("env", append([]string{asCommand + "=1", exe}, args...)...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	t.Fatalf("run lvsrs %q: %v", args, err)
	return "", 0
}

func mustLvsrs(t *testing.T, ns *nstest.NS, want int, args ...string) string {
	t.Helper()
	out, code := lvsrs(t, ns, args...)
	if code != want {
		t.Fatalf("lvsrs %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// fg is a foreground lvsrs process.
type fg struct {
	cmd  *exec.Cmd
	out  *nstest.SyncBuffer
	done chan struct{}
	err  error
}

func startForeground(t *testing.T, ns *nstest.NS, args ...string) *fg {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &fg{out: &nstest.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = ns.Cmd(context.Background(), "env", append([]string{asCommand + "=1", exe}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start lvsrs: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.out.String(), "SIGINT or SIGTERM reverts") {
		select {
		case <-p.done:
			t.Fatalf("lvsrs exited early: %v\n%s", p.err, p.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("lvsrs did not come up:\n%s", p.out)
		}
	}
	return p
}

// wait returns the exit code once the process ends.
func (p *fg) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("lvsrs did not exit:\n%s", p.out)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("lvsrs: %v", p.err)
	}
	return 0
}

func snapshot(t *testing.T, ns *nstest.NS) rs.Snapshot {
	t.Helper()
	var s rs.Snapshot
	if err := ns.Do(func() (err error) { s, err = rs.TakeSnapshot(); return err }); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}

func requireSame(t *testing.T, what string, before, after rs.Snapshot) {
	t.Helper()
	if d := before.Diff(after); len(d) > 0 {
		t.Fatalf("%s differs from before start:\n%s", what, strings.Join(d, "\n"))
	}
}

// realServer is a namespace like the selftest's ns2: veth21 towards the
// director, with strict rp_filter and no arp settings, as a distribution
// leaves them. The state file goes where the contract says, /run/lvsrs,
// and is removed if a test fails before stop.
func realServer(t *testing.T) (*nstest.NS, string) {
	t.Helper()
	_, r, path := directorAndRealServer(t)
	return r, path
}

func directorAndRealServer(t *testing.T) (*nstest.NS, *nstest.NS, string) {
	t.Helper()
	d := nstest.New(t, "d")
	r := nstest.New(t, "rs")
	nstest.Veth(t, d, "veth12", r, "veth21", 0)
	r.Addr("veth21", "172.16.0.2/24")
	d.Addr("veth12", "172.16.0.1/24")
	for _, k := range []string{"all", "default", "veth21"} {
		r.Sysctl("net.ipv4.conf."+k+".rp_filter", "1")
	}
	var id rs.NetNSID
	if err := r.Do(func() (err error) { id, err = rs.CurrentNetNS(); return err }); err != nil {
		t.Fatal(err)
	}
	path := rs.StatePath(rs.DefaultStateDir, id)
	t.Cleanup(func() { os.Remove(path) })
	return d, r, path
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendIPIPUDP tunnels a UDP datagram 10.0.0.2:40000 → VIP:8080 from the
// director (172.16.0.1) to the real server (172.16.0.2): the kernel adds
// the outer header to what a raw IPPROTO_IPIP socket sends.
func sendIPIPUDP(t *testing.T, d *nstest.NS, payload []byte) {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IPv4(10, 0, 0, 2), DstIP: net.IPv4(207, 175, 44, 110)}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 8080}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	err := d.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, buf.Bytes(), 0, &unix.SockaddrInet4{Addr: [4]byte{172, 16, 0, 2}})
	})
	if err != nil {
		t.Fatalf("send IP-in-IP from %s: %v", d.Name, err)
	}
}

func TestCLIDR(t *testing.T) {
	nstest.Require(t)
	r, statePath := realServer(t)
	before := snapshot(t, r)
	args := []string{"--mode", "dr", "--vip", "207.175.44.110,207.175.44.111", "--iface", "veth21", "--label", "lo:0"}

	out := mustLvsrs(t, r, exitOK, append([]string{"start"}, args...)...)
	if !strings.Contains(out, "address 207.175.44.111/32 on lo label lo:0") || !strings.Contains(out, "arp_ignore = 1 (was 0)") {
		t.Fatalf("start output:\n%s", out)
	}
	if _, err := os.Stat(statePath); err != nil {
		t.Fatalf("state file: %v", err)
	}
	if out := mustLvsrs(t, r, exitOK, append([]string{"start"}, args...)...); !strings.Contains(out, "already applied") {
		t.Fatalf("second start:\n%s", out)
	}
	if out := mustLvsrs(t, r, exitFail, "start", "--mode", "dr", "--vip", "198.51.100.1"); !strings.Contains(out, "already started in this network namespace with --mode dr --vip 207.175.44.110,207.175.44.111") {
		t.Fatalf("start with another VIP:\n%s", out)
	}
	if out := mustLvsrs(t, r, exitOK, "status"); strings.Count(out, "  ok ") != 10 || strings.Contains(out, "FAIL") {
		t.Fatalf("status:\n%s", out)
	}
	// Status with the same flags agrees; with others it says so.
	mustLvsrs(t, r, exitOK, append([]string{"status"}, args...)...)
	mustLvsrs(t, r, exitFail, "status", "--mode", "tun", "--vip", "207.175.44.110")

	r.Sysctl("net.ipv4.conf.all.arp_announce", "0")
	if out := mustLvsrs(t, r, exitFail, "status"); !strings.Contains(out, "FAIL  sysctl net/ipv4/conf/all/arp_announce = 2 (was 0): is 0") {
		t.Fatalf("status after drift:\n%s", out)
	}

	mustLvsrs(t, r, exitOK, append([]string{"stop"}, args...)...)
	requireSame(t, "after stop", before, snapshot(t, r))
	if out := mustLvsrs(t, r, exitOK, "stop"); !strings.Contains(out, "nothing to stop") {
		t.Fatalf("stop without start:\n%s", out)
	}
	if out := mustLvsrs(t, r, exitNotStarted, "status"); !strings.Contains(out, "not started") {
		t.Fatalf("status after stop:\n%s", out)
	}
	if _, err := os.Stat(statePath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file after stop: %v", err)
	}
}

func TestCLINAT(t *testing.T) {
	nstest.Require(t)
	r, _ := realServer(t)
	r.Route("default", "172.16.0.254", "veth21")
	before := snapshot(t, r)
	mustLvsrs(t, r, exitOK, "start", "--mode", "nat", "--dip", "172.16.0.1")
	if out := r.Run("ip", "-4", "route", "show", "default"); strings.TrimSpace(out) != "default via 172.16.0.1 dev veth21" {
		t.Fatalf("default route: %q", out)
	}
	mustLvsrs(t, r, exitOK, "status")
	mustLvsrs(t, r, exitOK, "stop")
	requireSame(t, "after stop", before, snapshot(t, r))
}

// tunArgs is the foreground tun command line (userspace forced, so the
// tests mean the same on kernels with ipip).
func tunArgs(cmd string) []string {
	return []string{cmd, "--mode", "tun", "--vip", "207.175.44.110", "--iface", "veth21", "--userspace"}
}

// (4) SIGTERM to the foreground tun process: it reverts everything (TUN
// device, VIP, sysctls) and exits 0.
func TestCLITUNSIGTERM(t *testing.T) {
	nstest.Require(t)
	d, r, statePath := directorAndRealServer(t)
	before := snapshot(t, r)
	p := startForeground(t, r, tunArgs("start")...)

	out := mustLvsrs(t, r, exitOK, "status")
	for _, want := range []string{"(userspace decapsulation)", "ok    link lvsrs0 (tun) created, up", "ok    address 207.175.44.110/32 on lvsrs0",
		"ok    sysctl net/ipv4/conf/lvsrs0/rp_filter = 0 (was 1)", "ok    sysctl net/ipv4/conf/all/rp_filter = 0 (was 1)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	// A second foreground start in the same namespace is refused.
	if out := mustLvsrs(t, r, exitFail, tunArgs("start")...); !strings.Contains(out, "decapsulator runs as pid") {
		t.Fatalf("second start:\n%s", out)
	}
	// The process decapsulates: a datagram tunnelled from the director
	// reaches a listener on the VIP.
	_, got := r.Start("socat", "-u", "UDP4-RECV:8080,bind=207.175.44.110", "STDOUT")
	waitFor(t, "socat to listen", func() bool {
		out, _ := r.Try("ss", "-H", "-uln")
		return strings.Contains(out, "207.175.44.110:8080")
	})
	sendIPIPUDP(t, d, []byte("via the lvsrs process"))
	waitFor(t, "the datagram at socat", func() bool { return strings.Contains(got.String(), "via the lvsrs process") })

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, p.out)
	}
	if !strings.Contains(p.out.String(), "reverted (received=1 delivered=1)") {
		t.Fatalf("output:\n%s", p.out)
	}
	requireSame(t, "after SIGTERM", before, snapshot(t, r))
	if _, err := os.Stat(statePath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file after SIGTERM: %v", err)
	}
}

// `lvsrs stop` from another process stops the foreground one, which reverts.
func TestCLITUNStopFromAnotherProcess(t *testing.T) {
	nstest.Require(t)
	r, _ := realServer(t)
	before := snapshot(t, r)
	p := startForeground(t, r, tunArgs("start")...)
	mustLvsrs(t, r, exitOK, "stop")
	if code := p.wait(t); code != 0 {
		t.Fatalf("foreground exit %d:\n%s", code, p.out)
	}
	requireSame(t, "after stop", before, snapshot(t, r))
}

// SIGKILL leaves no chance to revert: the TUN device dies with the process,
// the rest stays recorded, status says so, and stop reverts it.
func TestCLITUNKilled(t *testing.T) {
	nstest.Require(t)
	r, _ := realServer(t)
	before := snapshot(t, r)
	p := startForeground(t, r, tunArgs("start")...)
	_ = p.cmd.Process.Kill()
	p.wait(t)

	out := mustLvsrs(t, r, exitFail, "status")
	for _, want := range []string{"FAIL  decapsulator process", "not running", "FAIL  link lvsrs0 (tun) created, up: device missing"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	if out := mustLvsrs(t, r, exitFail, tunArgs("start")...); !strings.Contains(out, "ended without reverting; run stop first") {
		t.Fatalf("start after a crash:\n%s", out)
	}
	mustLvsrs(t, r, exitOK, "stop")
	requireSame(t, "after stop", before, snapshot(t, r))
}
