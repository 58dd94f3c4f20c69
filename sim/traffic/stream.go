package traffic

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"lvslab/sim/runner"
	"lvslab/sim/service"
)

// streamGen keeps streams: connections open, each writing a chunk per
// tick. See the package comment for what is recorded.
type streamGen struct {
	*base
	target string
	size   int
}

func newStream(b *base) (*streamGen, error) {
	if _, err := netip.ParseAddrPort(b.t.Target); err != nil {
		return nil, fmt.Errorf("tcp-stream target %q must be addr:port", b.t.Target)
	}
	return &streamGen{base: b, target: b.t.Target, size: b.payloadSize(DefaultStreamChunk)}, nil
}

func (g *streamGen) run(ctx context.Context, stop <-chan struct{}) {
	n := max(g.t.Streams, 1)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { g.stream(ctx, stop, i) })
	}
	wg.Wait()
}

// stream is one stream's life: connect, write a chunk per tick, reconnect
// after a break, verify at the end.
func (g *streamGen) stream(ctx context.Context, stop <-chan struct{}, n int) {
	rng := g.rng(n)
	p := g.newPacer(n)
	defer p.close()
	var sc *streamConn
	defer func() {
		if sc != nil {
			g.end(ctx, sc)
		}
	}()
	for chunks := 0; g.t.Count == 0 || chunks < g.t.Count; {
		if !p.next(ctx, stop) {
			return
		}
		start := time.Now()
		if sc != nil && sc.isDead() {
			sc.abort()
			sc = nil
		}
		if sc != nil && sc.peerGone() {
			// The peer closed or reset while no chunk was waiting: this
			// tick's record reports the break.
			idx := g.rec.begin(g.since(start))
			first := sc.markBroken()
			g.rec.finish(idx, runner.Request{Err: sc.peerReason(), Broken: first, Local: sc.local, Remote: sc.remote, Backend: sc.backend()})
			sc.abort()
			sc = nil
			continue
		}
		idx := -1
		if sc == nil {
			// A connect attempt is part of this tick's record: its latency
			// includes the handshake, its error says why there is no stream.
			idx = g.rec.begin(g.since(start))
			c, err := g.connect(ctx)
			if err != nil {
				g.rec.finish(idx, runner.Request{Latency: time.Since(start), Err: describe("connect", err, g.timeout)})
				continue
			}
			sc = c
		}
		select {
		case sc.slots <- struct{}{}:
		default:
			continue // concurrency chunks unacknowledged: skip this tick
		}
		if idx < 0 {
			idx = g.rec.begin(g.since(start))
		}
		chunks++
		g.write(sc, rng, idx, start)
	}
}

// connect opens a stream and starts its reader and acknowledgement
// tracker.
func (g *streamGen) connect(ctx context.Context) (*streamConn, error) {
	dctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	c, err := g.dial(dctx, "tcp", g.target)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	raw, err := tc.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	sc := &streamConn{g: g, c: tc, raw: raw, hash: sha256.New(),
		local: addrPort(c.LocalAddr()), remote: addrPort(c.RemoteAddr()),
		slots: make(chan struct{}, g.concurrency), pending: make(chan chunk, g.concurrency),
		dead: make(chan struct{}), greeted: make(chan struct{}), readDone: make(chan struct{}), ackerDone: make(chan struct{})}
	// bytes_acked counts from the handshake; what matters is what was
	// acknowledged since.
	if sc.ackBase, err = sc.bytesAcked(); err != nil {
		c.Close()
		return nil, fmt.Errorf("TCP_INFO: %w", err)
	}
	go sc.read()
	go sc.track(ctx)
	return sc, nil
}

// write sends one chunk and hands it to the tracker.
func (g *streamGen) write(sc *streamConn, rng *rand.ChaCha8, idx int, start time.Time) {
	buf := make([]byte, g.size)
	_, _ = rng.Read(buf)
	_ = sc.c.SetWriteDeadline(start.Add(g.timeout))
	n, err := sc.c.Write(buf)
	sc.hash.Write(buf[:n])
	sc.sent += int64(n)
	if err != nil {
		reason := describe("write", err, g.timeout)
		first := sc.markBroken()
		g.rec.finish(idx, runner.Request{Latency: time.Since(start), Err: reason, Broken: first, Local: sc.local, Remote: sc.remote, Backend: sc.backend()})
		<-sc.slots
		return
	}
	sc.pending <- chunk{idx: idx, start: start, end: sc.sent, bytes: n}
}

