package capture

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lvslab/internal/nstest"
)

const benchBatch = 64

// threadCPU is the CPU time (user and system, which includes the softirq
// work done on our behalf in our context) of the calling OS thread. On a
// shared machine it measures our cost where wall time measures the
// neighbours' load as well; callers lock their goroutine to the thread.
func threadCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-ns/op and the rate one core would sustain at that cost.
func reportCPU(b *testing.B, cpu time.Duration) {
	perOp := float64(cpu.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp, "cpu-ns/op")
	if perOp > 0 {
		b.ReportMetric(1e3/perOp, "Mpps/core")
	}
}

// BenchmarkMemPort moves 64-byte frames through an in-memory pair, 64 per
// batch; one op is one frame.
func BenchmarkMemPort(b *testing.B) {
	a, z := NewMemPair(MemConfig{Capacity: 256})
	defer a.Close()
	out := newFrames(benchBatch, 64)
	for i := range out {
		out[i].N = 64
	}
	in := newFrames(benchBatch, 2048)
	b.ReportAllocs()
	b.SetBytes(64)
	b.ResetTimer()
	for done := 0; done < b.N; {
		k := min(benchBatch, b.N-done)
		if _, err := a.WriteBatch(out[:k]); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < k; {
			n, err := z.ReadBatch(in)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		done += k
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
}

// benchLab is gen --(g0|f0)-- fwd --(f1|s0)-- sink. The forwarder's and the
// sink's kernels are kept out with an nftables netdev ingress drop, which
// runs after the packet taps, as lvsd keeps its kernel out of the flows it
// owns. (This kernel has no tc classifier or gact to do it with tc.)
type benchLab struct {
	gen, fwd, sink *nstest.NS
	f0MAC, s0MAC   net.HardwareAddr
	frame          []byte
}

func newBenchLab(b *testing.B) *benchLab {
	nstest.Require(b)
	l := &benchLab{gen: nstest.New(b, "bgen"), fwd: nstest.New(b, "bfwd"), sink: nstest.New(b, "bsink")}
	nstest.Veth(b, l.gen, "g0", l.fwd, "f0", 1500)
	nstest.Veth(b, l.fwd, "f1", l.sink, "s0", 1500)
	for _, d := range []struct {
		ns  *nstest.NS
		dev string
	}{{l.fwd, "f0"}, {l.sink, "s0"}} {
		d.ns.Run("nft", "add", "table", "netdev", "bench")
		d.ns.Run("nft", "add", "chain", "netdev", "bench", "in", "{ type filter hook ingress device "+d.dev+" priority 0; policy drop; }")
	}
	l.f0MAC, l.s0MAC = l.fwd.MAC("f0"), l.sink.MAC("s0")
	// A 64-byte UDP frame (22 bytes of payload), checksums correct.
	l.frame = udpFrame(b, l.gen.MAC("g0"), l.f0MAC, mustAddr("198.51.100.1"), mustAddr("203.0.113.1"), 1024, 80, make([]byte, 22))
	if len(l.frame) != 64 {
		b.Fatalf("frame of %d bytes", len(l.frame))
	}
	return l
}

// generate sends l.frame from g0 as fast as it can until stop closes.
func (l *benchLab) generate(b *testing.B, stop <-chan struct{}) (sent *atomic.Uint64, wait func()) {
	gen := openPort(b, l.gen, Config{Interface: "g0", NoRX: true})
	frames := make([]Frame, benchBatch)
	for i := range frames {
		frames[i] = Frame{Buf: l.frame, N: len(l.frame)}
	}
	sent = new(atomic.Uint64)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := gen.WriteBatch(frames)
			if err != nil {
				b.Error(err)
				return
			}
			sent.Add(uint64(n))
		}
	})
	return sent, wg.Wait
}

// BenchmarkVethTX measures the transmit path alone: 64-byte frames from a
// port to a veth whose peer drops them at tc ingress. One op is one frame.
func BenchmarkVethTX(b *testing.B) {
	l := newBenchLab(b)
	for _, mode := range []TXMode{TXSendmmsg, TXRing} {
		for _, bypass := range []bool{false, true} {
			name := mode.String() + "/qdisc"
			if bypass {
				name = mode.String() + "/bypass"
			}
			b.Run(name, func(b *testing.B) {
				port := openPort(b, l.fwd, Config{Interface: "f1", NoRX: true, TXMode: mode, QdiscBypass: bypass})
				frames := make([]Frame, benchBatch)
				for i := range frames {
					frames[i] = Frame{Buf: l.frame, N: len(l.frame)}
				}
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := threadCPU(b)
				for done := 0; done < b.N; {
					n, err := port.WriteBatch(frames[:min(benchBatch, b.N-done)])
					if err != nil {
						b.Fatal(err)
					}
					done += n
				}
				cpu := threadCPU(b) - cpu0
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
				reportCPU(b, cpu)
				if st := port.Stats(); st.TxDrops != 0 {
					b.ReportMetric(float64(st.TxDrops)/float64(b.N), "drops/op")
				}
			})
		}
	}
}

