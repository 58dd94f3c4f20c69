package rewrite_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"testing"

	"lvslab/rewrite"
)

// Every fuzz target runs its function on the input placed in a buffer with
// fuzzSlack bytes of a known pattern after it, and checks: no panic, the
// slack untouched (beyond any growth the function promises), an error leaves
// the frame unchanged, and a success leaves valid checksums and a Packet
// equal to what Parse says of the output. Inputs get their checksums fixed
// first so the fuzzer reaches past Parse.

const (
	fuzzSlack   = 24
	fuzzPattern = 0xa5
)

// seedFrames adds every golden input and expected frame, and some random
// valid frames, as seeds. The extra arguments are the target's.
func seedFrames(f *testing.F, extra ...any) {
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.txt"))
	for _, file := range files {
		g, err := readGolden(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, fr := range [][]byte{g.input, g.expected} {
			if len(fr) > 0 {
				f.Add(append([]any{fr}, extra...)...)
			}
		}
	}
	r := rand.New(rand.NewPCG(11, 12))
	for i := 0; i < 8; i++ {
		f.Add(append([]any{randomFrame(r, []uint8{6, 17}[i%2], false, i%3 == 0)}, extra...)...)
	}
}

// fixChecksums makes the IPv4, TCP/UDP/ICMP (and quoted IPv4) checksums of
// b valid where the lengths allow, without using the package under test.
// partial stores the pseudo-header sum in the TCP/UDP field instead.
func fixChecksums(b []byte, partial bool) {
	l2 := 14
	if len(b) >= 18 && binary.BigEndian.Uint16(b[12:]) == 0x8100 {
		l2 = 18
	}
	if len(b) < l2+20 || binary.BigEndian.Uint16(b[l2-2:]) != 0x0800 {
		return
	}
	ihl := int(b[l2]&0x0f) * 4
	if ihl < 20 || l2+ihl > len(b) {
		return
	}
	ip := b[l2 : l2+ihl]
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], refChecksum(ip))
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total < ihl || l2+total > len(b) {
		return
	}
	seg := b[l2+ihl : l2+total]
	at := -1
	switch ip[9] {
	case 6:
		if len(seg) >= 20 {
			at = 16
		}
	case 17:
		if len(seg) >= 8 {
			at = 6
		}
	case 1:
		if len(seg) >= 28 {
			q := seg[8:]
			if qhl := int(q[0]&0x0f) * 4; qhl >= 20 && qhl <= len(q) {
				q[10], q[11] = 0, 0
				binary.BigEndian.PutUint16(q[10:], refChecksum(q[:qhl]))
			}
		}
		if len(seg) >= 4 {
			seg[2], seg[3] = 0, 0
			binary.BigEndian.PutUint16(seg[2:], refChecksum(seg))
		}
		return
	}
	if at < 0 {
		return
	}
	if ip[9] == 17 && binary.BigEndian.Uint16(seg[6:]) == 0 && !partial {
		return // keep "no checksum" reachable
	}
	seg[at], seg[at+1] = 0, 0
	pseudo := refPseudo(ip[12:16], ip[16:20], ip[9], len(seg))
	if partial {
		binary.BigEndian.PutUint16(seg[at:], refSum(pseudo))
		return
	}
	c := refChecksum(append(pseudo, seg...))
	if ip[9] == 17 && c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[at:], c)
}

// fuzzFrame returns data in a buffer followed by patterned slack, checksums
// fixed, and the Packet Parse makes of it (perturbed when junk says so, to
// show that a Packet that does not match the frame cannot cause harm).
type fuzzFrame struct {
	buf     []byte
	n       int
	p       rewrite.Packet
	parseOK bool
	junked  bool
}

func newFuzzFrame(data []byte, partial bool, junk uint64) *fuzzFrame {
	ff := &fuzzFrame{buf: make([]byte, len(data)+fuzzSlack), n: len(data)}
	copy(ff.buf, data)
	for i := len(data); i < len(ff.buf); i++ {
		ff.buf[i] = fuzzPattern
	}
	fixChecksums(ff.buf[:ff.n], partial)
	// Errors past the IPv4 header leave a Packet valid through L3 (L4 set),
	// which is all DR, tunnelling and the ICMP builders need.
	_ = rewrite.Parse(ff.buf[:ff.n], &ff.p)
	ff.parseOK = ff.p.L4 != 0
	ff.p.Partial = partial
	if junk&1 == 1 {
		ff.junked = true
		p := &ff.p
		switch junk >> 1 % 6 {
		case 0:
			p.L4 += int(junk>>8) % 64
		case 1:
			p.End = int(junk>>8) % 2000
		case 2:
			p.Payload = int(junk>>8) % 2000
		case 3:
			p.Quote.L4 = int(junk>>8) % 2000
		case 4:
			p.Protocol = uint8(junk >> 8)
		case 5:
			p.L3 = int(junk>>8) % 64
		}
	}
	return ff
}

