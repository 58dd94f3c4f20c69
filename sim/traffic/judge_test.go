package traffic

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// recordStage stands in for the traffic stage: fixed records.
type recordStage struct {
	name string
	recs map[string][]runner.Request
}

func (f *recordStage) Name() string                                      { return f.name }
func (f *recordStage) Claims(*spec.Spec) []string                        { return nil }
func (f *recordStage) Start(context.Context, *topo.Lab, time.Time) error { return nil }
func (f *recordStage) Stop(context.Context) error                        { return nil }
func (f *recordStage) Requests(name string) []runner.Request             { return f.recs[name] }
func (f *recordStage) Traffic() []string                                 { return slices.Sorted(maps.Keys(f.recs)) }

// eventStage stands in for the timeline: fixed events.
type eventStage struct{ events []runner.Event }

func (f *eventStage) Name() string                                      { return "timeline" }
func (f *eventStage) Claims(*spec.Spec) []string                        { return nil }
func (f *eventStage) Start(context.Context, *topo.Lab, time.Time) error { return nil }
func (f *eventStage) Stop(context.Context) error                        { return nil }
func (f *eventStage) Events() []runner.Event                            { return f.events }

const judgeSpec = `
name: judge-test
duration: 20s
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  client: {role: host, interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.10/24}]}
  rs1: {role: host, interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}], services: [{kind: http-echo, listen: ":80"}]}
  rs2: {role: host, interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.2/24}], services: [{kind: http-echo, listen: ":80"}]}
  rs3: {role: host, interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.3/24}], services: [{kind: http-echo, listen: ":80"}]}
traffic:
  - {name: web, from: client, kind: http, target: "http://10.0.0.1/", rate: 100/s}
  - {name: late, from: client, kind: http, target: "http://10.0.0.1/", start: 5s, stop: 15s}
  - {name: ftp, from: client, kind: tcp-stream, target: "10.0.0.1:21", verify: true}
  - {name: refused, from: client, kind: tcp-connect, target: "10.0.0.1:22"}
timeline:
  - {name: kill, at: 10s, fault: process.kill, target: rs2/http-echo}
  - {name: freeze, at: 10s, fault: process.stop, target: rs2/http-echo, for: 3s}
expect:
  # web: 1:2 over rs1:rs2 in [0, 10s), nothing from 10s to 12.5s, rs1 only
  # to 13s, then 1:2 again.
  - {name: weights-hold, during: [1s, 9s], shares: {traffic: web, weights: {rs1: 1, rs2: 2}, tolerance: 5%}}
  - {name: weights-wrong, during: [1s, 9s], shares: {traffic: web, weights: {rs1: 1, rs2: 1}, tolerance: 5%}}
  - {name: weights-missing-backend, during: [1s, 9s], shares: {traffic: web, weights: {rs1: 1, rs2: 2, rs3: 1}, tolerance: 10%}}
  - {name: even-fails, during: [1s, 9s], shares: {traffic: web, even: true}}
  - {name: even-counts-absent-backend, during: [12.5s, 13s], shares: {traffic: web, even: true, tolerance: 40%}}
  - {name: shares-no-requests, during: [10s, 12s], shares: {traffic: web, even: true}}
  - {name: ratio-before, during: [1s, 9s], metric: web.error_ratio, lt: 1%}
  - {name: ratio-zero, during: [1s, 9s], metric: web.error_ratio, eq: 0}
  - {name: ratio-all, metric: web.error_ratio, lt: 1%}
  - {name: ratio-outage, during: [10s, 12s], metric: web.error_ratio, eq: 100%}
  - {name: ratio-empty, metric: late.error_ratio, lt: 1%}
  - {name: gap-ok, after: kill, within: 5s, metric: web.max_gap, lt: 3s}
  - {name: gap-tight, after: kill, within: 5s, metric: web.max_gap, lt: 2s}
  - {name: gap-before, during: [0s, 9s], metric: web.max_gap, le: 11ms}
  - {name: gap-idle-traffic, metric: late.max_gap, ge: 10s}
  - {name: gap-idle-window, during: [1s, 2s], metric: late.max_gap, eq: 0}
  - {name: rs1-takes-over, after: freeze, within: 3s, metric: "web.share[rs1]", gt: 90%}
  - {name: rs2-back, after: freeze.end, within: 2s, metric: "web.requests[rs2]", gt: 0}
  - {name: rs2-absent, after: freeze, within: 3s, metric: "web.requests[rs2]", eq: 0}
  - {name: requests-all, metric: web.requests, eq: 2000}
  - {name: errors-all, metric: web.errors, eq: 250}
  - {name: errors-by-backend, metric: "web.errors[rs2]", eq: 0}
  - {name: latency-p50, during: [0s, 10s], metric: web.latency_p50, le: 5ms}
  - {name: latency-max, metric: web.latency_max, le: 10ms}
  - {name: latency-none, during: [10s, 12s], metric: web.latency_p99, lt: 1s}
  - {name: broken, metric: ftp.broken_streams, eq: 0}
  - {name: broken-before, during: [0s, 5s], metric: ftp.broken_streams, eq: 0}
  - {name: bytes, metric: ftp.bytes, eq: 49152}
  - {name: refused-all, metric: refused.error_ratio, eq: 100%}
`

