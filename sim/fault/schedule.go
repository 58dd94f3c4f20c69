package fault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
)

// The scheduler turns timeline entries into actions at the right time. It
// knows nothing of namespaces: an actor carries the actions out and a
// watcher observes log lines and state, so the timing logic can be tested
// with a fake clock and fake actions.

// clock is the time source of the scheduler.
type clock interface {
	Now() time.Time
	// Timer fires once after d; stop cancels it (false if it had fired).
	Timer(d time.Duration) (c <-chan time.Time, stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Timer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// undoFunc reverts an applied fault.
type undoFunc func(ctx context.Context) error

// actor carries out one timeline entry. undo is nil for faults that cannot
// be reverted (kill, arp.flush, exec, ...). detail says what was done, for
// the event log.
type actor interface {
	apply(ctx context.Context, e *spec.Event) (undo undoFunc, detail string, err error)
}

// watcher blocks until a log or state trigger holds (nil) or ctx ends.
type watcher interface {
	wait(ctx context.Context, t *spec.Trigger) error
}

// rearmer is a watcher whose log triggers can start reading from now: a
// trigger with since: counts only lines written after its event.
type rearmer interface {
	rearm(t *spec.Trigger) error
}

// entryState is what became of one timeline entry.
type entryState int

const (
	statePending  entryState = iota // waiting for its trigger or its time
	stateFired                      // applied
	stateTimedOut                   // the trigger did not happen within timeout:
	stateFailed                     // the action (or its trigger) failed
)

// active is an applied fault not yet undone.
type active struct {
	e      *spec.Event
	undo   undoFunc
	detail string
}

type scheduler struct {
	clk   clock
	t0    time.Time
	act   actor
	watch watcher
	log   *slog.Logger
	// undoTimeout bounds one undo run by for: (the run's context may be
	// ending while it runs, and a half-reverted lab is worse than a late
	// one).
	undoTimeout time.Duration

	mu      sync.Mutex
	events  []runner.Event
	fired   map[string]time.Duration // event name (or name.end) -> when
	signal  map[string]chan struct{} // closed when that name fires
	state   map[string]entryState
	why     map[string]string // pending entries: what they wait for
	actives []*active         // in apply order
	errs    []error

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

func newScheduler(clk clock, t0 time.Time, act actor, w watcher, log *slog.Logger) *scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &scheduler{
		clk: clk, t0: t0, act: act, watch: w, log: log, undoTimeout: 30 * time.Second,
		fired: map[string]time.Duration{}, signal: map[string]chan struct{}{},
		state: map[string]entryState{}, why: map[string]string{},
	}
}

// since is the time since T0 on the scheduler's clock.
func (s *scheduler) since() time.Duration { return s.clk.Now().Sub(s.t0) }

// start runs every entry in its own goroutine until stop.
func (s *scheduler) start(ctx context.Context, entries []*spec.Event) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.mu.Lock()
	for _, e := range entries {
		s.state[e.Name] = statePending
		s.why[e.Name] = describeTrigger(e)
	}
	s.mu.Unlock()
	for _, e := range entries {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(ctx, e)
		}()
	}
}

// stop ends the waiting, then reverts every fault still active, newest
// first, and notes the entries that never fired.
func (s *scheduler) stop(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.mu.Lock()
	actives := s.actives
	s.actives = nil
	s.mu.Unlock()
	var errs []error
	for i := len(actives) - 1; i >= 0; i-- {
		a := actives[i]
		at := s.since()
		if err := a.undo(ctx); err != nil {
			err = fmt.Errorf("revert %s (%s): %w", a.e.Name, a.e.Fault, err)
			errs = append(errs, err)
			s.record(runner.Event{Name: a.e.Name + ".revert", At: at, Kind: KindError, Detail: err.Error()})
			continue
		}
		s.record(runner.Event{Name: a.e.Name + ".revert", At: at, Kind: KindRevert, Detail: "reverted at the end of the run: " + a.detail})
	}
	s.mu.Lock()
	var pending []string
	for name, st := range s.state {
		if st == statePending {
			pending = append(pending, name)
		}
	}
	s.mu.Unlock()
	at := s.since()
	for _, name := range pending {
		s.record(runner.Event{Name: name + ".skipped", At: at, Kind: KindSkipped, Detail: "never fired: " + s.whyPending(name)})
	}
	return errors.Join(errs...)
}

