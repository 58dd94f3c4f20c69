package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// Issue 11, SYN proxy, end to end with real peers: curl through a SYN-proxy
// NAT service moves several KB each way intact; during a paced hping3
// flood from random sources lvsd answers every flood SYN itself, creates
// connection entries only for the legitimate clients, and the real server
// sees no SYN but theirs (tshark on its interface); the legitimate
// requests keep succeeding.
func TestSynProxyEndToEnd(t *testing.T) {
	nstest.Require(t)
	testenv.Tools(t, "hping3", "curl", "tshark")
	cli, atk, dir, rs := floodLab(t, "p")

	// The real server: POST /echo answers "body:" + the request body +
	// 48 KiB of a known pattern, so both directions are checked.
	var ln net.Listener
	if err := rs.Do(func() (err error) { ln, err = net.Listen("tcp4", "172.16.0.2:80"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	down := pattern(48 << 10)
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Length", strconv.Itoa(5+len(body)+len(down)))
			_, _ = w.Write([]byte("body:"))
			_, _ = w.Write(body)
			_, _ = w.Write(down)
		}))
	}()

	e2e.StartLVSD(t, dir, "ext,atk,int", "--metrics", "127.0.0.1:9109")
	e2e.LVSADM(t, dir, "-A -t 203.0.113.5:80 -s rr -j enable")
	e2e.LVSADM(t, dir, "-a -t 203.0.113.5:80 -r 172.16.0.2:80 -m")
	if l := e2e.LVSADM(t, dir, "-L -n"); !strings.Contains(l, "TCP  203.0.113.5:80 rr synproxy") {
		t.Fatalf("lvsadm -L -n does not show the SYN proxy:\n%s", l)
	}
	if s := e2e.LVSADM(t, dir, "-S -n"); !strings.Contains(s, "-A -t 203.0.113.5:80 -s rr -j enable") {
		t.Fatalf("lvsadm -S -n:\n%s", s)
	}
	metrics := func() string { return dir.Run("curl", "-s", "http://127.0.0.1:9109/metrics") }

	// SYNs (without ACK) reaching the real server, from here on.
	tmp := t.TempDir()
	rsPcap := filepath.Join(tmp, "rs.pcap")
	capRS, capOut := rs.Start("tshark", "-q", "-n", "-i", "eth0", "-f", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "-w", rsPcap)
	waitCapturing(t, capOut)

	// curl, 12 KB up and 48 KB down.
	up := pattern(12 << 10)
	upFile := filepath.Join(tmp, "up.bin")
	if err := os.WriteFile(upFile, up, 0o644); err != nil {
		t.Fatal(err)
	}
	got := cli.Run("curl", "-s", "--max-time", "10", "--data-binary", "@"+upFile, "http://203.0.113.5/echo")
	if want := "body:" + string(up) + string(down); got != want {
		t.Fatalf("curl through the SYN proxy: %d bytes, want %d (identical: %v)", len(got), len(want), got == want)
	}
	before := metrics()
	if n := metric(before, "lvsd_synproxy_ok_ack_total"); n != 1 {
		t.Fatalf("synproxy_ok_ack after one curl = %d, want 1", n)
	}

	const seconds = 10
	// Paced in make test (-i u10, as the table tests): a full-rate flood
	// takes both cores for 13 s and starves the scenario catalogue that
	// make test runs beside this package. LVSLAB_SYNFLOOD_RATE=flood runs
	// hping3 --flood: 3.8 M cookies in 10 s, every request ok, no flood SYN
	// at the real server (README).
	rate := floodRate()
	flood, hlog := atk.Start("timeout", append([]string{"-s", "INT", strconv.Itoa(seconds), "hping3", "-S", "--rand-source", "-p", "80"}, append(rate, "203.0.113.5")...)...)
	waitFor(t, "the flood to reach lvsd", func() bool {
		return metric(metrics(), "lvsd_synproxy_syn_cnt_total") > 1000 || flood.Exited()
	}, hlog.String)
	requests, ok, maxEntries := 0, 0, 0
	var failures []string
	for !flood.Exited() {
		requests++
		if err := postEcho(cli, up[:4096], down); err == nil {
			ok++
		} else if len(failures) < 5 {
			failures = append(failures, err.Error())
		}
		c := e2e.LVSADM(t, dir, "-L -n -c")
		maxEntries = max(maxEntries, strings.Count(c, "\nTCP "))
	}
	stopCaptures(capRS)
	after := metrics()
	rsSYNs := tsharkCountFile(t, rsPcap)
	delta := func(name string) int { return metric(after, name) - metric(before, name) }
	t.Logf("%d s flood (hping3: %s): %d/%d requests ok, at most %d entries in lvsadm -L -n -c; lvsd: syn_cnt +%d ok_ack +%d bad_ack +%d rs_error +%d conns created +%d; the real server saw %d SYNs",
		seconds, strings.TrimSpace(lastLine(hlog.String())), ok, requests, maxEntries, delta("lvsd_synproxy_syn_cnt_total"),
		delta("lvsd_synproxy_ok_ack_total"), delta("lvsd_synproxy_bad_ack_total"), delta("lvsd_synproxy_rs_error_total"),
		delta("lvsd_conn_table_created_total"), rsSYNs)
	if len(failures) > 0 {
		t.Logf("failed requests: %s", strings.Join(failures, "; "))
	}
	if requests < 5 || ok*100 < requests*99 {
		t.Errorf("during the flood %d of %d requests completed, want at least 99%% of at least 5", ok, requests)
	}
	if syn := delta("lvsd_synproxy_syn_cnt_total"); syn < 10*requests {
		t.Errorf("lvsd answered %d SYNs during the flood: did the flood run? (hping3: %s)", syn, hlog.String())
	}
	// Every connection entry is a legitimate client's: one per request
	// that got as far as its ACK.
	if created := delta("lvsd_conn_table_created_total"); created < ok || created > requests {
		t.Errorf("%d connection entries created during the flood for %d requests (%d completed)", created, requests, ok)
	}
	if maxEntries > requests+1 {
		t.Errorf("lvsadm -L -n -c listed %d entries for %d requests", maxEntries, requests)
	}
	// The real server saw the curl's SYN and the requests', plus any SYN
	// lvsd re-sent, and not one flood SYN.
	if limit := 1 + requests + delta("lvsd_synproxy_rs_error_total"); rsSYNs > limit || rsSYNs < 1+ok {
		t.Errorf("the real server saw %d SYNs, want between %d and %d", rsSYNs, 1+ok, limit)
	}

	// Side by side: the same flood at a service without the SYN proxy
	// makes an entry per SYN.
	e2e.LVSADM(t, dir, "-A -t 203.0.113.5:81 -s rr")
	e2e.LVSADM(t, dir, "-a -t 203.0.113.5:81 -r 172.16.0.2:80 -m")
	base := metric(metrics(), "lvsd_conn_table_created_total")
	plain, plog := atk.Start("timeout", append([]string{"-s", "INT", "3", "hping3", "-S", "--rand-source", "-p", "81"}, append(rate, "203.0.113.5")...)...)
	_ = plain.Wait()
	if created := metric(metrics(), "lvsd_conn_table_created_total") - base; created < 1000 {
		t.Errorf("without the SYN proxy a 3 s flood created %d entries, want over 1000 (hping3: %s)", created, plog.String())
	} else {
		t.Logf("without the SYN proxy, a 3 s flood created %d connection entries", created)
	}
}

