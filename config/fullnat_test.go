package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sched"
)

// The FULLNAT fork's ipvsadm: -b on a real server, -P/-Q -z, -G.
func TestParseArgsFullNAT(t *testing.T) {
	vip := Service{Protocol: ProtoTCP, Addr: addr("1.1.1.1"), Port: 80}
	for _, tc := range []struct {
		args []string
		want Command
	}{
		{[]string{"-a", "-t", "1.1.1.1:80", "-r", "192.168.1.1:8080", "-b", "-w", "100"},
			Command{Op: OpAddDest, Service: vip, Dest: Dest{Addr: addr("192.168.1.1"), Port: 8080, Forward: ForwardFullNAT, Weight: 100}}},
		{[]string{"-a", "-t", "1.1.1.1:80", "-r", "192.168.1.1", "--fullnat"},
			Command{Op: OpAddDest, Service: vip, Dest: Dest{Addr: addr("192.168.1.1"), Port: 80, Forward: ForwardFullNAT, Weight: 1}}},
		{[]string{"-e", "-t", "1.1.1.1:80", "-r", "192.168.1.1", "-bw", "3"},
			Command{Op: OpEditDest, Service: vip, Dest: Dest{Addr: addr("192.168.1.1"), Port: 80, Forward: ForwardFullNAT, Weight: 3}}},
		{[]string{"-P", "-t", "1.1.1.1:80", "-z", "192.168.100.1"},
			Command{Op: OpAddLaddr, Service: vip, Laddr: addr("192.168.100.1")}},
		{[]string{"--add-laddr", "--tcp-service=1.1.1.1:80", "--laddr=192.168.100.2"},
			Command{Op: OpAddLaddr, Service: vip, Laddr: addr("192.168.100.2")}},
		{[]string{"-Q", "-t", "1.1.1.1:80", "-z", "192.168.100.1"},
			Command{Op: OpDelLaddr, Service: vip, Laddr: addr("192.168.100.1")}},
		{[]string{"-G"}, Command{Op: OpGetLaddr}},
		{[]string{"--get-laddr", "-t", "1.1.1.1:80"}, Command{Op: OpGetLaddr, Service: vip, HasService: true}},
	} {
		assert.Equal(t, tc.want, parse(t, tc.args...), "%q", tc.args)
	}
	// In a service command -b is still ipvsadm's --sched-flags.
	c := parse(t, "-A", "-t", "1.1.1.1:80", "-s", "sh", "-b", "sh-port")
	assert.Equal(t, sched.Flag2, c.Service.Flags)
}

func TestParseArgsFullNATErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-P", "-t", "1.1.1.1:80"}, "You need to supply the 'local-address' option for the 'add-laddr' command"},
		{[]string{"-Q", "-z", "192.168.100.1"}, "You need to supply the 'service-address' option for the 'del-laddr' command"},
		{[]string{"-P", "-t", "1.1.1.1:80", "-z", "nosuchhost"}, "illegal local address"},
		{[]string{"-P", "-t", "1.1.1.1:80", "-z", "192.168.100.1", "-w", "1"}, "Illegal 'weight' option with the 'add-laddr' command"},
		{[]string{"-G", "-n"}, "Illegal 'numeric' option with the 'get-laddr' command"},
		{[]string{"-A", "-t", "1.1.1.1:80", "-z", "192.168.100.1"}, "Illegal 'local-address' option with the 'add-service' command"},
		{[]string{"-d", "-t", "1.1.1.1:80", "-r", "192.168.1.1", "-b"}, "Illegal 'forwarding-method' option with the 'delete-server' command"},
		{[]string{"-a", "-t", "1.1.1.1:80", "-r", "192.168.1.1", "-b", "-m"}, "multiple 'forwarding-method' options specified"},
	} {
		_, err := Parser{Names: testNames()}.ParseArgs(tc.args)
		require.Error(t, err, "%q", tc.args)
		assert.Equal(t, tc.msg, err.Error(), "%q", tc.args)
	}
}

func TestTableLaddrs(t *testing.T) {
	var tab Table
	vip := Service{Protocol: ProtoTCP, Addr: addr("1.1.1.1"), Port: 80, Scheduler: "rr"}
	l1, l2 := addr("192.168.100.1"), addr("192.168.100.2")
	require.ErrorIs(t, tab.Apply(Command{Op: OpAddLaddr, Service: vip, Laddr: l1}), ErrServiceNotDefined)
	require.NoError(t, tab.Apply(Command{Op: OpAddService, Service: vip}))
	require.NoError(t, tab.Apply(Command{Op: OpAddLaddr, Service: vip, Laddr: l1}))
	require.NoError(t, tab.Apply(Command{Op: OpAddLaddr, Service: vip, Laddr: l2}))
	assert.ErrorIs(t, tab.Apply(Command{Op: OpAddLaddr, Service: vip, Laddr: l2}), ErrLaddrExists)
	assert.Equal(t, []netip.Addr{l1, l2}, tab.Services[0].Laddrs)
	require.NoError(t, tab.Apply(Command{Op: OpDelLaddr, Service: vip, Laddr: l1}))
	assert.ErrorIs(t, tab.Apply(Command{Op: OpDelLaddr, Service: vip, Laddr: l1}), ErrNoLaddr)
	assert.Equal(t, []netip.Addr{l2}, tab.Services[0].Laddrs)
	assert.Equal(t, "Local address already exists", ErrLaddrExists.Error())
	assert.Equal(t, "No such Local address", ErrNoLaddr.Error())
}

// -S writes the local addresses before the FULLNAT real servers that need
// them, and -R loads it back to the same table.
func TestFormatSaveFullNAT(t *testing.T) {
	const rules = `-A -t 1.1.1.1:80 -s rr
-P -t 1.1.1.1:80 -z 192.168.100.1
-P -t 1.1.1.1:80 -z 192.168.100.2
-a -t 1.1.1.1:80 -r 192.168.1.1:80 -b -w 100
-a -t 1.1.1.1:80 -r 192.168.1.2:80 --fullnat -w 100
-Q -t 1.1.1.1:80 -z 192.168.100.1
-P -t 1.1.1.1:80 -z 192.168.100.3
`
	const want = `-A -t 1.1.1.1:80 -s rr
-P -t 1.1.1.1:80 -z 192.168.100.2
-P -t 1.1.1.1:80 -z 192.168.100.3
-a -t 1.1.1.1:80 -r 192.168.1.1:80 --fullnat -w 100
-a -t 1.1.1.1:80 -r 192.168.1.2:80 --fullnat -w 100
`
	p := Parser{}
	t1, err := p.LoadRules(strings.NewReader(rules), "fnat")
	require.NoError(t, err)
	saved := FormatSave(t1.Services, nil)
	assert.Equal(t, want, saved)
	t2, err := p.LoadRules(strings.NewReader(saved), "saved")
	require.NoError(t, err)
	assert.Equal(t, t1.Services, t2.Services)
}
