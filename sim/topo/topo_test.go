package topo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lvslab/capture"
	"lvslab/internal/netns"
	"lvslab/internal/testenv"
	"lvslab/sim/spec"
)

// requireNetns skips unless namespace tests can run here (fails under CI).
func requireNetns(t testing.TB) {
	t.Helper()
	testenv.Netns(t)
}

// labName is unique to this test process, so parallel test binaries and a
// developer's own labs never share namespace names.
func labName(what string) string { return fmt.Sprintf("t%d-%s", os.Getpid(), what) }

func testOptions(t testing.TB) Options {
	return Options{StateDir: t.TempDir()}
}

const pingSpec = `
name: %s
segments:
  lan: {subnets: 10.77.0.0/24, mtu: 1400}
nodes:
  a:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.77.0.1/24, offloads: {tso: off, gro: off}}]
    loopback: 192.0.2.77/32
    sysctls: {net.ipv4.conf.eth0.arp_ignore: 1}
    files: {/etc/hello: {content: "hi\n", mode: "0600"}}
  b:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.77.0.2/24, mac: "02:00:00:00:77:02"}]
    routes: [{dst: 192.0.2.77/32, via: 10.77.0.1}]
  c:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.77.0.3/24}]
    processes:
      - {name: setup, oneshot: true, shell: "echo ${node} > setup.out"}
      - {name: sleeper, cmd: [sleep, "600"]}
      - {name: waiter, shell: "sleep 0.2; touch ready; exec sleep 600", ready: {file: ready}, after: [sleeper]}
`

func loadSpec(t testing.TB, src string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse([]byte(src), "test.yaml", spec.Options{})
	require.NoError(t, err)
	return s
}

func nsRun(t *testing.T, l *Lab, node string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd, err := l.Command(ctx, node, argv...)
	require.NoError(t, err)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s: %s: %s", node, strings.Join(argv, " "), out)
	return string(out)
}

// TestBuildPingTeardown builds three hosts on one bridge, checks what the
// spec asked for is there and that they reach each other across the
// bridge, then tears down and finds nothing left.
func TestBuildPingTeardown(t *testing.T) {
	requireNetns(t)
	name := labName("ping")
	s := loadSpec(t, fmt.Sprintf(pingSpec, name))
	opts := testOptions(t)
	ctx := context.Background()
	lab, err := Build(ctx, s, opts)
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = lab.Close(ctx)
		}
	})

	// Across the bridge, both ways, and to a's loopback through the route.
	assert.Contains(t, nsRun(t, lab, "a", "ping", "-c1", "-W2", "10.77.0.2"), "1 received")
	assert.Contains(t, nsRun(t, lab, "c", "ping", "-c1", "-W2", "10.77.0.1"), "1 received")
	assert.Contains(t, nsRun(t, lab, "b", "ping", "-c1", "-W2", "192.0.2.77"), "1 received")

	// Links: MACs (derived and given), MTU from the segment.
	a := lab.Node("a")
	require.NotNil(t, a)
	l, err := a.Netlink().LinkByName("eth0")
	require.NoError(t, err)
	assert.Equal(t, string(spec.DefaultMAC(name, "a", "eth0")), l.Attrs().HardwareAddr.String())
	assert.Equal(t, 1400, l.Attrs().MTU)
	lb, err := lab.Node("b").Netlink().LinkByName("eth0")
	require.NoError(t, err)
	assert.Equal(t, "02:00:00:00:77:02", lb.Attrs().HardwareAddr.String())

	// The segment namespace holds the bridge and one port per interface.
	var seg *segment
	for _, sg := range lab.segments {
		seg = sg
	}
	require.NotNil(t, seg)
	links, err := seg.ns.Netlink().LinkList()
	require.NoError(t, err)
	ports := map[string]string{}
	for _, pl := range links {
		if pl.Attrs().MasterIndex != 0 {
			ports[pl.Attrs().Name] = pl.Attrs().Alias
		}
	}
	assert.Equal(t, map[string]string{"a-eth0": "a:eth0", "b-eth0": "b:eth0", "c-eth0": "c:eth0"}, ports)

	// Inside a: sysctls, IPv6 off, offloads.
	require.NoError(t, a.Do(func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv4/conf/eth0/arp_ignore")
		if err != nil {
			return err
		}
		assert.Equal(t, "1", strings.TrimSpace(string(b)))
		b, err = os.ReadFile("/proc/sys/net/ipv6/conf/eth0/disable_ipv6")
		if err != nil {
			return err
		}
		assert.Equal(t, "1", strings.TrimSpace(string(b)))
		fs, err := capture.ReadFeatures("eth0")
		if err != nil {
			return err
		}
		f, ok := fs.Get("tx-tcp-segmentation")
		assert.True(t, ok)
		assert.False(t, f.Active, "tso off")
		f, _ = fs.Get("rx-gro")
		assert.False(t, f.Active, "gro off")
		return nil
	}))

	// Files.
	st, err := os.Stat(filepath.Join(a.Dir, "etc", "hello"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// Processes: the oneshot ran (with ${node} filled in), the others run
	// in order, ready.
	var names []string
	for _, p := range lab.Processes() {
		names = append(names, p.Name)
	}
	assert.Equal(t, []string{"setup", "sleeper", "waiter"}, names)
	out, err := os.ReadFile(filepath.Join(lab.Node("c").Dir, "setup.out"))
	require.NoError(t, err)
	assert.Equal(t, "c\n", string(out))
	assert.Equal(t, ProcExited, lab.Process("c", "setup").Status().State)
	sleeper := lab.Process("c", "sleeper").Status()
	assert.Equal(t, ProcRunning, sleeper.State)
	assert.Equal(t, ProcRunning, lab.Process("c", "waiter").Status().State)
	assert.Equal(t, lab.Node("c").ns.Inode(), netns.ProcessInode(sleeper.PID), "the process runs in its node's namespace")

	// The registry knows all of it.
	rec, err := FindLab(opts, name)
	require.NoError(t, err)
	assert.Len(t, rec.Namespaces, 4)
	assert.Len(t, rec.Processes, 3)
	inodes := map[uint64]bool{}
	for _, ns := range rec.Namespaces {
		assert.NotZero(t, ns.Inode, ns.Name)
		inodes[ns.Inode] = true
	}

	closed = true
	require.NoError(t, lab.Close(ctx))
	assertGone(t, opts, name, rec, inodes)
}

// assertGone checks that nothing of a lab is left: no pins, no registry
// entry, none of its processes, no thread of this test process in its
// namespaces, no lvsl- link in the root namespace.
func assertGone(t *testing.T, opts Options, name string, rec *Record, inodes map[uint64]bool) {
	t.Helper()
	left, err := Leftovers(opts, name)
	require.NoError(t, err)
	assert.Empty(t, left)
	for _, p := range rec.Processes {
		assert.NotEqual(t, p.Start, processStart(p.PID), "process %s/%s (%d) still alive", p.Node, p.Name, p.PID)
	}
	for _, ns := range rec.Namespaces {
		_, err := os.Stat(filepath.Join(DefaultNetnsDir, ns.Name))
		assert.True(t, errors.Is(err, os.ErrNotExist), "pin %s still there", ns.Name)
	}
	// No thread of ours was left inside: the namespaces can really go.
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if ino := taskNSInode(tid); inodes[ino] {
			t.Errorf("thread %d is still in a lab namespace", tid)
		}
	}
	if len(inodes) > 0 {
		assert.Empty(t, pidsInNamespaces(inodes))
	}
	links, err := netlink.LinkList()
	require.NoError(t, err)
	for _, l := range links {
		assert.False(t, strings.HasPrefix(l.Attrs().Name, Prefix), "root namespace link %s", l.Attrs().Name)
	}
}

