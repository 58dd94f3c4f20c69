package main

import (
	"context"
	"maps"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

const metricsURL = "http://127.0.0.1:9108/metrics"

// TestMetricsScrape is issue 15's acceptance points 1 and 2 on a running
// lvsd: with traffic through TCP, UDP and fwmark NAT services, the scrape
// passes promtool check metrics, and node_exporter's ipvs families carry
// the labels and values lvsadm -L -n --stats --exact and -L -n print.
func TestMetricsScrape(t *testing.T) {
	nstest.Require(t)
	testenv.Tools(t, "promtool", "socat", "curl")
	s := e2e.NewSelftest(t)
	d, r := s.Director, s.Real
	d.Sysctl("net.ipv4.ip_forward", "0") // the fwmark service's replies are lvsd's alone
	mark := "mark=1,proto=tcp,dst=" + e2e.VIP + ",dport=9090"
	e2e.StartLVSD(t, d, "veth10,veth12", "--metrics", "127.0.0.1:9108", "--mark", mark)
	for _, rule := range []string{
		"-A -t " + e2e.VIP + ":8080 -s rr",
		"-a -t " + e2e.VIP + ":8080 -r " + e2e.RIP + ":8080 -m -w 2",
		"-A -u " + e2e.VIP + ":5353 -s rr",
		"-a -u " + e2e.VIP + ":5353 -r " + e2e.RIP + ":5353 -m -w 1",
		"-A -f 1 -s rr",
		"-a -f 1 -r " + e2e.RIP + ":9090 -m -w 3",
	} {
		e2e.LVSADM(t, d, rule)
	}
	r.Run("ip", "link", "del", "veth20")
	r.Run(e2e.Bin(t, "lvsrs"), "start", "--mode", "nat", "--dip", e2e.DIP)
	t.Cleanup(func() { _, _ = r.Try(e2e.Bin(t, "lvsrs"), "stop") })
	for _, l := range []struct{ addr, id string }{{"TCP-LISTEN:8080", "tcp"}, {"TCP-LISTEN:9090", "fwm"}} {
		_, log := r.Start("socat", l.addr+",fork,reuseaddr", "SYSTEM:echo "+l.id)
		port := strings.TrimPrefix(l.addr, "TCP-LISTEN:")
		waitFor(t, l.id+" server", func() bool {
			o, _ := r.Try("ss", "-ltn", "sport = :"+port)
			return strings.Contains(o, "LISTEN")
		}, log.String)
	}
	_, udpLog := r.Start(e2e.Bin(t, "lvslab"), "service", "udp-echo", "--listen", ":5353", "--identity", "udp")
	waitFor(t, "udp server", func() bool {
		o, _ := r.Try("ss", "-lun", "sport = :5353")
		return strings.Contains(o, "5353")
	}, udpLog.String)

	err := s.Client.Do(func() error {
		for i, c := range []struct{ addr, want string }{
			{":8080", "tcp"}, {":8080", "tcp"}, {":8080", "tcp"}, {":9090", "fwm"}, {":9090", "fwm"},
		} {
			d := net.Dialer{Timeout: 3 * time.Second}
			id, err := request(&d, e2e.VIP+c.addr)
			if err != nil {
				return err
			}
			if id != c.want {
				t.Errorf("request %d to %s answered %q, want %q", i, c.addr, id, c.want)
			}
		}
		for range 2 {
			if id, err := udpRequest(e2e.VIP + ":5353"); err != nil || id != "udp" {
				t.Errorf("UDP request: %q, %v", id, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The same moment: with the traffic over, a listing taken between two
	// identical scrapes saw the counters the scrapes saw.
	var text, stats, list string
	deadline := time.Now().Add(15 * time.Second)
	for {
		text = d.Run("curl", "-s", metricsURL)
		stats = e2e.LVSADM(t, d, "-L -n --stats --exact")
		list = e2e.LVSADM(t, d, "-L -n")
		again := d.Run("curl", "-s", metricsURL)
		if maps.Equal(ipvsSeries(text), ipvsSeries(again)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the counters never held still:\n%s\n%s", text, again)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Acceptance 1: Prometheus's own linter.
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\nscrape:\n%s", err, out, text)
	}

	// Acceptance 2: node_exporter's families, labels and values.
	got := ipvsSeries(text)
	want := map[string]float64{}
	var total [5]float64
	var svc string
	for _, line := range strings.Split(stats, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 7 && (f[0] == "TCP" || f[0] == "UDP"):
			ap, err := netipAddrPort(f[1])
			if err != nil {
				t.Fatalf("lvsadm --stats line %q: %v", line, err)
			}
			svc = `local_address="` + ap.addr + `",local_mark="",local_port="` + ap.port + `",proto="` + f[0] + `"`
		case len(f) == 7 && f[0] == "FWM":
			n, _ := strconv.Atoi(f[1])
			svc = `local_address="",local_mark="` + strings.ToUpper(strconv.FormatUint(uint64(n)|1<<32, 16)[1:]) + `",local_port="0",proto="FWM"`
		case len(f) == 7 && f[0] == "->" && svc != "":
			ap, err := netipAddrPort(f[1])
			if err != nil {
				t.Fatalf("lvsadm --stats line %q: %v", line, err)
			}
			be := backend(svc, ap)
			for i, name := range []string{"connections", "incoming_packets", "outgoing_packets", "incoming_bytes", "outgoing_bytes"} {
				want["lvsd_backend_"+name+"_total{"+be+"}"] = num(t, f[len(f)-5+i])
			}
			continue
		default:
			continue
		}
		for i, name := range []string{"connections", "incoming_packets", "outgoing_packets", "incoming_bytes", "outgoing_bytes"} {
			v := num(t, f[len(f)-5+i])
			want["lvsd_service_"+name+"_total{"+svc+"}"] = v
			total[i] += v
		}
	}
	for i, name := range []string{"connections", "incoming_packets", "outgoing_packets", "incoming_bytes", "outgoing_bytes"} {
		want["node_ipvs_"+name+"_total"] = total[i]
	}
	svc = ""
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && (f[0] == "TCP" || f[0] == "UDP"):
			ap, _ := netipAddrPort(f[1])
			svc = `local_address="` + ap.addr + `",local_mark="",local_port="` + ap.port + `",proto="` + f[0] + `"`
		case len(f) >= 3 && f[0] == "FWM":
			n, _ := strconv.Atoi(f[1])
			svc = `local_address="",local_mark="` + strings.ToUpper(strconv.FormatUint(uint64(n)|1<<32, 16)[1:]) + `",local_port="0",proto="FWM"`
		case len(f) == 6 && f[0] == "->" && svc != "":
			ap, _ := netipAddrPort(f[1])
			be := backend(svc, ap)
			want["node_ipvs_backend_weight{"+be+"}"] = num(t, f[3])
			want["node_ipvs_backend_connections_active{"+be+"}"] = num(t, f[4])
			want["node_ipvs_backend_connections_inactive{"+be+"}"] = num(t, f[5])
		}
	}
	if len(want) != 5+3*5+3*5+3*3 {
		t.Fatalf("parsed %d expected series from lvsadm, want %d (3 services, 3 real servers):\n%s\n%s", len(want), 5+3*5+3*5+3*3, stats, list)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v); lvsadm says %v", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && strings.HasPrefix(k, "node_ipvs_") {
			t.Errorf("unexpected series %s", k)
		}
	}
	if want["node_ipvs_connections_total"] != 7 || want["node_ipvs_outgoing_packets_total"] == 0 {
		t.Errorf("traffic did not go through every service:\n%s", stats)
	}
	if t.Failed() {
		t.Logf("lvsadm -L -n --stats --exact:\n%s\nlvsadm -L -n:\n%s\nscrape:\n%s", stats, list, text)
	}

	// Content negotiation: OpenMetrics for a scraper that asks for it.
	om := d.Run("curl", "-s", "-H", "Accept: application/openmetrics-text; version=1.0.0", metricsURL)
	if !strings.HasSuffix(om, "# EOF\n") || !strings.Contains(om, "node_ipvs_connections_total") {
		t.Errorf("no OpenMetrics exposition when asked for one:\n%s", om)
	}
}

type addrPort struct{ addr, port string }

func netipAddrPort(s string) (addrPort, error) {
	h, p, err := net.SplitHostPort(s)
	return addrPort{h, p}, err
}

// backend is node_exporter's label set of a real server, sorted by name
// as the exposition prints it.
func backend(svc string, rs addrPort) string {
	// svc is local_address, local_mark, local_port, proto: insert the
	// remote labels after proto.
	return svc + `,remote_address="` + rs.addr + `",remote_port="` + rs.port + `"`
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("lvsadm printed %q where a number was expected", s)
	}
	return v
}

// ipvsSeries are the node_ipvs_*, lvsd_service_* and lvsd_backend_*
// samples of a scrape: "name{labels}" -> value.
func ipvsSeries(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "node_ipvs_") && !strings.HasPrefix(line, "lvsd_service_") && !strings.HasPrefix(line, "lvsd_backend_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

func udpRequest(addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	b := make([]byte, 512)
	n, err := c.Read(b)
	id, _, _ := strings.Cut(string(b[:n]), "\n") // udp-echo: identity, newline, the datagram
	return id, err
}
