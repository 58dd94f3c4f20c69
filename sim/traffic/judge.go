package traffic

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
)

// Judge decides metric: and shares: expectations from the records of
// whichever stage recorded the traffic (runner.RequestSource) and, for
// after: windows, the events of the other stages (runner.EventSource).
//
// Windows: during: [a, b] is [a, b) after T0; after: EVENT starts at the
// event's first occurrence and lasts within: (default: to the end of the
// records); neither: the whole run, including records that end a stream
// after the run's nominal end. A request belongs to the window its start
// falls in, except for max_gap, which looks at when requests succeeded
// (see MaxGap) inside the window clipped to the traffic's own start/stop
// and the end of the run, edges included.
//
// An expectation is left to other judges (handled false) when no stage
// recorded its traffic, its after: event could come from no stage, or the
// metric is not one of this judge's. An event that could have happened
// but did not fails the expectation: the window it opens never existed.
type Judge struct{}

var _ runner.Judge = Judge{}

// NewJudge returns the judge.
func NewJudge() Judge { return Judge{} }

// metricRE is spec's traffic.metric or traffic.metric[backend].
var metricRE = regexp.MustCompile(`^([a-z][a-z0-9-]*)\.([a-z0-9_]+)(?:\[([^\]]+)\])?$`)

// Evaluate implements runner.Judge.
func (Judge) Evaluate(_ context.Context, run *runner.Run, e *spec.Expectation) (runner.Outcome, bool) {
	switch {
	case e.Metric != "":
		return evalMetric(run, e)
	case e.Shares != nil:
		return evalShares(run, e)
	case e.Backends != nil:
		return evalBackends(run, e)
	}
	return runner.Outcome{}, false
}

// recorded reports whether some stage records this traffic.
func recorded(run *runner.Run, traffic string) bool {
	for _, st := range run.Stage {
		if rs, ok := st.(runner.RequestSource); ok && slices.Contains(rs.Traffic(), traffic) {
			return true
		}
	}
	return false
}

func hasEventSource(run *runner.Run) bool {
	for _, st := range run.Stage {
		if _, ok := st.(runner.EventSource); ok {
			return true
		}
	}
	return false
}

// windowOf resolves an expectation's window. handled is false when it
// cannot be known here; a non-empty fail says why it does not exist.
func windowOf(run *runner.Run, e *spec.Expectation) (w Window, fail string, handled bool) {
	switch {
	case len(e.During) == 2:
		from, to := e.During[0].D(), e.During[1].D()
		return Window{From: from, To: to, Label: fmt.Sprintf("in [%s, %s)", fmtDur(from), fmtDur(to))}, "", true
	case e.After != "":
		if !hasEventSource(run) {
			return Window{}, "", false
		}
		at, ok := run.EventTime(e.After)
		if !ok {
			return Window{}, fmt.Sprintf("event %s never happened, so there is no window after it", e.After), true
		}
		w := Window{From: at, To: Forever}
		if e.Within > 0 {
			w.To = at + e.Within.D()
			w.Label = fmt.Sprintf("in [%s, %s) after %s", fmtDur(w.From), fmtDur(w.To), e.After)
		} else {
			w.Label = fmt.Sprintf("from %s (%s) on", fmtDur(w.From), e.After)
		}
		return w, "", true
	}
	return WholeRun(), "", true
}

// activeSpan clips a window to when the traffic ran: its start and stop
// offsets and the end of the run.
func activeSpan(run *runner.Run, t *spec.Traffic, w Window) (from, to time.Duration) {
	from, to = w.From, w.To
	if t != nil {
		from = max(from, t.Start.D())
		if t.Stop > 0 {
			to = min(to, t.Stop.D())
		}
	}
	if !run.End.IsZero() {
		to = min(to, run.End.Sub(run.T0))
	}
	return from, to
}

func trafficOf(s *spec.Spec, name string) *spec.Traffic {
	if s == nil {
		return nil
	}
	for i := range s.Traffic {
		if s.Traffic[i].Name == name {
			return &s.Traffic[i]
		}
	}
	return nil
}

// comparisons lists the expectation's comparisons: op symbol and value.
func comparisons(e *spec.Expectation) (ops []string, qs []*spec.Quantity) {
	for _, c := range []struct {
		op string
		q  *spec.Quantity
	}{{"==", e.Eq}, {"!=", e.Ne}, {"<", e.Lt}, {"<=", e.Le}, {">", e.Gt}, {">=", e.Ge}} {
		if c.q != nil {
			ops, qs = append(ops, c.op), append(qs, c.q)
		}
	}
	return ops, qs
}

