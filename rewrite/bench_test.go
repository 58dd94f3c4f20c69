package rewrite_test

import (
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

// Benchmarks of the per-packet path. Each reports allocations (all must be
// 0) and bytes per second of the frame handled. TTL is restored between
// iterations because every forwarding transform decrements it.

func benchFrame(b *testing.B, frame []byte) ([]byte, rewrite.Packet) {
	b.Helper()
	f := make([]byte, len(frame), len(frame)+64)
	copy(f, frame)
	var p rewrite.Packet
	if err := rewrite.Parse(f, &p); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	return f, p
}

func BenchmarkParse(b *testing.B) {
	f, _ := benchFrame(b, clientSYN().frame(b))
	var p rewrite.Packet
	for b.Loop() {
		if err := rewrite.Parse(f, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseGopacket decodes the same frame with gopacket's fastest
// path (DecodingLayerParser over preallocated layers, no copy), the
// decoder of github.com/google/gopacket and its maintained fork: the
// reference for why lvsd parses with its own views and keeps gopacket in
// the tests.
func BenchmarkParseGopacket(b *testing.B) {
	f, _ := benchFrame(b, clientSYN().frame(b))
	var (
		eth     layers.Ethernet
		ip4     layers.IPv4
		tcp     layers.TCP
		payload gopacket.Payload
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &tcp, &payload)
	parser.IgnoreUnsupported = true
	decoded := make([]gopacket.LayerType, 0, 4)
	for b.Loop() {
		if err := parser.DecodeLayers(f, &decoded); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDR(b *testing.B) {
	f, p := benchFrame(b, clientSYN().frame(b))
	for b.Loop() {
		f[p.L3+8] = 64
		if err := rewrite.DR(f, &p, hwRS, hwDirector); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNATIn(b *testing.B) {
	f, p := benchFrame(b, clientData().frame(b))
	for b.Loop() {
		f[p.L3+8] = 64
		if err := rewrite.NATIn(f, &p, apRS); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNATOut(b *testing.B) {
	f, p := benchFrame(b, rsFNATData().frame(b))
	for b.Loop() {
		f[p.L3+8] = 64
		if err := rewrite.NATOut(f, &p, apVIP); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFULLNATIn(b *testing.B) {
	f, p := benchFrame(b, clientData().frame(b))
	for b.Loop() {
		f[p.L3+8] = 64
		if err := rewrite.FULLNATIn(f, &p, apLocal, apRS); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFULLNATOut(b *testing.B) {
	f, p := benchFrame(b, rsFNATData().frame(b))
	for b.Loop() {
		f[p.L3+8] = 64
		if err := rewrite.FULLNATOut(f, &p, apVIP, apClient); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTUNEncap(b *testing.B) {
	f, p := benchFrame(b, clientData().frame(b))
	out := make([]byte, 2048)
	tun := rewrite.IPIP{Src: apLocal.Addr(), Dst: apRS.Addr(), DstMAC: hwRS, SrcMAC: hwDirector, MTU: 1500, ID: 1}
	p0 := p
	for b.Loop() {
		p = p0
		if _, err := rewrite.EncapIPIP(out, f, &p, &tun); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTOAInsert includes restoring the 99-byte frame each iteration,
// since the insertion grows it.
func BenchmarkTOAInsert(b *testing.B) {
	in := clientData().frame(b)
	f, p := benchFrame(b, in)
	p0 := p
	for b.Loop() {
		f = f[:len(in)]
		copy(f, in)
		p = p0
		var err error
		if f, err = rewrite.InsertTOA(f, &p, apClient, 1500); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClampMSS(b *testing.B) {
	f, p := benchFrame(b, clientSYN().frame(b))
	at := p.L4 + 22 // the MSS value of a Linux SYN
	for b.Loop() {
		binary.BigEndian.PutUint16(f[at:], 1460)
		if _, err := rewrite.ClampMSS(f, &p, 1400); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkICMPErrorNATIn(b *testing.B) {
	f, p := benchFrame(b, icmpAbout(routerToVIP(), 3, 4, 1400, vipReply()).frame(b))
	for b.Loop() {
		f[p.L3+8] = 64
		if err := rewrite.NATInICMP(f, &p, apRS); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChecksumFull(b *testing.B) {
	for _, n := range []int{64, 1500} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var sink uint16
			for b.Loop() {
				sink += rewrite.Checksum(buf)
			}
			_ = sink
		})
	}
}

func BenchmarkChecksumIncremental(b *testing.B) {
	b.ReportAllocs()
	sum := uint16(0x1c46)
	addr := uint32(0xc000020a)
	for b.Loop() {
		// A NAT's worth: one address and one port.
		sum = rewrite.UpdateChecksum32(sum, addr, addr^0x00ff00ff)
		sum = rewrite.UpdateChecksum16(sum, 80, 8080)
		addr++
	}
	_ = sum
}

func sizeName(n int) string {
	if n == 64 {
		return "64B"
	}
	return "1500B"
}

func BenchmarkRemoveTimestamps(b *testing.B) {
	in := clientSYN().frame(b)
	f, p := benchFrame(b, in)
	for b.Loop() {
		copy(f, in)
		if _, err := rewrite.RemoveTimestamps(f, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFULLNATSeqOutSACK(b *testing.B) {
	f, p := benchFrame(b, sackSegment(1, []uint32{1, 2, 3, 4}).frame(b))
	for b.Loop() {
		if err := rewrite.FULLNATSeqOut(f, &p, 0x1234567); err != nil {
			b.Fatal(err)
		}
	}
}
