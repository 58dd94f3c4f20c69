package synproxy

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

var rsIP = [4]byte{172, 16, 0, 2}

// openConn runs a handshake through the package's functions and returns
// the connection after the real server's SYN/ACK, for a client offering
// shift cws (-1: no option) to settings s, and a server answering rsISN
// with shift rws (-1: none) and timestamp rsTS.
func openConn(t *testing.T, s Settings, cws, rws int, rsISN, rsTS uint32) Conn {
	t.Helper()
	sec := fixedSecret(t, 3)
	in := linuxSYN(1460, 0)
	in.opts = in.opts[:3]
	if cws >= 0 {
		in.opts = append(in.opts, nop(), opt(layers.TCPOptionKindWindowScale, byte(cws)))
	} else {
		in.opts = append(in.opts, nop(), nop(), nop(), nop())
	}
	frame := withRoom(in.build(t))
	p := parse(t, frame)
	synack, err := SYNACK(frame, p, &s, sec, now)
	if err != nil {
		t.Fatal(err)
	}
	cookie := rewrite.TCP(synack[p.L4:p.End]).Seq()
	ack := seg{src: clientIP, dst: vipIP, sport: 40000, dport: 80, seq: clientISN + 1, ack: cookie + 1, flags: "A",
		window: 100, ttl: 64, opts: []layers.TCPOption{nop(), nop(), tsOpt(0xaabbcd00, TSClock(now))}}
	af := ack.build(t)
	h, err := CheckACK(af, parse(t, af), sec, now)
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(&h, s.WScale)
	rsOpts := []layers.TCPOption{mssOpt(1460), opt(layers.TCPOptionKindSACKPermitted), tsOpt(rsTS, h.TSval)}
	if rws >= 0 {
		rsOpts = append(rsOpts, nop(), opt(layers.TCPOptionKindWindowScale, byte(rws)))
	}
	sa := seg{src: rsIP, dst: clientIP, sport: 80, dport: 40000, seq: rsISN, ack: clientISN + 1, flags: "SA", window: 65160, ttl: 64, opts: rsOpts}.build(t)
	if err := c.ServerSYNACK(sa, parse(t, sa)); err != nil {
		t.Fatal(err)
	}
	return c
}

// AdjustIn and AdjustOut against gopacket-built expectations: ACK, SACK
// edges (at an odd offset: one NOP before the block) and TSecr inbound;
// seq, TSval and the rescaled window outbound.
func TestAdjustGolden(t *testing.T) {
	s := DefaultSettings()
	s.WScale, s.Timestamp = 7, true
	c := openConn(t, s, 7, 9, 0x7000_0000, 5000)
	if c.Delta != c.ISN-0x7000_0000 || c.WScaleVS != 7 || c.WScaleRS != 9 || c.TSDelta != TSClock(now)-5000 || !c.Timestamps || c.InShift != 0 {
		t.Fatalf("conn %+v", c)
	}
	d := c.Delta
	// Client → server: ack, SACK edges and TSecr are in our numbering.
	in := seg{src: clientIP, dst: rsIP, sport: 40000, dport: 80, seq: clientISN + 1, ack: c.ISN + 1 + 3000,
		flags: "A", window: 1000, ttl: 63, opts: []layers.TCPOption{nop(), sackOpt(c.ISN+4001, c.ISN+5001, c.ISN+7001, c.ISN+9001),
			nop(), nop(), nop(), tsOpt(0xaabbcd10, 5000+c.TSDelta+17)}, payload: []byte("hello")}
	want := in
	want.ack -= d
	want.opts = []layers.TCPOption{nop(), sackOpt(c.ISN+4001-d, c.ISN+5001-d, c.ISN+7001-d, c.ISN+9001-d), nop(), nop(), nop(), tsOpt(0xaabbcd10, 5017)}
	f := in.build(t)
	if err := AdjustIn(f, parse(t, f), &c); err != nil {
		t.Fatal(err)
	}
	sameFrame(t, "in", f, want.build(t))

	// Server → client: seq and TSval move to our numbering, the window from
	// shift 9 to shift 7 (×4).
	out := seg{src: rsIP, dst: clientIP, sport: 80, dport: 40000, seq: 0x7000_0001 + 100, ack: clientISN + 1 + 5, flags: "AP",
		window: 501, ttl: 64, opts: []layers.TCPOption{nop(), nop(), tsOpt(6000, 0xaabbcd10)}, payload: []byte("world")}
	wantOut := out
	wantOut.seq += d
	wantOut.window = 2004
	wantOut.opts = []layers.TCPOption{nop(), nop(), tsOpt(6000+c.TSDelta, 0xaabbcd10)}
	f = out.build(t)
	if err := AdjustOut(f, parse(t, f), &c); err != nil {
		t.Fatal(err)
	}
	sameFrame(t, "out", f, wantOut.build(t))

	// A large window is capped at 65535 when rescaled up.
	out.window = 0xf000
	wantOut.window = 0xffff
	f = out.build(t)
	if err := AdjustOut(f, parse(t, f), &c); err != nil {
		t.Fatal(err)
	}
	sameFrame(t, "out capped", f, wantOut.build(t))
}

