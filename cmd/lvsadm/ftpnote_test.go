package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/config"
	"lvslab/ipvs/ctl"
)

// TestFTPNote: -L says when the FTP helper follows a NAT or FULLNAT service, and
// stays exactly ipvsadm's listing otherwise.
func TestFTPNote(t *testing.T) {
	cmd, err := config.Parser{}.ParseArgs([]string{"-L", "-n"})
	require.NoError(t, err)
	svc := func(port uint16, fwd config.Forward) ctl.ServiceStatus {
		return ctl.ServiceStatus{Service: config.Service{Protocol: config.ProtoTCP, Addr: netip.MustParseAddr("203.0.113.5"), Port: port, Scheduler: "wrr"},
			Dests: []ctl.DestStatus{{Dest: config.Dest{Addr: netip.MustParseAddr("172.16.0.3"), Port: port, Forward: fwd, Weight: 1}}}}
	}
	r := ctl.Reply{ConnTabSize: 4096, FTPPorts: []uint16{21}, Services: []ctl.ServiceStatus{svc(21, config.ForwardMasq), svc(80, config.ForwardMasq)}}
	out := output(cmd, r, nil)
	assert.True(t, strings.HasSuffix(out, "  (FTP helper, ports 21: PASV/EPSV replies and PORT/EPRT commands of 203.0.113.5:21 are followed and data connections go to the control connection's real server)\n"), out)

	r = ctl.Reply{ConnTabSize: 4096, FTPPorts: []uint16{21}, Services: []ctl.ServiceStatus{svc(21, config.ForwardFullNAT)}}
	out = output(cmd, r, nil)
	assert.True(t, strings.HasSuffix(out, "  (FTP helper, ports 21: PASV/EPSV replies and PORT/EPRT commands of 203.0.113.5:21 are followed and data connections go to the control connection's real server; "+
		"FULLNAT ones from the control connection's local address, which PORT/EPRT commands are rewritten to)\n"), out)

	for name, r := range map[string]ctl.Reply{
		"helper off": {ConnTabSize: 4096, Services: []ctl.ServiceStatus{svc(21, config.ForwardMasq)}},
		"DR":         {ConnTabSize: 4096, FTPPorts: []uint16{21}, Services: []ctl.ServiceStatus{svc(21, config.ForwardRoute)}},
		"other port": {ConnTabSize: 4096, FTPPorts: []uint16{21}, Services: []ctl.ServiceStatus{svc(80, config.ForwardMasq)}},
	} {
		assert.NotContains(t, output(cmd, r, nil), "FTP helper", name)
	}
}
