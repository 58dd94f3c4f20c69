package segcap_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/internal/testenv"
	segcap "lvslab/sim/capture"
	"lvslab/sim/report"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

func TestPlanFor(t *testing.T) {
	load := func(src string) *spec.Spec {
		t.Helper()
		s, err := spec.Parse([]byte(src), "plan.yaml", spec.Options{})
		require.NoError(t, err)
		return s
	}
	const topo = `
name: plan
segments: {lan: {}, wan: {}, off: {capture: false}}
nodes:
  a: {role: host, interfaces: [{name: eth0, segment: lan}, {name: eth1, segment: wan}, {name: eth2, segment: off}]}
`
	// No capture section: every segment not marked off, default sizes.
	p := segcap.PlanFor(load(topo))
	assert.Equal(t, segcap.Plan{Segments: []string{"lan", "wan"}, Snaplen: segcap.DefaultSnaplen, Ring: segcap.DefaultRing}, p)
	assert.Equal(t, []string{"capture"}, segcap.New(segcap.Options{}).Claims(load(topo)))

	// A capture section naming one segment and an interface.
	p = segcap.PlanFor(load(topo + `capture: {segments: [wan], interfaces: ["a:eth2"], snaplen: 96, ring: 1MiB}`))
	assert.Equal(t, segcap.Plan{Segments: []string{"wan"}, Interfaces: []string{"a:eth2"}, Snaplen: 96, Ring: 1 << 20}, p)

	// report.formats without pcapng: nothing, unless an expectation reads
	// a capture.
	s := load(topo + `report: {formats: [junit]}`)
	assert.True(t, segcap.PlanFor(s).Empty())
	assert.Empty(t, segcap.New(segcap.Options{}).Claims(s))
	p = segcap.PlanFor(load(topo + `report: {formats: [junit]}
expect: [{name: x, pcap: {segment: off, filter: arp}, gt: 0}]`))
	assert.Equal(t, []string{"off"}, p.Segments)

	assert.Equal(t, "/r/pcap/lan.pcapng", segcap.SegmentFile("/r", "lan"))
	assert.Equal(t, "/r/pcap/a_eth0.pcapng", segcap.InterfaceFile("/r", "a:eth0"))
}

func requireNetns(t *testing.T) {
	t.Helper()
	testenv.Netns(t)
	testenv.Tools(t, "ping", "tshark")
}

// pinger is a stage that pings across the lab while the captures run. It
// carries out the timeline entry "pinging": its event is stamped when the
// pings start, so windows after it hold them however late that is.
type pinger struct {
	lab    *topo.Lab
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []string
	events []runner.Event
}

func (p *pinger) Name() string               { return "pinger" }
func (p *pinger) Claims(*spec.Spec) []string { return []string{"timeline pinging"} }

func (p *pinger) Events() []runner.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *pinger) Start(ctx context.Context, lab *topo.Lab, t0 time.Time) error {
	p.lab = lab
	p.mu.Lock()
	p.events = append(p.events, runner.Event{Name: "pinging", At: time.Since(t0), Kind: string(spec.FaultExec)})
	p.mu.Unlock()
	for _, job := range []struct {
		node, count, dst string
	}{{"a", "3", "10.81.0.2"}, {"c", "2", "10.82.0.2"}, {"c", "2", "10.83.0.4"}} {
		// 300-byte payloads: longer than the snap length.
		cmd, err := lab.Command(ctx, job.node, "ping", "-n", "-q", "-s", "300", "-c", job.count, "-i", "0.2", "-W", "2", job.dst)
		if err != nil {
			return err
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if out, err := cmd.CombinedOutput(); err != nil {
				p.mu.Lock()
				p.errs = append(p.errs, fmt.Sprintf("%s: %v: %s", job.node, err, out))
				p.mu.Unlock()
			}
		}()
	}
	return nil
}

func (p *pinger) Stop(context.Context) error {
	p.wg.Wait()
	if len(p.errs) > 0 {
		return fmt.Errorf("ping: %s", strings.Join(p.errs, "; "))
	}
	return nil
}

