package spec

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadNATExample(t *testing.T) {
	s, err := Load("../testdata/nat-000.yaml")
	require.NoError(t, err)

	assert.Equal(t, "nat-000", s.Name)
	assert.Equal(t, 20*time.Second, s.Duration.D())
	assert.Equal(t, int64(42), s.Seed)
	require.NotNil(t, s.Source)
	assert.Equal(t, netip.MustParsePrefix("203.0.113.0/24"), s.Source.AddressMap[0].Lab)
	assert.Equal(t, []Requirement{{"veth", false}, {"bridge", false}, {"lvsd", false}, {"lvsadm", false}, {"lvsrs", false}, {"nftables", true}}, s.Requires)

	// ${vip} expanded in rules, traffic and filters.
	dir := s.Node("director")
	require.NotNil(t, dir)
	require.NotNil(t, dir.Director)
	assert.Equal(t, "-a -t 203.0.113.5:80 -r 172.16.0.3:8000 -m -w 2", dir.Director.Rules[2])
	assert.Equal(t, "http://203.0.113.5/", s.Traffic[0].Target)

	// Role defaults: the NAT director forwards and serves all interfaces.
	assert.Equal(t, []string{"eth0", "eth1"}, dir.Director.Interfaces)
	assert.Equal(t, "lvsd", dir.Director.Binary)
	require.NotNil(t, dir.Director.Forwarding)
	assert.True(t, *dir.Director.Forwarding)
	assert.Contains(t, dir.Sysctls, Sysctl{"net.ipv4.ip_forward", "1"})
	assert.Contains(t, dir.Sysctls, Sysctl{"net.ipv4.conf.all.send_redirects", "0"})
	assert.Contains(t, s.Node("router").Sysctls, Sysctl{"net.ipv4.ip_forward", "1"})

	// The real servers learn VIP, interface and gateway from the rules.
	for _, name := range []string{"rs1", "rs2"} {
		rs := s.Node(name).RealServer
		require.NotNil(t, rs, name)
		assert.Equal(t, ModeNAT, rs.Mode)
		assert.Equal(t, []netip.Addr{netip.MustParseAddr("203.0.113.5")}, rs.VIPs, name)
		assert.Equal(t, "eth0", rs.Iface)
		assert.Equal(t, netip.MustParseAddr("172.16.0.1"), rs.DIP, name)
		assert.Empty(t, s.Node(name).Routes, "lvsrs sets a NAT real server's default route")
	}
	// The client routes via its router; the director keeps its own route.
	client := s.Node("client")
	require.Len(t, client.Routes, 1)
	assert.True(t, client.Routes[0].Dst.IsDefault())
	assert.Equal(t, netip.MustParseAddr("198.51.100.1"), client.Routes[0].Via)
	require.Len(t, dir.Routes, 1)

	// Interfaces: derived MACs, default offloads merged.
	eth := dir.Interface("eth0")
	assert.Equal(t, DefaultMAC("nat-000", "director", "eth0"), eth.MAC)
	assert.Equal(t, []Offload{{"gro", false}, {"lro", false}}, eth.Offloads)

	// Services and processes.
	assert.Equal(t, []string{"lvsrs", "http-echo", "ftp"}, s.ProcessNames(s.Node("rs2")))
	assert.Equal(t, []string{"lvsd"}, s.ProcessNames(dir))
	assert.Equal(t, "rs2", s.Node("rs2").Services[1].Identity)

	// Traffic defaults, timeline and expectations.
	web := s.Traffic[0]
	assert.Equal(t, TrafficHTTP, web.Kind)
	assert.InDelta(t, 60, web.Rate.PerSecond(), 1e-9)
	assert.Equal(t, time.Second, web.Timeout.D())
	assert.Equal(t, s.Duration, web.Stop)
	require.NotNil(t, web.NewConnection)
	assert.True(t, *web.NewConnection)
	assert.Equal(t, Size(64<<10), s.Traffic[1].Payload)
	assert.Equal(t, FaultProcessStop, s.Timeline[0].Fault)
	assert.Equal(t, 3*time.Second, s.Timeline[0].For.D())
	sh := s.Expect[0].Shares
	require.NotNil(t, sh)
	assert.Equal(t, []Weight{{"rs1", 1}, {"rs2", 2}}, sh.Weights)
	assert.Equal(t, Percent(5), sh.Tolerance)
	assert.Equal(t, Quantity{Text: "100%", Unit: UnitPercent, Value: 100}, *s.Expect[3].Eq)
	assert.Equal(t, Severity("warn"), s.Expect[4].Severity)
	assert.Equal(t, Severity("fail"), s.Expect[5].Severity)
	assert.Equal(t, "arp.opcode == 2 && arp.src.proto_ipv4 == 203.0.113.5", s.Expect[7].Pcap.Filter)
	assert.Equal(t, []string{"internet", "dmz", "lan"}, s.Capture.Segments)

	// Positions survive for later stages.
	p := s.Pos("nodes.rs2.services[1].listen")
	assert.Equal(t, Pos{65, 45}, p)
	assert.Equal(t, Error{File: "../testdata/nat-000.yaml", Line: 65, Column: 45, Path: "nodes.rs2.services[1].listen", Msg: "port busy"},
		s.Errorf("nodes.rs2.services[1].listen", "port busy"))
}

