package report

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	segcap "lvslab/sim/capture"
	"lvslab/sim/runner"
	"lvslab/sim/topo"
)

// Summary renders summary.md: what ran, what was expected and found, what
// happened when, how the traffic spread, and where every artefact is.
func Summary(d *Data, walk *Walk, walkErr error) string {
	var b strings.Builder
	res := d.Result
	if res == nil {
		res = &runner.Result{}
	}
	s := d.Spec
	name := res.Scenario
	if name == "" && s != nil {
		name = s.Name
	}
	fmt.Fprintf(&b, "# %s: %s\n\n", name, strings.ToUpper(string(res.Verdict)))
	if s != nil && s.Description != "" {
		fmt.Fprintf(&b, "> %s\n\n", strings.Join(strings.Fields(s.Description), " "))
	}

	b.WriteString("| | |\n|---|---|\n")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "| %s | %s |\n", k, cell(v))
		}
	}
	row("verdict", fmt.Sprintf("**%s** (exit %d)", res.Verdict, res.Verdict.ExitCode()))
	if s != nil && s.Source != nil {
		row("source document", "`"+s.Source.Document+"`")
		row("section", s.Source.Section)
		var maps []string
		for _, m := range s.Source.AddressMap {
			maps = append(maps, fmt.Sprintf("%s → %s", m.Seed, m.Lab))
		}
		row("address map", strings.Join(maps, ", "))
		row("notes", s.Source.Notes)
	}
	row("scenario file", res.File)
	row("seed", fmt.Sprint(res.Seed))
	if !res.Started.IsZero() {
		row("started", res.Started.Format(time.RFC3339))
	}
	row("build / run", fmt.Sprintf("%s / %s", time.Duration(res.BuildTime).Round(time.Millisecond), time.Duration(res.RunTime).Round(time.Millisecond)))
	row("error", res.Error)
	row("missing (optional)", strings.Join(res.MissingOptional, "; "))
	b.WriteString("\n")

	b.WriteString("## Expectations\n\n")
	if len(res.Expectations) == 0 {
		b.WriteString("None.\n\n")
	} else {
		b.WriteString("| | expectation | status | detail |\n|---|---|---|---|\n")
		for _, e := range res.Expectations {
			detail := e.Detail
			if e.XFail != "" {
				detail += " *(xfail: " + e.XFail + ")*"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", statusMark(e.Status), cell(e.Name), e.Status, cell(detail))
		}
		b.WriteString("\n")
	}
	if len(res.NotExecuted) > 0 {
		b.WriteString("Not executed (no stage of this lvslab carries them out, so the run is incomplete):\n\n")
		for _, x := range res.NotExecuted {
			fmt.Fprintf(&b, "- %s\n", x)
		}
		b.WriteString("\n")
	}

	b.WriteString("## Timeline\n\n")
	if fileExists(filepath.Join(d.Dir, TimelineFile)) {
		fmt.Fprintf(&b, "![requests per second per real server](%s)\n\n", TimelineFile)
	}
	if len(d.Events) == 0 {
		b.WriteString("No events were recorded.\n\n")
	} else {
		b.WriteString("| at | event | kind | detail |\n|---:|---|---|---|\n")
		// Every timeline event, but only the first observations: the rest
		// are in events.jsonl.
		const maxObserved = 20
		observed, hidden := 0, 0
		for _, e := range d.Events {
			if e.Kind == "observer" {
				if observed++; observed > maxObserved {
					hidden++
					continue
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", e.At.Round(time.Millisecond), cell(e.Name), cell(e.Kind), cell(e.Detail))
		}
		if hidden > 0 {
			fmt.Fprintf(&b, "\n%d more observations (neighbour, address and link changes) are in events.jsonl.\n", hidden)
		}
		b.WriteString("\n")
	}

	b.WriteString(vrrpMarkdown(VRRPBands(d.VRRP, d.Ran)))

	b.WriteString("## Traffic\n\n")
	writeTraffic(&b, d)

	b.WriteString("## Director statistics\n\n")
	st, err := ReadStats(filepath.Join(d.Dir, StatsFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(&b, "Not recorded (no %s in this run).\n\n", StatsFile)
	case err != nil:
		fmt.Fprintf(&b, "Unreadable: %v\n\n", err)
	case len(st.Rows) == 0:
		fmt.Fprintf(&b, "%s holds no samples.\n\n", link(StatsFile, StatsFile))
	default:
		fmt.Fprintf(&b, "Last sample of each service and destination, from %s:\n\n%s\n", link(StatsFile, StatsFile), st.markdown())
		if st.Bad > 0 {
			fmt.Fprintf(&b, "(%d unreadable lines skipped.)\n\n", st.Bad)
		}
	}

	if len(res.Processes) > 0 {
		b.WriteString("## Processes\n\n| process | state at the end | log |\n|---|---|---|\n")
		for _, p := range res.Processes {
			state := string(p.State)
			switch p.State {
			case topo.ProcExited:
				state = fmt.Sprintf("exited %d", p.ExitCode)
			case topo.ProcSignaled:
				state = "killed by " + p.Signal
			}
			lg := ""
			if p.Log != "" {
				lg = link(rel(d.Dir, p.Log), rel(d.Dir, p.Log))
			}
			fmt.Fprintf(&b, "| %s/%s | %s | %s |\n", p.Node, p.Name, state, lg)
		}
		b.WriteString("\n")
	}

	b.WriteString("## Captures\n\n")
	writeCaptures(&b, d)

	if walk != nil || walkErr != nil {
		if walkErr != nil {
			fmt.Fprintf(&b, "## Hop-by-hop walk\n\nNo walk: %v\n\n", walkErr)
		} else {
			b.WriteString(walk.Markdown("##"))
			b.WriteString("\n")
		}
	}

	b.WriteString("## Files\n\n")
	for _, f := range []struct{ path, what string }{
		{"result.json", "verdicts (JSON)"},
		{JUnitFile, "verdicts (JUnit XML)"},
		{"resolved.yaml", "the spec as run, role defaults filled in"},
		{TimelineFile, "the timeline picture"},
		{TimelinePNG, "the timeline picture (PNG)"},
		{WalkFile, "the hop-by-hop walk"},
		{StatsFile, "director statistics samples"},
	} {
		if fileExists(filepath.Join(d.Dir, f.path)) {
			fmt.Fprintf(&b, "- %s: %s\n", link(f.path, f.path), f.what)
		}
	}
	recs, _ := filepath.Glob(filepath.Join(d.Dir, TrafficDir, "*.jsonl"))
	for _, f := range recs {
		r := rel(d.Dir, f)
		fmt.Fprintf(&b, "- %s: request records of traffic %s\n", link(r, r), strings.TrimSuffix(filepath.Base(f), ".jsonl"))
	}
	logs, _ := filepath.Glob(filepath.Join(d.Dir, "nodes", "*", "*.log"))
	if len(logs) > 0 {
		b.WriteString("- node logs:")
		for i, f := range logs {
			r := rel(d.Dir, f)
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(&b, "%s %s", sep, link(r, r))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func writeTraffic(b *strings.Builder, d *Data) {
	var names []string
	if d.Spec != nil {
		for _, t := range d.Spec.Traffic {
			names = append(names, t.Name)
		}
	}
	for n := range d.Traffic {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		b.WriteString("The scenario has no traffic.\n\n")
		return
	}
	kind := map[string]string{}
	if d.Spec != nil {
		for _, t := range d.Spec.Traffic {
			kind[t.Name] = string(t.Kind)
		}
	}
	b.WriteString("| traffic | kind | requests | failed | error ratio | latency p50 | p99 | max |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	type share struct {
		traffic, backend string
		n, of            int
	}
	var shares []share
	var errLines []string
	for _, n := range names {
		reqs, ok := d.Traffic[n]
		if !ok {
			fmt.Fprintf(b, "| %s | %s | not recorded | | | | | |\n", cell(n), kind[n])
			continue
		}
		failed := 0
		var lat []time.Duration
		per := map[string]int{}
		errs := map[string]int{}
		for _, r := range reqs {
			if r.Err != "" {
				failed++
				errs[r.Err]++
				continue
			}
			lat = append(lat, r.Latency)
			per[cmp.Or(r.Backend, "(unknown)")]++
		}
		slices.Sort(lat)
		ratio := "-"
		if len(reqs) > 0 {
			ratio = fmt.Sprintf("%.1f%%", 100*float64(failed)/float64(len(reqs)))
		}
		fmt.Fprintf(b, "| %s | %s | %d | %d | %s | %s | %s | %s |\n", cell(n), kind[n], len(reqs), failed, ratio,
			pct(lat, 0.50), pct(lat, 0.99), pct(lat, 1))
		ok2 := len(reqs) - failed
		var backends []string
		for k := range per {
			backends = append(backends, k)
		}
		slices.Sort(backends)
		for _, k := range backends {
			shares = append(shares, share{n, k, per[k], ok2})
		}
		type ec struct {
			msg string
			n   int
		}
		var top []ec
		for m, c := range errs {
			top = append(top, ec{m, c})
		}
		slices.SortFunc(top, func(a, b ec) int { return cmp.Or(b.n-a.n, strings.Compare(a.msg, b.msg)) })
		for i, e := range top {
			if i == 3 {
				errLines = append(errLines, fmt.Sprintf("- %s: %d other kinds of error", n, len(top)-3))
				break
			}
			errLines = append(errLines, fmt.Sprintf("- %s: %d× %s", n, e.n, e.msg))
		}
	}
	b.WriteString("\n")
	if len(shares) > 0 {
		b.WriteString("Answered requests per backend:\n\n| traffic | backend | requests | share |\n|---|---|---:|---:|\n")
		for _, s := range shares {
			fmt.Fprintf(b, "| %s | %s | %d | %.1f%% |\n", cell(s.traffic), cell(s.backend), s.n, 100*float64(s.n)/float64(max(1, s.of)))
		}
		b.WriteString("\n")
	}
	if len(errLines) > 0 {
		b.WriteString("Most frequent errors:\n\n" + strings.Join(errLines, "\n") + "\n\n")
	}
}

func writeCaptures(b *strings.Builder, d *Data) {
	files := d.Captures
	if files == nil {
		m, _ := filepath.Glob(filepath.Join(d.Dir, segcap.Dir, "*.pcapng"))
		for _, f := range m {
			name := strings.TrimSuffix(filepath.Base(f), ".pcapng")
			if node, iface, ok := strings.Cut(name, "_"); ok {
				name = node + ":" + iface
			}
			files = append(files, segcap.File{Name: name, Path: f})
		}
	}
	if len(files) == 0 {
		b.WriteString("No packet captures in this run.\n\n")
		return
	}
	b.WriteString("One pcapng per segment (taken on its bridge) and per captured interface; Wireshark and tshark open them.\n\n")
	b.WriteString("| capture | file | packets | dropped |\n|---|---|---:|---:|\n")
	for _, f := range files {
		r := rel(d.Dir, f.Path)
		pk, dr := "", ""
		if d.Captures != nil {
			pk, dr = fmt.Sprint(f.Packets), fmt.Sprint(f.Dropped)
		}
		what := f.Name
		if f.Err != "" {
			what += " (" + f.Err + ")"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", cell(what), link(r, r), pk, dr)
	}
	b.WriteString("\n")
}

func pct(sorted []time.Duration, q float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return round(sorted[i]).String()
}

func statusMark(s runner.Status) string {
	switch s {
	case runner.StatusPass:
		return "✅"
	case runner.StatusFail, runner.StatusXPass:
		return "❌"
	case runner.StatusWarn:
		return "⚠️"
	case runner.StatusXFail:
		return "☑️"
	}
	return "❔"
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "<br>")
}

func link(text, target string) string {
	target = filepath.ToSlash(target)
	if strings.ContainsAny(target, " ()") {
		target = "<" + target + ">"
	}
	return "[" + text + "](" + target + ")"
}

func rel(dir, path string) string {
	if r, err := filepath.Rel(dir, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
