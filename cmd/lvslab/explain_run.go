package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lvslab/sim/spec"
)

// cmdExplainAny is `lvslab explain TARGET`: TARGET is a finished run's
// report directory, or a scenario (file or name), which is run first — for
// a trainer, `lvslab explain 03-dr-packet-walk-003` is the whole lesson.
func (e *env) cmdExplainAny(ctx context.Context, args []string) int {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if i > 0 && (args[i-1] == "--traffic" || args[i-1] == "--request" || args[i-1] == "-traffic" || args[i-1] == "-request") {
			continue // a flag's value
		}
		if _, err := os.Stat(filepath.Join(a, "resolved.yaml")); err == nil {
			break // a run directory
		}
		file, err := e.resolveScenario(a)
		if err != nil {
			break // let cmdExplain say what is wrong
		}
		s, err := spec.LoadWith(file, spec.Options{})
		if err != nil {
			e.printErrors(err)
			return exitInvalid
		}
		dir := filepath.Join("out", s.Name+"-"+time.Now().Format("20060102-150405"))
		if code := e.runOne(ctx, file, spec.Options{}, 0, dir, false); code != exitPass {
			fmt.Fprintf(e.stderr, "lvslab explain: the run of %s did not pass (exit %d); explaining what it captured\n", s.Name, code)
		}
		fmt.Fprintln(e.stdout)
		args = append(append(append([]string(nil), args[:i]...), dir), args[i+1:]...)
		break
	}
	return cmdExplain(args, e.stdout, e.stderr)
}
