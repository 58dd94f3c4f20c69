package sched

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// BenchmarkSchedule measures one decision over 10 destinations (weights 1..10,
// a few connections each) for every scheduler. Flows cycle through 1024
// client addresses and ports and 64 destination addresses (so lblc/lblcr
// mostly hit their cache), with a clock advancing 1 ms per decision.
func BenchmarkSchedule(b *testing.B) {
	const nflows = 1024
	flows := make([]Flow, nflows)
	for i := range flows {
		flows[i] = Flow{
			Proto:   protoTCP,
			SrcAddr: netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}),
			SrcPort: uint16(20000 + i),
			DstAddr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 64)}),
			DstPort: 80,
		}
	}
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			var dests []*Dest
			for i := range 10 {
				d := NewDest(netip.AddrFrom4([4]byte{172, 16, 0, byte(i + 1)}), 80, int32(i+1))
				d.ActiveConns = uint32(i % 4)
				d.InactConns = uint32(i % 7)
				dests = append(dests, d)
			}
			s, err := New(name, 0, WithRand(rand.New(rand.NewPCG(1, 2))))
			if err != nil {
				b.Fatal(err)
			}
			s.Update(dests)
			var now int64
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				f := &flows[i%nflows]
				now += 1e6
				f.Now = now
				if s.Schedule(f) == nil {
					b.Fatal("no destination")
				}
			}
		})
	}
}

// BenchmarkUpdate measures a table rebuild (ipvsadm -a/-e) for the
// schedulers that keep one.
func BenchmarkUpdate(b *testing.B) {
	for _, name := range []string{"sh", "dh", "mh", "wrr"} {
		b.Run(name, func(b *testing.B) {
			var dests []*Dest
			for i := range 10 {
				dests = append(dests, NewDest(netip.AddrFrom4([4]byte{172, 16, 0, byte(i + 1)}), 80, int32(i+1)))
			}
			s, err := New(name, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.Update(dests)
			}
		})
	}
}
