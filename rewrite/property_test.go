package rewrite_test

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"testing"

	"lvslab/rewrite"
)

// Property tests: incremental checksum arithmetic against full recomputation
// with refSum (helpers_test.go), on seeded random data, deterministically.

const propertyCases = 100_000

func refChecksum(b []byte) uint16 { return ^refSum(b) }

// randomBuffer returns a random buffer of 2..maxLen bytes (odd lengths
// included) that is never all zero outside [skipFrom, skipTo): the one case
// where a ones'-complement checksum has two encodings and RFC 1624 cannot
// tell which the full computation picks (it matters for no real header: the
// IPv4 version and the pseudo-header protocol are never zero).
func randomBuffer(r *rand.Rand, maxLen int) []byte {
	b := make([]byte, 2+r.IntN(maxLen-1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func ensureNonZeroOutside(r *rand.Rand, b []byte, from, to int) {
	for i := range b {
		if (i < from || i >= to) && b[i] != 0 {
			return
		}
	}
	for {
		i := r.IntN(len(b))
		if i < from || i >= to {
			b[i] = 1 + byte(r.IntN(255))
			return
		}
	}
}

// forceSum adjusts the word at even offset w (not overlapping the field) so
// that the buffer's checksum becomes want.
func forceChecksum(b []byte, w int, want uint16) {
	binary.BigEndian.PutUint16(b[w:], 0)
	// checksum = ~(S + x) = want  =>  x = ~want - S (ones' complement).
	s := refSum(b)
	x := uint32(^want) + uint32(^s)
	x = x>>16 + x&0xffff
	x = x>>16 + x&0xffff
	binary.BigEndian.PutUint16(b[w:], uint16(x))
}

func TestPropertyFullChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < propertyCases; i++ {
		b := make([]byte, r.IntN(300))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		switch i % 16 {
		case 0:
			clear(b)
		case 1:
			for j := range b {
				b[j] = 0xff
			}
		}
		init := uint16(r.Uint32())
		if got, want := rewrite.OnesSum(b, init), refSum([]byte{byte(init >> 8), byte(init)}, b); got != want {
			t.Fatalf("case %d: OnesSum(% x, %#04x) = %#04x, want %#04x", i, b, init, got, want)
		}
		if got, want := rewrite.Checksum(b), refChecksum(b); got != want {
			t.Fatalf("case %d: Checksum(% x) = %#04x, want %#04x", i, b, got, want)
		}
	}
}

func TestPropertyIncremental16(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var zeroBefore, zeroAfter, oddOffset, udpMangled int
	for i := 0; i < propertyCases; i++ {
		b := randomBuffer(r, 200)
		if len(b) < 4 {
			b = append(b, 1, 2)
		}
		// Any offset, odd ones included: those pass the values byte-swapped.
		off := r.IntN(len(b) - 1)
		ensureNonZeroOutside(r, b, off, off+2)
		var newVal uint16
		switch i % 8 {
		case 0:
			newVal = 0
		case 1:
			newVal = 0xffff
		default:
			newVal = uint16(r.Uint32())
		}
		// Steer some cases onto the 0x0000 checksum before or after.
		w := -1
		for j := 0; j+1 < len(b); j += 2 {
			if j+1 < off || j > off+1 {
				w = j
				break
			}
		}
		if w >= 0 && i%7 == 0 {
			forceChecksum(b, w, 0)
		}
		old := binary.BigEndian.Uint16(b[off:])
		before := refChecksum(b)
		after := append([]byte(nil), b...)
		binary.BigEndian.PutUint16(after[off:], newVal)
		if w >= 0 && i%7 == 3 {
			forceChecksum(after, w, 0)
			binary.BigEndian.PutUint16(b[w:], binary.BigEndian.Uint16(after[w:]))
			before = refChecksum(b)
		}
		o, n := old, newVal
		if off%2 == 1 {
			o, n = bits.ReverseBytes16(o), bits.ReverseBytes16(n)
			oddOffset++
		}
		if before == 0 {
			zeroBefore++
		}
		if refChecksum(after) == 0 {
			zeroAfter++
			udpMangled++
		}
		if got, want := rewrite.UpdateChecksum16(before, o, n), refChecksum(after); got != want {
			t.Fatalf("case %d: field at %d %#04x→%#04x in % x: incremental %#04x, full %#04x", i, off, old, newVal, b, got, want)
		}
		// The UDP rule: 0 on the wire is "no checksum", so both map 0→0xFFFF.
		if got, want := rewrite.UDPWireChecksum(rewrite.UpdateChecksum16(rewrite.UDPWireChecksum(before), o, n)), rewrite.UDPWireChecksum(refChecksum(after)); got != want {
			t.Fatalf("case %d: UDP wire checksum: incremental %#04x, full %#04x", i, got, want)
		}
		// The partial form: the field holds the sum itself.
		if got, want := rewrite.UpdatePartial16(refSum(b), o, n), refSum(after); got != want {
			t.Fatalf("case %d: partial sum: incremental %#04x, full %#04x", i, got, want)
		}
	}
	// The edge cases must have been exercised, not just hoped for.
	if zeroBefore < 1000 || zeroAfter < 1000 || oddOffset < 1000 || udpMangled < 1000 {
		t.Fatalf("edge cases too rare: checksum 0 before %d, after %d, odd offsets %d", zeroBefore, zeroAfter, oddOffset)
	}
}

func TestPropertyIncremental32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < propertyCases; i++ {
		b := randomBuffer(r, 200)
		if len(b) < 6 {
			b = append(b, 9, 9, 9, 9)
		}
		off := 2 * r.IntN((len(b)-4)/2+1)
		ensureNonZeroOutside(r, b, off, off+4)
		var newVal uint32
		switch i % 8 {
		case 0:
			newVal = 0
		case 1:
			newVal = 0xffffffff
		default:
			newVal = r.Uint32()
		}
		if i%5 == 0 {
			w := (off + 4) % (len(b) - 1) &^ 1
			if w+2 <= off || w >= off+4 {
				forceChecksum(b, w, 0)
			}
		}
		old := binary.BigEndian.Uint32(b[off:])
		after := append([]byte(nil), b...)
		binary.BigEndian.PutUint32(after[off:], newVal)
		if got, want := rewrite.UpdateChecksum32(refChecksum(b), old, newVal), refChecksum(after); got != want {
			t.Fatalf("case %d: 32-bit field at %d %#08x→%#08x: incremental %#04x, full %#04x", i, off, old, newVal, got, want)
		}
		if got, want := rewrite.UpdatePartial32(refSum(b), old, newVal), refSum(after); got != want {
			t.Fatalf("case %d: partial: incremental %#04x, full %#04x", i, got, want)
		}
	}
}

// randomFrame builds a valid Ethernet/IPv4/TCP-or-UDP frame by hand, with
// random VLAN tag, IP options, TCP options, payload (odd lengths too),
// padding, TTL >= 2 and checksums computed by refSum. With partial the L4
// field holds the pseudo-header sum; udpNoSum leaves a UDP checksum at 0.
func randomFrame(r *rand.Rand, proto uint8, partial, udpNoSum bool) []byte {
	l2 := 14
	tagged := r.IntN(4) == 0
	if tagged {
		l2 = 18
	}
	ipOpt := 4 * r.IntN(11)
	ihl := 20 + ipOpt
	l4h := 8
	if proto == 6 {
		l4h = 20 + 4*r.IntN(11)
	}
	payload := r.IntN(200)
	total := ihl + l4h + payload
	frame := make([]byte, l2+total+r.IntN(3)*3) // some trailing padding
	for i := range frame {
		frame[i] = byte(r.Uint32())
	}
	if tagged {
		binary.BigEndian.PutUint16(frame[12:], 0x8100)
		binary.BigEndian.PutUint16(frame[16:], 0x0800)
	} else {
		binary.BigEndian.PutUint16(frame[12:], 0x0800)
	}
	ip := frame[l2 : l2+ihl]
	ip[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	binary.BigEndian.PutUint16(ip[6:], uint16(r.IntN(2))<<14) // DF or not, never a fragment
	ip[8] = byte(2 + r.IntN(254))
	ip[9] = proto
	for i := 20; i < ihl; i++ {
		ip[i] = 1 // NOP options keep any parser happy
	}
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], refChecksum(ip))
	seg := frame[l2+ihl : l2+total]
	csumAt := 6
	if proto == 6 {
		seg[12] = byte(l4h/4) << 4
		csumAt = 16
		for i := 20; i < l4h; i++ {
			seg[i] = 1
		}
	} else {
		binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	}
	seg[csumAt], seg[csumAt+1] = 0, 0
	pseudo := refPseudo(ip[12:16], ip[16:20], proto, len(seg))
	switch {
	case partial:
		binary.BigEndian.PutUint16(seg[csumAt:], refSum(pseudo))
	case proto == 17 && udpNoSum:
	default:
		c := refChecksum(append(pseudo, seg...))
		if proto == 17 && c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(seg[csumAt:], c)
	}
	return frame
}

