package traffic

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/internal/testenv"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// requireLab skips unless namespace tests can run here, and builds the
// lvslab binary the lab runs its built-in services with.
func requireLab(t *testing.T) string {
	t.Helper()
	testenv.Netns(t)
	testenv.Tools(t, "nft") // the test blackholes a port with nft
	testenv.Go(t)           // to build lvslab for the lab's services
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	dir := t.TempDir()
	out, err := exec.Command(goBin, "build", "-o", dir+"/", "lvslab/cmd/lvslab").CombinedOutput()
	require.NoError(t, err, "go build lvslab: %s", out)
	return dir
}

// scriptStage is the test's own small timeline: it carries out the
// process.kill, process.start and exec entries of the spec at their at:
// times, or when: {event: X, after: D} once X's action has completed and
// D passed, and reports them as events, as the real timeline stage does:
// each entry on its own (one slow kill does not delay the blackhole due at
// the same time), stamped when its action began, so whatever it caused is
// seen after the stamp. A process.start is stamped when the process is
// ready instead: "after: sink-restarted" judges the restarted sink, not
// its start-up. Chaining on completion keeps an undo from overtaking its
// fault on a machine where starting nft takes a second.
type scriptStage struct {
	spec   *spec.Spec
	cancel context.CancelFunc
	done   chan struct{}
	err    error // the first entry that failed

	mu     sync.Mutex
	events []runner.Event
	spans  map[string][2]time.Duration // when each action began and ended
}

func (s *scriptStage) Name() string { return "script" }

func (s *scriptStage) Claims(sp *spec.Spec) []string {
	var out []string
	for _, e := range sp.Timeline {
		out = append(out, "timeline "+e.Name)
	}
	return out
}

