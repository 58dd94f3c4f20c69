package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lvslab/config"
	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/pktgen"
	"lvslab/ipvs/ctl"
)

// BenchmarkControlPlane measures what rule changes cost the data path
// (issue 8, defect 6): a ping stream at the VIP every millisecond, answered
// by lvsd's receive worker, while (1) nothing happens, (2) real servers are
// added and removed at up to 1,000 changes per second over the control
// socket, (3) lvsadm -R loads 10,000 lines. It reports the longest gap
// between replies and the worst round trip of each phase, the change rate
// reached, and how long the -R took; then (4) lvsadm -L -n with the 2,001
// services and (5) lvsadm -L -n -c with 600,000 connections. It drives only the binaries (lvsd,
// lvsadm), so the same file measures any version of them.
//
//	go test -run '^$' -bench '^BenchmarkControlPlane$' -benchtime 1x -v ./cmd/lvsd
func BenchmarkControlPlane(b *testing.B) {
	nstest.Require(b)
	d := nstest.New(b, "bc-d")
	c := nstest.New(b, "bc-c")
	nstest.Veth(b, d, "eth0", c, "eth0", 1500)
	d.Addr("eth0", "10.0.0.1/24")
	c.Addr("eth0", "10.0.0.2/24")
	c.Route("10.0.0.100/32", "10.0.0.1", "eth0")
	e2e.StartLVSD(b, d, "eth0")
	e2e.LVSADM(b, d, "-A -t 10.0.0.100:80 -s rr")

	var cl *ctl.Client
	if err := d.Do(func() (err error) { cl, err = ctl.Dial(ctl.DefaultSocket); return err }); err != nil {
		b.Fatal(err)
	}
	defer cl.Close()

	p := startProber(b, c, "10.0.0.100")
	defer p.stop()
	for b.Loop() {
		// (1) idle
		idle := p.phase(func() { time.Sleep(2 * time.Second) })

		// (2) 1,000 changes per second for 3 s: a NAT real server added and
		// removed in turn (each change adds or removes guard elements).
		var changes int
		var changeErr error
		churn := p.phase(func() {
			add := mustParse(b, "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 -m")
			del := mustParse(b, "-d -t 10.0.0.100:80 -r 172.16.0.2:8080")
			start := time.Now()
			for time.Since(start) < 3*time.Second {
				if next := start.Add(time.Duration(changes) * time.Millisecond); time.Until(next) > 0 {
					time.Sleep(time.Until(next))
				}
				cmd := add
				if changes%2 == 1 {
					cmd = del
				}
				if _, err := cl.Do(ctl.Request{Command: cmd}); err != nil && changeErr == nil {
					changeErr = err
				}
				changes++
			}
		})
		if changeErr != nil {
			b.Fatal(changeErr)
		}

		// (3) lvsadm -R of 10,000 lines: 2,000 services of 4 NAT real
		// servers each.
		var rules strings.Builder
		for i := range restoreServices() {
			vip := fmt.Sprintf("10.200.%d.%d", i/250, i%250+1)
			fmt.Fprintf(&rules, "-A -t %s:80 -s rr\n", vip)
			for j := range 4 {
				fmt.Fprintf(&rules, "-a -t %s:80 -r 172.16.%d.%d:8080 -m -w 1\n", vip, j, i%250+1)
			}
		}
		var restore time.Duration
		restoreOut := ""
		load := p.phase(func() {
			cmd := d.Cmd(b.Context(), e2e.Bin(b, "lvsadm"), "-R")
			cmd.Stdin = strings.NewReader(rules.String())
			t0 := time.Now()
			out, err := cmd.CombinedOutput()
			restore = time.Since(t0)
			if err != nil {
				restoreOut = fmt.Sprintf("%v: %s", err, out)
			}
		})
		if restoreOut != "" {
			b.Fatalf("lvsadm -R: %s", restoreOut)
		}
		if n, want := strings.Count(e2e.LVSADM(b, d, "-S -n"), "10.200."), 5*restoreServices(); n != want {
			b.Fatalf("after -R, -S has %d lines of the loaded services, want %d", n, want)
		}

		// (4) lvsadm -L -n with the 2,001 services loaded.
		var list time.Duration
		listing := p.phase(func() {
			t0 := time.Now()
			e2e.LVSADM(b, d, "-L -n")
			list = time.Since(t0)
		})
		e2e.LVSADM(b, d, "-C")

		// (5) lvsadm -L -n -c with 600,000 UDP connections: 600 client
		// addresses x 1,000 ports to a UDP service of one DR real server.
		e2e.LVSADM(b, d, "-A -u 10.0.0.100:53 -s rr")
		e2e.LVSADM(b, d, "-a -u 10.0.0.100:53 -r 10.0.0.3:53 -g")
		var gen *pktgen.Generator
		flows := pktgen.Flows{SrcMAC: [6]byte(c.MAC("eth0")), DstMAC: [6]byte(d.MAC("eth0")),
			Src: netip.MustParseAddr("10.1.0.1"), SrcAddrs: 600, Ports: 1000, Dst: netip.MustParseAddrPort("10.0.0.100:53")}
		if err := c.Do(func() (err error) {
			gen, err = pktgen.Open(pktgen.Config{Interface: "eth0", Flows: flows, Count: uint64(flows.Count()), Rate: 200000})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		if _, err := gen.Run(b.Context()); err != nil {
			b.Fatal(err)
		}
		gen.Close()
		var conns int
		var listConns time.Duration
		connListing := p.phase(func() {
			cmd := d.Cmd(b.Context(), e2e.Bin(b, "lvsadm"), "-L", "-n", "-c")
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				conns++
			}
			if err := cmd.Wait(); err != nil {
				b.Fatal(err)
			}
			listConns = time.Since(t0)
		})
		e2e.LVSADM(b, d, "-C")

		b.Logf("idle:                 %s", idle)
		b.Logf("%4.0f changes/s (3 s): %s", float64(changes)/3, churn)
		b.Logf("lvsadm -R %d lines in %.3f s: %s", 5*restoreServices(), restore.Seconds(), load)
		b.Logf("lvsadm -L -n (%d services) in %.3f s: %s", restoreServices()+1, list.Seconds(), listing)
		b.Logf("lvsadm -L -n -c (%d connections) in %.3f s: %s", conns-2, listConns.Seconds(), connListing)
		b.ReportMetric(idle.maxGap.Seconds()*1e3, "idle-gap-ms")
		b.ReportMetric(float64(changes)/3, "changes/s")
		b.ReportMetric(churn.maxGap.Seconds()*1e3, "churn-gap-ms")
		b.ReportMetric(churn.avgRTT.Seconds()*1e3, "churn-rtt-ms")
		b.ReportMetric(restore.Seconds(), "restore-s")
		b.ReportMetric(load.maxGap.Seconds()*1e3, "restore-gap-ms")
		b.ReportMetric(connListing.maxGap.Seconds()*1e3, "listconns-gap-ms")
	}
}

// restoreServices is the number of services (of 4 real servers each) the
// -R phase loads: LVSLAB_CONTROL_RESTORE_LINES/5, 2,000 by default.
func restoreServices() int {
	if v, err := strconv.Atoi(os.Getenv("LVSLAB_CONTROL_RESTORE_LINES")); err == nil && v >= 0 {
		return v / 5
	}
	return 2000
}

func mustParse(tb testing.TB, line string) config.Command {
	c, err := config.ParseArgs(strings.Fields(line))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// prober pings an address every millisecond from a namespace and keeps the
// reply times.
type prober struct {
	conn net.PacketConn
	dst  net.Addr
	done chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	sent  map[uint16]time.Time
	nsent int
	got   []reply
}

type reply struct {
	at  time.Time
	rtt time.Duration
}

// probeStats is one phase's view of the stream.
type probeStats struct {
	sent, replies int
	maxGap        time.Duration // longest time without a reply
	maxRTT        time.Duration
	avgRTT        time.Duration
}

func (s probeStats) String() string {
	return fmt.Sprintf("%d probes, %d replies, longest gap %.1f ms, rtt avg %.2f ms max %.1f ms",
		s.sent, s.replies, s.maxGap.Seconds()*1e3, s.avgRTT.Seconds()*1e3, s.maxRTT.Seconds()*1e3)
}

func startProber(tb testing.TB, ns *nstest.NS, dst string) *prober {
	p := &prober{done: make(chan struct{}), sent: map[uint16]time.Time{}, dst: &net.IPAddr{IP: net.ParseIP(dst)}}
	if err := ns.Do(func() (err error) { p.conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0"); return err }); err != nil {
		tb.Fatal(err)
	}
	id := uint16(time.Now().UnixNano())
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		msg := make([]byte, 16)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
			msg[0], msg[1] = 8, 0
			binary.BigEndian.PutUint16(msg[2:], 0)
			binary.BigEndian.PutUint16(msg[4:], id)
			binary.BigEndian.PutUint16(msg[6:], seq)
			binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
			p.mu.Lock()
			p.sent[seq] = time.Now()
			p.nsent++
			p.mu.Unlock()
			_, _ = p.conn.WriteTo(msg, p.dst)
		}
	}()
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, _, err := p.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			now := time.Now()
			// ip4:icmp delivers the ICMP message without the IP header.
			if n < 8 || buf[0] != 0 || binary.BigEndian.Uint16(buf[4:]) != id {
				continue
			}
			seq := binary.BigEndian.Uint16(buf[6:])
			p.mu.Lock()
			if t, ok := p.sent[seq]; ok {
				p.got = append(p.got, reply{at: now, rtt: now.Sub(t)})
				delete(p.sent, seq)
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// phase runs fn and returns what the probe stream saw meanwhile.
func (p *prober) phase(fn func()) probeStats {
	p.mu.Lock()
	from, sent0, start := len(p.got), p.nsent, time.Now()
	p.mu.Unlock()
	fn()
	time.Sleep(50 * time.Millisecond) // the last replies in flight
	end := time.Now()
	p.mu.Lock()
	got := slices.Clone(p.got[from:])
	sent := p.nsent - sent0
	p.mu.Unlock()
	s := probeStats{replies: len(got), sent: sent}
	last := start
	var sum time.Duration
	for _, r := range got {
		s.maxGap = max(s.maxGap, r.at.Sub(last))
		s.maxRTT = max(s.maxRTT, r.rtt)
		sum += r.rtt
		last = r.at
	}
	s.maxGap = max(s.maxGap, end.Sub(last))
	if len(got) > 0 {
		s.avgRTT = sum / time.Duration(len(got))
	}
	return s
}

func (p *prober) stop() {
	close(p.done)
	p.conn.Close()
	p.wg.Wait()
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
