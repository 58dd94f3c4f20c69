package ipvs

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"lvslab/config"
	"lvslab/ipvs/ctl"
	"lvslab/rewrite"
)

func udpFrame(tb testing.TB, src, dst rewrite.MAC, sip, dip string, sport, dport uint16, payload int) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(src[:]), DstMAC: net.HardwareAddr(dst[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(sip).To4(), DstIP: net.ParseIP(dip).To4()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	_ = udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(make([]byte, payload))); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// metricsEngine is the test engine with a TCP service (NAT), a UDP
// service and a fwmark service fed by a classifier rule, and traffic
// through each.
func metricsEngine(t *testing.T) *testEngine {
	te := newTestEngine(t, "-m -w 3")
	for _, line := range []string{
		"-A -u 10.0.0.100:53 -s rr",
		"-a -u 10.0.0.100:53 -r 172.16.0.2:5353 -m -w 2",
		"-A -f 7 -s rr",
		"-a -f 7 -r 172.16.0.2:0 -g -w 0",
		"-a -f 7 -r 172.16.0.3:0 -g -w 5",
	} {
		c, err := config.ParseArgs(strings.Fields(line))
		if err != nil {
			t.Fatal(err)
		}
		if err := te.Apply(c); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	rule, err := ParseMarkRule("mark=7,proto=tcp,dst=10.0.0.101,dport=443")
	if err != nil {
		t.Fatal(err)
	}
	if err := te.SetMarks([]MarkRule{rule}); err != nil {
		t.Fatal(err)
	}
	te.neigh.learn(netip.MustParseAddr("172.16.0.3"), rsMAC, te.int, te.clock, true)
	for i := range 3 {
		sport := uint16(40000 + i)
		te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", sport, 80, true, false, 0))
		te.feed(te.int, tcpFrame(t, rsMAC, intMAC, "172.16.0.2", "10.0.0.2", 8080, sport, true, true, 0))
		te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", sport, 80, false, true, 100))
	}
	te.feed(te.ext, udpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 5000, 53, 40))
	te.feed(te.int, udpFrame(t, rsMAC, intMAC, "172.16.0.2", "10.0.0.2", 5353, 5000, 80))
	te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.101", 41000, 443, true, false, 0))
	te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.101", 41000, 443, false, true, 10))
	// Drops of two classes.
	te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 42000, 80, false, true, 0)) // not a SYN
	te.feed(te.ext, udpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 5000, 54, 1))               // no service
	return te
}

// gather scrapes the engine's collector into name -> label string -> value.
func gather(t *testing.T, e *Engine) map[string]map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		m := map[string]float64{}
		for _, s := range mf.GetMetric() {
			m[labelString(s)] = value(mf.GetType(), s)
		}
		out[mf.GetName()] = m
	}
	return out
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() { // sorted by name, as node_exporter prints them
		parts = append(parts, l.GetName()+"="+strconv.Quote(l.GetValue()))
	}
	return strings.Join(parts, ",")
}

