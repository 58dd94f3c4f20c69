// Package benchnet is the end-to-end packet-rate lab: a generator
// namespace, a forwarder namespace and a sink namespace joined by two veth
// pairs, and the four forwarders `make bench` compares in it, one after the
// other, each offered the same traffic (same frames, same generator):
//
//	gen (g0) ──veth── (f0) fwd (f1) ──veth── (s0) sink
//	 pktgen            ref | lvsd DR | lvsd NAT | nft DNAT   pktgen sink
//
// The reference is internal/benchfwd, an AF_PACKET forwarder that only
// rewrites MACs: whatever lvsd does beyond that shows in the ratio. The
// kernel's own nftables DNAT is the second yardstick.
//
// On veth a frame's receive processing runs on the CPU that transmitted it,
// so where work lands is a choice the lab makes, not the scheduler. With
// two or more CPUs the generator and sink threads run on CPU 0 and the
// forwarder on CPU 1 (the process under taskset), and:
//
//   - for the userspace forwarders, f0's receive processing (the packet tap
//     copying each frame into the forwarder's ring) stays on the
//     generator's CPU, as on a NIC's interrupt core; the forwarder's CPU
//     runs the forwarder, its transmits and, inside them, the sink's
//     receive path;
//   - the kernel forwards inside f0's receive processing, so for nft DNAT
//     RPS steers that to CPU 1, and steers the sink's receive processing
//     back to CPU 0: on veth it would otherwise share CPU 1's one backlog
//     queue with the incoming frames and be dropped after the forwarding
//     work was done, an artefact a NIC with its own queues does not have.
//
// Each forwarder so pays on its CPU for one of the two receive paths. The
// other way round for the userspace forwarders (RPS of f0 to CPU 1) was
// tried: under overload the softirq work starves the forwarder process
// (receive livelock) and runs spread by more than ±30%.
//
// The figures are the rate at the sink and, robust to neighbours taking
// CPU time on a shared machine, the forwarder's CPU time per frame.
package benchnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lvslab/capture"
	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/pktgen"
)

// The lab's addresses. Clients and the VIP sit on the generator's segment,
// the real server (the sink) on the other; nothing is routed outside the
// three namespaces.
const (
	ClientIP = "10.0.0.2" // g0, first of the generator's source addresses
	FwdInIP  = "10.0.0.1" // f0
	FwdOutIP = "10.1.0.1" // f1
	RIP      = "10.1.0.2" // s0: the real server
	VIP      = "10.0.0.100"
	Port     = 9 // UDP discard: VIP port and real-server port alike
)

// Forwarder names a forwarder the lab can run.
type Forwarder string

const (
	Ref      Forwarder = "ref"       // internal/benchfwd: MAC rewrite only
	LVSDDR   Forwarder = "lvsd-dr"   // lvsd, direct routing
	LVSDNAT  Forwarder = "lvsd-nat"  // lvsd, masquerading
	LVSDFNAT Forwarder = "lvsd-fnat" // lvsd, FULLNAT from one local address
	NftDNAT  Forwarder = "nft-dnat"  // the kernel: ip_forward + nftables DNAT

	// The same on established TCP flows (64-byte data segments, each
	// flow's handshake done through the forwarder first), and lvsd's SYN
	// proxy, which forwards nothing else, in front of NAT and FULLNAT.
	RefTCP        Forwarder = "ref-tcp"
	LVSDDRTCP     Forwarder = "lvsd-dr-tcp"
	LVSDNATTCP    Forwarder = "lvsd-nat-tcp"
	LVSDFNATTCP   Forwarder = "lvsd-fnat-tcp"
	LVSDNATSPTCP  Forwarder = "lvsd-nat+sp-tcp"
	LVSDFNATSPTCP Forwarder = "lvsd-fnat+sp-tcp"
)

// All returns every forwarder, in the order a round runs them.
func All() []Forwarder {
	return []Forwarder{Ref, LVSDDR, LVSDNAT, LVSDFNAT, NftDNAT,
		RefTCP, LVSDDRTCP, LVSDNATTCP, LVSDFNATTCP, LVSDNATSPTCP, LVSDFNATSPTCP}
}

// TCP says whether f is measured on TCP frames.
func (f Forwarder) TCP() bool { return strings.HasSuffix(string(f), "-tcp") }

// SynProxy says whether f is lvsd with the SYN proxy on.
func (f Forwarder) SynProxy() bool { return strings.Contains(string(f), "+sp") }

