package fault

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"lvslab/capture"
	"lvslab/rewrite"
)

// The delay line is the frame-moving half of the userspace delay wire
// (wire.go builds the plumbing): two lanes, each reading frames from one
// port and writing them to the other, one per direction. A held lane keeps
// every frame for delay ± jitter before sending it on; a lane without delay
// sends at once.
//
// Order. A held lane keeps its frames in arrival order: a frame whose
// jittered delay would let it overtake the one before waits for it
// instead (netem reorders under jitter unless rate-limited; a TCP flow
// through a reordering wire sees duplicate ACKs and spurious
// retransmissions no scenario asked for). So the queue is a FIFO with
// non-decreasing due times and one timer for its head, not a heap.
//
// Frames are copied out of the receive ring into buffers of the lane's own
// (the ring's memory is reused as soon as the next batch is read), and
// made fit to send on the way: a VLAN tag the kernel took out is put back,
// a CHECKSUM_PARTIAL frame gets its checksum completed (the kernel on the
// far side verifies it: a frame sent from a packet socket is
// CHECKSUM_NONE), and a TCP segmentation-offload super-frame is cut into
// MTU-sized segments (a packet socket cannot send more than the MTU).

// lineBatch is how many frames a lane reads or writes per system call.
const lineBatch = 64

// defaultLineLimit is how many frames a held lane queues before it drops
// new ones (netem's default limit is 1000 packets; a bulk TCP transfer
// through 100 ms each way fills more than that).
const defaultLineLimit = 4096

// maxReadFrame is the buffer per frame for ports that cannot lend ring
// memory: room for a 64 KiB segmentation-offload frame with its headers.
const maxReadFrame = 65536 + 64

// laneConfig describes one direction of a delay line.
type laneConfig struct {
	Name string // for logs: "b:eth0 egress"
	In   capture.Port
	Out  capture.Port
	// MTU is the L3 MTU of Out: frames longer than MTU+14 (+4 tagged) are
	// cut into segments or dropped.
	MTU    int
	Delay  time.Duration
	Jitter time.Duration // uniform in [-Jitter, +Jitter], Jitter <= Delay
	Rand   *rand.Rand    // jitter source, used by the reader goroutine only
	// Limit bounds the frames a held lane queues (default defaultLineLimit).
	Limit int
	// Since, in Unix nanoseconds, drops frames received earlier: they were
	// read before the wire was in place and went their way already. A
	// frame without a plausible stamp is taken.
	Since int64
}

// lineStats are a lane's counters.
type lineStats struct {
	Frames     uint64 // frames sent on
	Segmented  uint64 // offload super-frames cut into segments
	Overflow   uint64 // dropped: the queue was at its limit
	Unfit      uint64 // dropped: truncated, or too long and not TCP/IPv4, or a checksum we cannot complete
	Stale      uint64 // dropped: received before the wire was in place
	WriteErrs  uint64 // frames the output port refused (down, too big)
	Unsent     uint64 // still queued when the line closed
	MaxQueued  uint64 // the most frames queued at once
	ReadErrors uint64 // failed reads other than the port closing
}

func (s lineStats) String() string {
	return fmt.Sprintf("%d frames (%d super-frames cut), max %d queued, dropped: %d over the limit, %d unfit, %d stale, %d refused, %d unsent at the end; %d read errors",
		s.Frames, s.Segmented, s.MaxQueued, s.Overflow, s.Unfit, s.Stale, s.WriteErrs, s.Unsent, s.ReadErrors)
}

// queued is one frame waiting in a held lane.
type queued struct {
	buf []byte
	n   int
	due time.Time
}

// lane moves frames one way.
type lane struct {
	cfg  laneConfig
	held bool
	size int // buffer size: the longest frame Out sends
	log  *slog.Logger

	// Reader-goroutine state.
	lastDue time.Time
	scratch []byte // a frame with its VLAN tag put back, before cutting
	ready   []queued
	pkt     rewrite.Packet

	// Sending state: of the reader (a lane without delay) or of the
	// sender goroutine (a held lane), never both.
	out  []capture.Frame
	bufs [][]byte

	mu     sync.Mutex
	q      []queued // FIFO; q[head:] are waiting
	head   int
	free   [][]byte // recycled buffers
	nalloc int
	kick   chan struct{} // one wake-up for the sender: the queue was empty

	frames, segmented, overflow, unfit, stale, writeErrs, unsent, maxQueued, readErrs atomic.Uint64
}

