package report

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// syntheticRun is a finished DR run: a result with every status, two
// traffics, a fault with its end, director statistics and a capture.
func syntheticRun(t *testing.T) *Data {
	t.Helper()
	s := parse(t, drSpec)
	s.Source = &spec.Source{Document: "seeds/003_4b01b233b06e6e02.txt", Section: "LVS-DR 工作原理 ①②③④"}
	s.Description = "DR walk of seed 003"
	dir := t.TempDir()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t0 := base
	writePcapng(t, dir, "lan", base, drFrames())
	// Request 1 is the one in the capture; the rest make the timeline.
	web := []runner.Request{{Seq: 1, At: ms, Latency: 2 * ms, Backend: "rs1", Bytes: 4,
		Local: netip.MustParseAddrPort("10.0.0.10:40000"), Remote: netip.MustParseAddrPort("10.0.0.100:80")}}
	for i := 2; i <= 60; i++ {
		r := runner.Request{Seq: i, At: time.Duration(i) * 50 * ms, Latency: 3 * ms, Backend: []string{"rs1", "rs2"}[i%2]}
		if i >= 40 && i < 46 {
			r.Backend, r.Err = "", "connect: connection refused"
		}
		web = append(web, r)
	}
	other := []runner.Request{{Seq: 1, At: 500 * ms, Err: "dial: i/o timeout"}, {Seq: 2, At: 1500 * ms, Err: "dial: i/o timeout"}}
	stats := `{"time":"2026-01-02T03:04:06Z","node":"director","service":"TCP 10.0.0.100:80","dest":"10.0.0.11:80","conns":10,"inpkts":50,"outpkts":0,"inbytes":3000,"outbytes":0}
{"time":"2026-01-02T03:04:06Z","node":"director","service":"TCP 10.0.0.100:80","dest":"10.0.0.12:80","conns":9,"inpkts":45,"outpkts":0,"inbytes":2700,"outbytes":0}
not json
{"time":"2026-01-02T03:04:07Z","node":"director","service":"TCP 10.0.0.100:80","dest":"10.0.0.11:80","conns":27,"inpkts":135,"outpkts":0,"inbytes":8100,"outbytes":0}
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, StatsFile), []byte(stats), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "nodes", "rs1"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nodes", "rs1", "http-echo.log"), []byte("listening\n"), 0o644))
	res := &runner.Result{
		Scenario: s.Name, File: "scenarios/walk-dr.yaml", Dir: dir, Verdict: runner.VerdictFail, Seed: 7,
		Started: base.Add(-2 * time.Second), BuildTime: runner.Duration(800 * ms), RunTime: runner.Duration(3 * time.Second),
		Error:       "teardown: something <odd> & \"quoted\"",
		NotExecuted: []string{"timeline rs2-down"},
		Expectations: []runner.ExpResult{
			{Name: "even", Severity: "fail", Status: runner.StatusPass, Detail: "rs1 50%, rs2 50%"},
			{Name: "no-errors", Severity: "fail", Status: runner.StatusFail, Detail: "6 of 60 failed | 10%"},
			{Name: "latency", Severity: "warn", Status: runner.StatusWarn, Detail: "p99 3ms"},
			{Name: "arp-problem", Severity: "fail", XFail: "rs1 answers ARP for the VIP", Status: runner.StatusXFail, Detail: "router points the VIP at rs1"},
			{Name: "arp-fixed", Severity: "fail", XFail: "documented bug", Status: runner.StatusXPass, Detail: "held"},
			{Name: "gap", Severity: "fail", Status: runner.StatusNotEvaluated, Detail: "no judge"},
			{Name: "gap-warn", Severity: "warn", Status: runner.StatusNotEvaluated, Detail: "no judge"},
		},
		Processes: []topo.ProcStatus{{Node: "rs1", Name: "http-echo", State: topo.ProcRunning, Log: filepath.Join(dir, "nodes", "rs1", "http-echo.log")}},
	}
	return &Data{
		Spec: s, Result: res, Dir: dir, T0: t0, Ran: 3 * time.Second,
		Events: []runner.Event{
			{Name: "rs2-down", At: 1 * time.Second, Kind: "blackhole", Detail: "rs2:eth0"},
			{Name: "rs2-down.end", At: 2 * time.Second, Kind: "blackhole"},
		},
		Traffic: map[string][]runner.Request{"web": web, "other": other},
	}
}

func TestReportWritesEverything(t *testing.T) {
	d := syntheticRun(t)
	require.NoError(t, New(Options{NoPNG: true}).Write(context.Background(), d))

	// JUnit: valid XML, one case per expectation plus the run error and the
	// part not executed, statuses mapped.
	b, err := os.ReadFile(filepath.Join(d.Dir, JUnitFile))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(b, []byte(xml.Header)))
	var doc JUnitSuites
	require.NoError(t, xml.Unmarshal(b, &doc))
	require.Len(t, doc.Suites, 1)
	su := doc.Suites[0]
	assert.Equal(t, "walk-dr", su.Name)
	assert.Equal(t, 9, su.Tests)
	assert.Equal(t, 9, doc.Tests)
	assert.Equal(t, 2, su.Failures) // fail, xpass
	assert.Equal(t, 3, su.Errors)   // run error, not executed, not evaluated
	assert.Equal(t, 2, su.Skipped)  // xfail, not evaluated with severity warn
	assert.InDelta(t, 3.8, su.Time, 0.001)
	byName := map[string]JUnitCase{}
	for _, c := range su.Cases {
		byName[c.Name] = c
		assert.Equal(t, "lvslab.walk-dr", c.Classname)
	}
	assert.Nil(t, byName["even"].Failure)
	assert.Equal(t, "6 of 60 failed | 10%", byName["no-errors"].Failure.Message)
	assert.Contains(t, byName["latency"].SystemOut, "WARNING")
	assert.Nil(t, byName["latency"].Failure)
	assert.Equal(t, "xfail", byName["arp-problem"].Skipped.Type)
	assert.Contains(t, byName["arp-problem"].Skipped.Text, "observed: router points the VIP at rs1")
	assert.Equal(t, "xpass", byName["arp-fixed"].Failure.Type)
	assert.Equal(t, "not-evaluated", byName["gap"].Error.Type)
	assert.Equal(t, "not-evaluated", byName["gap-warn"].Skipped.Type)
	assert.Equal(t, "teardown: something <odd> & \"quoted\"", byName["run"].Error.Message)
	assert.Equal(t, "not-executed", byName["executed: timeline rs2-down"].Error.Type)

	// The timeline picture: well-formed SVG with a line per backend, the
	// errors in red and the events named.
	svg, err := os.ReadFile(filepath.Join(d.Dir, TimelineFile))
	require.NoError(t, err)
	elems := parseXML(t, svg)
	assert.Equal(t, "svg", elems[0])
	assert.Equal(t, 3, count(elems, "polygon"), "rs1, rs2 and errors")
	s := string(svg)
	assert.Contains(t, s, `stroke="#d62728"`)
	assert.Contains(t, s, ">rs2-down</text>")
	assert.Contains(t, s, ">rs2-down.end</text>")
	assert.Contains(t, s, ">rs1 (28)</text>")
	assert.Contains(t, s, ">errors (8)</text>")
	assert.Contains(t, s, "time since traffic start (s)")

	// The walk.
	walk, err := os.ReadFile(filepath.Join(d.Dir, WalkFile))
	require.NoError(t, err)
	assert.Contains(t, string(walk), "② +0.000200s  segment lan")
	assert.Contains(t, string(walk), "✔ the reply bypassed the director")

	// Records saved for explain.
	recs, err := LoadRecords(d.Dir, "web")
	require.NoError(t, err)
	require.Len(t, recs, 60)
	assert.Equal(t, d.T0.Add(ms), recs[0].Start.UTC())
	assert.Equal(t, netip.MustParseAddrPort("10.0.0.10:40000"), recs[0].Local)
	_, err = LoadRecords(d.Dir, "nope")
	assert.True(t, errors.Is(err, os.ErrNotExist))

	// The summary.
	md, err := os.ReadFile(filepath.Join(d.Dir, SummaryFile))
	require.NoError(t, err)
	sum := string(md)
	t.Log("\n" + sum)
	for _, want := range []string{
		"# walk-dr: FAIL\n",
		"> DR walk of seed 003",
		"| source document | `seeds/003_4b01b233b06e6e02.txt` |",
		"| section | LVS-DR 工作原理 ①②③④ |",
		"| ❌ | no-errors | fail | 6 of 60 failed \\| 10% |",
		"| ☑️ | arp-problem | xfail | router points the VIP at rs1 *(xfail: rs1 answers ARP for the VIP)* |",
		"- timeline rs2-down",
		"![requests per second per real server](timeline.svg)",
		"| 1s | rs2-down | blackhole | rs2:eth0 |",
		"| web | http | 60 | 6 | 10.0% |",
		"| other |  | 2 | 2 | 100.0% | - | - | - |",
		"| web | rs1 | 28 | 51.9% |",
		"- web: 6× connect: connection refused",
		"| director | TCP 10.0.0.100:80 | 10.0.0.11:80 | 27 | 135 | 0 | 8100 | 0 | 2 |",
		"(1 unreadable lines skipped.)",
		"| rs1/http-echo | running | [nodes/rs1/http-echo.log](nodes/rs1/http-echo.log) |",
		"| lan | [pcap/lan.pcapng](pcap/lan.pcapng) |",
		"## Hop-by-hop walk",
		"- [junit.xml](junit.xml): verdicts (JUnit XML)",
		"- [walk.md](walk.md)",
		"- [traffic/web.jsonl](traffic/web.jsonl): request records of traffic web",
		"- node logs: [nodes/rs1/http-echo.log](nodes/rs1/http-echo.log)",
	} {
		assert.Contains(t, sum, want)
	}
}

// parseXML checks the document is well-formed and lists its elements.
func parseXML(t *testing.T, b []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var elems []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if se, ok := tok.(xml.StartElement); ok {
			elems = append(elems, se.Name.Local)
		}
	}
	require.NotEmpty(t, elems)
	return elems
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func TestReportFormatsAndAbsentParts(t *testing.T) {
	s := parse(t, `
name: quiet
segments: {lan: {}}
nodes:
  a: {role: host, interfaces: [{name: eth0, segment: lan}]}
report: {formats: [junit, markdown]}
`)
	dir := t.TempDir()
	d := &Data{Spec: s, Dir: dir, Result: &runner.Result{Scenario: "quiet", Dir: dir, Verdict: runner.VerdictPass}}
	require.NoError(t, New(Options{NoPNG: true}).Write(context.Background(), d))
	assert.FileExists(t, filepath.Join(dir, JUnitFile))
	assert.NoFileExists(t, filepath.Join(dir, TimelineFile))
	assert.NoFileExists(t, filepath.Join(dir, WalkFile))
	md, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	require.NoError(t, err)
	for _, want := range []string{"# quiet: PASS", "Not recorded (no lvsd-stats.jsonl in this run).", "No packet captures in this run.", "The scenario has no traffic.", "No events were recorded."} {
		assert.Contains(t, string(md), want)
	}
	var doc JUnitSuites
	b, _ := os.ReadFile(filepath.Join(dir, JUnitFile))
	require.NoError(t, xml.Unmarshal(b, &doc))
	assert.Equal(t, 0, doc.Tests)
}

func TestTimelineEmptyAndBuckets(t *testing.T) {
	svg := TimelineSVG("empty", 0, nil, nil)
	parseXML(t, svg)
	assert.Contains(t, string(svg), "no requests recorded")

	reqs := map[string][]runner.Request{"a": {
		{At: 0, Backend: "x"}, {At: 999 * ms, Backend: "x"}, {At: time.Second, Backend: "y"}, {At: 1500 * ms, Err: "boom"}, {At: -ms, Backend: "x"}, {At: 2 * time.Second, Backend: "x"},
	}}
	got := Buckets(reqs, 2*time.Second, time.Second)
	require.Len(t, got, 3)
	// The request started at the very end gets a bucket of its own.
	assert.Equal(t, Series{Name: "x", Counts: []int{2, 0, 1}, Total: 3}, got[0])
	assert.Equal(t, Series{Name: "y", Counts: []int{0, 1, 0}, Total: 1}, got[1])
	assert.Equal(t, Series{Name: "errors", Counts: []int{0, 1, 0}, Total: 1, Errors: true}, got[2])
	assert.Equal(t, 100*ms, bucketFor(5*time.Second))
	assert.Equal(t, 200*ms, bucketFor(20*time.Second))
	assert.Equal(t, time.Second, bucketFor(90*time.Second))
}
