package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// StateWatch decides `state:` expectations that have a window, which the
// end-of-run state judge cannot: it samples each one live while the run
// goes on. The rules:
//
//   - during: [from, to] — the state must hold at every sample in the window;
//   - after: EVENT, within: D — it must become true within D of the event
//     (failover checks: "the router's entry for the VIP points at the
//     backup within 3 s");
//   - after: EVENT alone — it must become true at some point after it.
//
// It is a Stage (it samples) and a Judge (it reports what it saw).
type StateWatch struct {
	spec   *spec.Spec
	events EventSource
	every  time.Duration

	mu      sync.Mutex
	results map[string]*watchResult
	cancel  context.CancelFunc
	done    chan struct{}
}

type watchResult struct {
	samples, held int
	firstHeld     time.Duration // since T0; -1 until it held
	lastFail      string        // the detail of the last sample that did not hold
	lastHeld      string
	eventAt       time.Duration
	eventSeen     bool
}

// NewStateWatch watches the windowed state expectations of s; events gives
// the times of timeline events (the fault stage), or nil.
func NewStateWatch(s *spec.Spec, events EventSource) *StateWatch {
	return &StateWatch{spec: s, events: events, every: 100 * time.Millisecond, results: map[string]*watchResult{}}
}

func windowed(e *spec.Expectation) bool {
	return e.State != nil && (len(e.During) > 0 || e.After != "")
}

// Name implements Stage.
func (w *StateWatch) Name() string { return "state-watch" }

// Claims implements Stage: expectations are not claimed, they are judged.
func (w *StateWatch) Claims(*spec.Spec) []string { return nil }

// Start implements Stage.
func (w *StateWatch) Start(ctx context.Context, lab *topo.Lab, t0 time.Time) error {
	var watched []*spec.Expectation
	for i := range w.spec.Expect {
		if e := &w.spec.Expect[i]; windowed(e) {
			watched = append(watched, e)
			w.results[e.Name] = &watchResult{firstHeld: -1}
		}
	}
	if len(watched) == 0 {
		return nil
	}
	ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		t := time.NewTicker(w.every)
		defer t.Stop()
		for {
			now := time.Since(t0)
			for _, e := range watched {
				w.sample(ctx, lab, e, now)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// window returns [from, to) for e at this moment, and false while it is not
// known yet (its event has not happened).
func (w *StateWatch) window(e *spec.Expectation, r *watchResult) (time.Duration, time.Duration, bool) {
	if len(e.During) == 2 {
		return e.During[0].D(), e.During[1].D(), true
	}
	if !r.eventSeen {
		if w.events == nil {
			return 0, 0, false
		}
		for _, ev := range w.events.Events() {
			if ev.Name == e.After {
				r.eventAt, r.eventSeen = ev.At, true
				break
			}
		}
		if !r.eventSeen {
			return 0, 0, false
		}
	}
	to := time.Duration(1 << 62)
	if e.Within.D() > 0 {
		to = r.eventAt + e.Within.D()
	}
	return r.eventAt, to, true
}

func (w *StateWatch) sample(ctx context.Context, lab *topo.Lab, e *spec.Expectation, now time.Duration) {
	w.mu.Lock()
	r := w.results[e.Name]
	from, to, ok := w.window(e, r)
	w.mu.Unlock()
	if !ok || now < from || now >= to {
		return
	}
	o := CheckState(ctx, lab, e.State)
	w.mu.Lock()
	defer w.mu.Unlock()
	r.samples++
	if o.Held {
		r.held++
		r.lastHeld = o.Detail
		if r.firstHeld < 0 {
			r.firstHeld = now
		}
	} else {
		r.lastFail = o.Detail
	}
}

// Stop implements Stage.
func (w *StateWatch) Stop(context.Context) error {
	if w.cancel != nil {
		w.cancel()
		<-w.done
		w.cancel = nil
	}
	return nil
}

// Evaluate implements Judge for windowed state expectations.
func (w *StateWatch) Evaluate(_ context.Context, _ *Run, e *spec.Expectation) (Outcome, bool) {
	if !windowed(e) {
		return Outcome{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.results[e.Name]
	if r == nil {
		return Outcome{}, false
	}
	if e.After != "" && !r.eventSeen {
		return Outcome{Detail: fmt.Sprintf("event %q never happened", e.After)}, true
	}
	if r.samples == 0 {
		return Outcome{Detail: "the window closed before the state could be sampled"}, true
	}
	if len(e.During) == 2 {
		held := r.held == r.samples
		d := fmt.Sprintf("held in %d of %d samples in [%s, %s)", r.held, r.samples, e.During[0].D(), e.During[1].D())
		if !held {
			d += "; last miss: " + r.lastFail
		}
		return Outcome{Held: held, Detail: d}, true
	}
	if r.firstHeld < 0 {
		return Outcome{Detail: fmt.Sprintf("never true in %d samples after %s (at %s): %s", r.samples, e.After, r.eventAt, r.lastFail)}, true
	}
	return Outcome{Held: true, Detail: fmt.Sprintf("true %s after %s: %s", (r.firstHeld - r.eventAt).Round(time.Millisecond), e.After, r.lastHeld)}, true
}
