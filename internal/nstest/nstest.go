// Package nstest builds throw-away network namespaces for integration tests:
// real kernels on both ends, wired with veth pairs and bridges, removed again
// when the test ends (and, after a crash, by the next run: every name carries
// the Prefix).
//
// Namespaces are created, entered and configured through internal/netns
// (handles, netlink, sysctls); processes are started with `ip netns exec`,
// which also gives them the namespace's view of /sys.
package nstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"lvslab/internal/netns"
	"lvslab/internal/testenv"
)

// Prefix starts the name of every namespace this package creates.
const Prefix = "lvst-"

var staleOnce sync.Once

// Skip reasons are returned rather than decided here, so tests can report
// them in their own words.

// Available says why namespace tests cannot run here, or "" if they can.
func Available() string { return testenv.NetnsUnavailable() }

// Require skips t unless namespace tests can run (fails it under CI, see
// testenv), and removes namespaces a crashed earlier run left behind.
func Require(t testing.TB) {
	t.Helper()
	testenv.Netns(t)
	staleOnce.Do(CleanStale)
}

// CleanStale deletes namespaces with our prefix whose creating process is
// gone. The creator's PID is part of every name, so test binaries running in
// parallel never remove each other's namespaces.
func CleanStale() {
	entries, err := os.ReadDir(netns.DefaultDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, ok := creatorPID(e.Name())
		if !ok || processAlive(pid) {
			continue
		}
		killNamespacePids(e.Name())
		_ = netns.Unpin(filepath.Join(netns.DefaultDir, e.Name()))
	}
}

// creatorPID parses Prefix + pid + "-" + ... .
func creatorPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(num)
	return pid, err == nil && pid > 0
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// NS is one network namespace owned by a test.
type NS struct {
	Name string
	ns   *netns.NS
	t    testing.TB
}

// New creates a namespace called Prefix+pid-name-random, with lo up. It is
// deleted, with every process started in it, when the test ends.
func New(t testing.TB, name string) *NS {
	t.Helper()
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	full := fmt.Sprintf("%s%d-%s-%s", Prefix, os.Getpid(), name, hex.EncodeToString(suffix[:]))
	if len(full) > 80 {
		t.Fatalf("namespace name %q too long", full)
	}
	h, err := netns.NewPinned(netns.DefaultDir, full)
	if err != nil {
		t.Fatalf("create netns %s: %v", full, err)
	}
	ns := &NS{Name: full, ns: h, t: t}
	t.Cleanup(ns.destroy)
	return ns
}

func (n *NS) destroy() {
	killNamespacePids(n.Name)
	if err := n.ns.Delete(); err != nil {
		n.t.Logf("delete netns %s: %v", n.Name, err)
	}
}