// expectTranslated computes the expected output of a translation from
// scratch: fields written, TTL decremented, every checksum recomputed.
func expectTranslated(in []byte, src, dst netip.AddrPort, partial bool) []byte {
	out := append([]byte(nil), in...)
	l2 := 14
	if binary.BigEndian.Uint16(out[12:]) == 0x8100 {
		l2 = 18
	}
	ihl := int(out[l2]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(out[l2+2:]))
	ip := out[l2 : l2+ihl]
	seg := out[l2+ihl : l2+total]
	proto := ip[9]
	if src.IsValid() {
		a := src.Addr().As4()
		copy(ip[12:16], a[:])
		binary.BigEndian.PutUint16(seg[0:], src.Port())
	}
	if dst.IsValid() {
		a := dst.Addr().As4()
		copy(ip[16:20], a[:])
		binary.BigEndian.PutUint16(seg[2:], dst.Port())
	}
	ip[8]--
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], refChecksum(ip))
	csumAt := 16
	if proto == 17 {
		csumAt = 6
	}
	seg[csumAt], seg[csumAt+1] = 0, 0
	pseudo := refPseudo(ip[12:16], ip[16:20], proto, len(seg))
	if partial {
		binary.BigEndian.PutUint16(seg[csumAt:], refSum(pseudo))
		return out
	}
	c := refChecksum(append(pseudo, seg...))
	if proto == 17 && c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[csumAt:], c)
	return out
}

