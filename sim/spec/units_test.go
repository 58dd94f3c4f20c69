package spec

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnits(t *testing.T) {
	type tc struct {
		in   string
		want any
		err  string
	}
	dur := []tc{
		{"500ms", Duration(500 * time.Millisecond), ""},
		{"2s", Duration(2 * time.Second), ""},
		{"1m", Duration(time.Minute), ""},
		{"1h30m", Duration(90 * time.Minute), ""},
		{"1.5s", Duration(1500 * time.Millisecond), ""},
		{"0", Duration(0), ""},
		{"5", nil, `duration "5" needs a unit, e.g. 5ms or 5s`},
		{"-1s", nil, `negative duration "-1s"`},
		{"soon", nil, `invalid duration "soon" (want e.g. 500ms, 2s, 1m)`},
	}
	for _, c := range dur {
		var d Duration
		err := d.UnmarshalText([]byte(c.in))
		if c.err != "" {
			assert.EqualError(t, err, c.err, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		assert.Equal(t, c.want, d, c.in)
	}
	pct := []tc{{"5%", Percent(5), ""}, {"0.1%", Percent(0.1), ""}, {"100%", Percent(100), ""},
		{"5", nil, `percentage "5" needs a % sign, e.g. 5%`}, {"101%", nil, `percentage "101%" outside 0%..100%`}}
	for _, c := range pct {
		var p Percent
		err := p.UnmarshalText([]byte(c.in))
		if c.err != "" {
			assert.EqualError(t, err, c.err, c.in)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, c.want, p)
	}
	rates := []tc{{"200/s", 200.0, ""}, {"60/m", 1.0, ""}, {"2/ms", 2000.0, ""}, {"3600/h", 1.0, ""},
		{"200", nil, `rate "200" needs a unit: N/s, N/m, N/h or N/ms`}, {"0/s", nil, `invalid rate "0/s" (want a positive number, e.g. 200/s)`}}
	for _, c := range rates {
		var r Rate
		err := r.UnmarshalText([]byte(c.in))
		if c.err != "" {
			assert.EqualError(t, err, c.err, c.in)
			continue
		}
		require.NoError(t, err)
		assert.InDelta(t, c.want.(float64), r.PerSecond(), 1e-9, c.in)
	}
	bw := []tc{{"10mbit", Bandwidth(10e6), ""}, {"512kbit", Bandwidth(512e3), ""}, {"1gbit", Bandwidth(1e9), ""},
		{"100kbps", Bandwidth(800e3), ""}, {"8", nil, `bandwidth "8" needs a unit: bit, kbit, mbit, gbit, bps, kbps, mbps, gbps`}}
	for _, c := range bw {
		var b Bandwidth
		err := b.UnmarshalText([]byte(c.in))
		if c.err != "" {
			assert.EqualError(t, err, c.err, c.in)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, c.want, b, c.in)
	}
	sizes := []tc{{"1500", Size(1500), ""}, {"1500B", Size(1500), ""}, {"64KiB", Size(64 << 10), ""},
		{"1MiB", Size(1 << 20), ""}, {"2MB", Size(2e6), ""}, {"lots", nil, `invalid size "lots" (want e.g. 1500, 64KiB, 1MiB)`}}
	for _, c := range sizes {
		var s Size
		err := s.UnmarshalText([]byte(c.in))
		if c.err != "" {
			assert.EqualError(t, err, c.err, c.in)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, c.want, s, c.in)
	}
	qs := []struct {
		in   string
		unit Unit
		v    float64
	}{{"3s", UnitDuration, 3}, {"250ms", UnitDuration, 0.25}, {"0.1%", UnitPercent, 0.1}, {"12", UnitNumber, 12}}
	for _, c := range qs {
		var q Quantity
		require.NoError(t, q.UnmarshalText([]byte(c.in)))
		assert.Equal(t, c.unit, q.Unit, c.in)
		assert.InDelta(t, c.v, q.Value, 1e-12, c.in)
	}
	var q Quantity
	assert.Error(t, q.UnmarshalText([]byte("many")))
}

// The text forms print back to something that parses to the same value.
func TestUnitsRoundTrip(t *testing.T) {
	for _, s := range []string{"1h30m0s", "250ms", "0s"} {
		var d Duration
		require.NoError(t, d.UnmarshalText([]byte(s)))
		b, _ := d.MarshalText()
		assert.Equal(t, s, string(b))
	}
	for _, s := range []string{"10mbit", "1gbit", "1500bit", "512kbit"} {
		var b Bandwidth
		require.NoError(t, b.UnmarshalText([]byte(s)))
		assert.Equal(t, s, b.String())
	}
	for _, s := range []string{"64KiB", "1MiB", "1500B", "3GiB"} {
		var z Size
		require.NoError(t, z.UnmarshalText([]byte(s)))
		assert.Equal(t, s, z.String())
	}
}

func TestScalars(t *testing.T) {
	var m MAC
	require.NoError(t, m.UnmarshalText([]byte("02:AA:bb:CC:dd:EE")))
	assert.Equal(t, MAC("02:aa:bb:cc:dd:ee"), m)
	assert.Error(t, m.UnmarshalText([]byte("02:aa:bb:cc:dd")))

	var r RouteDst
	require.NoError(t, r.UnmarshalText([]byte("default")))
	assert.True(t, r.IsDefault())
	assert.Equal(t, "default", r.String())
	require.NoError(t, r.UnmarshalText([]byte("203.0.113.5")))
	assert.Equal(t, "203.0.113.5/32", r.String())
	assert.EqualError(t, r.UnmarshalText([]byte("10.0.0.1/24")), `route destination "10.0.0.1/24" has host bits set (did you mean 10.0.0.0/24?)`)

	var sig Signal
	require.NoError(t, sig.UnmarshalText([]byte("sigkill")))
	assert.Equal(t, Signal("KILL"), sig)
	assert.EqualError(t, sig.UnmarshalText([]byte("KIL")), `unknown signal "KIL" (did you mean "KILL"?)`)

	var l Listen
	require.NoError(t, l.UnmarshalText([]byte(":80")))
	assert.Equal(t, ":80", l.String())
	require.NoError(t, l.UnmarshalText([]byte("10.0.0.1:8080")))
	assert.Equal(t, "10.0.0.1:8080", l.String())
	assert.Error(t, l.UnmarshalText([]byte("80")))

	var fm FileMode
	require.NoError(t, fm.UnmarshalText([]byte("0755")))
	assert.Equal(t, FileMode(0o755), fm)
	assert.Error(t, fm.UnmarshalText([]byte("0999")))

	var req Requirement
	require.NoError(t, req.UnmarshalText([]byte("netem?")))
	assert.Equal(t, Requirement{"netem", true}, req)
	assert.EqualError(t, req.UnmarshalText([]byte("ipipp")), `unknown feature "ipipp" (did you mean "ipip"?)`)
}

func TestIsPublic(t *testing.T) {
	for a, want := range map[string]bool{
		"8.8.8.8": true, "202.103.106.5": true, "207.175.44.110": true,
		"10.0.0.1": false, "172.16.0.2": false, "192.168.57.122": false,
		"203.0.113.5": false, "198.51.100.2": false, "192.0.2.1": false, "224.0.0.18": false,
	} {
		assert.Equal(t, want, IsPublic(mustAddr(a)), a)
	}
}

func TestSuggest(t *testing.T) {
	assert.Equal(t, ` (did you mean "segment"?)`, suggest("segmnet", []string{"name", "segment", "addresses"}))
	assert.Equal(t, ` (did you mean "interfaces"?)`, suggest("interface", []string{"interfaces", "routes"}))
	assert.Equal(t, "", suggest("colour", []string{"name", "role"}))
	assert.Equal(t, "", suggest("b", []string{"a"}), "one-letter names are not typos of each other")
}

// FuzzSpec: the parser never panics, and whatever it accepts survives a
// round trip through Marshal.
func FuzzSpec(f *testing.F) {
	files, _ := filepath.Glob("../testdata/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		base,
		"name: x\nsegments: {}\nnodes: {}\n",
		"name: x\nsegments: {a: &a {subnets: [10.0.0.0/24]}}\nnodes: {n[1..3]: {role: host, description: '{{i+1}}'}}\n",
		"a: &a [*a]\n",
		"x: &x {<<: *x}\n",
		"name: x\nvars: {v: ${v}}\nsegments: {}\nnodes: {}\n",
		"- 1\n- 2\n",
		"---\nname: a\n---\nname: b\n",
		"name: x\nsegments: {l: {}}\nnodes: {a: {role: host, interfaces: [{name: e, segment: l, addresses: [10.0.0.1/24, 10.0.0.1/24]}]}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, "fuzz.yaml", Options{})
		if err != nil {
			if _, ok := err.(ErrorList); !ok {
				t.Fatalf("error is %T, not an ErrorList", err)
			}
			return
		}
		out, err := Marshal(s)
		if err != nil {
			t.Fatalf("marshal an accepted spec: %v", err)
		}
		if _, err := Parse(out, "fuzz.yaml", Options{}); err != nil {
			t.Fatalf("the resolved spec does not load again: %v\n%s", err, out)
		}
	})
}
