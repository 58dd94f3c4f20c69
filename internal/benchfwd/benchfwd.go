// Package benchfwd is the reference AF_PACKET forwarder lvsd's DR mode is
// measured against: it reads frames from one interface's receive ring,
// rewrites the destination MAC to a configured next hop and the source MAC
// to its own egress MAC, and sends them out of another interface. It looks
// at nothing beyond the Ethernet header, so whatever lvsd does on top of
// that shows in the ratio ("lvsd DR at least 0.8 of the reference
// forwarder").
//
// Frames it cannot send whole (truncated, or longer than the MTU: GSO/GRO
// aggregates) are dropped and counted, not sent. Checksums are not its
// business: feed it frames with complete checksums (a generator's, or
// senders with tx checksumming off), as CHECKSUM_PARTIAL frames forwarded
// verbatim are dropped by the receiver.
package benchfwd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"lvslab/capture"
)

// Config describes one forwarder.
type Config struct {
	// In and Out name the ingress and egress interfaces (in the network
	// namespace of the thread calling Run).
	In, Out string
	// NextHop is the destination MAC written into every frame.
	NextHop [6]byte
	// Workers is the number of forwarding goroutines, each with its own
	// receive ring in one hash fanout group on In and its own transmit
	// socket on Out (default 1).
	Workers int
	// Batch is the number of frames per read and write (default 64).
	Batch int
	// Port is the template for both ports' ring and transmit settings;
	// Interface, Ifindex, NoRX, NoTX and Fanout are set by Run.
	Port capture.Config
}

// Result is what a run did.
type Result struct {
	Forwarded uint64 // frames written to Out
	Dropped   uint64 // frames not forwarded: runt, truncated or oversized
	Elapsed   time.Duration
	In, Out   capture.Stats // port counters, summed over workers
}

// PPS is the forwarding rate over the run.
func (r Result) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Forwarded) / r.Elapsed.Seconds()
}

// Run forwards until ctx is done or a port fails, then returns the
// counters. Ports are opened in the calling thread's network namespace.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	inCfg := cfg.Port
	inCfg.Interface, inCfg.Ifindex, inCfg.NoRX, inCfg.NoTX = cfg.In, 0, false, true
	var ins []*capture.AFPacket
	var err error
	if cfg.Workers == 1 {
		inCfg.Fanout = nil
		var p *capture.AFPacket
		if p, err = capture.Open(inCfg); err == nil {
			ins = []*capture.AFPacket{p}
		}
	} else {
		inCfg.Fanout = &capture.Fanout{Mode: capture.FanoutHash}
		ins, err = capture.OpenFanout(inCfg, cfg.Workers)
	}
	if err != nil {
		return Result{}, fmt.Errorf("benchfwd: ingress: %w", err)
	}
	outs := make([]*capture.AFPacket, 0, cfg.Workers)
	closeAll := func() {
		for _, p := range ins {
			p.Close()
		}
		for _, p := range outs {
			p.Close()
		}
	}
	outCfg := cfg.Port
	outCfg.Interface, outCfg.Ifindex, outCfg.NoRX, outCfg.NoTX, outCfg.Fanout = cfg.Out, 0, true, false, nil
	for range cfg.Workers {
		p, err := capture.Open(outCfg)
		if err != nil {
			closeAll()
			return Result{}, fmt.Errorf("benchfwd: egress: %w", err)
		}
		outs = append(outs, p)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type workerResult struct {
		fwd, drop uint64
		err       error
	}
	results := make([]workerResult, cfg.Workers)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range cfg.Workers {
		wg.Go(func() {
			r := &results[i]
			r.fwd, r.drop, r.err = Forward(ins[i], outs[i], cfg.NextHop, outs[i].Link().MAC, cfg.Batch)
			if r.err != nil {
				cancel()
			}
		})
	}
	<-ctx.Done()
	// Collect the kernel's receive counters while the sockets are open,
	// then close everything: that wakes workers waiting to read or write.
	for _, p := range ins {
		p.Stats()
	}
	closeAll()
	wg.Wait()
	res := Result{Elapsed: time.Since(start)}
	var errs []error
	for i, r := range results {
		res.Forwarded += r.fwd
		res.Dropped += r.drop
		if r.err != nil && !errors.Is(r.err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("worker %d: %w", i, r.err))
		}
	}
	for _, p := range ins {
		res.In = res.In.Add(p.Stats())
	}
	for _, p := range outs {
		res.Out = res.Out.Add(p.Stats())
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("benchfwd: %w", errors.Join(errs...))
	}
	return res, nil
}

// Forward moves frames from in to out, rewriting their MACs, until a port
// fails (a closed in ends it with an error wrapping net.ErrClosed). It
// reads zero-copy when in can lend frames.
func Forward(in, out capture.Port, nextHop, self [6]byte, batch int) (forwarded, dropped uint64, err error) {
	frames := make([]capture.Frame, batch)
	zc, lend := in.(capture.ZeroCopyReader)
	if !lend {
		for i := range frames {
			frames[i].Buf = make([]byte, 65536)
		}
	}
	for {
		var n int
		if lend {
			n, err = zc.ReadBatchZeroCopy(frames)
		} else {
			n, err = in.ReadBatch(frames)
		}
		if err != nil {
			return forwarded, dropped, err
		}
		keep := 0
		for i := range n {
			f := &frames[i]
			if f.N < 14 || f.Truncated() || f.Oversized {
				dropped++
				continue
			}
			RewriteMACs(f.Buf[:f.N], nextHop, self)
			if keep != i {
				// Swap, not copy: in copy mode each Frame owns its buffer.
				frames[keep], frames[i] = frames[i], frames[keep]
			}
			keep++
		}
		if keep == 0 {
			continue
		}
		for pending := frames[:keep]; len(pending) > 0; {
			w, err := out.WriteBatch(pending)
			forwarded += uint64(w)
			if err == nil {
				break
			}
			if !errors.Is(err, capture.ErrFrameTooBig) {
				return forwarded, dropped, fmt.Errorf("write: %w", err)
			}
			// One frame the egress cannot carry: drop it, send the rest.
			dropped++
			pending = pending[w+1:]
		}
	}
}

// RewriteMACs is the whole of the forwarder's work on a frame: destination
// MAC to dst, source MAC to src.
func RewriteMACs(frame []byte, dst, src [6]byte) {
	copy(frame[0:6], dst[:])
	copy(frame[6:12], src[:])
}
