package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
// rule in the real server namespace, toggled), a UDP stream through a NAT
// service of lvsd (one packet per millisecond) must not stall: the longest
// gap between its arrivals at the real server, less the gap between the
// two sends, is what the path added. Beside it, in the same send loop, a
// reference stream goes from the same client to the same real server
// through the director's kernel (plain forwarding, no lvsd): what the
// machine adds to a path with no lvsd at all. Arrival times are the
// kernel's (SO_TIMESTAMPNS), so the receiving goroutines' own scheduling
// does not count; send times are taken before each write, so the sender's
// does not either; the sender sleeps between packets (clock_nanosleep to an
// absolute deadline) instead of spinning, which took one of the machine's
// two cores away from lvsd.
//
// lvsd runs with --rt-priority (LVSLAB_KA_RT, default 10; 0 runs it as an
// ordinary task), as a director is deployed next to other work: the
// kernel's IPVS runs in softirq, ahead of every task. It runs once per
// receive ring in LVSLAB_KA_RING (lvsd --rx-ring, default "v3,v2"), and
// for each once per GOMAXPROCS of lvsd in LVSLAB_KA_PROCS (comma-separated;
// default: lvsd's own choice only), a lab each, and ends with the figures
// side by side.
func BenchmarkFlapGap(b *testing.B) {
	dur := envSeconds("LVSLAB_KA_FLAP", 20*time.Second)
	rt := "10"
	if v, ok := os.LookupEnv("LVSLAB_KA_RT"); ok {
		rt = v
	}
	rings := strings.Split(os.Getenv("LVSLAB_KA_RING"), ",")
	if rings[0] == "" {
		rings = []string{"v3", "v2"}
	}
	procs := strings.Split(os.Getenv("LVSLAB_KA_PROCS"), ",")
	var rows []flapRow
	for _, ring := range rings {
		for _, p := range procs {
			name := "rx-ring=" + ring
			if p != "" {
				name += "/procs=" + p
			}
			b.Run(name, func(b *testing.B) { rows = append(rows, flapGap(b, dur, rt, ring, p)...) })
		}
	}
	if len(rows) == 0 {
		return
	}
	b.Logf("added gap through lvsd (--rt-priority %s), through the kernel only, and lvsd's own (beyond the kernel path's at the same packet), max (99.9%%), ms; the target: lvsd's own under 1 ms:", rt)
	b.Logf("  %-8s %-6s %-14s %-16s %-16s %-16s %-16s %-16s %s", "rx-ring", "procs", "phase", "lvsd", "kernel", "lvsd's own", "lvsd gaps >1 ms", "own gaps >1 ms", "lvsd lost")
	for _, r := range rows {
		phase := "no flaps"
		if r.flap {
			phase = "100 flapping"
		}
		procs := r.procs
		if procs == "" {
			procs = "auto"
		}
		b.Logf("  %-8s %-6s %-14s %-16s %-16s %-16s %-16d %-16d %d", r.ring, procs, phase,
			fmt.Sprintf("%.2f (%.2f)", ms(r.st.lvsd.maxExtra), ms(r.st.lvsd.p999)),
			fmt.Sprintf("%.2f (%.2f)", ms(r.st.kernel.maxExtra), ms(r.st.kernel.p999)),
			fmt.Sprintf("%.2f (%.2f)", ms(r.st.own.maxExtra), ms(r.st.own.p999)),
			r.st.lvsd.over1ms, r.st.own.over1ms, len(r.st.lvsd.lost))
	}
}

// flapRow is one phase of BenchmarkFlapGap, for the summary.
type flapRow struct {
	ring  string
	procs string // lvsd's GOMAXPROCS; "": the runtime's default
	flap  bool
	st    flapStats
}

