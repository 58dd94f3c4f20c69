package segcap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
)

// Judge decides pcap: expectations: it counts the packets of a segment's
// (or an interface's) capture that match a Wireshark display filter
// (tshark -Y) inside the expectation's window, and compares the count.
// It implements runner.Judge.
type Judge struct {
	// TShark is the program (default: tshark from PATH).
	TShark string
	// Timeout bounds one tshark run (default 60s).
	Timeout time.Duration
}

// Evaluate implements runner.Judge.
func (j Judge) Evaluate(ctx context.Context, run *runner.Run, e *spec.Expectation) (runner.Outcome, bool) {
	if e.Pcap == nil {
		return runner.Outcome{}, false
	}
	if run.Lab == nil {
		return runner.Outcome{Detail: "no lab, so no captures"}, true
	}
	return j.evaluate(ctx, run.Lab.RunDir(), run, e)
}

// evaluate judges with the captures under runDir.
func (j Judge) evaluate(ctx context.Context, runDir string, run *runner.Run, e *spec.Expectation) (runner.Outcome, bool) {
	pc := e.Pcap
	path, what := SegmentFile(runDir, pc.Segment), "segment "+pc.Segment
	if pc.Interface != "" {
		path, what = InterfaceFile(runDir, pc.Interface), "interface "+pc.Interface
	}
	rel, _ := filepath.Rel(runDir, path)
	if _, err := os.Stat(path); err != nil {
		return runner.Outcome{Detail: fmt.Sprintf("no capture of %s (%s): %v", what, rel, errors.Unwrap(err))}, true
	}
	from, to, window, err := Window(run, e)
	if err != nil {
		return runner.Outcome{Detail: err.Error()}, true
	}
	tshark := j.TShark
	if tshark == "" {
		tshark = "tshark"
	}
	timeout := j.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n, err := Count(cctx, tshark, path, pc.Filter, from, to)
	if err != nil {
		return runner.Outcome{Detail: err.Error()}, true
	}
	held, want := Compare(float64(n), e)
	return runner.Outcome{
		Held:   held,
		Detail: fmt.Sprintf("%d packets match %q in %s%s; want %s", n, pc.Filter, rel, window, want),
	}, true
}

// Window turns an expectation's during: or after:/within: into absolute
// times (zero: open end) and a phrase for the detail.
func Window(run *runner.Run, e *spec.Expectation) (from, to time.Time, phrase string, err error) {
	switch {
	case len(e.During) == 2:
		from, to = run.T0.Add(e.During[0].D()), run.T0.Add(e.During[1].D())
		return from, to, fmt.Sprintf(" during [%s, %s]", e.During[0], e.During[1]), nil
	case e.After != "":
		at, ok := run.EventTime(e.After)
		if !ok {
			return from, to, "", fmt.Errorf("event %s never happened, so its window does not exist", e.After)
		}
		from = run.T0.Add(at)
		phrase = fmt.Sprintf(" after %s (at %s)", e.After, at.Round(time.Millisecond))
		if e.Within > 0 {
			to = from.Add(e.Within.D())
			phrase += " within " + e.Within.String()
		}
		return from, to, phrase, nil
	}
	return from, to, "", nil
}

// Compare checks n against every comparison of e (pcap takes exactly one)
// and says what was wanted.
func Compare(n float64, e *spec.Expectation) (held bool, want string) {
	held = true
	var wants []string
	for _, c := range []struct {
		op string
		q  *spec.Quantity
		ok func(a, b float64) bool
	}{
		{"=", e.Eq, func(a, b float64) bool { return a == b }},
		{"≠", e.Ne, func(a, b float64) bool { return a != b }},
		{"<", e.Lt, func(a, b float64) bool { return a < b }},
		{"≤", e.Le, func(a, b float64) bool { return a <= b }},
		{">", e.Gt, func(a, b float64) bool { return a > b }},
		{"≥", e.Ge, func(a, b float64) bool { return a >= b }},
	} {
		if c.q == nil {
			continue
		}
		wants = append(wants, c.op+" "+c.q.Text)
		held = held && c.ok(n, c.q.Value)
	}
	if len(wants) == 0 {
		return false, "a comparison (none given)"
	}
	return held, strings.Join(wants, " and ")
}

// Count runs tshark over a capture file and counts the packets matching a
// display filter whose timestamps lie in [from, to); a zero bound is open.
func Count(ctx context.Context, tshark, file, filter string, from, to time.Time) (int, error) {
	cmd := exec.CommandContext(ctx, tshark, "-n", "-r", file, "-Y", filter, "-T", "fields", "-e", "frame.time_epoch")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		// tshark warns about running as root on every run: not news.
		var keep []string
		for _, l := range strings.Split(msg, "\n") {
			if l != "" && !strings.Contains(l, "Running as user") && !strings.Contains(l, "could be dangerous") {
				keep = append(keep, strings.TrimSpace(l))
			}
		}
		return 0, fmt.Errorf("tshark -r %s -Y %q: %w: %s", filepath.Base(file), filter, err, strings.Join(keep, " "))
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		ts, err := parseEpoch(line)
		if err != nil {
			return 0, fmt.Errorf("tshark printed %q for frame.time_epoch: %w", line, err)
		}
		if (!from.IsZero() && ts.Before(from)) || (!to.IsZero() && !ts.Before(to)) {
			continue
		}
		n++
	}
	return n, sc.Err()
}

// parseEpoch reads "1700000000.123456789" without going through a float,
// which would lose the nanoseconds.
func parseEpoch(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	var ns int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		frac += strings.Repeat("0", 9-len(frac))
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(secs, ns), nil
}