func (s *scheduler) whyPending(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.why[name]
}

func (s *scheduler) setWhy(name, why string) {
	s.mu.Lock()
	s.why[name] = why
	s.mu.Unlock()
}

func (s *scheduler) record(ev runner.Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	s.log.Info("timeline", "event", ev.Name, "at", ev.At.Round(time.Millisecond), "kind", ev.Kind, "detail", ev.Detail)
}

func (s *scheduler) fail(name string, st entryState, err error) {
	s.mu.Lock()
	s.state[name] = st
	if st == stateFailed {
		s.errs = append(s.errs, err)
	}
	s.mu.Unlock()
}

// fire notes that name (an entry or name.end) happened at, waking the
// entries that wait for it.
func (s *scheduler) fire(name string, at time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.fired[name]; ok {
		return
	}
	s.fired[name] = at
	if ch, ok := s.signal[name]; ok {
		close(ch)
	} else {
		ch := make(chan struct{})
		close(ch)
		s.signal[name] = ch
	}
}

// await returns a channel closed once name has fired.
func (s *scheduler) await(name string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.signal[name]
	if !ok {
		ch = make(chan struct{})
		s.signal[name] = ch
	}
	return ch
}

func (s *scheduler) firedAt(name string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fired[name]
}

// sleepUntil waits until at (since T0); false if ctx ended first.
func (s *scheduler) sleepUntil(ctx context.Context, at time.Duration) bool {
	d := at - s.since()
	if d <= 0 {
		return ctx.Err() == nil
	}
	c, stop := s.clk.Timer(d)
	defer stop()
	select {
	case <-c:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *scheduler) run(ctx context.Context, e *spec.Event) {
	at, ok := s.trigger(ctx, e)
	if !ok {
		return
	}
	s.setWhy(e.Name, fmt.Sprintf("due at %s, after the end of the run", at.Round(time.Millisecond)))
	if !s.sleepUntil(ctx, at) {
		return
	}
	start := s.since()
	undo, detail, err := s.act.apply(ctx, e)
	if err != nil {
		err = fmt.Errorf("timeline %s (%s): %w", e.Name, e.Fault, err)
		s.fail(e.Name, stateFailed, err)
		s.record(runner.Event{Name: e.Name + ".failed", At: start, Kind: KindError, Detail: err.Error()})
		return
	}
	var a *active
	s.mu.Lock()
	s.state[e.Name] = stateFired
	if undo != nil {
		a = &active{e: e, undo: undo, detail: detail}
		s.actives = append(s.actives, a)
	}
	s.mu.Unlock()
	s.record(runner.Event{Name: e.Name, At: start, Kind: string(e.Fault), Detail: detail})
	s.fire(e.Name, start)
	if a == nil || e.For == 0 {
		return
	}
	if !s.sleepUntil(ctx, start+e.For.D()) {
		return // stop reverts it
	}
	if !s.take(a) {
		return
	}
	end := s.since()
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.undoTimeout)
	defer cancel()
	if err := undo(uctx); err != nil {
		err = fmt.Errorf("timeline %s: undo %s: %w", e.Name, e.Fault, err)
		s.mu.Lock()
		s.errs = append(s.errs, err)
		s.mu.Unlock()
		s.record(runner.Event{Name: e.Name + ".end.failed", At: end, Kind: KindError, Detail: err.Error()})
		return
	}
	s.record(runner.Event{Name: e.Name + ".end", At: end, Kind: string(e.Fault), Detail: "undone: " + detail})
	s.fire(e.Name+".end", end)
}