func randomAddrPort(r *rand.Rand) netip.AddrPort {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], r.Uint32())
	return netip.AddrPortFrom(netip.AddrFrom4(a), uint16(r.Uint32()))
}

func TestPropertyTranslate(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	n := 40_000
	if testing.Short() {
		n = 4_000
	}
	for i := 0; i < n; i++ {
		proto := uint8(6)
		if i%2 == 1 {
			proto = 17
		}
		partial := i%5 == 0
		udpNoSum := proto == 17 && i%7 == 1
		in := randomFrame(r, proto, partial, udpNoSum)
		a, b := randomAddrPort(r), randomAddrPort(r)
		var src, dst netip.AddrPort
		kind := i / 2 % 4
		frame := append([]byte(nil), in...)
		var p rewrite.Packet
		if err := rewrite.Parse(frame, &p); err != nil {
			t.Fatalf("case %d: Parse of a valid random frame: %v\n% x", i, err, in)
		}
		p.Partial = partial
		var err error
		switch kind {
		case 0:
			dst = a
			err = rewrite.NATIn(frame, &p, a)
		case 1:
			src = a
			err = rewrite.NATOut(frame, &p, a)
		case 2:
			src, dst = a, b
			err = rewrite.FULLNATIn(frame, &p, a, b)
		case 3:
			src, dst = a, b
			err = rewrite.FULLNATOut(frame, &p, a, b)
		}
		if err != nil {
			t.Fatalf("case %d kind %d: %v", i, kind, err)
		}
		want := expectTranslated(in, src, dst, partial)
		if !bytes.Equal(frame, want) {
			t.Fatalf("case %d kind %d proto %d partial %v udpNoSum %v: incremental result differs from full recomputation\n%s",
				i, kind, proto, partial, udpNoSum, frameDiff(frame, want))
		}
		if partial {
			if err := rewrite.CompletePartial(frame, &p); err != nil {
				t.Fatal(err)
			}
			full := expectTranslated(in, src, dst, false)
			// skb_checksum_help stores 0 as 0xFFFF for TCP too; both verify.
			if proto == 6 && !bytes.Equal(frame, full) {
				fixed := append([]byte(nil), full...)
				at := p.L4 + 16
				if binary.BigEndian.Uint16(full[at:]) == 0 {
					binary.BigEndian.PutUint16(fixed[at:], 0xffff)
				}
				full = fixed
			}
			if !bytes.Equal(frame, full) {
				t.Fatalf("case %d: completed partial differs from full recomputation\n%s", i, frameDiff(frame, full))
			}
		}
	}
}

