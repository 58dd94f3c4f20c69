package observe

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"lvslab/config"
	"lvslab/internal/testenv"
	"lvslab/ipvs/ctl"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

func requireNetns(t *testing.T) {
	t.Helper()
	testenv.Netns(t)
}

func loadLab(t *testing.T, file, what string, opts topo.Options) *topo.Lab {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	src := strings.ReplaceAll(string(b), "@NAME@", fmt.Sprintf("t%d-%s", os.Getpid(), what))
	s, err := spec.Parse([]byte(src), filepath.Base(file), spec.Options{})
	require.NoError(t, err)
	opts.StateDir = t.TempDir()
	lab, err := topo.Build(context.Background(), s, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, lab.Close(ctx))
	})
	return lab
}

func readRecords(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		out = append(out, r)
	}
	require.NoError(t, sc.Err())
	return out
}

func TestObserverRecordsChanges(t *testing.T) {
	requireNetns(t)
	lab := loadLab(t, "testdata/pair.yaml", "obs", topo.Options{NoProcesses: true})
	ctx := context.Background()
	st := New(lab.Spec, Options{})
	assert.Empty(t, st.Claims(lab.Spec))
	t0 := time.Now()
	require.NoError(t, st.Start(ctx, lab, t0))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = st.Stop(ctx)
		}
	})

	a, b := lab.Node("a").Netlink(), lab.Node("b").Netlink()
	eth0, err := a.LinkByName("eth0")
	require.NoError(t, err)
	vip := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.82.0.99"), Mask: net.CIDRMask(32, 32)}}
	require.NoError(t, a.AddrAdd(eth0, vip))
	beth0, err := b.LinkByName("eth0")
	require.NoError(t, err)
	require.NoError(t, b.LinkSetDown(beth0))
	require.NoError(t, b.LinkSetUp(beth0))
	// Resolve b from a a few times: one neighbour record, not one per
	// state change.
	for range 3 {
		cmd, err := lab.Command(ctx, "a", "ping", "-n", "-c1", "-W1", "10.82.0.2")
		require.NoError(t, err)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
	}

	find := func(pred func(Record) bool) (Record, bool) {
		for _, r := range st.Records() {
			if pred(r) {
				return r, true
			}
		}
		return Record{}, false
	}
	require.Eventually(t, func() bool {
		_, ok := find(func(r Record) bool { return r.Node == "a" && r.Kind == "neigh" && r.Addr == "10.82.0.2" })
		return ok
	}, 3*time.Second, 10*time.Millisecond)
	require.NoError(t, st.Stop(ctx))
	stopped = true

	recs := readRecords(t, filepath.Join(lab.RunDir(), EventsFile))
	assert.Equal(t, withoutAt(st.Records()), recs, "events.jsonl holds what Records returns")
	var addr, down, up, neigh []Record
	for _, r := range recs {
		switch {
		case r.Node == "a" && r.Kind == "addr" && r.Action == "add" && r.Addr == "10.82.0.99/32":
			addr = append(addr, r)
		case r.Node == "b" && r.Kind == "link" && r.Dev == "eth0" && strings.HasPrefix(r.State, "down"):
			down = append(down, r)
		case r.Node == "b" && r.Kind == "link" && r.Dev == "eth0" && strings.HasPrefix(r.State, "up"):
			up = append(up, r)
		case r.Node == "a" && r.Kind == "neigh" && r.Addr == "10.82.0.2" && r.State == "VALID":
			neigh = append(neigh, r)
		}
	}
	require.Len(t, addr, 1, "%+v", recs)
	assert.Equal(t, "eth0", addr[0].Dev)
	assert.Greater(t, addr[0].T, 0.0)
	assert.Less(t, addr[0].T, time.Since(t0).Seconds())
	assert.NotEmpty(t, down)
	assert.NotEmpty(t, up)
	assert.Len(t, neigh, 1, "REACHABLE/STALE/DELAY flaps are one record")
	beMAC := beth0.Attrs().HardwareAddr.String()
	if len(neigh) > 0 {
		assert.Equal(t, beMAC, neigh[0].MAC)
	}

	evs := st.Events()
	require.Len(t, evs, len(recs))
	found := false
	for _, e := range evs {
		assert.Equal(t, KindObserver, e.Kind)
		if e.Name == "a.addr" && strings.Contains(e.Detail, "10.82.0.99/32") {
			found = true
			assert.InDelta(t, addr[0].T, e.At.Seconds(), 1e-5)
		}
	}
	assert.True(t, found, "runner event a.addr")
}