func compare(v float64, op string, q float64) bool {
	eps := 1e-9 * max(1, math.Abs(q))
	switch op {
	case "==":
		return math.Abs(v-q) <= eps
	case "!=":
		return math.Abs(v-q) > eps
	case "<":
		return v < q
	case "<=":
		return v <= q+eps
	case ">":
		return v > q
	case ">=":
		return v >= q-eps
	}
	return false
}

// observation is a metric's value over a window.
type observation struct {
	value     float64 // a count, percentage points, or seconds
	unit      spec.Unit
	why       string // what it is made of, in words
	undefined bool   // e.g. a ratio over no requests
	// empty says why no record was judged (a count of 0 over nothing):
	// such a check fails unless allow_empty: true.
	empty string
}

func (o observation) text() string {
	switch o.unit {
	case spec.UnitPercent:
		return fmtPct(o.value)
	case spec.UnitDuration:
		return fmtDur(time.Duration(o.value * float64(time.Second)))
	}
	return strconv.FormatFloat(o.value, 'f', -1, 64)
}

func evalMetric(run *runner.Run, e *spec.Expectation) (runner.Outcome, bool) {
	m := metricRE.FindStringSubmatch(e.Metric)
	if m == nil || !recorded(run, m[1]) {
		return runner.Outcome{}, false
	}
	name, metric, backend := m[1], m[2], m[3]
	ops, qs := comparisons(e)
	if len(qs) == 0 {
		return runner.Outcome{}, false
	}
	w, fail, ok := windowOf(run, e)
	if !ok {
		return runner.Outcome{}, false
	}
	var want []string
	for i := range qs {
		want = append(want, ops[i]+" "+qs[i].Text)
	}
	wantText := "want " + strings.Join(want, " and ")
	if fail != "" {
		return runner.Outcome{Detail: fmt.Sprintf("%s: %s; %s", e.Metric, fail, wantText)}, true
	}
	reqs := run.Requests(name)
	o, ok := observe(run, trafficOf(run.Spec, name), reqs, metric, backend, w)
	if !ok {
		return runner.Outcome{}, false
	}
	if o.undefined {
		return runner.Outcome{Detail: fmt.Sprintf("%s has no value %s: %s; %s", e.Metric, w.Label, o.why, wantText)}, true
	}
	held := true
	for i, q := range qs {
		if q.Unit != o.unit && (q.Unit != spec.UnitNumber || q.Value != 0) {
			return runner.Outcome{Detail: fmt.Sprintf("%s is a %s and cannot be compared with %s", e.Metric, o.unit, q.Text)}, true
		}
		held = held && compare(o.value, ops[i], q.Value)
	}
	if o.empty != "" {
		if !e.AllowEmpty {
			return runner.Outcome{Detail: fmt.Sprintf("%s = %s %s, but 0 records were judged: %s (allow_empty: true accepts that); %s",
				e.Metric, o.text(), w.Label, o.empty, wantText)}, true
		}
		o.why += "; 0 records judged, allowed by allow_empty"
	}
	return runner.Outcome{Held: held,
		Detail: fmt.Sprintf("%s = %s %s (%s); %s", e.Metric, o.text(), w.Label, o.why, wantText)}, true
}

