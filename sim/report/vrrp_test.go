package report

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/observe"
)

func vrrpRecords(t *testing.T, lines ...string) []observe.VRRPRecord {
	t.Helper()
	var out []observe.VRRPRecord
	for _, l := range lines {
		var r observe.VRRPRecord
		require.NoError(t, json.Unmarshal([]byte(l), &r))
		out = append(out, r)
	}
	return out
}

// TestVRRPBands: a master's band runs from its first advert to its last
// plus an interval, a priority-0 advert ends it, a silence of more than
// three intervals splits it; two senders at once are two rows at once;
// two holders of a VIP are a split band.
func TestVRRPBands(t *testing.T) {
	recs := vrrpRecords(t,
		`{"t":1,"segment":"lan","kind":"advert","vrid":1,"priority":100,"interval":"1s","node":"lb1","src":"10.0.0.1"}`,
		`{"t":2,"segment":"lan","kind":"advert","vrid":1,"priority":100,"interval":"1s","node":"lb1","src":"10.0.0.1"}`,
		`{"t":2.5,"segment":"lan","kind":"advert","vrid":1,"priority":0,"interval":"1s","node":"lb1","src":"10.0.0.1"}`,
		`{"t":3,"segment":"lan","kind":"advert","vrid":1,"priority":90,"interval":"1s","src":"10.0.0.9"}`,
		`{"t":4,"segment":"lan","kind":"advert","vrid":1,"priority":90,"interval":"1s","src":"10.0.0.9"}`,
		`{"t":9,"segment":"lan","kind":"advert","vrid":1,"priority":90,"interval":"1s","src":"10.0.0.9"}`,
		`{"t":1,"segment":"lan","kind":"probe","vip":"192.0.2.1","holders":["lb1"],"macs":["a"]}`,
		`{"t":1.2,"segment":"lan","kind":"probe","vip":"192.0.2.1","holders":["lb1","lb2"],"macs":["a","b"]}`,
		`{"t":1.4,"segment":"lan","kind":"probe","vip":"192.0.2.1"}`,
		`{"t":1.6,"segment":"lan","kind":"probe","vip":"192.0.2.1","holders":["lb2"],"macs":["b"]}`,
	)
	rows := VRRPBands(recs, 10*time.Second)
	require.Len(t, rows, 3)
	assert.Equal(t, "lan VRID 1: 10.0.0.9", rows[0].Label, "no node has that address: named by it")
	assert.Equal(t, []BandSpan{
		{From: 3 * time.Second, To: 5 * time.Second, Who: "10.0.0.9", Note: "MASTER, priority 90"},
		{From: 9 * time.Second, To: 10 * time.Second, Who: "10.0.0.9", Note: "MASTER, priority 90"},
	}, rows[0].Spans)
	assert.Equal(t, "lan VRID 1: lb1", rows[1].Label)
	assert.Equal(t, []BandSpan{{From: time.Second, To: 2500 * time.Millisecond, Who: "lb1", Note: "MASTER, priority 100, resigned (priority 0)"}}, rows[1].Spans)
	assert.Equal(t, "ARP for 192.0.2.1", rows[2].Label)
	ms := time.Millisecond
	assert.Equal(t, []BandSpan{
		{From: time.Second, To: 1200 * ms, Who: "lb1", Note: "answered by lb1"},
		{From: 1200 * ms, To: 1400 * ms, Who: "lb1, lb2", Split: true, Note: "answered by lb1, lb2: split brain"},
		{From: 1600 * ms, To: 1800 * ms, Who: "lb2", Note: "answered by lb2"},
	}, rows[2].Spans)

	svg := string(TimelineSVGWith("t", 10*time.Second, nil, nil, TimelineOptions{Bands: rows}))
	assert.Contains(t, svg, "ARP for 192.0.2.1")
	assert.Equal(t, 1, strings.Count(svg, `fill="`+errorColor+`" fill-opacity="0.75"`), "one split band, in red")
	md := vrrpMarkdown(rows)
	assert.Contains(t, md, "| lan VRID 1: lb1 | 1s | 2.5s | MASTER, priority 100, resigned (priority 0) |")
}