// The scaling cases of the DPVS fix, and a server that declines scaling.
func TestWindowScaleCases(t *testing.T) {
	for _, c := range []struct {
		name          string
		offer         uint8
		cws, rws      int
		vs, rs, inSft uint8
	}{
		{"no scaling offered", 0, 7, 7, 0, 0, 0},
		{"client without the option", 7, -1, -1, 0, 0, 0},
		{"both scale", 7, 7, 9, 7, 9, 0},
		{"client shift 0 with the option", 7, 0, 7, 7, 7, 0},
		{"server declines", 7, 6, -1, 7, 0, 6},
	} {
		s := DefaultSettings()
		s.WScale = c.offer
		got := openConn(t, s, c.cws, c.rws, 1, 1)
		if got.WScaleVS != c.vs || got.WScaleRS != c.rs || got.InShift != c.inSft {
			t.Errorf("%s: vs %d rs %d in %d, want %d %d %d", c.name, got.WScaleVS, got.WScaleRS, got.InShift, c.vs, c.rs, c.inSft)
		}
	}
}

// randomSegment builds a TCP frame with random numbers and a random option
// layout (NOPs shift SACK and timestamps to odd and even offsets).
func randomSegment(t *testing.T, rng *rand.Rand) []byte {
	var opts []layers.TCPOption
	n := 0
	for n < 36 {
		switch rng.IntN(4) {
		case 0:
			opts = append(opts, nop())
			n++
		case 1:
			if n+10 <= 40 {
				opts = append(opts, tsOpt(rng.Uint32(), rng.Uint32()))
				n += 10
			}
		case 2:
			k := 1 + rng.IntN(3)
			if n+2+8*k <= 40 {
				e := make([]uint32, 2*k)
				for i := range e {
					e[i] = rng.Uint32()
				}
				opts = append(opts, sackOpt(e...))
				n += 2 + 8*k
			}
		case 3:
			n = 40
		}
	}
	for n%4 != 0 {
		opts = append(opts, nop())
		n++
	}
	flags := []string{"A", "AP", "AF", "S", "SA", "R", "RA", ""}[rng.IntN(8)]
	return seg{src: clientIP, dst: vipIP, sport: uint16(rng.Uint32()), dport: 80, seq: rng.Uint32(), ack: rng.Uint32(),
		flags: flags, window: uint16(rng.Uint32()), ttl: 64, opts: opts, payload: make([]byte, rng.IntN(40))}.build(t)
}

// Properties over random segments: the incremental checksum always equals
// a full recomputation, and a delta applied and then its inverse is the
// identity, byte for byte.
func TestAdjustProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		orig := randomSegment(t, rng)
		c := Conn{Delta: rng.Uint32(), TSDelta: rng.Uint32()}
		inv := Conn{Delta: -c.Delta, TSDelta: -c.TSDelta}
		for _, dir := range []string{"in", "out"} {
			f := slices.Clone(orig)
			p := parse(t, f)
			adj := AdjustIn
			if dir == "out" {
				adj = AdjustOut
			}
			if err := adj(f, p, &c); err != nil {
				t.Fatal(err)
			}
			if !tcpChecksumOK(f, p) {
				t.Fatalf("%d %s: incremental checksum wrong: %x", i, dir, f)
			}
			if err := adj(f, p, &inv); err != nil {
				t.Fatal(err)
			}
			if !tcpChecksumOK(f, p) {
				t.Fatalf("%d %s: checksum wrong after the inverse", i, dir)
			}
			// The checksum field may come back as the other zero (0x0000
			// vs 0xffff are the same ones'-complement value); everything
			// else is identical.
			g := slices.Clone(f)
			o := slices.Clone(orig)
			g[p.L4+16], g[p.L4+17], o[p.L4+16], o[p.L4+17] = 0, 0, 0, 0
			if !slices.Equal(g, o) {
				t.Fatalf("%d %s: not the identity\n got %x\nwant %x", i, dir, f, orig)
			}
		}
	}
}

