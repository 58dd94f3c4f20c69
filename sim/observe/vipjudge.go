package observe

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	segcap "lvslab/sim/capture"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
)

// VIPJudge decides vip: and vrrp: expectations from the VRRP observer's
// records: the ARP probes of the address (holders, holder), the gratuitous
// ARPs seen for it (garps), the senders of a VRID's adverts (masters,
// master). It implements runner.Judge.
type VIPJudge struct{}

// Evaluate implements runner.Judge.
func (VIPJudge) Evaluate(_ context.Context, run *runner.Run, e *spec.Expectation) (runner.Outcome, bool) {
	v := e.VIP
	if v == nil && e.VRRP == nil {
		return runner.Outcome{}, false
	}
	st, ok := run.Stage[VRRPStageName].(*VRRPStage)
	if !ok {
		return runner.Outcome{Detail: "no VRRP observer ran, so nothing saw the VIP"}, true
	}
	from, to, phrase, err := segcap.Window(run, e)
	if err != nil {
		return runner.Outcome{Detail: err.Error()}, true
	}
	w := window{from: 0, to: run.End.Sub(run.T0), phrase: phrase}
	if !from.IsZero() {
		w.from = from.Sub(run.T0)
	}
	if !to.IsZero() {
		w.to = to.Sub(run.T0)
	}
	if w.phrase == "" {
		w.phrase = " over the whole run"
	}
	if e.VRRP != nil {
		return judgeVRRP(e.VRRP, st.Records(), w), true
	}
	return judgeVIP(v, e, st.Records(), w), true
}

type window struct {
	from, to time.Duration
	phrase   string
}

func (w window) contains(at time.Duration) bool { return at >= w.from && at < w.to }

// judgeVIP decides one vip: expectation over the records.
func judgeVIP(v *spec.VIPCheck, e *spec.Expectation, recs []VRRPRecord, w window) runner.Outcome {
	vip := v.Address.String()
	if v.GARPs {
		n := 0
		var senders []string
		for _, r := range recs {
			if r.Kind != RecARP || !r.Gratuitous || r.Src != vip || !w.contains(r.At()) {
				continue
			}
			if v.From != "" && r.Node != v.From {
				continue
			}
			n++
			if who := senderName(r.Node, r.MAC); !slices.Contains(senders, who) {
				senders = append(senders, who)
			}
		}
		held, want := segcap.Compare(float64(n), e)
		by := ""
		if v.From != "" {
			by = " from " + v.From
		} else if len(senders) > 0 {
			by = " (from " + strings.Join(senders, ", ") + ")"
		}
		return runner.Outcome{Held: held, Detail: fmt.Sprintf("%d gratuitous ARPs for %s%s%s; want %s", n, vip, by, w.phrase, want)}
	}
	var probes []VRRPRecord
	for _, r := range recs {
		if r.Kind == RecProbe && r.VIP == vip && w.contains(r.At()) {
			probes = append(probes, r)
		}
	}
	return judgeSamples(probes, v.Holders, v.Holder, vipWords(vip), w)
}

// wording is how a check over samples speaks of what it counts.
type wording struct {
	subject    string        // "192.0.2.1", "lan VRID 1"
	answered   string        // "answered by", "advertised by"
	unanswered string        // "unanswered (nobody holds it)"
	counted    string        // "hardware address(es)", "MASTER(s)"
	samples    string        // "probes", "samples"
	split      string        // "split brain", "two masters"
	step       time.Duration // between samples
}

func vipWords(vip string) wording {
	return wording{subject: vip, answered: "answered by", unanswered: "unanswered (nobody holds it)",
		counted: "hardware address(es)", samples: "probes", split: "split brain", step: spec.VIPProbeInterval}
}

// judgeSamples decides holders (each sample has exactly that many) or
// holder (the node alone from some sample to the window's end) over
// samples whose Holders say who was there; MACs count them.
func judgeSamples(probes []VRRPRecord, holders *int, holder string, words wording, w window) runner.Outcome {
	vip := words.subject
	if len(probes) == 0 {
		return runner.Outcome{Detail: fmt.Sprintf("no %s of %s%s (0 records were judged)", strings.TrimSuffix(words.samples, "s"), vip, w.phrase)}
	}
	who := func(r VRRPRecord) string {
		if len(r.Holders) == 0 {
			return "nobody"
		}
		return strings.Join(r.Holders, ", ")
	}
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	if holders != nil {
		want := *holders
		// The stretches where the count was wrong, each with who answered.
		type stretch struct {
			from, to time.Duration
			who      string
			n        int
			last     int // index of its last sample
		}
		var bad []stretch
		for i, r := range probes {
			if len(r.MACs) == want {
				continue
			}
			if k := len(bad) - 1; k >= 0 && bad[k].who == who(r) && bad[k].last == i-1 {
				bad[k].to, bad[k].n, bad[k].last = r.At(), bad[k].n+1, i
				continue
			}
			bad = append(bad, stretch{from: r.At(), to: r.At(), who: who(r), n: 1, last: i})
		}
		if len(bad) == 0 {
			return runner.Outcome{Held: true, Detail: fmt.Sprintf("%s %s exactly %d %s in all %d %s%s (%s)",
				vip, words.answered, want, words.counted, len(probes), words.samples, w.phrase, summarizeHolders(probes, who))}
		}
		worst := 0
		for i := range bad {
			if bad[i].to-bad[i].from > bad[worst].to-bad[worst].from {
				worst = i
			}
		}
		count := 0
		for _, b := range bad {
			count += b.n
		}
		b := bad[worst]
		what := words.answered + " " + b.who
		if b.who == "nobody" {
			what = words.unanswered
		} else if strings.Contains(b.who, ",") {
			what = words.answered + " " + b.who + ": " + words.split
		}
		return runner.Outcome{Detail: fmt.Sprintf("%s %s from %s to %s; %d of %d %s%s had other than %d %s, in %d stretch(es); want exactly %d throughout",
			vip, what, ms(b.from), ms(b.to+words.step), count, len(probes), words.samples, w.phrase, want, words.counted, len(bad), want)}
	}
	// holder: the node answers alone from some probe to the window's end.
	since := -1
	for i := len(probes) - 1; i >= 0; i-- {
		if len(probes[i].Holders) != 1 || probes[i].Holders[0] != holder {
			break
		}
		since = i
	}
	last := probes[len(probes)-1]
	if since < 0 {
		return runner.Outcome{Detail: fmt.Sprintf("the last %s of %s%s (at %s) was %s %s, not %s alone (%s)",
			strings.TrimSuffix(words.samples, "s"), vip, w.phrase, ms(last.At()), words.answered, who(last), holder, summarizeHolders(probes, who))}
	}
	first := probes[since]
	return runner.Outcome{Held: true, Detail: fmt.Sprintf("%s %s %s alone from %s (%s into the window) to its end, %d %s (%s)",
		vip, words.answered, holder, ms(first.At()), ms(first.At()-w.from), len(probes)-since, words.samples, summarizeHolders(probes, who))}
}

