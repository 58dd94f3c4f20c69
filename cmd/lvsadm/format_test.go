package main

import (
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/config"
	"lvslab/internal/testenv"
	"lvslab/ipvs/ctl"
	"lvslab/sched"
)

// The golden files in testdata are the sample outputs of
// reference/ipvs.md §6.3, cut verbatim (trailing blanks included) from the
// reference by command.
func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
	require.NoError(t, err)
	return string(b)
}

// The golden files must still be what the reference says.
func TestGoldenFilesMatchReference(t *testing.T) {
	ref, err := os.ReadFile(testenv.SharedFile(t, "reference/ipvs.md"))
	require.NoError(t, err)
	files, _ := filepath.Glob("testdata/*.golden")
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.Contains(t, string(ref), string(b), f)
	}
}

func a(s string) netip.Addr      { return netip.MustParseAddr(s) }
func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
func sec(n int) time.Duration    { return time.Duration(n) * time.Second }
func opts(args ...string) config.ListOptions {
	c, err := config.Parser{}.ParseArgs(args)
	if err != nil {
		panic(err)
	}
	return c.List
}

var vip = a("207.175.44.110")

// sampleReply is the director state behind the §6.3 -L -n sample, with the
// services deliberately out of order: lvsadm sorts.
func sampleReply() ctl.Reply {
	return ctl.Reply{ConnTabSize: 4096, Services: []ctl.ServiceStatus{
		{Service: config.Service{Protocol: config.ProtoFwmark, Fwmark: 1, Scheduler: "wrr"},
			Dests: []ctl.DestStatus{{Dest: config.Dest{Addr: a("192.168.10.5"), Forward: config.ForwardRoute, Weight: 0}}}},
		{Service: config.Service{Protocol: config.ProtoUDP, Addr: vip, Port: 514, Scheduler: "rr", OnePacket: true},
			Dests: []ctl.DestStatus{{Dest: config.Dest{Addr: a("172.16.0.2"), Port: 514, Forward: config.ForwardMasq, Weight: 1}}}},
		{Service: config.Service{Protocol: config.ProtoTCP, Addr: vip, Port: 8080, Scheduler: "rr"},
			Dests: []ctl.DestStatus{{Dest: config.Dest{Addr: a("172.16.0.2"), Port: 8080, Forward: config.ForwardRoute, Weight: 1},
				ActiveConns: 1}}},
		{Service: config.Service{Protocol: config.ProtoUDP, Addr: vip, Port: 53, Scheduler: "sh", Flags: sched.Flag1 | sched.Flag2},
			Dests: []ctl.DestStatus{{Dest: config.Dest{Addr: a("172.16.0.3"), Port: 53, Forward: config.ForwardTunnel, Weight: 1},
				InactConns: 4}}},
		{Service: config.Service{Protocol: config.ProtoTCP, Addr: vip, Port: 80, Scheduler: "wlc",
			Persistent: true, PersistTimeout: sec(360), Netmask: a("255.255.255.0")},
			Dests: []ctl.DestStatus{
				{Dest: config.Dest{Addr: a("192.168.10.2"), Port: 80, Forward: config.ForwardMasq, Weight: 2}, ActiveConns: 25, InactConns: 7},
				{Dest: config.Dest{Addr: a("192.168.10.1"), Port: 80, Forward: config.ForwardMasq, Weight: 1}, ActiveConns: 12, InactConns: 3},
			}},
	}}
}

func svc8080(st ctl.Stats, rt ctl.Rate, d ctl.DestStatus) ctl.Reply {
	return ctl.Reply{ConnTabSize: 4096, Services: []ctl.ServiceStatus{{
		Service: config.Service{Protocol: config.ProtoTCP, Addr: vip, Port: 8080, Scheduler: "rr"},
		Stats:   st, Rate: rt, Dests: []ctl.DestStatus{d},
	}}}
}