// take removes a from the active faults; false if stop took it first.
func (s *scheduler) take(a *active) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.actives {
		if x == a {
			s.actives = append(s.actives[:i], s.actives[i+1:]...)
			return true
		}
	}
	return false
}

// trigger waits for an entry's time or trigger and returns when (since
// T0) it is due: at:, or the moment the trigger was seen plus after:.
func (s *scheduler) trigger(ctx context.Context, e *spec.Event) (time.Duration, bool) {
	if e.At != nil {
		return e.At.D(), true
	}
	w := e.When
	if w == nil {
		err := fmt.Errorf("timeline %s: neither at nor when", e.Name)
		s.fail(e.Name, stateFailed, err)
		s.record(runner.Event{Name: e.Name + ".failed", At: s.since(), Kind: KindError, Detail: err.Error()})
		return 0, false
	}
	// timeout: counts from T0, when every trigger starts being watched.
	var deadline <-chan time.Time
	if w.Timeout > 0 {
		c, stop := s.clk.Timer(w.Timeout.D() - s.since())
		defer stop()
		deadline = c
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		at  time.Duration
		err error
	}
	res := make(chan result, 1)
	go func() {
		at, err := s.source(wctx, w)
		res <- result{at, err}
	}()
	select {
	case r := <-res:
		if r.err != nil {
			if ctx.Err() != nil {
				return 0, false
			}
			err := fmt.Errorf("timeline %s: watching %s: %w", e.Name, describeTrigger(e), r.err)
			s.fail(e.Name, stateFailed, err)
			s.record(runner.Event{Name: e.Name + ".failed", At: s.since(), Kind: KindError, Detail: err.Error()})
			return 0, false
		}
		return r.at + w.After.D(), true
	case <-deadline:
		cancel()
		<-res
		s.fail(e.Name, stateTimedOut, nil)
		s.record(runner.Event{Name: e.Name + ".timeout", At: s.since(), Kind: KindTimeout,
			Detail: fmt.Sprintf("%s did not happen within %s", describeTrigger(e), w.Timeout)})
		return 0, false
	case <-ctx.Done():
		cancel()
		<-res
		return 0, false
	}
}

// source waits for the trigger itself and says when it happened.
func (s *scheduler) source(ctx context.Context, w *spec.Trigger) (time.Duration, error) {
	if w.Event != "" {
		select {
		case <-s.await(w.Event):
			return s.firedAt(w.Event), nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if s.watch == nil {
		return 0, errors.New("no watcher for log and state triggers")
	}
	if w.Since != "" {
		select {
		case <-s.await(w.Since):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if r, ok := s.watch.(rearmer); ok {
			if err := r.rearm(w); err != nil {
				return 0, err
			}
		}
	}
	if err := s.watch.wait(ctx, w); err != nil {
		return 0, err
	}
	return s.since(), nil
}

func (s *scheduler) snapshot() []runner.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]runner.Event(nil), s.events...)
}

func (s *scheduler) errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

// describeTrigger says what an entry waits for, for messages.
func describeTrigger(e *spec.Event) string {
	if e.At != nil {
		return "at " + e.At.String()
	}
	w := e.When
	var what string
	switch {
	case w == nil:
		return "nothing"
	case w.Event != "":
		what = "event " + w.Event
	case w.Log != nil:
		re := ""
		if w.Log.Match.Regexp != nil {
			re = w.Log.Match.String()
		}
		what = fmt.Sprintf("a line of %s matching %q", w.Log.Process, re)
	case w.State != nil:
		what = "state " + describeState(w.State)
	}
	if w.Since != "" {
		what += " since " + w.Since
	}
	if w.After > 0 {
		what += " (+" + w.After.String() + ")"
	}
	return what
}
