package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// Issue 8 item 9: a SYN flood (hping3 -S --flood --rand-source) against a
// director with --max-conns 5000 fills the table with SYN_RECV entries that
// live their full timeout, and legitimate clients are refused until they
// expire. With the defences on, lvsd keeps serving them during the flood and
// right after it; its counters say which defence acted.
//
// make test floods for 3 s with --drop-entry 1 and secure_tcp 1 set at run
// time (lvsadm --set-defense secure_tcp=1, checked with -L --defense). The
// acceptance measurement is LVSLAB_SYNFLOOD_FULL=1: a 10 s flood for each
// defence setting, figures in the log (only the settings meant to pass are
// judged). LVSLAB_SYNFLOOD_FLAGS replaces the judged setting's lvsd flags
// ("none": no flag, the defences off as on main before them), to show the
// defect.
func TestSYNFloodDefences(t *testing.T) {
	nstest.Require(t)
	testenv.Tools(t, "hping3", "curl", "socat")
	type setting struct {
		name    string
		flags   []string
		judge   bool
		runtime string // lvsadm --set-defense arguments, then -L --defense must read want
		want    string
	}
	settings := []setting{{"drop_entry+secure_tcp", []string{"--drop-entry", "1"}, true,
		"secure_tcp=1", "Defense (drop_entry drop_packet secure_tcp amemthresh am_droprate defence_tcp_drop defence_udp_drop): 1 0 1 1024 10 0 0\n"}}
	if v, ok := os.LookupEnv("LVSLAB_SYNFLOOD_FLAGS"); ok {
		settings[0].flags = strings.Fields(strings.ReplaceAll(v, "none", ""))
		settings[0].name = "flags " + v
		settings[0].runtime = ""
	}
	seconds := 10 // the acceptance's own flood length; a larger sample of requests during it
	if v := os.Getenv("LVSLAB_SYNFLOOD_FULL"); v != "" && v != "0" {
		seconds = 10
		settings = []setting{
			{"off", nil, false, "", ""},
			{"drop_entry", []string{"--drop-entry", "1"}, true, "", ""},
			settings[0],
			{"drop_entry+drop_packet", []string{"--drop-entry", "1", "--drop-packet", "1"}, false, "", ""},
			{"secure_tcp", []string{"--secure-tcp", "1"}, false, "", ""},
		}
	}
	for _, s := range settings {
		t.Run(s.name, func(t *testing.T) {
			r := synFlood(t, s.flags, seconds, s.runtime, s.want)
			t.Logf("%s, %d s flood: during %d/%d requests completed (%.1f%%), in the first 2 s after %d/%d, later %d/%d, first success %v after the end; lvsd: %s",
				s.name, seconds, r.duringOK, r.during, pct(r.duringOK, r.during), r.earlyOK, r.early, r.afterOK, r.after, r.firstAfter.Round(time.Millisecond), r.counters)
			if !s.judge {
				return
			}
			if r.during < 5 || r.duringOK*10 < r.during*9 {
				t.Errorf("during the flood %d of %d requests completed, want at least 90%% of at least 5", r.duringOK, r.during)
			}
			if r.afterOK != r.after {
				t.Errorf("from 2 s after the flood %d of %d requests completed, want all (in the first 2 s: %d of %d)", r.afterOK, r.after, r.earlyOK, r.early)
			}
			if r.reclaimed == 0 {
				t.Errorf("lvsd_defense_drop_entry_reclaimed_total is 0: drop_entry never made room (did the flood fill the table?)")
			}
		})
	}
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

type floodResult struct {
	during, duringOK, after, afterOK int
	early, earlyOK                   int // requests in the first 2 s after the flood (not judged)
	firstAfter                       time.Duration
	reclaimed                        int
	counters                         string
	failures                         []string // the first few failed requests
}

func synFlood(t *testing.T, defence []string, seconds int, runtime, want string) floodResult {
	cli, atk, dir, rs := floodLab(t, "f")
	_, rslog := rs.Start("socat", "TCP-LISTEN:80,fork,reuseaddr,backlog=1024", "SYSTEM:echo rs1")
	waitFor(t, "rs1 listening", func() bool {
		o, _ := rs.Try("ss", "-ltn", "sport = :80")
		return strings.Contains(o, "LISTEN")
	}, rslog.String)

	args := append([]string{"--max-conns", "5000", "--metrics", "127.0.0.1:9108"}, defence...)
	e2e.StartLVSD(t, dir, "ext,atk,int", args...)
	e2e.LVSADM(t, dir, "-A -t 203.0.113.5:80 -s rr")
	e2e.LVSADM(t, dir, "-a -t 203.0.113.5:80 -r 172.16.0.2:80 -m")
	if runtime != "" {
		e2e.LVSADM(t, dir, "--set-defense "+runtime)
		if got := e2e.LVSADM(t, dir, "-L --defense"); got != want {
			t.Fatalf("after lvsadm --set-defense %s, -L --defense reads %q, want %q", runtime, got, want)
		}
	}
	metrics := func() string { return dir.Run("curl", "-s", "http://127.0.0.1:9108/metrics") }

	var r floodResult
	try := func() bool {
		ok := false
		_ = cli.Do(func() error {
			d := net.Dialer{Timeout: 5 * time.Second}
			start := time.Now()
			id, err := request(&d, "203.0.113.5:80")
			ok = err == nil && id == "rs1"
			if !ok && len(r.failures) < 5 {
				r.failures = append(r.failures, fmt.Sprintf("%q %v after %v", id, err, time.Since(start).Round(time.Millisecond)))
			}
			return nil
		})
		return ok
	}
	if !try() {
		t.Fatal("no request gets through before the flood")
	}

	flood, hlog := atk.Start("timeout", append([]string{"-s", "INT", strconv.Itoa(seconds), "hping3", "-S", "--rand-source", "-p", "80"}, append(floodRate(), "203.0.113.5")...)...)
	// The flood is on once the table is full: with drop_entry, reclaims
	// start; without, refusals do.
	waitFor(t, "the flood to fill the table", func() bool {
		m := metrics()
		return metric(m, "lvsd_defense_drop_entry_reclaimed_total") > 0 || metric(m, `lvsd_drops_total{reason="conn_table_full"}`) > 0 ||
			metric(m, `lvsd_drops_total{reason="defense_drop_packet"}`) > 0 || flood.Exited()
	}, hlog.String)
	for !flood.Exited() {
		r.during++
		if try() {
			r.duringOK++
		}
		time.Sleep(50 * time.Millisecond)
	}
	// After the flood: the acceptance is "100% within 2 s after it ends",
	// so requests that start in the first 2 s are counted (and give the
	// first-success figure) but only those that start later must all
	// succeed. Ask at least 20 in all and at least 10 after the mark, so
	// the judged set never depends on how fast a loaded machine runs.
	end := time.Now()
	const settle = 2 * time.Second
	for judged := 0; r.after < 20 || judged < 10; {
		started := time.Since(end)
		ok := try()
		if ok && r.firstAfter == 0 {
			r.firstAfter = time.Since(end)
		}
		if started < settle {
			r.early++
			if ok {
				r.earlyOK++
			}
			continue
		}
		judged++
		r.after++
		if ok {
			r.afterOK++
		}
	}
	m := metrics()
	r.reclaimed = metric(m, "lvsd_defense_drop_entry_reclaimed_total")
	var parts []string
	for _, name := range []string{"lvsd_defense_drop_entry_reclaimed_total", "lvsd_defense_drop_entry_dropped_total", `lvsd_drops_total{reason="defense_drop_packet"}`,
		"lvsd_defense_secure_tcp_activations_total", `lvsd_drops_total{reason="conn_table_full"}`, "lvsd_conn_table_created_total", `lvsd_interface_rx_packets_total{iface="atk"}`,
		`lvsd_interface_drops_total{iface="atk",reason="ring_full"}`, `lvsd_interface_drops_total{iface="int",reason="ring_full"}`,
		`lvsd_interface_drops_total{iface="ext",reason="ring_full"}`, "lvsd_defense_drop_entry_recalled_total", `lvsd_drops_total{reason="not_syn"}`} {
		parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(name, "lvsd_"), metric(m, name)))
	}
	r.counters = strings.Join(parts, ", ")
	t.Logf("hping3: %s", strings.TrimSpace(hlog.String()))
	if len(r.failures) > 0 {
		t.Logf("failed requests: %s", strings.Join(r.failures, "; "))
	}
	return r
}