func newLane(cfg laneConfig, log *slog.Logger) *lane {
	if cfg.Limit <= 0 {
		cfg.Limit = defaultLineLimit
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(0, 0))
	}
	return &lane{
		cfg:  cfg,
		held: cfg.Delay > 0 || cfg.Jitter > 0,
		size: cfg.MTU + 14 + 4,
		log:  log.With("lane", cfg.Name),
		kick: make(chan struct{}, 1),
	}
}

func (l *lane) stats() lineStats {
	return lineStats{
		Frames: l.frames.Load(), Segmented: l.segmented.Load(), Overflow: l.overflow.Load(),
		Unfit: l.unfit.Load(), Stale: l.stale.Load(), WriteErrs: l.writeErrs.Load(),
		Unsent: l.unsent.Load(), MaxQueued: l.maxQueued.Load(), ReadErrors: l.readErrs.Load(),
	}
}

// get returns a buffer for one outgoing frame, nil when the lane holds as
// many as its limit allows (a full queue plus a batch on its way out).
func (l *lane) get() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	if l.nalloc >= l.cfg.Limit+2*lineBatch {
		return nil
	}
	l.nalloc++
	return make([]byte, l.size)
}

func (l *lane) put(bufs ...[]byte) {
	l.mu.Lock()
	for _, b := range bufs {
		l.free = append(l.free, b[:cap(b)])
	}
	l.mu.Unlock()
}

// delay draws one frame's delay.
func (l *lane) delay() time.Duration {
	d := l.cfg.Delay
	if j := l.cfg.Jitter; j > 0 {
		d += time.Duration((l.cfg.Rand.Float64()*2 - 1) * float64(j))
	}
	return max(d, 0)
}

