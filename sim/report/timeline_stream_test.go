package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
)

// A failover of a stream: 64 KiB chunks to rs1, the stream breaks at the
// kill, reconnects are refused, then chunks go to rs2; the digest check
// at the end carries no bytes.
func streamFailover() map[string][]runner.Request {
	const chunk = 64 << 10
	return map[string][]runner.Request{
		"ftp": {
			{At: 0, Backend: "rs1", Bytes: chunk}, {At: 100 * ms, Backend: "rs1", Bytes: chunk},
			{At: 400 * ms, Backend: "rs1", Bytes: chunk},
			{At: 500 * ms, Backend: "rs1", Err: "read: connection reset by peer", Broken: true},
			{At: 600 * ms, Err: "connect: connection refused"},
			{At: 1100 * ms, Backend: "rs2", Bytes: chunk}, {At: 1200 * ms, Backend: "rs2", Bytes: chunk},
			{At: 1900 * ms, Backend: "rs2"}, // the digest check
		},
		"web": {{At: 0, Backend: "rs2"}, {At: 600 * ms, Backend: "rs1"}},
	}
}

// Stream chunks are bytes per backend, not requests: they leave the
// requests panel (which keeps their failures) for a bytes panel.
func TestTimelineStreamBytesPerBackend(t *testing.T) {
	traffic := streamFailover()
	opts := TimelineOptions{Streams: map[string]bool{"ftp": true}}
	series, edges := bucketize(traffic, gridEdges(2*time.Second, 500*ms, nil), opts)
	byName := map[string]Series{}
	for _, s := range series {
		byName[s.Name] = s
	}
	assert.Len(t, series, 3, "rs1 and rs2 of web, and the errors: %+v", series)
	assert.Equal(t, []int{0, 1, 0, 0}, byName["rs1"].Counts, "web only: no chunk counted as a request")
	assert.Equal(t, []int{0, 2, 0, 0}, byName["errors"].Counts, "the stream's break and refused reconnect stay failures")
	assert.NotContains(t, byName, "(backend unknown)")

	streams := streamBuckets(traffic, edges, opts)
	require.Len(t, streams, 2)
	assert.Equal(t, Series{Name: "rs1", Counts: []int{3 << 16, 0, 0, 0}, Total: 3 << 16}, streams[0])
	assert.Equal(t, Series{Name: "rs2", Counts: []int{0, 0, 2 << 16, 0}, Total: 2 << 16}, streams[1], "the digest check adds no bytes")

	// By client: the stream's bands name it.
	byClient := streamBuckets(traffic, edges, TimelineOptions{Streams: opts.Streams, ByClient: true})
	require.Len(t, byClient, 2)
	assert.Equal(t, "ftp → rs1", byClient[0].Name)

	// Without Streams (a records directory read back with no spec) the
	// chunks are requests again, as before.
	plain, _ := bucketize(traffic, edges, TimelineOptions{})
	for _, s := range plain {
		if s.Name == "rs1" {
			assert.Equal(t, 4, s.Total)
		}
	}
}

func TestTimelineStreamPanel(t *testing.T) {
	svg := string(TimelineSVGWith("failover", 2*time.Second, streamFailover(), []runner.Event{{Name: "rs1-killed", At: 500 * ms}}, TimelineOptions{Streams: map[string]bool{"ftp": true}}))
	parseXML(t, []byte(svg))
	assert.Contains(t, svg, "backend (requests)")
	assert.Contains(t, svg, "backend (bytes)", "a second legend for the bytes panel")
	assert.Contains(t, svg, ">KiB/s</text>", "the bytes panel's y axis")
	assert.Contains(t, svg, ">requests/s</text>")
	assert.Contains(t, svg, "rs1 (192.0 KiB)")
	assert.Contains(t, svg, "rs2 (128.0 KiB)")
	assert.Contains(t, svg, "tcp-stream bytes acknowledged per second per backend (ftp)")
	assert.NotContains(t, svg, "(backend unknown)")
	assert.Equal(t, 1, strings.Count(svg, ">rs1-killed</text>"), "the event is named once")
	assert.Equal(t, 2, strings.Count(svg, "<title>rs1-killed at"), "and drawn across both panels")
	// The bytes bands take the backend's own colour, as the requests do.
	assert.Contains(t, svg, `<polygon fill="`+palette[1]+`" fill-opacity="0.7" stroke="`+palette[1]+`" stroke-width="1" stroke-linejoin="round" points="`)
	assert.Contains(t, svg, `rs2: 128.0 KiB in 131072 bytes</title>`)
	assert.Contains(t, svg, `height="584"`, "two panels make a taller picture")
}

// A scenario with streams only (the IPVS selftests) draws the bytes panel
// alone.
func TestTimelineStreamsOnly(t *testing.T) {
	traffic := map[string][]runner.Request{"integrity": {{At: 0, Backend: "ns2", Bytes: 1 << 20}, {At: 800 * ms, Backend: "ns2"}}}
	svg := string(TimelineSVGWith("selftest", time.Second, traffic, nil, TimelineOptions{Streams: map[string]bool{"integrity": true}}))
	parseXML(t, []byte(svg))
	assert.Contains(t, svg, "stream bytes per second per backend")
	assert.Contains(t, svg, ">MiB/s</text>")
	assert.Contains(t, svg, "ns2 (1.0 MiB)")
	assert.NotContains(t, svg, "(requests)")
	assert.NotContains(t, svg, "no requests recorded")
	assert.Contains(t, svg, `height="440"`)
}

func TestSizeTextAndByteScale(t *testing.T) {
	assert.Equal(t, "512 B", sizeText(512))
	assert.Equal(t, "64.0 KiB", sizeText(64<<10))
	assert.Equal(t, "1.5 MiB", sizeText(3<<19))
	assert.Equal(t, "6.2 MiB", sizeText(6553600), "as summary.md writes ftp.bytes")
	p := &panel{unit: "bytes", series: []Series{{Counts: []int{300 << 10}}}}
	p.scale([]time.Duration{0, time.Second})
	assert.Equal(t, "KiB/s", p.axis)
	assert.Equal(t, float64(1<<10), p.div)
	assert.Equal(t, 100.0*1024, p.ystep, "a round step in KiB/s")
	assert.Equal(t, 300.0*1024, p.ymax)
}

// The report marks a spec's tcp-stream traffic for the bytes panel.
func TestReportTimelineDrawsStreamsAsBytes(t *testing.T) {
	dir := t.TempDir()
	s := &spec.Spec{Name: "s", Traffic: []spec.Traffic{{Name: "ftp", Kind: spec.TrafficTCPStream}, {Name: "web", Kind: spec.TrafficHTTP}}}
	d := &Data{Spec: s, Dir: dir, Ran: 2 * time.Second, Traffic: streamFailover()}
	require.NoError(t, New(Options{NoPNG: true}).Write(t.Context(), d))
	b, err := os.ReadFile(filepath.Join(dir, TimelineFile))
	require.NoError(t, err)
	assert.Contains(t, string(b), "backend (bytes)")
	recs, err := LoadRecords(dir, "ftp")
	require.NoError(t, err)
	assert.Equal(t, "rs1", recs[0].Backend, "the stream's records keep their backend")
	assert.Equal(t, int64(64<<10), recs[0].Bytes)
}