// Method is f without protocol and SYN proxy: ref, lvsd-dr, lvsd-nat,
// lvsd-fnat or nft-dnat.
func (f Forwarder) Method() Forwarder {
	m := strings.TrimSuffix(string(f), "-tcp")
	return Forwarder(strings.TrimSuffix(m, "+sp"))
}

// Reference is the forwarder f's rate is compared with: the reference
// forwarder on the same frames.
func (f Forwarder) Reference() Forwarder {
	if f.TCP() {
		return RefTCP
	}
	return Ref
}

// ParseForwarders reads a comma-separated list of forwarder names ("" is
// all of them).
func ParseForwarders(list string) ([]Forwarder, error) {
	if list == "" {
		return All(), nil
	}
	var out []Forwarder
	for _, name := range strings.Split(list, ",") {
		f := Forwarder(strings.TrimSpace(name))
		if !slices.Contains(All(), f) {
			return nil, fmt.Errorf("unknown forwarder %q (known: %v)", f, All())
		}
		out = append(out, f)
	}
	return out, nil
}

// Config tunes the lab. Zero values take the defaults given.
type Config struct {
	// Warmup is traffic before the window, after the first frames reach
	// the sink (default 500ms): connections get created, ARP resolved,
	// rings fill.
	Warmup time.Duration
	// Window is the measured time (default 1.5s).
	Window time.Duration
	// SrcAddrs × Ports flows (defaults 4 × 1024): enough connections for
	// the NAT forwarders to have a table to look things up in.
	SrcAddrs, Ports int
	// Rate caps the offered load in frames per second; 0 offers as much as
	// the generator can send.
	Rate float64
	// NoPin leaves CPU placement to the scheduler (no affinity, no RPS).
	NoPin bool
	// Nice is the nice value of the forwarder process and of the generator
	// and sink threads (0: unchanged). On a shared machine a negative value
	// keeps neighbours from taking much of their CPUs; the kernel's own
	// forwarding runs in softirq context, which beats any process anyway.
	Nice int
}

func (c *Config) defaults() {
	if c.Warmup <= 0 {
		c.Warmup = 500 * time.Millisecond
	}
	if c.Window <= 0 {
		c.Window = 1500 * time.Millisecond
	}
	if c.SrcAddrs <= 0 {
		c.SrcAddrs = 4
	}
	if c.Ports <= 0 {
		c.Ports = 1024
	}
}

// Lab is the three namespaces and the binaries that run in them.
type Lab struct {
	Gen, Fwd, Sink *nstest.NS

	tb  testing.TB
	cfg Config
	// genCPU runs the generator and the sink, fwdCPU the forwarder; -1
	// when not pinning.
	genCPU, fwdCPU int

	genMAC, f0MAC, s0MAC   [6]byte
	lvsd, lvsadm, benchfwd string
	ksoftirqd              int // PID of the forwarder CPU's, 0 if unknown
	hsOffset               int // first handshake source of the next run
}

// Available says why the lab cannot run here, or "" if it can.
func Available() string {
	if why := nstest.Available(); why != "" {
		return why
	}
	for _, tool := range []string{"nft", "taskset", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "needs " + tool
		}
	}
	return ""
}

