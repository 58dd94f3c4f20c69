package spec

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A node's frr: gets the processes zebra and ospfd; an ospfd.conf that
// names an interface the node lacks is an error at the scenario's line
// naming the file's line; a missing file likewise.
func TestFRRNode(t *testing.T) {
	good := "interface eth0\n ip ospf network point-to-point\nrouter ospf\n network 10.0.0.0/24 area 0\n"
	bad := "! a comment\ninterface eth0\ninterface up9\nrouter ospf\n"
	s, err := parseNodeKA(t, map[string]string{"r.conf": good}, `name: t
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  r:
    role: router
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]
    frr: {ospfd: r.conf}
`)
	require.NoError(t, err)
	names := s.ProcessNames(s.Node("r"))
	assert.Contains(t, names, ProcZebra)
	assert.Contains(t, names, ProcOSPFD)

	_, err = parseNodeKA(t, map[string]string{"bad.conf": bad}, `name: t
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  r:
    role: router
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]
    frr: {ospfd: bad.conf}
  s:
    role: router
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.2/24}]
    frr: {ospfd: missing.conf}
`)
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, "t.yaml:7:")
	assert.Contains(t, msg, "bad.conf:3: interface up9: node r has no such interface (it has lo, eth0)")
	assert.True(t, strings.Contains(msg, "nodes.s.frr.ospfd: cannot read"), msg)
}