// webRecords: every 10ms for 20s; 1:2 over rs1:rs2 except an outage
// [10s, 12.5s) and rs1 alone in [12.5s, 13s). Latency 0.1..10ms.
func webRecords() []runner.Request {
	var out []runner.Request
	for i := range 2000 {
		at := time.Duration(i) * 10 * ms
		r := runner.Request{Seq: i + 1, At: at, Latency: time.Duration(i%100+1) * 100 * time.Microsecond}
		switch {
		case at >= 10*time.Second && at < 12500*ms:
			r.Err = "connect: timeout after 1s"
		case at < 13*time.Second && at >= 12500*ms, i%3 == 0:
			r.Backend = "rs1"
		default:
			r.Backend = "rs2"
		}
		out = append(out, r)
	}
	return out
}

func judgeRun(t *testing.T) *runner.Run {
	t.Helper()
	s, err := spec.Parse([]byte(judgeSpec), "judge.yaml", spec.Options{})
	require.NoError(t, err)
	t0 := time.Now()
	recs := &recordStage{name: "traffic", recs: map[string][]runner.Request{
		"web":  webRecords(),
		"late": {},
		"ftp": {
			{At: 1 * time.Second, Bytes: 16384, Latency: ms},
			{At: 2 * time.Second, Bytes: 16384, Latency: ms},
			{At: 7 * time.Second, Err: "stalled: 16384 bytes unacknowledged after 1s", Broken: true},
			{At: 8 * time.Second, Err: "connect: connection refused"},
			{At: 9 * time.Second, Bytes: 16384, Latency: ms},
			{At: 20100 * ms, Latency: ms}, // the digest check after the run
		},
		"refused": {failed(0, "connect: connection refused"), failed(time.Second, "connect: connection refused")},
	}}
	ev := &eventStage{events: []runner.Event{
		{Name: "kill", At: 10 * time.Second, Kind: "fault"},
		{Name: "freeze", At: 10 * time.Second, Kind: "fault"},
		{Name: "freeze.end", At: 13 * time.Second, Kind: "revert"},
	}}
	return &runner.Run{Spec: s, T0: t0, End: t0.Add(20 * time.Second),
		Stage: map[string]runner.Stage{"traffic": recs, "timeline": ev}}
}