func (ff *fuzzFrame) frame() []byte { return ff.buf[:ff.n] }

// checkSlack fails if any byte from `from` on differs from the pattern.
func (ff *fuzzFrame) checkSlack(t *testing.T, from int) {
	t.Helper()
	for i := max(from, ff.n); i < len(ff.buf); i++ {
		if ff.buf[i] != fuzzPattern {
			t.Fatalf("wrote past the frame: byte %d of the slack changed", i-ff.n)
		}
	}
}

// checkResult checks checksums and the Packet of a successful transform.
func checkResult(t *testing.T, out []byte, p *rewrite.Packet) {
	t.Helper()
	var q rewrite.Packet
	if err := rewrite.Parse(out, &q); err != nil && q.L4 == 0 {
		t.Fatalf("output does not parse: %v\n% x", err, out)
	}
	q.Partial = p.Partial
	if q != *p {
		t.Fatalf("Packet does not describe the output:\n got  %+v\n want %+v", *p, q)
	}
	if q.HasL4() && (q.Protocol == rewrite.ProtoTCP || q.Protocol == rewrite.ProtoUDP) {
		ip := out[q.L3:q.L4]
		seg := out[q.L4:q.End]
		at := 16
		if q.Protocol == rewrite.ProtoUDP {
			at = 6
			if binary.BigEndian.Uint16(seg[6:]) == 0 {
				return // the input had none and the transform did not touch L4
			}
		}
		pseudo := refPseudo(ip[12:16], ip[16:20], q.Protocol, len(seg))
		if p.Partial {
			if got, want := binary.BigEndian.Uint16(seg[at:]), refSum(pseudo); got != want {
				t.Fatalf("partial field %#04x, want pseudo-header sum %#04x", got, want)
			}
		} else if refSum(pseudo, seg) != 0xffff {
			t.Fatalf("L4 checksum does not verify\n% x", out)
		}
	}
	if q.Protocol == rewrite.ProtoICMP && q.HasL4() && refSum(out[q.L4:q.End]) != 0xffff {
		t.Fatalf("ICMP checksum does not verify")
	}
}

// fuzzInPlace runs a transform that keeps the frame length.
func fuzzInPlace(t *testing.T, data []byte, partial bool, junk uint64, fn func([]byte, *rewrite.Packet) error) {
	ff := newFuzzFrame(data, partial, junk)
	before := append([]byte(nil), ff.frame()...)
	err := fn(ff.frame(), &ff.p)
	ff.checkSlack(t, ff.n)
	if err != nil {
		if !bytes.Equal(ff.frame(), before) {
			t.Fatalf("error %v but the frame changed", err)
		}
		var r rewrite.Reason
		if !errors.As(err, &r) {
			t.Fatalf("error %v is not a Reason", err)
		}
		return
	}
	if ff.junked {
		// A perturbed field the transform does not use (or one that still
		// matches the frame) may succeed; the bounds were checked above.
		return
	}
	if !ff.parseOK {
		t.Fatalf("success on a frame Parse rejected")
	}
	checkResult(t, ff.frame(), &ff.p)
}

func FuzzParse(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fix := range []bool{false, true} {
			b := append([]byte(nil), data...)
			if fix {
				fixChecksums(b, false)
			}
			var p rewrite.Packet
			err := rewrite.Parse(b, &p)
			if err != nil {
				if _, ok := err.(rewrite.Reason); !ok {
					t.Fatalf("error %v is not a Reason", err)
				}
				continue
			}
			if p.End > len(b) || p.L3 < 14 || (p.EtherType == rewrite.EtherTypeIPv4 && (p.L4 < p.L3+20 || p.Payload < p.L4 || p.Payload > p.End)) {
				t.Fatalf("offsets out of range: %+v for %d bytes", p, len(b))
			}
		}
	})
}

func FuzzDR(f *testing.F) {
	seedFrames(f, false, uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, partial bool, junk uint64) {
		fuzzInPlace(t, data, partial, junk, func(b []byte, p *rewrite.Packet) error {
			return rewrite.DR(b, p, hwRS, hwDirector)
		})
	})
}

