package traffic

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
)

const failoverJudgeSpec = `
name: failover-judge
duration: 20s
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  c1: {role: host, interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.21/24}]}
  c2: {role: host, interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.22/24}]}
  rs1: {role: host, interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}], services: [{kind: http-echo, listen: ":80"}]}
  rs2: {role: host, interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.2/24}], services: [{kind: http-echo, listen: ":80"}]}
  rs3: {role: host, interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.3/24}], services: [{kind: http-echo, listen: ":80"}]}
traffic:
  - {name: a, from: c1, kind: http, target: "http://10.0.0.1/"}
  - {name: b, from: c2, kind: http, target: "http://10.0.0.1/"}
  - {name: dead, from: c1, kind: http, target: "http://10.0.0.1/"}
  - {name: ftp, from: c1, kind: tcp-stream, target: "10.0.0.1:21"}
expect:
  - {name: three-before, during: [0s, 10s], metric: a.backends, eq: 3}
  - {name: two-after, during: [10s, 20s], metric: a.backends, eq: 2}
  - {name: no-rush, during: [0s, 10s], metric: a.max_share, le: 40%}
  - {name: rush, during: [10s, 20s], metric: a.max_share, le: 40%}
  - {name: survivors, during: [10s, 20s], backends: {traffic: [a], only: [rs1, rs3]}}
  - {name: survivors-wrong, during: [0s, 20s], backends: {traffic: [a], only: [rs1, rs3]}}
  - {name: sticky, backends: {traffic: [b], per_client: true}}
  - {name: sticky-both, backends: {traffic: [a, b], per_client: true}}
  - {name: sticky-empty, backends: {traffic: [dead], per_client: true}}
  - {name: sticky-empty-ok, allow_empty: true, backends: {traffic: [dead], per_client: true}}
  - {name: broken-never-connected, metric: ftp.broken_streams, eq: 0}
  - {name: broken-never-connected-ok, allow_empty: true, metric: ftp.broken_streams, eq: 0}
  - {name: errors-none-started, during: [15s, 20s], metric: dead.errors, eq: 0}
`

func failoverRun(t *testing.T) *runner.Run {
	t.Helper()
	s, err := spec.Parse([]byte(failoverJudgeSpec), "failover.yaml", spec.Options{})
	require.NoError(t, err)
	c1 := netip.MustParseAddrPort("10.0.0.21:40000")
	c2 := netip.MustParseAddrPort("10.0.0.22:40000")
	var a, b, dead, ftp []runner.Request
	for i := range 200 {
		at := time.Duration(i) * 100 * time.Millisecond
		be := []string{"rs1", "rs2", "rs3"}[i%3]
		if at >= 10*time.Second && be == "rs2" {
			be = "rs1" // rs2 is gone; rs1 takes its share
		}
		a = append(a, runner.Request{Seq: i + 1, At: at, Backend: be, Local: c1})
		b = append(b, runner.Request{Seq: i + 1, At: at, Backend: "rs3", Local: c2})
	}
	for i := range 10 {
		at := time.Duration(i) * time.Second
		dead = append(dead, runner.Request{Seq: i + 1, At: at, Err: "connect: connection refused", Local: c1})
		ftp = append(ftp, runner.Request{Seq: i + 1, At: at, Err: "connect: connection refused"})
	}
	t0 := time.Now()
	return &runner.Run{Spec: s, T0: t0, End: t0.Add(20 * time.Second),
		Stage: map[string]runner.Stage{"traffic": &recordStage{name: "traffic", recs: map[string][]runner.Request{
			"a": a, "b": b, "dead": dead, "ftp": ftp}}}}
}

func TestJudgeSaysFailoverDirectly(t *testing.T) {
	run := failoverRun(t)
	want := map[string]struct {
		held   bool
		detail string
	}{
		"three-before":              {true, "a.backends = 3 in [0s, 10s) (distinct backends that answered 100 successful requests: rs1 34, rs2 33, rs3 33)"},
		"two-after":                 {true, "a.backends = 2"},
		"no-rush":                   {true, "a.max_share = 34% in [0s, 10s) (rs1 answered 34 of 100 successful requests"},
		"rush":                      {false, "a.max_share = 67% in [10s, 20s) (rs1 answered 67 of 100"},
		"survivors":                 {true, "a: 100 successful requests in [10s, 20s) answered by rs1 67, rs3 33; want only rs1, rs3 answer"},
		"survivors-wrong":           {false, "also answered: rs2 33"},
		"sticky":                    {true, "one backend each: 10.0.0.22 (b) → rs3 200"},
		"sticky-both":               {false, "split across backends: 10.0.0.21 (a) → rs1 101, rs2 33, rs3 66; one backend each: 10.0.0.22 (b) → rs3 200"},
		"sticky-empty":              {false, "dead: no successful request over the whole run (10 failed), so no backend was judged (allow_empty: true accepts that)"},
		"sticky-empty-ok":           {true, "allowed by allow_empty"},
		"broken-never-connected":    {false, "ftp.broken_streams = 0 over the whole run, but 0 records were judged: no stream ever connected (10 records, none acknowledged: 10× connect: connection refused) (allow_empty: true accepts that); want == 0"},
		"broken-never-connected-ok": {true, "0 records judged, allowed by allow_empty"},
		"errors-none-started":       {false, "dead.errors = 0 in [15s, 20s), but 0 records were judged: no request started in the window"},
	}
	require.Len(t, run.Spec.Expect, len(want))
	for i := range run.Spec.Expect {
		e := &run.Spec.Expect[i]
		w, found := want[e.Name]
		require.True(t, found, e.Name)
		o, handled := NewJudge().Evaluate(context.Background(), run, e)
		require.True(t, handled, e.Name)
		assert.Equal(t, w.held, o.Held, "%s: %s", e.Name, o.Detail)
		assert.Contains(t, o.Detail, w.detail, e.Name)
	}
}

func TestBackendsExpectationValidation(t *testing.T) {
	bad := failoverJudgeSpec + `  - {name: x1, backends: {traffic: [ftp], only: [rs9]}}
  - {name: x2, backends: {traffic: [a]}}
  - {name: x3, metric: ftp.max_share, lt: 50%}
`
	_, err := spec.Parse([]byte(bad), "failover.yaml", spec.Options{})
	require.Error(t, err)
	for _, msg := range []string{
		`failover.yaml:30:`, `backends need http or udp traffic (they name their backend); ftp is tcp-stream`,
		`no http-echo or udp-echo service answers as "rs9"`,
		`failover.yaml:31:`, `give only: [backends...] or per_client: true`,
		`tcp-stream traffic has no metric "max_share" (it is for http, udp, ftp and dns traffic)`,
	} {
		assert.Contains(t, err.Error(), msg)
	}
}
