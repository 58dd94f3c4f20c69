package spec

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const kaGood = `virtual_server 10.0.0.100 80 {
    delay_loop 2
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 10.0.0.1 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`

// kaDirector is a DR director d whose keepalived.conf is ka.conf, with a
// real server a (base's node, made a realserver).
const kaDirector = `    realserver: {mode: dr}
  d:
    role: director
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.9/24}]
    director:
      keepalived: ka.conf
`

func parseWithKA(t *testing.T, conf, extra string) (*Spec, error) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ka.conf"), []byte(conf), 0o644))
	return Parse([]byte(base+kaDirector+extra), filepath.Join(dir, "t.yaml"), Options{})
}

func errorsOf(t *testing.T, err error) []string {
	t.Helper()
	require.Error(t, err)
	var list ErrorList
	require.True(t, errors.As(err, &list), "error is an ErrorList: %v", err)
	var out []string
	for _, e := range list {
		msg := e.Error()
		if i := strings.Index(msg, "t.yaml:"); i >= 0 {
			msg = msg[i:] // the temporary directory
		}
		out = append(out, msg)
	}
	return out
}

func TestKeepalivedDirector(t *testing.T) {
	s, err := parseWithKA(t, kaGood, "      keepalived_args: [--log-detail]\n")
	require.NoError(t, err)
	// The real server's VIPs come from keepalived.conf as from rules:.
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.0.0.100")}, s.Node("a").RealServer.VIPs)
	require.NotNil(t, s.Node("d").Director.Forwarding)
	assert.False(t, *s.Node("d").Director.Forwarding, "a DR director does not forward")
	assert.Equal(t, []string{"lvsd", "lvskeepalived"}, s.ProcessNames(s.Node("d")))
	assert.True(t, s.RunsKeepalived(s.Node("d")))

	// The real server mode is checked against keepalived.conf as against rules.
	_, err = parseWithKA(t, strings.Replace(kaGood, "lb_kind DR", "lb_kind NAT", 1), "")
	require.Error(t, err, "a dr real server named by a NAT keepalived.conf")
}

func TestKeepalivedValidationErrors(t *testing.T) {
	cases := []struct {
		name, conf, extra, want string
	}{
		{"parser error names the conf's file:line",
			strings.Replace(kaGood, "lb_algo rr", "lb_algo bogus", 1), "",
			`t.yaml:15:19: nodes.d.director.keepalived: ka.conf:3: error: `},
		{"fatal: keyword missing its parameter",
			strings.Replace(kaGood, "delay_loop 2", "delay_loop", 1), "",
			`t.yaml:15:19: nodes.d.director.keepalived: ka.conf:2: fatal: `},
		{"public address in keepalived.conf",
			strings.ReplaceAll(kaGood, "10.0.0.100", "8.8.8.8"), "",
			`t.yaml:15:19: nodes.d.director.keepalived: public address 8.8.8.8: `},
		{"keepalived_args names the file",
			kaGood, "      keepalived_args: [-f, other.conf]\n",
			`t.yaml:16:25: nodes.d.director.keepalived_args[0]: -f is the lab's to give (keepalived: names the file; -t/-T do not run the daemon)`},
		{"keepalived_args without keepalived",
			kaGood, "  e:\n    role: director\n    director: {keepalived_args: [-D]}\n",
			`t.yaml:18:33: nodes.e.director.keepalived_args: keepalived_args without keepalived: lvskeepalived only runs with a keepalived.conf`},
		{"http status out of range",
			kaGood, "    services: [{kind: http-echo, listen: \":80\", status: 1000}]\n",
			`t.yaml:16:57: nodes.d.services[0].status: HTTP status 1000 is not 100..999`},
		{"body on smtp-banner",
			kaGood, "    services: [{kind: smtp-banner, listen: \":25\", body: hi}]\n",
			`t.yaml:16:57: nodes.d.services[0].body: smtp-banner has no body; only http-echo and https-echo`},
		{"delay on tcp-sink",
			kaGood, "    services: [{kind: tcp-sink, listen: \":9\", delay: 1s}]\n",
			`t.yaml:16:54: nodes.d.services[0].delay: tcp-sink has no delay; only http-echo, https-echo and smtp-banner`},
		{"service.set on a process that is not a service",
			kaGood, "timeline:\n  - {name: slow, at: 1s, fault: service.set, target: d/lvskeepalived, delay: 6s}\n",
			`t.yaml:17:54: timeline[0].target: d/lvskeepalived is not a built-in service (service.set changes http-echo, https-echo, smtp-banner)`},
		{"service.set without a control",
			kaGood, "    services: [{kind: http-echo, listen: \":80\"}]\ntimeline:\n  - {name: slow, at: 1s, fault: service.set, target: d/http-echo}\n",
			`t.yaml:18:5: timeline[0]: service.set needs status, delay or body`},
		{"service.set parameter",
			kaGood, "    services: [{kind: http-echo, listen: \":80\"}]\ntimeline:\n  - {name: slow, at: 1s, fault: service.set, target: d/http-echo, delay: 1s, loss: 5%}\n",
			`t.yaml:18:84: timeline[0].loss: loss is not a parameter of service.set`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWithKA(t, tc.conf, tc.extra)
			got := errorsOf(t, err)
			for _, e := range got {
				if e == tc.want || (strings.HasSuffix(tc.want, ": ") && strings.HasPrefix(e, tc.want)) {
					return
				}
			}
			t.Fatalf("want\n  %s\ngot\n  %s", tc.want, strings.Join(got, "\n  "))
		})
	}
}

func TestServiceSetValid(t *testing.T) {
	_, err := parseWithKA(t, kaGood, "    services: [{kind: http-echo, listen: \":80\", status: 200, delay: 10ms, body: ok}]\n"+
		"timeline:\n  - {name: slow, at: 1s, for: 2s, fault: service.set, target: d/http-echo, delay: 6s, status: 503, body: \"\"}\n")
	require.NoError(t, err)
}
