package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/spec"
)

// The "write your own failover scenario" walk-through of sim/README.md
// builds scenarios/10-dr-wlc-failover.yaml: that file exists, is valid, is
// picked up by TestScenarios (scenarios/*.yaml), and every line of the
// walk-through's YAML (comments and "..." aside) is in it, so the text
// cannot drift from the scenario make test runs.
func TestReadmeWalkthroughIsTheScenario(t *testing.T) {
	readme, err := os.ReadFile("../../sim/README.md")
	require.NoError(t, err)
	text := string(readme)
	i := strings.Index(text, "## Write your own failover scenario")
	require.GreaterOrEqual(t, i, 0, "sim/README.md has no walk-through")
	section := text[i:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	file := regexp.MustCompile(`scenarios/[0-9a-z-]+\.yaml`).FindString(section)
	require.NotEmpty(t, file)
	path := filepath.Join("../..", file)
	matches, _ := filepath.Glob("../../scenarios/*.yaml")
	assert.Contains(t, matches, path, "TestScenarios runs scenarios/*.yaml")
	s, err := spec.Load(path)
	require.NoError(t, err)
	assert.Equal(t, spec.APIVersion, s.APIVersion)
	scenario, err := os.ReadFile(path)
	require.NoError(t, err)
	norm := func(l string) string { return strings.Join(strings.Fields(l), " ") }
	var body []string
	for _, l := range strings.Split(string(scenario), "\n") {
		body = append(body, norm(l))
	}
	all := strings.Join(body, "\n")

	in := false
	n := 0
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "```yaml"):
			in = true
			continue
		case strings.HasPrefix(l, "```"):
			in = false
			continue
		}
		if !in {
			continue
		}
		if k := strings.Index(l, " #"); k >= 0 {
			l = strings.TrimSpace(l[:k])
		}
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		n++
		if !strings.Contains(all, norm(l)) {
			t.Errorf("sim/README.md walk-through line %q is not in %s", l, file)
		}
	}
	assert.Greater(t, n, 10, "the walk-through shows the topology")
}