// observe computes one metric; false for a metric this judge does not
// know.
func observe(run *runner.Run, t *spec.Traffic, reqs []runner.Request, metric, backend string, w Window) (observation, bool) {
	st := Summarize(reqs, w)
	errs := func() string {
		if st.Errors == 0 {
			return ""
		}
		return ": " + st.ErrorSummary(3)
	}
	switch metric {
	case "requests":
		if backend != "" {
			return observation{value: float64(st.Backends[backend]), unit: spec.UnitNumber,
				why: fmt.Sprintf("successful requests answered by %s, of %d successful", backend, st.Successes)}, true
		}
		return observation{value: float64(st.Requests), unit: spec.UnitNumber,
			why: fmt.Sprintf("%d succeeded, %d failed", st.Successes, st.Errors)}, true
	case "errors":
		if backend != "" {
			return observation{value: float64(st.ErrorBackends[backend]), unit: spec.UnitNumber,
				why: fmt.Sprintf("failed requests answered by %s, of %d failed", backend, st.Errors)}, true
		}
		o := observation{value: float64(st.Errors), unit: spec.UnitNumber,
			why: fmt.Sprintf("of %d requests%s", st.Requests, errs())}
		if st.Requests == 0 {
			o.empty = "no request started in the window"
		}
		return o, true
	case "error_ratio":
		o := observation{unit: spec.UnitPercent}
		if st.Requests == 0 {
			o.undefined, o.why = true, "no requests started"
			return o, true
		}
		o.value = 100 * float64(st.Errors) / float64(st.Requests)
		o.why = fmt.Sprintf("%d of %d failed%s", st.Errors, st.Requests, errs())
		return o, true
	case "max_gap":
		from, to := activeSpan(run, t, w)
		o := observation{unit: spec.UnitDuration}
		if to <= from {
			o.undefined, o.why = true, fmt.Sprintf("the traffic did not run then (active %s to %s)", fmtDur(from), fmtDur(to))
			return o, true
		}
		g := MaxGap(reqs, from, to)
		o.value = g.Len.Seconds()
		if g.Successes == 0 {
			o.why = fmt.Sprintf("no request succeeded at all from %s to %s", fmtDur(from), fmtDur(to))
		} else {
			o.why = fmt.Sprintf("no request succeeded from %s to %s; %d did in the window", fmtDur(g.From), fmtDur(g.To), g.Successes)
		}
		return o, true
	case "latency_p50", "latency_p99", "latency_max":
		p := map[string]float64{"latency_p50": 50, "latency_p99": 99, "latency_max": 100}[metric]
		o := observation{unit: spec.UnitDuration}
		v, ok := st.Percentile(p)
		if !ok {
			o.undefined, o.why = true, fmt.Sprintf("no successful requests (%d failed%s)", st.Errors, errs())
			return o, true
		}
		o.value = v.Seconds()
		o.why = fmt.Sprintf("over %d successful requests", st.Successes)
		return o, true
	case "share":
		o := observation{unit: spec.UnitPercent}
		if st.Successes == 0 {
			o.undefined, o.why = true, fmt.Sprintf("no successful requests (%d failed%s)", st.Errors, errs())
			return o, true
		}
		n := st.Backends[backend]
		o.value = 100 * float64(n) / float64(st.Successes)
		o.why = fmt.Sprintf("%d of %d successful requests answered by %s; %s", n, st.Successes, backend, backendList(st))
		return o, true
	case "broken_streams":
		o := observation{value: float64(st.Broken), unit: spec.UnitNumber}
		var first []string
		for _, r := range reqs {
			if seen := r.At + r.Latency; r.Broken && w.Contains(seen) && len(first) < 3 {
				first = append(first, fmt.Sprintf("at %s: %s", fmtDur(seen), r.Err))
			}
		}
		o.why = fmt.Sprintf("over %d records, %d of them acknowledged chunks", st.Requests, st.Successes)
		if len(first) > 0 {
			o.why += "; " + strings.Join(first, "; ")
		}
		if st.Successes == 0 && st.Broken == 0 {
			o.empty = fmt.Sprintf("no stream ever connected (%d records, none acknowledged%s)", st.Requests, errs())
		}
		return o, true
	case "backends":
		n := 0
		for b := range st.Backends {
			if b != "" {
				n++
			}
		}
		o := observation{value: float64(n), unit: spec.UnitNumber,
			why: fmt.Sprintf("distinct backends that answered %d successful requests: %s", st.Successes, optional("", backendList(st)))}
		if st.Successes == 0 {
			o.why = fmt.Sprintf("no successful requests (%d failed%s)", st.Errors, errs())
			o.empty = "no request succeeded in the window"
		}
		return o, true
	case "max_share":
		o := observation{unit: spec.UnitPercent}
		if st.Successes == 0 {
			o.undefined, o.why = true, fmt.Sprintf("no successful requests (%d failed%s)", st.Errors, errs())
			return o, true
		}
		top, n := "", -1
		for _, b := range sortedKeys(st.Backends) {
			if st.Backends[b] > n {
				top, n = b, st.Backends[b]
			}
		}
		o.value = 100 * float64(n) / float64(st.Successes)
		o.why = fmt.Sprintf("%s answered %d of %d successful requests; %s", backendName(top), n, st.Successes, backendList(st))
		return o, true
	case "bytes":
		return observation{value: float64(st.Bytes), unit: spec.UnitNumber, why: bytesWhy(reqs, w, st)}, true
	}
	return observation{}, false
}

