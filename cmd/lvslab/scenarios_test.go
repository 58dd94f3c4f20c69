package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
)

// TestScenarios runs the whole scenario catalogue, as `lvslab run
// scenarios/*.yaml` does: every scenario passes, its documented failures by
// their xfail. This is the lab's regression suite.
func TestScenarios(t *testing.T) {
	nstest.Require(t)
	bin := e2e.Bin(t, "lvslab")
	files, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	args := append([]string{"--state-dir", t.TempDir(), "--bin-dir", filepath.Dir(bin), "run", "--out", t.TempDir()}, files...)
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	t.Logf("%d scenarios in %s", len(files), time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("lvslab run: %v\n%s", err, out)
	}
}
