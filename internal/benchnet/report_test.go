package benchnet

import (
	"errors"
	"math"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/pktgen"
	"lvslab/internal/testenv"
)

func TestSummarize(t *testing.T) {
	run := func(f Forwarder, rx float64, cpu time.Duration) Result {
		return Result{Forwarder: f, RxPPS: rx, TxPPS: 500e3, FwdCPU: cpu, Window: time.Second}
	}
	results := []Result{
		run(Ref, 400e3, time.Second), run(LVSDDR, 300e3, 900*time.Millisecond), run(LVSDNAT, 250e3, time.Second), run(NftDNAT, 500e3, time.Second),
		run(Ref, 100e3, 250*time.Millisecond), run(LVSDDR, 330e3, time.Second), run(LVSDNAT, 260e3, time.Second), run(NftDNAT, 480e3, time.Second),
		run(Ref, 420e3, time.Second), run(LVSDDR, 340e3, time.Second),
	}
	s := Summarize(results, map[Forwarder]error{NftDNAT: errors.New("boom\nlog")})
	if s.Rounds != 3 {
		t.Errorf("rounds %d, want 3", s.Rounds)
	}
	// Medians: ref 400k, DR 330k, NAT 255k (even count), nft 490k.
	want := map[string]float64{"lvsd-dr/ref": 330.0 / 400, "lvsd-nat/ref": 255.0 / 400, "nft-dnat/ref": 490.0 / 400, "lvsd-dr/nft-dnat": 330.0 / 490}
	for name, w := range want {
		got, ok := s.Ratio(name)
		if !ok || math.Abs(got-w) > 1e-9 {
			t.Errorf("%s = %v (%v), want %v", name, got, ok, w)
		}
	}
	// CPU cost: ref 2500 ns/frame in every run; DR median of 3000, 3030,
	// 2941 = 3000.
	if got, ok := s.CostRatio("lvsd-dr/ref"); !ok || math.Abs(got-2500.0/3000) > 1e-3 {
		t.Errorf("cost ratio lvsd-dr/ref = %v (%v), want %v", got, ok, 2500.0/3000)
	}
	if s.Rows[0].Runs[1] != 100e3 {
		t.Errorf("runs not kept in order: %v", s.Rows[0].Runs)
	}
	table := s.Table("title")
	for _, w := range []string{"lvsd-dr/ref 0.82", "target lvsd-dr/ref >= 0.80 (rx rates): met (0.82); by CPU cost 0.83", "400 100 420", "(then failed: boom)"} {
		if !strings.Contains(table, w) {
			t.Errorf("table lacks %q:\n%s", w, table)
		}
	}
}

func TestSummarizeNothing(t *testing.T) {
	s := Summarize(nil, map[Forwarder]error{Ref: errors.New("no traffic through")})
	if _, ok := s.Ratio("lvsd-dr/ref"); ok {
		t.Error("a ratio without figures")
	}
	table := s.Table("t")
	if !strings.Contains(table, "failed: no traffic through") || strings.Contains(table, "target") {
		t.Errorf("table:\n%s", table)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestCPUTimes(t *testing.T) {
	// Burn a little CPU so the counters have something to show: 30ms of
	// CPU, as the process's own rusage counts it, not 30ms of wall time,
	// which on a loaded machine may hold less than the 10ms clock tick
	// /proc counts in.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for start, deadline := cpu(), time.Now().Add(time.Minute); cpu()-start < 30*time.Millisecond && time.Now().Before(deadline); {
	}
	if d, err := processTime(os.Getpid()); err != nil || d <= 0 {
		t.Errorf("processTime(self) = %v, %v", d, err)
	}
	if _, err := softirqTime(0); err != nil {
		t.Error(err)
	}
	if _, err := softirqTime(100000); err == nil {
		t.Error("softirqTime of a CPU that does not exist")
	}
}

func TestKsoftirqd(t *testing.T) {
	pid, err := ksoftirqd(0)
	if err != nil {
		testenv.KernelLacks(t, "ksoftirqd/N threads", err.Error()+"; the forwarder's CPU time then misses overflowing softirq work, which New logs")
	}
	if _, err := processTime(pid); err != nil {
		t.Error(err)
	}
}

func TestHandshakeTable(t *testing.T) {
	run := func(f Forwarder, done uint64, cpu time.Duration) HSResult {
		return HSResult{Forwarder: f, Counts: pktgen.HandshakeCounts{Started: done + 10, SYNACKs: done, Completed: done, Lost: 10},
			Window: time.Second, FwdCPU: cpu}
	}
	results := []HSResult{
		run(LVSDNATTCP, 30000, 500*time.Millisecond), run(LVSDNATSPTCP, 20000, 400*time.Millisecond),
		run(LVSDNATTCP, 40000, 500*time.Millisecond), run(LVSDNATSPTCP, 24000, 480*time.Millisecond),
		run(LVSDNATTCP, 35000, 700*time.Millisecond),
	}
	rows := SummarizeHandshakes(results, nil)
	if len(rows) != 2 || rows[0].Rate != 35000 || rows[1].Rate != 22000 {
		t.Fatalf("rows %+v", rows)
	}
	// ns/conn: NAT 16667, 12500, 20000 -> 16667; SYN proxy 20000, 20000.
	if math.Abs(rows[0].NsPerConn-1e9*0.5/30000) > 1 || math.Abs(rows[1].NsPerConn-20000) > 1 {
		t.Errorf("ns/conn %v, %v", rows[0].NsPerConn, rows[1].NsPerConn)
	}
	table := HandshakeTable("t", rows)
	for _, w := range []string{"SYN proxy / plain NAT: rate 0.63, CPU per connection 1.20", "30000 40000 35000", "note: lvsd-nat-tcp used 50%"} {
		if !strings.Contains(table, w) {
			t.Errorf("table lacks %q:\n%s", w, table)
		}
	}
}