func FuzzNATIn(f *testing.F) {
	seedFrames(f, false, uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, partial bool, junk uint64) {
		fuzzInPlace(t, data, partial, junk, func(b []byte, p *rewrite.Packet) error {
			return rewrite.NATIn(b, p, apRS)
		})
	})
}

func FuzzNATOut(f *testing.F) {
	seedFrames(f, false, uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, partial bool, junk uint64) {
		fuzzInPlace(t, data, partial, junk, func(b []byte, p *rewrite.Packet) error {
			return rewrite.NATOut(b, p, apVIP)
		})
	})
}

func FuzzFULLNATIn(f *testing.F) {
	seedFrames(f, false, uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, partial bool, junk uint64) {
		fuzzInPlace(t, data, partial, junk, func(b []byte, p *rewrite.Packet) error {
			return rewrite.FULLNATIn(b, p, apLocal, apRS)
		})
	})
}

func FuzzFULLNATOut(f *testing.F) {
	seedFrames(f, false, uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, partial bool, junk uint64) {
		fuzzInPlace(t, data, partial, junk, func(b []byte, p *rewrite.Packet) error {
			return rewrite.FULLNATOut(b, p, apVIP, apClient)
		})
	})
}

func FuzzClampMSS(f *testing.F) {
	seedFrames(f, false, uint64(0), uint16(1400))
	f.Fuzz(func(t *testing.T, data []byte, partial bool, junk uint64, limit uint16) {
		fuzzInPlace(t, data, partial, junk, func(b []byte, p *rewrite.Packet) error {
			if limit%2 == 0 {
				_, err := rewrite.ClampMSS(b, p, limit)
				return err
			}
			_, err := rewrite.ReduceMSSForTOA(b, p)
			return err
		})
	})
}

func FuzzICMPError(f *testing.F) {
	seedFrames(f, uint64(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, junk uint64, which uint8) {
		fuzzInPlace(t, data, false, junk, func(b []byte, p *rewrite.Packet) error {
			switch which % 4 {
			case 0:
				return rewrite.NATInICMP(b, p, apRS)
			case 1:
				return rewrite.NATOutICMP(b, p, apVIP)
			case 2:
				return rewrite.FULLNATInICMP(b, p, apLocal, apRS)
			default:
				return rewrite.FULLNATOutICMP(b, p, apVIP, apClient)
			}
		})
	})
}

func FuzzCompletePartial(f *testing.F) {
	seedFrames(f, uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, junk uint64) {
		fuzzInPlace(t, data, true, junk, func(b []byte, p *rewrite.Packet) error {
			err := rewrite.CompletePartial(b, p)
			if err == nil && p.Partial {
				t.Fatal("Partial still set after completion")
			}
			return err
		})
	})
}

func FuzzInsertTOA(f *testing.F) {
	seedFrames(f, false, uint64(0), uint16(1500))
	f.Fuzz(func(t *testing.T, data []byte, partial bool, junk uint64, mtu uint16) {
		ff := newFuzzFrame(data, partial, junk)
		before := append([]byte(nil), ff.frame()...)
		out, err := rewrite.InsertTOA(ff.frame(), &ff.p, apClient, int(mtu))
		if err != nil {
			ff.checkSlack(t, ff.n)
			if !bytes.Equal(ff.frame(), before) || len(out) != ff.n {
				t.Fatalf("error %v but the frame changed", err)
			}
			return
		}
		if ff.junked {
			ff.checkSlack(t, ff.p.End)
			return
		}
		if !ff.parseOK {
			t.Fatal("success on a frame Parse rejected")
		}
		if len(out) > ff.n+rewrite.TOALen || &out[0] != &ff.buf[0] {
			t.Fatalf("output of %d bytes from %d, or not in place", len(out), ff.n)
		}
		ff.checkSlack(t, len(out))
		checkResult(t, out, &ff.p)
	})
}

