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
	krun := filepath.Join(dir, "nodes", "d", "lvskeepalived")
	assert.Equal(t, []string{"lvskeepalived", "--dont-fork", "--log-console", "-f", filepath.Join(dir, "ka.conf"),
		"-p", filepath.Join(krun, "keepalived.pid"), "-r", filepath.Join(krun, "vrrp.pid"),
		"-c", filepath.Join(krun, "checkers.pid"), "-b", filepath.Join(krun, "bfd.pid"), "--log-detail"}, ka.argv)
	assert.DirExists(t, krun, "the pid files live in the node directory, never in /run where another lab's daemon would meet them")
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

// TestPlanNodeKeepalived: keepalived: runs Debian's keepalived VRRP-only in
// the foreground with its pid files in the node directory, named
// keepalived; with implementation lvskeepalived the same process name runs
// lvskeepalived after the node's lvsd.
func TestPlanNodeKeepalived(t *testing.T) {
	dir := t.TempDir()
	vrrp := "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 7\n  priority 100\n  virtual_ipaddress {\n    10.0.0.50\n  }\n}\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "h.conf"), []byte(vrrp), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "d.conf"), []byte(vrrp), 0o644))
	src := `name: t
segments: {lan: {subnets: [10.0.0.0/24]}}
nodes:
  h:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.8/24}]
    keepalived: {config: h.conf, args: [--vrrp]}
  d:
    role: director
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.9/24}]
    director: {rules: ["-A -t 10.0.0.50:80 -s rr"]}
    keepalived: {implementation: lvskeepalived, config: d.conf, editable: true}
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
	h := byName["h/keepalived"]
	require.NotNil(t, h, "processes: %v", order)
	run := filepath.Join(dir, "nodes", "h", "keepalived")
	assert.Equal(t, []string{"keepalived", "-P", "-n", "-l", "-D", "-G", "-f", filepath.Join(dir, "h.conf"),
		"-p", filepath.Join(run, "keepalived.pid"), "-r", filepath.Join(run, "vrrp.pid"),
		"-c", filepath.Join(run, "checkers.pid"), "-b", filepath.Join(run, "bfd.pid"), "--vrrp"}, h.argv)
	assert.DirExists(t, run)
	assert.Equal(t, filepath.Join(dir, "nodes", "h", "keepalived.log"), h.logPath)
	require.NotNil(t, h.ready)
	assert.True(t, h.ready.Log.MatchString("Wed Dec  2 03:12:30 2026: (VI_1) Entering BACKUP STATE (init)"))
	assert.False(t, h.ready.Log.MatchString("Wed Dec  2 03:12:30 2026: Startup complete"))

	d := byName["d/keepalived"]
	require.NotNil(t, d, "processes: %v", order)
	assert.Nil(t, byName["d/lvskeepalived"])
	// Its pid files in the node directory: with keepalived's default
	// /run/keepalived.pid the second director of a pair refused to start.
	// The copy the editable file runs from is the node's.
	drun := filepath.Join(dir, "nodes", "d", "lvskeepalived")
	dconf := filepath.Join(dir, "nodes", "d", "keepalived.conf")
	assert.Equal(t, []string{"lvskeepalived", "--dont-fork", "--log-console", "-f", dconf,
		"-p", filepath.Join(drun, "keepalived.pid"), "-r", filepath.Join(drun, "vrrp.pid"),
		"-c", filepath.Join(drun, "checkers.pid"), "-b", filepath.Join(drun, "bfd.pid")}, d.argv)
	copied, err := os.ReadFile(dconf)
	require.NoError(t, err)
	assert.Equal(t, vrrp, string(copied))
	assert.Contains(t, d.env, "LVSD_SOCKET=@lvsd")
	assert.Less(t, slices.Index(order, "d/lvsd"), slices.Index(order, "d/keepalived"))
	// Ready on the first VRRP state line, which lvskeepalived writes after
	// its first sync of lvsd's tables, not on the checkers' line.
	require.NotNil(t, d.ready)
	assert.True(t, d.ready.Log.MatchString("Wed Dec  2 03:12:30 2026: (VI_1) Entering BACKUP STATE"))
	assert.False(t, d.ready.Log.MatchString("Wed Dec  2 03:12:30 2026: Activating healthchecker for 0 real servers (0 checkers)"))
}
