package benchnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"lvslab/internal/pktgen"
)

// The new-connection rate: TCP handshakes from raw frames (a
// pktgen.Handshaker in the generator namespace, many source addresses and
// ports, a closed loop of connections in flight) through lvsd NAT, with
// and without the SYN proxy, to a real kernel TCP listener on the sink
// that writes a greeting on accept and closes. A connection counts when
// its greeting reaches the client: with the SYN proxy that takes the
// proxy's cookie handshake with the client, its own handshake with the
// real server and the server's accept.
//
// Placement: lvsd on the forwarder's CPU; the generator, the server's
// accept loop and, by RPS, the receive processing of g0 and s0 (the
// server's whole TCP stack, the clients' packet tap) on the generator's,
// so that the forwarder's CPU time is lvsd's own work per connection.

// HandshakeForwarders are the forwarders of the new-connection table, in
// the order a round runs them. FULLNAT is left out: at tens of thousands
// of connections a second its one local address's ports (each held 10 s
// after the RST) run out within a window.
func HandshakeForwarders() []Forwarder { return []Forwarder{LVSDNATTCP, LVSDNATSPTCP} }

// Handshake sources: HSAddrs addresses from HSClientIP, ports from
// HSPort, kept apart from the packet-rate flows.
const (
	HSClientIP = "10.0.0.16"
	HSAddrs    = 16
	HSPort     = 1024
	HSPorts    = 64000
	greeting   = "hi\n"
	// HSInFlight is the closed loop's size: each connection crosses
	// packet rings eight times (six without the SYN proxy), each of which
	// may hold a frame up to its 1 ms block timeout, so fewer connections
	// in flight measure latency, not rate.
	HSInFlight = 4096
)

// HSResult is one measured handshake run.
type HSResult struct {
	Forwarder Forwarder
	Counts    pktgen.HandshakeCounts // over the window
	Window    time.Duration
	FwdCPU    time.Duration // as Result.FwdCPU
	Note      string
}

// Rate is the completed connections per second.
func (r HSResult) Rate() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.Counts.Completed) / r.Window.Seconds()
}

// NsPerConn is the forwarder's CPU time per completed connection.
func (r HSResult) NsPerConn() float64 {
	if r.Counts.Completed == 0 || r.FwdCPU <= 0 {
		return 0
	}
	return float64(r.FwdCPU.Nanoseconds()) / float64(r.Counts.Completed)
}

// CPUShare is the fraction of one CPU the forwarder used over the window.
func (r HSResult) CPUShare() float64 {
	if r.Window <= 0 {
		return 0
	}
	return r.FwdCPU.Seconds() / r.Window.Seconds()
}

// ServeHandshakes turns the lab's sink into a real server for the
// handshake runs: its kernel gets TCP back (the packet-rate runs' ingress
// drop goes), a listener on RIP:Port greets and closes every connection,
// and the clients' addresses are added to g0. It stays so for the lab's
// life.
func (l *Lab) ServeHandshakes() error {
	l.Sink.Run("nft", "delete", "table", "netdev", "benchsink")
	l.Sink.Sysctl("net.core.somaxconn", "65535")
	l.Sink.Sysctl("net.ipv4.tcp_max_syn_backlog", "65535")
	src := netip.MustParseAddr(HSClientIP)
	for range HSAddrs {
		l.Gen.Addr("g0", src.String()+"/24")
		src = src.Next()
	}
	var fd int
	if err := l.Sink.Do(func() (err error) {
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
		if err = unix.Bind(fd, &unix.SockaddrInet4{Port: Port, Addr: netip.MustParseAddr(RIP).As4()}); err != nil {
			return err
		}
		return unix.Listen(fd, 65535)
	}); err != nil {
		return fmt.Errorf("real server listener: %w", err)
	}
	// Blocking system calls on a thread of its own on the generator's CPU:
	// the server's cost stays off the forwarder's.
	done := goPinned(l.genCPU, l.cfg.Nice, func() error {
		for {
			c, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
			if err != nil {
				if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
					continue
				}
				return nil // shut down
			}
			_, _ = unix.Write(c, []byte(greeting))
			unix.Close(c)
		}
	})
	l.tb.Cleanup(func() {
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
		<-done
		unix.Close(fd)
	})
	return nil
}

