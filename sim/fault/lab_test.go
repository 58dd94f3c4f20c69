package fault

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lvslab/internal/netns"
	"lvslab/internal/testenv"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// The namespace tests build testdata/lan3.yaml once (a, b, c on one
// bridge) and run one timeline per subtest against it; each subtest's
// Stop must leave the lab as it found it for the next.

func requireNetns(t *testing.T) {
	t.Helper()
	testenv.Netns(t)
	testenv.Tools(t, "nft", "ping", "socat", "nsenter")
}

type testLab struct {
	t    *testing.T
	lab  *topo.Lab
	base string
}

func buildLab(t *testing.T) *testLab {
	t.Helper()
	return buildLabNamed(t, "flt")
}

// buildLabNamed builds lan3.yaml as lab t<pid>-<suffix>.
func buildLabNamed(t *testing.T, suffix string) *testLab {
	t.Helper()
	b, err := os.ReadFile("testdata/lan3.yaml")
	require.NoError(t, err)
	base := strings.ReplaceAll(string(b), "@NAME@", fmt.Sprintf("t%d-%s", os.Getpid(), suffix))
	s, err := spec.Parse([]byte(base), "lan3.yaml", spec.Options{})
	require.NoError(t, err)
	ctx := context.Background()
	lab, err := topo.Build(ctx, s, topo.Options{StateDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, lab.Close(cctx))
	})
	return &testLab{t: t, lab: lab, base: base}
}

// timeline starts a stage running the given timeline entries (YAML list
// items) against the lab; Stop runs at the end of the subtest unless the
// test stops it first.
func (l *testLab) timeline(t *testing.T, entries string) *Stage {
	t.Helper()
	s, err := spec.Parse([]byte(l.base+"\ntimeline:\n"+entries), "lan3.yaml", spec.Options{})
	require.NoError(t, err)
	st := New(s, Options{PollInterval: 20 * time.Millisecond})
	require.NoError(t, st.Start(context.Background(), l.lab, time.Now()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, st.Stop(ctx))
	})
	return st
}

func stopStage(t *testing.T, st *Stage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, st.Stop(ctx))
}

// waitEvent waits for the named event and returns it.
func waitEvent(t *testing.T, st *Stage, name string, within time.Duration) runner.Event {
	t.Helper()
	// A condition, not a measurement: the test goes on the moment the
	// event is there, so the bound only decides how long a loaded machine
	// may take to start a fault (an nft transaction, a wire, a process)
	// before the test gives up. Tests that care how long something took
	// judge the events' own timestamps.
	within = max(within, 10*time.Second)
	var got runner.Event
	ok := assert.Eventually(t, func() bool {
		for _, e := range st.Events() {
			if e.Name == name {
				got = e
				return true
			}
		}
		return false
	}, within, 10*time.Millisecond, "event %s", name)
	if !ok {
		t.Fatalf("events so far: %+v", st.Events())
	}
	return got
}

