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
)

// SinkConfig describes a sink.
type SinkConfig struct {
	// Interface is the interface to count on, in the network namespace of
	// the thread calling OpenSink.
	Interface string
	// DstPort and Dst select the frames counted: IPv4/UDP to DstPort and,
	// if Dst is valid, to Dst (MatchUDP).
	DstPort uint16
	Dst     netip.Addr
	// TCP counts TCP segments carrying data (MatchTCPData) instead.
	TCP bool
	// Batch is the number of frames per read (default 256).
	Batch int
	// Port is the template for the receive port. Zero ring settings get a
	// ring larger than capture's default (32 blocks of 1 MiB): a sink that
	// drops frames for lack of room would charge its own losses to the
	// forwarder under test.
	Port capture.Config
}

// Sink counts the frames arriving on an interface through a TPACKET_V3
// receive ring, reading them in place.
type Sink struct {
	cfg     SinkConfig
	port    *capture.AFPacket
	match   func(frame []byte, dst netip.Addr, dport uint16) bool
	matched atomic.Uint64
	other   atomic.Uint64
}

// Sample is a sink's counters at one moment.
type Sample struct {
	Matched uint64    // frames that passed the filter
	Other   uint64    // frames that did not
	Drops   uint64    // frames the kernel dropped for lack of ring space
	At      time.Time // when the sample was taken
}

// Window is what arrived between two samples.
type Window struct {
	Packets uint64 // matched frames
	Other   uint64
	Drops   uint64
	Elapsed time.Duration
}

// PPS is the matched frames per second over the window.
func (w Window) PPS() float64 {
	if w.Elapsed <= 0 {
		return 0
	}
	return float64(w.Packets) / w.Elapsed.Seconds()
}

// Since is the window from an earlier sample to s.
func (s Sample) Since(earlier Sample) Window {
	return Window{
		Packets: s.Matched - earlier.Matched,
		Other:   s.Other - earlier.Other,
		Drops:   s.Drops - earlier.Drops,
		Elapsed: s.At.Sub(earlier.At),
	}
}

// OpenSink opens the receive port in the calling thread's network
// namespace. Run may then be called from any thread.
func OpenSink(cfg SinkConfig) (*Sink, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	pc := cfg.Port
	if pc.Blocks == 0 && pc.BlockSize == 0 {
		pc.Blocks, pc.BlockSize = 32, 1<<20
	}
	// Our own sends, if any, are not arrivals.
	pc.Interface, pc.Ifindex, pc.NoRX, pc.NoTX, pc.Outgoing = cfg.Interface, 0, false, true, capture.OutgoingIgnore
	port, err := capture.Open(pc)
	if err != nil {
		return nil, fmt.Errorf("pktgen sink: %w", err)
	}
	s := &Sink{cfg: cfg, port: port, match: MatchUDP}
	if cfg.TCP {
		s.match = MatchTCPData
	}
	return s, nil
}

// Run counts frames until ctx is done or the port is closed.
func (s *Sink) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = s.port.SetReadDeadline(time.Now()) })
	defer stop()
	frames := make([]capture.Frame, s.cfg.Batch)
	for {
		n, err := s.port.ReadBatchZeroCopy(frames)
		var matched uint64
		for i := range n {
			if s.match(frames[i].Data(), s.cfg.Dst, s.cfg.DstPort) {
				matched++
			}
		}
		// One atomic add per batch, not per frame: samples are rare.
		s.matched.Add(matched)
		s.other.Add(uint64(n) - matched)
		if err != nil {
			if ctx.Err() != nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed)) {
				return nil
			}
			return fmt.Errorf("pktgen sink: %w", err)
		}
	}
}

// Sample returns the counters now. Safe while Run runs.
func (s *Sink) Sample() Sample {
	st := s.port.Stats()
	return Sample{Matched: s.matched.Load(), Other: s.other.Load(), Drops: st.Drops, At: time.Now()}
}

// Measure waits warmup, then returns what arrived over the next window.
// Run must be running on another goroutine.
func (s *Sink) Measure(ctx context.Context, warmup, window time.Duration) (Window, error) {
	if err := sleep(ctx, warmup); err != nil {
		return Window{}, err
	}
	a := s.Sample()
	if err := sleep(ctx, window); err != nil {
		return Window{}, err
	}
	return s.Sample().Since(a), nil
}

// WaitFor waits until at least n matched frames have arrived since the
// sink opened, or timeout passes.
func (s *Sink) WaitFor(ctx context.Context, n uint64, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for s.matched.Load() < n {
		if time.Now().After(end) {
			return fmt.Errorf("pktgen sink: %d of %d frames after %v", s.matched.Load(), n, timeout)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the port.
func (s *Sink) Close() error { return s.port.Close() }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
