package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ApplyRules, with its index, means what Apply one rule after another
// means: deletes and clears move services, errors name the line.
func TestApplyRulesIsApply(t *testing.T) {
	text := `-A -t 10.0.0.1:80
-A -t 10.0.0.2:80
-A -f 7
-a -t 10.0.0.2:80 -r 172.16.0.2
-D -t 10.0.0.1:80
-a -t 10.0.0.2:80 -r 172.16.0.3
-e -t 10.0.0.2:80 -r 172.16.0.3 -w 4
-A -t 10.0.0.1:80 -s sh
-a -t 10.0.0.1:80 -r 172.16.0.4
-Z -t 10.0.0.1:80
-a -f 7 -r 172.16.0.5
-d -t 10.0.0.2:80 -r 172.16.0.2
-C
-A -t 10.0.0.3:80
-a -t 10.0.0.3:80 -r 172.16.0.6
--set 10 0 0
-A -u 10.0.0.3:53
-E -u 10.0.0.3:53 -s rr
`
	rules, err := Parser{}.ParseRuleLines(strings.NewReader(text), "f")
	require.NoError(t, err)
	for n := range len(rules) + 1 {
		var one, all Table
		for _, r := range rules[:n] {
			require.NoError(t, one.Apply(r.Command))
		}
		require.NoError(t, all.ApplyRules(rules[:n]))
		assert.Equal(t, one, all, "after %d rules", n)
	}
	for _, tc := range []struct{ extra, err string }{
		{"-A -t 10.0.0.3:80", "f:19: Service already exists"},
		{"-a -t 10.0.0.1:80 -r 172.16.0.9", "f:19: Service not defined"},
		{"-D -f 7", "f:19: No such service"},
		{"-Z -t 10.0.0.2:80", "f:19: No such service"},
		{"-e -t 10.0.0.3:80 -r 172.16.0.9", "f:19: No such destination"},
	} {
		rs, err := Parser{}.ParseRuleLines(strings.NewReader(text+tc.extra+"\n"), "f")
		require.NoError(t, err)
		var tb Table
		assert.EqualError(t, tb.ApplyRules(rs), tc.err, tc.extra)
	}
}