func value(t dto.MetricType, m *dto.Metric) float64 {
	if t == dto.MetricType_COUNTER {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestMetricsMatchLvsadm is acceptance point 2 at the engine: for TCP, UDP
// and fwmark services, node_exporter's families and labels, with the
// values lvsadm -L -n --stats and -L -n show, both taken from the engine
// at the same moment (no packet runs between the two).
func TestMetricsMatchLvsadm(t *testing.T) {
	te := metricsEngine(t)
	got := gather(t, te.Engine)
	reply := te.Handle(context.Background(), ctl.Peer{}, ctl.Request{Command: config.Command{Op: config.OpList}})
	if reply.Error != "" || len(reply.Services) != 3 {
		t.Fatalf("list: %+v", reply)
	}

	var total ctl.Stats
	backends := 0
	for _, st := range reply.Services {
		total.Conns += st.Stats.Conns
		total.InPkts += st.Stats.InPkts
		total.OutPkts += st.Stats.OutPkts
		total.InBytes += st.Stats.InBytes
		total.OutBytes += st.Stats.OutBytes
		la, lp, mark := st.Service.Addr.String(), strconv.Itoa(int(st.Service.Port)), ""
		if st.Service.Protocol == config.ProtoFwmark {
			la, lp, mark = "", "0", "00000007"
		}
		svc := `local_address="` + la + `",local_mark="` + mark + `",local_port="` + lp + `",proto="` + st.Service.Protocol.Name() + `"`
		for name, want := range map[string]uint64{
			"lvsd_service_connections_total":      st.Stats.Conns,
			"lvsd_service_incoming_packets_total": st.Stats.InPkts,
			"lvsd_service_outgoing_packets_total": st.Stats.OutPkts,
			"lvsd_service_incoming_bytes_total":   st.Stats.InBytes,
			"lvsd_service_outgoing_bytes_total":   st.Stats.OutBytes,
		} {
			if v, ok := got[name][svc]; !ok || v != float64(want) {
				t.Errorf("%s{%s} = %v (present %v), lvsadm says %d", name, svc, v, ok, want)
			}
		}
		for _, d := range st.Dests {
			backends++
			lbl := `local_address="` + la + `",local_mark="` + mark + `",local_port="` + lp + `",proto="` + st.Service.Protocol.Name() +
				`",remote_address="` + d.Dest.Addr.String() + `",remote_port="` + strconv.Itoa(int(d.Dest.Port)) + `"`
			for name, want := range map[string]uint64{
				"node_ipvs_backend_connections_active":   uint64(d.ActiveConns),
				"node_ipvs_backend_connections_inactive": uint64(d.InactConns),
				"node_ipvs_backend_weight":               uint64(d.Dest.Weight),
				"lvsd_backend_connections_total":         d.Stats.Conns,
				"lvsd_backend_incoming_packets_total":    d.Stats.InPkts,
				"lvsd_backend_outgoing_packets_total":    d.Stats.OutPkts,
				"lvsd_backend_incoming_bytes_total":      d.Stats.InBytes,
				"lvsd_backend_outgoing_bytes_total":      d.Stats.OutBytes,
			} {
				if v, ok := got[name][lbl]; !ok || v != float64(want) {
					t.Errorf("%s{%s} = %v (present %v), lvsadm says %d", name, lbl, v, ok, want)
				}
			}
		}
	}
	if n := len(got["node_ipvs_backend_weight"]); n != backends {
		t.Errorf("%d node_ipvs_backend_weight series, want one per real server (%d)", n, backends)
	}
	for name, want := range map[string]uint64{
		"node_ipvs_connections_total":      total.Conns,
		"node_ipvs_incoming_packets_total": total.InPkts,
		"node_ipvs_outgoing_packets_total": total.OutPkts,
		"node_ipvs_incoming_bytes_total":   total.InBytes,
		"node_ipvs_outgoing_bytes_total":   total.OutBytes,
	} {
		if v := got[name][""]; v != float64(want) {
			t.Errorf("%s = %v, want the sum over services %d", name, v, want)
		}
	}
	// The traffic really went through every kind of service.
	if total.Conns != 5 || got["node_ipvs_outgoing_packets_total"][""] == 0 {
		t.Errorf("totals %+v: want 5 connections (3 TCP, 1 UDP, 1 fwmark) and replies", total)
	}
	if v := got["node_ipvs_backend_weight"][`local_address="",local_mark="00000007",local_port="0",proto="FWM",remote_address="172.16.0.3",remote_port="0"`]; v != 5 {
		t.Errorf("fwmark backend weight %v, want 5", v)
	}
	if got["lvsd_drops_total"][`reason="not_syn"`] != 1 || got["lvsd_drops_total"][`reason="no_service"`] != 1 {
		t.Errorf("drops %v: want one not_syn and one no_service", got["lvsd_drops_total"])
	}
	if got["lvsd_conn_table_entries"][`kind="connection"`] != 5 {
		t.Errorf("conn table entries %v, want 5 connections", got["lvsd_conn_table_entries"])
	}
}

// TestMetricsTotalsSinceStart: as /proc/net/ip_vs_stats, the totals keep
// what deleted and singly zeroed services counted; only zeroing everything
// resets them.
func TestMetricsTotalsSinceStart(t *testing.T) {
	te := metricsEngine(t)
	before := gather(t, te.Engine)["node_ipvs_incoming_packets_total"][""]
	if before == 0 {
		t.Fatal("no incoming packets counted")
	}
	for _, line := range []string{"-Z -t 10.0.0.100:80", "-D -u 10.0.0.100:53"} {
		c, err := config.ParseArgs(strings.Fields(line))
		if err != nil {
			t.Fatal(err)
		}
		if err := te.Apply(c); err != nil {
			t.Fatal(err)
		}
		if after := gather(t, te.Engine)["node_ipvs_incoming_packets_total"][""]; after != before {
			t.Errorf("after %s: node_ipvs_incoming_packets_total %v, want %v", line, after, before)
		}
	}
	if err := te.Apply(config.Command{Op: config.OpZero}); err != nil {
		t.Fatal(err)
	}
	if after := gather(t, te.Engine)["node_ipvs_incoming_packets_total"][""]; after != 0 {
		t.Errorf("after -Z: node_ipvs_incoming_packets_total %v, want 0", after)
	}
}

// TestMetricsEveryReason: every value of the reason enum is exported,
// drops as one labelled family, the other events as their own counters,
// and the whole exposition passes Prometheus's linter (promtool's rules).
func TestMetricsEveryReason(t *testing.T) {
	te := metricsEngine(t)
	got := gather(t, te.Engine)
	for i, name := range reasonNames {
		if name == "" {
			t.Errorf("reason %d has no name", i)
			continue
		}
		if r, ok := strings.CutPrefix(name, dropPrefix); ok {
			if _, ok := got["lvsd_drops_total"][`reason="`+r+`"`]; !ok {
				t.Errorf("no lvsd_drops_total{reason=%q}", r)
			}
		} else if _, ok := got["lvsd_"+name+"_total"]; !ok {
			t.Errorf("no lvsd_%s_total", name)
		}
	}
	for i := 1; i < rewrite.NumReasons; i++ {
		if _, ok := got["lvsd_parse_errors_total"][`reason="`+reasonLabel(rewrite.Reason(i))+`"`]; !ok {
			t.Errorf("no parse error series for %v", rewrite.Reason(i))
		}
	}
	problems, err := testutil.CollectAndLint(te.Collector())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
