package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
)

// rsAddr is the k-th checked real server: 10.2.0.0/16 is local in the
// real server namespace (one "local" route, one wildcard listener), so
// 10,000 real servers cost one socket there, and the director reaches
// them through one neighbour.
func rsAddr(k int) string { return fmt.Sprintf("10.2.%d.%d", k/250, k%250+1) }

// scaleConf is n TCP_CHECKed real servers, 100 per virtual server, DR.
func scaleConf(n int, extra string) string {
	var b strings.Builder
	b.WriteString("global_defs {\n    router_id bench\n}\n")
	for v := 0; v*100 < n; v++ {
		fmt.Fprintf(&b, "virtual_server 10.0.0.100 %d {\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n", 1000+v)
		for k := v * 100; k < min(n, (v+1)*100); k++ {
			fmt.Fprintf(&b, "    real_server %s %d {\n        TCP_CHECK {\n            connect_port 80\n            connect_timeout 2\n            retry 0\n            warmup 1\n        }\n    }\n", rsAddr(k), 1000+v)
		}
		b.WriteString("}\n")
	}
	b.WriteString(extra)
	return b.String()
}

// scaleLab: the director (lvsd, lvskeepalived) and the real server
// namespace with 10.2.0.0/16 local and a listener on :80 counting accepts.
func scaleLab(b *testing.B, name string) (*lab, *atomic.Int64) {
	l := newLabNoLVSD(b, name, "172.16.0.2")
	l.rs.Run("ip", "route", "add", "local", "10.2.0.0/16", "dev", "lo")
	l.dir.Route("10.2.0.0/16", "172.16.0.2", "eth0")
	var accepts atomic.Int64
	var ln net.Listener
	if err := l.rs.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "0.0.0.0:80")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	}()
	return l, &accepts
}

func procTicks(b testing.TB, pid int) int {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

func procRSS(b testing.TB, pid int) int {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == "VmRSS" {
			kb, _ := strconv.Atoi(strings.Fields(v)[0])
			return kb
		}
	}
	return 0
}

// BenchmarkCheckScale: lvskeepalived's CPU and RSS with 1,000 and 10,000
// TCP_CHECKed real servers at delay_loop 1 (keepalived before 2.0.8 died
// past about 1,024: FD_SETSIZE), and the checks per second the real
// servers saw.
func BenchmarkCheckScale(b *testing.B) {
	window := envSeconds("LVSLAB_KA_WINDOW", 10*time.Second)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("rs=%d", n), func(b *testing.B) {
			l, accepts := scaleLab(b, "kas")
			e2e.StartLVSD(b, l.dir, "eth0")
			l.writeConf(scaleConf(n, ""))
			t0 := time.Now()
			l.start("-G")
			l.waitFor("all real servers in lvsd", func() bool {
				return strings.Count(l.save(), "\n-a ") >= n
			}, l.kaLog.String)
			programmed := time.Since(t0)
			time.Sleep(3 * time.Second) // warmup: first checks spread over a second
			b.ResetTimer()
			for range b.N {
				pid := l.ka.Process.Pid
				c0, a0, w0 := procTicks(b, pid), accepts.Load(), time.Now()
				time.Sleep(window)
				el := time.Since(w0).Seconds()
				cpu := float64(procTicks(b, pid)-c0) / 100 / el * 100
				rate := float64(accepts.Load()-a0) / el
				rss := procRSS(b, pid)
				b.Logf("%d real servers: lvsd programmed in %.1f s; %.0f checks/s seen by the real servers; lvskeepalived CPU %.1f%% of one core, VmRSS %d KiB",
					n, programmed.Seconds(), rate, cpu, rss)
				b.ReportMetric(cpu, "cpu-%")
				b.ReportMetric(float64(rss)/1024, "rss-MiB")
				b.ReportMetric(rate, "checks/s")
			}
			if s := l.kaLog.String(); strings.Contains(s, "failed") {
				b.Logf("some checks failed:\n%s", s[:min(len(s), 2000)])
			}
		})
	}
}