func TestJudgeDecidesMetricsAndShares(t *testing.T) {
	run := judgeRun(t)
	want := map[string]struct {
		held   bool
		detail string
	}{
		"weights-hold":               {true, "rs1 33.2% (266/800), rs2 66.8% (534/800) in [1s, 9s); want 33.3%/66.7% ±5%"},
		"weights-wrong":              {false, "rs1 is 16.8 points off, rs2 is 16.8 points off"},
		"weights-missing-backend":    {false, "rs3 0% (0/800)"},
		"even-fails":                 {false, "want an even split ±10%"},
		"even-counts-absent-backend": {false, "rs2 0% (0/50)"},
		"shares-no-requests":         {false, "no successful requests in [10s, 12s) (200 failed: 200× connect: timeout after 1s)"},
		"ratio-before":               {true, "web.error_ratio = 0% in [1s, 9s) (0 of 800 failed); want < 1%"},
		"ratio-zero":                 {true, "= 0%"},
		"ratio-all":                  {false, "web.error_ratio = 12.5% over the whole run (250 of 2000 failed: 250× connect: timeout after 1s); want < 1%"},
		"ratio-outage":               {true, "= 100%"},
		"ratio-empty":                {false, "no requests started"},
		"gap-ok":                     {true, "web.max_gap = 2.505s in [10s, 15s) after kill (no request succeeded from 10s to 12.505s;"},
		"gap-tight":                  {false, "want < 2s"},
		"gap-before":                 {true, "= 10ms"},
		"gap-idle-traffic":           {true, "late.max_gap = 10s over the whole run (no request succeeded at all from 5s to 15s)"},
		"gap-idle-window":            {false, "did not run then"},
		"rs1-takes-over":             {true, "web.share[rs1] = 100% in [10s, 13s) after freeze (50 of 50 successful requests answered by rs1"},
		"rs2-back":                   {true, "in [13s, 15s) after freeze.end"},
		"rs2-absent":                 {true, "= 0"},
		"requests-all":               {true, "web.requests = 2000 over the whole run (1750 succeeded, 250 failed)"},
		"errors-all":                 {true, "web.errors = 250"},
		"errors-by-backend":          {true, "= 0"},
		"latency-p50":                {true, "web.latency_p50 = 5ms"},
		"latency-max":                {true, "web.latency_max = 10ms"},
		"latency-none":               {false, "no successful requests (200 failed"},
		"broken":                     {false, "ftp.broken_streams = 1 over the whole run (over 6 records, 4 of them acknowledged chunks; at 7s: stalled: 16384 bytes unacknowledged after 1s)"},
		"broken-before":              {true, "= 0"},
		"bytes":                      {true, "48.0 KiB acknowledged in 3 chunks; 1 digest check"},
		"refused-all":                {true, "2 of 2 failed: 2× connect: connection refused"},
	}
	require.Len(t, run.Spec.Expect, len(want))
	j := NewJudge()
	for i := range run.Spec.Expect {
		e := &run.Spec.Expect[i]
		w, found := want[e.Name]
		require.True(t, found, e.Name)
		o, handled := j.Evaluate(context.Background(), run, e)
		require.True(t, handled, e.Name)
		assert.Equal(t, w.held, o.Held, "%s: %s", e.Name, o.Detail)
		assert.Contains(t, o.Detail, w.detail, e.Name)
	}
}

