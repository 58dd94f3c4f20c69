package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// -j/--synproxy enable|disable, the FULLNAT fork's service switch (as
// DPVS's ipvsadm spells it), and -S writing it back.
func TestParseArgsSynProxy(t *testing.T) {
	svc := Service{Protocol: ProtoTCP, Addr: addr("10.0.0.100"), Port: 80, Scheduler: "rr", SynProxy: true}
	assert.Equal(t, Command{Op: OpAddService, Service: svc}, parse(t, "-A", "-t", "10.0.0.100:80", "-s", "rr", "-j", "enable"))
	assert.Equal(t, Command{Op: OpEditService, Service: svc}, parse(t, "-E", "-t", "10.0.0.100:80", "-s", "rr", "--synproxy", "enable"))
	svc.SynProxy = false
	assert.Equal(t, Command{Op: OpAddService, Service: svc}, parse(t, "-A", "-t", "10.0.0.100:80", "-s", "rr", "-j", "disable"))

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-A", "-t", "10.0.0.100:80", "-j", "on"}, "synproxy switch must be enable or disable, not `on'"},
		{[]string{"-A", "-u", "10.0.0.100:53", "-j", "enable"}, "SYN proxy (-j) is only for TCP virtual services"},
		{[]string{"-a", "-t", "10.0.0.100:80", "-r", "172.16.0.2", "-m", "-j", "enable"}, "Illegal 'synproxy' option with the 'add-server' command"},
		{[]string{"-L", "-j", "enable"}, "Illegal 'synproxy' option with the 'list' command"},
	} {
		_, err := ParseArgs(tc.args)
		if assert.Error(t, err, tc.args) {
			assert.Contains(t, err.Error(), tc.msg, tc.args)
		}
	}
	assert.Error(t, Service{Protocol: ProtoUDP, Addr: addr("10.0.0.1"), Port: 53, Scheduler: "rr", SynProxy: true}.Validate())

	rules := "-A -t 10.0.0.100:80 -s rr -j enable\n-a -t 10.0.0.100:80 -r 172.16.0.2:8080 -m -w 1\n"
	tab, err := Parser{}.LoadRules(strings.NewReader(rules), "rules")
	require.NoError(t, err)
	require.True(t, tab.Services[0].Service.SynProxy)
	assert.Equal(t, rules, FormatSave(tab.Services, nil))
}
