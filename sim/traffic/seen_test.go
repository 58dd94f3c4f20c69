package traffic

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"lvslab/sim/runner"
)

// TestBreakCountsWhereSeen: a chunk written just before a fault and broken
// by it counts after the fault, in the window and in the bucket of the
// moment the break was seen (At+Latency), while the record itself still
// belongs to the window it started in.
func TestBreakCountsWhereSeen(t *testing.T) {
	reqs := []runner.Request{
		{Seq: 1, At: 950 * ms, Latency: 2 * ms, Bytes: 4096},
		{Seq: 2, At: 999 * ms, Latency: 30 * ms, Err: "read: connection reset by peer", Broken: true},
		{Seq: 3, At: 1050 * ms, Err: "connect: connection refused"},
	}
	before := Summarize(reqs, Window{From: 0, To: time.Second})
	after := Summarize(reqs, Window{From: time.Second, To: 2 * time.Second})
	assert.Equal(t, 2, before.Requests, "records belong to the window they started in")
	assert.Equal(t, 0, before.Broken)
	assert.Equal(t, 1, after.Requests)
	assert.Equal(t, 1, after.Broken, "the break was seen at 1.029s")

	ser := Series(reqs, 500*ms, 2*time.Second)
	assert.Equal(t, []int{0, 0, 1, 0}, ser.Broken)
	// A break seen past the series' end still gets its bucket.
	late := Series([]runner.Request{{At: 1900 * ms, Latency: 300 * ms, Err: "stalled", Broken: true}}, 500*ms, 2*time.Second)
	assert.Equal(t, []int{0, 0, 0, 0, 1}, late.Broken)
}