func TestPropertyTOAAndMSS(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	n := 20_000
	if testing.Short() {
		n = 2_000
	}
	for i := 0; i < n; i++ {
		in := randomFrame(r, 6, i%4 == 0, false)
		// Put an MSS option at a random place among the NOP options.
		var p rewrite.Packet
		if err := rewrite.Parse(in, &p); err != nil {
			t.Fatal(err)
		}
		optLen := p.Payload - p.L4 - 20
		if optLen >= 4 {
			at := p.L4 + 20 + r.IntN(optLen-3)
			in[at], in[at+1] = 2, 4
			binary.BigEndian.PutUint16(in[at+2:], uint16(r.Uint32()))
			in[p.L4+13] |= 0x02 // SYN
			refreshL4(in, &p, i%4 == 0)
		}
		frame := make([]byte, len(in), len(in)+8)
		copy(frame, in)
		if err := rewrite.Parse(frame, &p); err != nil {
			t.Fatal(err)
		}
		p.Partial = i%4 == 0
		limit := uint16(r.IntN(3000))
		if _, err := rewrite.ClampMSS(frame, &p, limit+1); err != nil && optLen >= 4 {
			t.Fatalf("case %d: ClampMSS: %v", i, err)
		}
		if err := rewrite.CompletePartial(frame, &p); err != nil {
			t.Fatal(err)
		}
		checkValid(t, i, frame, &p)
		out, err := rewrite.InsertTOA(frame, &p, randomAddrPort(r), 65535)
		if optLen > 32 {
			if err != rewrite.ErrNoOptionSpace {
				t.Fatalf("case %d: InsertTOA with %d option bytes: %v", i, optLen, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("case %d: InsertTOA: %v", i, err)
		}
		checkValid(t, i, out, &p)
		if !bytes.Equal(out[p.Payload:p.End], in[p.Payload-8:p.End-8]) {
			t.Fatalf("case %d: payload moved wrongly", i)
		}
	}
}

// refreshL4 recomputes the L4 checksum of a frame after a test edit.
func refreshL4(frame []byte, p *rewrite.Packet, partial bool) {
	seg := frame[p.L4:p.End]
	ip := frame[p.L3:p.L4]
	seg[16], seg[17] = 0, 0
	pseudo := refPseudo(ip[12:16], ip[16:20], 6, len(seg))
	if partial {
		binary.BigEndian.PutUint16(seg[16:], refSum(pseudo))
		return
	}
	binary.BigEndian.PutUint16(seg[16:], refChecksum(append(pseudo, seg...)))
}

func checkValid(t *testing.T, i int, frame []byte, p *rewrite.Packet) {
	t.Helper()
	ip := frame[p.L3:p.L4]
	if refSum(ip) != 0xffff {
		t.Fatalf("case %d: IP checksum invalid", i)
	}
	seg := frame[p.L4:p.End]
	if refSum(refPseudo(ip[12:16], ip[16:20], ip[9], len(seg)), seg) != 0xffff {
		t.Fatalf("case %d: L4 checksum invalid\n% x", i, frame)
	}
}
