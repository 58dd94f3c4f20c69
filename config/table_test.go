package config

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTableApply(t *testing.T) {
	var tab Table
	apply := func(args ...string) error {
		t.Helper()
		return tab.Apply(parse(t, args...))
	}
	require.NoError(t, apply("-A", "-t", "10.0.0.1:80", "-s", "rr", "-p", "60"))
	require.NoError(t, apply("-a", "-t", "10.0.0.1:80", "-r", "10.0.1.1", "-g"))
	require.NoError(t, apply("-a", "-t", "10.0.0.1:80", "-r", "10.0.1.2", "-g"))

	// -E replaces the whole service (persistence goes, as with ipvsadm) and
	// keeps the real servers in their order.
	require.NoError(t, apply("-E", "-t", "10.0.0.1:80", "-s", "wrr"))
	vs, ok := tab.Lookup(parse(t, "-D", "-t", "10.0.0.1:80").Service.ID())
	require.True(t, ok)
	assert.Equal(t, Service{Protocol: ProtoTCP, Addr: addr("10.0.0.1"), Port: 80, Scheduler: "wrr"}, vs.Service)
	require.Len(t, vs.Dests, 2)
	assert.Equal(t, addr("10.0.1.1"), vs.Dests[0].Addr)

	assert.Equal(t, ErrNoService, apply("-Z", "-t", "10.0.0.9:80"))
	assert.NoError(t, apply("-Z", "-t", "10.0.0.1:80"))
	assert.NoError(t, apply("-Z"))
	assert.Equal(t, ErrNoDest, apply("-d", "-t", "10.0.0.1:80", "-r", "10.0.1.3"))
	assert.Equal(t, ErrServiceNotDefined, apply("-d", "-t", "10.0.0.2:80", "-r", "10.0.1.1"))
	assert.Equal(t, ErrNoService, apply("-D", "-t", "10.0.0.2:80"))

	before := tab
	before.Services = append([]VirtualService(nil), tab.Services...)
	assert.Error(t, apply("-a", "-t", "10.0.0.1:80", "-r", "10.0.1.9", "-x", "5", "-y", "6"))
	assert.Equal(t, before, tab, "a failed command changes nothing")

	require.NoError(t, apply("-C"))
	assert.Empty(t, tab.Services)

	assert.EqualError(t, tab.Apply(Command{Op: OpList}), "list is not a configuration command")
}

// The control socket carries Commands as JSON; every field survives.
func TestCommandJSON(t *testing.T) {
	for _, args := range [][]string{
		{"-A", "-f", "7", "-6", "-p", "60", "-M", "64", "--pe", "sip", "-s", "sh", "-b", "sh-port"},
		{"-a", "-u", "1.2.3.4:53", "-r", "[2001:db8::5]:53", "-i", "--tun-type", "gue", "--tun-port", "6080", "--tun-remcsum", "-x", "9", "-y", "3", "-w", "0"},
		{"-L", "-n", "--persistent-conn", "--nosort", "-t", "1.2.3.4:80"},
		{"-L", "-c", "--persistent-conn", "--exact", "--tun-info"},
		{"--set", "1", "2", "3"},
		{"-C"},
		{"-a", "-t", "1.2.3.4:80", "-r", "5.6.7.8:81", "--fullnat"},
	} {
		c := parse(t, args...)
		b, err := json.Marshal(c)
		require.NoError(t, err)
		var back Command
		require.NoError(t, json.Unmarshal(b, &back), "%s", b)
		assert.Equal(t, c, back, "%s", b)
	}
	var c Command
	assert.Error(t, json.Unmarshal([]byte(`{"op":"frobnicate"}`), &c))
	assert.Error(t, json.Unmarshal([]byte(`{"op":"list","service":{"protocol":"icmp"}}`), &c))
}

func TestValidate(t *testing.T) {
	good := Service{Protocol: ProtoTCP, Addr: addr("10.0.0.1"), Port: 80, Scheduler: "wlc"}
	assert.NoError(t, good.Validate())
	for name, f := range map[string]func(*Service){
		"no protocol": func(s *Service) { s.Protocol = 0 },
		"no address":  func(s *Service) { s.Addr = netip.Addr{} },
		"port zero":   func(s *Service) { s.Port = 0 },
		"ops on tcp":  func(s *Service) { s.OnePacket = true },
		"scheduler":   func(s *Service) { s.Scheduler = "xx" },
		"flags":       func(s *Service) { s.Flags = 0x1 },
		"timeout":     func(s *Service) { s.Persistent = true },
		"mask family": func(s *Service) { s.Netmask = addr("ffff::") },
		"mask holes":  func(s *Service) { s.Netmask = addr("255.0.255.0") },
		"pe":          func(s *Service) { s.PE = "h323" },
		"fwmark 0":    func(s *Service) { s.Protocol = ProtoFwmark },
	} {
		s := good
		f(&s)
		assert.Error(t, s.Validate(), name)
	}
	assert.Equal(t, 24, Service{Protocol: ProtoTCP, Addr: addr("10.0.0.1"), Netmask: addr("255.255.255.0")}.MaskBits())
	assert.Equal(t, 32, good.MaskBits())
	assert.Equal(t, 128, Service{Protocol: ProtoFwmark, Fwmark: 1, FwmarkIPv6: true}.MaskBits())

	d := Dest{Addr: addr("10.0.0.2"), Weight: 1}
	assert.NoError(t, d.Validate())
	assert.Error(t, Dest{Weight: 1}.Validate())
	assert.Error(t, Dest{Addr: addr("10.0.0.2"), Weight: 65536}.Validate())
	assert.Error(t, Dest{Addr: addr("10.0.0.2"), Forward: ForwardTunnel, TunType: TunGUE}.Validate())
}
