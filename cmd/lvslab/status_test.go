package main

import (
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lvslab status tells running processes from ones that have exited.
func TestStatusShowsExitedProcesses(t *testing.T) {
	s := newSession(t)
	lab := labName("status")
	code, out := s.run("up", "--name", lab, filepath.Join(testdata, "lan3.yaml"))
	require.Equal(t, exitPass, code, out)
	t.Cleanup(func() { s.run("down", lab) })
	rec := s.record(lab)
	var victim int
	for _, p := range rec.Processes {
		if p.Node == "web1" && p.Name == "marker" {
			victim = p.PID
		}
	}
	require.NotZero(t, victim, "lan3's web1 runs marker")
	code, out = s.run("status")
	require.Equal(t, 0, code, out)
	assert.Regexp(t, `(?m)^  web1/marker pid \d+ running$`, out)

	// The lab started it in its own process group: kill that group.
	require.NoError(t, syscall.Kill(-victim, syscall.SIGKILL))
	assert.Eventually(t, func() bool {
		_, out = s.run("status")
		return regexp.MustCompile(`(?m)^  web1/marker pid \d+ exited$`).MatchString(out)
	}, 10*time.Second, 100*time.Millisecond, "status after the kill:\n%s", out)
	assert.Regexp(t, `(?m)^  web2/marker pid \d+ running$`, out)
}
