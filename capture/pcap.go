package capture

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// pcapSnaplen is the snap length recorded in the files we write: whole
// frames, GSO super-frames included.
const pcapSnaplen = 262144

// packetSource is what pcapgo's pcap and pcapng readers have in common.
type packetSource interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// PcapPort replays the frames of a pcap or pcapng file (Ethernet link type)
// and records the frames written to it as a pcap file, for golden tests:
// frames in, frames out, and tshark to read what came out.
type PcapPort struct {
	src    packetSource
	rec    *pcapWriter // nil: writes are counted and dropped
	mtu    int
	mu     sync.Mutex // serialises reads
	closed atomic.Bool
	eof    bool
	c      memCounters
}

// NewPcapPort reads frames from r (pcap or pcapng, told apart by the magic
// number) and records written frames to w as pcap; w may be nil. Frames
// longer than mtu+14 are flagged Oversized (mtu 0: 1500).
func NewPcapPort(r io.Reader, w io.Writer, mtu int) (*PcapPort, error) {
	if mtu <= 0 {
		mtu = 1500
	}
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("capture: pcap replay: read magic: %w", err)
	}
	p := &PcapPort{mtu: mtu}
	var lt layers.LinkType
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("capture: pcapng replay: %w", err)
		}
		p.src, lt = ng, ng.LinkType()
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("capture: pcap replay: %w", err)
		}
		p.src, lt = pr, pr.LinkType()
	}
	if lt != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("capture: replay: link type %v, want Ethernet", lt)
	}
	if w != nil {
		if p.rec, err = newPcapWriter(w); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// ReadBatch implements Port: the file's next frames, io.EOF after the last.
// It never waits.
func (p *PcapPort) ReadBatch(frames []Frame) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return 0, fmt.Errorf("capture: pcap replay: read: %w", net.ErrClosed)
	}
	if p.eof {
		return 0, io.EOF
	}
	n := 0
	var bytes, over, trunc uint64
	for n < len(frames) {
		data, ci, err := p.src.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			p.eof = true
			break
		}
		if err != nil {
			return n, fmt.Errorf("capture: pcap replay: frame %d: %w", p.c.rxPackets.Load()+uint64(n)+1, err)
		}
		f := &frames[n]
		f.N = copy(f.Buf, data)
		f.Len = max(ci.Length, f.N)
		f.Ifindex = ci.InterfaceIndex
		f.TS = ci.Timestamp.UnixNano()
		f.PktType, f.CsumNotReady, f.CsumValid, f.GSO = PacketHost, false, false, false
		f.VLANValid, f.VLANTCI, f.VLANTPID, f.RxHash = false, 0, 0, 0
		f.Oversized = f.Len > maxFrameLen(p.mtu, f.Buf[:f.N])
		if f.Oversized {
			over++
		}
		if f.Len > f.N {
			trunc++
		}
		bytes += uint64(f.N)
		n++
	}
	p.c.rxPackets.Add(uint64(n))
	p.c.rxBytes.Add(bytes)
	p.c.oversized.Add(over)
	p.c.truncated.Add(trunc)
	if n == 0 && p.eof {
		return 0, io.EOF
	}
	return n, nil
}

// WriteBatch implements Port: records the frames, if recording.
func (p *PcapPort) WriteBatch(frames []Frame) (int, error) {
	if p.closed.Load() {
		return 0, fmt.Errorf("capture: pcap replay: write: %w", net.ErrClosed)
	}
	n := len(frames)
	if p.rec != nil {
		var err error
		if n, err = p.rec.write(frames, time.Now()); err != nil {
			return n, err
		}
	}
	var bytes uint64
	for i := range n {
		bytes += uint64(frames[i].N)
	}
	p.c.txPackets.Add(uint64(n))
	p.c.txBytes.Add(bytes)
	return n, nil
}

// SetReadDeadline implements Port; replay never waits, so it has no effect.
func (p *PcapPort) SetReadDeadline(time.Time) error { return nil }

// Stats implements Port.
func (p *PcapPort) Stats() Stats {
	return Stats{
		RxPackets: p.c.rxPackets.Load(),
		RxBytes:   p.c.rxBytes.Load(),
		Oversized: p.c.oversized.Load(),
		Truncated: p.c.truncated.Load(),
		TxPackets: p.c.txPackets.Load(),
		TxBytes:   p.c.txBytes.Load(),
	}
}

