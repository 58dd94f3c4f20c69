package capture

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// MemConfig describes a pair of in-memory ports.
type MemConfig struct {
	// Capacity is how many frames each direction queues (default 1024).
	// A write finding the queue full drops the frame and counts it in
	// TxDrops, as a link would.
	Capacity int
	// FrameSize is the room per queued frame (default 2048); longer frames
	// arrive truncated, Len telling their full length.
	FrameSize int
	// MTU flags frames longer than MTU+14 (+4 with a VLAN tag) as
	// Oversized on arrival (default 1500).
	MTU int
	// IfindexA and IfindexB are the Ifindex of frames read from port a and
	// port b (default 1 and 2).
	IfindexA, IfindexB int
}

// MemPort is one end of an in-memory link: what one end writes, the other
// reads, bytes and metadata (PktType, checksum flags, VLAN, Len, TS) as
// written. Frames are copied into preallocated slots: no allocation per
// frame.
type MemPort struct {
	name    string
	ifindex int
	mtu     int
	in      *memQueue // we read
	out     *memQueue // the peer reads
	closed  atomic.Bool
	dl      deadline
	c       memCounters
}

type memCounters struct {
	rxPackets, rxBytes, oversized, truncated atomic.Uint64
	txPackets, txBytes, txDrops              atomic.Uint64
}

// NewMemPair returns two connected ports. Closing either closes the link:
// the other end reads what was queued, then io.EOF.
func NewMemPair(cfg MemConfig) (a, b *MemPort) {
	if cfg.Capacity <= 0 {
		cfg.Capacity = 1024
	}
	if cfg.FrameSize <= 0 {
		cfg.FrameSize = defaultFrameSize
	}
	if cfg.MTU <= 0 {
		cfg.MTU = 1500
	}
	if cfg.IfindexA == 0 {
		cfg.IfindexA = 1
	}
	if cfg.IfindexB == 0 {
		cfg.IfindexB = 2
	}
	done := make(chan struct{})
	once := new(sync.Once)
	ab := newMemQueue(cfg.Capacity, cfg.FrameSize, done, once)
	ba := newMemQueue(cfg.Capacity, cfg.FrameSize, done, once)
	a = &MemPort{name: "mem-a", ifindex: cfg.IfindexA, mtu: cfg.MTU, in: ba, out: ab}
	b = &MemPort{name: "mem-b", ifindex: cfg.IfindexB, mtu: cfg.MTU, in: ab, out: ba}
	return a, b
}

// memQueue is a bounded FIFO of frames in fixed slots.
type memQueue struct {
	mu          sync.Mutex
	slots       []byte
	size        int
	meta        []Frame // Buf unused
	head, count int
	// notify has room for one wake-up: a reader that finds the queue empty
	// waits on it, a writer that adds frames posts to it.
	notify   chan struct{}
	done     chan struct{} // closed when either end closes
	doneOnce *sync.Once
}

func newMemQueue(capacity, size int, done chan struct{}, once *sync.Once) *memQueue {
	return &memQueue{
		slots:    make([]byte, capacity*size),
		size:     size,
		meta:     make([]Frame, capacity),
		notify:   make(chan struct{}, 1),
		done:     done,
		doneOnce: once,
	}
}

func (q *memQueue) closeLink() { q.doneOnce.Do(func() { close(q.done) }) }

func (q *memQueue) slot(i int) []byte { return q.slots[i*q.size : (i+1)*q.size] }