// TestCaptureStageJudgeAndReport runs a small lab through the runner with
// the capture stage, the pcap judge and the reporter: the pcapng files open
// in tshark as Ethernet captures named after their segment, the judge
// counts the echo requests, and the segment marked capture: false has no
// file.
func TestCaptureStageJudgeAndReport(t *testing.T) {
	requireNetns(t)
	name := fmt.Sprintf("t%d-segcap", os.Getpid())
	s, err := spec.LoadWith("testdata/three-segments.yaml", spec.Options{Name: name})
	require.NoError(t, err)
	out, stateDir := t.TempDir(), t.TempDir()
	stage := segcap.New(segcap.Options{})
	ping := &pinger{}
	res := runner.Execute(context.Background(), s, runner.Options{
		Topo:      topo.Options{StateDir: stateDir, NoProcesses: true},
		OutDir:    out,
		Duration:  time.Second,
		Stages:    []runner.Stage{stage, ping},
		Judges:    []runner.Judge{segcap.Judge{}},
		Reporters: []runner.Reporter{report.New(report.Options{NoPNG: true})},
	})
	require.NoError(t, res.Err())
	require.Empty(t, ping.errs)
	assert.Empty(t, res.NotExecuted)

	status := map[string]runner.ExpResult{}
	for _, e := range res.Expectations {
		status[e.Name] = e
		t.Logf("%-28s %-6s %s", e.Name, e.Status, e.Detail)
	}
	for _, n := range []string{"lan-echo-requests", "wan-echo-requests-from-c", "b-eth1-sees-both-ways", "b-eth1-requests-come-in", "lan-replies-in-window"} {
		assert.Equal(t, runner.StatusPass, status[n].Status, "%s: %s", n, status[n].Detail)
	}
	assert.Equal(t, `3 packets match "icmp.type == 8" in pcap/lan.pcapng; want = 3`, status["lan-echo-requests"].Detail)
	assert.Equal(t, runner.StatusXFail, status["lan-has-no-icmp"].Status)
	assert.Equal(t, runner.StatusFail, status["broken-filter"].Status)
	assert.Contains(t, status["broken-filter"].Detail, "tshark -r lan.pcapng")
	assert.Equal(t, runner.VerdictFail, res.Verdict) // the broken filter

	// The files: Ethernet link type, interface named as the capture, and
	// nothing for the quiet segment.
	files := map[string]segcap.File{}
	for _, f := range stage.Files() {
		files[f.Name] = f
	}
	require.Len(t, files, 3)
	for _, c := range []struct{ name, path string }{
		{"lan", filepath.Join(out, "pcap", "lan.pcapng")},
		{"wan", filepath.Join(out, "pcap", "wan.pcapng")},
		{"b:eth1", filepath.Join(out, "pcap", "b_eth1.pcapng")},
	} {
		assert.Equal(t, c.path, files[c.name].Path)
		assert.NotZero(t, files[c.name].Packets, c.name)
		assert.Zero(t, files[c.name].Dropped, c.name)
		fields, err := exec.Command("tshark", "-n", "-r", c.path, "-T", "fields", "-e", "frame.encap_type", "-e", "frame.interface_name").Output()
		require.NoError(t, err, c.name)
		lines := strings.Split(strings.TrimSpace(string(fields)), "\n")
		assert.Len(t, lines, int(files[c.name].Packets), c.name)
		for _, l := range lines {
			assert.Equal(t, "1\t"+c.name, l, "%s: Ethernet (1), interface %s", c.name, c.name)
		}
	}
	assert.NoFileExists(t, filepath.Join(out, "pcap", "quiet.pcapng"))

	// The snap length holds: frames are cut at 128 bytes, their length on
	// the wire is kept.
	lens, err := exec.Command("tshark", "-n", "-r", filepath.Join(out, "pcap", "lan.pcapng"), "-Y", "icmp", "-T", "fields", "-e", "frame.cap_len", "-e", "frame.len").Output()
	require.NoError(t, err)
	for _, l := range strings.Split(strings.TrimSpace(string(lens)), "\n") {
		assert.Equal(t, "128\t342", l)
	}

	// The report lists the captures with their counts.
	md, err := os.ReadFile(filepath.Join(out, report.SummaryFile))
	require.NoError(t, err)
	assert.Contains(t, string(md), fmt.Sprintf("| lan | [pcap/lan.pcapng](pcap/lan.pcapng) | %d | 0 |", files["lan"].Packets))
	assert.FileExists(t, filepath.Join(out, report.JUnitFile))

	left, err := topo.Leftovers(topo.Options{StateDir: stateDir}, name)
	require.NoError(t, err)
	assert.Empty(t, left)
}
