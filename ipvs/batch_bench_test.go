package ipvs

import (
	"net/netip"
	"testing"

	"lvslab/capture"
	"lvslab/internal/pktgen"
)

// BenchmarkEngineBatch is the engine's share of the end-to-end packet-rate
// bench (internal/benchnet): 64-byte UDP frames of 4096 established flows
// (as there), consecutive frames of different flows, handled 64 to a batch
// as rxLoop does and flushed to a port that discards them; and the same
// with 65536 flows, whose connection records no longer fit in the CPU's
// caches; and 4096 flows with the caches overwritten before each batch (in
// lvsd the kernel's share of the work evicts the table at 4096 already:
// perf puts lookups at a fifth of lvsd's user time there). It reports
// ns/frame; the frames are copied into the slots first (the ring lends them
// in lvsd), a cost the same for every method, and not timed when cold.
func BenchmarkEngineBatch(b *testing.B) {
	for _, c := range []struct {
		name  string
		rules []string
		addrs int  // client addresses, of 4096 ports each
		cold  bool // the CPU's caches overwritten before each batch
	}{
		{"DR", []string{"-A -u 10.0.0.100:80 -s rr", "-a -u 10.0.0.100:80 -r 172.16.0.2:80 -g"}, 1, false},
		{"NAT", []string{"-A -u 10.0.0.100:80 -s rr", "-a -u 10.0.0.100:80 -r 172.16.0.2:8080 -m"}, 1, false},
		{"FULLNAT", []string{"-A -u 10.0.0.100:80 -s rr", "laddr 172.16.0.10", "-a -u 10.0.0.100:80 -r 172.16.0.2:8080 --fullnat"}, 1, false},
		{"DR-64k", []string{"-A -u 10.0.0.100:80 -s rr", "-a -u 10.0.0.100:80 -r 172.16.0.2:80 -g"}, 16, false},
		{"NAT-64k", []string{"-A -u 10.0.0.100:80 -s rr", "-a -u 10.0.0.100:80 -r 172.16.0.2:8080 -m"}, 16, false},
		{"FULLNAT-64k", []string{"-A -u 10.0.0.100:80 -s rr", "laddr 172.16.0.10 172.16.0.11", "-a -u 10.0.0.100:80 -r 172.16.0.2:8080 --fullnat"}, 16, false},
		{"DR-cold", []string{"-A -u 10.0.0.100:80 -s rr", "-a -u 10.0.0.100:80 -r 172.16.0.2:80 -g"}, 1, true},
		{"NAT-cold", []string{"-A -u 10.0.0.100:80 -s rr", "-a -u 10.0.0.100:80 -r 172.16.0.2:8080 -m"}, 1, true},
		{"FULLNAT-cold", []string{"-A -u 10.0.0.100:80 -s rr", "laddr 172.16.0.10", "-a -u 10.0.0.100:80 -r 172.16.0.2:8080 --fullnat"}, 1, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			fe := newFxEngine(b, c.rules, nil, nil)
			fe.int.Port, fe.ext.Port = &countPort{}, &countPort{}
			frames, err := pktgen.Flows{SrcMAC: clientMAC, DstMAC: extMAC, Src: netip.MustParseAddr(fxClient), SrcAddrs: c.addrs, Ports: 4096,
				Dst: netip.MustParseAddrPort(fxVIP + ":80")}.Frames()
			if err != nil {
				b.Fatal(err)
			}
			w := fe.w
			batch := len(w.rx)
			// fill copies the next batch of frames into the slots.
			fill := func(next int) int {
				for i := range w.rx {
					f := frames[next]
					next = (next + 1) % len(frames)
					n := copy(w.slots[i][headroom:], f)
					w.rx[i] = capture.Frame{Buf: w.slots[i][headroom:], N: n, Len: n}
				}
				return next
			}
			next := 0
			for range len(frames) / batch { // every flow's connection
				next = fill(next)
				fe.handleBatch(w, fe.ext, batch)
			}
			if n := fe.conns.Len(); n != len(frames) {
				b.Fatalf("%d connections, want %d", n, len(frames))
			}
			sent := fe.int.Port.(*countPort).sent
			b.ReportAllocs()
			var evict []byte
			if c.cold {
				evict = make([]byte, 4<<20)
			}
			for b.Loop() {
				if c.cold {
					// The frames too are cold, as the ring hands them over.
					b.StopTimer()
					next = fill(next)
					for i := 0; i < len(evict); i += 64 {
						evict[i]++
					}
					b.StartTimer()
				} else {
					next = fill(next)
				}
				fe.handleBatch(w, fe.ext, batch)
			}
			if got := fe.int.Port.(*countPort).sent - sent; got != b.N*batch {
				b.Fatalf("%d frames sent, want %d", got, b.N*batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/frame")
		})
	}
}

// countPort counts the frames written to it and discards them.
type countPort struct{ nullPort }

func (p *countPort) WriteBatch(f []capture.Frame) (int, error) {
	p.sent += len(f)
	return len(f), nil
}
