package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFTPPortsFlag: --ftp-ports is ip_vs_ftp's ports=: 21 by default, a
// list, "none" for no helper; a bad list is an error naming the flag.
func TestFTPPortsFlag(t *testing.T) {
	o, err := parseFlags([]string{"-i", "eth0"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []uint16{21}, o.ftpPorts)
	o, err = parseFlags([]string{"-i", "eth0", "--ftp-ports", "21,2121"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []uint16{21, 2121}, o.ftpPorts)
	o, err = parseFlags([]string{"-i", "eth0", "--ftp-ports", "none"}, io.Discard)
	require.NoError(t, err)
	assert.Empty(t, o.ftpPorts)
	assert.NotNil(t, o.ftpPorts, "an empty list, not nil (nil means the default)")
	_, err = parseFlags([]string{"-i", "eth0", "--ftp-ports", "21,x"}, io.Discard)
	assert.ErrorContains(t, err, `--ftp-ports: ftp port "x"`)
	_, err = parseFlags([]string{"-i", "eth0", "--ftp-ports", "1,2,3,4,5,6,7,8,9"}, io.Discard)
	assert.ErrorContains(t, err, "at most 8 ports")
}