func taskNSInode(tid int) uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/task/"+strconv.Itoa(tid)+"/ns/net", &st); err != nil {
		return 0
	}
	return st.Ino
}

// TestFailedBuildCleansUp: a process that never gets ready fails the build,
// and the half-built lab is removed.
func TestFailedBuildCleansUp(t *testing.T) {
	requireNetns(t)
	name := labName("fail")
	s := loadSpec(t, fmt.Sprintf(`
name: %s
segments: {lan: {}}
nodes:
  a:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.78.0.1/24}]
    processes:
      - {name: up, cmd: [sleep, "600"]}
      - {name: never, cmd: [sleep, "600"], ready: {command: ["false"], timeout: 300ms, interval: 50ms}}
`, name))
	opts := testOptions(t)
	_, err := Build(context.Background(), s, opts)
	require.Error(t, err)
	var pe *ProcessError
	require.True(t, errors.As(err, &pe), "%v", err)
	assert.Equal(t, "never", pe.Name)
	assert.Contains(t, err.Error(), "not ready after 300ms")
	left, err := Leftovers(opts, name)
	require.NoError(t, err)
	assert.Empty(t, left)
}

// TestMissingProgram is an environment error before anything is built.
func TestMissingProgram(t *testing.T) {
	requireNetns(t)
	name := labName("noprog")
	s := loadSpec(t, fmt.Sprintf(`
name: %s
segments: {lan: {}}
nodes:
  a: {role: host, processes: [{name: x, cmd: [no-such-program-lvslab]}]}
`, name))
	opts := testOptions(t)
	_, err := Build(context.Background(), s, opts)
	var ee *EnvError
	require.True(t, errors.As(err, &ee), "%v", err)
	assert.Contains(t, err.Error(), "test.yaml:5:46: nodes.a.processes[0].cmd: program no-such-program-lvslab not found in PATH")
	left, _ := Leftovers(opts, name)
	assert.Empty(t, left)
}

