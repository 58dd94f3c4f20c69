package benchnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// BenchmarkE2E is acceptance point 7: 64-byte UDP frames at a VIP,
// forwarded by the reference AF_PACKET forwarder, lvsd DR, lvsd NAT and the
// kernel's nftables DNAT, in rounds (ref, DR, NAT, nft, ref, ...) so that
// noise on the shared machine hits all four alike. It prints the table and
// reports the median rates and their ratios as metrics. One op is the whole
// set of rounds; run it with -benchtime 1x.
//
// Environment: LVSLAB_E2E_ROUNDS (default 5), LVSLAB_E2E_WINDOW (1.5s),
// LVSLAB_E2E_WARMUP (500ms), LVSLAB_E2E_RATE (offered pps cap, default
// none), LVSLAB_E2E_NOPIN=1 (no CPU placement), LVSLAB_E2E_NICE (nice value
// of forwarder, generator and sink; default -10, 0 leaves it).
func BenchmarkE2E(b *testing.B) {
	if why := Available(); why != "" {
		testenv.Skip(b, "end-to-end benchmark: "+why)
	}
	nstest.Require(b)
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("LVSLAB_E2E_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	cfg := Config{
		Warmup: EnvDuration("LVSLAB_E2E_WARMUP", 500*time.Millisecond),
		Window: EnvDuration("LVSLAB_E2E_WINDOW", 1500*time.Millisecond),
		NoPin:  os.Getenv("LVSLAB_E2E_NOPIN") == "1",
	}
	if v, err := strconv.ParseFloat(os.Getenv("LVSLAB_E2E_RATE"), 64); err == nil && v > 0 {
		cfg.Rate = v
	}
	cfg.Nice = -10
	if v, err := strconv.Atoi(os.Getenv("LVSLAB_E2E_NICE")); err == nil {
		cfg.Nice = v
	}
	forwarders, err := ParseForwarders(os.Getenv("LVSLAB_E2E_FORWARDERS"))
	if err != nil {
		b.Fatalf("LVSLAB_E2E_FORWARDERS: %v", err)
	}
	lab := New(b, cfg)

	var results []Result
	failed := map[Forwarder]error{}
	b.ResetTimer()
	for range b.N {
		for round := range rounds {
			for _, f := range forwarders {
				if failed[f] != nil {
					continue
				}
				r, err := lab.Run(context.Background(), f)
				if err != nil {
					failed[f] = err
					b.Errorf("round %d: %v", round+1, err)
					continue
				}
				results = append(results, r)
				b.Logf("round %d %-16s rx %6.1f kpps  offered %6.1f kpps  fwd CPU %3.0f%% (idle %3.0f%%) %5.0f ns/frame  sink drops %d  %s",
					round+1, f, r.RxPPS/1e3, r.TxPPS/1e3, 100*r.CPUShare(), 100*r.FwdIdle.Seconds()/r.Window.Seconds(),
					r.NsPerFrame(), r.SinkDrops, r.Note)
			}
		}
	}
	b.StopTimer()

	s := Summarize(results, failed)
	gen, fwd := lab.Pinned()
	placement := "CPU placement left to the scheduler"
	if fwd >= 0 {
		placement = fmt.Sprintf("forwarder on CPU %d, generator and sink on CPU %d, nice %d", fwd, gen, cfg.Nice)
	}
	offered := "as fast as the generator sends"
	if cfg.Rate > 0 {
		offered = fmt.Sprintf("capped at %.0f pps", cfg.Rate)
	}
	title := fmt.Sprintf("End-to-end forwarding: 64-byte frames, %d flows, veth+netns, offered %s,\n%s; median of %d rounds of %v (after %v warm-up).\n"+
		"UDP rows: UDP frames. -tcp rows: TCP data segments of established connections (each flow's handshake\n"+
		"done through the forwarder before the window; +sp: lvsd's SYN proxy on), ratios against the reference on the same TCP frames.",
		lab.Flows(), offered, placement, s.Rounds, cfg.Window, cfg.Warmup)
	// The table goes to stdout as it is: it is what `make bench` shows.
	fmt.Print("\n" + s.Table(title) + "\n")

	for _, r := range s.Rows {
		if len(r.Runs) > 0 {
			b.ReportMetric(r.RxPPS, string(r.Forwarder)+"-pps")
		}
	}
	for _, r := range s.Ratios {
		if r.OK {
			b.ReportMetric(r.Value, r.Name)
		}
	}
	for _, r := range s.CostRatios {
		if r.OK {
			b.ReportMetric(r.Value, r.Name+"-by-cpu")
		}
	}
	if len(failed) > 0 {
		var errs []error
		for _, f := range forwarders {
			if failed[f] != nil {
				errs = append(errs, failed[f])
			}
		}
		b.Logf("failures:\n%v", errors.Join(errs...))
	}
}