// New builds the lab and the binaries. Everything is removed when tb ends.
func New(tb testing.TB, cfg Config) *Lab {
	tb.Helper()
	cfg.defaults()
	l := &Lab{
		Gen: nstest.New(tb, "e2e-gen"), Fwd: nstest.New(tb, "e2e-fwd"), Sink: nstest.New(tb, "e2e-sink"),
		tb: tb, cfg: cfg, genCPU: -1, fwdCPU: -1,
	}
	if !cfg.NoPin && runtime.NumCPU() >= 2 {
		l.genCPU, l.fwdCPU = 0, 1
		if pid, err := ksoftirqd(l.fwdCPU); err == nil {
			l.ksoftirqd = pid
		} else {
			tb.Logf("forwarder CPU time will miss overflowing softirq work: %v", err)
		}
	}
	nstest.Veth(tb, l.Gen, "g0", l.Fwd, "f0", 1500)
	nstest.Veth(tb, l.Fwd, "f1", l.Sink, "s0", 1500)
	l.Gen.Addr("g0", ClientIP+"/24")
	// Every source address is the generator's, so that the forwarders'
	// ARP for the clients is answered (TCP's handshakes come back).
	src := netip.MustParseAddr(ClientIP)
	for range cfg.SrcAddrs - 1 {
		src = src.Next()
		l.Gen.Addr("g0", src.String()+"/24")
	}
	l.Fwd.Addr("f0", FwdInIP+"/24")
	l.Fwd.Addr("f1", FwdOutIP+"/24")
	l.Sink.Addr("s0", RIP+"/24")
	l.Gen.Route("default", FwdInIP, "g0")
	l.Sink.Route("default", FwdOutIP, "s0")
	l.genMAC, l.f0MAC, l.s0MAC = [6]byte(l.Gen.MAC("g0")), [6]byte(l.Fwd.MAC("f0")), [6]byte(l.Sink.MAC("s0"))

	// The sink's kernel answers ARP for the RIP (every forwarder resolves
	// it) but must not spend the sink's CPU routing, dropping or answering
	// the IPv4 frames: an ingress drop runs after the packet taps, so the
	// sink's ring still sees them.
	nftScript(tb, l.Sink, `table netdev benchsink {
	chain in {
		type filter hook ingress device "s0" priority 0; policy accept;
		meta protocol ip counter drop
	}
}`)
	// Nor the generator's kernel the answers to its TCP handshakes, which
	// it would reset: raw frames did those, not its sockets.
	nftScript(tb, l.Gen, `table netdev benchgen {
	chain in {
		type filter hook ingress device "g0" priority 0; policy accept;
		meta protocol ip counter drop
	}
}`)
	l.lvsd, l.lvsadm = e2e.Bin(tb, "lvsd"), e2e.Bin(tb, "lvsadm")
	l.benchfwd = buildBenchfwd(tb)
	return l
}

// Pinned reports the CPUs of the generator and sink and of the forwarder
// (-1, -1 when the scheduler decides).
func (l *Lab) Pinned() (gen, fwd int) { return l.genCPU, l.fwdCPU }

// Flows is the number of distinct flows offered.
func (l *Lab) Flows() int { return l.cfg.SrcAddrs * l.cfg.Ports }

// Result is one measured run.
type Result struct {
	Forwarder Forwarder
	RxPPS     float64 // matching frames at the sink, over the window
	TxPPS     float64 // frames the generator sent, over the same window
	SinkDrops uint64  // frames the sink's ring had no room for (in RxPPS)
	// FwdCPU is the CPU time the forwarder used over the window: for the
	// userspace forwarders the process's user+system time (which includes
	// the kernel work done in its system calls) plus that of the forwarder
	// CPU's ksoftirqd (the softirq work that overflowed them); for the
	// kernel's DNAT the softirq time of the forwarder's CPU. Unlike the
	// rate, the cost per frame does not change when a neighbour on a
	// shared machine takes the CPU away; zero when unknown.
	FwdCPU time.Duration
	// FwdIdle is the time the forwarder's CPU was idle over the window
	// (zero when not pinned).
	FwdIdle time.Duration
	Window  time.Duration
	// Note is what the forwarder said about the run (its own counters).
	Note string
}

// CPUShare is the fraction of one CPU the forwarder used over the window.
func (r Result) CPUShare() float64 {
	if r.Window <= 0 {
		return 0
	}
	return r.FwdCPU.Seconds() / r.Window.Seconds()
}

// NsPerFrame is the forwarder's CPU time per delivered frame.
func (r Result) NsPerFrame() float64 {
	n := r.RxPPS * r.Window.Seconds()
	if n <= 0 || r.FwdCPU <= 0 {
		return 0
	}
	return float64(r.FwdCPU.Nanoseconds()) / n
}

// running is a started forwarder.
type running struct {
	// stop ends it and returns what it said about the run.
	stop func() (string, error)
	// cpu returns its CPU time so far.
	cpu func() (time.Duration, error)
}

