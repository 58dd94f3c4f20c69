package runner

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/spec"
)

func re(t *testing.T, s string) spec.Regexp {
	t.Helper()
	var r spec.Regexp
	require.NoError(t, r.UnmarshalText([]byte(s)))
	return r
}

func TestCommandVerdictSaysWhatItWanted(t *testing.T) {
	out := []byte("TCP  10.0.0.1:80 wlc\n  -> 10.0.0.2:80 Route 3 1 0\n")
	held, d := commandVerdict("lvsadm -L -n", out, 0, 0, re(t, `Route\s+3\s+0`), spec.Regexp{})
	assert.False(t, held)
	assert.Contains(t, d, `lvsadm -L -n exited 0: TCP  10.0.0.1:80 wlc`)
	assert.Contains(t, d, `want output matching Route\s+3\s+0`)

	// ^...$ anchors the whole output; the line would match with (?m).
	held, d = commandVerdict("sysctl", []byte("a\n0\n"), 0, 0, re(t, `^0$`), spec.Regexp{})
	assert.False(t, held)
	assert.Contains(t, d, "^ and $ anchor the whole output; (?m)^0$ would match a line")
	held, _ = commandVerdict("sysctl", []byte("a\n0\n"), 0, 0, re(t, `(?m)^0$`), spec.Regexp{})
	assert.True(t, held)

	held, d = commandVerdict("ip -br addr", []byte("eth0 UP 10.79.0.2/24\n"), 0, 0, spec.Regexp{}, re(t, `10\.79\.0\.\d+`))
	assert.False(t, held)
	assert.Contains(t, d, `want output not matching 10\.79\.0\.\d+ (matched "10.79.0.2")`)

	held, d = commandVerdict("false", nil, 1, 0, spec.Regexp{}, spec.Regexp{})
	assert.False(t, held)
	assert.Contains(t, d, "false exited 1: ; want exit status 0")

	held, d = commandVerdict("true", []byte("ok"), 0, 0, re(t, "ok"), spec.Regexp{})
	assert.True(t, held)
	assert.Equal(t, "true exited 0: ok", d)
}