// killNamespacePids kills every process still in the namespace, except this
// one, which is listed while one of its threads is inside (a Do under way,
// or a thread that could not switch back and is parked: the main thread is
// parked rather than terminated).
func killNamespacePids(name string) {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == self {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Netlink is a netlink handle bound to the namespace.
func (n *NS) Netlink() *netlink.Handle { return n.ns.Netlink() }

// Handle is the namespace's file handle.
func (n *NS) Handle() vnetns.NsHandle { return n.ns.Handle() }

// Do runs fn on an OS thread switched into the namespace (for sockets that
// must be opened inside it); see internal/netns for what fn may do.
func (n *NS) Do(fn func() error) error { return n.ns.Do(fn) }

// Cmd returns a command that runs inside the namespace.
func (n *NS) Cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command in the namespace and fails the test on error.
func (n *NS) Run(name string, args ...string) string {
	n.t.Helper()
	out, err := n.Try(name, args...)
	if err != nil {
		n.t.Fatalf("%s: %s %s: %v\n%s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs a command in the namespace and returns its combined output.
func (n *NS) Try(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var buf bytes.Buffer
	cmd := n.Cmd(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// Proc is a command started in a namespace.
type Proc struct {
	*exec.Cmd
	done chan struct{}
	err  error
}

// Wait waits for the process to exit and returns its error. Unlike
// exec.Cmd.Wait it may be called any number of times.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start starts a long-running command in the namespace; it is killed when
// the test ends. Output goes to the returned buffer.
func (n *NS) Start(name string, args ...string) (*Proc, *SyncBuffer) {
	n.t.Helper()
	buf := &SyncBuffer{}
	cmd := n.Cmd(context.Background(), name, args...)
	cmd.Stdout, cmd.Stderr = buf, buf
	// Its own process group, so the cleanup also reaches its children
	// (tshark's dumpcap would otherwise hold the output pipe open).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("%s: start %s: %v", n.Name, name, err)
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	n.t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	return p, buf
}

// Sysctl writes a sysctl (dotted or slashed key) inside the namespace.
func (n *NS) Sysctl(key, value string) {
	n.t.Helper()
	if err := n.ns.WriteSysctl(key, value); err != nil {
		n.t.Fatalf("%s: %v", n.Name, err)
	}
}

// Link returns a link of the namespace by name.
func (n *NS) Link(name string) netlink.Link {
	n.t.Helper()
	l, err := n.Netlink().LinkByName(name)
	if err != nil {
		n.t.Fatalf("%s: link %s: %v", n.Name, name, err)
	}
	return l
}

// Addr adds an address (CIDR form) to a link and sets the link up.
func (n *NS) Addr(link, cidr string) {
	n.t.Helper()
	l := n.Link(link)
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		n.t.Fatalf("address %q: %v", cidr, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())}}
	if err := n.Netlink().AddrAdd(l, a); err != nil {
		n.t.Fatalf("%s: addr add %s dev %s: %v", n.Name, cidr, link, err)
	}
	if err := n.Netlink().LinkSetUp(l); err != nil {
		n.t.Fatalf("%s: link %s up: %v", n.Name, link, err)
	}
}

// Route adds a route to dst (CIDR) via gw (empty for on-link) on dev.
func (n *NS) Route(dst, gw, dev string) {
	n.t.Helper()
	r := &netlink.Route{LinkIndex: n.Link(dev).Attrs().Index}
	if dst != "default" {
		pfx, err := netip.ParsePrefix(dst)
		if err != nil {
			n.t.Fatalf("route %q: %v", dst, err)
		}
		r.Dst = &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), 32)}
	}
	if gw != "" {
		r.Gw = net.ParseIP(gw)
	}
	if err := n.Netlink().RouteAdd(r); err != nil {
		n.t.Fatalf("%s: route add %s via %s dev %s: %v", n.Name, dst, gw, dev, err)
	}
}

// MAC returns a link's hardware address.
func (n *NS) MAC(link string) net.HardwareAddr {
	return n.Link(link).Attrs().HardwareAddr
}

// Veth creates a veth pair aName (in a) and bName (in b), both up, with the
// given MTU (0 keeps the default 1500).
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string, mtu int) {
	t.Helper()
	la := netlink.NewLinkAttrs()
	la.Name = aName
	la.MTU = mtu
	la.Namespace = netlink.NsFd(a.Handle())
	v := &netlink.Veth{LinkAttrs: la, PeerName: bName, PeerNamespace: netlink.NsFd(b.Handle())}
	if err := a.Netlink().LinkAdd(v); err != nil {
		t.Fatalf("veth %s/%s: %v", aName, bName, err)
	}
	for _, side := range []struct {
		ns   *NS
		name string
	}{{a, aName}, {b, bName}} {
		l := side.ns.Link(side.name)
		if mtu != 0 {
			if err := side.ns.Netlink().LinkSetMTU(l, mtu); err != nil {
				t.Fatalf("mtu %s: %v", side.name, err)
			}
		}
		if err := side.ns.Netlink().LinkSetUp(l); err != nil {
			t.Fatalf("%s up: %v", side.name, err)
		}
	}
}

// Bridge creates a bridge in ns and enslaves the named links to it.
func (n *NS) Bridge(name string, ports ...string) {
	n.t.Helper()
	la := netlink.NewLinkAttrs()
	la.Name = name
	br := &netlink.Bridge{LinkAttrs: la}
	if err := n.Netlink().LinkAdd(br); err != nil {
		n.t.Fatalf("%s: bridge %s: %v", n.Name, name, err)
	}
	brl := n.Link(name)
	for _, p := range ports {
		if err := n.Netlink().LinkSetMaster(n.Link(p), brl); err != nil {
			n.t.Fatalf("%s: %s master %s: %v", n.Name, p, name, err)
		}
	}
	if err := n.Netlink().LinkSetUp(brl); err != nil {
		n.t.Fatalf("%s: %s up: %v", n.Name, name, err)
	}
}

// Offload sets ethtool features (e.g. "tso", "off", "gso", "off") on a link.
func (n *NS) Offload(link string, kv ...string) {
	n.t.Helper()
	n.Run("ethtool", append([]string{"-K", link}, kv...)...)
}

// SyncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