// vrrpStep is how finely a vrrp: expectation samples the MASTER spans:
// finer than any advert interval, so two MASTERs overlapping for a moment
// (one elected just before the other's last advert runs out) are caught.
const vrrpStep = 10 * time.Millisecond

// judgeVRRP decides a vrrp: expectation: who advertised the VRID (its
// MASTER as the wire shows it, MasterSpans), sampled every vrrpStep across
// the window.
func judgeVRRP(c *spec.VRRPCheck, recs []VRRPRecord, w window) runner.Outcome {
	var spans []MasterSpan
	for _, m := range MasterSpans(recs, w.to) {
		if m.Segment == c.Segment && m.VRID == c.VRID {
			spans = append(spans, m)
		}
	}
	subject := fmt.Sprintf("%s VRID %d", c.Segment, c.VRID)
	if len(c.Routers) > 0 {
		return judgeRouters(c, subject, recs, w)
	}
	var samples []VRRPRecord
	for at := w.from; at < w.to; at += vrrpStep {
		r := VRRPRecord{Kind: RecProbe, at: at}
		for _, m := range spans {
			if m.From <= at && at < m.To && !slices.Contains(r.Holders, m.Sender) {
				r.Holders = append(r.Holders, m.Sender)
			}
		}
		slices.Sort(r.Holders)
		r.MACs = r.Holders
		samples = append(samples, r)
	}
	words := wording{subject: subject, answered: "advertised by",
		unanswered: "advertised by nobody (no MASTER)", counted: "MASTER(s)", samples: "samples", split: "several MASTERs at once", step: vrrpStep}
	return judgeSamples(samples, c.Masters, c.Master, words, w)
}

// judgeRouters decides routers: only the named nodes sent adverts of the
// VRID in the window; the others are named with their first advert.
func judgeRouters(c *spec.VRRPCheck, subject string, recs []VRRPRecord, w window) runner.Outcome {
	type seen struct {
		first time.Duration
		n     int
		addrs string
	}
	senders := map[string]*seen{}
	var order []string
	for _, r := range recs {
		if r.Kind != RecAdvert || r.Segment != c.Segment || r.VRID != c.VRID || !w.contains(r.At()) {
			continue
		}
		who := senderName(r.Node, r.Src)
		if senders[who] == nil {
			senders[who] = &seen{first: r.At(), addrs: strings.Join(r.Addrs, " ")}
			order = append(order, who)
		}
		senders[who].n++
	}
	if len(order) == 0 {
		return runner.Outcome{Detail: fmt.Sprintf("no advert of %s%s (0 records were judged)", subject, w.phrase)}
	}
	var parts, others []string
	for _, who := range order {
		s := senders[who]
		parts = append(parts, fmt.Sprintf("%s %d (for %s)", who, s.n, s.addrs))
		if !slices.Contains(c.Routers, who) {
			others = append(others, fmt.Sprintf("%s from %s", who, s.first.Round(time.Millisecond)))
		}
	}
	detail := fmt.Sprintf("adverts of %s%s: %s; want only %s", subject, w.phrase, strings.Join(parts, ", "), strings.Join(c.Routers, ", "))
	if len(others) > 0 {
		detail = fmt.Sprintf("%s also advertised by %s; ", subject, strings.Join(others, ", ")) + detail
	}
	return runner.Outcome{Held: len(others) == 0, Detail: detail}
}

// summarizeHolders says who answered when, as "lb1 until 4.2s, lb1, lb2
// until 4.4s, lb2".
func summarizeHolders(probes []VRRPRecord, who func(VRRPRecord) string) string {
	var parts []string
	cur := ""
	for i, r := range probes {
		w := who(r)
		if i > 0 && w != cur {
			parts = append(parts, fmt.Sprintf("%s until %s", cur, r.At().Round(time.Millisecond)))
		}
		cur = w
	}
	parts = append(parts, cur)
	if len(parts) > 8 {
		parts = append(parts[:4], append([]string{"..."}, parts[len(parts)-3:]...)...)
	}
	return strings.Join(parts, ", ")
}