// Run measures one forwarder: start it, offer the load, wait for the first
// frames at the sink, warm up, measure the window, stop everything.
func (l *Lab) Run(ctx context.Context, fwd Forwarder) (res Result, err error) {
	res.Forwarder = fwd
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+l.cfg.Warmup+l.cfg.Window)
	defer cancel()

	var fw running
	switch fwd.Method() {
	case Ref:
		fw, err = l.startRef(ctx)
	case LVSDDR, LVSDNAT, LVSDFNAT:
		fw, err = l.startLVSD(ctx, fwd)
	case NftDNAT:
		if fwd.TCP() {
			err = errors.New("the kernel's DNAT is measured on UDP only")
			break
		}
		if l.fwdCPU >= 0 {
			// The kernel forwards in f0's receive processing: steer it to
			// the forwarder's CPU, and the sink's receive processing off
			// it (see the package comment).
			setRPS(l.tb, l.Fwd, "f0", l.fwdCPU)
			setRPS(l.tb, l.Sink, "s0", l.genCPU)
			defer setRPS(l.tb, l.Fwd, "f0", -1)
			defer setRPS(l.tb, l.Sink, "s0", -1)
		}
		fw, err = l.startNft()
	default:
		err = fmt.Errorf("unknown forwarder %q", fwd)
	}
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

	var sink *pktgen.Sink
	if err := l.Sink.Do(func() (err error) {
		sink, err = pktgen.OpenSink(pktgen.SinkConfig{Interface: "s0", DstPort: Port, TCP: fwd.TCP()})
		return err
	}); err != nil {
		return res, err
	}
	defer sink.Close()
	flows := pktgen.Flows{
		SrcMAC: l.genMAC, DstMAC: l.f0MAC,
		Src: netip.MustParseAddr(ClientIP), SrcAddrs: l.cfg.SrcAddrs, Ports: l.cfg.Ports,
		Dst: netip.AddrPortFrom(netip.MustParseAddr(VIP), Port),
	}
	var frames [][]byte
	if fwd.TCP() {
		if frames, err = l.establish(ctx, fwd, flows); err != nil {
			if fwd.Method() != Ref {
				stats, _ := l.Fwd.Try(l.lvsadm, "-L", "-n", "--stats", "--exact")
				err = fmt.Errorf("%w\nlvsadm -L -n --stats:\n%s", err, stats)
			}
			return res, fmt.Errorf("%s: %w", fwd, err)
		}
	}
	var gen *pktgen.Generator
	if err := l.Gen.Do(func() (err error) {
		gen, err = pktgen.Open(pktgen.Config{
			Interface: "g0",
			Flows:     flows,
			Frames:    frames,
			Rate:      l.cfg.Rate,
			// The generator's cost is not under test: skip the qdisc.
			Batch: 256,
			Port:  capture.Config{QdiscBypass: true, TXFrames: 1024},
		})
		return err
	}); err != nil {
		return res, err
	}
	defer gen.Close()

	runCtx, stopRun := context.WithCancel(ctx)
	// The instrument before the load: the sink outranks the generator on
	// their shared CPU, or its ring overflows while the generator runs.
	sinkNice := l.cfg.Nice
	if sinkNice < 0 {
		sinkNice = max(sinkNice-5, -20)
	}
	sinkDone := goPinned(l.genCPU, sinkNice, func() error { return sink.Run(runCtx) })
	genDone := goPinned(l.genCPU, l.cfg.Nice, func() error { _, err := gen.Run(runCtx); return err })
	stopTraffic := func() error {
		stopRun()
		return errors.Join(<-genDone, <-sinkDone)
	}

	// The forwarder is ready when traffic comes through; the warm-up starts
	// from there.
	if err := sink.WaitFor(ctx, 1000, 5*time.Second); err != nil {
		return res, errors.Join(fmt.Errorf("%s: no traffic through: %w", fwd, err), stopTraffic())
	}
	if err := sleep(ctx, l.cfg.Warmup); err != nil {
		return res, errors.Join(err, stopTraffic())
	}
	idle := func() time.Duration {
		if l.fwdCPU < 0 {
			return 0
		}
		d, _ := idleTime(l.fwdCPU)
		return d
	}
	c0, cerr0 := fw.cpu()
	i0 := idle()
	s0, g0 := sink.Sample(), gen.Sent()
	if err := sleep(ctx, l.cfg.Window); err != nil {
		return res, errors.Join(err, stopTraffic())
	}
	s1, g1 := sink.Sample(), gen.Sent()
	c1, cerr1 := fw.cpu()
	res.FwdIdle = idle() - i0
	if err := stopTraffic(); err != nil {
		return res, err
	}
	w := s1.Since(s0)
	// Frames the sink's ring had no room for did get through the forwarder
	// (nothing else arrives on s0 but the odd ARP): count them.
	res.RxPPS = float64(w.Packets+w.Drops) / w.Elapsed.Seconds()
	res.TxPPS = float64(g1-g0) / w.Elapsed.Seconds()
	res.SinkDrops = w.Drops
	res.Window = w.Elapsed
	if cerr0 == nil && cerr1 == nil {
		res.FwdCPU = c1 - c0
	}
	return res, nil
}

