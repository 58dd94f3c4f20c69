package pktgen

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"lvslab/capture"
	"lvslab/rewrite"
)

// The TCP side of the lab. A forwarder that tracks TCP (lvsd, and above
// all its SYN proxy, which forwards nothing but established connections)
// needs each flow's handshake done through it before data segments pass:
// Establish does the client's part from raw frames, a Responder the real
// server's. The data frames Establish returns then go through a Generator
// like the UDP frames. Handshaker is the other measurement: new
// connections per second against a real server's kernel.

// Sources lists the flows' source addresses and ports, in the order of
// Frames.
func (f Flows) Sources() ([]netip.AddrPort, error) {
	if err := f.normalize(); err != nil {
		return nil, err
	}
	out := make([]netip.AddrPort, 0, f.SrcAddrs*f.Ports)
	src := f.Src
	for range f.SrcAddrs {
		for p := range f.Ports {
			out = append(out, netip.AddrPortFrom(src, f.SrcPort+uint16(p)))
		}
		src = src.Next()
	}
	return out, nil
}

// clientISN is flow i's initial sequence number: any fixed function would
// do, a spread one keeps the flows' sequence spaces apart.
func clientISN(i int) uint32 { return uint32(i)*2654435761 + 0x1000 }

// EstablishConfig describes the handshakes Establish does.
type EstablishConfig struct {
	// Interface is the client side's interface, in the network namespace
	// of the thread calling Establish.
	Interface string
	// Flows are the connections, to Flows.Dst; Flows.Payload sizes the
	// data frames returned (0: DefaultTCPPayload, a 64-byte frame).
	Flows Flows
	// WaitSYNACK says the forwarder returns SYN/ACKs (NAT, FULLNAT, SYN
	// proxy): the ACK acknowledges what came back, and a flow without an
	// answer is retried. Without it (DR: the real server answers around
	// the forwarder; a forwarder that tracks nothing) the SYN is followed
	// by an ACK of sequence number 1 after Settle.
	WaitSYNACK bool
	// Settle is how long after the SYNs the ACKs go when not waiting
	// (default 100ms), and how long the SYN/ACKs of the last retry are
	// waited for.
	Settle time.Duration
	// Timeout bounds the whole (default 5s).
	Timeout time.Duration
}

// Establish opens every flow's connection and returns one data frame per
// flow (ACK|PSH, in sequence right after the handshake), ready for a
// Generator. Sending the same frames again and again makes them
// retransmissions to TCP, and to a forwarder exactly the per-packet work
// of an established flow's data.
func Establish(ctx context.Context, cfg EstablishConfig) ([][]byte, error) {
	if cfg.Settle <= 0 {
		cfg.Settle = 100 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	f := cfg.Flows
	srcs, err := f.Sources()
	if err != nil {
		return nil, err
	}
	payload := f.Payload
	if payload == 0 {
		payload = DefaultTCPPayload
	}
	if payload < 1 || TCPHeadersLen+payload > 1514 {
		return nil, fmt.Errorf("pktgen: TCP payload of %d bytes", payload)
	}
	index := make(map[netip.AddrPort]int, len(srcs))
	for i, s := range srcs {
		index[s] = i
	}
	port, err := capture.Open(capture.Config{Interface: cfg.Interface, Outgoing: capture.OutgoingIgnore})
	if err != nil {
		return nil, fmt.Errorf("pktgen: %w", err)
	}
	defer port.Close()

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = port.SetReadDeadline(time.Now()) })
	defer stop()

	peerISN := make([]uint32, len(srcs))
	answered := make([]bool, len(srcs))
	left := len(srcs)
	buf := make([]byte, TCPHeadersLen+len(mssOption))
	send := func(i int, flags uint8, seq, ack uint32, opts []byte) error {
		b := buf[:TCPHeadersLen+len(opts)]
		BuildTCP(b, f.SrcMAC, f.DstMAC, TCPHeader{Src: srcs[i], Dst: f.Dst, Seq: seq, Ack: ack, Flags: flags, Window: 65535, Options: opts})
		_, err := port.WriteBatch([]capture.Frame{{Buf: b, N: len(b), Len: len(b)}})
		return err
	}
	// Flow 0 first, alone: the forwarder resolves the real server's
	// address on it, not with thousands of SYNs waiting in its queue for
	// the ARP reply (which drops them).
	first := true
	sendSYNs := func() error {
		for i := range srcs {
			if first && i > 0 {
				break
			}
			if !answered[i] {
				if err := send(i, rewrite.TCPFlagSYN, clientISN(i), 0, mssOption); err != nil {
					return fmt.Errorf("pktgen: SYN: %w", err)
				}
			}
			// Paced: thousands of SYNs at once overflow a receive queue
			// somewhere on the way, and DR has no SYN/ACK to retry on.
			if i%64 == 63 {
				time.Sleep(time.Millisecond)
			}
		}
		return nil
	}
	if err := sendSYNs(); err != nil {
		return nil, err
	}
	if !cfg.WaitSYNACK {
		if err := sleep(ctx, cfg.Settle); err != nil {
			return nil, err
		}
		first = false
		if err := sendSYNs(); err != nil {
			return nil, err
		}
	}
	if cfg.WaitSYNACK {
		rx := make([]capture.Frame, 256)
		retry := time.Now().Add(cfg.Settle)
		for left > 0 {
			if time.Now().After(retry) {
				if err := sendSYNs(); err != nil {
					return nil, err
				}
				retry = time.Now().Add(cfg.Settle)
			}
			_ = port.SetReadDeadline(retry)
			n, rerr := port.ReadBatchZeroCopy(rx)
			for k := range n {
				s, ok := ParseTCP(rx[k].Data())
				if !ok || s.Src != f.Dst || s.Flags&(rewrite.TCPFlagSYN|rewrite.TCPFlagACK) != rewrite.TCPFlagSYN|rewrite.TCPFlagACK {
					continue
				}
				i, ok := index[s.Dst]
				if !ok || s.Ack != clientISN(i)+1 {
					continue
				}
				if !answered[i] {
					answered[i], peerISN[i] = true, s.Seq
					left--
				}
				if err := send(i, rewrite.TCPFlagACK, clientISN(i)+1, s.Seq+1, nil); err != nil {
					return nil, fmt.Errorf("pktgen: ACK: %w", err)
				}
				if first && i == 0 {
					// Through to the real server (a SYN proxy opens its
					// side on this ACK) before the rest.
					if err := sleep(ctx, cfg.Settle); err != nil {
						return nil, err
					}
					first = false
					if err := sendSYNs(); err != nil {
						return nil, err
					}
					retry = time.Now().Add(cfg.Settle)
				}
			}
			if rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
				return nil, fmt.Errorf("pktgen: %w", rerr)
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("pktgen: %d of %d handshakes unanswered after %v", left, len(srcs), cfg.Timeout)
			}
		}
	} else {
		if err := sleep(ctx, cfg.Settle); err != nil {
			return nil, err
		}
		for i := range srcs {
			peerISN[i] = 0 // the ACK acknowledges sequence number 1
			if err := send(i, rewrite.TCPFlagACK, clientISN(i)+1, 1, nil); err != nil {
				return nil, fmt.Errorf("pktgen: ACK: %w", err)
			}
		}
	}

	size := TCPHeadersLen + payload
	mem := make([]byte, len(srcs)*size)
	frames := make([][]byte, len(srcs))
	for i := range srcs {
		b := mem[i*size : (i+1)*size : (i+1)*size]
		BuildTCP(b, f.SrcMAC, f.DstMAC, TCPHeader{Src: srcs[i], Dst: f.Dst, Seq: clientISN(i) + 1, Ack: peerISN[i] + 1,
			Flags: rewrite.TCPFlagACK | rewrite.TCPFlagPSH, Window: 65535})
		frames[i] = b
	}
	return frames, nil
}

