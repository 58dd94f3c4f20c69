package report

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/runner"
)

// Bucket edges sit on the events: a kill at 4.03s closes a bucket there,
// so no bucket mixes requests from before and after it.
func TestTimelineBucketEdgesOnEvents(t *testing.T) {
	edges := gridEdges(10*time.Second, time.Second, []runner.Event{{Name: "kill", At: 4030 * ms}, {Name: "late", At: 6600 * ms}})
	assert.Equal(t, []time.Duration{0, 1e9, 2e9, 3e9, 4030 * ms, 5e9, 6e9, 6600 * ms, 8e9, 9e9, 10e9}, edges)

	reqs := map[string][]runner.Request{"web": {
		{At: 4 * time.Second, Backend: "rs1"}, {At: 4020 * ms, Backend: "rs1"}, {At: 4030 * ms, Err: "connect: connection refused"}, {At: 4500 * ms, Backend: "rs2"},
	}}
	series, e := bucketize(reqs, edges, TimelineOptions{})
	require.Len(t, e, len(edges))
	byName := map[string][]int{}
	for _, s := range series {
		byName[s.Name] = s.Counts
	}
	assert.Equal(t, 2, byName["rs1"][3], "both rs1 requests before the kill, in [3s, 4.03s)")
	assert.Equal(t, 1, byName["errors"][4], "the refused one after it")
	assert.Equal(t, 1, byName["rs2"][4])
}

// A persistence scenario split by client: one band per client and backend.
func TestTimelineSplitByClient(t *testing.T) {
	reqs := map[string][]runner.Request{
		"client-a": {{At: 0, Backend: "rs1"}, {At: 100 * ms, Backend: "rs1"}},
		"client-b": {{At: 0, Backend: "rs2"}, {At: 100 * ms, Err: "boom"}},
	}
	series, _ := bucketize(reqs, gridEdges(time.Second, 500*ms, nil), TimelineOptions{ByClient: true})
	var names []string
	for _, s := range series {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"client-a → rs1", "client-b → rs2", "client-b → errors"}, names)
	svg := string(TimelineSVGWith("p", time.Second, reqs, nil, TimelineOptions{ByClient: true}))
	parseXML(t, []byte(svg))
	assert.Contains(t, svg, "client → backend (requests)")
	assert.Contains(t, svg, "client-a → rs1 (2)")
}

// Colours belong to backend names, not to their place in the legend: rs2
// is the same colour whether or not rs1 answered anything.
func TestTimelineColoursStablePerBackend(t *testing.T) {
	assert.Equal(t, palette[0], backendColor("rs1"))
	assert.Equal(t, palette[1], backendColor("rs2"))
	assert.Equal(t, palette[2], backendColor("rs3"))
	assert.Equal(t, backendColor("web"), backendColor("web"))
	one := string(TimelineSVG("a", time.Second, map[string][]runner.Request{"w": {{At: 0, Backend: "rs1"}, {At: 0, Backend: "rs2"}}}, nil))
	two := string(TimelineSVG("b", time.Second, map[string][]runner.Request{"w": {{At: 0, Backend: "rs2"}}}, nil))
	rs2 := `fill="` + palette[1] + `"`
	assert.True(t, strings.Contains(one, rs2) && strings.Contains(two, rs2), "rs2 drawn in %s in both", palette[1])
	assert.NotContains(t, two, `fill="`+palette[0]+`"`, "without rs1, nothing takes rs1's colour")
}