// establish opens every flow's TCP connection through the forwarder (the
// real server's side answered by a pktgen.Responder on the sink) and
// returns the flows' data frames. The responder is closed before the
// measurement: a second packet socket on s0 would add its tap's copy to
// the forwarder's CPU, which the UDP rows do not pay.
func (l *Lab) establish(ctx context.Context, fwd Forwarder, flows pktgen.Flows) ([][]byte, error) {
	var resp *pktgen.Responder
	if err := l.Sink.Do(func() (err error) {
		resp, err = pktgen.OpenResponder("s0", Port)
		return err
	}); err != nil {
		return nil, err
	}
	defer resp.Close()
	rctx, stopResp := context.WithCancel(ctx)
	respDone := goPinned(l.genCPU, 0, func() error { return resp.Run(rctx) })
	var frames [][]byte
	m := fwd.Method()
	establish := func() error {
		return l.Gen.Do(func() (err error) {
			// DR's real server answers around the forwarder; the reference
			// tracks nothing: neither returns SYN/ACKs.
			frames, err = pktgen.Establish(ctx, pktgen.EstablishConfig{Interface: "g0", Flows: flows,
				WaitSYNACK: m == LVSDNAT || m == LVSDFNAT})
			return err
		})
	}
	err := establish()
	// A frame lost on a busy machine loses a connection the client cannot
	// see lost where no SYN/ACK comes back from the real server: DR's, and
	// the SYN proxy's (the proxy answers the SYN itself; a lost ACK
	// leaves no connection, and a lost SYN to the real server is re-sent
	// only after 3 s). Count at the real server, and try again: DR by
	// another handshake, the proxy by the data frames, which carry the
	// cookie's ACK too.
	for try := 0; err == nil && m != Ref && resp.Answered() < uint64(len(frames)); try++ {
		for end := time.Now().Add(time.Second); resp.Answered() < uint64(len(frames)) && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		if resp.Answered() >= uint64(len(frames)) || try == 3 {
			break
		}
		switch {
		case m == LVSDDR:
			err = establish()
		case fwd.SynProxy():
			err = l.Gen.Do(func() error {
				g, err := pktgen.Open(pktgen.Config{Interface: "g0", Frames: frames, Count: uint64(len(frames)), Rate: 100e3})
				if err != nil {
					return err
				}
				defer g.Close()
				_, err = g.Run(ctx)
				return err
			})
		}
	}
	stopResp()
	if rerr := <-respDone; err == nil {
		err = rerr
	}
	if err == nil && fwd.Method() != Ref && resp.Answered() < uint64(len(frames)) {
		err = fmt.Errorf("the real server answered %d of %d SYNs", resp.Answered(), len(frames))
	}
	return frames, err
}

// goPinned runs fn on a goroutine locked to a thread bound to cpu (any CPU
// if cpu < 0) at the given nice value (0: unchanged). The thread is never
// unlocked, so it exits with the goroutine and its affinity and priority go
// nowhere else.
func goPinned(cpu, nice int, fn func() error) <-chan error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if cpu >= 0 {
			var set unix.CPUSet
			set.Set(cpu)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				done <- fmt.Errorf("pin to CPU %d: %w", cpu, err)
				return
			}
		}
		if nice != 0 {
			// Per thread: Linux nice values belong to threads.
			if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice); err != nil {
				done <- fmt.Errorf("nice %d: %w", nice, err)
				return
			}
		}
		done <- fn()
	}()
	return done
}

// taskset prefixes a command line with the forwarder's CPU binding and
// priority.
func (l *Lab) taskset(argv ...string) []string {
	var pre []string
	if l.cfg.Nice != 0 {
		pre = append(pre, "nice", "-n", strconv.Itoa(l.cfg.Nice))
	}
	if l.fwdCPU >= 0 {
		pre = append(pre, "taskset", "-c", strconv.Itoa(l.fwdCPU))
	}
	return append(pre, argv...)
}

