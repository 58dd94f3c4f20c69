package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/internal/testenv"
)

// A display-filter typo is an invalid spec: exit 2 with file:line:column
// from lvslab validate (and run), before any lab is built.
func TestValidateChecksDisplayFilters(t *testing.T) {
	testenv.Tools(t, "tshark")
	f := filepath.Join(t.TempDir(), "typo.yaml")
	require.NoError(t, os.WriteFile(f, []byte(`name: typo
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  a: {role: host, interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]}
expect:
  - {name: rst, pcap: {segment: lan, filter: "tcp.flags.rest == 1"}, eq: 0}
`), 0o644))
	code, _, errOut := lvslab("validate", f)
	assert.Equal(t, exitInvalid, code)
	assert.Contains(t, errOut, f+`:6:46: expect[0].pcap.filter: invalid display filter "tcp.flags.rest == 1": `)
	code, out, errOut := lvslab("run", f)
	assert.Equal(t, exitInvalid, code, out)
	assert.Contains(t, errOut, f+`:6:46:`)
}
