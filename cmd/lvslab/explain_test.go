package main

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	segcap "lvslab/sim/capture"
	"lvslab/sim/report"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
)

const explainSpec = `
name: explain-dr
segments: {lan: {subnets: 10.0.0.0/24}}
nodes:
  client:
    role: client
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.10/24, mac: "02:00:00:00:00:0a"}]
  director:
    role: director
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.2/24, mac: "02:00:00:00:00:02"}]
    director: {rules: ["-A -t 10.0.0.100:80 -s rr", "-a -t 10.0.0.100:80 -r 10.0.0.11:80 -g"]}
  rs1:
    role: realserver
    interfaces: [{name: eth0, segment: lan, addresses: 10.0.0.11/24, mac: "02:00:00:00:00:11"}]
    realserver: {mode: dr}
    services: [{kind: http-echo, listen: ":80"}]
traffic:
  - {name: web, from: client, kind: http, target: "http://10.0.0.100/"}
`

// explainRun writes a run directory as a DR run leaves it: the resolved
// spec, the segment capture of one connection, optionally its records.
func explainRun(t *testing.T, records bool) string {
	t.Helper()
	s, err := spec.Parse([]byte(explainSpec), "explain.yaml", spec.Options{})
	require.NoError(t, err)
	dir := t.TempDir()
	b, err := spec.Marshal(s)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "resolved.yaml"), b, 0o644))

	base := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	type fr struct {
		at             time.Duration
		src, dst       string
		ipSrc, ipDst   string
		sport, dport   uint16
		syn, ack       bool
		seqNum, ackNum uint32
	}
	frames := []fr{
		{time.Millisecond, "02:00:00:00:00:0a", "02:00:00:00:00:02", "10.0.0.10", "10.0.0.100", 40000, 80, true, false, 1000, 0},
		{1200 * time.Microsecond, "02:00:00:00:00:02", "02:00:00:00:00:11", "10.0.0.10", "10.0.0.100", 40000, 80, true, false, 1000, 0},
		{1500 * time.Microsecond, "02:00:00:00:00:11", "02:00:00:00:00:0a", "10.0.0.100", "10.0.0.10", 80, 40000, true, true, 5000, 1001},
	}
	path := segcap.SegmentFile(dir, "lan")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	require.NoError(t, err)
	w, err := pcapgo.NewNgWriterInterface(f, pcapgo.NgInterface{Name: "lan", LinkType: layers.LinkTypeEthernet}, pcapgo.DefaultNgWriterOptions)
	require.NoError(t, err)
	for _, x := range frames {
		src, _ := net.ParseMAC(x.src)
		dst, _ := net.ParseMAC(x.dst)
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(x.ipSrc).To4(), DstIP: net.ParseIP(x.ipDst).To4()}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(x.sport), DstPort: layers.TCPPort(x.dport), SYN: x.syn, ACK: x.ack, Seq: x.seqNum, Ack: x.ackNum, Window: 1000}
		require.NoError(t, tcp.SetNetworkLayerForChecksum(ip))
		buf := gopacket.NewSerializeBuffer()
		require.NoError(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			&layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}, ip, tcp))
		data := buf.Bytes()
		require.NoError(t, w.WritePacket(gopacket.CaptureInfo{Timestamp: base.Add(x.at), CaptureLength: len(data), Length: len(data)}, data))
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	if records {
		require.NoError(t, report.SaveRecords(dir, "web", []report.Record{{
			Request: runner.Request{Seq: 1, Backend: "rs1", Local: netip.MustParseAddrPort("10.0.0.10:40000"), Remote: netip.MustParseAddrPort("10.0.0.100:80")},
			Start:   base.Add(time.Millisecond),
		}}))
	}
	return dir
}

func explain(args ...string) (int, string, string) {
	var o, e bytes.Buffer
	code := cmdExplain(args, &o, &e)
	return code, o.String(), e.String()
}

func TestExplain(t *testing.T) {
	dir := explainRun(t, true)
	code, out, errOut := explain(dir, "--traffic", "web", "--request", "1")
	require.Equal(t, exitPass, code, errOut)
	for _, want := range []string{
		"Walk of request 1 of traffic web (http): 10.0.0.10:40000 → 10.0.0.100:80",
		"① +0.000000s  segment lan  (frame 1 of pcap/lan.pcapng)",
		"   Ethernet    02:00:00:00:00:0a (client:eth0) → 02:00:00:00:00:02 (director:eth0)",
		"② +0.000200s  segment lan  (frame 2 of pcap/lan.pcapng)",
		"   Ethernet    02:00:00:00:00:02 (director:eth0) → 02:00:00:00:00:11 (rs1:eth0)",
		"   IPv4        10.0.0.10 → 10.0.0.100  TTL 64",
		"③ +0.000500s  segment lan  (frame 3 of pcap/lan.pcapng)",
		"   Ethernet    02:00:00:00:00:11 (rs1:eth0) → 02:00:00:00:00:0a (client:eth0)",
		"✔ the reply bypassed the director",
		"Forwarding: LVS-DR",
	} {
		assert.Contains(t, out, want)
	}
	assert.Empty(t, errOut)

	// Defaults: the first traffic, request 1; Markdown as walk.md.
	code, out, _ = explain("--markdown", dir)
	assert.Equal(t, exitPass, code)
	assert.Contains(t, out, "# Hop-by-hop walk\n")
	assert.Contains(t, out, "**LVS-DR**")

	code, _, errOut = explain(dir, "--request", "2")
	assert.Equal(t, exitInvalid, code)
	assert.Contains(t, errOut, "traffic web recorded 1 requests; there is no request 2")

	code, _, errOut = explain(dir, "--traffic", "nope")
	assert.Equal(t, exitInvalid, code)
	assert.Contains(t, errOut, `no traffic "nope"`)

	code, _, errOut = explain(t.TempDir())
	assert.Equal(t, exitInvalid, code)
	assert.Contains(t, errOut, "is not a run directory")

	code, _, _ = explain()
	assert.Equal(t, exitInvalid, code)
}

func TestExplainWithoutRecords(t *testing.T) {
	dir := explainRun(t, false)
	code, out, errOut := explain(dir)
	require.Equal(t, exitPass, code, errOut)
	assert.Contains(t, errOut, "no request records of web")
	assert.Contains(t, out, "new flow number 1 from the client")
	assert.Contains(t, out, "② +0.000200s  segment lan")

	code, _, errOut = explain(dir, "--request", "2")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, "request not found in the captures")
}
