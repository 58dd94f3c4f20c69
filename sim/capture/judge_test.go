package segcap

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/internal/testenv"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

func TestParseEpoch(t *testing.T) {
	ts, err := parseEpoch("1700000000.123456789")
	require.NoError(t, err)
	assert.Equal(t, time.Unix(1700000000, 123456789), ts)
	ts, err = parseEpoch("1700000000.5")
	require.NoError(t, err)
	assert.Equal(t, time.Unix(1700000000, 500000000), ts)
	_, err = parseEpoch("soon")
	assert.Error(t, err)
}

func TestCompare(t *testing.T) {
	q := func(s string) *spec.Quantity {
		var v spec.Quantity
		require.NoError(t, v.UnmarshalText([]byte(s)))
		return &v
	}
	for _, c := range []struct {
		e    spec.Expectation
		n    float64
		held bool
		want string
	}{
		{spec.Expectation{Eq: q("3")}, 3, true, "= 3"},
		{spec.Expectation{Eq: q("3")}, 4, false, "= 3"},
		{spec.Expectation{Ne: q("0")}, 0, false, "≠ 0"},
		{spec.Expectation{Lt: q("5")}, 4, true, "< 5"},
		{spec.Expectation{Le: q("5")}, 5, true, "≤ 5"},
		{spec.Expectation{Gt: q("0")}, 0, false, "> 0"},
		{spec.Expectation{Ge: q("2")}, 2, true, "≥ 2"},
		{spec.Expectation{}, 2, false, "a comparison (none given)"},
	} {
		held, want := Compare(c.n, &c.e)
		assert.Equal(t, c.held, held, "%v %s", c.n, want)
		assert.Equal(t, c.want, want)
	}
}

// events is a stage that reports fixed events.
type events []runner.Event

func (events) Name() string                                      { return "events" }
func (events) Claims(*spec.Spec) []string                        { return nil }
func (events) Start(context.Context, *topo.Lab, time.Time) error { return nil }
func (events) Stop(context.Context) error                        { return nil }
func (e events) Events() []runner.Event                          { return e }

// TestJudgeWindows counts echo requests of a written capture with tshark,
// over the whole file, a during: window and an after:/within: window.
func TestJudgeWindows(t *testing.T) {
	testenv.Tools(t, "tshark")
	dir := t.TempDir()
	t0 := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	path := SegmentFile(dir, "lan")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	require.NoError(t, err)
	w, err := pcapgo.NewNgWriterInterface(f, pcapgo.NgInterface{Name: "lan", LinkType: layers.LinkTypeEthernet}, pcapgo.DefaultNgWriterOptions)
	require.NoError(t, err)
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	// Echo requests at 0.5s, 1.5s, 2.5s, 3.5s; a reply at 1.6s.
	for i, at := range []time.Duration{500, 1500, 1600, 2500, 3500} {
		typ := uint8(layers.ICMPv4TypeEchoRequest)
		if i == 2 {
			typ = layers.ICMPv4TypeEchoReply
		}
		buf := gopacket.NewSerializeBuffer()
		require.NoError(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			&layers.Ethernet{SrcMAC: mac, DstMAC: mac, EthernetType: layers.EthernetTypeIPv4},
			&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 2)},
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: 1, Seq: uint16(i)}))
		b := buf.Bytes()
		require.NoError(t, w.WritePacket(gopacket.CaptureInfo{Timestamp: t0.Add(at * time.Millisecond), CaptureLength: len(b), Length: len(b)}, b))
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())

	s, err := spec.Parse([]byte(`
name: judge
segments: {lan: {}}
nodes:
  a: {role: host, interfaces: [{name: eth0, segment: lan}]}
timeline:
  - {name: cut, at: 1s, fault: link.down, target: "a:eth0", for: 2s}
expect:
  - {name: all, pcap: {segment: lan, filter: "icmp.type == 8"}, eq: 4}
  - {name: during, during: [1s, 3s], pcap: {segment: lan, filter: "icmp.type == 8"}, eq: 2}
  - {name: after, after: cut, within: 1s, pcap: {segment: lan, filter: "icmp"}, eq: 2}
  - {name: after-end, after: cut.end, pcap: {segment: lan, filter: "icmp"}, eq: 1}
  - {name: never, after: cut.end, pcap: {segment: lan, filter: "icmp"}, eq: 1}
  - {name: no-file, pcap: {interface: "a:eth0", filter: "icmp"}, eq: 0}
`), "judge.yaml", spec.Options{})
	require.NoError(t, err)
	run := &runner.Run{Spec: s, T0: t0, Stage: map[string]runner.Stage{"events": events{{Name: "cut", At: time.Second}, {Name: "cut.end", At: 3 * time.Second}}}}
	j := Judge{}
	eval := func(i int) runner.Outcome {
		t.Helper()
		o, handled := j.evaluate(context.Background(), dir, run, &s.Expect[i])
		require.True(t, handled)
		return o
	}
	o := eval(0)
	assert.True(t, o.Held, o.Detail)
	assert.Equal(t, `4 packets match "icmp.type == 8" in pcap/lan.pcapng; want = 4`, o.Detail)
	o = eval(1)
	assert.True(t, o.Held, o.Detail)
	assert.Contains(t, o.Detail, "during [1s, 3s]")
	o = eval(2)
	assert.True(t, o.Held, o.Detail)
	assert.Contains(t, o.Detail, "after cut (at 1s) within 1s")
	o = eval(3)
	assert.True(t, o.Held, o.Detail)
	run.Stage = map[string]runner.Stage{}
	o = eval(4)
	assert.False(t, o.Held)
	assert.Equal(t, "event cut.end never happened, so its window does not exist", o.Detail)
	o = eval(5)
	assert.False(t, o.Held)
	assert.Contains(t, o.Detail, "no capture of interface a:eth0 (pcap/a_eth0.pcapng)")

	_, handled := j.Evaluate(context.Background(), run, &spec.Expectation{Name: "m", Metric: "web.requests"})
	assert.False(t, handled)
}