// end finishes a stream: wait for outstanding chunks, then (verify:)
// half-close and compare the sink's digest with what was sent.
func (g *streamGen) end(ctx context.Context, sc *streamConn) {
	close(sc.pending)
	<-sc.ackerDone
	// A cancelled run (not a stop) says nothing about the stream.
	if !g.t.Verify || sc.isDead() || ctx.Err() != nil {
		sc.closeGracefully()
		return
	}
	start := time.Now()
	idx := g.rec.begin(g.since(start))
	r := runner.Request{Local: sc.local, Remote: sc.remote, Backend: sc.backend()}
	fail := func(reason string) {
		r.Err = reason
		r.Broken = sc.markBroken()
	}
	if sc.peerGone() {
		fail(sc.peerReason())
	} else {
		sc.closingWrite.Store(true)
		if err := sc.c.CloseWrite(); err != nil {
			fail(describe("shutdown", err, g.timeout))
		} else {
			t := time.NewTimer(g.timeout)
			select {
			case <-sc.readDone:
				if msg := sc.checkAnswer(); msg != "" {
					fail(msg)
				}
			case <-t.C:
				fail(fmt.Sprintf("digest: no answer from the sink within %s", g.timeout))
			case <-ctx.Done():
				fail("digest: cancelled")
			}
			t.Stop()
		}
	}
	r.Latency = time.Since(start)
	g.rec.finish(idx, r)
	sc.abort()
}

type chunk struct {
	idx   int
	start time.Time
	end   int64 // stream offset after this chunk
	bytes int
}

// streamConn is one connection of a stream.
type streamConn struct {
	g             *streamGen
	c             *net.TCPConn
	raw           syscall.RawConn
	local, remote netip.AddrPort
	ackBase       uint64

	// Owned by the stream goroutine.
	hash hash.Hash
	sent int64

	slots     chan struct{} // a token per unacknowledged chunk
	pending   chan chunk    // written, waiting for the acknowledgement
	ackerDone chan struct{}

	// The reader: the sink greets (its identity), then says nothing until
	// it has our EOF, so anything else it reads before that means the peer
	// went away.
	greeted      chan struct{} // closed once the greeting is in (or cannot come)
	identity     string        // the greeting's, written before greeted closes
	readDone     chan struct{}
	answer       []byte
	readErr      error
	closingWrite atomic.Bool

	mu     sync.Mutex
	broken bool
	dead   chan struct{}
}

func (sc *streamConn) read() {
	defer close(sc.readDone)
	br := bufio.NewReader(io.LimitReader(sc.c, 4096))
	line, err := br.ReadString('\n')
	if id, ok := service.ParseSinkGreeting(line); ok && err == nil {
		sc.identity, line = id, ""
	}
	close(sc.greeted)
	if err != nil {
		// EOF before a whole line: line is all the peer said.
		sc.answer = []byte(line)
		if !errors.Is(err, io.EOF) {
			sc.readErr = err
		}
		return
	}
	rest, err := io.ReadAll(br)
	sc.answer, sc.readErr = append([]byte(line), rest...), err
}

// backend is the identity the sink greeted with; "" until it has.
func (sc *streamConn) backend() string {
	select {
	case <-sc.greeted:
		return sc.identity
	default:
		return ""
	}
}

// peerGone reports that the reader ended before we half-closed.
func (sc *streamConn) peerGone() bool {
	select {
	case <-sc.readDone:
		return !sc.closingWrite.Load()
	default:
		return false
	}
}

// peerReason says how the peer went away (call after readDone).
func (sc *streamConn) peerReason() string {
	switch {
	case sc.readErr != nil:
		return describe("read", sc.readErr, sc.g.timeout)
	case len(sc.answer) > 0:
		return fmt.Sprintf("read: %d unexpected bytes from the peer before the end of the stream", len(sc.answer))
	}
	return "read: connection closed by peer"
}

// markBroken marks the stream broken; true for the first caller, whose
// record carries Broken (one per broken stream).
func (sc *streamConn) markBroken() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.broken {
		return false
	}
	sc.broken = true
	close(sc.dead)
	return true
}

