package rewrite

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestForwardedEqualsRecompute: the incremental header checksum of
// forwarding (TTL less one, new addresses) is byte for byte what the full
// recomputation gives, for random valid headers with and without options,
// including the two representations of a zero checksum.
func TestForwardedEqualsRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	zeroSums := 0
	for i := range 200000 {
		hl := IPv4MinHeaderLen + 4*r.IntN(11)
		h := make([]byte, hl)
		for j := range h {
			h[j] = byte(r.Uint32())
		}
		h[0] = 0x40 | byte(hl/4)
		h[8] = byte(2 + r.IntN(254))
		if i%7 == 0 {
			// Steer toward a zero sum: choose the last word so the
			// header (checksum field zero) sums to 0xFFFF.
			binary.BigEndian.PutUint16(h[10:12], 0)
			binary.BigEndian.PutUint16(h[hl-2:], 0)
			binary.BigEndian.PutUint16(h[hl-2:], ^OnesSum(h, 0))
		}
		setIPv4Checksum(h)
		if i%5 == 0 && binary.BigEndian.Uint16(h[10:12]) == 0 {
			// The other zero, which verifies too.
			binary.BigEndian.PutUint16(h[10:12], 0xffff)
			zeroSums++
		}
		if OnesSum(h, 0) != 0xffff {
			t.Fatalf("test header does not verify: %x", h)
		}
		ip := IPv4(h)
		hc := ip.Checksum()
		oldSrc, oldDst := binary.BigEndian.Uint32(h[12:16]), binary.BigEndian.Uint32(h[16:20])
		if r.IntN(3) != 0 {
			binary.BigEndian.PutUint32(h[12:16], r.Uint32())
		}
		if r.IntN(3) != 0 {
			binary.BigEndian.PutUint32(h[16:20], r.Uint32())
		}
		ip.DecTTL()
		want := append([]byte(nil), h...)
		setIPv4Checksum(want)
		ip.forwarded(hc, oldSrc, oldDst)
		if got := ip.Checksum(); got != IPv4(want).Checksum() {
			t.Fatalf("header %x (checksum before %04x): incremental %04x, recomputed %04x", want, hc, got, IPv4(want).Checksum())
		}
	}
	if zeroSums == 0 {
		t.Error("no header with checksum 0xFFFF tried")
	}
}

// TestHeaderSum: the 20-byte fast path sums as OnesSum does.
func TestHeaderSum(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		h := make([]byte, IPv4MinHeaderLen+4*r.IntN(2))
		for j := range h {
			h[j] = byte(r.Uint32())
		}
		if r.IntN(50) == 0 {
			clear(h)
		}
		if got, want := headerSum(h), OnesSum(h, 0); got != want {
			t.Fatalf("%x: headerSum %04x, OnesSum %04x", h, got, want)
		}
	}
}
