// Package traffic runs a scenario's traffic generators inside the lab's
// nodes, records every request, and judges metric: and shares:
// expectations from those records.
//
// The Stage (New) carries out every traffic: entry from its from: node:
// sockets are created on a thread inside the node's namespace (topo.Node.Do)
// and used from ordinary goroutines afterwards. Requests are paced at rate:
// (default 10/s) on a schedule fixed by seed: and jitter: (none: exact
// 1/rate steps from start:, on the timeline's clock; uniform: one request
// at a random point of each 1/rate slot; poisson: exponential gaps with
// mean 1/rate; default poisson for apiVersion lvslab/v1alpha2, none for
// v1alpha1), the same offsets on every run; a tick that finds concurrency:
// requests still in flight is skipped, never made up later, so a stall
// shows as a gap rather than a burst. count: stops a generator early;
// start:/stop: offset it from T0. Payloads come from a ChaCha8 stream
// seeded with the scenario's seed:, the traffic's name and the stream
// number, so reruns send the same bytes.
//
// One runner.Request is recorded per attempt; At is when it started
// (since T0), Seq its start order. Per kind:
//
//   - http: one HTTP/1.1 GET per request, a new connection each time
//     unless new_connection: false (payload: is not used). Backend is the
//     http-echo identity (X-Lvslab-Backend, else the body's first line); a
//     non-2xx status is an error that still names its backend. Bytes is
//     the body length.
//   - tcp-connect: connect, then close. Refused and timed-out connects are
//     errors. payload: is not used.
//   - udp: one datagram of payload: bytes (default 64) from a fresh socket,
//     so a director schedules each one; the udp-echo reply names the
//     backend. With verify: the echoed bytes must equal those sent.
//   - ftp: curl downloads /SIZE.bin (payload:, default 64KiB) from a
//     vsftpd, one control connection per request, its data connection as
//     ftp_mode: says; Backend is the identity in vsftpd's banner, Bytes what
//     arrived; with verify: every byte is compared with what vsftpd
//     serves (ftp.go).
//   - dns: one TXT query for whoami.lvslab per request from a fresh
//     socket; Backend is dnsmasq's answer (dns.go).
//   - icmp: echo requests of payload: bytes (default 56) over one raw
//     socket per traffic; IPv4 only. Unreachable/time-exceeded answers are
//     errors naming the ICMP code.
//   - tcp-stream: streams: long-lived connections, each sending a chunk of
//     payload: bytes (default 16KiB) per tick; rate: and count: are per
//     stream, concurrency: bounds unacknowledged chunks per stream. A
//     chunk's record completes when the peer's TCP has acknowledged it
//     (TCP_INFO bytes_acked); a chunk unacknowledged after timeout:, a
//     write error, or the peer closing or resetting breaks the stream: that
//     record has Broken set and the next tick reconnects (failed connects
//     are records with Err), so the outage is measurable. When the stream
//     ends (stop, count) with verify:, it half-closes and compares the
//     tcp-sink's "bytes=N sha256=HEX" answer with what it sent: one more
//     record with Bytes 0, Broken if the digest differs or never comes.
//     So a stream's requests are its chunks, failed connects and digest
//     checks; bytes is what the peer acknowledged. A tcp-sink greets each
//     connection with its identity: every record of that connection (its
//     chunks, its break, its digest check) carries it as Backend, so bytes
//     per tick per backend are in the records ("" until the greeting has
//     come, or when the peer is not a tcp-sink).
//
// Errors are short and stable so the judge can count them by kind:
// "connect: connection refused", "connect: timeout after 1s", "read:
// connection reset by peer", "HTTP 503 Service Unavailable", "stalled:
// 4096 bytes unacknowledged after 300ms".
//
// Judge decides metric: and shares: expectations (see judge.go), Series
// turns records into the rates the timeline picture draws.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// Defaults where the spec leaves a field zero (a resolved spec already has
// concurrency, timeout and streams filled in).
const (
	DefaultRate        = 10.0 // per second
	DefaultTimeout     = time.Second
	DefaultStreamChunk = 16 << 10
	DefaultUDPPayload  = 64
	DefaultICMPPayload = 56
)

// StageName is the stage's name in runner.Run.Stage.
const StageName = "traffic"

// Options configure the stage.
type Options struct {
	Logger *slog.Logger
}

// Stage runs the traffic generators of one scenario. It implements
// runner.Stage and runner.RequestSource.
type Stage struct {
	spec *spec.Spec
	log  *slog.Logger

	mu       sync.Mutex
	recs     map[string]*recorder
	names    []string
	cancel   context.CancelFunc
	stopping chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	started  bool
}

var (
	_ runner.Stage         = (*Stage)(nil)
	_ runner.RequestSource = (*Stage)(nil)
)

// New returns a stage for the traffic of s (a resolved spec).
func New(s *spec.Spec, opts Options) *Stage {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Stage{spec: s, log: log.With("stage", StageName), recs: map[string]*recorder{}}
}

// Name is "traffic".
func (st *Stage) Name() string { return StageName }

// Claims lists "traffic NAME" for every traffic entry: every kind is
// implemented.
func (st *Stage) Claims(s *spec.Spec) []string {
	var out []string
	for _, t := range s.Traffic {
		switch t.Kind {
		case spec.TrafficHTTP, spec.TrafficTCPStream, spec.TrafficTCPConnect, spec.TrafficUDP, spec.TrafficICMP, spec.TrafficFTP, spec.TrafficDNS:
			out = append(out, "traffic "+t.Name)
		}
	}
	return out
}