func (sc *streamConn) isDead() bool {
	select {
	case <-sc.dead:
		return true
	default:
		return false
	}
}

// abort drops the connection with a RST (a broken stream is not worth a
// FIN handshake), and waits for its helpers.
func (sc *streamConn) abort() {
	_ = sc.c.SetLinger(0)
	sc.finish()
}

func (sc *streamConn) closeGracefully() { sc.finish() }

func (sc *streamConn) finish() {
	sc.c.Close()
	select {
	case <-sc.ackerDone:
	default:
		close(sc.pending)
		<-sc.ackerDone
	}
	<-sc.readDone
}

func (sc *streamConn) bytesAcked() (uint64, error) {
	var info *unix.TCPInfo
	var serr error
	if err := sc.raw.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return info.Bytes_acked, nil
}

// track completes chunk records in order as the peer acknowledges them.
// Nothing tells us when an ACK arrives, so it polls TCP_INFO, quickly at
// first: the latency recorded is within a poll interval of the truth.
func (sc *streamConn) track(ctx context.Context) {
	defer close(sc.ackerDone)
	g := sc.g
	ungreeted := false
	for ch := range sc.pending {
		r := runner.Request{Local: sc.local, Remote: sc.remote}
		deadline := ch.start.Add(g.timeout)
		interval := 200 * time.Microsecond
	wait:
		for {
			acked, err := sc.bytesAcked()
			switch {
			case err == nil && int64(acked-sc.ackBase) >= ch.end:
				r.Bytes = int64(ch.bytes)
				break wait
			case sc.isDead():
				r.Err = "stream broken before this chunk was acknowledged"
				break wait
			case err != nil:
				r.Err = describe("TCP_INFO", err, g.timeout)
				r.Broken = sc.markBroken()
				break wait
			case sc.peerGone():
				r.Err = sc.peerReason()
				r.Broken = sc.markBroken()
				break wait
			case !time.Now().Before(deadline):
				r.Err = fmt.Sprintf("stalled: %d bytes unacknowledged after %s", ch.end-int64(acked-sc.ackBase), g.timeout)
				r.Broken = sc.markBroken()
				break wait
			}
			t := time.NewTimer(min(interval, time.Until(deadline)))
			select {
			case <-t.C:
			case <-sc.dead:
			case <-sc.readDone:
			case <-ctx.Done():
				t.Stop()
				r.Err = "cancelled before this chunk was acknowledged"
				break wait
			}
			t.Stop()
			interval = min(2*interval, 10*time.Millisecond)
		}
		r.Latency = time.Since(ch.start)
		if r.Err == "" && !ungreeted && !sc.waitGreeting(ctx, deadline) {
			// Not a tcp-sink, or a silent one: later chunks do not wait.
			ungreeted = true
		}
		r.Backend = sc.backend()
		g.rec.finish(ch.idx, r)
		<-sc.slots
	}
}

// waitGreeting waits until the sink's greeting is in: the peer's kernel
// may acknowledge the first chunk before the sink has accepted and
// greeted, and that chunk's bytes belong to a backend too. False when it
// did not come by deadline.
func (sc *streamConn) waitGreeting(ctx context.Context, deadline time.Time) bool {
	select {
	case <-sc.greeted:
		return true
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-sc.greeted:
		return true
	case <-sc.dead:
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// checkAnswer compares tcp-sink's "bytes=N sha256=HEX" with what was sent;
// "" when they agree.
func (sc *streamConn) checkAnswer() string {
	if sc.readErr != nil {
		return "digest: " + describe("read", sc.readErr, sc.g.timeout)
	}
	line := strings.TrimSpace(string(sc.answer))
	var n int64
	var sum string
	if _, err := fmt.Sscanf(line, "bytes=%d sha256=%s", &n, &sum); err != nil {
		if line == "" {
			return "digest: the peer closed without an answer (not a tcp-sink?)"
		}
		return fmt.Sprintf("digest: unexpected answer %q", truncate(line, 80))
	}
	want := hex.EncodeToString(sc.hash.Sum(nil))
	if n != sc.sent || !strings.EqualFold(sum, want) {
		return fmt.Sprintf("digest mismatch: sink received %d bytes sha256 %.12s…, sent %d bytes sha256 %.12s…", n, sum, sc.sent, want)
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
