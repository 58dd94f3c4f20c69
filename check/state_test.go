package check

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStateTable walks keepalived's tcp_epilog semantics on a fake clock:
// each step is a result, the delay to the next check and the transition.
func TestStateTable(t *testing.T) {
	const loop, dbr = 10 * time.Second, 2 * time.Second
	type step struct {
		ok   bool
		next time.Duration
		tr   Transition
		up   bool
	}
	cases := []struct {
		name  string
		retry int
		alpha bool
		steps []step
	}{
		{"first success declares up", 1, false, []step{{true, loop, Up, true}, {true, loop, None, true}}},
		{"first failure has no retries", 1, false, []step{{false, loop, Down, false}, {false, dbr, None, false}, {true, loop, Up, true}}},
		{"alpha starts down, first success up", 1, true, []step{{true, loop, Up, true}}},
		{"alpha first failure declared down", 2, true, []step{{false, loop, Down, false}}},
		{"retry 1: two failures take it down", 1, false, []step{
			{true, loop, Up, true}, {false, dbr, None, true}, {false, loop, Down, false},
			// a down checker keeps retrying as keepalived does: delay_before_retry, then delay_loop
			{false, dbr, None, false}, {false, loop, None, false}, {true, loop, Up, true}}},
		{"retry 3: a success in between resets", 3, false, []step{
			{true, loop, Up, true}, {false, dbr, None, true}, {false, dbr, None, true}, {true, loop, None, true},
			{false, dbr, None, true}, {false, dbr, None, true}, {false, dbr, None, true}, {false, loop, Down, false}}},
		{"retry 0: one failure", 0, false, []step{{true, loop, Up, true}, {false, loop, Down, false}}},
		{"down stays down", 2, false, []step{{false, loop, Down, false}, {false, dbr, None, false}, {false, dbr, None, false}, {false, loop, None, false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewState(c.retry, loop, dbr, c.alpha)
			assert.Equal(t, !c.alpha, s.Up)
			var clock time.Duration // the fake clock: sum of the delays
			for i, st := range c.steps {
				next, tr := s.Result(st.ok)
				clock += next
				assert.Equal(t, st.next, next, "step %d delay", i)
				assert.Equal(t, st.tr, tr, "step %d transition", i)
				assert.Equal(t, st.up, s.Up, "step %d up", i)
			}
			assert.Positive(t, clock)
		})
	}
}

// TestDownBound: from up, a dead server is declared down after the
// retries: (retry) delay_before_retry waits plus the failing checks, the
// bound the netns tests rely on.
func TestDownBound(t *testing.T) {
	s := NewState(2, 5*time.Second, time.Second, false)
	s.Result(true)
	var waited time.Duration
	n := 0
	for {
		next, tr := s.Result(false)
		n++
		if tr == Down {
			break
		}
		waited += next
	}
	assert.Equal(t, 3, n)
	assert.Equal(t, 2*time.Second, waited)
}

func TestFirstDelay(t *testing.T) {
	assert.Equal(t, time.Second, FirstDelay(0, nil))
	assert.Equal(t, time.Second+3, FirstDelay(10, func(n int64) int64 { return 3 }))
}

// TestEngineTCP runs the engine over a listener that is up, then closed:
// the events are an up then a down, judged on events, not on time.
func TestEngineTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := netip.MustParseAddrPort(ln.Addr().String())
	var mu sync.Mutex
	var got []Transition
	ch := make(chan Transition, 16)
	e := Engine{Limit: 4, Emit: func(ev Event) {
		mu.Lock()
		got = append(got, ev.Transition)
		mu.Unlock()
		ch <- ev.Transition
	}}
	job := &Job{ID: 1, State: NewState(1, 20*time.Millisecond, 10*time.Millisecond, true), Start: time.Millisecond,
		Timeout: time.Second, Probe: TCPProbe(TCPTarget{Addr: addr})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx, []*Job{job}); close(done) }()
	require.Equal(t, Up, <-ch)
	ln.Close()
	require.Equal(t, Down, <-ch)
	cancel()
	<-done
}

// TestEngineBound: many jobs, a limit of 2 probes in flight, never more.
func TestEngineBound(t *testing.T) {
	var mu sync.Mutex
	inflight, peak, runs := 0, 0, 0
	probe := func(ctx context.Context) Outcome {
		mu.Lock()
		inflight++
		peak = max(peak, inflight)
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		inflight--
		runs++
		mu.Unlock()
		return Outcome{OK: true}
	}
	var jobs []*Job
	for i := range 50 {
		jobs = append(jobs, &Job{ID: i, State: NewState(1, time.Millisecond, time.Millisecond, false), Start: time.Millisecond, Probe: probe})
	}
	ups := make(chan struct{}, 100)
	e := Engine{Limit: 2, Emit: func(ev Event) { ups <- struct{}{} }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx, jobs); close(done) }()
	for range 50 {
		<-ups
	}
	cancel()
	<-done
	assert.LessOrEqual(t, peak, 2)
	assert.GreaterOrEqual(t, runs, 50)
}
