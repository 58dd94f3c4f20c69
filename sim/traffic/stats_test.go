package traffic

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/runner"
)

const ms = time.Millisecond

func ok(at time.Duration, backend string) runner.Request {
	return runner.Request{At: at, Backend: backend, Latency: ms}
}

func failed(at time.Duration, err string) runner.Request {
	return runner.Request{At: at, Err: err, Latency: time.Second}
}

func TestMaxGapWithoutRequestsIsTheWholeWindow(t *testing.T) {
	g := MaxGap(nil, 2*time.Second, 7*time.Second)
	assert.Equal(t, 5*time.Second, g.Len)
	assert.Equal(t, 2*time.Second, g.From)
	assert.Equal(t, 7*time.Second, g.To)
	assert.Zero(t, g.Successes)

	// Only failures: no service at all from the first request on.
	g = MaxGap([]runner.Request{failed(3*time.Second, "x"), failed(4*time.Second, "x")}, 2*time.Second, 7*time.Second)
	assert.Equal(t, 4*time.Second, g.Len)
	assert.Equal(t, 3*time.Second, g.From)
}

// A generator that issued nothing for a while (a starved process) is not a
// service gap; a request that waited is, from its start.
func TestMaxGapIsWaitingNotSilence(t *testing.T) {
	reqs := []runner.Request{
		ok(1*time.Second, "rs1"),
		// Nothing from 1.001 s to 3 s: the generator was not running.
		ok(3*time.Second, "rs1"),
		// A request whose SYN was retransmitted: waiting 1.005 s.
		{At: 4 * time.Second, Latency: 1005 * ms},
		ok(6*time.Second, "rs1"),
	}
	g := MaxGap(reqs, 1*time.Second, 6100*ms)
	assert.Equal(t, 1005*ms, g.Len, "the retransmitting request's wait, not the generator's 2 s of silence")
	assert.Equal(t, 4*time.Second, g.From)
	assert.Equal(t, 5005*ms, g.To)
}

func TestMaxGapFindsTheOutageAndCountsEdges(t *testing.T) {
	var reqs []runner.Request
	for at := time.Duration(0); at < 20*time.Second; at += 10 * ms {
		if at >= 10*time.Second && at < 12500*ms {
			reqs = append(reqs, failed(at, "connect: timeout after 1s"))
		} else {
			reqs = append(reqs, ok(at, "rs1")) // completes 1ms later
		}
	}
	g := MaxGap(reqs, 0, 20*time.Second)
	assert.Equal(t, 2501*ms, g.Len, "from the first failing request at 10s to the first success at 12.501s")
	assert.Equal(t, 10*time.Second, g.From)
	assert.Equal(t, 12501*ms, g.To)

	// A window opening inside the outage counts from its start.
	g = MaxGap(reqs, 11*time.Second, 15*time.Second)
	assert.Equal(t, 1501*ms, g.Len)
	assert.Equal(t, 11*time.Second, g.From)

	// The trailing edge counts too: requests still failing at the end.
	g = MaxGap(reqs[:1100], 9*time.Second, 11500*ms)
	assert.Equal(t, 1500*ms, g.Len, "from the first failing request at 10s to the window's end")
	assert.Equal(t, 10*time.Second, g.From)
	assert.Equal(t, 11500*ms, g.To)

	// Empty or inverted spans have no gap.
	assert.Zero(t, MaxGap(reqs, 5*time.Second, 5*time.Second).Len)
	assert.Zero(t, MaxGap(reqs, 6*time.Second, 5*time.Second).Len)
}

func TestMaxGapCountsCompletionNotStart(t *testing.T) {
	// Three stream chunks written during a stall are all acknowledged at
	// 12.5s: by start they would look like service at 10s..10.1s.
	reqs := []runner.Request{
		{At: 9950 * ms, Latency: ms},
		{At: 10 * time.Second, Latency: 2500 * ms},
		{At: 10050 * ms, Latency: 2450 * ms},
		{At: 10100 * ms, Latency: 2400 * ms},
		{At: 12550 * ms, Latency: ms},
	}
	g := MaxGap(reqs, 9*time.Second, 13*time.Second)
	assert.Equal(t, 2500*ms, g.Len, "from the first stalled chunk's write at 10s to its acknowledgement")
	assert.Equal(t, 10*time.Second, g.From)
	assert.Equal(t, 12500*ms, g.To)
	assert.Equal(t, 5, g.Successes)
}