// TestStaleLabIsSwept: a record whose owner is gone (lock free, not up) is
// removed, namespaces included, by the next Build.
func TestStaleLabIsSwept(t *testing.T) {
	requireNetns(t)
	name := labName("stale")
	s := loadSpec(t, fmt.Sprintf(pingSpec, name))
	opts := testOptions(t)
	ctx := context.Background()
	lab, err := Build(ctx, s, opts)
	require.NoError(t, err)
	rec, err := FindLab(opts, name)
	require.NoError(t, err)
	// Pretend the owner died: drop our handles and lock without removing
	// anything (what a SIGKILL leaves).
	for _, n := range lab.nodes {
		_ = n.ns.Close()
	}
	for _, sg := range lab.segments {
		_ = sg.ns.Close()
	}
	lab.lock.release()
	labs, err := Labs(opts)
	require.NoError(t, err)
	require.Len(t, labs, 1)
	assert.False(t, labs[0].Live, "a run-mode lab without its owner is stale")

	again, err := Build(ctx, s, opts)
	require.NoError(t, err, "the next build sweeps the stale lab")
	for _, p := range rec.Processes {
		// Killed; our Wait goroutine reaps it shortly after.
		assert.Eventually(t, func() bool { return processStart(p.PID) != p.Start }, 2*time.Second, 10*time.Millisecond,
			"stale process %s/%s survived", p.Node, p.Name)
	}
	require.NoError(t, again.Close(ctx))
	assertGone(t, opts, name, rec, nil)
}

// TestPortNames: bridge ports are named node-iface when that fits.
func TestPortNames(t *testing.T) {
	assert.Equal(t, "rs1-eth0", portName("rs1", "eth0", 3))
	assert.Equal(t, "p7", portName("director-long", "eth0", 7))
}

func TestOrderProcesses(t *testing.T) {
	mk := func(node, name string, after ...string) *Process {
		return &Process{Node: node, Name: name, after: after}
	}
	procs := []*Process{mk("d", "watch", "d/lvsd"), mk("d", "lvsd"), mk("r", "web")}
	out, err := orderProcesses(procs)
	require.NoError(t, err)
	var got []string
	for _, p := range out {
		got = append(got, p.Node+"/"+p.Name)
	}
	assert.Equal(t, []string{"d/lvsd", "d/watch", "r/web"}, got)
	_, err = orderProcesses([]*Process{mk("a", "x", "a/y"), mk("a", "y", "a/x")})
	assert.Error(t, err)
}

// TestSameNameOtherRegistry: a lab of the same name recorded in another
// registry cannot be built over, and the failed attempt leaves the first
// lab intact.
func TestSameNameOtherRegistry(t *testing.T) {
	requireNetns(t)
	name := labName("twin")
	s := loadSpec(t, fmt.Sprintf(pingSpec, name))
	ctx := context.Background()
	first, err := Build(ctx, s, Options{StateDir: t.TempDir(), NoProcesses: true})
	require.NoError(t, err)
	defer first.Close(ctx)
	other := Options{StateDir: t.TempDir(), NoProcesses: true}
	_, err = Build(ctx, s, other)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "file exists")
	// The first lab is untouched and still works.
	assert.Contains(t, nsRun(t, first, "a", "ping", "-c1", "-W2", "10.77.0.3"), "1 received")
	_, err = Clean(ctx, other, false, name)
	require.NoError(t, err)
	assert.Contains(t, nsRun(t, first, "b", "ping", "-c1", "-W2", "10.77.0.1"), "1 received")
}

// TestOrphanPinsCleaned: a pin no registry explains (a lost registry) is
// removed by a clean of the default registry naming its lab, with the
// process inside it.
func TestOrphanPinsCleaned(t *testing.T) {
	requireNetns(t)
	name := labName("orphan")
	require.NoError(t, netns.EnsureSharedDir(DefaultNetnsDir))
	ns, err := netns.NewPinned(DefaultNetnsDir, NamespaceName(name, "x"))
	require.NoError(t, err)
	require.NoError(t, ns.Close())
	cmd := exec.Command("ip", "netns", "exec", NamespaceName(name, "x"), "sleep", "600")
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	// ip netns exec enters the namespace after it started.
	pin := netns.PinnedInode(filepath.Join(DefaultNetnsDir, NamespaceName(name, "x")))
	require.Eventually(t, func() bool { return netns.ProcessInode(cmd.Process.Pid) == pin }, 5*time.Second, 5*time.Millisecond)

	rep, err := Clean(context.Background(), Options{}, false, name)
	require.NoError(t, err)
	assert.Equal(t, []string{name}, rep.Labs)
	assert.Equal(t, 1, rep.Killed)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the process in the orphan namespace survived")
	}
	_, err = os.Stat(filepath.Join(DefaultNetnsDir, NamespaceName(name, "x")))
	assert.True(t, errors.Is(err, os.ErrNotExist))
}
