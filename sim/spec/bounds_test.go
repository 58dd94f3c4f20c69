package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The input bounds of the lab: what a scenario file can ask of lvslab that
// this lvslab cannot do is refused at validation (exit 2), and a hostile
// file can neither expand without bound nor bury its first error.

func parseErrors(t *testing.T, src, file string) ErrorList {
	t.Helper()
	_, err := Parse([]byte(src), file, Options{})
	require.Error(t, err)
	var list ErrorList
	require.True(t, errors.As(err, &list), "error is an ErrorList: %v", err)
	return list
}

// TestKeepalivedChecked: director.keepalived: runs lvskeepalived beside
// lvsd now, so validation no longer refuses it; it reads the file with
// lvskeepalived's parser and refuses what keepalived would abort on, where
// the file says it (keepalived_test.go has the other cases).
func TestKeepalivedChecked(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	require.NoError(t, os.WriteFile(conf, []byte("virtual_server 10.0.0.100 80 {\n  real_server 10.0.0.1 80 {\n  }\n}\n"), 0o644))
	src := base + `  d:
    role: director
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.9/24}]
    director: {keepalived: keepalived.conf}
`
	_, err := Parse([]byte(src), filepath.Join(dir, "s.yaml"), Options{})
	require.NoError(t, err, "warnings (no protocol, no lb_kind) are lvskeepalived's to log")
	require.NoError(t, os.WriteFile(conf, []byte("virtual_server 10.0.0.100 80 {\n  delay_loop\n  real_server 10.0.0.1 80 {\n  }\n}\n"), 0o644))
	list := parseErrors(t, src, filepath.Join(dir, "s.yaml"))
	require.Len(t, list, 1, "%v", list)
	assert.True(t, strings.HasPrefix(list[0].Error(), filepath.Join(dir, "s.yaml")+":13:28: nodes.d.director.keepalived: keepalived.conf:2: fatal: "), list[0].Error())
}

// TestExpansionBoundedBySize: a small file that aliases one long string
// many times is refused once the expanded values pass expandBudget, well
// before it could fill memory (or validate --resolved's output).
func TestExpansionBoundedBySize(t *testing.T) {
	var b strings.Builder
	b.WriteString("vars:\n  big: &big " + strings.Repeat("x", 64<<10) + "\n")
	b.WriteString(base)
	b.WriteString("    processes:\n      - name: p\n        cmd: [true")
	for range 300 {
		b.WriteString(", *big")
	}
	b.WriteString("]\n")
	src := b.String()
	require.Less(t, len(src), 70<<10, "the file is small")
	// 300 × 64 KiB: 19 MiB of values once expanded.

	list := parseErrors(t, src, "t.yaml")
	var found []string
	for _, e := range list {
		if strings.Contains(e.Msg, "document too large") {
			found = append(found, e.Error())
		}
	}
	// The position is where the long value is written (line 2, its
	// anchor), the path where it was used once too often (vars: counts too).
	require.Equal(t, []string{"t.yaml:2:8: nodes.a.processes[0].cmd[255]: document too large: its values come to more than 16 MiB once aliases, ${vars} and ranges are expanded"},
		found, "%v", list)
	assert.Len(t, list, 1, "nothing else: the values past the budget were never decoded")
}

// TestExpansionBoundedInVars: the budget holds in the first pass over
// vars: too, and its error is not lost.
func TestExpansionBoundedInVars(t *testing.T) {
	var b strings.Builder
	b.WriteString(base)
	b.WriteString("vars:\n  big: &big " + strings.Repeat("y", 64<<10) + "\n")
	for i := range 300 {
		fmt.Fprintf(&b, "  v%d: *big\n", i)
	}
	list := parseErrors(t, b.String(), "t.yaml")
	require.Len(t, list, 1, "%v", list)
	assert.Regexp(t, `^t\.yaml:11:8: vars\.v[0-9]+: `, list[0].Error())
	assert.Contains(t, list[0].Error(), "document too large")
}

// TestRepeatedErrorsCapped: one bad mapping aliased 300 times is
// reported a few times with a count, and a file with hundreds of distinct
// problems shows the first maxErrors and says how many more there are.
func TestRepeatedErrorsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(base)
	b.WriteString("  b:\n    role: host\n    interfaces:\n      - &bad {name: eth1, segmnet: lan}\n")
	for range 300 {
		b.WriteString("      - *bad\n")
	}
	list := parseErrors(t, b.String(), "t.yaml")
	var here []string
	for _, e := range list {
		if e.Line == 13 && e.Column == 27 {
			here = append(here, e.Error())
		}
	}
	require.Len(t, here, 3, "%v", list) // maxRepeats
	assert.Equal(t, `t.yaml:13:27: nodes.b.interfaces[0].segmnet: unknown field "segmnet" (did you mean "segment"?)`, here[0])
	assert.Equal(t, `t.yaml:13:27: nodes.b.interfaces[2].segmnet: unknown field "segmnet" (did you mean "segment"?)`+
		` (and 298 more times here, where aliases or ranges use it again)`, here[2])
	assert.LessOrEqual(t, len(list), 100+1) // maxErrors and the line saying how many more

	b.Reset()
	b.WriteString(base)
	for i := range 500 {
		fmt.Fprintf(&b, "    colour%d: blue\n", i)
	}
	list = parseErrors(t, b.String(), "t.yaml")
	require.Len(t, list, 100+1)
	assert.Equal(t, `t.yaml:10:5: nodes.a.colour0: unknown field "colour0"`, list[0].Error())
	assert.Equal(t, `t.yaml:110:5: too many errors: 400 more from here on not shown`, list[100].Error())
}