// floodRate is hping3's pacing. The defences are against a table a flood
// fills, so the judged flood fills the 5000-entry table in a fraction of a
// second and keeps it full (-i u10: about 20,000 SYNs a second here, every
// entry replaced four times a second) without exceeding what the director
// can forward: at hping3 --flood (280,000 a second on an idle 2-core
// machine) the real server's SYN-ACKs to the flood overflow the director's
// receive ring on its inside interface (interface_drops_total ring_full),
// and the legitimate SYN-ACK is lost with them, which is CPU exhaustion, a
// different attack that no table defence addresses. LVSLAB_SYNFLOOD_RATE=flood
// (or another -i value, "u5") changes it; the log line shows the counters
// either way.
func floodRate() []string {
	switch v := os.Getenv("LVSLAB_SYNFLOOD_RATE"); v {
	case "":
		return []string{"-i", "u10"}
	case "flood":
		return []string{"--flood"}
	default:
		return []string{"-i", v}
	}
}

// floodLab is the NAT director of the flood tests: a client (ext,
// 198.51.100.2) and an attacker (atk, 192.0.2.2) on their own links to the
// director, which reaches one NAT real server (172.16.0.2, lvsrs nat) on
// int; the VIP 203.0.113.5 is routed to the director from both sides.
func floodLab(t *testing.T, prefix string) (cli, atk, dir, rs *nstest.NS) {
	t.Helper()
	cli = nstest.New(t, prefix+"cli")
	atk = nstest.New(t, prefix+"atk")
	dir = nstest.New(t, prefix+"dir")
	rs = nstest.New(t, prefix+"rs")
	nstest.Veth(t, cli, "eth0", dir, "ext", 1500)
	nstest.Veth(t, atk, "eth0", dir, "atk", 1500)
	nstest.Veth(t, dir, "int", rs, "eth0", 1500)
	cli.Addr("eth0", "198.51.100.2/24")
	cli.Route("203.0.113.5/32", "198.51.100.1", "eth0")
	atk.Addr("eth0", "192.0.2.2/24")
	atk.Route("203.0.113.5/32", "192.0.2.1", "eth0")
	dir.Addr("ext", "198.51.100.1/24")
	dir.Addr("atk", "192.0.2.1/24")
	dir.Addr("int", "172.16.0.1/24")
	rs.Addr("eth0", "172.16.0.2/24")
	rs.Run(e2e.Bin(t, "lvsrs"), "start", "--mode", "nat", "--dip", "172.16.0.1")
	t.Cleanup(func() { _, _ = rs.Try(e2e.Bin(t, "lvsrs"), "stop") })
	return cli, atk, dir, rs
}