// RunHandshakes measures one forwarder's new-connection rate.
func (l *Lab) RunHandshakes(ctx context.Context, fwd Forwarder) (res HSResult, err error) {
	res.Forwarder = fwd
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+l.cfg.Warmup+l.cfg.Window)
	defer cancel()
	if !fwd.TCP() || fwd.Method() != LVSDNAT {
		return res, fmt.Errorf("%s: the handshake table runs lvsd NAT on TCP only", fwd)
	}
	if l.fwdCPU >= 0 {
		setRPS(l.tb, l.Gen, "g0", l.genCPU)
		setRPS(l.tb, l.Sink, "s0", l.genCPU)
		defer setRPS(l.tb, l.Gen, "g0", -1)
		defer setRPS(l.tb, l.Sink, "s0", -1)
	}
	fw, err := l.startLVSD(ctx, fwd)
	if err != nil {
		return res, fmt.Errorf("%s: start: %w", fwd, err)
	}
	defer func() {
		note, serr := fw.stop()
		res.Note = note
		if serr != nil && err == nil {
			err = fmt.Errorf("%s: stop: %w", fwd, serr)
		}
	}()

	var hs *pktgen.Handshaker
	if err := l.Gen.Do(func() (err error) {
		hs, err = pktgen.OpenHandshaker(pktgen.HandshakeConfig{
			Interface: "g0",
			Clients: pktgen.Flows{SrcMAC: l.genMAC, DstMAC: l.f0MAC, Src: netip.MustParseAddr(HSClientIP), SrcAddrs: HSAddrs,
				SrcPort: HSPort, Ports: HSPorts, Dst: netip.AddrPortFrom(netip.MustParseAddr(VIP), Port)},
			Offset:   l.hsOffset,
			InFlight: HSInFlight,
		})
		return err
	}); err != nil {
		return res, err
	}
	defer hs.Close()
	// The next run starts where this one cannot have reached, so no
	// source is reused while the real server may remember it.
	l.hsOffset = (l.hsOffset + 300_000) % (HSAddrs * HSPorts)

	runCtx, stopRun := context.WithCancel(ctx)
	recvDone := goPinned(l.genCPU, l.cfg.Nice, func() error { return hs.RunReceiver(runCtx) })
	sendDone := goPinned(l.genCPU, l.cfg.Nice, func() error { return hs.RunSender(runCtx) })
	stopTraffic := func() error {
		stopRun()
		return errors.Join(<-sendDone, <-recvDone)
	}
	for end := time.Now().Add(5 * time.Second); hs.Counts().Completed < 1000; {
		if time.Now().After(end) {
			c := hs.Counts()
			return res, errors.Join(fmt.Errorf("%s: %d connections completed in 5 s (%d SYNs, %d SYN/ACKs, %d refused, %d lost)",
				fwd, c.Completed, c.Started, c.SYNACKs, c.Refused, c.Lost), stopTraffic())
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return res, errors.Join(err, stopTraffic())
		}
	}
	// At least the handshaker's timeout: connections lost in the first
	// burst (while lvsd resolves the clients' addresses, holding a few
	// frames each) are given up on before the window, not in it.
	if err := sleep(ctx, max(l.cfg.Warmup, 1200*time.Millisecond)); err != nil {
		return res, errors.Join(err, stopTraffic())
	}
	c0, cerr0 := fw.cpu()
	h0 := hs.Counts()
	if err := sleep(ctx, l.cfg.Window); err != nil {
		return res, errors.Join(err, stopTraffic())
	}
	h1 := hs.Counts()
	c1, cerr1 := fw.cpu()
	if err := stopTraffic(); err != nil {
		return res, err
	}
	res.Counts, res.Window = h1.Since(h0)
	if cerr0 == nil && cerr1 == nil {
		res.FwdCPU = c1 - c0
	}
	return res, nil
}