func (l *testLab) run(node string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd, err := l.lab.Command(ctx, node, argv...)
	if err != nil {
		return "", err
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (l *testLab) ping(from, to string) bool {
	_, err := l.run(from, "ping", "-n", "-c1", "-W0.5", to)
	return err == nil
}

// inSegment runs a command in the segment's namespace.
func (l *testLab) inSegment(seg string, argv ...string) string {
	l.t.Helper()
	path := filepath.Join(topo.DefaultNetnsDir, topo.NamespaceName(l.lab.Name(), seg))
	out, err := exec.Command("nsenter", append([]string{"--net=" + path}, argv...)...).CombinedOutput()
	require.NoError(l.t, err, "%s: %s", strings.Join(argv, " "), out)
	return string(out)
}

func (l *testLab) link(node, dev string) netlink.Link {
	l.t.Helper()
	ln, err := l.lab.Node(node).Netlink().LinkByName(dev)
	require.NoError(l.t, err)
	return ln
}

func (l *testLab) sysctl(node, key string) string {
	l.t.Helper()
	var v string
	require.NoError(l.t, l.lab.Node(node).Do(func() (err error) {
		v, err = netns.ReadSysctl(key)
		return err
	}))
	return v
}

func (l *testLab) neighMAC(node, ip string) string {
	l.t.Helper()
	list, err := l.lab.Node(node).Netlink().NeighList(0, netlink.FAMILY_V4)
	require.NoError(l.t, err)
	for _, ne := range list {
		if ne.IP.String() == ip && ne.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
			return ne.HardwareAddr.String()
		}
	}
	return ""
}

func procState(t *testing.T, pid int) byte {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	i := bytes.LastIndexByte(b, ')')
	return b[i+2]
}

// waitProcState waits for a process to reach a state (signals take effect
// asynchronously).
func waitProcState(t *testing.T, pid int, want byte) {
	t.Helper()
	assert.Eventually(t, func() bool { return procState(t, pid) == want }, 2*time.Second, 5*time.Millisecond,
		"process %d in state %c", pid, want)
}

// snapshot is everything a fault may change, as text.
// settled takes snapshots until one equals want or 5 s have passed, and
// returns the last: the kernel reports a link's carrier a little after the
// link came back up (a veth peer once still read NO-CARRIER right after
// link.up was reverted), so "as before" is judged once the state settles.
func (l *testLab) settled(want map[string]string) map[string]string {
	l.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := l.snapshot()
		same := len(got) == len(want)
		for k, v := range want {
			same = same && got[k] == v
		}
		if same || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (l *testLab) snapshot() map[string]string {
	l.t.Helper()
	snap := map[string]string{
		"seg nft":   l.inSegment("lan", "nft", "list", "ruleset"),
		"seg qdisc": l.inSegment("lan", "tc", "qdisc", "show"),
		"seg links": regexp.MustCompile(`\d+: `).ReplaceAllString(l.inSegment("lan", "ip", "-br", "link"), ""),
	}
	for _, n := range []string{"a", "b", "c"} {
		for what, argv := range map[string][]string{
			"nft":   {"nft", "list", "ruleset"},
			"qdisc": {"tc", "qdisc", "show"},
			"links": {"ip", "-br", "link"},
			"perm":  {"ip", "neigh", "show", "nud", "permanent"},
		} {
			out, err := l.run(n, argv...)
			require.NoError(l.t, err, out)
			snap[n+" "+what] = out
		}
		snap[n+" sysctl"] = l.sysctl(n, "net.ipv4.conf.eth0.arp_ignore") + " " + l.sysctl(n, "net.ipv4.ip_forward")
	}
	return snap
}

func TestFaultsInLab(t *testing.T) {
	requireNetns(t)
	l := buildLab(t)
	require.True(t, l.ping("a", "10.81.0.2"), "the lab must work before any fault")
	before := l.snapshot()

	t.Run("link.down then link.up", func(t *testing.T) {
		st := l.timeline(t, `
  - {name: cut, at: 0s, fault: link.down, target: a:eth0, for: 1500ms}
`)
		ev := waitEvent(t, st, "cut", 2*time.Second)
		assert.Contains(t, ev.Detail, "lost carrier")
		ln := l.link("a", "eth0")
		assert.NotZero(t, ln.Attrs().Flags&net.FlagUp, "a:eth0 stays administratively up")
		assert.Zero(t, ln.Attrs().RawFlags&unix.IFF_LOWER_UP, "a:eth0 has no carrier")
		assert.False(t, l.ping("a", "10.81.0.2"))
		end := waitEvent(t, st, "cut.end", 3*time.Second)
		assertLate(t, 1500*time.Millisecond, end.At-ev.At, "for: 1500ms")
		assert.Eventually(t, func() bool { return l.ping("a", "10.81.0.2") }, 3*time.Second, 100*time.Millisecond)
	})

	t.Run("blackhole keeps the carrier", func(t *testing.T) {
		st := l.timeline(t, `
  - {name: hole, at: 0s, fault: blackhole, target: b:eth0}
`)
		waitEvent(t, st, "hole", 2*time.Second)
		assert.NotZero(t, l.link("b", "eth0").Attrs().RawFlags&unix.IFF_LOWER_UP, "carrier stays up")
		assert.False(t, l.ping("a", "10.81.0.2"))
		assert.False(t, l.ping("b", "10.81.0.3"))
		assert.True(t, l.ping("a", "10.81.0.3"))
		stopStage(t, st)
		assert.True(t, l.ping("a", "10.81.0.2"))
	})

	t.Run("partition between two nodes only", func(t *testing.T) {
		st := l.timeline(t, `
  - {name: split, at: 0s, fault: partition, between: [a, b]}
  - {name: no-tcp, at: 0s, fault: partition, between: [a, "c:eth0"], proto: tcp}
`)
		waitEvent(t, st, "split", 2*time.Second)
		waitEvent(t, st, "no-tcp", 2*time.Second)
		assert.False(t, l.ping("a", "10.81.0.2"))
		assert.False(t, l.ping("b", "10.81.0.1"))
		assert.True(t, l.ping("a", "10.81.0.3"), "tcp-only partition lets ping through")
		assert.True(t, l.ping("b", "10.81.0.3"))
		stopStage(t, st)
		assert.True(t, l.ping("a", "10.81.0.2"))
	})

	t.Run("loss drops about the share asked", func(t *testing.T) {
		st := l.timeline(t, `
  - {name: lossy, at: 0s, fault: loss, target: b:eth0, loss: 30%, direction: ingress}
`)
		waitEvent(t, st, "lossy", 2*time.Second)
		out, _ := l.run("a", "ping", "-n", "-q", "-c", "300", "-i", "0.005", "-W", "1", "10.81.0.2")
		m := regexp.MustCompile(`(\d+) received`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		got, _ := strconv.Atoi(m[1])
		lost := 300 - got
		t.Logf("lost %d of 300", lost)
		assert.InDelta(t, 90, lost, 45, "30%% of 300 (loose bounds)")
	})

	t.Run("rate limits a transfer", func(t *testing.T) {
		st := l.timeline(t, `
  - {name: thin, at: 0s, fault: rate, target: b:eth0, rate: 16mbit, direction: ingress}
  - {name: thin-out, at: 0s, fault: rate, target: c:eth0, rate: 16mbit, direction: egress}
`)
		ev := waitEvent(t, st, "thin", 2*time.Second)
		assert.Contains(t, ev.Detail, "tbf")
		waitEvent(t, st, "thin-out", 2*time.Second)
		assert.Contains(t, l.inSegment("lan", "tc", "qdisc", "show"), "tbf 1fa:")
		const size = 2_000_000 // 1 s at 16 mbit/s
		into := l.transfer(t, "a", "b", "10.81.0.2", size)
		out := l.transfer(t, "c", "a", "10.81.0.1", size)
		t.Logf("a->b %s, c->a %s", into, out)
		for _, d := range []time.Duration{into, out} {
			// A limit only slows a transfer down: the lower bound is the
			// rate's, the upper one only says it finished (a loaded
			// machine adds seconds of process start-up to it).
			assert.Greater(t, d, 600*time.Millisecond)
			assert.Less(t, d, 20*time.Second)
		}
		stopStage(t, st)
		// Unlimited again: judged on the qdiscs the fault put in, not on
		// how fast this machine happens to be now.
		assert.NotContains(t, l.inSegment("lan", "tc", "qdisc", "show"), "tbf")
		free := l.transfer(t, "a", "b", "10.81.0.2", size)
		t.Logf("a->b without the limit %s", free)
	})

	t.Run("process.stop and process.cont", func(t *testing.T) {
		pid := l.lab.Process("a", "sleeper").Status().PID
		st := l.timeline(t, `
  - {name: freeze, at: 0s, fault: process.stop, target: a/sleeper, for: 800ms}
  - {name: freeze2, when: {event: freeze.end, after: 200ms}, fault: process.stop, target: a/sleeper}
  - {name: thaw, when: {event: freeze2, after: 300ms}, fault: process.cont, target: a/sleeper}
`)
		waitEvent(t, st, "freeze", 2*time.Second)
		waitProcState(t, pid, 'T')
		waitEvent(t, st, "freeze.end", 2*time.Second)
		waitProcState(t, pid, 'S')
		waitEvent(t, st, "freeze2", 2*time.Second)
		waitProcState(t, pid, 'T')
		waitEvent(t, st, "thaw", 2*time.Second)
		waitProcState(t, pid, 'S')
	})

	t.Run("process.kill and process.restart", func(t *testing.T) {
		p := l.lab.Process("a", "sleeper")
		pid := p.Status().PID
		st := l.timeline(t, `
  - {name: k, at: 0s, fault: process.kill, target: a/sleeper, signal: TERM}
  - {name: r, when: {event: k, after: 200ms}, fault: process.restart, target: a/sleeper}
  - {name: r2, when: {event: r, after: 100ms}, fault: process.restart, target: a/sleeper}
`)
		ev := waitEvent(t, st, "k", 2*time.Second)
		assert.Contains(t, ev.Detail, "SIGTERM")
		waitEvent(t, st, "r", 3*time.Second)
		waitEvent(t, st, "r2", 8*time.Second)
		got := p.Status()
		assert.Equal(t, topo.ProcRunning, got.State)
		assert.NotEqual(t, pid, got.PID)
		var r1PID int
		for _, e := range st.Events() {
			if e.Name == "r" {
				_, err := fmt.Sscanf(e.Detail[strings.Index(e.Detail, "-> ")+3:], "%d", &r1PID)
				require.NoError(t, err, e.Detail)
			}
		}
		assert.NotEqual(t, r1PID, got.PID, "the second restart replaced a running process")
		assert.NotContains(t, names(st.Events()), "r.failed")
	})

	t.Run("sysctl set and restored", func(t *testing.T) {
		st := l.timeline(t, `
  - {name: knobs, at: 0s, fault: sysctl, target: a, set: {net.ipv4.conf.eth0.arp_ignore: "2", net.ipv4.ip_forward: "1"}, for: 500ms}
`)
		ev := waitEvent(t, st, "knobs", 2*time.Second)
		assert.Contains(t, ev.Detail, "was 0")
		assert.Equal(t, "2", l.sysctl("a", "net.ipv4.conf.eth0.arp_ignore"))
		assert.Equal(t, "1", l.sysctl("a", "net.ipv4.ip_forward"))
		waitEvent(t, st, "knobs.end", 2*time.Second)
		assert.Equal(t, "0", l.sysctl("a", "net.ipv4.conf.eth0.arp_ignore"))
		assert.Equal(t, "0", l.sysctl("a", "net.ipv4.ip_forward"))
	})

	t.Run("neigh.wrong then arp.flush", func(t *testing.T) {
		cMAC := l.link("c", "eth0").Attrs().HardwareAddr.String()
		bMAC := l.link("b", "eth0").Attrs().HardwareAddr.String()
		st := l.timeline(t, `
  - {name: poison, at: 0s, fault: neigh.wrong, target: a, ip: 10.81.0.2, mac_of: "c:eth0"}
  - {name: flush, when: {event: poison, after: 1500ms}, fault: arp.flush, target: a, ip: 10.81.0.2}
`)
		waitEvent(t, st, "poison", 2*time.Second)
		assert.Equal(t, cMAC, l.neighMAC("a", "10.81.0.2"))
		assert.False(t, l.ping("a", "10.81.0.2"), "frames for b go to c")
		ev := waitEvent(t, st, "flush", 3*time.Second)
		assert.Contains(t, ev.Detail, cMAC)
		assert.Equal(t, "", l.neighMAC("a", "10.81.0.2"))
		assert.True(t, l.ping("a", "10.81.0.2"))
		assert.Equal(t, bMAC, l.neighMAC("a", "10.81.0.2"))
	})

	t.Run("when event.end with after", func(t *testing.T) {
		st := l.timeline(t, `
  - {name: blip, at: 100ms, fault: link.down, target: c:eth0, for: 300ms}
  - {name: later, when: {event: blip.end, after: 1s}, fault: exec, target: c, shell: "echo from-c"}
`)
		end := waitEvent(t, st, "blip.end", 2*time.Second)
		later := waitEvent(t, st, "later", 3*time.Second)
		assertLate(t, time.Second, later.At-end.At, "after: 1s")
		assert.Contains(t, later.Detail, "from-c")
	})

	t.Run("log and state triggers", func(t *testing.T) {
		st := l.timeline(t, `
  - {name: go, at: 200ms, fault: process.start, target: a/talker}
  - {name: heard, when: {log: {process: a/talker, match: "hello-trig"}}, fault: exec, target: a, cmd: ["true"]}
  - {name: unheard, when: {log: {process: a/sleeper, match: "never"}, timeout: 500ms}, fault: exec, target: a, cmd: ["true"]}
  - {name: seen, when: {state: {addr: {node: b, has: 10.81.0.99}}}, fault: exec, target: b, cmd: ["true"]}
`)
		started := waitEvent(t, st, "go", 2*time.Second)
		heard := waitEvent(t, st, "heard", 2*time.Second)
		assert.GreaterOrEqual(t, heard.At, started.At)
		to := waitEvent(t, st, "unheard.timeout", 2*time.Second)
		assert.Equal(t, KindTimeout, to.Kind)
		h := l.lab.Node("b").Netlink()
		lo, err := h.LinkByName("lo")
		require.NoError(t, err)
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.81.0.99"), Mask: net.CIDRMask(32, 32)}}
		time.Sleep(300 * time.Millisecond)
		assert.NotContains(t, names(st.Events()), "seen")
		require.NoError(t, h.AddrAdd(lo, addr))
		defer h.AddrDel(lo, addr)
		waitEvent(t, st, "seen", 2*time.Second)
		stopStage(t, st)
		// talker is not a fault to revert; end it so the lab is as before.
		require.NoError(t, stopProcess(context.Background(), l.lab.Process("a", "talker")))
	})

	t.Run("Stop reverts everything", func(t *testing.T) {
		pid := l.lab.Process("a", "sleeper").Status().PID
		st := l.timeline(t, `
  - {name: f1, at: 0s, fault: blackhole, target: a:eth0, direction: egress}
  - {name: f2, at: 0s, fault: loss, target: c, loss: 5%}
  - {name: f3, at: 0s, fault: rate, target: b:eth0, rate: 10mbit}
  - {name: f4, at: 0s, fault: sysctl, target: c, set: {net.ipv4.conf.eth0.arp_ignore: "1", net.ipv4.ip_forward: "1"}}
  - {name: f5, at: 0s, fault: neigh.wrong, target: b, ip: 10.81.0.3, mac_of: "a:eth0"}
  - {name: f6, at: 0s, fault: link.down, target: c:eth0}
  - {name: f7, at: 0s, fault: process.stop, target: a/sleeper}
  - {name: f8, at: 0s, fault: partition, between: [b, c], proto: vrrp}
  - {name: f9, at: 0s, fault: neigh.wrong, target: a, ip: 10.81.0.77, mac: "02:00:00:00:00:77"}
`)
		for i := 1; i <= 9; i++ {
			waitEvent(t, st, fmt.Sprintf("f%d", i), 3*time.Second)
		}
		during := l.snapshot()
		for _, k := range []string{"seg nft", "seg qdisc", "seg links", "b qdisc", "c sysctl", "b perm", "a perm"} {
			assert.NotEqual(t, before[k], during[k], "%s changed by the faults", k)
		}
		waitProcState(t, pid, 'T')
		stopStage(t, st)
		after := l.settled(before)
		for k, v := range before {
			assert.Equal(t, v, after[k], k)
		}
		waitProcState(t, pid, 'S')
		ev := map[string]runner.Event{}
		for _, e := range st.Events() {
			ev[e.Name] = e
		}
		for i := 1; i <= 9; i++ {
			assert.Equal(t, KindRevert, ev[fmt.Sprintf("f%d.revert", i)].Kind)
		}
	})

	// Nothing any subtest did may remain.
	after := l.settled(before)
	for k, v := range before {
		assert.Equal(t, v, after[k], k)
	}
}

// assertLate checks a scheduled delay by what a timer guarantees: never
// early, and late only by what a loaded machine adds to a wake-up (up to a
// second here; 360ms has been seen with both cores busy).
func assertLate(t *testing.T, want, got time.Duration, what string) {
	t.Helper()
	assert.GreaterOrEqual(t, got, want, "%s: never early", what)
	assert.Less(t, got, want+time.Second, "%s: late by at most a loaded machine's wake-up", what)
}

func names(evs []runner.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Name
	}
	return out
}

// transfer sends size bytes from one node to another over TCP and returns
// how long the receiver took to get them all.
func (l *testLab) transfer(t *testing.T, from, to, toAddr string, size int) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recv, err := l.lab.Command(ctx, to, "sh", "-c", "socat -u TCP-LISTEN:5001,reuseaddr - | wc -c")
	require.NoError(t, err)
	var got bytes.Buffer
	recv.Stdout = &got
	require.NoError(t, recv.Start())
	require.Eventually(t, func() bool {
		out, _ := l.run(to, "ss", "-Hltn")
		return strings.Contains(out, ":5001 ")
	}, 5*time.Second, 20*time.Millisecond)
	start := time.Now()
	out, err := l.run(from, "sh", "-c", fmt.Sprintf("head -c %d /dev/zero | socat -u - TCP:%s:5001", size, toAddr))
	require.NoError(t, err, out)
	require.NoError(t, recv.Wait())
	d := time.Since(start)
	assert.Equal(t, strconv.Itoa(size), strings.TrimSpace(got.String()))
	return d
}
