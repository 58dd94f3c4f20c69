package pktgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"lvslab/capture"
	"lvslab/rewrite"
)

// HandshakeConfig describes a Handshaker.
type HandshakeConfig struct {
	// Interface is the clients' interface, in the network namespace of the
	// thread calling OpenHandshaker.
	Interface string
	// Clients are the source addresses and ports connections come from
	// (Flows.Payload unused): each connection takes the next, in turn, so
	// a source comes round again only after SrcAddrs × Ports connections.
	Clients Flows
	// Offset is the index of the first source used (a lab running several
	// Handshakers in turn keeps them off each other's sources).
	Offset int
	// InFlight is the most handshakes open at once (default 1024): the
	// load is closed-loop, a new SYN goes when an earlier connection ends.
	InFlight int
	// Timeout is how long a connection may take before its slot is given
	// to a new one and it is counted as lost (default 1s).
	Timeout time.Duration
}

// Handshaker opens connections from raw frames as fast as they complete:
// SYN; on the SYN/ACK (the real server's, or a SYN proxy's cookie) the
// ACK; on the server's first data (its greeting) a RST, and the connection
// counts as completed. The greeting is what comes back only when the whole
// chain worked — through a SYN proxy that means the proxy's own handshake,
// its handshake with the real server, and the real server's accept — so
// completed connections are counted from it, not from SYN/ACKs.
//
// The kernel of the clients' namespace must not see the answers (it would
// reset them): drop them at ingress, after the packet taps.
type Handshaker struct {
	cfg    HandshakeConfig
	port   *capture.AFPacket
	n      int // sources
	state  []atomic.Uint32
	sentAt []int64 // written by the sender only
	tokens chan struct{}

	started, synacks, completed, refused, lost atomic.Uint64
}

// Handshake states of a source.
const (
	hsIdle   = iota // free, or done
	hsSYN           // SYN sent
	hsSYNACK        // SYN/ACK answered
)

// HandshakeCounts are a Handshaker's counters at one moment.
type HandshakeCounts struct {
	Started   uint64 // SYNs sent for new connections
	SYNACKs   uint64 // SYN/ACKs answered (retransmissions not counted)
	Completed uint64 // greetings received: connections through to the server
	Refused   uint64 // RSTs received
	Lost      uint64 // connections given up after Timeout
	At        time.Time
}

// OpenHandshaker opens the port in the calling thread's network namespace.
// RunSender and RunReceiver may then run on any threads, one each.
func OpenHandshaker(cfg HandshakeConfig) (*Handshaker, error) {
	if cfg.InFlight <= 0 {
		cfg.InFlight = 1024
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	c := cfg.Clients
	if err := c.normalize(); err != nil {
		return nil, err
	}
	cfg.Clients = c
	n := c.SrcAddrs * c.Ports
	if cfg.InFlight > n/2 {
		return nil, fmt.Errorf("pktgen: %d handshakes in flight need more than %d sources", cfg.InFlight, n)
	}
	port, err := capture.Open(capture.Config{Interface: cfg.Interface, Outgoing: capture.OutgoingIgnore, Blocks: 32})
	if err != nil {
		return nil, fmt.Errorf("pktgen: %w", err)
	}
	h := &Handshaker{cfg: cfg, port: port, n: n, state: make([]atomic.Uint32, n), sentAt: make([]int64, n),
		tokens: make(chan struct{}, cfg.InFlight)}
	for range cfg.InFlight {
		h.tokens <- struct{}{}
	}
	return h, nil
}

// Counts returns the counters now. Safe while the handshaker runs.
func (h *Handshaker) Counts() HandshakeCounts {
	return HandshakeCounts{Started: h.started.Load(), SYNACKs: h.synacks.Load(), Completed: h.completed.Load(),
		Refused: h.refused.Load(), Lost: h.lost.Load(), At: time.Now()}
}

// Since is what happened from earlier to c, and over how long.
func (c HandshakeCounts) Since(earlier HandshakeCounts) (HandshakeCounts, time.Duration) {
	return HandshakeCounts{Started: c.Started - earlier.Started, SYNACKs: c.SYNACKs - earlier.SYNACKs,
		Completed: c.Completed - earlier.Completed, Refused: c.Refused - earlier.Refused, Lost: c.Lost - earlier.Lost,
		At: c.At}, c.At.Sub(earlier.At)
}

// source is source i's address and port.
func (h *Handshaker) source(i int) netip.AddrPort {
	c := h.cfg.Clients
	a := c.Src.As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i / c.Ports)
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), c.SrcPort+uint16(i%c.Ports))
}

// index is the source of an answer to addr, or -1.
func (h *Handshaker) index(addr netip.AddrPort) int {
	c := h.cfg.Clients
	a, s := addr.Addr().As4(), c.Src.As4()
	d := int(uint32(a[0])<<24|uint32(a[1])<<16|uint32(a[2])<<8|uint32(a[3])) -
		int(uint32(s[0])<<24|uint32(s[1])<<16|uint32(s[2])<<8|uint32(s[3]))
	p := int(addr.Port()) - int(c.SrcPort)
	if d < 0 || d >= c.SrcAddrs || p < 0 || p >= c.Ports {
		return -1
	}
	return d*c.Ports + p
}

// end finishes source i's connection if it was open (from state from):
// its slot goes to a new one.
func (h *Handshaker) end(i int, from uint32) bool {
	if !h.state[i].CompareAndSwap(from, hsIdle) {
		return false
	}
	h.tokens <- struct{}{}
	return true
}

