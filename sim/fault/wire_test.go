package fault

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"lvslab/internal/testenv"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// logBuffer keeps the stage's log lines for the test to read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wireTimeline starts a stage that delays by the userspace wire (as on a
// kernel without netem, whatever this one has).
func (l *testLab) wireTimeline(t *testing.T, entries string) (*Stage, *logBuffer) {
	t.Helper()
	s, err := spec.Parse([]byte(l.base+"\nseed: 42\ntimeline:\n"+entries), "lan3.yaml", spec.Options{})
	require.NoError(t, err)
	logs := &logBuffer{}
	no := false
	st := New(s, Options{PollInterval: 20 * time.Millisecond, Netem: &no,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, st.Start(context.Background(), l.lab, time.Now()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, st.Stop(ctx))
		t.Logf("stage log:\n%s", logs)
	})
	return st, logs
}

// rtts pings from a node and returns the round-trip times.
// rtts measures count round trips. The tests judge delays, not loss: a
// reply that does not come (a loaded machine can lose the first echo while
// a wire settles) is asked for again, up to three rounds.
func (l *testLab) rtts(t *testing.T, from, to string, count int, interval string) []time.Duration {
	t.Helper()
	var d []time.Duration
	for round := 0; round < 3 && len(d) < count; round++ {
		out, _ := l.run(from, "ping", "-n", "-c", strconv.Itoa(count-len(d)), "-i", interval, "-W", "2", to)
		for _, m := range regexp.MustCompile(`time=([\d.]+) ms`).FindAllStringSubmatch(out, -1) {
			ms, err := strconv.ParseFloat(m[1], 64)
			require.NoError(t, err)
			d = append(d, time.Duration(ms*float64(time.Millisecond)))
		}
	}
	return d
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// wireSettled is the wire snapshot once it equals want, or after 5s the
// last one: the kernel finishes taking a veth pair and its peer's netns
// reference apart after the call that deleted it has returned ("Peer netns
// reference is invalid" in ip link meanwhile).
func (l *testLab) wireSettled(t *testing.T, want map[string]string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := l.wireSnapshot(t)
		if maps.Equal(got, want) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wireSnapshot is what a delay wire changes and must put back, as text:
// links (with their bridge port details) and nftables of the segment,
// the bridge's permanent forwarding entries, the nodes' links and the
// lab's namespaces. Timers and interface indexes are left out: they move
// on their own.
func (l *testLab) wireSnapshot(t *testing.T) map[string]string {
	t.Helper()
	timers := regexp.MustCompile(`\b(\w+_timer)\s+[\d.]+`)
	norm := func(s string) string {
		s = regexp.MustCompile(`(?m)^\d+: `).ReplaceAllString(s, "")
		// ip -d link prints this line while the kernel is still taking
		// apart a veth of another namespace (wireSettled's comment): a
		// transient of the listing, not a change of this node's links.
		s = strings.ReplaceAll(s, "Error: Peer netns reference is invalid.\n", "")
		return timers.ReplaceAllString(s, "$1 T")
	}
	// Learned entries come and go with traffic: permanent ones only.
	var fdb []string
	for _, line := range strings.Split(l.inSegment("lan", "bridge", "fdb", "show"), "\n") {
		if strings.HasSuffix(strings.TrimSpace(line), "permanent") {
			fdb = append(fdb, line)
		}
	}
	slices.Sort(fdb)
	snap := map[string]string{
		"seg ip -d link":  norm(l.inSegment("lan", "ip", "-d", "link")),
		"seg bridge link": norm(l.inSegment("lan", "bridge", "-d", "link")),
		"seg fdb":         strings.Join(fdb, "\n"),
		"seg nft":         l.inSegment("lan", "nft", "list", "ruleset"),
		"seg qdisc":       l.inSegment("lan", "tc", "qdisc", "show"),
	}
	for _, n := range []string{"a", "b", "c"} {
		out, err := l.run(n, "ip", "-d", "link")
		require.NoError(t, err, out)
		snap[n+" ip -d link"] = norm(out)
	}
	ents, err := os.ReadDir(topo.DefaultNetnsDir)
	require.NoError(t, err)
	var ns []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), topo.NamespaceName(l.lab.Name(), "")) {
			ns = append(ns, e.Name())
		}
	}
	snap["namespaces"] = strings.Join(ns, " ")
	return snap
}

// sendFile sends size random bytes over TCP from one node to another and
// checks they arrive intact.
func (l *testLab) sendFile(t *testing.T, from, to, toAddr string, size int) time.Duration {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	want := sha256.Sum256(data)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recv, err := l.lab.Command(ctx, to, "sh", "-c", "socat -u TCP-LISTEN:5002,reuseaddr - | sha256sum")
	require.NoError(t, err)
	var got bytes.Buffer
	recv.Stdout = &got
	require.NoError(t, recv.Start())
	require.Eventually(t, func() bool {
		out, _ := l.run(to, "ss", "-Hltn")
		return strings.Contains(out, ":5002 ")
	}, 5*time.Second, 20*time.Millisecond)
	start := time.Now()
	send, err := l.lab.Command(ctx, from, "socat", "-u", "-", "TCP:"+toAddr+":5002")
	require.NoError(t, err)
	send.Stdin = bytes.NewReader(data)
	out, err := send.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, recv.Wait())
	d := time.Since(start)
	assert.Equal(t, hex.EncodeToString(want[:]), strings.Fields(got.String())[0], "the data arrived intact")
	return d
}