// backendList is "rs1 101, rs2 198".
func backendList(st Stats) string {
	var parts []string
	for _, b := range sortedKeys(st.Backends) {
		parts = append(parts, fmt.Sprintf("%s %d", backendName(b), st.Backends[b]))
	}
	return strings.Join(parts, ", ")
}

func backendName(b string) string {
	if b == "" {
		return "(unknown)"
	}
	return b
}

func evalShares(run *runner.Run, e *spec.Expectation) (runner.Outcome, bool) {
	sh := e.Shares
	if !recorded(run, sh.Traffic) {
		return runner.Outcome{}, false
	}
	w, fail, ok := windowOf(run, e)
	if !ok {
		return runner.Outcome{}, false
	}
	tol := float64(sh.Tolerance)
	if tol == 0 {
		tol = 10 // spec's default, for an unresolved spec
	}
	reqs := run.Requests(sh.Traffic)
	st := Summarize(reqs, w)

	// Expected shares in percent, in the order they are reported.
	var names []string
	want := map[string]float64{}
	if sh.Even {
		// Every backend the traffic reached at any time in the run: one
		// that answered before the window but not in it has a share of 0.
		seen := Summarize(reqs, WholeRun()).Backends
		delete(seen, "")
		names = sortedKeys(seen)
		for _, b := range names {
			want[b] = 100 / float64(len(names))
		}
	} else {
		sum := 0.0
		for _, wt := range sh.Weights {
			sum += wt.Weight
		}
		for _, wt := range sh.Weights {
			names = append(names, wt.Backend)
			if sum > 0 {
				want[wt.Backend] = 100 * wt.Weight / sum
			} else {
				want[wt.Backend] = 0
			}
		}
	}
	for _, b := range sortedKeys(st.Backends) {
		if _, ok := want[b]; !ok {
			names = append(names, b) // answered, but no share was expected
			want[b] = 0
		}
	}
	var wants []string
	for _, b := range names {
		wants = append(wants, fmtPct(want[b]))
	}
	wantText := fmt.Sprintf("want %s ±%s", strings.Join(wants, "/"), fmtPct(tol))
	if sh.Even {
		wantText = fmt.Sprintf("want an even split ±%s", fmtPct(tol))
	}
	if fail != "" {
		return runner.Outcome{Detail: fmt.Sprintf("%s: %s; %s", sh.Traffic, fail, wantText)}, true
	}
	if st.Successes == 0 || len(names) == 0 {
		return runner.Outcome{Detail: fmt.Sprintf("%s had no successful requests %s (%d failed%s); %s",
			sh.Traffic, w.Label, st.Errors, optional(": ", st.ErrorSummary(3)), wantText)}, true
	}
	held := true
	if sh.Even && len(names) < 2 {
		// One backend answering everything is the opposite of a spread,
		// not a trivially even one.
		held = false
	}
	var got, off []string
	for _, b := range names {
		n := st.Backends[b]
		pct := 100 * float64(n) / float64(st.Successes)
		got = append(got, fmt.Sprintf("%s %s (%d/%d)", backendName(b), fmtPct(pct), n, st.Successes))
		if d := math.Abs(pct - want[b]); d > tol+1e-9 {
			held = false
			off = append(off, fmt.Sprintf("%s is %.1f points off", backendName(b), d))
		}
	}
	detail := fmt.Sprintf("%s %s; %s", strings.Join(got, ", "), w.Label, wantText)
	if sh.Even && len(names) < 2 {
		off = append(off, "only one backend answered at all")
	}
	if len(off) > 0 {
		detail += "; " + strings.Join(off, ", ")
	}
	if st.Errors > 0 {
		detail += fmt.Sprintf("; %d failed requests not counted: %s", st.Errors, st.ErrorSummary(3))
	}
	return runner.Outcome{Held: held, Detail: detail}, true
}

func optional(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// fmtPct prints a percentage with one decimal, or two below 1%.
func fmtPct(v float64) string {
	prec := 1
	if v != 0 && math.Abs(v) < 1 {
		prec = 2
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

// fmtDur prints a duration with three or so significant digits: 2.51s,
// 1.23ms, 250µs.
func fmtDur(d time.Duration) string {
	a := d.Abs()
	switch {
	case d == Forever:
		return "end"
	case a >= time.Second:
		return d.Round(time.Millisecond).String()
	case a >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