// put queues frames until full; it returns how many it took.
func (q *memQueue) put(frames []Frame, now int64) int {
	q.mu.Lock()
	n := 0
	capacity := len(q.meta)
	for ; n < len(frames) && q.count < capacity; n++ {
		f := &frames[n]
		i := (q.head + q.count) % capacity
		m := &q.meta[i]
		*m = *f
		m.Buf = nil
		m.N = copy(q.slot(i), f.Buf[:f.N])
		m.Len = max(f.Len, f.N)
		if m.TS == 0 {
			m.TS = now
		}
		q.count++
	}
	q.mu.Unlock()
	if n > 0 {
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
	return n
}

// get copies queued frames into frames.
func (q *memQueue) get(frames []Frame, ifindex, mtu int, c *memCounters) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	var bytes, over, trunc uint64
	for ; n < len(frames) && q.count > 0; n++ {
		f := &frames[n]
		buf := f.Buf
		*f = q.meta[q.head]
		f.Buf = buf
		f.N = copy(buf, q.slot(q.head)[:f.N])
		f.Ifindex = ifindex
		f.Oversized = f.Len > maxFrameLen(mtu, f.Buf[:f.N])
		if f.Oversized {
			over++
		}
		if f.Len > f.N {
			trunc++
		}
		bytes += uint64(f.N)
		q.head = (q.head + 1) % len(q.meta)
		q.count--
	}
	c.rxPackets.Add(uint64(n))
	c.rxBytes.Add(bytes)
	c.oversized.Add(over)
	c.truncated.Add(trunc)
	return n
}

// ReadBatch implements Port.
func (p *MemPort) ReadBatch(frames []Frame) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	for {
		if p.closed.Load() {
			return 0, fmt.Errorf("capture: %s: read: %w", p.name, net.ErrClosed)
		}
		if n := p.in.get(frames, p.ifindex, p.mtu, &p.c); n > 0 {
			return n, nil
		}
		select {
		case <-p.in.notify:
		case <-p.in.done:
			// Hand on what was queued before the close, then report it.
			if n := p.in.get(frames, p.ifindex, p.mtu, &p.c); n > 0 {
				return n, nil
			}
			if p.closed.Load() {
				continue
			}
			return 0, io.EOF
		case <-p.dl.wait():
			return 0, fmt.Errorf("capture: %s: read: %w", p.name, os.ErrDeadlineExceeded)
		}
	}
}

// WriteBatch implements Port. Frames that find the peer's queue full are
// dropped and counted, and still count as written, as on a real link.
func (p *MemPort) WriteBatch(frames []Frame) (int, error) {
	if p.closed.Load() {
		return 0, fmt.Errorf("capture: %s: write: %w", p.name, net.ErrClosed)
	}
	select {
	case <-p.out.done:
		return 0, fmt.Errorf("capture: %s: write: peer closed: %w", p.name, net.ErrClosed)
	default:
	}
	valid := len(frames)
	for i := range frames {
		if f := &frames[i]; f.N < 0 || f.N > len(f.Buf) {
			valid = i
			break
		}
	}
	n := p.out.put(frames[:valid], time.Now().UnixNano())
	var bytes uint64
	for i := range n {
		bytes += uint64(frames[i].N)
	}
	p.c.txPackets.Add(uint64(n))
	p.c.txBytes.Add(bytes)
	p.c.txDrops.Add(uint64(valid - n))
	if valid < len(frames) {
		f := &frames[valid]
		return valid, fmt.Errorf("capture: %s: write: frame of %d bytes in a buffer of %d", p.name, f.N, len(f.Buf))
	}
	return valid, nil
}

// SetReadDeadline implements Port.
func (p *MemPort) SetReadDeadline(t time.Time) error {
	p.dl.set(t)
	return nil
}

// Stats implements Port.
func (p *MemPort) Stats() Stats {
	return Stats{
		RxPackets: p.c.rxPackets.Load(),
		RxBytes:   p.c.rxBytes.Load(),
		Oversized: p.c.oversized.Load(),
		Truncated: p.c.truncated.Load(),
		TxPackets: p.c.txPackets.Load(),
		TxBytes:   p.c.txBytes.Load(),
		TxDrops:   p.c.txDrops.Load(),
	}
}

// Close implements Port; it closes the link for both ends.
func (p *MemPort) Close() error {
	if !p.closed.Swap(true) {
		p.in.closeLink()
	}
	return nil
}

// deadline is a read deadline as a channel that closes when it passes, so a
// waiting reader can select on it (the scheme net.Pipe uses).
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait until it has closed cancel
	}
	d.timer = nil
	if d.cancel == nil || isClosed(d.cancel) {
		d.cancel = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	if dur := time.Until(t); dur > 0 {
		c := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(c) })
		return
	}
	close(d.cancel)
}

// wait returns a channel closed once the deadline has passed; nil (never
// ready) when no deadline was ever set.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
