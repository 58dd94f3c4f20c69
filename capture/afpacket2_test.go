package capture

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TPACKET_V2 receive rings on a veth pair: frames of every size whole,
// GSO super-frames through the socket queue, truncation when that queue is
// full, drops when the ring is, lending, fanout.

// readV2All reads frames with marker from p, lending or copying, checking
// each against want by sequence number.
func readV2All(t *testing.T, p *AFPacket, lend bool, marker uint32, want [][]byte) {
	t.Helper()
	frames := newFrames(4, 2048)
	got := 0
	deadline := time.Now().Add(2 * time.Second)
	for got < len(want) && time.Now().Before(deadline) {
		_ = p.SetReadDeadline(deadline)
		var n int
		var err error
		if lend {
			n, err = p.ReadBatchZeroCopy(frames)
		} else {
			for i := range frames {
				frames[i].Buf = frames[i].Buf[:cap(frames[i].Buf)]
			}
			n, err = p.ReadBatch(frames)
		}
		if err != nil {
			t.Fatalf("after %d frames: %v", got, err)
		}
		for i := range n {
			f := &frames[i]
			if !isRaw(f, marker) {
				continue
			}
			if !bytes.Equal(f.Data(), want[got]) || f.Len != f.N || f.Truncated() || f.Oversized {
				t.Fatalf("frame %d: %d bytes (Len %d), want %d", got, f.N, f.Len, len(want[got]))
			}
			if lend && cap(f.Buf) != f.N {
				t.Fatalf("frame %d lent with cap %d > N %d", got, cap(f.Buf), f.N)
			}
			got++
		}
	}
	if got != len(want) {
		t.Fatalf("got %d of %d frames", got, len(want))
	}
}