// A CHECKSUM_PARTIAL frame keeps its pseudo-header field: completing it
// afterwards gives a valid checksum.
func TestAdjustPartial(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200 {
		f := randomSegment(t, rng)
		p := parse(t, f)
		// Turn it into a partial frame: the field holds the pseudo-header sum.
		ph := rewrite.PseudoHeaderSum(p.Src, p.Dst, rewrite.ProtoTCP, uint16(p.End-p.L4))
		f[p.L4+16], f[p.L4+17] = byte(ph>>8), byte(ph)
		p.Partial = true
		c := Conn{Delta: rng.Uint32(), TSDelta: rng.Uint32(), WScaleRS: 3, InShift: 2}
		if err := AdjustIn(f, p, &c); err != nil {
			t.Fatal(err)
		}
		if err := AdjustOut(f, p, &c); err != nil {
			t.Fatal(err)
		}
		if err := rewrite.CompletePartial(f, p); err != nil {
			t.Fatal(err)
		}
		if !tcpChecksumOK(f, p) {
			t.Fatal("partial frame does not complete to a valid checksum")
		}
	}
}

func TestServerSYNACKAndRST(t *testing.T) {
	c := Conn{ISN: 1000, ClientISN: 5000}
	wrong := seg{src: rsIP, dst: clientIP, seq: 7, ack: 5002, flags: "SA", ttl: 64}.build(t)
	if err := c.ServerSYNACK(wrong, parse(t, wrong)); !errors.Is(err, ErrNotServerSYNACK) {
		t.Errorf("SYN/ACK for another ISN: %v", err)
	}
	rst := seg{src: rsIP, dst: clientIP, sport: 80, dport: 40000, ack: 5001, flags: "RA", ttl: 64}
	f := rst.build(t)
	if err := c.ServerRST(f, parse(t, f)); err != nil {
		t.Fatal(err)
	}
	want := rst
	want.seq = 1001
	sameFrame(t, "RST", f, want.build(t))
}

func TestAckStorm(t *testing.T) {
	c := Conn{}
	f := seg{src: rsIP, dst: clientIP, seq: 9, ack: 10, flags: "A", ttl: 64}.build(t)
	p := parse(t, f)
	const thresh = 10
	dropped := 0
	for range 30 {
		if c.AckStorm(f, p, thresh) {
			dropped++
		}
	}
	// The first packet sets the reference; the 10th repeat onward drops.
	if dropped != 30-thresh {
		t.Fatalf("dropped %d of 30 identical ACKs, want %d", dropped, 30-thresh)
	}
	g := seg{src: rsIP, dst: clientIP, seq: 9, ack: 11, flags: "A", ttl: 64}.build(t)
	if c.AckStorm(g, parse(t, g), thresh) {
		t.Fatal("a new ACK was dropped")
	}
	if c.AckStorm(f, p, 0) {
		t.Fatal("threshold 0 must disable the check")
	}
}

// Nothing allocates per packet.
func TestNoAllocs(t *testing.T) {
	sec := fixedSecret(t, 1)
	s := DefaultSettings()
	s.WScale, s.Timestamp = 7, true
	syn := linuxSYN(1460, 7).build(t)
	buf := make([]byte, 2048)
	p := &rewrite.Packet{}
	c := openConn(t, s, 7, 7, 1, 1)
	data := seg{src: clientIP, dst: rsIP, sport: 40000, dport: 80, seq: 1, ack: 2, flags: "A", ttl: 64,
		opts: []layers.TCPOption{nop(), nop(), tsOpt(1, 2), nop(), nop(), sackOpt(1, 2)}}.build(t)
	out := make([]byte, ServerSYNLen)
	var h Handshake
	allocs := testing.AllocsPerRun(200, func() {
		n := copy(buf, syn)
		_ = rewrite.Parse(buf[:n], p)
		_, _ = SYNACK(buf[:n], p, &s, sec, now)
		_ = rewrite.Parse(data, p)
		h, _ = CheckACK(data, p, sec, now)
		_, _ = ServerSYN(out, &h, 0)
		_ = AdjustIn(data, p, &c)
		_ = AdjustOut(data, p, &c)
		_ = c.AckStorm(data, p, 10)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet", allocs)
	}
}
