package main

import (
	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/traffic"
)

// runOptions assembles the stages, judges and reporters of one run: each
// part of the spec is carried out by the stage that claims it.
func (e *env) runOptions(s *spec.Spec) runner.Options {
	tr := traffic.New(s, traffic.Options{Logger: e.log})
	return runner.Options{
		Topo:   e.topoOptions(),
		Logger: e.log,
		Stages: []runner.Stage{tr},
		Judges: []runner.Judge{traffic.NewJudge()},
	}
}