func TestRXV2Sizes(t *testing.T) {
	for _, lend := range []bool{false, true} {
		name := "copy"
		if lend {
			name = "zerocopy"
		}
		t.Run(name, func(t *testing.T) {
			l := newLab(t)
			port := openPort(t, l.b, Config{Interface: "vb", RXRing: RXRingV2})
			peer := openPort(t, l.a, Config{Interface: "va", NoRX: true})
			const marker = 0x76327632
			var want [][]byte
			var out []Frame
			// 1514 fills a 2048-byte slot but for its 66-byte header.
			for i, size := range []int{60, 61, 128, 1000, 1513, 1514, 60, 1514} {
				b := rawFrame(l.aMAC, l.bMAC, marker, uint32(i), size)
				for j := 22; j < len(b); j++ {
					b[j] = byte(i*31 + j)
				}
				want = append(want, b)
				out = append(out, Frame{Buf: b, N: len(b)})
			}
			if _, err := peer.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			readV2All(t, port, lend, marker, want)
			if st := port.Stats(); st.Drops != 0 || st.Errors != 0 || st.Truncated != 0 || st.Freezes != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// A TSO sender's super-frames do not fit a 2048-byte slot: they come whole
// through the socket queue (ReadBatch into 64 KiB buffers, and lent from
// the port's copy buffers), GSO and Oversized, none truncated.
func TestRXV2GSO(t *testing.T) {
	const size = 2 << 20
	t.Run("copy", func(t *testing.T) {
		l := newLab(t)
		port := openPort(t, l.b, Config{Interface: "vb", RXRing: RXRingV2})
		tcpTransfer(t, l, size)
		got := collect(t, port, 300*time.Millisecond, 1<<30, isTCPFrom(l.aIP))
		checkGSOWhole(t, got, port.Stats())
	})
	t.Run("zerocopy", func(t *testing.T) {
		l := newLab(t)
		port := openPort(t, l.b, Config{Interface: "vb", RXRing: RXRingV2})
		tcpTransfer(t, l, size)
		var got []Frame
		frames := make([]Frame, 64)
		for {
			_ = port.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := port.ReadBatchZeroCopy(frames)
			copies := 0
			for i := range n {
				f := frames[i]
				if cap(f.Buf) != f.N {
					t.Fatalf("lent frame of %d bytes with cap %d", f.N, cap(f.Buf))
				}
				if f.N > 2048 {
					copies++
				}
				if isTCPFrom(l.aIP)(&f) {
					f.Buf = append([]byte(nil), f.Data()...)
					got = append(got, f)
				}
			}
			if copies > rxCopyBufs {
				t.Fatalf("%d super-frames lent in one call, with %d copy buffers", copies, rxCopyBufs)
			}
			if err != nil {
				break
			}
		}
		checkGSOWhole(t, got, port.Stats())
	})
}

func checkGSOWhole(t *testing.T, got []Frame, st Stats) {
	t.Helper()
	over, biggest := 0, 0
	for i := range got {
		f := &got[i]
		biggest = max(biggest, f.Len)
		if f.Truncated() {
			t.Fatalf("frame N %d Len %d truncated", f.N, f.Len)
		}
		if f.Oversized != (f.Len > 1514) {
			t.Errorf("frame of %d bytes: Oversized %v", f.Len, f.Oversized)
		}
		if f.Oversized {
			over++
			if !f.GSO || (f.N != tcpPayload(f)+14+20+32 && f.N != tcpPayload(f)+14+20+20) {
				t.Fatalf("oversized frame of %d bytes (GSO %v) holds a %d-byte payload", f.N, f.GSO, tcpPayload(f))
			}
		}
	}
	t.Logf("%d frames, %d oversized (largest %d bytes); stats %+v", len(got), over, biggest, st)
	if over == 0 || biggest <= 2048 || st.Oversized < uint64(over) || st.Truncated != 0 || st.Errors != 0 {
		t.Fatalf("want oversized frames larger than a slot, whole and counted")
	}
}

// With the socket queue held to its minimum and nobody reading, the kernel
// can copy only the first super-frame whole: the others arrive as the head
// their slot holds, Len > N, and are counted as truncated. A snap length
// truncates the same way, inside the slot.
func TestRXV2Truncated(t *testing.T) {
	t.Run("queue-full", func(t *testing.T) {
		l := newLab(t)
		port := openPort(t, l.b, Config{Interface: "vb", RXRing: RXRingV2})
		if err := port.rxConn.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 0)
		}); err != nil {
			t.Fatal(err)
		}
		tcpTransfer(t, l, 2<<20)
		got := collect(t, port, 300*time.Millisecond, 1<<30, isTCPFrom(l.aIP))
		whole, trunc := 0, 0
		for i := range got {
			f := &got[i]
			switch {
			case f.Truncated():
				trunc++
				if f.N != 2048-v2MacStart || !f.Oversized || !f.GSO {
					t.Fatalf("truncated frame: N %d Len %d oversized %v gso %v", f.N, f.Len, f.Oversized, f.GSO)
				}
			case f.Oversized:
				whole++
			}
		}
		st := port.Stats()
		t.Logf("%d frames, %d super-frames whole, %d truncated; stats %+v", len(got), whole, trunc, st)
		if trunc == 0 || st.Truncated < uint64(trunc) || st.Errors != 0 {
			t.Fatalf("want truncated super-frames, counted")
		}
	})
	t.Run("snap", func(t *testing.T) {
		l := newLab(t)
		port := openPort(t, l.b, Config{Interface: "vb", RXRing: RXRingV2, Snap: 128})
		tcpTransfer(t, l, 2<<20)
		got := collect(t, port, 300*time.Millisecond, 1<<30, isTCPFrom(l.aIP))
		trunc := 0
		for i := range got {
			if f := &got[i]; f.N > 128 || f.Len > 128 && !f.Truncated() {
				t.Fatalf("frame N %d Len %d with snap 128", f.N, f.Len)
			}
			if got[i].Truncated() {
				trunc++
			}
		}
		st := port.Stats()
		t.Logf("%d frames, %d truncated; stats %+v", len(got), trunc, st)
		if trunc == 0 || st.Truncated < uint64(trunc) {
			t.Fatalf("want frames truncated to 128 bytes and counted")
		}
	})
}

// A ring of 4 slots, not read while 50 frames arrive: 4 are kept, the rest
// are the kernel's drops.
func TestRXV2Drops(t *testing.T) {
	l := newLab(t)
	port := openPort(t, l.b, Config{Interface: "vb", RXRing: RXRingV2, Blocks: 2, BlockSize: 4096, RXFrameSize: 2048})
	peer := openPort(t, l.a, Config{Interface: "va", NoRX: true})
	const marker, count = 0x64726f70, 50
	out := make([]Frame, count)
	for i := range out {
		b := rawFrame(l.aMAC, l.bMAC, marker, uint32(i), 100)
		out[i] = Frame{Buf: b, N: len(b)}
	}
	if _, err := peer.WriteBatch(out); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	got := collect(t, port, 200*time.Millisecond, 1<<30, func(f *Frame) bool { return isRaw(f, marker) })
	st := port.Stats()
	t.Logf("received %d of %d; stats %+v", len(got), count, st)
	if len(got) > 4 || len(got) == 0 || st.Drops < uint64(count-4) || st.Kernel < count {
		t.Fatalf("want at most 4 frames kept and the rest counted as drops")
	}
}

// Two V2 ports in a hash fanout group share the flows.
func TestRXV2Fanout(t *testing.T) {
	l := newLab(t)
	var ports []*AFPacket
	if err := l.b.Do(func() (err error) {
		ports, err = OpenFanout(Config{Interface: "vb", RXRing: RXRingV2}, 2)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		t.Cleanup(func() { p.Close() })
	}
	gen := openPort(t, l.a, Config{Interface: "va", NoRX: true})
	const flows, perFlow = 64, 8
	frames := make([]Frame, 0, flows*perFlow)
	for i := range flows * perFlow {
		b := udpFrame(t, l.aMAC, l.bMAC, l.aIP, l.bIP, uint16(30000+i%flows), 5555, []byte("fanout"))
		frames = append(frames, Frame{Buf: b, N: len(b)})
	}
	if n, err := gen.WriteBatch(frames); err != nil || n != len(frames) {
		t.Fatalf("write: %d, %v", n, err)
	}
	isOurs := func(f *Frame) bool {
		d := f.Data()
		return len(d) >= 42 && d[23] == 17 && d[36] == 5555>>8 && d[37] == 5555&0xff
	}
	results := make(chan map[uint16]int, 2)
	for _, p := range ports {
		go func() {
			m := map[uint16]int{}
			for _, f := range collect(t, p, 500*time.Millisecond, 1<<30, isOurs) {
				m[uint16(f.Buf[34])<<8|uint16(f.Buf[35])]++
			}
			results <- m
		}()
	}
	r0, r1 := <-results, <-results
	n0, n1 := 0, 0
	for fl, n := range r0 {
		n0 += n
		if r1[fl] != 0 || n != perFlow {
			t.Errorf("flow %d split: %d and %d frames", fl, n, r1[fl])
		}
	}
	for _, n := range r1 {
		n1 += n
	}
	t.Logf("port shares: %d and %d frames", n0, n1)
	if n0+n1 != flows*perFlow || n0 == 0 || n1 == 0 {
		t.Fatalf("want all %d frames, shared by both ports", flows*perFlow)
	}
}
