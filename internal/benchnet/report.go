package benchnet

import (
	"fmt"
	"slices"
	"strings"
)

// The acceptance bars: lvsd DR and FULLNAT forward at least these
// fractions of the reference forwarder's rate.
const (
	DRTarget   = 0.8
	FNATTarget = 0.85
)

// Summary is the median of each forwarder's runs and the ratios between
// them. Medians, not means: one run disturbed by a neighbour on a shared
// machine must not move the figure.
type Summary struct {
	Rounds int
	Rows   []Row
	// Ratios are of the median received rates.
	Ratios []Ratio
	// CostRatios are of the inverse median CPU cost per frame: the rate
	// ratio the forwarders would show with a CPU each to themselves, which
	// neighbours taking CPU time away do not move.
	CostRatios []Ratio
}

// Row is one forwarder's runs.
type Row struct {
	Forwarder  Forwarder
	RxPPS      float64   // median received rate
	TxPPS      float64   // median offered rate
	Runs       []float64 // each run's received rate, in run order
	CPUShare   float64   // median fraction of a CPU the forwarder used
	NsPerFrame float64   // median forwarder CPU time per delivered frame (0: unknown)
	Failed     string    // why the forwarder has no figure, if it has none
}

// Ratio is one forwarder's median rate over another's.
type Ratio struct {
	Name  string // e.g. "lvsd-dr/ref"
	Value float64
	OK    bool // both medians exist
}

// Summarize groups results by forwarder (in the order of All) and takes
// the medians. failed maps a forwarder to the error that stopped it.
func Summarize(results []Result, failed map[Forwarder]error) Summary {
	var s Summary
	med, speed := map[Forwarder]float64{}, map[Forwarder]float64{}
	for _, f := range All() {
		if failed[f] == nil && !slices.ContainsFunc(results, func(r Result) bool { return r.Forwarder == f }) {
			continue // not run
		}
		row := Row{Forwarder: f}
		var tx, share, cost []float64
		for _, r := range results {
			if r.Forwarder == f {
				row.Runs = append(row.Runs, r.RxPPS)
				tx = append(tx, r.TxPPS)
				share = append(share, r.CPUShare())
				if c := r.NsPerFrame(); c > 0 {
					cost = append(cost, c)
				}
			}
		}
		s.Rounds = max(s.Rounds, len(row.Runs))
		if err := failed[f]; err != nil {
			row.Failed = firstLine(err.Error())
		}
		if len(row.Runs) > 0 {
			row.RxPPS, row.TxPPS, row.CPUShare = median(row.Runs), median(tx), median(share)
			med[f] = row.RxPPS
		}
		// A cost needs most runs to have one, or it is not comparable.
		if len(cost) > 0 && 2*len(cost) > len(row.Runs) {
			row.NsPerFrame = median(cost)
			speed[f] = 1 / row.NsPerFrame
		}
		s.Rows = append(s.Rows, row)
	}
	s.Ratios, s.CostRatios = ratios(med), ratios(speed)
	return s
}

// ratios are each forwarder's figure over its reference's (the reference
// forwarder on the same frames), and DR's over the kernel's.
func ratios(v map[Forwarder]float64) []Ratio {
	var out []Ratio
	var pairs [][2]Forwarder
	for _, f := range All() {
		if f != f.Reference() {
			pairs = append(pairs, [2]Forwarder{f, f.Reference()})
		}
	}
	for _, p := range append(pairs, [2]Forwarder{LVSDDR, NftDNAT}) {
		a, okA := v[p[0]]
		b, okB := v[p[1]]
		r := Ratio{Name: string(p[0]) + "/" + string(p[1]), OK: okA && okB && b > 0}
		if r.OK {
			r.Value = a / b
		}
		out = append(out, r)
	}
	return out
}

// Ratio returns the named rate ratio.
func (s Summary) Ratio(name string) (float64, bool) {
	return find(s.Ratios, name)
}