// generator is one traffic entry at work.
type generator interface {
	// run sends until stop is closed, the traffic's stop offset or count
	// is reached, or ctx ends; it returns when its last request is
	// recorded.
	run(ctx context.Context, stop <-chan struct{})
}

// Start prepares every generator (so a bad entry starts nothing) and sets
// them going; each waits for its start offset after t0.
func (st *Stage) Start(ctx context.Context, lab *topo.Lab, t0 time.Time) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.started {
		return errors.New("traffic stage started twice")
	}
	gens := make([]generator, 0, len(st.spec.Traffic))
	var cleanup []func()
	for i := range st.spec.Traffic {
		t := st.spec.Traffic[i]
		node := lab.Node(t.From)
		if node == nil {
			closeAll(cleanup)
			return fmt.Errorf("traffic %s: node %s is not in the lab", t.Name, t.From)
		}
		rec := &recorder{}
		b := newBase(t, st.spec.Seed, node, t0, rec, st.log.With("traffic", t.Name))
		g, closer, err := newGenerator(b)
		if err != nil {
			closeAll(cleanup)
			return fmt.Errorf("traffic %s: %w", t.Name, err)
		}
		if closer != nil {
			cleanup = append(cleanup, closer)
		}
		gens = append(gens, g)
		st.recs[t.Name] = rec
		st.names = append(st.names, t.Name)
	}
	gctx, cancel := context.WithCancel(ctx)
	st.cancel = cancel
	st.stopping = make(chan struct{})
	st.started = true
	for i, g := range gens {
		name := st.names[i]
		st.wg.Go(func() {
			g.run(gctx, st.stopping)
			rs := st.recs[name].snapshot()
			errs := 0
			for _, r := range rs {
				if r.Err != "" {
					errs++
				}
			}
			st.log.Info("traffic done", "traffic", name, "requests", len(rs), "errors", errs)
		})
	}
	return nil
}

func closeAll(fns []func()) {
	for _, f := range fns {
		f()
	}
}

func newGenerator(b *base) (generator, func(), error) {
	switch b.t.Kind {
	case spec.TrafficHTTP:
		g, err := newHTTP(b)
		return g, nil, err
	case spec.TrafficTCPConnect:
		g, err := newConnect(b)
		return g, nil, err
	case spec.TrafficUDP:
		g, err := newUDP(b)
		return g, nil, err
	case spec.TrafficTCPStream:
		g, err := newStream(b)
		return g, nil, err
	case spec.TrafficFTP:
		g, err := newFTP(b)
		return g, nil, err
	case spec.TrafficDNS:
		g, err := newDNS(b)
		return g, nil, err
	case spec.TrafficICMP:
		g, err := newICMP(b)
		if err != nil {
			return nil, nil, err
		}
		return g, g.close, nil
	}
	return nil, nil, fmt.Errorf("unknown traffic kind %q", b.t.Kind)
}

// Stop stops starting requests, lets those in flight finish (each is
// bounded by its timeout; streams verify their digest), and returns when
// every generator is done or ctx ends, in which case the rest is cancelled.
func (st *Stage) Stop(ctx context.Context) error {
	st.mu.Lock()
	started := st.started
	st.mu.Unlock()
	if !started {
		return nil
	}
	st.stopOnce.Do(func() { close(st.stopping) })
	done := make(chan struct{})
	go func() {
		st.wg.Wait()
		close(done)
	}()
	defer st.cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	// Out of patience: cancel what is in flight; every operation honours
	// the context, so this is quick.
	st.cancel()
	select {
	case <-done:
		return fmt.Errorf("traffic generators stopped by cancellation: %w", ctx.Err())
	case <-time.After(5 * time.Second):
		return errors.New("traffic generators did not stop within 5s of cancellation")
	}
}

// Traffic lists the traffic names this stage records, in spec order.
func (st *Stage) Traffic() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.started {
		return nil
	}
	return append([]string(nil), st.names...)
}

// Requests returns the finished records of one traffic in Seq order
// (requests still in flight are left out).
func (st *Stage) Requests(traffic string) []runner.Request {
	st.mu.Lock()
	rec := st.recs[traffic]
	st.mu.Unlock()
	if rec == nil {
		return nil
	}
	return rec.snapshot()
}

// recorder holds one traffic's records. A record is reserved when its
// request starts (fixing Seq and At) and filled in when it ends.
type recorder struct {
	mu   sync.Mutex
	recs []runner.Request
	done []bool
}

// begin reserves the next record, started at at (since T0).
func (r *recorder) begin(at time.Duration) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, runner.Request{Seq: len(r.recs) + 1, At: at})
	r.done = append(r.done, false)
	return len(r.recs) - 1
}

// finish fills in record i; Seq and At stay as begin set them.
func (r *recorder) finish(i int, q runner.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q.Seq, q.At = r.recs[i].Seq, r.recs[i].At
	r.recs[i] = q
	r.done[i] = true
}

func (r *recorder) snapshot() []runner.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]runner.Request, 0, len(r.recs))
	for i, q := range r.recs {
		if r.done[i] {
			out = append(out, q)
		}
	}
	return out
}