func FuzzEncapIPIP(f *testing.F) {
	seedFrames(f, false, uint64(0), uint16(1500), false)
	f.Fuzz(func(t *testing.T, data []byte, partial bool, junk uint64, mtu uint16, headroom bool) {
		tun := rewrite.IPIP{Src: apLocal.Addr(), Dst: apRS.Addr(), DstMAC: hwRS, SrcMAC: hwDirector, MTU: int(mtu), ID: 7, TCI: uint16(junk >> 40 & 0x0fff)}
		var out, frame []byte
		var ff *fuzzFrame
		var limit int
		if headroom {
			// Read the frame 20 bytes into the buffer and encapsulate into
			// the buffer itself.
			const room = rewrite.IPIPOverhead + rewrite.VLANTagLen
			ff = newFuzzFrame(append(make([]byte, room), data...), partial, 0)
			frame = ff.frame()[room:]
			fixChecksums(frame, partial)
			_ = rewrite.Parse(frame, &ff.p)
			ff.parseOK = ff.p.L4 != 0
			ff.p.Partial = partial
			out = ff.frame()
			limit = ff.n
		} else {
			ff = newFuzzFrame(data, partial, junk)
			frame = ff.frame()
			outBuf := make([]byte, len(data)+rewrite.IPIPOverhead+4+fuzzSlack)
			for i := range outBuf {
				outBuf[i] = fuzzPattern
			}
			limit = len(data) + rewrite.IPIPOverhead + 4
			out = outBuf[:limit]
			defer func() {
				for i := limit; i < len(outBuf); i++ {
					if outBuf[i] != fuzzPattern {
						t.Fatalf("wrote past out: byte %d", i-limit)
					}
				}
			}()
		}
		before := append([]byte(nil), frame...)
		n, err := rewrite.EncapIPIP(out, frame, &ff.p, &tun)
		ff.checkSlack(t, ff.n)
		if err != nil {
			if !bytes.Equal(frame, before) {
				t.Fatalf("error %v but the frame changed", err)
			}
			return
		}
		if n > limit {
			t.Fatalf("length %d beyond out", n)
		}
		if ff.junked {
			return
		}
		if !ff.parseOK {
			t.Fatal("success on a frame Parse rejected")
		}
		if n > limit {
			t.Fatalf("length %d beyond out", n)
		}
		checkResult(t, out[:n], &ff.p)
		inner := out[ff.p.L4:n]
		if refSum(out[ff.p.L3:ff.p.L4]) != 0xffff || refSum(inner[:int(inner[0]&0x0f)*4]) != 0xffff {
			t.Fatal("outer or inner IPv4 checksum invalid")
		}
	})
}

func FuzzBuilders(f *testing.F) {
	seedFrames(f, uint64(0), uint8(0), uint16(128))
	f.Fuzz(func(t *testing.T, data []byte, junk uint64, which uint8, outLen uint16) {
		ff := newFuzzFrame(data, false, junk)
		outBuf := make([]byte, int(outLen%256)+fuzzSlack)
		for i := range outBuf {
			outBuf[i] = fuzzPattern
		}
		out := outBuf[:outLen%256]
		before := append([]byte(nil), ff.frame()...)
		r := rewrite.ReplyIP{Src: apVIP.Addr(), TTL: 64, ID: 1}
		var n int
		var err error
		switch which % 7 {
		case 0:
			n, err = rewrite.BuildARPReply(out, ff.frame(), &ff.p, hwDirector)
		case 1:
			n, err = rewrite.BuildPortUnreachable(out, ff.frame(), &ff.p, r)
		case 2:
			n, err = rewrite.BuildFragNeeded(out, ff.frame(), &ff.p, 1480, r)
		case 3:
			n, err = rewrite.BuildTimeExceeded(out, ff.frame(), &ff.p, r)
		case 4:
			n, err = rewrite.BuildTCPReset(out, ff.frame(), &ff.p, 64)
		case 5:
			n, err = rewrite.BuildARPRequest(out, hwDirector, apLocal.Addr(), netip.AddrFrom4([4]byte{byte(junk), 1, 2, 3}), uint16(junk>>16&0xfff))
		case 6:
			fuzzInPlace(t, data, false, junk, func(b []byte, p *rewrite.Packet) error { return rewrite.EchoReply(b, p, 64) })
			return
		}
		ff.checkSlack(t, ff.n)
		if !bytes.Equal(ff.frame(), before) {
			t.Fatal("a builder changed its input")
		}
		for i := len(out); i < len(outBuf); i++ {
			if outBuf[i] != fuzzPattern {
				t.Fatalf("wrote past out")
			}
		}
		if err != nil {
			return
		}
		if n > len(out) || n < rewrite.EthernetMinFrameLen {
			t.Fatalf("length %d with out %d", n, len(out))
		}
		var q rewrite.Packet
		// A quote shorter than header + 8 bytes (the offender had less) is
		// valid ICMP that Parse declines to translate.
		if perr := rewrite.Parse(out[:n], &q); perr != nil && !errors.Is(perr, rewrite.ErrBadICMPQuote) {
			t.Fatalf("built frame does not parse: %v\n% x", perr, out[:n])
		}
		if q.HasL4() {
			checkResult(t, out[:n], &q)
		}
	})
}
