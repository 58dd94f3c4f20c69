// Package report writes a run's report directory beside the runner's
// result.json and resolved.yaml: junit.xml, summary.md, timeline.svg (and
// timeline.png when an SVG renderer is installed), walk.md (the hop-by-hop
// view of one request, when report.walk asks for it) and each traffic's
// request records under traffic/. The walk is also a library (Trace) that
// `lvslab explain` uses on a finished run directory.
package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	segcap "lvslab/sim/capture"
	"lvslab/sim/observe"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
)

// Artefact file names in the run directory.
const (
	JUnitFile    = "junit.xml"
	SummaryFile  = "summary.md"
	TimelineFile = "timeline.svg"
	TimelinePNG  = "timeline.png"
	WalkFile     = "walk.md"
)

// Options configure the reporter.
type Options struct {
	// NoPNG skips rendering timeline.png (done only when rsvg-convert or
	// ImageMagick's convert can).
	NoPNG  bool
	Logger *slog.Logger
}

// Reporter writes the report artefacts; it implements runner.Reporter.
type Reporter struct {
	opts Options
}

// New returns a reporter.
func New(opts Options) *Reporter {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reporter{opts: opts}
}

// Data is everything a report shows. Gather collects it from a run; tests
// build it by hand.
type Data struct {
	Spec   *spec.Spec
	Result *runner.Result
	Dir    string
	T0     time.Time     // start of traffic
	Ran    time.Duration // how long traffic ran
	Events []runner.Event
	// Traffic holds each traffic's request records by name.
	Traffic map[string][]runner.Request
	// Captures are the capture stage's files with counts; nil: the files
	// found under pcap/ are listed.
	Captures []segcap.File
	// VRRP is what the VRRP observer recorded; nil: read from the run
	// directory's vrrp.jsonl, if any.
	VRRP []observe.VRRPRecord
}

// Gather collects a run's data.
func Gather(run *runner.Run, res *runner.Result) *Data {
	d := &Data{Spec: run.Spec, Result: res, Dir: res.Dir, T0: run.T0, Ran: time.Duration(res.RunTime), Events: run.Events(), Traffic: map[string][]runner.Request{}}
	if d.Ran == 0 && !run.End.IsZero() {
		d.Ran = run.End.Sub(run.T0)
	}
	for _, t := range run.Spec.Traffic {
		if reqs := run.Requests(t.Name); reqs != nil {
			d.Traffic[t.Name] = reqs
		}
	}
	for _, st := range run.Stage {
		if c, ok := st.(*segcap.Stage); ok {
			d.Captures = c.Files()
		}
	}
	return d
}

// Report implements runner.Reporter.
func (r *Reporter) Report(ctx context.Context, run *runner.Run, res *runner.Result) error {
	return r.Write(ctx, Gather(run, res))
}

// Write writes every artefact the spec's report.formats asks for (all by
// default); a failing one does not stop the others.
func (r *Reporter) Write(ctx context.Context, d *Data) error {
	if d.Dir == "" {
		return errors.New("report: no run directory")
	}
	var errs []error
	if d.VRRP == nil {
		recs, err := observe.LoadVRRP(d.Dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("report: %w", err))
		}
		d.VRRP = recs
	}
	for name, reqs := range d.Traffic {
		if err := SaveRecords(d.Dir, name, Records(d.T0, reqs)); err != nil {
			errs = append(errs, err)
		}
	}
	var walk *Walk
	var walkErr error
	if d.Spec != nil && d.Spec.Report != nil && d.Spec.Report.Walk != nil {
		walk, walkErr = r.walk(d)
		text := ""
		if walkErr != nil {
			text = fmt.Sprintf("# Hop-by-hop walk\n\nNo walk: %v\n", walkErr)
			r.opts.Logger.Warn("walk", "err", walkErr)
		} else {
			text = walk.Markdown("#")
		}
		if err := os.WriteFile(filepath.Join(d.Dir, WalkFile), []byte(text), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("report: %w", err))
		}
	}
	if wants(d.Spec, "timeline") {
		title := "timeline"
		if d.Spec != nil {
			title = d.Spec.Name
		}
		// Observations (neighbour and address changes) can be hundreds: the
		// picture marks only the scenario's own events.
		topts := TimelineOptions{Streams: map[string]bool{}}
		if d.Spec != nil && d.Spec.Report != nil && d.Spec.Report.Timeline != nil {
			topts.ByClient = d.Spec.Report.Timeline.Split == spec.SplitClient
		}
		if d.Spec != nil {
			for _, t := range d.Spec.Traffic {
				if t.Kind == spec.TrafficTCPStream {
					topts.Streams[t.Name] = true
				}
			}
		}
		topts.Bands = VRRPBands(d.VRRP, d.Ran)
		svg := TimelineSVGWith(title, d.Ran, d.Traffic, timelineEvents(d.Events), topts)
		path := filepath.Join(d.Dir, TimelineFile)
		if err := os.WriteFile(path, svg, 0o644); err != nil {
			errs = append(errs, fmt.Errorf("report: %w", err))
		} else if !r.opts.NoPNG {
			r.renderPNG(ctx, path, filepath.Join(d.Dir, TimelinePNG))
		}
	}
	if wants(d.Spec, "junit") && d.Result != nil {
		b, err := MarshalJUnit(JUnit(d.Result))
		if err == nil {
			err = os.WriteFile(filepath.Join(d.Dir, JUnitFile), b, 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("report: %w", err))
		}
	}
	if wants(d.Spec, "markdown") {
		md := Summary(d, walk, walkErr)
		if err := os.WriteFile(filepath.Join(d.Dir, SummaryFile), []byte(md), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("report: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (r *Reporter) walk(d *Data) (*Walk, error) {
	w := d.Spec.Report.Walk
	q, err := QueryFor(d.Spec, w.Traffic, w.Request, Records(d.T0, d.Traffic[w.Traffic]))
	if err != nil {
		return nil, err
	}
	return Trace(d.Dir, d.Spec, q)
}

// wants says whether report.formats (default: all) names f.
func wants(s *spec.Spec, f spec.ReportFormat) bool {
	return s == nil || s.Report == nil || len(s.Report.Formats) == 0 || slices.Contains(s.Report.Formats, f)
}

// renderPNG converts the SVG with whichever renderer is installed, keeping
// the result only if it is a PNG (a stand-in convert may print anything).
func (r *Reporter) renderPNG(ctx context.Context, svg, png string) {
	// Rendered under a temporary name, renamed only when it is a PNG.
	tmp := png + ".part.png"
	cands := [][]string{{"rsvg-convert", "-o", tmp, svg}, {"convert", svg, tmp}}
	for _, argv := range cands {
		if _, err := exec.LookPath(argv[0]); err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := exec.CommandContext(cctx, argv[0], argv[1:]...).CombinedOutput()
		cancel()
		b, rerr := os.ReadFile(tmp)
		if err == nil && rerr == nil && bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			if err := os.Rename(tmp, png); err == nil {
				return
			}
		}
		if rerr == nil {
			_ = os.Remove(tmp)
		}
		r.opts.Logger.Debug("no timeline.png", "renderer", argv[0], "err", err, "output", string(bytes.TrimSpace(out)))
	}
}

// timelineEvents leaves out the observers' events.
func timelineEvents(all []runner.Event) []runner.Event {
	var out []runner.Event
	for _, e := range all {
		// The VRRP observer's changes are drawn as bands instead.
		if e.Kind != "observer" && e.Kind != observe.KindVRRP {
			out = append(out, e)
		}
	}
	return out
}
