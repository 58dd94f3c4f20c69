package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/internal/testenv"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

type fixedJudge struct{ held bool }

func (f fixedJudge) Evaluate(context.Context, *Run, *spec.Expectation) (Outcome, bool) {
	return Outcome{Held: f.held, Detail: fmt.Sprint("held=", f.held)}, true
}

func TestJudgeStatuses(t *testing.T) {
	cases := []struct {
		held     bool
		severity spec.Severity
		xfail    string
		want     Status
	}{
		{true, "fail", "", StatusPass},
		{false, "fail", "", StatusFail},
		{false, "warn", "", StatusWarn},
		{false, "fail", "documented", StatusXFail},
		{true, "fail", "documented", StatusXPass},
	}
	for _, c := range cases {
		e := &spec.Expectation{Name: "e", Severity: c.severity, XFail: c.xfail}
		r := judge(context.Background(), &Run{}, []Judge{fixedJudge{c.held}}, e)
		assert.Equal(t, c.want, r.Status, "%+v", c)
	}
	r := judge(context.Background(), &Run{}, []Judge{processJudge{}}, &spec.Expectation{Name: "m", Metric: "web.max_gap"})
	assert.Equal(t, StatusNotEvaluated, r.Status)
}

func TestVerdict(t *testing.T) {
	res := func(notExec []string, st ...ExpResult) *Result {
		return &Result{NotExecuted: notExec, Expectations: st}
	}
	assert.Equal(t, VerdictPass, verdict(res(nil, ExpResult{Status: StatusPass}, ExpResult{Status: StatusXFail}, ExpResult{Status: StatusWarn})))
	assert.Equal(t, VerdictFail, verdict(res(nil, ExpResult{Status: StatusPass}, ExpResult{Status: StatusFail})))
	assert.Equal(t, VerdictFail, verdict(res(nil, ExpResult{Status: StatusXPass})))
	assert.Equal(t, VerdictIncomplete, verdict(res(nil, ExpResult{Status: StatusNotEvaluated, Severity: "fail"})))
	assert.Equal(t, VerdictPass, verdict(res(nil, ExpResult{Status: StatusNotEvaluated, Severity: "warn"})))
	assert.Equal(t, VerdictIncomplete, verdict(res([]string{"traffic web"})))
	assert.Equal(t, VerdictFail, verdict(res([]string{"traffic web"}, ExpResult{Status: StatusFail})))
	assert.Equal(t, 0, VerdictPass.ExitCode())
	assert.Equal(t, 1, VerdictFail.ExitCode())
	assert.Equal(t, 2, VerdictIncomplete.ExitCode())
	assert.Equal(t, 2, VerdictError.ExitCode())
}

// recordingStage claims one traffic entry and records its calls.
type recordingStage struct {
	calls []string
	lab   *topo.Lab
}

func (r *recordingStage) Name() string                 { return "rec" }
func (r *recordingStage) Claims(s *spec.Spec) []string { return []string{"traffic ping"} }
func (r *recordingStage) Start(_ context.Context, lab *topo.Lab, _ time.Time) error {
	r.calls = append(r.calls, "start")
	r.lab = lab
	return nil
}

func (r *recordingStage) Stop(context.Context) error {
	r.calls = append(r.calls, "stop")
	return nil
}

func TestUnclaimed(t *testing.T) {
	s := &spec.Spec{
		Traffic:  []spec.Traffic{{Name: "ping"}, {Name: "web"}},
		Timeline: []spec.Event{{Name: "kill"}},
		Capture:  &spec.Capture{},
	}
	assert.Equal(t, []string{"traffic web", "timeline kill", "capture"}, unclaimed(s, []Stage{&recordingStage{}}))
}

func requireNetns(t *testing.T) {
	t.Helper()
	testenv.Netns(t)
}

const judgeSpec = `
name: %s
segments: {lan: {subnets: 10.79.0.0/24}}
nodes:
  a:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.79.0.1/24}]
  b:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.79.0.2/24}]
    routes: [{dst: 192.0.2.0/24, via: 10.79.0.1}]
    neighbors: [{ip: 10.79.0.1, mac_of: "a:eth0"}]
traffic:
  - {name: ping, from: b, kind: icmp, target: 10.79.0.1}
expect:
  - {name: has, state: {addr: {node: a, dev: eth0, has: 10.79.0.1}}}
  - {name: lacks, state: {addr: {node: a, lacks: 10.79.0.2}}}
  - {name: has-wrong, xfail: a does not hold b's address, state: {addr: {node: a, has: 10.79.0.2}}}
  - {name: neigh, state: {neighbor: {node: b, ip: 10.79.0.1, mac_of: ["a:eth0"]}}}
  - {name: neigh-wrong, xfail: the entry points at a, state: {neighbor: {node: b, ip: 10.79.0.1, mac: "02:00:00:00:00:99"}}}
  - {name: neigh-absent, state: {neighbor: {node: a, ip: 10.79.0.77, absent: true}}}
  - {name: route, state: {route: {node: b, dst: 192.0.2.0/24, via: 10.79.0.1, dev: eth0}}}
  - {name: no-default, state: {route: {node: a, dst: default, absent: true}}}
  - {name: cmd, state: {command: {node: b, cmd: [ip, -4, -br, addr, show, dev, eth0], match: "10\\.79\\.0\\.2/24"}}}
  - {name: cmd-exit, state: {command: {node: b, shell: "exit 4", exit_code: 4}}}
  - {name: cmd-nomatch, xfail: the address is there, state: {command: {node: b, shell: "ip -br addr", no_match: "10\\.79\\.0\\.2"}}}
`

// TestExecuteWithStageAndStateJudges runs a scenario end to end with a
// stage claiming its traffic; the state judges read the live lab.
func TestExecuteWithStageAndStateJudges(t *testing.T) {
	requireNetns(t)
	name := fmt.Sprintf("t%d-judge", os.Getpid())
	s, err := spec.Parse(fmt.Appendf(nil, judgeSpec, name), "judge.yaml", spec.Options{})
	require.NoError(t, err)
	stage := &recordingStage{}
	out, stateDir := t.TempDir(), t.TempDir()
	res := Execute(context.Background(), s, Options{
		Topo:     topo.Options{StateDir: stateDir, NoProcesses: true},
		OutDir:   out,
		Duration: 100 * time.Millisecond,
		Stages:   []Stage{stage},
	})
	require.NoError(t, res.Err())
	for _, e := range res.Expectations {
		want := StatusPass
		if s.Expect[indexOf(s, e.Name)].XFail != "" {
			want = StatusXFail
		}
		assert.Equal(t, want, e.Status, "%s: %s", e.Name, e.Detail)
	}
	assert.Equal(t, VerdictPass, res.Verdict)
	assert.Empty(t, res.NotExecuted)
	assert.Equal(t, []string{"start", "stop"}, stage.calls)
	assert.Equal(t, name, stage.lab.Name())

	b, err := os.ReadFile(filepath.Join(out, "result.json"))
	require.NoError(t, err)
	var saved Result
	require.NoError(t, json.Unmarshal(b, &saved))
	assert.Equal(t, VerdictPass, saved.Verdict)
	assert.Len(t, saved.Expectations, len(s.Expect))
	left, err := topo.Leftovers(topo.Options{StateDir: stateDir}, name)
	require.NoError(t, err)
	assert.Empty(t, left)
}

func indexOf(s *spec.Spec, name string) int {
	for i, e := range s.Expect {
		if e.Name == name {
			return i
		}
	}
	return -1
}