// HSRow is one forwarder's handshake runs.
type HSRow struct {
	Forwarder  Forwarder
	Rate       float64   // median completed connections per second
	SYNACKRate float64   // median SYN/ACKs answered per second
	LostRate   float64   // median connections given up per second
	CPUShare   float64   // median
	NsPerConn  float64   // median forwarder CPU per completed connection
	Runs       []float64 // each run's rate
	Failed     string
}

// SummarizeHandshakes takes the medians by forwarder, in the order of
// HandshakeForwarders.
func SummarizeHandshakes(results []HSResult, failed map[Forwarder]error) []HSRow {
	var rows []HSRow
	for _, f := range HandshakeForwarders() {
		row := HSRow{Forwarder: f}
		var synack, lost, share, cost []float64
		for _, r := range results {
			if r.Forwarder != f {
				continue
			}
			s := r.Window.Seconds()
			row.Runs = append(row.Runs, r.Rate())
			synack = append(synack, float64(r.Counts.SYNACKs)/s)
			lost = append(lost, float64(r.Counts.Lost)/s)
			share = append(share, r.CPUShare())
			if c := r.NsPerConn(); c > 0 {
				cost = append(cost, c)
			}
		}
		if err := failed[f]; err != nil {
			row.Failed = firstLine(err.Error())
		}
		if len(row.Runs) == 0 && row.Failed == "" {
			continue
		}
		row.Rate, row.SYNACKRate, row.LostRate, row.CPUShare = median(row.Runs), median(synack), median(lost), median(share)
		if len(cost) > 0 && 2*len(cost) > len(row.Runs) {
			row.NsPerConn = median(cost)
		}
		rows = append(rows, row)
	}
	return rows
}

// HandshakeTable renders the rows and the SYN proxy's cost against plain
// NAT.
func HandshakeTable(title string, rows []HSRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", title)
	fmt.Fprintf(&b, "%-16s %9s %9s %7s %6s %8s  %s\n", "forwarder", "conns/s", "SYNACK/s", "lost/s", "fwdCPU", "ns/conn", "runs (conns/s, in order)")
	by := map[Forwarder]HSRow{}
	for _, r := range rows {
		if len(r.Runs) == 0 {
			fmt.Fprintf(&b, "%-16s %9s %9s %7s %6s %8s  failed: %s\n", r.Forwarder, "-", "-", "-", "-", "-", r.Failed)
			continue
		}
		by[r.Forwarder] = r
		runs := make([]string, len(r.Runs))
		for i, v := range r.Runs {
			runs[i] = fmt.Sprintf("%.0f", v)
		}
		cost := "-"
		if r.NsPerConn > 0 {
			cost = fmt.Sprintf("%.0f", r.NsPerConn)
		}
		line := fmt.Sprintf("%-16s %9.0f %9.0f %7.0f %5.0f%% %8s  %s", r.Forwarder, r.Rate, r.SYNACKRate, r.LostRate, 100*r.CPUShare, cost, strings.Join(runs, " "))
		if r.Failed != "" {
			line += "  (then failed: " + r.Failed + ")"
		}
		b.WriteString(line + "\n")
	}
	for _, r := range rows {
		if len(r.Runs) > 0 && r.CPUShare < 0.9 {
			fmt.Fprintf(&b, "note: %s used %.0f%% of its CPU: the rate is the clients' and the real server's limit, not lvsd's; see its CPU per connection.\n",
				r.Forwarder, 100*r.CPUShare)
		}
	}
	sp, okS := by[LVSDNATSPTCP]
	nat, okN := by[LVSDNATTCP]
	if okS && okN && nat.Rate > 0 {
		fmt.Fprintf(&b, "SYN proxy / plain NAT: rate %.2f", sp.Rate/nat.Rate)
		if sp.NsPerConn > 0 && nat.NsPerConn > 0 {
			fmt.Fprintf(&b, ", CPU per connection %.2f", sp.NsPerConn/nat.NsPerConn)
		}
		b.WriteString("\n")
	}
	return b.String()
}