func TestSummarizeCountsByStartInsideTheWindow(t *testing.T) {
	reqs := []runner.Request{
		ok(0, "rs1"),
		{At: 1 * time.Second, Backend: "rs2", Bytes: 10, Latency: 2 * ms},
		{At: 2 * time.Second, Backend: "rs2", Err: "HTTP 503 Service Unavailable"},
		failed(3*time.Second, "connect: connection refused"),
		failed(3500*ms, "connect: connection refused"),
		{At: 4 * time.Second, Err: "stalled", Broken: true},
		ok(5*time.Second, ""), // the window's end is exclusive
	}
	s := Summarize(reqs, Window{From: time.Second, To: 5 * time.Second})
	assert.Equal(t, 5, s.Requests)
	assert.Equal(t, 1, s.Successes)
	assert.Equal(t, 4, s.Errors)
	assert.Equal(t, 1, s.Broken)
	assert.Equal(t, int64(10), s.Bytes)
	assert.Equal(t, map[string]int{"rs2": 1}, s.Backends)
	assert.Equal(t, map[string]int{"rs2": 1}, s.ErrorBackends)
	assert.Equal(t, "2× connect: connection refused, 1× HTTP 503 Service Unavailable, 1 more kinds", s.ErrorSummary(2))
	assert.Equal(t, []time.Duration{2 * ms}, s.Latencies)

	all := Summarize(reqs, WholeRun())
	assert.Equal(t, 7, all.Requests)
	assert.Equal(t, map[string]int{"rs1": 1, "rs2": 1, "": 1}, all.Backends)
}

func TestPercentileIsNearestRank(t *testing.T) {
	var s Stats
	_, found := s.Percentile(50)
	assert.False(t, found, "no successes, no percentile")
	for i := 1; i <= 100; i++ {
		s.Latencies = append(s.Latencies, time.Duration(i)*ms)
	}
	for p, want := range map[float64]time.Duration{50: 50 * ms, 99: 99 * ms, 100: 100 * ms, 0.1: 1 * ms} {
		got, found := s.Percentile(p)
		require.True(t, found)
		assert.Equal(t, want, got, "p%v", p)
	}
	s.Latencies = []time.Duration{7 * ms}
	got, _ := s.Percentile(99)
	assert.Equal(t, 7*ms, got)
}

func TestSeriesBucketsPerSecondByStart(t *testing.T) {
	reqs := []runner.Request{
		ok(0, "rs2"), ok(100*ms, "rs1"), ok(200*ms, "rs1"),
		failed(300*ms, "timeout"), // times out after 1s, still counted at its start
		ok(600*ms, "rs1"),
		{At: 700 * ms, Err: "stalled", Broken: true},
		ok(1300*ms, ""),
	}
	s := Series(reqs, 500*ms, time.Second)
	require.Equal(t, 3, s.Len(), "end 1s gives 2 buckets, the record at 1.3s a third")
	assert.Equal(t, []string{"", "rs1", "rs2"}, s.Backends)
	assert.Equal(t, []float64{0, 0, 2}, s.OK[0], "unknown backend")
	assert.Equal(t, []float64{4, 2, 0}, s.OK[1], "rs1: 2 then 1 per half second")
	assert.Equal(t, []float64{2, 0, 0}, s.OK[2])
	assert.Equal(t, []float64{2, 2, 0}, s.Errors)
	assert.Equal(t, []int{0, 1, 0}, s.Broken)
	assert.Equal(t, 6.0, s.Total(0))
	assert.Equal(t, 500*ms, s.Start(1))

	empty := Series(nil, 0, 3*time.Second)
	assert.Equal(t, time.Second, empty.Bucket)
	assert.Equal(t, 3, empty.Len())
	assert.Empty(t, empty.Backends)
}

func TestFormatting(t *testing.T) {
	assert.Equal(t, "33.3%", fmtPct(100.0/3))
	assert.Equal(t, "100%", fmtPct(100))
	assert.Equal(t, "0%", fmtPct(0))
	assert.Equal(t, "0.25%", fmtPct(0.25))
	assert.Equal(t, "2.51s", fmtDur(2510*ms))
	assert.Equal(t, "1.5ms", fmtDur(1500*time.Microsecond))
	assert.Equal(t, "250µs", fmtDur(250*time.Microsecond))
	assert.Equal(t, "1.5 MiB", fmtBytes(3<<19))
}