// CostRatio returns the named CPU-cost ratio.
func (s Summary) CostRatio(name string) (float64, bool) {
	return find(s.CostRatios, name)
}

func find(rs []Ratio, name string) (float64, bool) {
	for _, r := range rs {
		if r.Name == name {
			return r.Value, r.OK
		}
	}
	return 0, false
}

// Table renders the summary for a terminal.
func (s Summary) Table(title string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", title)
	fmt.Fprintf(&b, "%-16s %8s %8s %6s %6s %8s  %s\n", "forwarder", "rx kpps", "offered", "deliv", "fwdCPU", "ns/frame", "runs (rx kpps, in order)")
	for _, r := range s.Rows {
		if len(r.Runs) == 0 {
			fmt.Fprintf(&b, "%-16s %8s %8s %6s %6s %8s  failed: %s\n", r.Forwarder, "-", "-", "-", "-", "-", r.Failed)
			continue
		}
		runs := make([]string, len(r.Runs))
		for i, v := range r.Runs {
			runs[i] = fmt.Sprintf("%.0f", v/1e3)
		}
		cost := "-"
		if r.NsPerFrame > 0 {
			cost = fmt.Sprintf("%.0f", r.NsPerFrame)
		}
		line := fmt.Sprintf("%-16s %8.1f %8.1f %5.0f%% %5.0f%% %8s  %s", r.Forwarder, r.RxPPS/1e3, r.TxPPS/1e3,
			100*r.RxPPS/r.TxPPS, 100*r.CPUShare, cost, strings.Join(runs, " "))
		if r.Failed != "" {
			line += "  (then failed: " + r.Failed + ")"
		}
		b.WriteString(line + "\n")
	}
	for _, r := range s.Rows {
		if len(r.Runs) > 0 && r.RxPPS >= 0.97*r.TxPPS {
			fmt.Fprintf(&b, "note: %s took nearly all it was offered: its rate is a lower bound (the generator's limit); see its CPU cost.\n", r.Forwarder)
		}
	}
	ran := map[Forwarder]bool{}
	for _, r := range s.Rows {
		ran[r.Forwarder] = true
	}
	for _, tcp := range []bool{false, true} {
		proto := "UDP"
		if tcp {
			proto = "TCP"
		}
		writeRatios(&b, proto+" ratios of median rx rates:", s.Ratios, ran, tcp)
		writeRatios(&b, proto+" ratios by CPU cost/frame: ", s.CostRatios, ran, tcp)
	}
	for _, t := range []struct {
		name string
		bar  float64
	}{{"lvsd-dr/ref", DRTarget}, {"lvsd-fnat/ref", FNATTarget}, {"lvsd-fnat-tcp/ref-tcp", FNATTarget}} {
		v, ok := s.Ratio(t.name)
		if !ok {
			continue
		}
		verdict := "met"
		if v < t.bar {
			verdict = "NOT met"
		}
		fmt.Fprintf(&b, "target %s >= %.2f (rx rates): %s (%.2f)", t.name, t.bar, verdict, v)
		if c, ok := s.CostRatio(t.name); ok {
			fmt.Fprintf(&b, "; by CPU cost %.2f", c)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// writeRatios prints the ratios of one protocol's forwarders among those
// that ran, if any.
func writeRatios(b *strings.Builder, label string, rs []Ratio, ran map[Forwarder]bool, tcp bool) {
	var line strings.Builder
	for _, r := range rs {
		num, den, _ := strings.Cut(r.Name, "/")
		if Forwarder(num).TCP() != tcp || !ran[Forwarder(num)] || !ran[Forwarder(den)] {
			continue
		}
		if r.OK {
			fmt.Fprintf(&line, "  %s %.2f", r.Name, r.Value)
		} else {
			fmt.Fprintf(&line, "  %s -", r.Name)
		}
	}
	if line.Len() > 0 {
		b.WriteString(label + line.String() + "\n")
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