// BenchmarkFlapGap: while 100 real servers flap every second (a reject
// rule in the real server namespace, toggled), a UDP stream through a
// NAT service of lvsd (one packet per millisecond) must not stall: the
// longest gap between arrivals at its real server, against the longest
// gap between sends.
func BenchmarkFlapGap(b *testing.B) {
	dur := envSeconds("LVSLAB_KA_FLAP", 20*time.Second)
	l, _ := scaleLab(b, "kaf")
	cli := nstest.New(b, "kafc")
	nstest.Veth(b, cli, "eth0", l.dir, "ext", 1500)
	cli.Addr("eth0", "198.51.100.2/24")
	cli.Route("10.0.0.200/32", "198.51.100.1", "eth0")
	l.dir.Addr("ext", "198.51.100.1/24")
	l.rs.Route("198.51.100.0/24", "172.16.0.1", "eth0")
	e2e.StartLVSD(b, l.dir, "ext,eth0")
	stream := "virtual_server 10.0.0.200 9000 {\n    lb_kind NAT\n    protocol UDP\n    real_server 172.16.0.2 9000 {\n    }\n}\n"
	l.writeConf(scaleConf(1000, stream))
	l.rs.Run("nft", "add table inet flap\nadd set inet flap down { type ipv4_addr; }\nadd chain inet flap in { type filter hook input priority 0; }\nadd rule inet flap in ip daddr @down tcp dport 80 reject with tcp reset")
	var udp net.PacketConn
	if err := l.rs.Do(func() error {
		var err error
		udp, err = net.ListenPacket("udp", "172.16.0.2:9000")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { udp.Close() })
	l.start("-G")
	l.waitFor("all real servers in lvsd", func() bool { return strings.Count(l.save(), "\n-a ") >= 1001 }, l.kaLog.String)
	time.Sleep(3 * time.Second)
	var elems []string
	for k := 0; k < 100; k++ {
		elems = append(elems, rsAddr(k*10))
	}
	set := strings.Join(elems, ", ")
	b.ResetTimer()
	for range b.N {
		// The same stream without flaps first: on a shared machine the
		// scheduler's own stalls are the floor the flapping run compares to.
		for _, flap := range []bool{false, true} {
			st := l.flapRun(b, cli, udp, set, dur, flap)
			what := "no flaps (baseline)"
			if flap {
				what = "100 real servers flapping every second"
				b.ReportMetric(ms(st.maxRecv), "max-gap-ms")
				b.ReportMetric(ms(st.maxExtra), "max-added-gap-ms")
			} else {
				b.ReportMetric(ms(st.maxExtra), "baseline-added-gap-ms")
			}
			b.Logf("%s for %v (%d toggles, %d lvsd changes logged): UDP stream 1 packet/ms through lvsd, %d sent, %d received (first lost seqs %v); longest gap at the real server %.2f ms, between sends %.2f ms, added by the path (arrival gap minus send gap) %.2f ms",
				what, dur, st.flaps, st.transitions, st.sent, st.got, st.lost, ms(st.maxRecv), ms(st.maxSend), ms(st.maxExtra))
		}
	}
}

type flapStats struct {
	maxRecv, maxSend, maxExtra time.Duration
	sent, got                  int
	lost                       []uint64
	flaps, transitions         int
}

// flapRun sends the stream for dur, toggling the reject set every second
// when flap.
func (l *lab) flapRun(b *testing.B, cli *nstest.NS, udp net.PacketConn, set string, dur time.Duration, flap bool) flapStats {
	var st flapStats
	logBefore := len(l.kaLog.String())
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 64)
		var last time.Time
		var lastSent int64
		next := uint64(0)
		for {
			_ = udp.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			now := time.Now()
			if n < 16 {
				continue
			}
			seq, sentAt := binary.BigEndian.Uint64(buf), int64(binary.BigEndian.Uint64(buf[8:]))
			for ; next < seq && len(st.lost) < 20; next++ {
				st.lost = append(st.lost, next)
			}
			next = seq + 1
			if !last.IsZero() {
				gap := now.Sub(last)
				st.maxRecv = max(st.maxRecv, gap)
				// what the path added: the arrival gap beyond the send gap
				st.maxExtra = max(st.maxExtra, gap-time.Duration(sentAt-lastSent))
			}
			last, lastSent = now, sentAt
			st.got++
		}
	}()
	stop := make(chan struct{})
	flapDone := make(chan struct{})
	go func() {
		defer close(flapDone)
		if !flap {
			return
		}
		down := false
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				if down {
					l.rs.Run("nft", "flush set inet flap down")
				}
				return
			case <-tk.C:
			}
			if down {
				l.rs.Run("nft", "flush set inet flap down")
			} else {
				l.rs.Run("nft", "add element inet flap down { "+set+" }")
			}
			down = !down
			st.flaps++
		}
	}()
	err := cli.Do(func() error {
		c, err := net.Dial("udp", "10.0.0.200:9000")
		if err != nil {
			return err
		}
		defer c.Close()
		msg := make([]byte, 16)
		end := time.Now().Add(dur)
		next := time.Now()
		var last time.Time
		for time.Now().Before(end) {
			next = next.Add(time.Millisecond)
			for time.Now().Before(next) {
			} // spin: a timer's jitter would be the sender's gap, not lvsd's
			now := time.Now()
			if !last.IsZero() {
				st.maxSend = max(st.maxSend, now.Sub(last))
			}
			last = now
			binary.BigEndian.PutUint64(msg, uint64(st.sent))
			binary.BigEndian.PutUint64(msg[8:], uint64(now.UnixNano()))
			if _, err := c.Write(msg); err == nil {
				st.sent++
			}
		}
		return nil
	})
	close(stop)
	<-flapDone
	if err != nil {
		b.Fatal(err)
	}
	<-recvDone
	log := l.kaLog.String()[logBefore:]
	st.transitions = strings.Count(log, "Removing service") + strings.Count(log, "Adding service")
	return st
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func envSeconds(name string, def time.Duration) time.Duration {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return time.Duration(v) * time.Second
	}
	return def
}