// startRef runs benchfwd f0 -> f1 with the sink as next hop. Like lvsd it
// hides the VIP's frames from the namespace's kernel with a netdev ingress
// drop (what lvsd's guard does), so both pay the same for the kernel's
// share.
func (l *Lab) startRef(ctx context.Context) (running, error) {
	nftScript(l.tb, l.Fwd, `table netdev benchguard {
	chain ingress_f0 {
		type filter hook ingress device "f0" priority -500; policy accept;
		ip daddr `+VIP+` counter drop
	}
}`)
	unguard := func() { _, _ = l.Fwd.Try("nft", "delete", "table", "netdev", "benchguard") }
	p, err := l.start(ctx, l.taskset(l.benchfwd, "-in", "f0", "-out", "f1", "-nexthop", macString(l.s0MAC))...)
	if err != nil {
		unguard()
		return running{}, err
	}
	stop := func() (string, error) {
		defer unguard()
		out, err := p.stop()
		if err != nil {
			return "", err
		}
		var rep struct {
			Forwarded, Dropped uint64
			In                 struct{ Drops uint64 }
		}
		if jerr := json.Unmarshal(bytes.TrimSpace(lastLine(out)), &rep); jerr != nil {
			return "", fmt.Errorf("benchfwd report: %w\n%s", jerr, out)
		}
		return fmt.Sprintf("forwarded %d, dropped %d, ring drops %d", rep.Forwarded, rep.Dropped, rep.In.Drops), nil
	}
	return running{stop: stop, cpu: p.cpu(l.ksoftirqd)}, nil
}

// LocalIP is the FULLNAT forwarder's local address, on the sink's link
// (lvsd answers ARP for it).
const LocalIP = "10.1.0.100"