// Responder is a real server's handshake, from raw frames: it answers
// every SYN to its port with a SYN/ACK and nothing else (the kernel of its
// namespace must be kept from answering too). It stands in for a TCP stack
// where only the handshake matters, the data being counted by a Sink.
type Responder struct {
	port     *capture.AFPacket
	dport    uint16
	answered atomic.Uint64
	seen     map[netip.AddrPort]bool // by Run only
}

// OpenResponder opens the responder's port on iface in the calling
// thread's network namespace.
func OpenResponder(iface string, dport uint16) (*Responder, error) {
	port, err := capture.Open(capture.Config{Interface: iface, Outgoing: capture.OutgoingIgnore})
	if err != nil {
		return nil, fmt.Errorf("pktgen responder: %w", err)
	}
	return &Responder{port: port, dport: dport, seen: map[netip.AddrPort]bool{}}, nil
}

// Answered is the number of connections (distinct sources) answered so
// far.
func (r *Responder) Answered() uint64 { return r.answered.Load() }

// Run answers SYNs until ctx is done or the port is closed.
func (r *Responder) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = r.port.SetReadDeadline(time.Now()) })
	defer stop()
	rx := make([]capture.Frame, 256)
	tx := make([]capture.Frame, 0, len(rx))
	mem := make([]byte, len(rx)*(TCPHeadersLen+len(mssOption)))
	for {
		n, err := r.port.ReadBatchZeroCopy(rx)
		tx = tx[:0]
		for k := range n {
			s, ok := ParseTCP(rx[k].Data())
			if !ok || s.Dst.Port() != r.dport || s.Flags&(rewrite.TCPFlagSYN|rewrite.TCPFlagACK|rewrite.TCPFlagRST) != rewrite.TCPFlagSYN {
				continue
			}
			size := TCPHeadersLen + len(mssOption)
			b := mem[len(tx)*size : (len(tx)+1)*size]
			// Any fixed function of the connection is a valid ISN.
			isn := s.Seq*2246822519 ^ uint32(s.Src.Port())<<16
			BuildTCP(b, s.DstMAC, s.SrcMAC, TCPHeader{Src: s.Dst, Dst: s.Src, Seq: isn, Ack: s.Seq + 1,
				Flags: rewrite.TCPFlagSYN | rewrite.TCPFlagACK, Window: 65535, Options: mssOption})
			tx = append(tx, capture.Frame{Buf: b, N: size, Len: size})
			if !r.seen[s.Src] {
				r.seen[s.Src] = true
				r.answered.Add(1)
			}
		}
		if stop, err := sendBatch(ctx, r.port, tx, err, "responder"); stop {
			return err
		}
	}
}

// Close releases the port.
func (r *Responder) Close() error { return r.port.Close() }