func TestLoadRangesAndMerges(t *testing.T) {
	s, err := Load("../testdata/lan3.yaml")
	require.NoError(t, err)
	require.Len(t, s.Nodes, 3)
	for i, name := range []string{"web1", "web2"} {
		n := s.Node(name)
		require.NotNil(t, n, name)
		assert.Equal(t, netip.MustParsePrefix("10.0.0."+string(rune('1'+i))+"/24"), n.Interfaces[0].Addresses[0])
		assert.Equal(t, "web server "+string(rune('1'+i)), n.Description)
		assert.Equal(t, name+"\n", *n.Files[0].Content)
		assert.Equal(t, FileMode(0o644), n.Files[0].Mode)
		assert.Equal(t, name, n.Services[0].Identity)
	}
	// No router on the segment and no director: the client gets no route.
	assert.Empty(t, s.Node("client").Routes)

	const merged = `
name: merge
segments: {lan: {subnets: [10.1.0.0/24]}}
nodes:
  a: &base
    role: host
    description: from the anchor
    interfaces: [{name: eth0, segment: lan, addresses: 10.1.0.1/24}]
  b:
    <<: *base
    interfaces: [{name: eth0, segment: lan, addresses: 10.1.0.2/24}]
`
	s, err = Parse([]byte(merged), "merge.yaml", Options{})
	require.NoError(t, err)
	assert.Equal(t, "from the anchor", s.Node("b").Description)
	assert.Equal(t, netip.MustParsePrefix("10.1.0.2/24"), s.Node("b").Interfaces[0].Addresses[0])
}

func TestVarsOverride(t *testing.T) {
	src := `
name: vars
vars: {addr: 10.9.0.1/24}
segments: {lan: {subnets: 10.9.0.0/24}}
nodes:
  a:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: "${addr}"}]
    processes: [{name: p, cmd: [echo, "${node_dir}", "$${HOME}", "$$"]}]
`
	s, err := Parse([]byte(src), "v.yaml", Options{Vars: map[string]string{"addr": "10.9.0.7/24"}})
	require.NoError(t, err)
	assert.Equal(t, netip.MustParsePrefix("10.9.0.7/24"), s.Node("a").Interfaces[0].Addresses[0])
	assert.Equal(t, []string{"echo", "${node_dir}", "${HOME}", "$$"}, s.Node("a").Processes[0].Cmd)
}

// base is a valid spec the error cases below extend; its lines are counted
// in the expected positions.
const base = `name: t
segments:
  lan: {subnets: [10.0.0.0/24]}
  wan: {subnets: [192.0.2.0/24]}
nodes:
  a:
    role: host
    interfaces:
      - {name: eth0, segment: lan, addresses: [10.0.0.1/24]}
`

func TestValidationErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want string // one of the errors, exactly
	}{
		{"unknown top-level key", "nmae: x\n" + base,
			`t.yaml:1:1: nmae: unknown field "nmae" (did you mean "name"?)`},
		{"unknown key in interface", base + "      - {name: eth1, segmnet: lan}\n",
			`t.yaml:10:22: nodes.a.interfaces[1].segmnet: unknown field "segmnet" (did you mean "segment"?)`},
		{"unknown key without suggestion", base + "    colour: blue\n",
			`t.yaml:10:5: nodes.a.colour: unknown field "colour"`},
		{"dangling segment", base + "  b:\n    role: host\n    interfaces:\n      - {name: eth0, segment: lna, addresses: [10.0.0.2/24]}\n",
			`t.yaml:13:31: nodes.b.interfaces[0].segment: unknown segment "lna" (did you mean "lan"?)`},
		{"overlapping address", base + "  b:\n    role: host\n    interfaces:\n      - {name: eth0, segment: lan, addresses: [10.0.0.2/16]}\n",
			`t.yaml:13:48: nodes.b.interfaces[0].addresses[0]: 10.0.0.2/16 overlaps 10.0.0.1/24 on a:eth0 with a different prefix length: one subnet, one mask on a segment`},
		{"overlapping prefix length", "name: t\nsegments: {lan: {}}\nnodes:\n  a:\n    role: host\n    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]\n  b:\n    role: host\n    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.2/25}]\n",
			`t.yaml:9:56: nodes.b.interfaces[0].addresses[0]: 10.0.0.2/25 overlaps 10.0.0.1/24 on a:eth0 with a different prefix length: one subnet, one mask on a segment`},
		{"duplicate address", base + "  b:\n    role: host\n    interfaces:\n      - {name: eth0, segment: lan, addresses: [10.0.0.1/24]}\n",
			`t.yaml:13:48: nodes.b.interfaces[0].addresses[0]: duplicate address 10.0.0.1 on segment lan: already on a:eth0 (nodes.a.interfaces[0].addresses[0])`},
		{"broadcast address", base + "      - {name: eth1, segment: lan, addresses: [10.0.0.255/24]}\n",
			`t.yaml:10:48: nodes.a.interfaces[1].addresses[0]: 10.0.0.255 is the broadcast address of 10.0.0.0/24`},
		{"overlapping subnets", "name: t\nsegments:\n  lan: {subnets: [10.0.0.0/24, 10.0.0.128/25]}\nnodes: {}\n",
			`t.yaml:3:32: segments.lan.subnets[1]: subnet 10.0.0.128/25 overlaps 10.0.0.0/24 of the same segment`},
		{"host bits in subnet", "name: t\nsegments:\n  lan: {subnets: 10.0.0.1/24}\nnodes: {}\n",
			`t.yaml:3:18: segments.lan.subnets[0]: subnet 10.0.0.1/24 has host bits set (did you mean 10.0.0.0/24?)`},
		{"duplicate node name", base + "  a:\n    role: host\n",
			`t.yaml:10:3: nodes.a: duplicate name "a" (first at line 6)`},
		{"node named like a segment", base + "  lan:\n    role: host\n",
			`t.yaml:10:3: nodes.lan: node "lan" has the same name as segment "lan": nodes and segments share one name space`},
		{"duplicate interface", base + "      - {name: eth0, segment: wan}\n",
			`t.yaml:10:16: nodes.a.interfaces[1].name: interface "eth0" defined twice in node a`},
		{"invalid duration", "duration: 5\n" + base,
			`t.yaml:1:11: duration: duration "5" needs a unit, e.g. 5ms or 5s`},
		{"bad duration text", "duration: 5 parsecs\n" + base,
			`t.yaml:1:11: duration: invalid duration "5 parsecs" (want e.g. 500ms, 2s, 1m)`},
		{"missing required", "segments: {}\nnodes: {}\n",
			`t.yaml:1:1: missing required field "name"`},
		{"wrong shape", "name: t\nsegments: [lan]\nnodes: {}\n",
			`t.yaml:2:11: segments: expected a mapping of name to entry, got a list`},
		{"bad enum", base + "  b: {role: realsever}\n",
			`t.yaml:10:13: nodes.b.role: unknown value "realsever" (did you mean "realserver"?); one of client, router, director, realserver, host`},
		{"process of unknown node", base + "timeline:\n  - {name: k, at: 1s, fault: process.kill, target: b/web}\n",
			`t.yaml:11:52: timeline[0].target: unknown node "b"`},
		{"process unknown in node", base + "    processes: [{name: web, cmd: [sleep, \"9\"]}]\ntimeline:\n  - {name: k, at: 1s, fault: process.kill, target: a/wbe}\n",
			`t.yaml:12:52: timeline[0].target: node a has no process "wbe" (did you mean "web"?)`},
		{"after unknown process", base + "    processes:\n      - {name: p, cmd: [\"true\"], after: [q]}\n",
			`t.yaml:11:42: nodes.a.processes[0].after[0]: node a has no process "q"; it has p`},
		{"process cycle", base + "    processes:\n      - {name: p, cmd: [\"true\"], after: [q]}\n      - {name: q, cmd: [\"true\"], after: [p]}\n",
			`t.yaml:11:7: nodes.a.processes: processes wait for each other: a/p -> a/q -> a/p`},
		{"undefined var", base + "    description: ${node_dri}\n",
			`t.yaml:10:18: nodes.a.description: undefined variable ${node_dri} (did you mean "node_dir"?)`},
		{"public address", base + "      - {name: eth1, segment: wan, addresses: [8.8.8.8/24]}\n",
			`t.yaml:10:48: nodes.a.interfaces[1].addresses[0]: public address 8.8.8.8: use a documentation range (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) and record the mapping in source.address_map`},
		{"non-net sysctl", base + "    sysctls: {kernel.panic: 1}\n",
			`t.yaml:10:15: nodes.a.sysctls["kernel.panic"]: sysctl "kernel.panic" is not a net.* key: only those belong to a network namespace`},
		{"sysctl of missing interface", base + "    sysctls: {net.ipv4.conf.eth9.rp_filter: 0}\n",
			`t.yaml:10:15: nodes.a.sysctls["net.ipv4.conf.eth9.rp_filter"]: sysctl net.ipv4.conf.eth9.rp_filter names interface "eth9", which node a does not have when sysctls are applied`},
		{"gateway off-link", base + "    routes: [{dst: default, via: 10.9.9.9}]\n",
			`t.yaml:10:34: nodes.a.routes[0].via: gateway 10.9.9.9 is not on a subnet of node a`},
		{"event ref", base + "    processes: [{name: p, cmd: [\"true\"]}]\ntimeline:\n  - {name: stop-p, at: 1s, fault: process.stop, target: a/p}\nexpect:\n  - {name: x, after: stop-p.end, process: {target: a/p, state: running}}\n",
			`t.yaml:14:22: expect[0].after: event stop-p has no for:, so there is no stop-p.end`},
		{"metric unit", base + "    services: [{kind: http-echo, listen: \":80\"}]\ntraffic:\n  - {name: web, from: a, kind: http, target: \"http://10.0.0.1/\"}\nexpect:\n  - {name: gap, metric: web.max_gap, lt: 5%}\n",
			`t.yaml:14:5: expect[0]: max_gap is a duration; compare it with one (got 5%)`},
		{"since on an event trigger", base + "timeline:\n  - {name: a1, at: 1s, fault: exec, target: a, cmd: [\"true\"]}\n  - {name: a2, when: {event: a1, since: a1}, fault: exec, target: a, cmd: [\"true\"]}\n",
			`t.yaml:12:41: timeline[1].when.since: since is for log and state triggers; an event trigger already waits for its event`},
		{"since unknown event", base + "timeline:\n  - {name: a2, when: {state: {addr: {node: a, has: 10.0.0.1}}, since: a0}, fault: exec, target: a, cmd: [\"true\"]}\n",
			`t.yaml:11:71: timeline[0].when.since: unknown event "a0"`},
		{"since loop", base + "timeline:\n  - {name: a1, when: {state: {addr: {node: a, has: 10.0.0.1}}, since: a2}, fault: exec, target: a, cmd: [\"true\"]}\n  - {name: a2, when: {event: a1}, fault: exec, target: a, cmd: [\"true\"]}\n",
			`t.yaml:11:22: timeline[0].when: events trigger each other in a loop`},
		{"fault parameter", base + "    processes: [{name: p, cmd: [\"true\"]}]\ntimeline:\n  - {name: k, at: 1s, fault: process.kill, target: a/p, loss: 5%}\n",
			`t.yaml:12:63: timeline[0].loss: loss is not a parameter of process.kill`},
		{"range and iter", base + "  b[1..2]: {role: host, description: \"{{i}}\"}\n  c: {role: host, description: \"{{i}}\"}\n",
			`t.yaml:11:32: nodes.c.description: {{i}} outside a name[a..b] range`},
		{"duplicate key", "name: t\nname: u\nsegments: {}\nnodes: {}\n",
			`t.yaml:2:1: name: duplicate key "name" (first at line 1)`},
		{"yaml syntax", "name: [t\n",
			`t.yaml:1:1: yaml: did not find expected ',' or ']'`},
		{"realserver without mode", base + "  b: {role: realserver}\n",
			`t.yaml:10:3: nodes.b: a realserver needs realserver: {mode: dr|tun|nat} (or role_defaults: false)`},
		{"bad director rule", base + "  d:\n    role: director\n    director: {rules: [\"-A -t 10.0.0.9:80 -s bogus\"]}\n",
			"t.yaml:12:24: nodes.d.director.rules[0]: unknown scheduler `bogus' (one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh|twos)"},
		{"mode disagrees with rules", base + "  d:\n    role: director\n    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.9/24}]\n    director: {rules: [\"-A -t 10.0.0.100:80\", \"-a -t 10.0.0.100:80 -r 192.0.2.5 -m\"]}\n  rs:\n    role: realserver\n    interfaces: [{name: eth0, segment: wan, addresses: 192.0.2.5/24}]\n    realserver: {mode: dr}\n",
			`t.yaml:17:24: nodes.rs.realserver.mode: director d forwards to 192.0.2.5 by Masq (-m), but this real server is prepared for dr`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "t.yaml", Options{})
			require.Error(t, err)
			var list ErrorList
			require.True(t, errors.As(err, &list), "error is an ErrorList: %v", err)
			require.NotEmpty(t, tc.want, "every case names the error it expects")
			for _, e := range list {
				if e.Error() == tc.want {
					return
				}
			}
			t.Fatalf("want\n  %s\ngot\n  %s", tc.want, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		})
	}
}