// BenchmarkE2EHandshakes is the second table of issue 11's acceptance 5:
// new TCP connections per second through lvsd NAT with and without the
// SYN proxy, completed handshakes counted from what comes back (the real
// server's greeting), and lvsd's CPU per connection; interleaved rounds,
// medians. Environment as BenchmarkE2E's (rounds, window, warm-up, no
// pinning, nice).
func BenchmarkE2EHandshakes(b *testing.B) {
	if why := Available(); why != "" {
		testenv.Skip(b, "end-to-end benchmark: "+why)
	}
	nstest.Require(b)
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("LVSLAB_E2E_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	cfg := Config{
		Warmup: EnvDuration("LVSLAB_E2E_WARMUP", 500*time.Millisecond),
		Window: EnvDuration("LVSLAB_E2E_WINDOW", 1500*time.Millisecond),
		NoPin:  os.Getenv("LVSLAB_E2E_NOPIN") == "1",
		Nice:   -10,
	}
	if v, err := strconv.Atoi(os.Getenv("LVSLAB_E2E_NICE")); err == nil {
		cfg.Nice = v
	}
	lab := New(b, cfg)
	if err := lab.ServeHandshakes(); err != nil {
		b.Fatal(err)
	}
	var results []HSResult
	failed := map[Forwarder]error{}
	b.ResetTimer()
	for range b.N {
		for round := range rounds {
			for _, f := range HandshakeForwarders() {
				if failed[f] != nil {
					continue
				}
				r, err := lab.RunHandshakes(context.Background(), f)
				if err != nil {
					failed[f] = err
					b.Errorf("round %d: %v", round+1, err)
					continue
				}
				results = append(results, r)
				c := r.Counts
				b.Logf("round %d %-16s %6.0f conns/s  SYNs %d  SYN/ACKs %d  completed %d  refused %d  lost %d  fwd CPU %3.0f%% %6.0f ns/conn  %s",
					round+1, f, r.Rate(), c.Started, c.SYNACKs, c.Completed, c.Refused, c.Lost, 100*r.CPUShare(), r.NsPerConn(), r.Note)
			}
		}
	}
	b.StopTimer()

	rows := SummarizeHandshakes(results, failed)
	gen, fwd := lab.Pinned()
	placement := "CPU placement left to the scheduler"
	if fwd >= 0 {
		placement = fmt.Sprintf("lvsd on CPU %d; generator, real server (accept loop and, by RPS, its TCP stack) on CPU %d; nice %d", fwd, gen, cfg.Nice)
	}
	title := fmt.Sprintf("New TCP connections through lvsd NAT (SYN -> SYN/ACK -> ACK -> the server's greeting -> RST; raw-frame clients,\n"+
		"%d sources, %d in flight, closed loop) to a kernel listener; %s;\nmedian of %d rounds of %v (after %v warm-up)",
		HSAddrs*HSPorts, HSInFlight, placement, rounds, cfg.Window, max(cfg.Warmup, 1200*time.Millisecond))
	fmt.Print("\n" + HandshakeTable(title, rows) + "\n")
	for _, r := range rows {
		if len(r.Runs) > 0 {
			b.ReportMetric(r.Rate, string(r.Forwarder)+"-conns/s")
		}
	}
}