func TestFormatSamples(t *testing.T) {
	rs1 := config.Dest{Addr: a("172.16.0.2"), Port: 8080, Forward: config.ForwardRoute, Weight: 1}
	tests := []struct {
		golden string
		args   []string
		reply  ctl.Reply
	}{
		{"L-n", []string{"-L", "-n"}, sampleReply()},
		{"L-n-stats", []string{"-L", "-n", "--stats"}, svc8080(
			ctl.Stats{Conns: 113786, InPkts: 19495479, InBytes: 2110483947}, ctl.Rate{},
			ctl.DestStatus{Dest: rs1, Stats: ctl.Stats{Conns: 12883, InPkts: 1679941, InBytes: 181747321}})},
		{"L-n-rate", []string{"-L", "-n", "--rate"}, svc8080(
			ctl.Stats{}, ctl.Rate{CPS: 3, InPPS: 210, InBPS: 19312},
			ctl.DestStatus{Dest: rs1, Rate: ctl.Rate{CPS: 3, InPPS: 210, InBPS: 19312}})},
		{"L-n-thresholds", []string{"-L", "-n", "--thresholds"}, svc8080(ctl.Stats{}, ctl.Rate{},
			ctl.DestStatus{Dest: config.Dest{Addr: a("172.16.0.2"), Port: 8080, Weight: 1, UThreshold: 100}, ActiveConns: 1})},
		{"L-n-persistent-conn", []string{"-L", "-n", "--persistent-conn"}, ctl.Reply{ConnTabSize: 4096, Services: []ctl.ServiceStatus{{
			Service: config.Service{Protocol: config.ProtoTCP, Addr: vip, Port: 80, Scheduler: "wlc", Persistent: true, PersistTimeout: sec(360)},
			Dests: []ctl.DestStatus{{Dest: config.Dest{Addr: a("192.168.10.1"), Port: 80, Forward: config.ForwardMasq, Weight: 1},
				PersistConns: 2, ActiveConns: 1}},
		}}}},
		{"L-n-c", []string{"-L", "-n", "-c"}, ctl.Reply{Conns: []ctl.ConnStatus{
			{Proto: "TCP", State: "ESTABLISHED", Expires: sec(899) + 700*time.Millisecond, Client: ap("10.0.0.2:45678"), Virtual: ap("207.175.44.110:8080"), Dest: ap("172.16.0.2:8080")},
			{Proto: "TCP", State: "FIN_WAIT", Expires: sec(116), Client: ap("10.0.0.2:45680"), Virtual: ap("207.175.44.110:8080"), Dest: ap("172.16.0.2:8080")},
			{Proto: "TCP", State: "SYN_RECV", Expires: sec(58), Client: ap("10.0.0.2:45682"), Virtual: ap("207.175.44.110:8080"), Dest: ap("172.16.0.2:8080")},
			{Proto: "UDP", State: "UDP", Expires: sec(299), Client: ap("10.0.0.2:53001"), Virtual: ap("207.175.44.110:53"), Dest: ap("172.16.0.3:53")},
			{Proto: "TCP", State: "NONE", Expires: sec(359), Client: ap("10.0.0.2:0"), Virtual: ap("207.175.44.110:80"), Dest: ap("192.168.10.1:80")},
			{Proto: "IP", State: "ASSURED", Expires: sec(359), Client: ap("10.0.0.2:0"), Virtual: ap("0.0.0.1:0"), Dest: ap("192.168.10.5:0")},
		}}},
		{"S-n", []string{"-S", "-n"}, sampleReply()},
		{"L-timeout", []string{"-L", "--timeout"}, ctl.Reply{Timeouts: config.DefaultTimeouts()}},
		{"L-daemon", []string{"-L", "--daemon"}, ctl.Reply{Daemons: []ctl.DaemonStatus{
			{State: "master", McastIfn: "eth0", MaxLen: 1472, Group: a("224.0.0.81"), Port: 8848, TTL: 1},
			{State: "backup", McastIfn: "eth0", MaxLen: 1472, Group: a("224.0.0.81"), Port: 8848, TTL: 1},
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			cmd, err := config.Parser{}.ParseArgs(tc.args)
			require.NoError(t, err)
			assert.Equal(t, golden(t, tc.golden), output(cmd, tc.reply, nil))
		})
	}
}

// print_largenum at every threshold: "%9llu" below 10^8, then "%8llu" and
// K (10^3), M (10^6), G (10^9), T (10^12); --exact "%*llu" of width 9, or
// one more than the length past 8 digits.
func TestLargenum(t *testing.T) {
	tests := []struct {
		v            uint64
		short, exact string
	}{
		{0, "        0", "        0"},
		{12345, "    12345", "    12345"},
		{99999999, " 99999999", " 99999999"},
		{100000000, "  100000K", " 100000000"},
		{100000999, "  100000K", " 100000999"},
		{999999999, "  999999K", " 999999999"},
		{1000000000, "    1000M", " 1000000000"},
		{99999999999, "   99999M", " 99999999999"},
		{100000000000, "     100G", " 100000000000"},
		{99999999999999, "   99999G", " 99999999999999"},
		{100000000000000, "     100T", " 100000000000000"},
		{math.MaxUint64, "18446744T", " 18446744073709551615"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.short, largenum(tc.v, false), "%d", tc.v)
		assert.Equal(t, tc.exact, largenum(tc.v, true), "%d --exact", tc.v)
	}
}

func TestFormatStatsExact(t *testing.T) {
	r := svc8080(ctl.Stats{Conns: 1234567890, InPkts: 99999999, OutPkts: 100000000, InBytes: 1 << 40, OutBytes: 7}, ctl.Rate{},
		ctl.DestStatus{Dest: config.Dest{Addr: a("172.16.0.2"), Port: 8080}, Stats: ctl.Stats{Conns: 1}})
	got := formatServices(r.Services, opts("-L", "-n", "--stats", "--exact"), nil)
	assert.Equal(t, "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"+
		"  -> RemoteAddress:Port\n"+
		"TCP  207.175.44.110:8080          1234567890 99999999 100000000 1099511627776        7\n"+
		"  -> 172.16.0.2:8080                     1        0        0        0        0\n", got)
	got = formatServices(r.Services, opts("-L", "-n", "--stats"), nil)
	assert.Contains(t, got, "TCP  207.175.44.110:8080             1234M 99999999  100000K    1099G        7\n")
}

// A listing that uses every column the service table has: all forwarding
// methods, every tunnel encapsulation, thresholds, persistence with a mask
// and a persistence engine, IPv6 and fwmark services, mh flags, ops.
func everyColumnReply() ctl.Reply {
	tun := func(addr string, w int, tt config.TunType, port uint16, cs config.TunCsum) ctl.DestStatus {
		return ctl.DestStatus{Dest: config.Dest{Addr: a(addr), Port: 80, Forward: config.ForwardTunnel, Weight: w,
			TunType: tt, TunPort: port, TunCsum: cs}}
	}
	return ctl.Reply{ConnTabSize: 1048576, Services: []ctl.ServiceStatus{
		{Service: config.Service{Protocol: config.ProtoUDP, Addr: a("10.0.0.1"), Port: 53, Scheduler: "mh",
			Flags: sched.Flag1 | sched.Flag2, OnePacket: true}},
		{Service: config.Service{Protocol: config.ProtoTCP, Addr: a("2001:db8::1"), Port: 80, Scheduler: "nq",
			Persistent: true, PersistTimeout: sec(300), PE: "sip"},
			Dests: []ctl.DestStatus{{Dest: config.Dest{Addr: a("2001:db8::10"), Port: 8080, Forward: config.ForwardMasq, Weight: 1}}}},
		{Service: config.Service{Protocol: config.ProtoFwmark, Fwmark: 2, FwmarkIPv6: true, Scheduler: "ovf",
			Persistent: true, PersistTimeout: sec(360), Netmask: a("ffff:ffff:ffff::")}},
		{Service: config.Service{Protocol: config.ProtoTCP, Addr: a("10.0.0.1"), Port: 80, Scheduler: "rr"},
			Dests: []ctl.DestStatus{
				{Dest: config.Dest{Addr: a("192.168.1.2"), Port: 8080, Forward: config.ForwardMasq, Weight: 5, UThreshold: 100, LThreshold: 50},
					ActiveConns: 40, InactConns: 60, PersistConns: 0},
				tun("192.168.1.8", 1, config.TunGRE, 0, config.TunCsumOn),
				tun("192.168.1.3", 0, config.TunIPIP, 0, config.TunNoCsum),
				tun("192.168.1.5", 1, config.TunGUE, 65535, config.TunRemCsum),
				tun("192.168.1.4", 2, config.TunGUE, 6080, config.TunNoCsum),
				{Dest: config.Dest{Addr: a("192.168.1.1"), Port: 80, Forward: config.ForwardRoute, Weight: 1}, ActiveConns: 5, InactConns: 1, PersistConns: 3},
				{Dest: config.Dest{Addr: a("192.168.1.6"), Port: 80, Forward: config.ForwardLocal, Weight: 1}},
			}},
	}}
}

// The expected lines of the tests below were produced by applying ipvsadm's C
// format strings (quoted next to each) with an independent printf, Python's
// % operator, to the same values.
func TestFormatEveryColumn(t *testing.T) {
	r := everyColumnReply()
	// Columns: "  -> %-28s %-7s %-13s %-6d %-10u %-10u".
	assert.Equal(t, "IP Virtual Server version 1.2.1 (size=1048576)\n"+
		"Prot LocalAddress:Port Scheduler Flags\n"+
		"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"+
		"TCP  10.0.0.1:80 rr\n"+
		"  -> 192.168.1.1:80               Route   n/a           1      5          1         \n"+
		"  -> 192.168.1.2:8080             Masq    n/a           5      40         60        \n"+
		"  -> 192.168.1.3:80               Tunnel  ipip          0      0          0         \n"+
		"  -> 192.168.1.4:80               Tunnel  gue:6080:-c   2      0          0         \n"+
		"  -> 192.168.1.5:80               Tunnel  gue:65535:r+c 1      0          0         \n"+
		"  -> 192.168.1.6:80               Local   n/a           1      0          0         \n"+
		"  -> 192.168.1.8:80               Tunnel  gre:+c        1      0          0         \n"+
		"UDP  10.0.0.1:53 mh (mh-fallback,mh-port) ops\n"+
		"TCP  [2001:db8::1]:80 nq persistent 300 pe sip\n"+
		"  -> [2001:db8::10]:8080          Masq    n/a           1      0          0         \n"+
		"FWM  2 IPv6 ovf persistent 360 mask 48\n",
		output(config.Command{Op: config.OpList, List: opts("-L", "-n", "--tun-info")}, r, nil))

	// "  -> %-28s %-10u %-10u %-10u %-10u"
	got := formatServices(r.Services[3:], opts("-L", "-n", "--thresholds"), nil)
	assert.Contains(t, got, "  -> 192.168.1.2:8080             100        50         40         60        \n")
	// "  -> %-28s %-9u %-11u %-10u %-10u"
	got = formatServices(r.Services[3:], opts("-L", "-n", "--persistent-conn"), nil)
	assert.Contains(t, got, "  -> 192.168.1.1:80               1         3           5          1         \n")

	// --nosort keeps lvsd's order, for services and real servers.
	got = formatServices(r.Services, opts("-L", "-n", "--nosort"), nil)
	assert.True(t, strings.HasPrefix(got, "Prot LocalAddress:Port Scheduler Flags\n"+
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"+
		"UDP  10.0.0.1:53 mh (mh-fallback,mh-port) ops\n"+
		"TCP  [2001:db8::1]:80 nq persistent 300 pe sip\n"), got)
	assert.Contains(t, got, "TCP  10.0.0.1:80 rr\n"+
		"  -> 192.168.1.2:8080             Masq    5      40         60        \n"+
		"  -> 192.168.1.8:80               Tunnel  1      0          0         \n")
}

func TestFormatNames(t *testing.T) {
	names := config.NamesFrom(`
10.0.0.1	a-very-long-hostname.example.com
192.168.1.1	realserver-number-one.example.com
2001:db8::1	v6-host-with-a-rather-long-name.example
127.0.0.1	localhost
207.175.44.110	www.example.com
172.16.0.2	rs1.example.com
`, "http 80/tcp\nhttp-alt 8080/tcp\ndomain 53/udp\n")
	r := ctl.Reply{Services: []ctl.ServiceStatus{
		{Service: config.Service{Protocol: config.ProtoTCP, Addr: a("10.0.0.1"), Port: 80, Scheduler: "rr"},
			Dests: []ctl.DestStatus{{Dest: config.Dest{Addr: a("192.168.1.1"), Port: 80, Weight: 1}}}},
		{Service: config.Service{Protocol: config.ProtoTCP, Addr: a("2001:db8::1"), Port: 80, Scheduler: "wlc"}},
		{Service: config.Service{Protocol: config.ProtoUDP, Addr: a("10.0.0.1"), Port: 80, Scheduler: "wlc"}},
	}}
	// IPv4 names are cut at 33 (service) and 28 (real server) bytes; IPv6
	// ones are not. Port names are per protocol.
	assert.Equal(t, "Prot LocalAddress:Port Scheduler Flags\n"+
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"+
		"TCP  a-very-long-hostname.example rr\n"+
		"  -> realserver-number-one.exampl Route   1      0          0         \n"+
		"UDP  a-very-long-hostname.example wlc\n"+
		"TCP  [v6-host-with-a-rather-long-name.example]:http wlc\n",
		formatServices(r.Services, opts("-L"), names))

	conns := []ctl.ConnStatus{
		{Proto: "TCP", State: "ESTABLISHED", Expires: sec(899), Client: ap("127.0.0.1:45678"), Virtual: ap("207.175.44.110:80"), Dest: ap("172.16.0.2:8080")},
		{Proto: "IP", State: "ASSURED", Expires: sec(3600), Client: ap("127.0.0.1:0"), Virtual: ap("0.0.0.1:0"), Dest: ap("172.16.0.2:80")},
	}
	// "%-3s %-6s %-11s %-18s %-18s %s"; templates of fwmark services (IP)
	// keep numeric ports.
	assert.Equal(t, "IPVS connection entries\n"+
		"pro expire state       source             virtual            destination\n"+
		"TCP 14:59  ESTABLISHED localhost:45678    www.example.com:http rs1.example.com:http-alt\n"+
		"IP  60:00  ASSURED     localhost:0        0.0.0.1:0          rs1.example.com:80\n",
		formatConns(conns, opts("-L", "-c"), names))
}

func TestFormatConnsPersistent(t *testing.T) {
	conns := []ctl.ConnStatus{
		{Proto: "UDP", State: "UDP", Expires: sec(30), Client: ap("10.0.0.2:5060"), Virtual: ap("10.0.0.1:5060"), Dest: ap("192.168.1.1:5060"),
			PEName: "sip", PEData: "callid123"},
		{Proto: "TCP", State: "CLOSE", Expires: -time.Second, Client: ap("10.0.0.2:1"), Virtual: ap("10.0.0.1:80"), Dest: ap("192.168.1.1:80")},
	}
	// "pro expire %-11s %-18s %-18s %-18s %-16s %s" and rows
	// "%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s" when the entry has pe data.
	assert.Equal(t, "IPVS connection entries\n"+
		"pro expire state       source             virtual            destination        pe name          pe_data\n"+
		"UDP 00:30  UDP         10.0.0.2:5060      10.0.0.1:5060      192.168.1.1:5060 sip                callid123\n"+
		"TCP 00:00  CLOSE       10.0.0.2:1         10.0.0.1:80        192.168.1.1:80\n",
		formatConns(conns, opts("-L", "-n", "-c", "--persistent-conn"), nil))
}

func TestFormatDaemonsPartial(t *testing.T) {
	assert.Equal(t, "backup sync daemon (mcast=eth1, syncid=9)\n",
		formatDaemons([]ctl.DaemonStatus{{State: "backup", McastIfn: "eth1", SyncID: 9}}))
	assert.Equal(t, "", formatDaemons(nil))
}

// A listing of one service has no banner.
func TestFormatOneService(t *testing.T) {
	cmd, err := config.Parser{}.ParseArgs([]string{"-L", "-n", "-t", "207.175.44.110:8080"})
	require.NoError(t, err)
	r := sampleReply()
	r.Services = r.Services[2:3]
	assert.Equal(t, "Prot LocalAddress:Port Scheduler Flags\n"+
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"+
		"TCP  207.175.44.110:8080 rr\n"+
		"  -> 172.16.0.2:8080              Route   1      1          0         \n", output(cmd, r, nil))
}

// TestListVRRP: with a VRRP report, -L -n is ipvsadm's table byte for byte
// (the golden sample), then a blank line and the VRRP state.
func TestListVRRP(t *testing.T) {
	r := sampleReply()
	assert.Equal(t, golden(t, "L-n"), formatListAll(r, opts("-L", "-n"), nil), "no report: nothing added")
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	r.VRRP = &ctl.VRRPReport{PID: 4321, Reported: now.Add(-1500 * time.Millisecond), Instances: []ctl.VRRPStatus{
		{Instance: "VI_1", VRID: 51, Interface: "eth0", State: "MASTER", Priority: 150, VIPs: []netip.Addr{vip}},
		{Instance: "VI_2", VRID: 52, Interface: "eth1", State: "BACKUP", Priority: 90},
	}}
	r.Ownership = []ctl.VIPOwnership{{VIP: vip, Owned: true, Served: true, Instance: "VI_1", Iface: "eth0", GARPs: 5},
		{VIP: a("192.0.2.9"), Served: false, Instance: "VI_2"}}
	got := formatListAll(r, opts("-L", "-n"), nil)
	table, extra, ok := strings.Cut(got, "\n\n")
	require.True(t, ok, got)
	assert.Equal(t, golden(t, "L-n"), table+"\n")
	want := `VRRP (lvskeepalived pid 4321, reported 1s ago)
  Instance         VRID State   Prio Interface  VIPs
  VI_1               51 MASTER   150 eth0       207.175.44.110
  VI_2               52 BACKUP    90 eth1
  VIP              lvsd     Instance         Interface  GARPs
  207.175.44.110   owns     VI_1             eth0       5
  192.0.2.9        released VI_2             -          0 (no service uses it)
`
	assert.Equal(t, "\n"+want, formatVRRP(r, now))
	assert.True(t, strings.HasPrefix(extra, "VRRP (lvskeepalived pid 4321, reported "), extra)
}
