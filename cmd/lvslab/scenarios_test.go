package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/sim/spec"
)

// scenarioGroups is how many `lvslab run` processes share the catalogue.
// Three, on the two cores this suite is made for: a scenario mostly waits
// (traffic at a set rate, timelines of seconds), its verdicts are events
// and counters, which hold under the load of a neighbour (the soak runs
// them under a CPU hog), and the catalogue stays inside make test's
// budget.
const scenarioGroups = 3

// TestScenarios runs the whole scenario catalogue, as `lvslab run
// scenarios/*.yaml` does: every scenario passes, its documented failures by
// their xfail. This is the lab's regression suite. The files are dealt out
// round-robin to scenarioGroups runs going at once, each with its own state
// directory; a run that overstays its deadline gets SIGTERM (so it takes
// its labs down) and a clean of its state directory after, so a timeout
// never leaves a lab behind to collide with the next run.
//
// With LVSLAB_KEEP_REPORTS=DIR a failing group's reports (logs, pcaps,
// request records) are kept in DIR/group-N; a passing group's are not.
// make soak-tests sets it, so a flake that shows once in ten runs leaves
// its evidence behind.
func TestScenarios(t *testing.T) {
	nstest.Require(t)
	bin := e2e.Bin(t, "lvslab")
	files, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	sort.Strings(files)
	groups := make([][]string, scenarioGroups)
	for i, f := range files {
		groups[i%scenarioGroups] = append(groups[i%scenarioGroups], f)
	}
	for g, group := range groups {
		t.Run(fmt.Sprintf("group-%d", g+1), func(t *testing.T) {
			t.Parallel()
			state := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 11*time.Minute)
			defer cancel()
			reports := t.TempDir()
			if keep := os.Getenv("LVSLAB_KEEP_REPORTS"); keep != "" {
				reports = filepath.Join(keep, fmt.Sprintf("group-%d", g+1))
				if err := os.MkdirAll(reports, 0o755); err != nil {
					t.Fatalf("LVSLAB_KEEP_REPORTS: %v", err)
				}
				defer func() {
					if !t.Failed() {
						os.RemoveAll(reports)
					} else {
						t.Logf("reports kept in %s", reports)
					}
				}()
			}
			args := append([]string{"--state-dir", state, "--bin-dir", filepath.Dir(bin), "run", "--out", reports}, group...)
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			cmd.WaitDelay = 30 * time.Second
			t.Cleanup(func() {
				// Whatever happened, nothing of this run may outlive it.
				// clean reports every lab namespace on the machine, other
				// runs' included; this run's are those of its scenarios.
				out, err := exec.Command(bin, "--state-dir", state, "clean").CombinedOutput()
				if err != nil {
					t.Logf("lvslab clean after the run: %v\n%s", err, out)
				}
				ns, _ := exec.Command("ip", "netns", "list").Output()
				for _, f := range group {
					s, err := spec.Load(f)
					if err != nil {
						continue
					}
					if prefix := "lvsl-" + s.Name + "."; strings.Contains(string(ns), prefix) {
						t.Errorf("scenario %s left namespaces behind (%s*)", s.Name, prefix)
					}
				}
			})
			start := time.Now()
			out, err := cmd.CombinedOutput()
			t.Logf("%d scenarios in %s", len(group), time.Since(start).Round(time.Second))
			if err != nil {
				t.Fatalf("lvslab run: %v\n%s", err, out)
			}
		})
	}
}