// RunSender sends SYNs, one per free slot, until ctx is done.
func (h *Handshaker) RunSender(ctx context.Context) error {
	const batch = 64
	c := h.cfg.Clients
	size := TCPHeadersLen + len(mssOption)
	mem := make([]byte, batch*size)
	tx := make([]capture.Frame, 0, batch)
	next, tail := h.cfg.Offset%h.n, h.cfg.Offset%h.n
	issued := 0 // sources from tail to next
	reap := time.NewTicker(10 * time.Millisecond)
	defer reap.Stop()
	for {
		// One slot, waiting; then whatever more are free.
		select {
		case <-ctx.Done():
			return nil
		case <-reap.C:
			// In issue order: the oldest open connection first.
			limit := time.Now().Add(-h.cfg.Timeout).UnixNano()
			for issued > 0 {
				st := h.state[tail].Load()
				if st != hsIdle && h.sentAt[tail] > limit {
					break
				}
				if st != hsIdle && h.end(tail, st) {
					h.lost.Add(1)
				}
				tail, issued = (tail+1)%h.n, issued-1
			}
			continue
		case <-h.tokens:
		}
		k := 1
		for k < batch {
			select {
			case <-h.tokens:
				k++
				continue
			default:
			}
			break
		}
		if issued+k > h.n {
			return errors.New("pktgen: every source is in use") // cannot happen: InFlight <= n/2
		}
		now := time.Now().UnixNano()
		tx = tx[:0]
		for j := range k {
			i := next
			next, issued = (next+1)%h.n, issued+1
			h.sentAt[i] = now
			h.state[i].Store(hsSYN)
			b := mem[j*size : (j+1)*size]
			BuildTCP(b, c.SrcMAC, c.DstMAC, TCPHeader{Src: h.source(i), Dst: c.Dst, Seq: clientISN(i), Flags: rewrite.TCPFlagSYN,
				Window: 65535, Options: mssOption})
			tx = append(tx, capture.Frame{Buf: b, N: size, Len: size})
		}
		w, err := h.port.WriteBatch(tx)
		h.started.Add(uint64(w))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("pktgen handshaker: %w", err)
		}
	}
}

// RunReceiver answers what comes back until ctx is done or the port is
// closed: ACK to a SYN/ACK, RST to data (after counting the connection),
// and a RST from the server ends the connection as refused.
func (h *Handshaker) RunReceiver(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = h.port.SetReadDeadline(time.Now()) })
	defer stop()
	c := h.cfg.Clients
	rx := make([]capture.Frame, 256)
	tx := make([]capture.Frame, 0, len(rx))
	mem := make([]byte, len(rx)*TCPHeadersLen)
	for {
		n, err := h.port.ReadBatchZeroCopy(rx)
		tx = tx[:0]
		for k := range n {
			s, ok := ParseTCP(rx[k].Data())
			if !ok || s.Src != c.Dst {
				continue
			}
			i := h.index(s.Dst)
			if i < 0 || s.Ack != clientISN(i)+1 {
				continue
			}
			var reply TCPHeader
			switch {
			case s.Flags&rewrite.TCPFlagRST != 0:
				if h.end(i, hsSYN) || h.end(i, hsSYNACK) {
					h.refused.Add(1)
				}
				continue
			case s.Flags&(rewrite.TCPFlagSYN|rewrite.TCPFlagACK) == rewrite.TCPFlagSYN|rewrite.TCPFlagACK:
				if h.state[i].CompareAndSwap(hsSYN, hsSYNACK) {
					h.synacks.Add(1)
				} else if h.state[i].Load() != hsSYNACK {
					continue // a connection given up: let it time out
				}
				reply = TCPHeader{Seq: s.Ack, Ack: s.Seq + 1, Flags: rewrite.TCPFlagACK}
			case s.Payload > 0:
				if h.end(i, hsSYNACK) || h.end(i, hsSYN) {
					h.completed.Add(1)
				}
				reply = TCPHeader{Seq: s.Ack, Flags: rewrite.TCPFlagRST}
			default:
				continue
			}
			reply.Src, reply.Dst, reply.Window = s.Dst, s.Src, 65535
			b := mem[len(tx)*TCPHeadersLen : (len(tx)+1)*TCPHeadersLen]
			BuildTCP(b, c.SrcMAC, c.DstMAC, reply)
			tx = append(tx, capture.Frame{Buf: b, N: TCPHeadersLen, Len: TCPHeadersLen})
		}
		if stop, err := sendBatch(ctx, h.port, tx, err, "handshaker"); stop {
			return err
		}
	}
}

// Close releases the port.
func (h *Handshaker) Close() error { return h.port.Close() }

// sendBatch sends the replies a read batch built and says whether the
// loop that read it ends: on a read or write error, with nil when the
// error is the run's own end (its context done, the port closed).
func sendBatch(ctx context.Context, port *capture.AFPacket, tx []capture.Frame, err error, who string) (bool, error) {
	if len(tx) > 0 {
		if _, werr := port.WriteBatch(tx); werr != nil && err == nil {
			err = werr
		}
	}
	if err == nil {
		return false, nil
	}
	if ctx.Err() != nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed)) {
		return true, nil
	}
	return true, fmt.Errorf("pktgen %s: %w", who, err)
}