// startLVSD runs lvsd on f0,f1 with one service on VIP:Port (UDP, or TCP
// for the -tcp forwarders, with the SYN proxy for the +sp ones) and the
// sink as its only real server, by DR, NAT or FULLNAT (from LocalIP).
// LVSLAB_E2E_LVSD_ARGS adds lvsd flags (e.g. "--rx-ring v2").
func (l *Lab) startLVSD(ctx context.Context, fwd Forwarder) (running, error) {
	argv := append([]string{l.lvsd, "-i", "f0,f1", "--log-level", "warn"}, strings.Fields(os.Getenv("LVSLAB_E2E_LVSD_ARGS"))...)
	p, err := l.start(ctx, l.taskset(argv...)...)
	if err != nil {
		return running{}, err
	}
	fail := func(err error) (running, error) {
		out, _ := p.stop()
		return running{}, fmt.Errorf("%w\nlvsd log:\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := l.Fwd.Try(l.lvsadm, "-L", "-n"); err == nil {
			break
		}
		if time.Now().After(deadline) || p.exited() {
			return fail(errors.New("lvsd did not come up"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	svc := fmt.Sprintf("%s:%d", VIP, Port)
	proto := "-u"
	if fwd.TCP() {
		proto = "-t"
	}
	add := []string{"-A", proto, svc, "-s", "rr"}
	if fwd.SynProxy() {
		add = append(add, "-j", "enable")
	}
	cmds := [][]string{add}
	method := "-g"
	switch fwd.Method() {
	case LVSDNAT:
		method = "-m"
	case LVSDFNAT:
		method = "-b"
		cmds = append(cmds, []string{"-P", proto, svc, "-z", LocalIP})
	}
	cmds = append(cmds, []string{"-a", proto, svc, "-r", fmt.Sprintf("%s:%d", RIP, Port), method})
	for _, args := range cmds {
		if out, err := l.Fwd.Try(l.lvsadm, args...); err != nil {
			return fail(fmt.Errorf("lvsadm %s: %w: %s", strings.Join(args, " "), err, out))
		}
	}
	stop := func() (string, error) {
		stats, _ := l.Fwd.Try(l.lvsadm, "-L", "-n", "--stats", "--exact")
		out, err := p.stop()
		if err != nil {
			return "", fmt.Errorf("%w\nlvsd log:\n%s", err, out)
		}
		return serviceLine(stats), nil
	}
	return running{stop: stop, cpu: p.cpu(l.ksoftirqd)}, nil
}

// startNft has the namespace's kernel forward with DNAT to the real server.
func (l *Lab) startNft() (running, error) {
	l.Fwd.Sysctl("net.ipv4.ip_forward", "1")
	nftScript(l.tb, l.Fwd, fmt.Sprintf(`table ip benchnat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %s udp dport %d counter dnat to %s:%d
	}
}`, VIP, Port, RIP, Port))
	stop := func() (string, error) {
		rules, _ := l.Fwd.Try("nft", "list", "chain", "ip", "benchnat", "prerouting")
		// Connections the run created stay in the table until they time
		// out; the next run's few thousand setups are noise next to its
		// million frames.
		_, err := l.Fwd.Try("nft", "delete", "table", "ip", "benchnat")
		l.Fwd.Sysctl("net.ipv4.ip_forward", "0")
		note := ""
		if _, after, ok := strings.Cut(rules, "counter "); ok {
			note, _, _ = strings.Cut(after, " dnat")
			note = "dnat rule " + note
		}
		if err != nil {
			return note, fmt.Errorf("delete nat table: %w", err)
		}
		return note, nil
	}
	cpu := func() (time.Duration, error) {
		if l.fwdCPU < 0 {
			return 0, errors.New("forwarding CPU not pinned")
		}
		return softirqTime(l.fwdCPU)
	}
	return running{stop: stop, cpu: cpu}, nil
}

// serviceLine picks the service's counters out of lvsadm --stats output.
func serviceLine(stats string) string {
	for _, line := range strings.Split(stats, "\n") {
		if strings.HasPrefix(line, "UDP") || strings.HasPrefix(line, "TCP") {
			f := strings.Fields(line)
			if len(f) >= 4 {
				return fmt.Sprintf("service conns %s, in packets %s", f[2], f[3])
			}
		}
	}
	return ""
}

// proc is a forwarder process in the forwarder namespace.
type proc struct {
	cmd  *exec.Cmd
	out  *nstest.SyncBuffer
	done chan struct{}
}

func (l *Lab) start(ctx context.Context, argv ...string) (*proc, error) {
	p := &proc{out: &nstest.SyncBuffer{}, done: make(chan struct{})}
	// Not CommandContext: stop decides how the process ends (SIGTERM
	// first, so lvsd removes its guard and restores offloads).
	p.cmd = l.Fwd.Cmd(context.Background(), argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(argv[0]), err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	// Whatever happens to the run, the process does not outlive it.
	l.tb.Cleanup(func() { _, _ = p.stop() })
	context.AfterFunc(ctx, func() { _ = p.cmd.Process.Kill() })
	return p, nil
}

// cpu is the process's user and system time so far, all threads, plus
// that of ksoftirqd (pid, if not 0).
func (p *proc) cpu(ksoftirqd int) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		t, err := processTime(p.cmd.Process.Pid)
		if err != nil || ksoftirqd == 0 {
			return t, err
		}
		k, err := processTime(ksoftirqd)
		return t + k, err
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits a little, then kills. It returns the output.
func (p *proc) stop() (string, error) {
	if p.exited() {
		if st := p.cmd.ProcessState; st != nil && !st.Success() {
			return p.out.String(), fmt.Errorf("exited early: %v", st)
		}
		return p.out.String(), nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return p.out.String(), errors.New("did not stop on SIGTERM; killed")
	}
	if st := p.cmd.ProcessState; !st.Success() {
		return p.out.String(), fmt.Errorf("exit: %v", st)
	}
	return p.out.String(), nil
}

// buildBenchfwd builds the reference forwarder's command into a temporary
// directory removed with tb.
func buildBenchfwd(tb testing.TB) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := tb.TempDir()
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", dir+"/", "./internal/benchfwd/cmd/benchfwd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build benchfwd: %v\n%s", err, out)
	}
	return filepath.Join(dir, "benchfwd")
}

// nftScript applies an nftables script in ns.
func nftScript(tb testing.TB, ns *nstest.NS, script string) {
	tb.Helper()
	cmd := ns.Cmd(context.Background(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%s: nft: %v: %s\n%s", ns.Name, err, out, script)
	}
}

// setRPS steers the receive processing of dev's single queue to cpu. sysfs
// must be the namespace's own, hence ip netns exec (which remounts it)
// rather than Do.
func setRPS(tb testing.TB, ns *nstest.NS, dev string, cpu int) {
	tb.Helper()
	mask := "0"
	if cpu >= 0 {
		mask = strconv.FormatUint(1<<cpu, 16)
	}
	ns.Run("sh", "-c", fmt.Sprintf("echo %s > /sys/class/net/%s/queues/rx-0/rps_cpus", mask, dev))
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

func lastLine(s string) []byte {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return []byte(s)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// EnvDuration reads a duration from the environment (for scripts tuning a
// run), or returns def.
func EnvDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
