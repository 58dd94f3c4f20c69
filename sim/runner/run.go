// Package runner runs a scenario: plan (requirements), build the lab (sim/
// topo), run the stages that act on it for the scenario's duration, judge
// the expectations, tear down, and write the result into a report
// directory.
//
// Traffic generators, the fault timeline and captures are Stages; checks
// are Judges. This package brings the judges that need nothing but the lab
// (process states, end state of addresses, neighbours and routes); later
// layers add stages and judges through Options. Whatever no stage carries
// out and no judge decides is reported as not executed or not evaluated,
// and makes the verdict "incomplete" (exit 2), never a pass.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// Stage works alongside the lab while the scenario runs.
type Stage interface {
	Name() string
	// Claims lists the parts of the spec this stage carries out, as
	// "traffic NAME", "timeline NAME" or "capture".
	Claims(s *spec.Spec) []string
	// Start begins at the start of traffic (time zero of the timeline).
	Start(ctx context.Context, lab *topo.Lab, t0 time.Time) error
	// Stop ends the stage's work (generators stop, faults revert).
	Stop(ctx context.Context) error
}

// Judge decides expectations.
type Judge interface {
	// Evaluate decides e; handled is false when this judge cannot.
	Evaluate(ctx context.Context, run *Run, e *spec.Expectation) (o Outcome, handled bool)
}

// Outcome is a judge's decision.
type Outcome struct {
	Held   bool   // the expectation holds
	Detail string // what was observed
}

// Status is an expectation's result.
type Status string

// Expectation results. An xfail expectation that fails is XFail (fine); one
// that holds is XPass: the documented failure did not happen, which fails
// the run.
const (
	StatusPass         Status = "pass"
	StatusFail         Status = "fail"
	StatusWarn         Status = "warn" // failed, severity warn
	StatusXFail        Status = "xfail"
	StatusXPass        Status = "xpass"
	StatusNotEvaluated Status = "not-evaluated"
)

// Verdict is the outcome of a run.
type Verdict string

// Verdicts and their exit codes.
const (
	VerdictPass       Verdict = "pass"       // 0
	VerdictFail       Verdict = "fail"       // 1: an expectation failed, or the lab did not come up
	VerdictIncomplete Verdict = "incomplete" // 2: parts could not be carried out or judged here
	VerdictError      Verdict = "error"      // 2: invalid spec or environment
)

// ExitCode is the lvslab exit code of a verdict.
func (v Verdict) ExitCode() int {
	switch v {
	case VerdictPass:
		return 0
	case VerdictFail:
		return 1
	}
	return 2
}

// ExpResult is one expectation's result.
type ExpResult struct {
	Name     string `json:"name"`
	Severity string `json:"severity"`
	XFail    string `json:"xfail,omitempty"`
	Status   Status `json:"status"`
	Detail   string `json:"detail,omitempty"`
}

// Result is everything a run found.
type Result struct {
	Scenario        string            `json:"scenario"`
	File            string            `json:"file"`
	Dir             string            `json:"dir"`
	Verdict         Verdict           `json:"verdict"`
	Error           string            `json:"error,omitempty"`
	Seed            int64             `json:"seed"`
	Started         time.Time         `json:"started"`
	BuildTime       Duration          `json:"build_time"`
	RunTime         Duration          `json:"run_time"`
	MissingOptional []string          `json:"missing_optional,omitempty"`
	NotExecuted     []string          `json:"not_executed,omitempty"`
	Expectations    []ExpResult       `json:"expectations"`
	Processes       []topo.ProcStatus `json:"processes"`

	err error
}

// Err is the error that stopped the run, if any.
func (r *Result) Err() error { return r.err }

// Duration prints as "1.5s" in JSON.
type Duration time.Duration

// MarshalText prints the Go duration form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Options configure runs.
type Options struct {
	Topo topo.Options
	// OutDir is the report directory (default out/<scenario>-<time>).
	OutDir string
	// Duration overrides the scenario's (0: keep it).
	Duration  time.Duration
	Stages    []Stage
	Judges    []Judge
	Reporters []Reporter
	Logger    *slog.Logger
}

// Run is a run in progress, as judges see it.
type Run struct {
	Spec  *spec.Spec
	Lab   *topo.Lab
	T0    time.Time // start of traffic
	End   time.Time // end of traffic
	Stage map[string]Stage
}

