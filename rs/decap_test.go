package rs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

var (
	tDIP    = netip.MustParseAddr("172.16.0.1")
	tRIP    = netip.MustParseAddr("172.16.0.2")
	tVIP    = netip.MustParseAddr("207.175.44.110")
	tVIP2   = netip.MustParseAddr("207.175.44.111")
	tClient = netip.MustParseAddr("10.0.0.2")
)

func TestDecapsulateValid(t *testing.T) {
	inner := innerUDP(t, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(tVIP2, 8080), []byte("hello"))
	pkt := encap(t, tDIP, tRIP, 0, inner)
	got, v := Decapsulate(pkt, []netip.Addr{tVIP, tVIP2})
	if v != Deliver {
		t.Fatalf("verdict %v, want deliver", v)
	}
	if !bytes.Equal(got, inner) {
		t.Fatalf("inner packet changed:\n got %x\nwant %x", got, inner)
	}
	// The independent decoder agrees the result is a sound UDP datagram.
	p := gopacket.NewPacket(got, layers.LayerTypeIPv4, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); !ok || u.DstPort != 8080 || string(u.Payload) != "hello" {
		t.Fatalf("decoded %v", p)
	}
}

func TestDecapsulateOuterOptionsAndPadding(t *testing.T) {
	inner := innerUDP(t, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(tVIP, 8080), []byte("opts"))
	pkt := encap(t, tDIP, tRIP, 0, inner,
		layers.IPv4Option{OptionType: 1}, layers.IPv4Option{OptionType: 1}, layers.IPv4Option{OptionType: 1}, layers.IPv4Option{OptionType: 0})
	if ihl := pkt[0] & 0x0f; ihl != 6 {
		t.Fatalf("test packet IHL %d, want 6", ihl)
	}
	// Bytes beyond the outer total length (link padding) are not inner data.
	pkt = append(pkt, 0xde, 0xad)
	got, v := Decapsulate(pkt, []netip.Addr{tVIP})
	if v != Deliver || !bytes.Equal(got, inner) {
		t.Fatalf("verdict %v, inner %x, want deliver %x", v, got, inner)
	}
}

func TestDecapsulateDrops(t *testing.T) {
	inner := innerUDP(t, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(tVIP, 8080), []byte("payload"))
	good := encap(t, tDIP, tRIP, 0, inner)
	// A mutation keeps both header checksums right (where the IHL lets
	// them be computed), so each case reaches the check it is about.
	mut := func(f func(p []byte) []byte) []byte { return fixChecksums(f(append([]byte(nil), good...))) }
	raw := func(f func(p []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	other := innerUDP(t, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), 8080), nil)
	cases := []struct {
		name string
		pkt  []byte
		want Verdict
	}{
		{"empty", nil, DropShort},
		{"19 bytes", good[:19], DropShort},
		{"outer IPv6", mut(func(p []byte) []byte { p[0] = 0x65; return p }), DropOuterVersion},
		{"outer IHL 4", mut(func(p []byte) []byte { p[0] = 0x44; return p }), DropOuterHeaderLength},
		{"outer IHL beyond packet", mut(func(p []byte) []byte { p[0] = 0x4f; return p[:40] }), DropOuterHeaderLength},
		{"outer total length beyond packet", mut(func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], uint16(len(p)+1)); return p }), DropOuterTotalLength},
		{"outer total length below header", mut(func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], 19); return p }), DropOuterTotalLength},
		{"outer protocol UDP", mut(func(p []byte) []byte { p[9] = 17; return p }), DropOuterProtocol},
		{"outer more fragments", mut(func(p []byte) []byte { p[6] |= 0x20; return p }), DropOuterFragment},
		{"outer fragment offset", mut(func(p []byte) []byte { p[7] = 1; return p }), DropOuterFragment},
		{"outer checksum", raw(func(p []byte) []byte { p[10] ^= 0xff; return p }), DropOuterChecksum},
		{"no inner bytes", encap(t, tDIP, tRIP, 0, nil), DropInnerHeaderLength},
		{"inner IPv6", mut(func(p []byte) []byte { p[20] = 0x60; return p }), DropInnerVersion},
		{"inner IHL 3", mut(func(p []byte) []byte { p[20] = 0x43; return p }), DropInnerHeaderLength},
		{"inner truncated header", encap(t, tDIP, tRIP, 0, inner[:12]), DropInnerHeaderLength},
		{"inner truncated payload", encap(t, tDIP, tRIP, 0, inner[:len(inner)-1]), DropInnerTotalLength},
		{"inner total length below header", mut(func(p []byte) []byte { binary.BigEndian.PutUint16(p[22:], 10); return p }), DropInnerTotalLength},
		{"inner checksum", raw(func(p []byte) []byte { p[30] ^= 0xff; return p }), DropInnerChecksum},
		{"inner not for a VIP", encap(t, tDIP, tRIP, 0, other), DropNotVIP},
		{"outer CE, inner not-ECT", encap(t, tDIP, tRIP, 0x03, inner), DropECN},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, v := Decapsulate(c.pkt, []netip.Addr{tVIP})
			if v != c.want || got != nil {
				t.Fatalf("verdict %v (inner %d bytes), want %v", v, len(got), c.want)
			}
		})
	}
	if _, v := Decapsulate(good, nil); v != DropNotVIP {
		t.Fatalf("no VIPs: verdict %v, want not-vip", v)
	}
}