// pattern returns n bytes that differ from any shifted copy of themselves.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// postEcho sends body to /echo from inside ns on a connection of its own
// and checks the answer.
func postEcho(ns *nstest.NS, body, down []byte) error {
	return ns.Do(func() error {
		c, err := net.DialTimeout("tcp4", "203.0.113.5:80", 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		req := fmt.Sprintf("POST /echo HTTP/1.0\r\nHost: vip\r\nContent-Length: %d\r\n\r\n", len(body))
		if _, err := c.Write(append([]byte(req), body...)); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if want := append(append([]byte("body:"), body...), down...); !bytes.Equal(got, want) {
			return fmt.Errorf("answer of %d bytes differs from the %d expected", len(got), len(want))
		}
		return nil
	})
}

func tsharkCountFile(t *testing.T, file string) int {
	t.Helper()
	out, err := e2e.Tshark(file, "-T", "fields", "-e", "frame.number")
	if err != nil {
		t.Fatalf("tshark -r %s: %v", file, err)
	}
	return len(strings.Fields(out))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Issue 11, acceptance 3's transfers: with window scaling (7 offered to
// the client, the ends' own shifts to the real server), SACK and
// timestamps on, 16 MiB up and 16 MiB down arrive intact through the SYN
// proxy, and both halves negotiated all three. The time against
// the same transfer through a service without the proxy is logged, not
// judged (a benchmark's business, not a test's). The options are read from
// the handshakes tshark captured on both sides.
func TestSynProxyWindowScaleTransfer(t *testing.T) {
	nstest.Require(t)
	testenv.Tools(t, "tshark", "curl")
	cli := nstest.New(t, "wcli")
	dir := nstest.New(t, "wdir")
	rs := nstest.New(t, "wrs")
	nstest.Veth(t, cli, "eth0", dir, "ext", 1500)
	nstest.Veth(t, dir, "int", rs, "eth0", 1500)
	cli.Addr("eth0", "198.51.100.2/24")
	cli.Route("203.0.113.5/32", "198.51.100.1", "eth0")
	dir.Addr("ext", "198.51.100.1/24")
	dir.Addr("int", "172.16.0.1/24")
	rs.Addr("eth0", "172.16.0.2/24")
	rs.Run(e2e.Bin(t, "lvsrs"), "start", "--mode", "nat", "--dip", "172.16.0.1")
	t.Cleanup(func() { _, _ = rs.Try(e2e.Bin(t, "lvsrs"), "stop") })
	for _, ns := range []*nstest.NS{cli, rs} {
		ns.Sysctl("net.ipv4.tcp_window_scaling", "1")
		ns.Sysctl("net.ipv4.tcp_sack", "1")
		ns.Sysctl("net.ipv4.tcp_timestamps", "1")
	}

	const size = 16 << 20
	payload := pattern(size)
	var ln net.Listener
	if err := rs.Do(func() (err error) { ln, err = net.Listen("tcp4", "172.16.0.2:80"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveExchange(ln, payload)

	e2e.StartLVSD(t, dir, "ext,int", "--synproxy-wscale", "7", "--synproxy-timestamp", "--metrics", "127.0.0.1:9110")
	e2e.LVSADM(t, dir, "-A -t 203.0.113.5:80 -s rr -j enable")
	e2e.LVSADM(t, dir, "-a -t 203.0.113.5:80 -r 172.16.0.2:80 -m")
	e2e.LVSADM(t, dir, "-A -t 203.0.113.5:81 -s rr")
	e2e.LVSADM(t, dir, "-a -t 203.0.113.5:81 -r 172.16.0.2:80 -m")

	tmp := t.TempDir()
	cliPcap, rsPcap := filepath.Join(tmp, "cli.pcap"), filepath.Join(tmp, "rs.pcap")
	const synFilter = "tcp[tcpflags] & tcp-syn != 0"
	capCli, cliOut := cli.Start("tshark", "-q", "-n", "-i", "eth0", "-f", synFilter, "-w", cliPcap)
	capRS, rsOut := rs.Start("tshark", "-q", "-n", "-i", "eth0", "-f", synFilter, "-w", rsPcap)
	waitCapturing(t, cliOut)
	waitCapturing(t, rsOut)
	// Three rounds, the two services alternating, best time of each, so a
	// warm-up or a busy moment on a shared machine does not decide.
	times := [2]time.Duration{time.Hour, time.Hour}
	for round := range 6 {
		i, port := round%2, []string{"80", "81"}[round%2]
		var c net.Conn
		if err := cli.Do(func() (err error) {
			c, err = net.DialTimeout("tcp4", "203.0.113.5:"+port, 3*time.Second)
			return err
		}); err != nil {
			t.Fatalf("port %s: %v", port, err)
		}
		start := time.Now()
		err := exchange(c, payload)
		times[i] = min(times[i], time.Since(start))
		if err != nil {
			c.Close()
			t.Fatalf("port %s: %v", port, err)
		}
		c.Close()
	}
	// What the handshakes negotiated, from the SYNs and SYN/ACKs on each
	// side: all three options on both halves of the proxied connection,
	// shift 7 offered to the client.
	stopCaptures(capCli, capRS)
	all := "tcp.options.sack_perm && tcp.options.timestamp.tsval && tcp.options.wscale.shift"
	for _, c := range []struct{ file, filter string }{
		{cliPcap, "tcp.dstport == 80 && tcp.flags.ack == 0 && " + all},
		{cliPcap, "tcp.srcport == 80 && tcp.flags.ack == 1 && tcp.options.wscale.shift == 7 && " + all},
		{rsPcap, "tcp.dstport == 80 && tcp.flags.ack == 0 && " + all},
		{rsPcap, "tcp.srcport == 80 && tcp.flags.ack == 1 && " + all},
	} {
		out, err := e2e.Tshark(c.file, "-Y", c.filter)
		if err != nil || strings.TrimSpace(out) == "" {
			dump, _ := e2e.Tshark(c.file, "-V")
			t.Errorf("%s: no handshake packet matches %q (%v)\n%s", filepath.Base(c.file), c.filter, err, dump)
		}
	}
	m := dir.Run("curl", "-s", "http://127.0.0.1:9110/metrics")
	t.Logf("16 MiB each way, best of 3: %v through the SYN proxy, %v without (ratio %.2f); ack_storm drops %d, malformed %d",
		times[0].Round(time.Millisecond), times[1].Round(time.Millisecond), float64(times[0])/float64(times[1]),
		metric(m, "lvsd_synproxy_ack_storm_total"), metric(m, `lvsd_drops_total{reason="malformed"}`))
}

// serveExchange answers each connection: it reads the client's upload,
// says whether it matched ("same" or "diff"), sends the payload back and
// closes.
func serveExchange(ln net.Listener, payload []byte) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(c, got); err != nil {
				return
			}
			verdict := "same\n"
			if !bytes.Equal(got, payload) {
				verdict = "diff\n"
			}
			_, _ = c.Write([]byte(verdict))
			_, _ = c.Write(payload)
		}()
	}
}

// exchange uploads payload (while reading nothing back), then reads the
// server's verdict and the payload back.
func exchange(c net.Conn, payload []byte) error {
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := c.Write(payload); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	var verdict [5]byte
	if _, err := io.ReadFull(c, verdict[:]); err != nil {
		return fmt.Errorf("verdict: %w", err)
	}
	if string(verdict[:]) != "same\n" {
		return fmt.Errorf("the real server received a different upload")
	}
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("the download differs")
	}
	return nil
}
