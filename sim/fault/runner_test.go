package fault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/observe"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// eventCapture is a reporter that keeps the run's merged events.
type eventCapture struct{ events []runner.Event }

func (c *eventCapture) Report(_ context.Context, run *runner.Run, _ *runner.Result) error {
	c.events = run.Events()
	return nil
}

// TestExecuteWithRunner wires the timeline and the observer into
// runner.Execute as cmd/lvslab would: every timeline entry is claimed, the
// faults happen and are undone, the observer sees the carrier go and come
// back, and the lab is judged after Stop reverted everything.
func TestExecuteWithRunner(t *testing.T) {
	requireNetns(t)
	b, err := os.ReadFile("testdata/lan3.yaml")
	require.NoError(t, err)
	src := strings.ReplaceAll(string(b), "@NAME@", fmt.Sprintf("t%d-run", os.Getpid())) + `
timeline:
  - {name: cut, at: 200ms, fault: link.down, target: b:eth0, for: 400ms}
  - {name: knob, when: {event: cut.end, after: 100ms}, fault: sysctl, target: c, set: {net.ipv4.ip_forward: "1"}}
expect:
  - {name: sleeper-alive, process: {target: a/sleeper, state: running}}
  - {name: b-keeps-its-address, state: {addr: {node: b, dev: eth0, has: 10.81.0.2}}}
  - {name: knob-reverted, state: {command: {node: c, cmd: [cat, /proc/sys/net/ipv4/ip_forward], match: "^0"}}}
`
	s, err := spec.Parse([]byte(src), "lan3.yaml", spec.Options{})
	require.NoError(t, err)
	capture := &eventCapture{}
	out := t.TempDir()
	res := runner.Execute(context.Background(), s, runner.Options{
		Topo:      topo.Options{StateDir: t.TempDir()},
		OutDir:    out,
		Duration:  1500 * time.Millisecond,
		Stages:    []runner.Stage{observe.New(s, observe.Options{}), New(s, Options{})},
		Reporters: []runner.Reporter{capture},
	})
	require.NoError(t, res.Err())
	assert.Empty(t, res.NotExecuted)
	assert.Equal(t, runner.VerdictPass, res.Verdict, "%+v", res.Expectations)

	at := map[string]time.Duration{}
	var carrier []runner.Event
	for _, e := range capture.events {
		if _, ok := at[e.Name]; !ok {
			at[e.Name] = e.At
		}
		if e.Name == "b.link" && e.Kind == observe.KindObserver {
			carrier = append(carrier, e)
		}
	}
	require.Contains(t, at, "cut")
	require.Contains(t, at, "cut.end")
	require.Contains(t, at, "knob")
	require.Contains(t, at, "knob.revert")
	assertLate(t, 200*time.Millisecond, at["cut"], "at: 200ms")
	assertLate(t, 100*time.Millisecond, at["knob"]-at["cut.end"], "after: 100ms")
	require.GreaterOrEqual(t, len(carrier), 2, "carrier lost and back: %+v", carrier)
	assert.Contains(t, carrier[0].Detail, "up,no-carrier", "administratively up, no carrier")
	assert.GreaterOrEqual(t, carrier[0].At, at["cut"])
	assert.Contains(t, carrier[len(carrier)-1].Detail, "up,carrier")
	assert.GreaterOrEqual(t, carrier[len(carrier)-1].At, at["cut.end"])
	assert.FileExists(t, filepath.Join(out, observe.EventsFile))
}