func TestModeDisagreesWithRules(t *testing.T) {
	src := base + `  d:
    role: director
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.9/24}]
    director: {rules: ["-A -t 10.0.0.100:80", "-a -t 10.0.0.100:80 -r 10.0.0.1 -m"]}
  rs:
    role: realserver
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]
    realserver: {mode: dr}
`
	_, err := Parse([]byte(src), "t.yaml", Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "t.yaml:17:24: nodes.rs.realserver.mode: director d forwards to 10.0.0.1 by Masq (-m), but this real server is prepared for dr")
}

func TestValidSpecHasNoErrors(t *testing.T) {
	_, err := Parse([]byte(base), "t.yaml", Options{})
	require.NoError(t, err)
}

// TestRoundTrip: the resolved spec written back loads to the same spec, and
// resolving it again changes nothing.
func TestRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("../testdata/*.yaml")
	more, _ := filepath.Glob("../../scenarios/*.yaml")
	files = append(files, more...)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := Load(f)
			require.NoError(t, err)
			out, err := Marshal(s)
			require.NoError(t, err)
			again, err := Parse(out, f, Options{})
			require.NoError(t, err, "resolved spec:\n%s", out)
			s.pos, again.pos = nil, nil
			if !reflect.DeepEqual(s, again) {
				out2, _ := Marshal(again)
				assert.Equal(t, string(out), string(out2))
				t.Fatal("specs differ after a round trip")
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	e := Error{File: "a.yaml", Line: 3, Column: 7, Path: "nodes.x", Msg: "bad"}
	assert.Equal(t, "a.yaml:3:7: nodes.x: bad", e.Error())
	assert.Equal(t, "<spec>:1:1: bad", Error{Msg: "bad"}.Error())
	l := ErrorList{e, {File: "a.yaml", Line: 1, Column: 1, Msg: "first"}}
	assert.Equal(t, "a.yaml:1:1: first\na.yaml:3:7: nodes.x: bad", l.sorted().Error())
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope.yaml:1:1: cannot read scenario: no such file or directory")
}

func TestFileReferences(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules"), []byte("-A -t 10.0.0.100:80 -s rr\n-a -t 10.0.0.100:80 -r 10.0.0.1:80 -g\n"), 0o644))
	src := base + `    realserver: {mode: dr}
    files: {/etc/x: {from: missing.txt}}
  d:
    role: director
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.9/24}]
    director: {rules_file: rules}
`
	_, err := Parse([]byte(src), filepath.Join(dir, "s.yaml"), Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "s.yaml:11:28: nodes.a.files[\"/etc/x\"].from: cannot read "+filepath.Join(dir, "missing.txt")+": no such file or directory")

	src = strings.Replace(src, "    files: {/etc/x: {from: missing.txt}}\n", "", 1)
	s, err := Parse([]byte(src), filepath.Join(dir, "s.yaml"), Options{})
	require.NoError(t, err)
	// VIPs come from the rules file too.
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.0.0.100")}, s.Node("a").RealServer.VIPs)
	require.NotNil(t, s.Node("d").Director.Forwarding)
	assert.False(t, *s.Node("d").Director.Forwarding, "a DR director does not forward")
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