// Execute runs one scenario. The Result is always filled; its Verdict says
// how it went.
func Execute(ctx context.Context, s *spec.Spec, opts Options) *Result {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := &Result{Scenario: s.Name, File: s.File, Seed: s.Seed, Started: time.Now()}
	fail := func(v Verdict, err error) *Result {
		res.Verdict, res.err = v, err
		if err != nil {
			res.Error = err.Error()
		}
		res.write(log)
		return res
	}
	dir := opts.OutDir
	if dir == "" {
		dir = filepath.Join("out", s.Name+"-"+res.Started.Format("20060102-150405"))
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fail(VerdictError, err)
	}
	res.Dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(VerdictError, fmt.Errorf("report directory: %w", err))
	}
	if b, err := spec.Marshal(s); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "resolved.yaml"), b, 0o644)
	}

	// Plan: what the machine lacks, what nothing here can carry out.
	feats := DetectFeatures(opts.Topo.BinDir)
	required, optional := feats.Missing(s)
	res.MissingOptional = optional
	if len(required) > 0 {
		return fail(VerdictError, fmt.Errorf("environment: %s", joinLines(required)))
	}
	res.NotExecuted = unclaimed(s, opts.Stages)

	topts := opts.Topo
	topts.RunDir = dir
	topts.Mode = topo.ModeRun
	if topts.Logger == nil {
		topts.Logger = log
	}
	t := time.Now()
	lab, err := topo.Build(ctx, s, topts)
	res.BuildTime = Duration(time.Since(t))
	if err != nil {
		var pe *topo.ProcessError
		if errors.As(err, &pe) {
			return fail(VerdictFail, err)
		}
		return fail(VerdictError, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := lab.Close(cctx); err != nil {
			log.Error("teardown", "err", err)
			if res.err == nil {
				res.err, res.Error, res.Verdict = err, err.Error(), VerdictError
			}
		}
		res.write(log)
	}()

	run := &Run{Spec: s, Lab: lab, T0: time.Now(), Stage: map[string]Stage{}}
	var started []Stage
	stopStages := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for i := len(started) - 1; i >= 0; i-- {
			if err := started[i].Stop(sctx); err != nil {
				log.Error("stop stage", "stage", started[i].Name(), "err", err)
			}
		}
	}
	for _, st := range opts.Stages {
		if err := st.Start(ctx, lab, run.T0); err != nil {
			stopStages()
			res.Verdict, res.err, res.Error = VerdictError, err, err.Error()
			return res
		}
		started = append(started, st)
		run.Stage[st.Name()] = st
	}
	d := s.Duration.D()
	if opts.Duration != 0 {
		d = opts.Duration
	}
	log.Info("running", "scenario", s.Name, "for", d)
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	run.End = time.Now()
	res.RunTime = Duration(run.End.Sub(run.T0))
	stopStages()
	if ctx.Err() != nil {
		res.Verdict, res.err, res.Error = VerdictError, ctx.Err(), "interrupted"
		return res
	}

	judges := append(slices.Clone(opts.Judges), processJudge{}, stateJudge{})
	for i := range s.Expect {
		res.Expectations = append(res.Expectations, judge(ctx, run, judges, &s.Expect[i]))
	}
	for _, p := range lab.Processes() {
		res.Processes = append(res.Processes, p.Status())
	}
	res.Verdict = verdict(res)
	for _, rp := range opts.Reporters {
		if err := rp.Report(ctx, run, res); err != nil {
			log.Error("report", "err", err)
		}
	}
	return res
}

// unclaimed lists the traffic, timeline and capture entries no stage
// carries out.
func unclaimed(s *spec.Spec, stages []Stage) []string {
	claimed := map[string]bool{}
	for _, st := range stages {
		for _, c := range st.Claims(s) {
			claimed[c] = true
		}
	}
	var out []string
	for _, t := range s.Traffic {
		if k := "traffic " + t.Name; !claimed[k] {
			out = append(out, k)
		}
	}
	for _, e := range s.Timeline {
		if k := "timeline " + e.Name; !claimed[k] {
			out = append(out, k)
		}
	}
	if s.Capture != nil && !claimed["capture"] {
		out = append(out, "capture")
	}
	return out
}

func judge(ctx context.Context, run *Run, judges []Judge, e *spec.Expectation) ExpResult {
	r := ExpResult{Name: e.Name, Severity: string(e.Severity), XFail: e.XFail, Status: StatusNotEvaluated}
	for _, j := range judges {
		o, ok := j.Evaluate(ctx, run, e)
		if !ok {
			continue
		}
		r.Detail = o.Detail
		switch {
		case e.XFail != "" && o.Held:
			r.Status = StatusXPass
		case e.XFail != "":
			r.Status = StatusXFail
		case o.Held:
			r.Status = StatusPass
		case e.Severity == "warn":
			r.Status = StatusWarn
		default:
			r.Status = StatusFail
		}
		return r
	}
	r.Detail = "no judge for this kind of expectation in this lvslab"
	return r
}

func verdict(res *Result) Verdict {
	failed, incomplete := false, len(res.NotExecuted) > 0
	for _, e := range res.Expectations {
		switch e.Status {
		case StatusFail, StatusXPass:
			failed = true
		case StatusNotEvaluated:
			if e.Severity != "warn" {
				incomplete = true
			}
		}
	}
	switch {
	case failed:
		return VerdictFail
	case incomplete:
		return VerdictIncomplete
	}
	return VerdictPass
}

func (r *Result) write(log *slog.Logger) {
	if r.Dir == "" {
		return
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(r.Dir, "result.json"), append(b, '\n'), 0o644)
	}
	if err != nil {
		log.Error("write result", "err", err)
	}
}

func joinLines(s []string) string {
	out := ""
	for i, l := range s {
		if i > 0 {
			out += "; "
		}
		out += l
	}
	return out
}
