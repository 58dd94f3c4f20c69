package rewrite_test

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

func parsed(tb testing.TB, frame []byte) *rewrite.Packet {
	tb.Helper()
	var p rewrite.Packet
	if err := rewrite.Parse(frame, &p); err != nil {
		tb.Fatal(err)
	}
	return &p
}

// A client SYN's timestamps become ten NOPs; the other options stay where
// they were and the checksum verifies.
func TestRemoveTimestamps(t *testing.T) {
	frame := clientSYN().frame(t)
	p := parsed(t, frame)
	changed, err := rewrite.RemoveTimestamps(frame, p)
	if err != nil || !changed {
		t.Fatalf("RemoveTimestamps = %v, %v", changed, err)
	}
	verifyChecksums(t, frame, csumFull)
	tcp := decode(t, frame).Layer(layers.LayerTypeTCP).(*layers.TCP)
	nops := 0
	for _, o := range tcp.Options {
		switch o.OptionType {
		case layers.TCPOptionKindTimestamps:
			t.Errorf("timestamp option left: %v", o)
		case layers.TCPOptionKindNop:
			nops++
		case layers.TCPOptionKindMSS:
			if binary.BigEndian.Uint16(o.OptionData) != 1460 {
				t.Errorf("MSS changed: %v", o)
			}
		}
	}
	if nops < 10 {
		t.Errorf("%d NOPs, want at least the 10 of the timestamp option", nops)
	}
	// Nothing to remove the second time; a data segment is not a SYN.
	if changed, err := rewrite.RemoveTimestamps(frame, p); changed || err != nil {
		t.Errorf("second RemoveTimestamps = %v, %v", changed, err)
	}
	data := clientData().frame(t)
	if _, err := rewrite.RemoveTimestamps(data, parsed(t, data)); err != rewrite.ErrNotSYN {
		t.Errorf("data segment: %v, want ErrNotSYN", err)
	}
}

// sackSegment is a real server's ACK with SACK blocks, the option after nops
// NOPs (one NOP puts every edge at an odd offset).
func sackSegment(nops int, edges []uint32) spec {
	s := rsFNATData()
	var opts []layers.TCPOption
	for range nops {
		opts = append(opts, layers.TCPOption{OptionType: layers.TCPOptionKindNop})
	}
	data := make([]byte, 4*len(edges))
	for i, e := range edges {
		binary.BigEndian.PutUint32(data[4*i:], e)
	}
	s.tcpOpts = append(opts, layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionData: data})
	return s
}

// The sequence remap, in and out, against values and full checksums, at
// even and odd option offsets and wrapping deltas.
func TestFULLNATSeq(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 2000 {
		delta := r.Uint32()
		edges := []uint32{r.Uint32(), r.Uint32(), r.Uint32(), r.Uint32()}
		s := sackSegment(i%3, edges[:2+2*(i%2)])
		frame := s.frame(t)
		p := parsed(t, frame)
		if err := rewrite.FULLNATSeqOut(frame, p, delta); err != nil {
			t.Fatal(err)
		}
		verifyChecksums(t, frame, csumFull)
		tcp := decode(t, frame).Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp.Ack != s.ack-delta || tcp.Seq != s.seq {
			t.Fatalf("out: seq %#x ack %#x, want %#x %#x", tcp.Seq, tcp.Ack, s.seq, s.ack-delta)
		}
		for _, o := range tcp.Options {
			if o.OptionType != layers.TCPOptionKindSACK {
				continue
			}
			for j := range len(o.OptionData) / 4 {
				if got := binary.BigEndian.Uint32(o.OptionData[4*j:]); got != edges[j]-delta {
					t.Fatalf("out: SACK edge %d = %#x, want %#x", j, got, edges[j]-delta)
				}
			}
		}

		in := clientData()
		in.seq = r.Uint32()
		frame = in.frame(t)
		p = parsed(t, frame)
		if err := rewrite.FULLNATSeqIn(frame, p, delta); err != nil {
			t.Fatal(err)
		}
		verifyChecksums(t, frame, csumFull)
		tcp = decode(t, frame).Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp.Seq != in.seq+delta || tcp.Ack != in.ack {
			t.Fatalf("in: seq %#x ack %#x, want %#x %#x", tcp.Seq, tcp.Ack, in.seq+delta, in.ack)
		}
	}
}

func TestFULLNATSeqNoAllocs(t *testing.T) {
	syn := clientSYN().frame(t)
	data := sackSegment(1, []uint32{1, 2}).frame(t)
	ps, pd := parsed(t, syn), parsed(t, data)
	n := testing.AllocsPerRun(100, func() {
		_, _ = rewrite.RemoveTimestamps(syn, ps)
		_ = rewrite.FULLNATSeqIn(syn, ps, 7)
		_ = rewrite.FULLNATSeqOut(data, pd, 7)
	})
	if n != 0 {
		t.Errorf("%v allocations", n)
	}
}