// BenchmarkVethRXTX forwards 64-byte UDP frames through a receive ring and
// out of a transmit path in the middle namespace, rewriting the MACs (what
// DR does to a frame), while a generator floods the ingress veth. One op is
// one forwarded frame; Mpps is the forwarding rate, rx-drops/op the frames
// the ring had no room for.
func BenchmarkVethRXTX(b *testing.B) {
	l := newBenchLab(b)
	cases := []struct {
		name     string
		zeroCopy bool
		mode     TXMode
		ring     RXRing
	}{
		{"zerocopy/sendmmsg", true, TXSendmmsg, RXRingV3},
		{"zerocopy/ring", true, TXRing, RXRingV3},
		{"copy/sendmmsg", false, TXSendmmsg, RXRingV3},
		{"zerocopy-v2/ring", true, TXRing, RXRingV2},
		{"copy-v2/sendmmsg", false, TXSendmmsg, RXRingV2},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			in := openPort(b, l.fwd, Config{Interface: "f0", NoTX: true, RXRing: tc.ring})
			out := openPort(b, l.fwd, Config{Interface: "f1", NoRX: true, TXMode: tc.mode})
			outMAC := out.Link().MAC
			frames := newFrames(benchBatch, 2048)
			stop := make(chan struct{})
			sent, wait := l.generate(b, stop)
			defer func() { close(stop); wait() }()
			// Warm up: the generator is running and the ring has frames.
			if _, err := in.ReadBatch(frames); err != nil {
				b.Fatal(err)
			}
			before := in.Stats()
			sent0 := sent.Load()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := threadCPU(b)
			for done := 0; done < b.N; {
				var n int
				var err error
				if tc.zeroCopy {
					n, err = in.ReadBatchZeroCopy(frames[:min(benchBatch, b.N-done)])
				} else {
					n, err = in.ReadBatch(frames[:min(benchBatch, b.N-done)])
				}
				if err != nil {
					b.Fatal(err)
				}
				for i := range n {
					buf := frames[i].Buf
					copy(buf[0:6], l.s0MAC)
					copy(buf[6:12], outMAC[:])
				}
				if _, err := out.WriteBatch(frames[:n]); err != nil {
					b.Fatal(err)
				}
				done += n
			}
			b.StopTimer()
			cpu := threadCPU(b) - cpu0
			secs := b.Elapsed().Seconds()
			after := in.Stats()
			b.ReportMetric(float64(b.N)/secs/1e6, "Mpps")
			b.ReportMetric(float64(sent.Load()-sent0)/secs/1e6, "gen-Mpps")
			b.ReportMetric(float64(after.Drops-before.Drops)/float64(b.N), "rx-drops/op")
			reportCPU(b, cpu)
		})
	}
	// The same forwarding loop over plain AF_PACKET sockets, one recvfrom(2)
	// and one sendto(2) per frame: the syscall pattern of
	// github.com/mdlayher/packet (its Conn.ReadFrom/WriteTo), here without
	// its runtime-poller round trip and per-read address allocation, so a
	// lower bound on its cost. The ratio to zerocopy/sendmmsg is why lvsd
	// reads from an mmap'd TPACKET_V3 ring instead.
	b.Run("perframe/recvfrom+sendto", func(b *testing.B) {
		var rx, tx int
		err := l.fwd.Do(func() error {
			var err error
			if rx, err = packetSocket("f0"); err != nil {
				return err
			}
			tx, err = packetSocket("f1")
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(rx)
		defer unix.Close(tx)
		tv := unix.Timeval{Sec: 1}
		if err := unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			b.Fatal(err)
		}
		out := openPort(b, l.fwd, Config{Interface: "f1", NoRX: true})
		outMAC := out.Link().MAC
		stop := make(chan struct{})
		sent, wait := l.generate(b, stop)
		defer func() { close(stop); wait() }()
		buf := make([]byte, 2048)
		if _, _, err := unix.Recvfrom(rx, buf, 0); err != nil {
			b.Fatal(err)
		}
		sent0 := sent.Load()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := threadCPU(b)
		for range b.N {
			n, err := unix.Read(rx, buf)
			if err != nil {
				b.Fatal(err)
			}
			copy(buf[0:6], l.s0MAC)
			copy(buf[6:12], outMAC[:])
			if _, err := unix.Write(tx, buf[:n]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu := threadCPU(b) - cpu0
		secs := b.Elapsed().Seconds()
		b.ReportMetric(float64(b.N)/secs/1e6, "Mpps")
		b.ReportMetric(float64(sent.Load()-sent0)/secs/1e6, "gen-Mpps")
		reportCPU(b, cpu)
	})
	// Let the rings drain before the namespaces go.
	time.Sleep(10 * time.Millisecond)
}

// packetSocket is a plain AF_PACKET raw socket bound to dev, in the calling
// thread's namespace.
func packetSocket(dev string) (int, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return -1, err
	}
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
