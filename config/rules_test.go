package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRules(t *testing.T) {
	in := `# saved by hand
ipvsadm -A -t 207.175.44.110:80 -s rr

/sbin/ipvsadm -a -t 207.175.44.110:80 -r 192.168.10.1 -m   # first server
lvsadm -a -t 207.175.44.110:80 -r 192.168.10.2 -m -w 2
	-A -u 207.175.44.110:53 -s sh -b sh-port
--set 900 120 300
-C
ipvsadm
`
	rules, err := Parser{Names: testNames()}.ParseRuleLines(strings.NewReader(in), "rules.txt")
	require.NoError(t, err)
	require.Len(t, rules, 6)
	lines := []int{}
	for _, r := range rules {
		assert.Equal(t, "rules.txt", r.File)
		lines = append(lines, r.Line)
	}
	assert.Equal(t, []int{2, 4, 5, 6, 7, 8}, lines)
	assert.Equal(t, OpAddService, rules[0].Command.Op)
	assert.Equal(t, Dest{Addr: addr("192.168.10.2"), Port: 80, Forward: ForwardMasq, Weight: 2}, rules[2].Command.Dest)
	assert.Equal(t, OpSetTimeouts, rules[4].Command.Op)
	assert.Equal(t, 120*time.Second, rules[4].Command.Timeouts.TCPFin)
	assert.Equal(t, OpClear, rules[5].Command.Op)

	cmds, err := Parser{Names: testNames()}.ParseRules(strings.NewReader(in), "rules.txt")
	require.NoError(t, err)
	require.Len(t, cmds, 6)
	assert.Equal(t, rules[3].Command, cmds[3])
}

func TestParseRulesErrors(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"-A -t 1.2.3.4:80\n-a -t 1.2.3.4:80 -r 5.6.7.8 -w 70000\n", "r.txt:2: illegal weight specified"},
		{"\n\n-A -t 1.2.3.4:80 -s rr -x 5\n", "r.txt:3: Illegal 'u-threshold' option with the 'add-service' command"},
		{"-A -t 1.2.3.4:80\n-L -n\n", "r.txt:2: -L: only -A -E -D -C -a -e -d -P -Q -Z --set belong in a rules file"},
		{"ipvsadm -R\n", "r.txt:1: -R: only -A -E -D -C -a -e -d -P -Q -Z --set belong in a rules file"},
		{"-S -n\n", "r.txt:1: -S: only -A -E -D -C -a -e -d -P -Q -Z --set belong in a rules file"},
		{"-A -t 1.2.3.4:80 --bogus\n", "r.txt:1: --bogus: unknown option"},
		{"-A -t 1.2.3.4:80\n" + strings.Repeat("x", maxRuleLine+1) + "\n", "r.txt:2: line longer than 65536 bytes"},
	}
	for _, tc := range tests {
		rules, err := Parser{}.ParseRuleLines(strings.NewReader(tc.in), "r.txt")
		assert.Nil(t, rules, "all or nothing")
		if assert.Error(t, err) {
			assert.Equal(t, tc.msg, err.Error())
		}
	}
	// The ipvsadm wording survives the file:line wrapping.
	_, err := Parser{}.ParseRules(strings.NewReader("-A\n"), "x")
	var ae *ArgError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "You need to supply the 'service-address' option for the 'add-service' command", ae.Msg)
}

func TestLoadRules(t *testing.T) {
	in := `-A -t 207.175.44.110:80 -s rr
-a -t 207.175.44.110:80 -r 192.168.10.1 -m
-a -t 207.175.44.110:80 -r 192.168.10.2 -m
-e -t 207.175.44.110:80 -r 192.168.10.2 -m -w 5
-d -t 207.175.44.110:80 -r 192.168.10.1
-A -f 1 -s wrr
-D -f 1
--set 0 30 0
`
	tab, err := Parser{}.LoadRules(strings.NewReader(in), "r")
	require.NoError(t, err)
	assert.Equal(t, &Table{
		Services: []VirtualService{{
			Service: Service{Protocol: ProtoTCP, Addr: addr("207.175.44.110"), Port: 80, Scheduler: "rr"},
			Dests:   []Dest{{Addr: addr("192.168.10.2"), Port: 80, Forward: ForwardMasq, Weight: 5}},
		}},
		Timeouts: Timeouts{TCPFin: 30 * time.Second},
	}, tab)

	// Semantic errors carry file:line too, and nothing is returned.
	for in, msg := range map[string]string{
		"-A -t 1.2.3.4:80\n-a -t 1.2.3.4:81 -r 5.6.7.8\n":                                   "r:2: Service not defined",
		"-A -t 1.2.3.4:80\n-A -t 1.2.3.4:80 -s rr\n":                                        "r:2: Service already exists",
		"-A -t 1.2.3.4:80\n-a -t 1.2.3.4:80 -r 5.6.7.8 -y 10\n":                             "r:2: numerical result out of range: lower threshold 10 is higher than upper threshold 0",
		"-A -t 1.2.3.4:80\n-a -t 1.2.3.4:80 -r 5.6.7.8\n-a -t 1.2.3.4:80 -r 5.6.7.8 -w 2\n": "r:3: Destination already exists",
		"-E -t 1.2.3.4:80\n":                              "r:1: No such service",
		"-A -t 1.2.3.4:80\n-e -t 1.2.3.4:80 -r 5.6.7.8\n": "r:2: No such destination",
	} {
		tab, err := Parser{}.LoadRules(strings.NewReader(in), "r")
		assert.Nil(t, tab)
		if assert.Error(t, err, in) {
			assert.Equal(t, msg, err.Error())
		}
	}
}

func TestLoadRulesFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ipvsadm.rules")
	require.NoError(t, os.WriteFile(p, []byte("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1 -g\n"), 0o600))
	tab, err := LoadRulesFile(p)
	require.NoError(t, err)
	require.Len(t, tab.Services, 1)
	assert.Len(t, tab.Services[0].Dests, 1)

	require.NoError(t, os.WriteFile(p, []byte("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1 -g -w x\n"), 0o600))
	_, err = LoadRulesFile(p)
	require.Error(t, err)
	assert.Equal(t, p+":2: illegal weight specified", err.Error())

	_, err = LoadRulesFile(filepath.Join(dir, "missing"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
