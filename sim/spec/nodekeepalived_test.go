package spec

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const vrrpConf = `vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 1
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.0.0.50/24 dev eth0
    }
}
`

func parseNodeKA(t *testing.T, files map[string]string, src string) (*Spec, error) {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
	return Parse([]byte(src), filepath.Join(dir, "t.yaml"), Options{})
}

// TestNodeKeepalived: a host with keepalived: gets the process keepalived
// (Debian's by default), listed with the node's processes.
func TestNodeKeepalived(t *testing.T) {
	s, err := parseNodeKA(t, map[string]string{"a.conf": vrrpConf}, `name: t
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  a:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]
    keepalived: {config: a.conf}
`)
	require.NoError(t, err)
	n := s.Node("a")
	assert.True(t, s.RunsNodeKeepalived(n))
	assert.Equal(t, ImplKeepalived, n.Keepalived.Implementation, "the resolved spec names the default")
	assert.Contains(t, s.ProcessNames(n), ProcNodeKeepalived)
}

// TestNodeKeepalivedErrors: each mistake is reported at the scenario's
// line and column, naming the keepalived.conf line where it has one.
func TestNodeKeepalivedErrors(t *testing.T) {
	vs := vrrpConf + "virtual_server 10.0.0.50 80 {\n    lb_kind DR\n    protocol TCP\n    real_server 10.0.0.2 80 {\n        TCP_CHECK {\n        }\n    }\n}\n"
	wrongIf := "vrrp_instance VI_1 {\n    interface eth1\n    virtual_router_id 1\n    priority 100\n    virtual_ipaddress {\n        10.0.0.50\n    }\n}\n"
	_, err := parseNodeKA(t, map[string]string{"vs.conf": vs, "if.conf": wrongIf, "empty.conf": "global_defs {\n}\n",
		"inc.conf": "include part.conf\n", "part.conf": vrrpConf}, `name: t
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  a:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]
    keepalived: {config: vs.conf}
  b:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.2/24}]
    keepalived: {config: if.conf, args: [-f, x]}
  c:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.3/24}]
    keepalived: {config: empty.conf}
  d:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.4/24}]
    keepalived: {implementation: lvskeepalived, config: missing.conf}
  e:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.5/24}]
    keepalived: {implementation: keepalivd, config: vs.conf}
  f:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.6/24}]
    keepalived: {config: inc.conf, editable: true}
`)
	assert.ElementsMatch(t, []string{
		"t.yaml:7:26: nodes.a.keepalived.config: vs.conf:11: Debian's keepalived runs VRRP only in the lab (no kernel ip_vs): this virtual_server would be left out; use implementation: lvskeepalived on a director",
		"t.yaml:11:26: nodes.b.keepalived.config: if.conf:2: error: WARNING - interface eth1 for vrrp_instance VI_1 doesn't exist (node b has eth0)",
		"t.yaml:11:42: nodes.b.keepalived.args[0]: -f is the lab's to give (config: names the file, the pid files are in the node directory; -t/-T do not run the daemon)",
		"t.yaml:15:26: nodes.c.keepalived.config: empty.conf has no vrrp_instance: Debian's keepalived runs VRRP only in the lab, so it would have nothing to do",
		"t.yaml:19:34: nodes.d.keepalived.implementation: lvskeepalived programs the node's lvsd: node d runs none (role director, or director: {run: true})",
		"t.yaml:19:57: nodes.d.keepalived.config: cannot read " + "ELIDED",
		"t.yaml:23:34: nodes.e.keepalived.implementation: " + "ELIDED",
		// The unknown implementation is left at the default, whose
		// check still runs.
		"t.yaml:23:53: nodes.e.keepalived.config: vs.conf:11: Debian's keepalived runs VRRP only in the lab (no kernel ip_vs): this virtual_server would be left out; use implementation: lvskeepalived on a director",
		// An editable file is copied alone into the node directory.
		"t.yaml:27:46: nodes.f.keepalived.editable: inc.conf includes part.conf: an editable file is copied alone into the node directory, so it may include nothing",
	}, normalize(errorsOf(t, err)))
}

// normalize shortens the messages whose tail depends on the machine (a
// temporary path) or on the decoder's wording of enums.
func normalize(msgs []string) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		for _, prefix := range []string{"t.yaml:19:57: nodes.d.keepalived.config: cannot read ", "t.yaml:23:34: nodes.e.keepalived.implementation: "} {
			if strings.HasPrefix(m, prefix) {
				m = prefix + "ELIDED"
			}
		}
		out[i] = m
	}
	return out
}

// TestNodeKeepalivedLVS: implementation lvskeepalived on a director reads
// the file as director.keepalived does: its virtual servers are the
// node's rules (a real server's VIP defaults from them).
func TestNodeKeepalivedLVS(t *testing.T) {
	s, err := parseNodeKA(t, map[string]string{"ka.conf": kaGood}, `name: t
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  a:
    role: realserver
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]
    realserver: {mode: dr}
  d:
    role: director
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.9/24}]
    keepalived: {implementation: lvskeepalived, config: ka.conf}
`)
	require.NoError(t, err)
	d := s.Node("d")
	assert.True(t, s.RunsNodeKeepalived(d))
	assert.False(t, s.RunsKeepalived(d), "not also as director.keepalived")
	assert.Equal(t, []string{ProcLVSD, ProcNodeKeepalived}, s.ProcessNames(d))
	assert.Contains(t, s.Node("a").RealServer.VIPs, netip.MustParseAddr("10.0.0.100"))
}