func TestJudgeLeavesWhatItCannotDecide(t *testing.T) {
	run := judgeRun(t)
	j := NewJudge()
	q := func(text string) *spec.Quantity {
		var v spec.Quantity
		require.NoError(t, v.UnmarshalText([]byte(text)))
		return &v
	}
	// Not ours.
	_, handled := j.Evaluate(context.Background(), run, &spec.Expectation{Name: "p", Process: &spec.ProcessCheck{}})
	assert.False(t, handled)
	// A traffic no stage recorded.
	_, handled = j.Evaluate(context.Background(), run, &spec.Expectation{Name: "x", Metric: "nosuch.requests", Gt: q("0")})
	assert.False(t, handled)
	_, handled = j.Evaluate(context.Background(), run, &spec.Expectation{Name: "x", Shares: &spec.Shares{Traffic: "nosuch", Even: true}})
	assert.False(t, handled)
	// A metric it does not know.
	_, handled = j.Evaluate(context.Background(), run, &spec.Expectation{Name: "x", Metric: "web.jitter", Lt: q("1s")})
	assert.False(t, handled)

	// An event that could have happened but did not: the window never
	// existed, which fails.
	o, handled := j.Evaluate(context.Background(), run, &spec.Expectation{Name: "x", After: "nope", Within: spec.Duration(time.Second), Metric: "web.max_gap", Lt: q("1s")})
	require.True(t, handled)
	assert.False(t, o.Held)
	assert.Contains(t, o.Detail, "event nope never happened")

	// Without any event source the window cannot be known here.
	delete(run.Stage, "timeline")
	_, handled = j.Evaluate(context.Background(), run, &spec.Expectation{Name: "x", After: "kill", Metric: "web.max_gap", Lt: q("1s")})
	assert.False(t, handled)

	// A unit that does not fit the metric is reported, not guessed.
	o, handled = j.Evaluate(context.Background(), run, &spec.Expectation{Name: "x", Metric: "web.max_gap", Lt: q("5%")})
	require.True(t, handled)
	assert.False(t, o.Held)
	assert.Contains(t, o.Detail, "cannot be compared with 5%")

	// An after: window without within: runs to the end of the records.
	run.Stage["timeline"] = &eventStage{events: []runner.Event{{Name: "kill", At: 15 * time.Second}}}
	o, handled = j.Evaluate(context.Background(), run, &spec.Expectation{Name: "x", After: "kill", Metric: "web.requests", Eq: q("500")})
	require.True(t, handled)
	assert.True(t, o.Held, o.Detail)
	assert.Contains(t, o.Detail, "from 15s (kill) on")

	// Two comparisons must both hold.
	o, _ = j.Evaluate(context.Background(), run, &spec.Expectation{Name: "x", Metric: "web.requests", Gt: q("1999"), Lt: q("2001")})
	assert.True(t, o.Held, o.Detail)
	assert.Contains(t, o.Detail, "want < 2001 and > 1999")
	o, _ = j.Evaluate(context.Background(), run, &spec.Expectation{Name: "x", Metric: "web.requests", Gt: q("1999"), Lt: q("2000")})
	assert.False(t, o.Held, o.Detail)
}

func TestActiveSpanClipsToTrafficAndRun(t *testing.T) {
	run := judgeRun(t)
	late := trafficOf(run.Spec, "late")
	require.NotNil(t, late)
	from, to := activeSpan(run, late, WholeRun())
	assert.Equal(t, 5*time.Second, from)
	assert.Equal(t, 15*time.Second, to)
	// The run ended early (lvslab run --duration).
	run.End = run.T0.Add(12 * time.Second)
	_, to = activeSpan(run, late, WholeRun())
	assert.Equal(t, 12*time.Second, to)
}

// An even split needs at least two backends: one backend answering
// everything must not pass as "even".
func TestEvenNeedsTwoBackends(t *testing.T) {
	var reqs []runner.Request
	for i := range 20 {
		reqs = append(reqs, runner.Request{Seq: i + 1, At: time.Duration(i) * 100 * time.Millisecond, Backend: "rs1"})
	}
	t0 := time.Now()
	run := &runner.Run{T0: t0, End: t0.Add(2 * time.Second),
		Stage: map[string]runner.Stage{"traffic": &recordStage{name: "traffic", recs: map[string][]runner.Request{"web": reqs}}}}
	e := &spec.Expectation{Name: "even", Shares: &spec.Shares{Traffic: "web", Even: true, Tolerance: 5}}
	o, handled := NewJudge().Evaluate(context.Background(), run, e)
	if !handled || o.Held {
		t.Fatalf("one backend judged even: handled %v held %v (%s)", handled, o.Held, o.Detail)
	}
}
