package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lvslab/internal/testenv"
)

func TestMemPair(t *testing.T) {
	a, b := NewMemPair(MemConfig{Capacity: 4, FrameSize: 128, MTU: 100})
	defer a.Close()
	var _ Port = a

	out := []Frame{
		{Buf: frameOf(60, 1), N: 60, PktType: PacketOtherHost, CsumNotReady: true, VLANValid: true, VLANTCI: 7, TS: 42},
		{Buf: frameOf(200, 2), N: 200},         // longer than a slot: arrives truncated, oversized
		{Buf: frameOf(100, 3), N: 90, Len: 95}, // already truncated by the writer
	}
	if n, err := a.WriteBatch(out); n != 3 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	in := newFrames(8, 256)
	n, err := b.ReadBatch(in)
	if n != 3 || err != nil {
		t.Fatalf("read: %d, %v", n, err)
	}
	if f := in[0]; f.N != 60 || f.Len != 60 || f.PktType != PacketOtherHost || !f.CsumNotReady || !f.VLANValid || f.VLANTCI != 7 || f.TS != 42 || f.Ifindex != 2 {
		t.Errorf("frame 0 metadata: %+v", f)
	}
	if f := in[1]; f.N != 128 || f.Len != 200 || !f.Truncated() || !f.Oversized || f.TS == 0 || !bytes.Equal(f.Data(), frameOf(128, 2)) {
		t.Errorf("frame 1: N %d Len %d oversized %v", f.N, f.Len, f.Oversized)
	}
	if f := in[2]; f.N != 90 || f.Len != 95 || f.Oversized {
		t.Errorf("frame 2: N %d Len %d", f.N, f.Len)
	}
	if st := b.Stats(); st.RxPackets != 3 || st.Truncated != 2 || st.Oversized != 1 || st.RxBytes != 60+128+90 {
		t.Errorf("reader stats %+v", st)
	}

	// The other direction, and a full queue dropping like a link.
	back := make([]Frame, 6)
	for i := range back {
		back[i] = Frame{Buf: []byte{0: byte(i), 59: 0}, N: 60}
	}
	if n, err := b.WriteBatch(back); n != 6 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	if st := b.Stats(); st.TxPackets != 4 || st.TxDrops != 2 {
		t.Errorf("writer stats %+v", st)
	}
	if n, _ := a.ReadBatch(in); n != 4 || in[3].Buf[0] != 3 || in[0].Ifindex != 1 {
		t.Errorf("read %d, last %d", n, in[3].Buf[0])
	}

	// A frame whose N exceeds its buffer is an error about that frame.
	if n, err := a.WriteBatch([]Frame{{Buf: make([]byte, 60), N: 60}, {Buf: make([]byte, 10), N: 60}}); n != 1 || err == nil {
		t.Errorf("bad frame: %d, %v", n, err)
	}
}

func TestMemDeadlineAndClose(t *testing.T) {
	a, b := NewMemPair(MemConfig{})
	in := newFrames(4, 128)
	// Judged against the deadline itself: the time between setting it and
	// reading is the scheduler's (8ms of it were seen under load).
	deadline := time.Now().Add(20 * time.Millisecond)
	if err := b.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadBatch(in); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
	if early := time.Until(deadline); early > 0 {
		t.Fatalf("returned %v before its deadline", early)
	}
	_ = b.SetReadDeadline(time.Time{})

	// A blocked reader wakes for a frame, then for the peer's close.
	got := make(chan error, 2)
	go func() {
		n, err := b.ReadBatch(in)
		if n != 1 {
			err = errors.Join(err, errors.New("want one frame"))
		}
		got <- err
		_, err = b.ReadBatch(in)
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if _, err := a.WriteBatch([]Frame{{Buf: make([]byte, 60), N: 60}}); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := <-got; !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v", err)
	}
	if _, err := a.ReadBatch(in); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := b.WriteBatch([]Frame{{Buf: make([]byte, 60), N: 60}}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write to a closed peer: %v", err)
	}
}

// Frames written through a Recorder come back identical from the pcap
// file, and tshark reads the file.
func TestPcapRoundTrip(t *testing.T) {
	a, b := NewMemPair(MemConfig{FrameSize: 4096})
	path := filepath.Join(t.TempDir(), "tx.pcap")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := NewRecorder(a, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	var _ Port = rec
	src, dst := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	var sent []Frame
	for i := range 5 {
		b := udpFrame(t, src, dst, mustAddr("192.0.2.1"), mustAddr("192.0.2.2"), uint16(1000+i), 53, bytes.Repeat([]byte{byte(i)}, 10+100*i))
		sent = append(sent, Frame{Buf: b, N: len(b)})
	}
	if n, err := rec.WriteBatch(sent); n != 5 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	if n, _ := b.ReadBatch(newFrames(8, 4096)); n != 5 {
		t.Fatalf("peer read %d", n)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	file.Close()

	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	replay, err := NewPcapPort(r, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := newFrames(3, 4096)
	var got []Frame
	for {
		n, err := replay.ReadBatch(in)
		for i := range n {
			f := in[i]
			f.Buf = append([]byte(nil), f.Data()...)
			got = append(got, f)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(sent) {
		t.Fatalf("replayed %d frames, recorded %d", len(got), len(sent))
	}
	for i := range got {
		if !bytes.Equal(got[i].Data(), sent[i].Data()) || got[i].Len != sent[i].N || got[i].TS == 0 {
			t.Errorf("frame %d differs after the round trip", i)
		}
	}

	// The round trip is checked; whether tshark reads the file needs it.
	testenv.Tools(t, "tshark")
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tshark, "-r", path, "-T", "fields", "-e", "udp.srcport", "-e", "frame.len").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 5 {
		t.Fatalf("tshark read:\n%s", out)
	}
	for i, line := range lines {
		if want := fmt.Sprintf("%d\t%d", 1000+i, sent[i].N); line != want {
			t.Errorf("tshark frame %d: %q, want %q", i, line, want)
		}
	}
}

// pcapng files (what the lab's captures are) replay too.
func TestPcapngReplay(t *testing.T) {
	testenv.Tools(t, "tshark") // to convert a recording to pcapng
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewMemPair(MemConfig{})
	dir := t.TempDir()
	file, _ := os.Create(filepath.Join(dir, "a.pcap"))
	rec, err := NewRecorder(a, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	frame := rawFrame(net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, 0x11223344, 9, 80)
	if _, err := rec.WriteBatch([]Frame{{Buf: frame, N: len(frame)}}); err != nil {
		t.Fatal(err)
	}
	rec.Close()
	file.Close()
	ng := filepath.Join(dir, "a.pcapng")
	if out, err := exec.Command(tshark, "-r", filepath.Join(dir, "a.pcap"), "-F", "pcapng", "-w", ng).CombinedOutput(); err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	r, _ := os.Open(ng)
	defer r.Close()
	p, err := NewPcapPort(r, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := newFrames(2, 2048)
	if n, err := p.ReadBatch(in); n != 1 || err != nil || !bytes.Equal(in[0].Data(), frame) {
		t.Fatalf("pcapng replay: %d, %v", n, err)
	}
	if n, err := p.ReadBatch(in); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %d, %v", n, err)
	}
}