// withoutAt clears the unexported time, which events.jsonl does not carry
// (it has T).
func withoutAt(rs []Record) []Record {
	for i := range rs {
		rs[i].at = 0
	}
	return rs
}

func TestObserverCap(t *testing.T) {
	requireNetns(t)
	lab := loadLab(t, "testdata/pair.yaml", "cap", topo.Options{NoProcesses: true})
	ctx := context.Background()
	st := New(lab.Spec, Options{MaxPerNode: 3})
	require.NoError(t, st.Start(ctx, lab, time.Now()))
	a := lab.Node("a").Netlink()
	lo, err := a.LinkByName("lo")
	require.NoError(t, err)
	for i := range 6 {
		ad := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(192, 0, 2, byte(10+i)), Mask: net.CIDRMask(32, 32)}}
		require.NoError(t, a.AddrAdd(lo, ad))
	}
	// Wait until all six have arrived: three kept, three counted as
	// dropped (how long that takes is the machine's business).
	require.Eventually(t, func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.count["a"]+st.dropped["a"] >= 6
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, st.Stop(ctx))
	recs := st.Records()
	require.Len(t, recs, 4, "%+v", recs)
	last := recs[3]
	assert.Equal(t, "dropped", last.Kind)
	assert.Contains(t, last.Detail, "3 further changes")
}

// lvsdBinary builds lvsd once for the statistics test.
var lvsdBuild struct {
	once sync.Once
	dir  string
	err  error
}

func lvsdBinDir(t *testing.T) string {
	t.Helper()
	testenv.Go(t)
	lvsdBuild.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			lvsdBuild.err = fmt.Errorf("go toolchain: %w", err)
			return
		}
		lvsdBuild.dir, lvsdBuild.err = os.MkdirTemp("", "lvslab-observe-bin-")
		if lvsdBuild.err != nil {
			return
		}
		out, err := exec.Command(goBin, "build", "-o", lvsdBuild.dir+"/", "lvslab/cmd/lvsd").CombinedOutput()
		if err != nil {
			lvsdBuild.err = fmt.Errorf("go build lvsd: %v\n%s", err, out)
		}
	})
	require.NoError(t, lvsdBuild.err)
	return lvsdBuild.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if lvsdBuild.dir != "" {
		os.RemoveAll(lvsdBuild.dir)
	}
	os.Exit(code)
}

