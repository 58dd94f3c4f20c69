package benchfwd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"lvslab/capture"
	"lvslab/internal/nstest"
)

var (
	nextHop = [6]byte{2, 0, 0, 0, 0, 0xbb}
	self    = [6]byte{2, 0, 0, 0, 0, 0xaa}
)

func frame(seq uint32, size int) []byte {
	b := make([]byte, size)
	copy(b[0:6], []byte{2, 1, 1, 1, 1, 1})
	copy(b[6:12], []byte{2, 2, 2, 2, 2, 2})
	binary.BigEndian.PutUint16(b[12:], 0x88b5)
	binary.BigEndian.PutUint32(b[14:], seq)
	return b
}

// Forward rewrites both MACs, leaves every other byte alone, and drops
// what it cannot send whole.
func TestForwardMem(t *testing.T) {
	genA, genB := capture.NewMemPair(capture.MemConfig{})
	outA, outB := capture.NewMemPair(capture.MemConfig{})
	done := make(chan error, 1)
	var fwd, drop uint64
	go func() {
		var err error
		fwd, drop, err = Forward(genB, outA, nextHop, self, 8)
		done <- err
	}()
	var frames []capture.Frame
	for i := range 20 {
		b := frame(uint32(i), 60+i)
		frames = append(frames, capture.Frame{Buf: b, N: len(b)})
	}
	big := frame(99, 1600) // longer than MTU+14: arrives Oversized
	frames = append(frames, capture.Frame{Buf: big, N: len(big)})
	if _, err := genA.WriteBatch(frames); err != nil {
		t.Fatal(err)
	}
	in := make([]capture.Frame, 32)
	for i := range in {
		in[i].Buf = make([]byte, 2048)
	}
	var got []capture.Frame
	_ = outB.SetReadDeadline(time.Now().Add(2 * time.Second))
	for len(got) < 20 {
		n, err := outB.ReadBatch(in)
		if err != nil {
			t.Fatalf("after %d frames: %v", len(got), err)
		}
		for i := range n {
			f := in[i]
			f.Buf = append([]byte(nil), f.Data()...)
			got = append(got, f)
		}
	}
	genA.Close()
	// The generator's end closed: the forwarder's read reports end of link.
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("forward ended with %v", err)
	}
	for i, f := range got {
		want := frame(uint32(i), 60+i)
		copy(want[0:6], nextHop[:])
		copy(want[6:12], self[:])
		if !bytes.Equal(f.Data(), want) {
			t.Fatalf("frame %d: % x, want % x", i, f.Data()[:18], want[:18])
		}
	}
	if fwd != 20 || drop != 1 {
		t.Fatalf("forwarded %d dropped %d, want 20 and 1", fwd, drop)
	}
}