func (s *scriptStage) Start(ctx context.Context, lab *topo.Lab, t0 time.Time) error {
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	s.spans = map[string][2]time.Duration{}
	completed := map[string]chan struct{}{}
	for _, e := range s.spec.Timeline {
		completed[e.Name] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for _, e := range s.spec.Timeline {
		wg.Go(func() {
			defer close(completed[e.Name])
			due := t0
			if e.When != nil {
				select {
				case <-completed[e.When.Event]:
				case <-ctx.Done():
					return
				}
				due = time.Now().Add(e.When.After.D())
			} else if e.At != nil {
				due = t0.Add(e.At.D())
			}
			select {
			case <-time.After(time.Until(due)):
			case <-ctx.Done():
				return
			}
			began := time.Since(t0)
			err := s.do(ctx, lab, e)
			ended := time.Since(t0)
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				if s.err == nil {
					s.err = fmt.Errorf("%s: %w", e.Name, err)
				}
				return
			}
			at := began
			if e.Fault == spec.FaultProcessStart {
				at = ended
			}
			s.events = append(s.events, runner.Event{Name: e.Name, At: at, Kind: string(e.Fault)})
			s.spans[e.Name] = [2]time.Duration{began, ended}
		})
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()
	return nil
}

func (s *scriptStage) do(ctx context.Context, lab *topo.Lab, e spec.Event) error {
	switch e.Fault {
	case spec.FaultProcessKill, spec.FaultProcessStart:
		node, name, _ := spec.SplitProcessRef(e.Target)
		p := lab.Process(node, name)
		if p == nil {
			return fmt.Errorf("no process %s", e.Target)
		}
		if e.Fault == spec.FaultProcessStart {
			return p.Start(ctx)
		}
		if err := p.Signal(syscall.SIGKILL); err != nil {
			return err
		}
		<-p.Done()
		return nil
	case spec.FaultExec:
		cmd, err := lab.Command(ctx, e.Target, "/bin/sh", "-c", e.Shell)
		if err != nil {
			return err
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	return fmt.Errorf("fault %s is not scripted in this test", e.Fault)
}

func (s *scriptStage) Events() []runner.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := slices.Clone(s.events)
	slices.SortStableFunc(evs, func(a, b runner.Event) int { return int(a.At - b.At) })
	return evs
}

func (s *scriptStage) Stop(context.Context) error {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// assertPaced checks the pacing of one generator's records (started on
// the ticks of interval from T0, for at most runFor) by what a pacer
// guarantees on any machine: never more records than ticks, and the i-th
// record never before the i-th tick (missed ticks are dropped, never made
// up). How many ticks a loaded machine misses is not the test's to say;
// the pacer's own unit tests (TestPacerDropsMissedTicks) judge that.
func assertPaced(t *testing.T, reqs []runner.Request, interval, runFor time.Duration) {
	t.Helper()
	require.NotEmpty(t, reqs)
	ticks := int(runFor / interval)
	assert.LessOrEqual(t, len(reqs), ticks, "at most one record per tick")
	for i, r := range reqs {
		assert.GreaterOrEqual(t, r.At, time.Duration(i)*interval, "record %d came before tick %d", i+1, i)
	}
	t.Logf("%d records on %d ticks of %s", len(reqs), ticks, interval)
}

// span is when the scripted timeline's action for an event began and
// ended (since T0).
func (s *scriptStage) span(t *testing.T, name string) (began, ended time.Duration) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.spans[name]
	require.True(t, ok, "no event %s in %+v", name, s.events)
	return sp[0], sp[1]
}

// TestTrafficInALab runs every generator kind against real services in
// namespaces, through runner.Execute with this package's judge, then
// checks the records themselves.
func TestTrafficInALab(t *testing.T) {
	binDir := requireLab(t)
	name := fmt.Sprintf("t%d-traffic", os.Getpid())
	s, err := spec.LoadWith("testdata/lab.yaml", spec.Options{Name: name})
	require.NoError(t, err)

	st := New(s, Options{})
	script := &scriptStage{spec: s}
	stateDir := t.TempDir()
	res := runner.Execute(context.Background(), s, runner.Options{
		Topo:   topo.Options{StateDir: stateDir, BinDir: binDir, Self: filepath.Join(binDir, "lvslab")},
		OutDir: t.TempDir(),
		Stages: []runner.Stage{st, script},
		Judges: []runner.Judge{NewJudge()},
	})
	require.NoError(t, res.Err())
	require.NoError(t, script.err, "the scripted timeline")
	assert.Empty(t, res.NotExecuted, "the stage claims every traffic entry")
	for _, e := range res.Expectations {
		assert.Equal(t, runner.StatusPass, e.Status, "%s: %s", e.Name, e.Detail)
		t.Logf("%s: %s", e.Name, e.Detail)
	}
	assert.Equal(t, runner.VerdictPass, res.Verdict)
	left, err := topo.Leftovers(topo.Options{StateDir: stateDir}, name)
	require.NoError(t, err)
	assert.Empty(t, left, "the lab is gone")

	client := netip.MustParseAddr("10.9.0.10")
	runFor := s.Duration.D()

	t.Run("http paced, one backend, one connection each", func(t *testing.T) {
		reqs := st.Requests("web1")
		assertPaced(t, reqs, 50*ms, runFor)
		for i, r := range reqs {
			assert.Empty(t, r.Err)
			assert.Equal(t, "web1", r.Backend)
			assert.Equal(t, client, r.Local.Addr())
			assert.Equal(t, netip.MustParseAddrPort("10.9.0.1:80"), r.Remote)
			assert.Equal(t, int64(len("web1\n")), r.Bytes)
			assert.Equal(t, i+1, r.Seq)
			if i > 0 {
				// A kept-alive connection would carry the next request;
				// a port the kernel hands out again later is a new
				// connection all the same (seen on 6.18: 57 ports for 60).
				assert.NotEqual(t, reqs[i-1].Local, r.Local, "request %d on the connection of request %d", i+1, i)
			}
		}
	})

	t.Run("http keep-alive from the source address", func(t *testing.T) {
		reqs := st.Requests("web2")
		require.NotEmpty(t, reqs)
		ports := map[netip.AddrPort]bool{}
		for _, r := range reqs {
			assert.Empty(t, r.Err)
			assert.Equal(t, "web2", r.Backend)
			assert.Equal(t, netip.MustParseAddr("10.9.0.11"), r.Local.Addr(), "source: binds")
			ports[r.Local] = true
		}
		// Go's transport gives a connection up instead of reusing it when
		// its writer has not reported the request written within 50ms
		// (maxWriteWaitBeforeConnReuse): a starved machine sees a second
		// connection now and then. Without reuse every request has its own.
		assert.Less(t, len(ports), max(2, len(reqs)/4), "new_connection: false reuses its connection: %d for %d requests", len(ports), len(reqs))
	})

	t.Run("stream chunks acknowledged and digests verified", func(t *testing.T) {
		reqs := st.Requests("stream")
		require.NotEmpty(t, reqs)
		var chunks, verified int
		var bytes int64
		conns := map[netip.AddrPort]bool{}
		perConn := map[netip.AddrPort][]runner.Request{}
		for _, r := range reqs {
			assert.Empty(t, r.Err)
			assert.False(t, r.Broken)
			assert.Equal(t, "web1", r.Backend, "the tcp-sink's greeting names the real server")
			conns[r.Local] = true
			if r.Bytes == 0 {
				verified++
				continue
			}
			chunks++
			bytes += r.Bytes
			perConn[r.Local] = append(perConn[r.Local], r)
			assert.Equal(t, int64(8<<10), r.Bytes)
			assert.Less(t, r.Latency, DefaultTimeout, "acknowledged within the stream's timeout")
		}
		assert.Equal(t, 2, verified, "one digest check per stream")
		assert.Len(t, conns, 2, "two long-lived connections")
		for _, chunks := range perConn {
			assertPaced(t, chunks, 50*ms, runFor)
		}
		assert.Equal(t, int64(chunks)*8<<10, bytes)
	})

	t.Run("a killed sink breaks the stream once, then it reconnects", func(t *testing.T) {
		reqs := st.Requests("breaking")
		killBegan, killEnded := script.span(t, "sink-killed")
		restartBegan, restartEnded := script.span(t, "sink-restarted")
		var broken []runner.Request
		var refused int
		// The longest stretch between successful chunks, found directly.
		var prevOK, outage, outageFrom time.Duration
		for _, r := range reqs {
			if r.Broken {
				broken = append(broken, r)
			}
			if strings.Contains(r.Err, "connection refused") {
				refused++
			}
			if r.Err == "" {
				if r.At-prevOK > outage {
					outage, outageFrom = r.At-prevOK, prevOK
				}
				prevOK = r.At
			}
		}
		require.Len(t, broken, 1, "%+v", broken)
		assert.Regexp(t, `closed by peer|reset by peer|broken pipe|unacknowledged`, broken[0].Err)
		assert.GreaterOrEqual(t, broken[0].At+broken[0].Latency, killBegan, "the break is seen after the kill")
		assert.Greater(t, refused, 5, "reconnects are refused while the sink is down")
		// Judged on the test's own actions, not on the clock: the outage
		// starts while the sink is being killed, lasts at least until its
		// restart begins, and ends as soon as it is ready: every record
		// started after that succeeded.
		assert.LessOrEqual(t, outageFrom, killEnded, "the outage starts at the kill")
		assert.GreaterOrEqual(t, outageFrom+outage, restartBegan, "nothing succeeds before the restart")
		for _, r := range reqs {
			if r.At >= restartEnded {
				assert.Empty(t, r.Err, "a record started after the sink was ready again (%s)", restartEnded)
			}
		}
		last := reqs[len(reqs)-1]
		assert.Zero(t, last.Bytes, "the last record is the digest check")
		assert.Empty(t, last.Err, "the new connection's data arrived intact")
		assert.Equal(t, "web2", last.Backend, "the reconnected stream learnt its backend again")
	})

	t.Run("a blackholed sink stalls the stream past its timeout", func(t *testing.T) {
		reqs := st.Requests("stalling")
		var broken []runner.Request
		timeouts := 0
		for _, r := range reqs {
			if r.Broken {
				broken = append(broken, r)
			}
			if r.Err == "connect: timeout after 300ms" {
				timeouts++
			}
		}
		require.Len(t, broken, 1, "%+v", broken)
		assert.Contains(t, broken[0].Err, "stalled: 4096 bytes unacknowledged after 300ms")
		assert.GreaterOrEqual(t, broken[0].Latency, 300*ms)
		assert.Positive(t, timeouts, "reconnects time out while the port is blackholed")
		last := reqs[len(reqs)-1]
		assert.Zero(t, last.Bytes)
		assert.Empty(t, last.Err, "the reconnected stream verified")
	})

	t.Run("refused connects", func(t *testing.T) {
		reqs := st.Requests("closed")
		assertPaced(t, reqs, 100*ms, runFor)
		for _, r := range reqs {
			assert.Equal(t, "connect: connection refused", r.Err)
		}
	})

	t.Run("udp echo names its backend", func(t *testing.T) {
		reqs := st.Requests("echo")
		require.NotEmpty(t, reqs)
		ports := map[uint16]bool{}
		for _, r := range reqs {
			assert.Empty(t, r.Err)
			assert.Equal(t, "web1", r.Backend)
			assert.Equal(t, int64(len("web1\n")+DefaultUDPPayload), r.Bytes)
			ports[r.Local.Port()] = true
		}
		// A fresh socket per datagram: the kernel picks its port at
		// random from ~28000, so among 30 two coincide in 1.5% of runs,
		// three in about one in a million; one reused socket would give
		// one port.
		assert.GreaterOrEqual(t, len(ports), len(reqs)-2, "a fresh source port per datagram")
	})

	t.Run("icmp echo", func(t *testing.T) {
		reqs := st.Requests("ping")
		assertPaced(t, reqs, 100*ms, runFor)
		for _, r := range reqs {
			assert.Empty(t, r.Err)
			assert.Equal(t, netip.MustParseAddr("10.9.0.2"), r.Remote.Addr())
		}
	})

	t.Run("count stops early", func(t *testing.T) {
		reqs := st.Requests("count")
		require.Len(t, reqs, 5, "count: 5 ends it, though the run goes on")
		assertPaced(t, reqs, 20*ms, runFor)
	})

	t.Run("series", func(t *testing.T) {
		reqs := st.Requests("breaking")
		const bucket = 250 * ms
		ser := Series(reqs, bucket, runFor)
		// The run in buckets, and past it the digest check when a loaded
		// machine got to it after the stop offset.
		last := reqs[len(reqs)-1]
		require.Equal(t, max(int(runFor/bucket), int(last.At/bucket)+1), ser.Len())
		assert.Equal(t, []string{"web2"}, ser.Backends, "every record of the stream names the sink it reached")
		// Judged against the test's own actions: buckets wholly before the
		// kill, and wholly inside the outage it made.
		killBegan, killEnded := script.span(t, "sink-killed")
		restartBegan, _ := script.span(t, "sink-restarted")
		var okBefore, okDuring, errDuring float64
		broken := 0
		for k := range ser.Len() {
			from, to := ser.Start(k), ser.Start(k)+bucket
			if to <= killBegan {
				okBefore += ser.Total(k)
			}
			if from >= killEnded && to <= restartBegan {
				okDuring += ser.Total(k)
				errDuring += ser.Errors[k]
			}
			if ser.Broken[k] > 0 {
				assert.Greater(t, to, killBegan, "the break is drawn after the kill")
			}
			broken += ser.Broken[k]
		}
		assert.Positive(t, okBefore, "chunks before the kill")
		assert.Zero(t, okDuring, "nothing acknowledged while the sink is down")
		assert.Positive(t, errDuring, "refused reconnects while the sink is down")
		assert.Equal(t, 1, broken)
	})
}
