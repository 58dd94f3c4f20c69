package main

import (
	"lvslab/sim/capture"
	"lvslab/sim/fault"
	"lvslab/sim/observe"
	"lvslab/sim/report"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
	"lvslab/sim/traffic"
)

// runOptions assembles the stages, judges and reporters of one run: each
// part of the spec is carried out by the stage that claims it. Order
// matters: stages stop in reverse, so the observers and the captures, which
// start first, also see the faults being undone and the last replies.
func (e *env) runOptions(s *spec.Spec) runner.Options {
	tr := traffic.New(s, traffic.Options{Logger: e.log})
	tl := fault.New(s, fault.Options{Logger: e.log})
	sw := runner.NewStateWatch(s, tl)
	return runner.Options{
		Topo:   e.topoOptions(),
		Logger: e.log,
		Stages: []runner.Stage{
			segcap.New(segcap.Options{NetnsDir: topo.DefaultNetnsDir, Logger: e.log}),
			observe.New(s, observe.Options{Logger: e.log}),
			observe.NewVRRP(s, observe.VRRPOptions{Logger: e.log}),
			observe.NewStats(s, observe.StatsOptions{Logger: e.log}),
			newProgress(e.stderr, s, tr),
			tr,
			tl,
			sw,
		},
		Judges:    []runner.Judge{traffic.NewJudge(), segcap.Judge{}, observe.VIPJudge{}, sw},
		Reporters: []runner.Reporter{report.New(report.Options{Logger: e.log})},
	}
}
