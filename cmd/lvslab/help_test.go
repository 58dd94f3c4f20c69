package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Every subcommand answers --help (and -h) with its usage, exit 0, without
// doing anything: lvslab down --help must not look for a lab "--help".
func TestEverySubcommandHasHelp(t *testing.T) {
	for _, cmd := range []string{"run", "list", "validate", "up", "down", "exec", "status", "clean", "schema", "explain", "service"} {
		for _, flag := range []string{"--help", "-h"} {
			code, out, errOut := lvslab(cmd, flag)
			assert.Equal(t, exitPass, code, "%s %s: %s", cmd, flag, errOut)
			assert.Contains(t, out, "usage: lvslab [global flags] "+cmd, "%s %s", cmd, flag)
			assert.Empty(t, errOut, "%s %s", cmd, flag)
		}
	}
	code, out, _ := lvslab("down", "--help")
	assert.Equal(t, exitPass, code)
	assert.True(t, strings.HasPrefix(out, "usage: lvslab [global flags] down [NAME]\n"), out)
	assert.NotContains(t, out, `no lab "--help"`)
	// After --, --help belongs to the command exec runs.
	assert.False(t, wantsHelp([]string{"client", "--", "curl", "--help"}))
	assert.True(t, wantsHelp([]string{"--lab", "x", "-h"}))
}