// flapGap runs the two phases (no flaps, flapping) once per b.N with lvsd
// on the given receive ring (lvsd --rx-ring) and, unless procs is "", with
// GOMAXPROCS=procs in its environment.
func flapGap(b *testing.B, dur time.Duration, rt, ring, procs string) []flapRow {
	l, _ := scaleLab(b, "kaf")
	cli := nstest.New(b, "kafc")
	nstest.Veth(b, cli, "eth0", l.dir, "ext", 1500)
	cli.Addr("eth0", "198.51.100.2/24")
	cli.Route("10.0.0.200/32", "198.51.100.1", "eth0")
	cli.Route("172.16.0.0/24", "198.51.100.1", "eth0")
	l.dir.Addr("ext", "198.51.100.1/24")
	l.dir.Sysctl("net.ipv4.ip_forward", "1")
	l.rs.Route("198.51.100.0/24", "172.16.0.1", "eth0")
	lvsdArgs := []string{"--rx-ring", ring}
	if rt != "0" {
		lvsdArgs = append(lvsdArgs, "--rt-priority", rt)
	}
	// LVSLAB_KA_TRACE=DIR: lvsd writes a Go execution trace of the run
	// into DIR (lvsd --trace), stopped with SIGTERM after the phases.
	var traceFile string
	if dir := os.Getenv("LVSLAB_KA_TRACE"); dir != "" {
		traceFile = filepath.Join(dir, fmt.Sprintf("lvsd-%s-procs%s.trace", ring, procs))
		lvsdArgs = append(lvsdArgs, "--trace", traceFile)
	}
	// GOMAXPROCS for lvsd only: a child reads its environment at exec.
	if procs != "" {
		os.Setenv("GOMAXPROCS", procs)
	}
	lvsd, _ := e2e.StartLVSDProc(b, l.dir, "ext,eth0", lvsdArgs...)
	if procs != "" {
		os.Unsetenv("GOMAXPROCS")
	}
	stream := "virtual_server 10.0.0.200 9000 {\n    lb_kind NAT\n    protocol UDP\n    real_server 172.16.0.2 9000 {\n    }\n}\n"
	l.writeConf(scaleConf(1000, stream))
	l.rs.Run("nft", "add table inet flap\nadd set inet flap down { type ipv4_addr; }\nadd chain inet flap in { type filter hook input priority 0; }\nadd rule inet flap in ip daddr @down tcp dport 80 reject with tcp reset")
	viaLVSD, viaKernel := listenStamped(b, l.rs, "172.16.0.2:9000"), listenStamped(b, l.rs, "172.16.0.2:9001")
	l.start("-G")
	l.waitFor("all real servers in lvsd", func() bool { return strings.Count(l.save(), "\n-a ") >= 1001 }, l.kaLog.String)
	time.Sleep(3 * time.Second)
	var elems []string
	for k := 0; k < 100; k++ {
		elems = append(elems, rsAddr(k*10))
	}
	set := strings.Join(elems, ", ")
	var rows []flapRow
	b.ResetTimer()
	for range b.N {
		// Without flaps first: on a shared machine the scheduler's own
		// stalls are the floor the flapping run compares to.
		for _, flap := range []bool{false, true} {
			run0, wait0, _ := schedStat(lvsd.Process.Pid)
			ka0 := procTicks(b, l.ka.Process.Pid)
			load0 := loadAvg()
			st := l.flapRun(b, cli, viaLVSD, viaKernel, set, dur, flap)
			run1, wait1, _ := schedStat(lvsd.Process.Pid)
			kaCPU := float64(procTicks(b, l.ka.Process.Pid)-ka0) / st.took.Seconds()
			rows = append(rows, flapRow{ring: ring, procs: procs, flap: flap, st: st})
			what := "no flaps (baseline)"
			if flap {
				what = "100 real servers flapping every second"
				b.ReportMetric(ms(st.lvsd.maxExtra), "max-added-gap-ms")
				b.ReportMetric(ms(st.lvsd.p999), "p99.9-added-gap-ms")
				b.ReportMetric(ms(st.kernel.maxExtra), "kernel-added-gap-ms")
				b.ReportMetric(ms(st.own.maxExtra), "own-added-gap-ms")
				b.ReportMetric(float64(st.transitions)/st.took.Seconds(), "changes/s")
			} else {
				b.ReportMetric(ms(st.lvsd.maxExtra), "baseline-added-gap-ms")
				b.ReportMetric(ms(st.lvsd.p999), "baseline-p99.9-added-gap-ms")
				b.ReportMetric(ms(st.kernel.maxExtra), "baseline-kernel-added-gap-ms")
				b.ReportMetric(ms(st.own.maxExtra), "baseline-own-added-gap-ms")
			}
			b.Logf("%s for %v (%d toggles, %d lvsd changes logged; lvsd --rx-ring %s --rt-priority %s: CPU %.1f%%, waited %.0f ms for a CPU; lvskeepalived CPU %.1f%%; load %s→%s); two UDP streams of 1 packet/ms, %d packets each:",
				what, st.took.Round(100*time.Millisecond), st.flaps, st.transitions, ring, rt, float64(run1-run0)/float64(st.took)*100, float64(wait1-wait0)/1e6, kaCPU, load0, loadAvg(), st.sent)
			for _, s := range []struct {
				name string
				st   streamStats
			}{{"through lvsd (NAT)     ", st.lvsd}, {"through the kernel only", st.kernel}, {"lvsd's own (beyond)    ", st.own}} {
				b.Logf("  %s %d received (first lost %v); longest arrival gap %.2f ms, longest send gap %.2f ms; added by the path (arrival gap minus send gap) at most %.2f ms (%.1f s in), 99.9%% of the time under %.2f ms, %d gaps over 1 ms",
					s.name, s.st.got, s.st.lost, ms(s.st.maxRecv), ms(s.st.maxSend), ms(s.st.maxExtra), s.st.atMax.Seconds(), ms(s.st.p999), s.st.over1ms)
			}
		}
	}
	if traceFile != "" {
		for _, r := range rows {
			b.Logf("lvsd's own longest added gap in phase flap=%v: %.2f ms, the packet before it sent at %s", r.flap, ms(r.st.own.maxExtra), r.st.own.wallMax.UTC().Format(time.RFC3339Nano))
		}
		_ = lvsd.Process.Signal(syscall.SIGTERM)
		_ = lvsd.Wait()
		b.Logf("lvsd's execution trace: %s (go tool trace -pprof=sched %s)", traceFile, traceFile)
	}
	return rows
}