// read runs the lane's reader until its input port closes.
func (l *lane) read(stop <-chan struct{}) {
	frames := make([]capture.Frame, lineBatch)
	zc, lend := l.cfg.In.(capture.ZeroCopyReader)
	if !lend {
		frames = frames[:16]
		for i := range frames {
			frames[i].Buf = make([]byte, maxReadFrame)
		}
	}
	for {
		var n int
		var err error
		if lend {
			n, err = zc.ReadBatchZeroCopy(frames)
		} else {
			for i := range frames {
				frames[i].Buf = frames[i].Buf[:cap(frames[i].Buf)]
			}
			n, err = l.cfg.In.ReadBatch(frames)
		}
		now := time.Now()
		l.ready = l.ready[:0]
		for i := range n {
			l.take(&frames[i], now)
		}
		if len(l.ready) > 0 {
			if l.held {
				l.enqueue()
			} else {
				l.send(l.ready)
			}
		}
		if err != nil {
			select {
			case <-stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
				return
			}
			if l.readErrs.Add(1) == 1 {
				l.log.Warn("delay wire: read failed", "err", err)
			}
			// Not a closed port: a transient failure. Do not spin on it.
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// take makes frame f ready to send (l.ready), with its due time.
func (l *lane) take(f *capture.Frame, now time.Time) {
	// The kernel stamps frames when it hands them to the socket; the ring
	// shows a block up to BlockTimeout later. Count the delay from the
	// stamp when it is plausible (an skb may carry a sender's timestamp in
	// another clock).
	base := now
	if age := time.Duration(now.UnixNano() - f.TS); f.TS != 0 && age >= 0 && age < time.Second {
		base = now.Add(-age)
		if f.TS < l.cfg.Since {
			l.stale.Add(1)
			return
		}
	}
	if f.Truncated() {
		l.unfit.Add(1)
		return
	}
	data := f.Data()
	if f.VLANValid {
		// Put the tag back between the addresses and the EtherType.
		if len(data) < 12 {
			l.unfit.Add(1)
			return
		}
		need := len(data) + 4
		if cap(l.scratch) < need {
			l.scratch = make([]byte, need+1024)
		}
		s := l.scratch[:need]
		copy(s, data[:12])
		tpid := f.VLANTPID
		if tpid == 0 {
			tpid = rewrite.EtherTypeVLAN
		}
		binary.BigEndian.PutUint16(s[12:], tpid)
		binary.BigEndian.PutUint16(s[14:], f.VLANTCI)
		copy(s[16:], data[12:])
		data = s
	}
	var due time.Time
	if l.held {
		due = base.Add(l.delay())
		// FIFO: never before the frame ahead (see the package comment).
		if due.Before(l.lastDue) {
			due = l.lastDue
		}
		l.lastDue = due
	}
	if len(data) <= frameRoom(l.cfg.MTU, data) {
		buf := l.get()
		if buf == nil {
			l.overflow.Add(1)
			return
		}
		n := copy(buf, data)
		if f.CsumNotReady {
			if err := completeChecksum(buf[:n], &l.pkt); err != nil {
				l.put(buf)
				l.unfit.Add(1)
				return
			}
		}
		l.ready = append(l.ready, queued{buf: buf, n: n, due: due})
		return
	}
	// Longer than the link takes: a segmentation-offload super-frame from
	// a sender with TSO on. Cut it as the wire would have (the segments
	// come out with complete checksums).
	if err := rewrite.Parse(data, &l.pkt); err != nil || l.pkt.Protocol != rewrite.ProtoTCP {
		l.unfit.Add(1)
		return
	}
	var cur []byte
	emitted, starved := 0, false
	_, err := rewrite.SegmentTCP(data, &l.pkt, l.cfg.MTU, 0, func() []byte {
		// Every buffer has room for any segment (MTU+18 bytes), so
		// SegmentTCP fails after asking only when get had none to give.
		cur = l.get()
		starved = cur == nil
		return cur
	}, func(seg []byte) {
		l.ready = append(l.ready, queued{buf: cur, n: len(seg), due: due})
		emitted++
	})
	switch {
	case err == nil:
	case starved:
		// Out of buffers midway: the segments so far go out, the rest
		// is lost, as on a full queue.
		l.overflow.Add(1)
	default:
		l.unfit.Add(1)
	}
	if emitted > 0 {
		l.segmented.Add(1)
	}
}

// frameRoom is the longest frame a link with this MTU carries whole: MTU
// plus the Ethernet header, plus a tag when the frame carries one inline.
func frameRoom(mtu int, frame []byte) int {
	n := mtu + rewrite.EthernetHeaderLen
	if len(frame) >= 14 {
		if et := binary.BigEndian.Uint16(frame[12:14]); et == rewrite.EtherTypeVLAN || et == 0x88a8 {
			n += 4
		}
	}
	return n
}

// enqueue appends the ready frames to the queue and wakes the sender.
func (l *lane) enqueue() {
	l.mu.Lock()
	wasEmpty := l.head == len(l.q)
	var drop [][]byte
	for _, r := range l.ready {
		if len(l.q)-l.head >= l.cfg.Limit {
			drop = append(drop, r.buf)
			continue
		}
		l.q = append(l.q, r)
	}
	if waiting := uint64(len(l.q) - l.head); waiting > l.maxQueued.Load() {
		l.maxQueued.Store(waiting)
	}
	l.mu.Unlock()
	if len(drop) > 0 {
		l.overflow.Add(uint64(len(drop)))
		l.put(drop...)
	}
	if wasEmpty {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// pop takes up to lineBatch frames due by now off the queue; wait is how
// long until the next one is due (0: the queue is empty).
func (l *lane) pop(now time.Time, out []queued) ([]queued, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.head < len(l.q) && len(out) < lineBatch {
		q := l.q[l.head]
		if q.due.After(now) {
			return out, q.due.Sub(now)
		}
		l.q[l.head] = queued{}
		l.head++
		out = append(out, q)
	}
	if l.head == len(l.q) {
		l.q, l.head = l.q[:0], 0
	} else if l.head > 1024 && l.head > len(l.q)/2 {
		// Move the waiting frames to the front now and then, so the
		// slice does not grow with everything ever queued.
		n := copy(l.q, l.q[l.head:])
		clear(l.q[n:])
		l.q, l.head = l.q[:n], 0
	}
	if len(out) == lineBatch && l.head < len(l.q) {
		return out, -1 // more due now
	}
	return out, 0
}

// run sends a held lane's frames when they are due, until stop.
func (l *lane) run(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var batch []queued
	for {
		var wait time.Duration
		batch, wait = l.pop(time.Now(), batch[:0])
		if len(batch) > 0 {
			l.send(batch)
		}
		switch {
		case wait < 0:
			continue
		case wait == 0 && len(batch) == 0:
			select {
			case <-l.kick:
			case <-stop:
				return
			}
		case wait > 0:
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-stop:
				return
			}
		}
	}
}

// send writes frames to the output port and recycles their buffers. A
// frame the port refuses (link down, too long) is dropped and counted;
// the rest go on.
func (l *lane) send(batch []queued) {
	for len(batch) > 0 {
		k := min(len(batch), lineBatch)
		frames := l.out[:0]
		bufs := l.bufs[:0]
		for _, q := range batch[:k] {
			frames = append(frames, capture.Frame{Buf: q.buf, N: q.n})
			bufs = append(bufs, q.buf)
		}
		done := 0
		for done < k {
			n, err := l.cfg.Out.WriteBatch(frames[done:])
			l.frames.Add(uint64(n))
			done += n
			if err == nil {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				l.unsent.Add(uint64(k - done))
				done = k
				break
			}
			if l.writeErrs.Add(1) == 1 {
				l.log.Info("delay wire: output refused a frame (counted, not retried)", "err", err)
			}
			done++
		}
		l.put(bufs...)
		clear(frames) // no references to recycled buffers
		l.out, l.bufs = frames, bufs
		batch = batch[k:]
	}
}

// drain counts what is still queued when the line closes (dropped, as
// removing a netem qdisc drops its queue).
func (l *lane) drain() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unsent.Add(uint64(len(l.q) - l.head))
	l.q, l.head, l.free = nil, 0, nil
}

// delayLine is a running pair of lanes.
type delayLine struct {
	lanes []*lane
	ports []capture.Port
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// startLine starts the lanes; ports are closed by close (each once).
func startLine(log *slog.Logger, ports []capture.Port, lanes ...laneConfig) *delayLine {
	d := &delayLine{ports: ports, stop: make(chan struct{})}
	for _, c := range lanes {
		l := newLane(c, log)
		d.lanes = append(d.lanes, l)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			l.read(d.stop)
		}()
		if l.held {
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				l.run(d.stop)
			}()
		}
	}
	return d
}

// close stops the lanes, closes the ports and waits for the goroutines.
func (d *delayLine) close() error {
	var errs []error
	d.once.Do(func() {
		close(d.stop)
		for _, p := range d.ports {
			if err := p.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		d.wg.Wait()
		for _, l := range d.lanes {
			l.drain()
		}
	})
	return errors.Join(errs...)
}

// completeChecksum finishes the L4 checksum of a CHECKSUM_PARTIAL frame
// (IPv4 through rewrite; IPv6 without extension headers here, as lvslab's
// parsers stop at IPv4).
func completeChecksum(frame []byte, p *rewrite.Packet) error {
	l3 := rewrite.EthernetHeaderLen
	if len(frame) < l3 {
		return rewrite.ErrTruncated
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	if et == rewrite.EtherTypeVLAN && len(frame) >= l3+4 {
		l3 += 4
		et = binary.BigEndian.Uint16(frame[16:18])
	}
	if et == etherTypeIPv6 {
		return completeIPv6(frame, l3)
	}
	if err := rewrite.Parse(frame, p); err != nil {
		return err
	}
	p.Partial = true
	return rewrite.CompletePartial(frame, p)
}

const etherTypeIPv6 = 0x86dd

func completeIPv6(frame []byte, l3 int) error {
	const hdr = 40
	if len(frame) < l3+hdr {
		return rewrite.ErrTruncated
	}
	l4 := l3 + hdr
	end := l4 + int(binary.BigEndian.Uint16(frame[l3+4:]))
	if end > len(frame) {
		return rewrite.ErrTruncated
	}
	var off int
	switch frame[l3+6] {
	case rewrite.ProtoTCP:
		off = 16
	case rewrite.ProtoUDP:
		off = 6
	default:
		return rewrite.ErrWrongProtocol
	}
	if l4+off+2 > end {
		return rewrite.ErrTruncated
	}
	// The field holds the pseudo-header sum: summing the segment over it
	// and complementing gives the checksum (skb_checksum_help).
	sum := ^rewrite.OnesSum(frame[l4:end], 0)
	binary.BigEndian.PutUint16(frame[l4+off:], rewrite.UDPWireChecksum(sum))
	return nil
}