// Run in a namespace between two veths: frames from a generator arrive at
// the sink with the next hop's and the forwarder's MACs, bytes unchanged.
func TestRunVeth(t *testing.T) {
	nstest.Require(t)
	gen, fwd, sink := nstest.New(t, "fgen"), nstest.New(t, "ffwd"), nstest.New(t, "fsink")
	nstest.Veth(t, gen, "g0", fwd, "f0", 1500)
	nstest.Veth(t, fwd, "f1", sink, "s0", 1500)
	s0, f0, f1 := [6]byte(sink.MAC("s0")), [6]byte(fwd.MAC("f0")), [6]byte(fwd.MAC("f1"))

	var genPort, sinkPort *capture.AFPacket
	if err := gen.Do(func() (err error) {
		genPort, err = capture.Open(capture.Config{Interface: "g0", NoRX: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer genPort.Close()
	if err := sink.Do(func() (err error) {
		sinkPort, err = capture.Open(capture.Config{Interface: "s0", NoTX: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sinkPort.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type out struct {
		res Result
		err error
	}
	done := make(chan out, 1)
	started := make(chan struct{})
	go func() {
		// Run opens its sockets on the namespace's thread and keeps it.
		err := fwd.Do(func() error {
			close(started)
			res, err := Run(ctx, Config{In: "f0", Out: "f1", NextHop: s0, Workers: 2})
			done <- out{res, err}
			return nil
		})
		if err != nil {
			done <- out{err: err}
		}
	}()
	<-started
	// The rings are up when a probe comes through: Run opens them after
	// started, as late as a loaded machine lets it.
	const probeSeq = 1 << 31
	probe := frame(probeSeq, 64)
	copy(probe[0:6], f0[:])
	buf := []capture.Frame{{Buf: make([]byte, 2048)}}
	up := false
	for deadline := time.Now().Add(30 * time.Second); !up && time.Now().Before(deadline); {
		if _, err := genPort.WriteBatch([]capture.Frame{{Buf: probe, N: len(probe)}}); err != nil {
			t.Fatalf("probe: %v", err)
		}
		_ = sinkPort.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := sinkPort.ReadBatch(buf); err == nil && n > 0 {
			d := buf[0].Data()
			up = len(d) >= 18 && binary.BigEndian.Uint16(d[12:]) == 0x88b5 && binary.BigEndian.Uint32(d[14:]) == probeSeq
		}
	}
	if !up {
		t.Fatal("no probe frame came through the forwarder in 30s")
	}

	const count = 300
	frames := make([]capture.Frame, count)
	for i := range frames {
		b := frame(uint32(i), 64)
		copy(b[0:6], f0[:])
		binary.BigEndian.PutUint16(b[18:], uint16(i)) // spread the flows for fanout
		frames[i] = capture.Frame{Buf: b, N: len(b)}
	}
	if n, err := genPort.WriteBatch(frames); err != nil || n != count {
		t.Fatalf("generate: %d, %v", n, err)
	}
	in := make([]capture.Frame, 64)
	for i := range in {
		in[i].Buf = make([]byte, 2048)
	}
	seen := map[uint32]bool{}
	deadline := time.Now().Add(3 * time.Second)
	for len(seen) < count && time.Now().Before(deadline) {
		_ = sinkPort.SetReadDeadline(deadline)
		n, err := sinkPort.ReadBatch(in)
		if err != nil {
			break
		}
		for i := range n {
			d := in[i].Data()
			if len(d) < 18 || binary.BigEndian.Uint16(d[12:]) != 0x88b5 {
				continue
			}
			seq := binary.BigEndian.Uint32(d[14:])
			if seq == probeSeq {
				continue // a probe still on its way
			}
			want := frame(seq, 64)
			copy(want[0:6], s0[:])
			copy(want[6:12], f1[:])
			binary.BigEndian.PutUint16(want[18:], uint16(seq))
			if !bytes.Equal(d, want) {
				t.Fatalf("frame %d at the sink: % x\nwant % x", seq, d, want)
			}
			seen[seq] = true
		}
	}
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("forwarded %d, dropped %d in %v; in %+v; out %+v", r.res.Forwarded, r.res.Dropped, r.res.Elapsed, r.res.In, r.res.Out)
	if len(seen) != count || r.res.Forwarded < count {
		t.Fatalf("sink saw %d of %d frames", len(seen), count)
	}
}

// BenchmarkForwardMem is the forwarder's own cost, ports aside: frames from
// one in-memory pair to another. One op is one frame.
func BenchmarkForwardMem(b *testing.B) {
	genA, genB := capture.NewMemPair(capture.MemConfig{Capacity: 256})
	outA, outB := capture.NewMemPair(capture.MemConfig{Capacity: 256})
	defer outA.Close()
	done := make(chan struct{})
	go func() {
		_, _, _ = Forward(genB, outA, nextHop, self, 64)
		close(done)
	}()
	batch := make([]capture.Frame, 64)
	for i := range batch {
		b := frame(uint32(i), 64)
		batch[i] = capture.Frame{Buf: b, N: len(b)}
	}
	in := make([]capture.Frame, 64)
	for i := range in {
		in[i].Buf = make([]byte, 2048)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		k := min(64, b.N-sent)
		if _, err := genA.WriteBatch(batch[:k]); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < k; {
			n, err := outB.ReadBatch(in)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		sent += k
	}
	b.StopTimer()
	genA.Close()
	<-done
}