// loadAvg is the one-minute load average, to tell a run's noise by.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// stampedConn is a UDP socket whose datagrams carry the kernel's arrival
// time.
type stampedConn struct{ *net.UDPConn }

func listenStamped(b *testing.B, ns *nstest.NS, addr string) stampedConn {
	var c *net.UDPConn
	if err := ns.Do(func() error {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		c = pc.(*net.UDPConn)
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
			if serr == nil {
				// Room for every datagram of a run while the reader is
				// descheduled: a loss here would pass for lvsd's.
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
			}
		}); err != nil {
			return err
		}
		return serr
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return stampedConn{c}
}

// receive records the kernel's arrival time of every sequence number
// until no datagram has come for 2 s.
func (c stampedConn) receive(arr []int64) {
	buf, oob := make([]byte, 64), make([]byte, 128)
	for {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, oobn, _, _, err := c.ReadMsgUDP(buf, oob)
		if err != nil {
			return
		}
		if n < 8 {
			continue
		}
		seq := binary.BigEndian.Uint64(buf)
		if seq >= uint64(len(arr)) {
			continue
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
				arr[seq] = int64(binary.NativeEndian.Uint64(m.Data))*1e9 + int64(binary.NativeEndian.Uint64(m.Data[8:]))
			}
		}
	}
}

type streamStats struct {
	maxRecv, maxSend, maxExtra time.Duration
	// p999 is the added gap 999 packets in 1,000 stay under: what the
	// path does when the machine is not having one of its rare stalls.
	p999 time.Duration
	// over1ms counts the added gaps longer than 1 ms (the target's
	// margin); atMax is when the longest began, into the run.
	over1ms int
	atMax   time.Duration
	wallMax time.Time // when the longest began, to find it in lvsd --trace
	got     int
	lost    []int
}

// streamOf compares the arrivals with the sends, packet after packet
// received (a loss makes one longer gap on both sides).
func streamOf(arr, sent []int64) streamStats {
	var st streamStats
	var extra []time.Duration
	last := -1
	for i := range sent {
		if arr[i] == 0 {
			if len(st.lost) < 10 {
				st.lost = append(st.lost, i)
			}
			continue
		}
		st.got++
		if last >= 0 {
			gap, sgap := time.Duration(arr[i]-arr[last]), time.Duration(sent[i]-sent[last])
			st.maxRecv, st.maxSend = max(st.maxRecv, gap), max(st.maxSend, sgap)
			if gap-sgap > st.maxExtra {
				st.maxExtra, st.atMax, st.wallMax = gap-sgap, time.Duration(sent[last]-sent[0]), time.Unix(0, sent[last])
			}
			if gap-sgap > time.Millisecond {
				st.over1ms++
			}
			extra = append(extra, gap-sgap)
		}
		last = i
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		st.p999 = extra[len(extra)*999/1000]
	}
	return st
}

