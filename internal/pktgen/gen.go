package pktgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"lvslab/capture"
)

// Config describes a generator.
type Config struct {
	// Interface is the interface to send on, in the network namespace of
	// the thread calling Open.
	Interface string
	// Flows are the frames sent, round robin over the flows.
	Flows Flows
	// Frames, if set, are sent instead of Flows' (prebuilt by the caller:
	// Establish's TCP data frames).
	Frames [][]byte
	// Batch is the number of frames per WriteBatch (default 64).
	Batch int
	// Rate caps the frames sent per second; 0 sends as fast as the port
	// takes them.
	Rate float64
	// Count stops the generator after this many frames (0: no limit).
	Count uint64
	// Duration stops the generator after this long (0: no limit). With
	// neither Count nor Duration, only the context stops it.
	Duration time.Duration
	// Port is the template for the transmit port (TXMode, TXFrames,
	// QdiscBypass); Interface and NoRX are set by Open.
	Port capture.Config
}

// Result is what a generator run did.
type Result struct {
	Sent    uint64        // frames the kernel accepted
	Elapsed time.Duration // from the first send to the end of the run
	Port    capture.Stats
}

// PPS is the sending rate over the run.
func (r Result) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// Generator sends a fixed set of prebuilt frames through a transmit-only
// AF_PACKET port.
type Generator struct {
	cfg    Config
	port   *capture.AFPacket
	frames []capture.Frame // one per flow, cycled through
	sent   atomic.Uint64
	timer  *time.Timer // pacing; reused so a paced run allocates nothing per batch
}

// Open builds the frames and opens the transmit port in the calling
// thread's network namespace. Run may then be called from any thread.
func Open(cfg Config) (*Generator, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("pktgen: negative rate %v", cfg.Rate)
	}
	bufs := cfg.Frames
	if bufs == nil {
		var err error
		if bufs, err = cfg.Flows.Frames(); err != nil {
			return nil, err
		}
	}
	pc := cfg.Port
	pc.Interface, pc.Ifindex, pc.NoRX, pc.NoTX, pc.Fanout = cfg.Interface, 0, true, false, nil
	port, err := capture.Open(pc)
	if err != nil {
		return nil, fmt.Errorf("pktgen: %w", err)
	}
	g := &Generator{cfg: cfg, port: port, frames: make([]capture.Frame, len(bufs))}
	for i, b := range bufs {
		g.frames[i] = capture.Frame{Buf: b, N: len(b), Len: len(b)}
	}
	return g, nil
}

// Flows is the number of distinct flows sent.
func (g *Generator) Flows() int { return len(g.frames) }

// Sent is the number of frames sent so far; safe to call while Run runs,
// to measure a window of a run.
func (g *Generator) Sent() uint64 { return g.sent.Load() }

// Stats returns the port's counters.
func (g *Generator) Stats() capture.Stats { return g.port.Stats() }

// Run sends until ctx is done, Count frames are sent or Duration has
// passed, whichever comes first. A generator runs once.
func (g *Generator) Run(ctx context.Context) (Result, error) {
	if g.cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.Duration)
		defer cancel()
	}
	// A full transmit ring makes WriteBatch wait; the deadline wakes it
	// when the run is over.
	stop := context.AfterFunc(ctx, func() { _ = g.port.SetWriteDeadline(time.Now()) })
	defer stop()

	var (
		next  int // index of the next frame to send
		start = time.Now()
		err   error
	)
	for ctx.Err() == nil {
		k := min(g.cfg.Batch, len(g.frames)-next)
		if g.cfg.Count > 0 {
			left := g.cfg.Count - g.sent.Load()
			if left == 0 {
				break
			}
			k = int(min(uint64(k), left))
		}
		if g.cfg.Rate > 0 {
			g.pace(ctx, start)
		}
		n, werr := g.port.WriteBatch(g.frames[next : next+k])
		g.sent.Add(uint64(n))
		next = (next + n) % len(g.frames)
		if werr != nil {
			if ctx.Err() != nil && (errors.Is(werr, os.ErrDeadlineExceeded) || errors.Is(werr, net.ErrClosed)) {
				break
			}
			err = fmt.Errorf("pktgen: %w", werr)
			break
		}
	}
	return Result{Sent: g.sent.Load(), Elapsed: time.Since(start), Port: g.port.Stats()}, err
}

// pace sleeps until the frames sent so far are due at the configured rate.
// Sleeping per batch, against the run's start rather than the last batch,
// keeps the average rate right even though sleeps overshoot.
func (g *Generator) pace(ctx context.Context, start time.Time) {
	due := start.Add(time.Duration(float64(g.sent.Load()) / g.cfg.Rate * float64(time.Second)))
	wait := time.Until(due)
	if wait <= 0 {
		return
	}
	if g.timer == nil {
		g.timer = time.NewTimer(wait)
	} else {
		g.timer.Reset(wait)
	}
	select {
	case <-ctx.Done():
		g.timer.Stop()
	case <-g.timer.C:
	}
}

// Close releases the port.
func (g *Generator) Close() error { return g.port.Close() }
