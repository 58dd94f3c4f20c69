package traffic

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// base is what every generator shares: the entry with defaults applied,
// the node it runs in, the clock, the records.
type base struct {
	t           spec.Traffic
	node        *topo.Node
	t0          time.Time
	rec         *recorder
	log         *slog.Logger
	seed        int64
	rate        float64 // per second
	timeout     time.Duration
	concurrency int
	dialer      net.Dialer
}

func newBase(t spec.Traffic, seed int64, node *topo.Node, t0 time.Time, rec *recorder, log *slog.Logger) *base {
	b := &base{t: t, node: node, t0: t0, rec: rec, log: log, seed: seed,
		rate: t.Rate.PerSecond(), timeout: t.Timeout.D(), concurrency: t.Concurrency}
	if b.rate <= 0 {
		b.rate = DefaultRate
	}
	if b.timeout <= 0 {
		b.timeout = DefaultTimeout
	}
	if b.concurrency <= 0 {
		b.concurrency = 1
	}
	if t.Source.IsValid() {
		b.dialer.LocalAddr = &net.TCPAddr{IP: t.Source.AsSlice()}
	}
	return b
}

// since is the time since T0.
func (b *base) since(t time.Time) time.Duration { return t.Sub(b.t0) }

// window is when the generator sends: from the start offset to the stop
// offset (zero end: until stopped).
func (b *base) window() (start, end time.Time) {
	start = b.t0.Add(b.t.Start.D())
	if b.t.Stop > 0 {
		end = b.t0.Add(b.t.Stop.D())
	}
	return start, end
}

// newPacer ticks rate times a second from the start offset, spaced as
// jitter: says; stream n of a tcp-stream gets its own random sequence.
func (b *base) newPacer(n int) *pacer {
	start, end := b.window()
	iv := time.Duration(float64(time.Second) / b.rate)
	if iv <= 0 {
		iv = time.Microsecond
	}
	p := &pacer{base: start, end: end, interval: iv, jitter: b.t.Jitter}
	if p.jitter != spec.JitterNone && p.jitter != "" {
		p.rnd = rand.New(rand.NewChaCha8(sha256.Sum256(fmt.Appendf(nil, "lvslab pacing %d/%s/%d", b.seed, b.t.Name, n))))
	}
	return p
}

// requests runs one at every tick while fewer than concurrency are in
// flight, until count requests were started, the stop offset, stop, or
// ctx; it returns when the last one is recorded.
func (b *base) requests(ctx context.Context, stop <-chan struct{}, one func(ctx context.Context, seq int) runner.Request) {
	slots := make(chan struct{}, b.concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	p := b.newPacer(0)
	defer p.close()
	for n := 0; b.t.Count == 0 || n < b.t.Count; {
		if !p.next(ctx, stop) {
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			continue // all in flight: this tick is skipped, not queued
		}
		n++
		idx := b.rec.begin(b.since(time.Now()))
		wg.Go(func() {
			defer func() { <-slots }()
			b.rec.finish(idx, one(ctx, idx+1))
		})
	}
}

// pacer yields ticks on a schedule fixed in advance by the seed: the
// offsets from T0 are the same on every run. Ticks missed while the caller
// was busy are dropped: pacing never turns into a burst.
//
//   - none: tick k at base + k·interval;
//   - uniform: tick k at base + (k+u)·interval, u uniform in [0,1);
//   - poisson: gaps drawn from an exponential distribution with mean
//     interval, from the start offset.
type pacer struct {
	base     time.Time
	end      time.Time // zero: no end
	interval time.Duration
	jitter   spec.Jitter
	rnd      *rand.Rand // nil without jitter
	k        int64
	last     time.Time // poisson: the previous tick
	timer    *time.Timer
}

// due is when the next tick is, given the time now.
func (p *pacer) due(now time.Time) time.Time {
	if p.jitter == spec.JitterPoisson {
		if p.last.IsZero() {
			// The schedule starts at the start offset, however late
			// the generator got going: the same offsets every run.
			p.last = p.base
		}
		for {
			p.last = p.last.Add(time.Duration(p.rnd.ExpFloat64() * float64(p.interval)))
			// Ticks more than a mean gap in the past were missed while
			// the caller was busy: dropped (drawn all the same, so the
			// later ticks keep their offsets).
			if !p.last.Before(now.Add(-p.interval)) {
				return p.last
			}
		}
	}
	if behind := int64(now.Sub(p.base) / p.interval); behind > p.k {
		p.k = behind
	}
	off := time.Duration(p.k) * p.interval
	if p.jitter == spec.JitterUniform {
		off += time.Duration(p.rnd.Float64() * float64(p.interval))
	}
	p.k++
	return p.base.Add(off)
}

// next waits for the next tick; false when the schedule is over, stop is
// closed or ctx ends.
func (p *pacer) next(ctx context.Context, stop <-chan struct{}) bool {
	now := time.Now()
	due := p.due(now)
	if !p.end.IsZero() && !due.Before(p.end) {
		return false
	}
	select {
	case <-stop:
		return false
	case <-ctx.Done():
		return false
	default:
	}
	wait := due.Sub(now)
	if wait <= 0 {
		return true
	}
	if p.timer == nil {
		p.timer = time.NewTimer(wait)
	} else {
		p.timer.Reset(wait)
	}
	select {
	case <-p.timer.C:
		return true
	case <-stop:
	case <-ctx.Done():
	}
	p.timer.Stop()
	return false
}

func (p *pacer) close() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

// dial connects from inside the node's namespace: the socket is created
// on a thread that is in it, and keeps the namespace afterwards.
func (b *base) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := b.node.Do(func() error {
		var err error
		c, err = b.dialer.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// rng is the payload source of stream n of this traffic: the same bytes
// on every run with the same seed.
func (b *base) rng(n int) *rand.ChaCha8 {
	return rand.NewChaCha8(sha256.Sum256(fmt.Appendf(nil, "lvslab traffic %d/%s/%d", b.seed, b.t.Name, n)))
}

// payloadSize is payload: or the kind's default.
func (b *base) payloadSize(def int) int {
	if n := b.t.Payload.Bytes(); n > 0 {
		return int(n)
	}
	return def
}

// lockedRand shares one payload stream between concurrent requests.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func (l *lockedRand) fill(p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.r.Read(p)
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	case *net.IPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return netip.AddrPortFrom(ip.Unmap(), 0)
	}
	return netip.AddrPort{}
}

// describe turns an error into the short text a record carries, the same
// for the same cause so the judge can count them: "connect: connection
// refused", "read: connection reset by peer", "connect: timeout after 1s".
func describe(phase string, err error, timeout time.Duration) string {
	if err == nil {
		return ""
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("%s: timeout after %s", phase, timeout)
	case errors.Is(err, context.Canceled):
		return phase + ": cancelled"
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Syscall + ": " + se.Err.Error()
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return phase + ": " + errno.Error()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return phase + ": connection closed by peer"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Op + ": " + oe.Err.Error()
	}
	return phase + ": " + err.Error()
}
