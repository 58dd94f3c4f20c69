package segcap

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/internal/testenv"
	"lvslab/sim/spec"
)

const filterHead = `name: f
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  a: {role: host, interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]}
expect:
  - {name: ok, pcap: {segment: lan, filter: "ip.src == 10.0.0.1 && ip.ttl#2 == 63"}, gt: 0}
  - {name: ok2, pcap: {segment: lan, filter: "tcp.flags.reset == 1"}, eq: 0}
`

func TestCheckFiltersNamesTheBadOnes(t *testing.T) {
	testenv.Tools(t, "tshark")
	good, err := spec.Parse([]byte(filterHead), "f.yaml", spec.Options{})
	require.NoError(t, err)
	assert.NoError(t, CheckFilters(context.Background(), "", good))

	bad := filterHead + `  - {name: typo, pcap: {segment: lan, filter: "ip.srcc == 10.0.0.1"}, gt: 0}
  - {name: unbalanced, pcap: {segment: lan, filter: "(tcp.port == 80"}, eq: 0}
`
	s, err := spec.Parse([]byte(bad), "f.yaml", spec.Options{})
	require.NoError(t, err)
	err = CheckFilters(context.Background(), "", s)
	var list spec.ErrorList
	require.ErrorAs(t, err, &list)
	require.Len(t, list, 2, "%v", err)
	assert.Contains(t, list[0].Error(), `f.yaml:8:47: expect[2].pcap.filter: invalid display filter "ip.srcc == 10.0.0.1": `)
	assert.Contains(t, list[0].Error(), "ip.srcc")
	assert.Contains(t, list[1].Error(), `f.yaml:9:`)
}