func TestDelayWireInLab(t *testing.T) {
	requireNetns(t)
	testenv.Tools(t, "bridge", "tc", "ss", "sha256sum")
	l := buildLabNamed(t, "dly")
	base := l.rtts(t, "a", "10.81.0.2", 3, "0.1")
	require.Len(t, base, 3, "the lab must work before any fault")
	t.Logf("RTT a->b before: %v", base)
	before := l.wireSnapshot(t)

	t.Run("both directions, then back", func(t *testing.T) {
		st, logs := l.wireTimeline(t, `
  - {name: slow, at: 0s, fault: delay, target: b:eth0, delay: 100ms, for: 5s}
`)
		ev := waitEvent(t, st, "slow", 10*time.Second) // a condition, not a measure: a loaded machine starts the wire slowly
		t.Logf("%s: %s", ev.Name, ev.Detail)
		assert.Contains(t, ev.Detail, "userspace delay wire")
		during := l.wireSnapshot(t)
		assert.Contains(t, during["seg bridge link"], "b-eth0.dbr")
		assert.NotEqual(t, before["seg ip -d link"], during["seg ip -d link"])
		assert.Equal(t, before["b ip -d link"], during["b ip -d link"], "the node sees no change")
		rtt := l.rtts(t, "a", "10.81.0.2", 5, "0.2")
		t.Logf("RTT a->b with 100ms each way: %v", rtt)
		require.Len(t, rtt, 5)
		assert.Greater(t, median(rtt), 180*time.Millisecond)
		assert.Less(t, median(rtt), 400*time.Millisecond)
		took := l.sendFile(t, "a", "b", "10.81.0.2", 2_000_000)
		t.Logf("2 MB a->b through the wire: %s", took)
		end := waitEvent(t, st, "slow.end", 8*time.Second)
		assertLate(t, 5*time.Second, end.At-ev.At, "for: 5s")
		after := l.rtts(t, "a", "10.81.0.2", 3, "0.1")
		t.Logf("RTT a->b after: %v", after)
		require.Len(t, after, 3)
		assert.Less(t, median(after), 50*time.Millisecond)
		assert.Equal(t, before, l.wireSettled(t, before), "the fault's end put everything back")
		assert.Contains(t, logs.String(), "delay wire removed")
	})

	t.Run("one direction adds the delay once", func(t *testing.T) {
		st, _ := l.wireTimeline(t, `
  - {name: slow-in, at: 0s, fault: delay, target: b:eth0, delay: 100ms, direction: ingress}
`)
		waitEvent(t, st, "slow-in", 2*time.Second)
		rtt := l.rtts(t, "a", "10.81.0.2", 5, "0.2")
		t.Logf("RTT a->b with 100ms into b: %v", rtt)
		require.Len(t, rtt, 5)
		assert.Greater(t, median(rtt), 90*time.Millisecond)
		assert.Less(t, median(rtt), 200*time.Millisecond)
		stopStage(t, st)
		assert.Equal(t, before, l.wireSettled(t, before))
	})

	t.Run("jitter spreads the delay", func(t *testing.T) {
		st, _ := l.wireTimeline(t, `
  - {name: shaky, at: 0s, fault: delay, target: b:eth0, delay: 60ms, jitter: 40ms, direction: egress}
`)
		waitEvent(t, st, "shaky", 2*time.Second)
		// Pings further apart than the jitter's span: order-keeping
		// does not bunch them.
		rtt := l.rtts(t, "a", "10.81.0.2", 15, "0.12")
		t.Logf("RTT a->b with 60ms ± 40ms out of b: %v", rtt)
		require.GreaterOrEqual(t, len(rtt), 14)
		assert.GreaterOrEqual(t, slices.Min(rtt), 15*time.Millisecond)
		// The median, not the maximum: a loaded machine can hold one
		// frame in the userspace wire for hundreds of milliseconds.
		assert.Less(t, median(rtt), 150*time.Millisecond)
		assert.Greater(t, slices.Max(rtt)-slices.Min(rtt), 25*time.Millisecond, "jitter spreads the round trips")
	})

	t.Run("blackhole and loss still apply through the wire", func(t *testing.T) {
		st, _ := l.wireTimeline(t, `
  - {name: hole, at: 0s, fault: blackhole, target: b:eth0, direction: egress, for: 12s}
  - {name: slow, when: {event: hole, after: 300ms}, fault: delay, target: b:eth0, delay: 50ms}
  - {name: lossy, when: {state: {addr: {node: b, has: 10.81.0.98}}}, fault: loss, target: b:eth0, loss: 100%, direction: egress}
`)
		// The hole lasts long enough for the pings made while it is there
		// however slowly ping starts and the wire comes up (a loaded
		// machine takes seconds to start it); the loss comes when the test
		// says so (the address), after it has measured the round trips.
		waitEvent(t, st, "slow", 10*time.Second)
		assert.Contains(t, l.inSegment("lan", "nft", "list", "ruleset"), "lvslab_wire_", "the wire mirrors the blackhole")
		assert.False(t, l.ping("a", "10.81.0.2"), "a delay wire put in after a blackhole keeps it")
		waitEvent(t, st, "hole.end", 20*time.Second)
		assert.NotContains(t, l.inSegment("lan", "nft", "list", "ruleset"), "lvslab_wire_", "nothing left to mirror")
		rtt := l.rtts(t, "a", "10.81.0.2", 3, "0.2")
		t.Logf("RTT a->b between the filters: %v", rtt)
		require.Len(t, rtt, 3)
		assert.Greater(t, median(rtt), 90*time.Millisecond)
		h := l.lab.Node("b").Netlink()
		lo, err := h.LinkByName("lo")
		require.NoError(t, err)
		mark := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.81.0.98"), Mask: net.CIDRMask(32, 32)}}
		require.NoError(t, h.AddrAdd(lo, mark))
		waitEvent(t, st, "lossy", 5*time.Second)
		assert.False(t, l.ping("a", "10.81.0.2"), "a loss put in over a delay wire applies")
		require.NoError(t, h.AddrDel(lo, mark))
		stopStage(t, st)
		assert.Equal(t, before, l.wireSettled(t, before))
		assert.True(t, l.ping("a", "10.81.0.2"))
	})

	t.Run("Stop reverts a node-wide delay and a link.down over it", func(t *testing.T) {
		st, _ := l.wireTimeline(t, `
  - {name: slow-a, at: 0s, fault: delay, target: a, delay: 30ms}
  - {name: cut, when: {event: slow-a, after: 2500ms}, fault: link.down, target: a:eth0}
`)
		waitEvent(t, st, "slow-a", 2*time.Second)
		rtt := l.rtts(t, "c", "10.81.0.1", 2, "0.1")
		require.Len(t, rtt, 2)
		assert.Greater(t, median(rtt), 55*time.Millisecond)
		// a has TSO on: its super-frames are cut on the way out.
		took := l.sendFile(t, "a", "c", "10.81.0.3", 300_000)
		t.Logf("300 kB a->c through the wire: %s", took)
		waitEvent(t, st, "cut", 4*time.Second)
		assert.False(t, l.ping("c", "10.81.0.1"), "link.down still cuts the node off")
		stopStage(t, st)
		assert.Equal(t, before, l.wireSettled(t, before))
		assert.True(t, l.ping("c", "10.81.0.1"))
	})

	t.Run("a wire that cannot be built leaves nothing", func(t *testing.T) {
		// A link already called like the wire's bridge end.
		l.inSegment("lan", "ip", "link", "add", "b-eth0.dbr", "type", "veth", "peer", "name", "blocker")
		defer l.inSegment("lan", "ip", "link", "del", "b-eth0.dbr")
		blocked := l.wireSnapshot(t)
		st, _ := l.wireTimeline(t, `
  - {name: slow, at: 0s, fault: delay, target: b:eth0, delay: 10ms}
`)
		ev := waitEvent(t, st, "slow.failed", 2*time.Second)
		assert.Contains(t, ev.Detail, "b-eth0.dbr")
		assert.Equal(t, blocked, l.wireSettled(t, blocked))
		assert.True(t, l.ping("a", "10.81.0.2"))
	})

	t.Run("a wire failing at its last step is taken apart", func(t *testing.T) {
		ctx := context.Background()
		a := newLabActor(l.lab, Options{NetnsDir: topo.DefaultNetnsDir}, false, 0, slog.New(slog.DiscardHandler))
		defer a.close()
		undoHole, _, err := a.filter(ctx, &spec.Event{Name: "hole", Fault: spec.FaultBlackhole, Target: "b:eth0", Direction: "egress"})
		require.NoError(t, err)
		withHole := l.wireSnapshot(t)
		a.wireFault = func(step string) error { return fmt.Errorf("injected failure at %s", step) }
		_, _, err = a.delay(ctx, &spec.Event{Name: "slow", Fault: spec.FaultDelay, Target: "b:eth0", Delay: spec.Duration(10 * time.Millisecond)})
		require.ErrorContains(t, err, "injected failure at up")
		assert.Equal(t, withHole, l.wireSettled(t, withHole), "the mirror table, the pair and the swap are undone")
		require.NoError(t, undoHole(ctx))
		assert.Empty(t, a.ingress, "the filter's record went with it")
		assert.Empty(t, a.wires)
	})

	assert.Equal(t, before, l.wireSettled(t, before), "nothing any subtest did remains")
}
