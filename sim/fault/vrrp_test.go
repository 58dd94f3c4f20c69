package fault

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/internal/testenv"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// The VRRP faults against a real keepalived pair (testdata/vrrp2.yaml):
// who holds the VIP is read from the nodes' addresses, which keepalived
// adds on MASTER and removes on BACKUP.

const vrrpVIP = "10.82.0.50"

func buildVRRPLab(t *testing.T) *testLab {
	t.Helper()
	testenv.Netns(t)
	testenv.Tools(t, "nft", "keepalived")
	b, err := os.ReadFile("testdata/vrrp2.yaml")
	require.NoError(t, err)
	base := strings.ReplaceAll(string(b), "@NAME@", fmt.Sprintf("t%d-vrrp", os.Getpid()))
	s, err := spec.Parse([]byte(base), "testdata/vrrp2.yaml", spec.Options{})
	require.NoError(t, err)
	lab, err := topo.Build(context.Background(), s, topo.Options{StateDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, lab.Close(ctx))
	})
	return &testLab{t: t, lab: lab, base: base}
}

// timelineAt is timeline for the VRRP lab, whose files are relative to
// testdata.
func (l *testLab) timelineAt(t *testing.T, entries string) *Stage {
	t.Helper()
	s, err := spec.Parse([]byte(l.base+"\ntimeline:\n"+entries), "testdata/vrrp2.yaml", spec.Options{})
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

// holders lists the pair's nodes that hold the VIP.
func (l *testLab) holders() []string {
	l.t.Helper()
	var out []string
	for _, n := range []string{"lb1", "lb2"} {
		addrs, err := l.lab.Node(n).Netlink().AddrList(nil, 0)
		require.NoError(l.t, err)
		for _, a := range addrs {
			if a.IP.String() == vrrpVIP {
				out = append(out, n)
			}
		}
	}
	return out
}

// waitHolders waits until exactly the given nodes hold the VIP.
func (l *testLab) waitHolders(t *testing.T, within time.Duration, want ...string) {
	t.Helper()
	var got []string
	ok := assert.Eventually(t, func() bool {
		got = l.holders()
		return strings.Join(got, ",") == strings.Join(want, ",")
	}, within, 50*time.Millisecond)
	if !ok {
		for _, n := range []string{"lb1", "lb2"} {
			b, _ := os.ReadFile(l.lab.Process(n, "keepalived").Status().Log)
			t.Logf("%s/keepalived.log:\n%s", n, lastBytes(b, 3000))
		}
		t.Fatalf("VIP holders %v, want %v", got, want)
	}
}

func TestVRRPFaultsInLab(t *testing.T) {
	l := buildVRRPLab(t)
	// advert_int 1: a backup takes over after 3 x 1 s + skew (0.6 s);
	// the first master is elected as late (keepalived starts every
	// instance in BACKUP). The faults last 6 s, longer than a takeover.
	const takeover = 8 * time.Second
	l.waitHolders(t, takeover, "lb1")

	t.Run("blackhole-vrrp-on-segment", func(t *testing.T) {
		st := l.timelineAt(t, "  - {name: mute, at: 0s, fault: blackhole, segment: lan, proto: vrrp, for: 6s}\n")
		e := waitEvent(t, st, "mute", 2*time.Second)
		assert.Contains(t, e.Detail, "blackhole both proto vrrp on segment lan")
		// Neither hears the other: split brain.
		l.waitHolders(t, takeover, "lb1", "lb2")
		// Not everything is dropped: ARP and ICMP still pass.
		assert.True(t, l.ping("c", "10.82.0.11"))
		waitEvent(t, st, "mute.end", 8*time.Second)
		// lb2 hears lb1's higher priority again and goes back to BACKUP.
		l.waitHolders(t, takeover, "lb1")
		stopStage(t, st)
	})

	t.Run("partition-vrrp", func(t *testing.T) {
		st := l.timelineAt(t, "  - {name: split, at: 0s, fault: partition, between: [lb1, lb2], proto: vrrp, for: 6s}\n")
		waitEvent(t, st, "split", 2*time.Second)
		l.waitHolders(t, takeover, "lb1", "lb2")
		assert.True(t, l.ping("lb1", "10.82.0.12"), "only VRRP is cut between them")
		waitEvent(t, st, "split.end", 8*time.Second)
		l.waitHolders(t, takeover, "lb1")
		stopStage(t, st)
	})

	t.Run("stop-keepalived-only", func(t *testing.T) {
		ka := l.lab.Process("lb1", "keepalived")
		sleeper := l.lab.Process("lb1", "sleeper")
		st := l.timelineAt(t, "  - {name: freeze, at: 0s, fault: process.stop, target: lb1/keepalived, for: 6s}\n")
		waitEvent(t, st, "freeze", 2*time.Second)
		// A frozen master sends nothing: lb2 takes over, lb1 keeps its
		// address (it cannot remove it): two holders.
		l.waitHolders(t, takeover, "lb1", "lb2")
		assert.Equal(t, byte('S'), procState(t, sleeper.Status().PID), "the node's other processes run on")
		waitEvent(t, st, "freeze.end", 8*time.Second)
		l.waitHolders(t, takeover, "lb1")
		assert.Equal(t, topo.ProcRunning, ka.Status().State)
		stopStage(t, st)
	})

	t.Run("node-kill", func(t *testing.T) {
		ka, sleeper := l.lab.Process("lb1", "keepalived"), l.lab.Process("lb1", "sleeper")
		kaPID, sleeperPID := ka.Status().PID, sleeper.Status().PID
		st := l.timelineAt(t, "  - {name: crash, at: 0s, fault: node.kill, target: lb1, for: 6s}\n")
		e := waitEvent(t, st, "crash", 7*time.Second)
		assert.Contains(t, e.Detail, fmt.Sprintf("keepalived (pid %d)", kaPID))
		assert.Contains(t, e.Detail, fmt.Sprintf("sleeper (pid %d)", sleeperPID))
		// Both ended before the event was recorded.
		assert.Equal(t, topo.ProcSignaled, ka.Status().State)
		assert.Equal(t, topo.ProcSignaled, sleeper.Status().State)
		// keepalived killed with -9 leaves its VIP on lb1 (no cleanup);
		// lb2 takes over: two holders until lb1 boots again.
		l.waitHolders(t, takeover, "lb1", "lb2")
		waitEvent(t, st, "crash.end", 20*time.Second)
		assert.Equal(t, topo.ProcRunning, ka.Status().State)
		assert.NotEqual(t, kaPID, ka.Status().PID)
		assert.Equal(t, topo.ProcRunning, sleeper.Status().State)
		// The restarted keepalived (state MASTER, priority 100) preempts.
		l.waitHolders(t, takeover, "lb1")
		stopStage(t, st)
	})
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
