package topo

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/service"
	"lvslab/sim/spec"
)

// TestPlanKeepalived: a director with keepalived: gets lvskeepalived after
// its lvsd, with the file, keepalived_args and LVSD_SOCKET; a service with
// controls gets its control file written and named.
func TestPlanKeepalived(t *testing.T) {
	dir := t.TempDir()
	conf := "virtual_server 10.0.0.100 80 {\n  lb_kind NAT\n  protocol TCP\n  real_server 10.0.0.1 80 {\n    TCP_CHECK {\n    }\n  }\n}\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ka.conf"), []byte(conf), 0o644))
	src := `name: t
segments: {lan: {subnets: [10.0.0.0/24]}}
nodes:
  d:
    role: director
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.9/24}]
    director: {keepalived: ka.conf, keepalived_args: [--log-detail], socket: ctl}
  rs:
    role: realserver
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]
    realserver: {mode: nat}
    services: [{kind: http-echo, listen: ":80", status: 503, delay: 2s}]
`
	s, err := spec.Parse([]byte(src), filepath.Join(dir, "t.yaml"), spec.Options{})
	require.NoError(t, err)
	l := &Lab{Spec: s, opts: Options{Self: "lvslab"}}
	for i := range s.Nodes {
		l.nodes = append(l.nodes, &Node{Name: s.Nodes[i].Name, Dir: filepath.Join(dir, "nodes", s.Nodes[i].Name), spec: &s.Nodes[i]})
	}
	procs, err := l.plan()
	require.NoError(t, err)
	var order []string
	byName := map[string]*Process{}
	for _, p := range procs {
		order = append(order, p.Node+"/"+p.Name)
		byName[p.Node+"/"+p.Name] = p
	}
	ka := byName["d/lvskeepalived"]
	require.NotNil(t, ka, "processes: %v", order)
	assert.Less(t, slices.Index(order, "d/lvsd"), slices.Index(order, "d/lvskeepalived"))
	assert.Equal(t, []string{"lvskeepalived", "--dont-fork", "--log-console", "-f", filepath.Join(dir, "ka.conf"), "--log-detail"}, ka.argv)
	assert.Contains(t, ka.env, "LVSD_SOCKET=@ctl")
	assert.NotContains(t, byName["d/lvsd"].argv, "-f", "lvsd is not given the keepalived.conf")

	web := byName["rs/http-echo"]
	require.NotNil(t, web)
	ctl := filepath.Join(dir, "nodes", "rs", "http-echo.control")
	assert.Equal(t, []string{"--control", ctl}, web.argv[len(web.argv)-2:])
	c, err := service.ReadControls(ctl)
	require.NoError(t, err)
	assert.Equal(t, 503, c.Status)
	assert.Equal(t, "2s", c.Delay.String())
}
