package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"lvslab/sim/report"
	"lvslab/sim/spec"
)

// explainUsage is the line for the usage text.
const explainUsage = `  explain RUN_DIR|SCENARIO [--traffic T] [--request N] [--markdown]
                              hop by hop, one request of a finished run as its segment
                              captures show it: MACs, addresses, TTL, TCP flags at every
                              hop, and how the director forwarded it (default: the
                              scenario's report.walk, else request 1 of the first traffic);
                              a SCENARIO is run first
`

// cmdExplain prints the hop-by-hop walk of one request from a run's report
// directory: its resolved.yaml names the MACs, pcap/*.pcapng hold the
// frames, traffic/T.jsonl (when saved) the request's socket and time.
// Exit 0: walked; 1: the captures do not show the request; 2: bad
// arguments or not a run directory.
func cmdExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lvslab explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, "usage: lvslab explain RUN_DIR [flags]\n"+explainUsage) }
	traffic := fs.String("traffic", "", "traffic name")
	request := fs.Int("request", 0, "request number (1-based)")
	markdown := fs.Bool("markdown", false, "print Markdown, as walk.md")
	// Flags may follow RUN_DIR, as the usage writes them.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitPass
			}
			return exitInvalid
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	errorf := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "lvslab explain: "+format+"\n", a...)
		return exitInvalid
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitInvalid
	}
	dir := pos[0]
	resolved := filepath.Join(dir, "resolved.yaml")
	if _, err := os.Stat(resolved); err != nil {
		return errorf("%s is not a run directory: %v", dir, err)
	}
	s, err := spec.LoadWith(resolved, spec.Options{NoDefaults: true})
	if err != nil {
		return errorf("%v", err)
	}
	t, n := *traffic, *request
	if w := walkOf(s); w != nil {
		if t == "" {
			t = w.Traffic
		}
		if n == 0 && t == w.Traffic {
			n = w.Request
		}
	}
	if t == "" {
		if len(s.Traffic) == 0 {
			return errorf("scenario %s has no traffic: no request to explain", s.Name)
		}
		t = s.Traffic[0].Name
	}
	if n == 0 {
		n = 1
	}
	recs, err := report.LoadRecords(dir, t)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(stderr, "lvslab explain: no request records of %s in %s: taking new flow number %d from the client\n", t, dir, n)
	case err != nil:
		return errorf("%v", err)
	case n > len(recs):
		return errorf("traffic %s recorded %d requests; there is no request %d", t, len(recs), n)
	}
	q, err := report.QueryFor(s, t, n, recs)
	if err != nil {
		return errorf("%v", err)
	}
	w, err := report.Trace(dir, s, q)
	if errors.Is(err, report.ErrNotFound) {
		fmt.Fprintf(stderr, "lvslab explain: %v\n", err)
		return exitFail
	}
	if err != nil {
		return errorf("%v", err)
	}
	if *markdown {
		_, err = io.WriteString(stdout, w.Markdown("#"))
	} else {
		err = w.WriteText(stdout)
	}
	if err != nil {
		return errorf("%v", err)
	}
	return exitPass
}

func walkOf(s *spec.Spec) *spec.Walk {
	if s.Report == nil {
		return nil
	}
	return s.Report.Walk
}