// TestVRRPFaultValidation: blackhole and loss take proto: and segment:
// (instead of target:); node.kill takes a node and for:.
func TestVRRPFaultValidation(t *testing.T) {
	head := `name: t
duration: 10s
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  a:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]
timeline:
`
	_, err := parseNodeKA(t, nil, head+`  - {name: ok1, at: 1s, fault: blackhole, segment: lan, proto: vrrp, for: 2s}
  - {name: ok2, at: 1s, fault: loss, target: a, proto: "51", loss: 50%}
  - {name: ok3, at: 1s, fault: node.kill, target: a, signal: TERM, for: 2s}
`)
	require.NoError(t, err)
	_, err = parseNodeKA(t, nil, head+`  - {name: both, at: 1s, fault: blackhole, segment: lan, target: a}
  - {name: noseg, at: 1s, fault: blackhole, segment: wan}
  - {name: badproto, at: 1s, fault: blackhole, target: a, proto: sctp}
  - {name: nonode, at: 1s, fault: node.kill, target: b}
  - {name: noparam, at: 1s, fault: link.down, target: a, segment: lan}
`)
	assert.ElementsMatch(t, []string{
		"t.yaml:9:53: timeline[0].segment: give target: or segment:, not both",
		"t.yaml:10:54: timeline[1].segment: unknown segment \"wan\"",
		"t.yaml:11:66: timeline[2].proto: unknown protocol \"sctp\" (tcp, udp, icmp, vrrp, arp or a number)",
		"t.yaml:12:54: timeline[3].target: unknown node \"b\"",
		"t.yaml:13:55: timeline[4].target: \"a\" is not node:interface",
		"t.yaml:13:67: timeline[4].segment: segment is not a parameter of link.down",
	}, errorsOf(t, err))
}

// TestVIPCheckValidation: a vip: check names an address on one segment,
// asks one question, holder checks have a window, garps a comparison.
func TestVIPCheckValidation(t *testing.T) {
	head := `name: t
duration: 10s
segments: {lan: {subnets: 10.0.0.0/24}, wan: {subnets: 10.9.0.0/24}}
nodes:
  a:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]
expect:
`
	_, err := parseNodeKA(t, nil, head+`  - {name: ok1, during: [1s, 9s], vip: {address: 10.0.0.50, holders: 1}}
  - {name: ok2, during: [1s, 9s], vip: {address: 10.0.0.50, holder: a}}
  - {name: ok3, vip: {address: 10.0.0.50, garps: true, from: a}, ge: 1}
`)
	require.NoError(t, err)
	_, err = parseNodeKA(t, nil, head+`  - {name: off, during: [1s, 9s], vip: {address: 192.0.2.1, holders: 1}}
  - {name: seg, during: [1s, 9s], vip: {address: 10.0.0.50, segment: wan, holders: 1}}
  - {name: two, during: [1s, 9s], vip: {address: 10.0.0.50, holders: 1, holder: a}}
  - {name: nowin, vip: {address: 10.0.0.50, holder: b}}
  - {name: nocmp, vip: {address: 10.0.0.50, garps: true}}
  - {name: cmp, during: [1s, 9s], vip: {address: 10.0.0.50, holders: 1}, eq: 1}
`)
	assert.ElementsMatch(t, []string{
		"t.yaml:9:50: expect[0].vip.address: 192.0.2.1 is in no segment's subnets: name the segment (vip.segment) to probe it on",
		"t.yaml:10:50: expect[1].vip.address: 10.0.0.50 is not in a subnet of segment wan",
		"t.yaml:11:40: expect[2].vip: give exactly one of holders, holder and garps",
		"t.yaml:12:5: expect[3]: a vip holder check needs a window: during: [from, to], or after: with within:",
		"t.yaml:12:53: expect[3].vip.holder: unknown node \"b\"",
		"t.yaml:13:5: expect[4]: garps takes exactly one of eq, ne, lt, le, gt, ge",
		"t.yaml:14:5: expect[5]: comparisons (eq, lt, ...) go with metric, pcap or vip.garps",
	}, errorsOf(t, err))
}

func TestVRRPCheckValidation(t *testing.T) {
	head := `name: t
duration: 10s
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  a:
    role: host
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.1/24}]
expect:
`
	_, err := parseNodeKA(t, nil, head+`  - {name: ok, during: [1s, 9s], vrrp: {segment: lan, vrid: 1, masters: 1}}
  - {name: ok2, during: [1s, 9s], vrrp: {segment: lan, vrid: 255, master: a}}
  - {name: ok3, during: [1s, 9s], vrrp: {segment: lan, vrid: 3, routers: [a]}}
`)
	require.NoError(t, err)
	_, err = parseNodeKA(t, nil, head+`  - {name: bad, vrrp: {segment: wan, vrid: 256, masters: 1, master: b}}
`)
	assert.ElementsMatch(t, []string{
		"t.yaml:9:5: expect[0]: a vrrp check needs a window: during: [from, to], or after: with within:",
		"t.yaml:9:33: expect[0].vrrp.segment: unknown segment \"wan\"",
		"t.yaml:9:44: expect[0].vrrp.vrid: virtual_router_id 256 is not 1..255",
		"t.yaml:9:23: expect[0].vrrp: give exactly one of masters, master and routers",
		"t.yaml:9:69: expect[0].vrrp.master: unknown node \"b\"",
	}, errorsOf(t, err))
}
