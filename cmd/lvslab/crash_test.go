package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/sim/topo"
)

// TestKillRunThenClean is the crash drill with a real director: SIGKILL
// lvslab in the middle of a run of the DR scenario (lvsd, lvsrs, services
// and captures running), then `lvslab clean` leaves no namespace, link or
// process of the lab, and a second run right after passes.
func TestKillRunThenClean(t *testing.T) {
	nstest.Require(t)
	bin := e2e.Bin(t, "lvslab")
	state := t.TempDir()
	scen, err := filepath.Abs("../../scenarios/03-dr-packet-walk-003.yaml")
	require.NoError(t, err)
	require.FileExists(t, scen, "the scenario is part of the repository")
	lab := labName("kill")
	args := func(a ...string) []string {
		return append([]string{"--state-dir", state, "--bin-dir", filepath.Dir(bin)}, a...)
	}
	run := exec.Command(bin, args("run", "--name", lab, "--out", t.TempDir(), scen)...)
	require.NoError(t, run.Start())
	done := make(chan struct{})
	go func() { _ = run.Wait(); close(done) }()
	opts := topo.Options{StateDir: state}
	require.Eventually(t, func() bool {
		rec, err := topo.FindLab(opts, lab)
		return err == nil && len(rec.Processes) > 0 && rec.Processes[len(rec.Processes)-1].PID != 0
	}, 30*time.Second, 50*time.Millisecond, "the lab never came up")
	time.Sleep(2 * time.Second) // well into the run: traffic flowing
	rec, err := topo.FindLab(opts, lab)
	require.NoError(t, err)
	require.NoError(t, run.Process.Signal(syscall.SIGKILL))
	<-done
	require.NotEmpty(t, leftovers(t, opts, lab), "a killed run leaves its lab behind")

	// A safety net for the clean and a whole second run, not a measure:
	// on a loaded machine the run alone has taken more than a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args("clean", lab)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Empty(t, leftovers(t, opts, lab))
	for _, p := range rec.Processes {
		require.Eventually(t, func() bool { return !alive(p.PID) }, 3*time.Second, 20*time.Millisecond, "%s/%s survived", p.Node, p.Name)
	}
	links, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	require.NoError(t, err)
	require.NotContains(t, string(links), topo.Prefix)
	ns, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	require.NotContains(t, string(ns), topo.NamespaceName(lab, ""))

	out, err = exec.CommandContext(ctx, bin, args("run", "--name", lab, "--out", t.TempDir(), scen)...).CombinedOutput()
	require.NoError(t, err, "second run:\n%s", out)
	require.True(t, strings.Contains(string(out), "verdict: pass"), "%s", out)
}

func leftovers(t *testing.T, opts topo.Options, lab string) []string {
	t.Helper()
	left, err := topo.Leftovers(opts, lab)
	require.NoError(t, err)
	return left
}