// beyond takes the kernel path's latency out of lvsd's arrivals: packet i
// of the two streams leaves the client within microseconds, so whatever
// delayed both (the sender descheduled, softirq work deferred to
// ksoftirqd behind other tasks, the real server's receiver) is the
// machine's, and lvsd's arrival less the kernel stream's latency at i
// leaves what lvsd's path added. A packet lost on either path is left out.
func beyond(arrL, arrK, sentK []int64) []int64 {
	out := make([]int64, len(arrL))
	for i := range arrL {
		if arrL[i] != 0 && arrK[i] != 0 {
			out[i] = arrL[i] - (arrK[i] - sentK[i])
		}
	}
	return out
}

type flapStats struct {
	lvsd, kernel streamStats
	// own is what lvsd's path added beyond the kernel path's at the same
	// moment (see beyond): the machine's own stalls, which delay both
	// streams, taken out.
	own                streamStats
	sent               int
	took               time.Duration // the sender falls behind when descheduled
	flaps, transitions int
}

// flapRun sends both streams for dur, toggling the reject set every second
// when flap.
func (l *lab) flapRun(b *testing.B, cli *nstest.NS, viaLVSD, viaKernel stampedConn, set string, dur time.Duration, flap bool) flapStats {
	var st flapStats
	logBefore := len(l.kaLog.String())
	n := int(dur / time.Millisecond)
	sentL, sentK := make([]int64, n), make([]int64, n)
	arrL, arrK := make([]int64, n), make([]int64, n)
	var rx sync.WaitGroup
	rx.Add(2)
	go func() { defer rx.Done(); viaLVSD.receive(arrL) }()
	go func() { defer rx.Done(); viaKernel.receive(arrK) }()
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
	t0 := time.Now()
	err := cli.Do(func() error {
		lc, err := net.Dial("udp", "10.0.0.200:9000")
		if err != nil {
			return err
		}
		defer lc.Close()
		kc, err := net.Dial("udp", "172.16.0.2:9001")
		if err != nil {
			return err
		}
		defer kc.Close()
		msg := make([]byte, 8)
		var next unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &next); err != nil {
			return err
		}
		for st.sent < n {
			next = unix.NsecToTimespec(next.Nano() + int64(time.Millisecond))
			for {
				err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &next, nil)
				if err != unix.EINTR {
					break
				}
			}
			binary.BigEndian.PutUint64(msg, uint64(st.sent))
			sentL[st.sent] = time.Now().UnixNano()
			if _, err := lc.Write(msg); err != nil {
				return err
			}
			sentK[st.sent] = time.Now().UnixNano()
			if _, err := kc.Write(msg); err != nil {
				return err
			}
			st.sent++
			var now unix.Timespec
			if unix.ClockGettime(unix.CLOCK_MONOTONIC, &now) == nil && now.Nano()-next.Nano() > int64(time.Millisecond) {
				next = now // descheduled: carry on from now, not in a burst
			}
		}
		return nil
	})
	st.took = time.Since(t0)
	close(stop)
	<-flapDone
	if err != nil {
		b.Fatal(err)
	}
	rx.Wait()
	st.lvsd, st.kernel = streamOf(arrL, sentL), streamOf(arrK, sentK)
	st.own = streamOf(beyond(arrL, arrK, sentK), sentL)
	log := l.kaLog.String()[logBefore:]
	st.transitions = strings.Count(log, "Removing service") + strings.Count(log, "Adding service")
	return st
}

// schedStat sums /proc/PID/task/*/schedstat: nanoseconds on a CPU,
// nanoseconds runnable waiting for one, timeslices.
func schedStat(pid int) (run, wait, slices int64) {
	dirs, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, d := range dirs {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, d.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(st))
		if len(f) < 3 {
			continue
		}
		a, _ := strconv.ParseInt(f[0], 10, 64)
		w, _ := strconv.ParseInt(f[1], 10, 64)
		k, _ := strconv.ParseInt(f[2], 10, 64)
		run, wait, slices = run+a, wait+w, slices+k
	}
	return run, wait, slices
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func envSeconds(name string, def time.Duration) time.Duration {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return time.Duration(v) * time.Second
	}
	return def
}