func TestStatsScrapesDirector(t *testing.T) {
	requireNetns(t)
	testenv.Tools(t, "socat")
	bin := lvsdBinDir(t)
	lab := loadLab(t, "testdata/nat.yaml", "stats", topo.Options{BinDir: bin})
	ctx := context.Background()
	st := NewStats(lab.Spec, StatsOptions{Interval: 100 * time.Millisecond})
	assert.Empty(t, st.Claims(lab.Spec))
	assert.Equal(t, []string{"director"}, st.Directors())
	require.NoError(t, st.Start(ctx, lab, time.Now()))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = st.Stop(ctx)
		}
	})

	// Three requests that get through. The first may have to wait for
	// lvsd's ARP round trips to the real server and back to the client on a
	// loaded machine, so a request is retried until a deadline; a failed
	// attempt only adds to the connection count judged below (>= 3).
	for i := range 3 {
		var out []byte
		deadline := time.Now().Add(15 * time.Second)
		for {
			cmd, err := lab.Command(ctx, "client", "socat", "-T2", "-", "TCP:10.83.0.100:80,connect-timeout=2")
			require.NoError(t, err)
			out, err = cmd.CombinedOutput()
			if err == nil || time.Now().After(deadline) {
				require.NoError(t, err, "request %d: %s", i, out)
				break
			}
			t.Logf("request %d: %v: %s (retrying)", i, err, out)
		}
		assert.Contains(t, string(out), "hello-from-rs")
	}
	row := func(dest string) (Sample, bool) {
		for _, r := range st.Last()["director"] {
			if r.Service == "TCP 10.83.0.100:80" && r.Dest == dest {
				return r, true
			}
		}
		return Sample{}, false
	}
	require.Eventually(t, func() bool {
		r, ok := row("")
		return ok && r.Conns >= 3
	}, 3*time.Second, 20*time.Millisecond, "last: %+v, errors: %v", st.Last(), st.LastError())
	d, ok := row("10.84.0.2:80")
	require.True(t, ok)
	assert.GreaterOrEqual(t, d.Conns, uint64(3))
	assert.Positive(t, d.InPkts)
	assert.Positive(t, d.OutPkts)
	assert.Positive(t, d.InBytes)

	// lvsd killed: sampling fails and says so; the last good sample stays.
	require.NoError(t, lab.Process("director", "lvsd").Signal(9))
	require.Eventually(t, func() bool { return st.LastError()["director"] != "" }, 3*time.Second, 20*time.Millisecond)
	require.NoError(t, st.Stop(ctx))
	stopped = true
	_, ok = row("")
	assert.True(t, ok)

	f, err := os.Open(filepath.Join(lab.RunDir(), StatsFile))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines, maxConns := 0, uint64(0)
	prevT := -1.0
	for sc.Scan() {
		var s Sample
		require.NoError(t, json.Unmarshal(sc.Bytes(), &s), sc.Text())
		assert.Equal(t, "director", s.Node)
		assert.GreaterOrEqual(t, s.T, prevT)
		prevT = s.T
		if s.Dest == "" {
			maxConns = max(maxConns, s.Conns)
		}
		lines++
	}
	assert.Greater(t, lines, 2)
	assert.GreaterOrEqual(t, maxConns, uint64(3))
}

func TestSamplesFromReply(t *testing.T) {
	vip := netip.MustParseAddr("203.0.113.5")
	reply := ctl.Reply{Services: []ctl.ServiceStatus{
		{
			Service: config.Service{Protocol: config.ProtoTCP, Addr: vip, Port: 80},
			Stats:   ctl.Stats{Conns: 10, InPkts: 50, OutPkts: 40, InBytes: 3000, OutBytes: 4000},
			Dests: []ctl.DestStatus{
				{Dest: config.Dest{Addr: netip.MustParseAddr("172.16.0.2"), Port: 80}, ActiveConns: 2, InactConns: 1,
					Stats: ctl.Stats{Conns: 4, InPkts: 20}},
				{Dest: config.Dest{Addr: netip.MustParseAddr("172.16.0.3"), Port: 8000}, ActiveConns: 3,
					Stats: ctl.Stats{Conns: 6, InPkts: 30}},
			},
		},
		{Service: config.Service{Protocol: config.ProtoFwmark, Fwmark: 7}},
	}}
	got := samples("dir1", reply)
	require.Len(t, got, 4)
	assert.Equal(t, Sample{Node: "dir1", Service: "TCP 203.0.113.5:80", Conns: 10, InPkts: 50, OutPkts: 40,
		InBytes: 3000, OutBytes: 4000, ActiveConns: 5, InactConns: 1}, got[0])
	assert.Equal(t, Sample{Node: "dir1", Service: "TCP 203.0.113.5:80", Dest: "172.16.0.2:80", Conns: 4, InPkts: 20,
		ActiveConns: 2, InactConns: 1}, got[1])
	assert.Equal(t, "172.16.0.3:8000", got[2].Dest)
	assert.Equal(t, "FWM 7", got[3].Service)
}