// fixChecksums recomputes the outer header checksum and the inner one,
// where the header lengths allow.
func fixChecksums(p []byte) []byte {
	fix := func(h []byte) int {
		if len(h) < 20 || h[0]>>4 != 4 {
			return 0
		}
		hl := int(h[0]&0x0f) * 4
		if hl < 20 || hl > len(h) {
			return 0
		}
		h[10], h[11] = 0, 0
		var sum uint32
		for i := 0; i < hl; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(h[i:]))
		}
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
		return hl
	}
	if hl := fix(p); hl != 0 {
		fix(p[hl:])
	}
	return p
}

// ipChecksumOK recomputes the header checksum from scratch.
func ipChecksumOK(h []byte) bool {
	var sum uint32
	for i := 0; i < int(h[0]&0x0f)*4; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum) == 0xffff
}

func TestDecapsulateECN(t *testing.T) {
	for _, c := range []struct {
		name              string
		outerTOS, innerIn uint8
		want              uint8
	}{
		{"outer CE marks ECT(0)", 0x03, 0xb8 | 0x02, 0xb8 | 0x03},
		{"outer CE marks ECT(1)", 0x03, 0x01, 0x03},
		{"outer CE, inner CE", 0x03, 0x03, 0x03},
		{"outer ECT(0) leaves not-ECT", 0x02, 0x00, 0x00},
		{"outer DSCP not copied back", 0xfc, 0x02, 0x02},
	} {
		t.Run(c.name, func(t *testing.T) {
			ip := ip4(tClient, tVIP, layers.IPProtocolUDP, c.innerIn)
			udp := &layers.UDP{SrcPort: 1, DstPort: 2}
			_ = udp.SetNetworkLayerForChecksum(ip)
			inner := serialize(t, ip, udp, gopacket.Payload("x"))
			got, v := Decapsulate(encap(t, tDIP, tRIP, c.outerTOS, inner), []netip.Addr{tVIP})
			if v != Deliver {
				t.Fatalf("verdict %v", v)
			}
			if got[1] != c.want {
				t.Fatalf("inner TOS %#x, want %#x", got[1], c.want)
			}
			if !ipChecksumOK(got) {
				t.Fatalf("inner header checksum wrong after the TOS update: %x", got[:20])
			}
		})
	}
}

