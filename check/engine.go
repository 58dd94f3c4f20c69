package check

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Outcome is what one probe found.
type Outcome struct {
	OK bool
	// Weight is set by MISC_CHECK with misc_dynamic (exit code - 2) when
	// HasWeight.
	Weight    int
	HasWeight bool
	// Err says why a probe failed (for logs with log_all_failures).
	Err error
	// Index is the URL (HTTP_GET) or host (SMTP_CHECK) that was checked.
	Index int
}

// Probe runs one check; it must return by the context's deadline.
type Probe func(ctx context.Context) Outcome

// Job is one checker the engine runs.
type Job struct {
	ID      int
	State   State
	Warmup  time.Duration
	Timeout time.Duration // bounds one probe (connect_timeout, misc_timeout)
	Probe   Probe
	// Skip, if set, is asked before each probe: a true answer (ha_suspend
	// on a backup director) reschedules without probing.
	Skip func() bool
	// Start, if not zero, is the first run's delay instead of FirstDelay.
	Start time.Duration
	// Ref is the caller's, carried into Events.
	Ref any
}

// Event is a result the engine reports: a transition, or a probe that set
// a dynamic weight.
type Event struct {
	Job        *Job
	Outcome    Outcome
	Transition Transition
	// Retries is the retry count of a failure that was declared (for
	// "failed after %u retries").
	Retries int
}

// Engine schedules many checkers: one timer heap, and at most Limit
// probes in flight (each a goroutine that lives as long as its probe), so
// 10,000 checkers at delay_loop 1 cost a heap and a bounded set of
// sockets, not a goroutine and a timer each.
type Engine struct {
	// Limit bounds concurrent probes; 0 means 2048.
	Limit int
	// Emit receives events, called from the engine's goroutine; it must
	// not block for long.
	Emit func(Event)
}

type due struct {
	at  time.Time
	job *Job
}

type dueHeap []due

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(due)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type result struct {
	job *Job
	out Outcome
}

// Run runs the jobs until ctx ends, then waits for the probes in flight.
// Jobs' States are owned by the engine while it runs.
func (e *Engine) Run(ctx context.Context, jobs []*Job) {
	limit := e.Limit
	if limit <= 0 {
		limit = 2048
	}
	now := time.Now()
	h := make(dueHeap, 0, len(jobs))
	for _, j := range jobs {
		d := j.Start
		if d == 0 {
			d = FirstDelay(j.Warmup, rand.Int64N)
		}
		h = append(h, due{now.Add(d), j})
	}
	heap.Init(&h)
	results := make(chan result, limit)
	var wg sync.WaitGroup
	defer wg.Wait()
	inflight := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now = time.Now()
		for inflight < limit && h.Len() > 0 && !h[0].at.After(now) {
			d := heap.Pop(&h).(due)
			j := d.job
			if j.Skip != nil && j.Skip() {
				heap.Push(&h, due{now.Add(j.State.DelayLoop), j})
				continue
			}
			inflight++
			wg.Add(1)
			go func() {
				defer wg.Done()
				timeout := j.Timeout
				if timeout <= 0 {
					timeout = 5 * time.Second
				}
				pctx, cancel := context.WithTimeout(ctx, timeout)
				out := j.Probe(pctx)
				cancel()
				results <- result{j, out}
			}()
		}
		if h.Len() > 0 && inflight < limit {
			timer.Reset(time.Until(h[0].at))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			// drain so probes can finish
			go func() {
				for range results {
				}
			}()
			wg.Wait()
			close(results)
			return
		case r := <-results:
			inflight--
			e.record(&h, r)
			// Take every result that is already there before rescheduling.
			for more := true; more; {
				select {
				case r := <-results:
					inflight--
					e.record(&h, r)
				default:
					more = false
				}
			}
		case <-timer.C:
		}
	}
}

func (e *Engine) record(h *dueHeap, r result) {
	j := r.job
	retries := j.State.Retry
	next, t := j.State.Result(r.out.OK)
	if next <= 0 {
		// a zero delay would spin; keepalived refuses it at parse time.
		next = time.Second
	}
	heap.Push(h, due{time.Now().Add(next), j})
	if e.Emit != nil && (t != None || r.out.HasWeight) {
		e.Emit(Event{Job: j, Outcome: r.out, Transition: t, Retries: retries})
	}
}