// Close implements Port. It flushes the recording; closing the reader and
// writer is the caller's business.
func (p *PcapPort) Close() error {
	if p.closed.Swap(true) || p.rec == nil {
		return nil
	}
	return p.rec.flush()
}

// Recorder is a Port that passes everything to another port and records
// the frames written (and, optionally, read) as a pcap file with Ethernet
// link type and nanosecond timestamps — what lvsd transmitted, ready for
// tshark.
type Recorder struct {
	Port
	w      *pcapWriter
	readsW *pcapWriter
}

// NewRecorder records the frames successfully written to p into w. If
// reads is not nil, frames read from p are recorded there too (a separate
// file: one file per direction keeps each in order).
func NewRecorder(p Port, w, reads io.Writer) (*Recorder, error) {
	r := &Recorder{Port: p}
	var err error
	if r.w, err = newPcapWriter(w); err != nil {
		return nil, err
	}
	if reads != nil {
		if r.readsW, err = newPcapWriter(reads); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// ReadBatch implements Port.
func (r *Recorder) ReadBatch(frames []Frame) (int, error) {
	n, err := r.Port.ReadBatch(frames)
	if r.readsW != nil && n > 0 {
		if _, werr := r.readsW.write(frames[:n], time.Time{}); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

// ReadBatchZeroCopy lends frames from the inner port's ring when it can,
// so wrapping a port in a Recorder does not change how it is read (a
// copying read would cut super-frames to the caller's buffer size).
func (r *Recorder) ReadBatchZeroCopy(frames []Frame) (int, error) {
	zc, ok := r.Port.(ZeroCopyReader)
	if !ok {
		return r.ReadBatch(frames)
	}
	n, err := zc.ReadBatchZeroCopy(frames)
	if r.readsW != nil && n > 0 {
		if _, werr := r.readsW.write(frames[:n], time.Time{}); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

// WriteBatch implements Port.
func (r *Recorder) WriteBatch(frames []Frame) (int, error) {
	n, err := r.Port.WriteBatch(frames)
	if n > 0 {
		if _, werr := r.w.write(frames[:n], time.Now()); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

// Close implements Port: it closes the inner port and flushes the files.
func (r *Recorder) Close() error {
	err := r.Port.Close()
	ferr := r.w.flush()
	var rerr error
	if r.readsW != nil {
		rerr = r.readsW.flush()
	}
	return errors.Join(err, ferr, rerr)
}

// pcapWriter writes frames through a buffer, flushed after every batch so
// the file is complete whenever a test looks.
type pcapWriter struct {
	mu  sync.Mutex
	buf *bufio.Writer
	w   *pcapgo.Writer
}

func newPcapWriter(w io.Writer) (*pcapWriter, error) {
	buf := bufio.NewWriterSize(w, 64<<10)
	pw := pcapgo.NewWriterNanos(buf)
	if err := pw.WriteFileHeader(pcapSnaplen, layers.LinkTypeEthernet); err != nil {
		return nil, fmt.Errorf("capture: pcap header: %w", err)
	}
	if err := buf.Flush(); err != nil {
		return nil, fmt.Errorf("capture: pcap header: %w", err)
	}
	return &pcapWriter{buf: buf, w: pw}, nil
}

// write records frames; a zero now takes each frame's own timestamp.
func (w *pcapWriter) write(frames []Frame, now time.Time) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range frames {
		f := &frames[i]
		ts := now
		if ts.IsZero() {
			ts = time.Unix(0, f.TS)
		}
		n := min(f.N, pcapSnaplen)
		ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: n, Length: max(f.Len, f.N)}
		if err := w.w.WritePacket(ci, f.Buf[:n]); err != nil {
			return i, fmt.Errorf("capture: pcap record: %w", err)
		}
	}
	if err := w.buf.Flush(); err != nil {
		return len(frames), fmt.Errorf("capture: pcap record: %w", err)
	}
	return len(frames), nil
}

func (w *pcapWriter) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("capture: pcap record: %w", err)
	}
	return nil
}