// FuzzDecapsulate: the parser never panics, and what it delivers lies
// inside the input and is addressed to a VIP.
func FuzzDecapsulate(f *testing.F) {
	inner := innerUDP(f, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(tVIP, 8080), []byte("seed"))
	f.Add(encap(f, tDIP, tRIP, 0, inner))
	f.Add(encap(f, tDIP, tRIP, 3, inner[:25]))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		got, v := Decapsulate(pkt, []netip.Addr{tVIP})
		if v == Deliver {
			if len(got) < 20 || netip.AddrFrom4([4]byte(got[16:20])) != tVIP {
				t.Fatalf("delivered %x", got)
			}
		} else if got != nil {
			t.Fatalf("verdict %v with inner bytes", v)
		}
	})
}

// seqpacketPair returns two connected non-blocking datagram files: what is
// written to one is read from the other, packet by packet, as from a raw
// socket or a TUN device.
func seqpacketPair(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestDecapsulatorRun(t *testing.T) {
	wire, in := seqpacketPair(t)
	out, tun := seqpacketPair(t)
	d := NewDecapsulator(in, out, []netip.Addr{tVIP})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	inner := innerUDP(t, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(tVIP, 8080), []byte("through"))
	other := innerUDP(t, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(tRIP, 8080), nil)
	for _, p := range [][]byte{encap(t, tDIP, tRIP, 0, other), {0x45, 0, 0}, encap(t, tDIP, tRIP, 0, inner)} {
		if _, err := wire.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2048)
	_ = tun.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := tun.Read(buf)
	if err != nil {
		t.Fatalf("read from the TUN side: %v", err)
	}
	if !bytes.Equal(buf[:n], inner) {
		t.Fatalf("TUN side got %x, want %x", buf[:n], inner)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	s := d.Stats()
	if s.Received != 3 || s.Delivered() != 1 || s.Verdicts[DropNotVIP] != 1 || s.Verdicts[DropShort] != 1 || s.Dropped() != 2 {
		t.Fatalf("stats %s", s)
	}
	// Nothing else reached the TUN side.
	_ = tun.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := tun.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("extra packet on the TUN side: %d bytes, %v", n, err)
	}
}

func TestDecapsulatorTUNGone(t *testing.T) {
	wire, in := seqpacketPair(t)
	out, _ := seqpacketPair(t)
	d := NewDecapsulator(in, out, []netip.Addr{tVIP})
	out.Close() // as when the device is deleted under the decapsulator
	inner := innerUDP(t, netip.AddrPortFrom(tClient, 1), netip.AddrPortFrom(tVIP, 2), nil)
	if _, err := wire.Write(encap(t, tDIP, tRIP, 0, inner)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Run(ctx); !errors.Is(err, errTUNGone) {
		t.Fatalf("Run: %v, want %v", err, errTUNGone)
	}
	if s := d.Stats(); s.WriteErrors != 1 || s.Delivered() != 0 {
		t.Fatalf("stats %s", s)
	}
}

// One packet through read, decapsulation and write allocates nothing.
func TestDecapsulatorZeroAlloc(t *testing.T) {
	wire, in := seqpacketPair(t)
	out, tun := seqpacketPair(t)
	d := NewDecapsulator(in, out, []netip.Addr{tVIP2, tVIP})
	pkt := encap(t, tDIP, tRIP, 0x03, innerUDP(t, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(tVIP, 8080), make([]byte, 1200)))
	pkt[21] |= 0x02 // inner ECT(0): exercise the CE rewrite too
	fixChecksums(pkt)
	buf := make([]byte, 2048)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := wire.Write(pkt); err != nil {
			t.Fatal(err)
		}
		if err := d.step(); err != nil {
			t.Fatal(err)
		}
		if _, err := tun.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per packet, want 0", allocs)
	}
	if s := d.Stats(); s.Delivered() == 0 || s.Dropped() != 0 {
		t.Fatalf("stats %s", s)
	}
}

func BenchmarkDecapsulate(b *testing.B) {
	pkt := encap(b, tDIP, tRIP, 0, innerUDP(b, netip.AddrPortFrom(tClient, 40000), netip.AddrPortFrom(tVIP, 8080), make([]byte, 1400)))
	vips := []netip.Addr{tVIP2, tVIP}
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, v := Decapsulate(pkt, vips); v != Deliver {
			b.Fatal(v)
		}
	}
}
