package traffic

import (
	"cmp"
	"container/heap"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"lvslab/sim/runner"
)

// Forever is the open end of a window.
const Forever = time.Duration(math.MaxInt64)

// Window is a span of a run relative to T0, [From, To). A request belongs
// to the window its start (runner.Request.At) falls in.
type Window struct {
	From, To time.Duration
	// Label says which window it is, for details: "in [1s, 9s)",
	// "in [10.003s, 13.003s) after rs2-frozen", "over the whole run".
	Label string
}

// WholeRun is every record, including those that end a stream after the
// run's nominal end.
func WholeRun() Window { return Window{From: 0, To: Forever, Label: "over the whole run"} }

// Contains reports whether at lies in the window.
func (w Window) Contains(at time.Duration) bool { return at >= w.From && at < w.To }

// Stats summarise the records that started in a window.
type Stats struct {
	Requests int
	Errors   int
	// Broken counts the streams whose break was seen in the window: a
	// break is placed when its record completed (At+Latency), not when its
	// chunk was written, because a chunk written just before a fault and
	// broken by it belongs after the fault (as MaxGap places successes).
	Broken    int
	Bytes     int64 // bytes of successful requests
	Successes int
	// Backends counts successful requests per answering backend ("":
	// successes whose backend the generator cannot tell).
	Backends map[string]int
	// ErrorBackends counts failed requests per backend that answered
	// anyway (an HTTP error status names one).
	ErrorBackends map[string]int
	// ErrorKinds counts failed requests per error text.
	ErrorKinds map[string]int
	// Latencies of successful requests, ascending.
	Latencies []time.Duration
}

// Summarize counts the records of reqs that started in w, and the breaks
// seen in w.
func Summarize(reqs []runner.Request, w Window) Stats {
	s := Stats{Backends: map[string]int{}, ErrorBackends: map[string]int{}, ErrorKinds: map[string]int{}}
	for _, r := range reqs {
		if r.Broken && w.Contains(r.At+r.Latency) {
			s.Broken++
		}
		if !w.Contains(r.At) {
			continue
		}
		s.Requests++
		if r.Err != "" {
			s.Errors++
			s.ErrorKinds[r.Err]++
			if r.Backend != "" {
				s.ErrorBackends[r.Backend]++
			}
			continue
		}
		s.Successes++
		s.Bytes += r.Bytes
		s.Backends[r.Backend]++
		s.Latencies = append(s.Latencies, r.Latency)
	}
	slices.Sort(s.Latencies)
	return s
}

// Percentile is the nearest-rank percentile (0 < p <= 100) of the
// successful requests' latencies; false when there are none.
func (s Stats) Percentile(p float64) (time.Duration, bool) {
	n := len(s.Latencies)
	if n == 0 {
		return 0, false
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	return s.Latencies[min(max(rank, 1), n)-1], true
}

// ErrorSummary lists the commonest errors: "12× connect: connection
// refused, 3× connect: timeout after 1s".
func (s Stats) ErrorSummary(limit int) string {
	type kc struct {
		k string
		c int
	}
	var ks []kc
	for k, c := range s.ErrorKinds {
		ks = append(ks, kc{k, c})
	}
	slices.SortFunc(ks, func(a, b kc) int {
		if a.c != b.c {
			return b.c - a.c
		}
		return strings.Compare(a.k, b.k)
	})
	var parts []string
	for i, x := range ks {
		if i == limit {
			parts = append(parts, fmt.Sprintf("%d more kinds", len(ks)-limit))
			break
		}
		parts = append(parts, fmt.Sprintf("%d× %s", x.c, x.k))
	}
	return strings.Join(parts, ", ")
}

// Gap is the longest stretch in which clients waited without a
// successful request.
type Gap struct {
	Len      time.Duration
	From, To time.Duration // since T0: when the waiting began, when service came
	// Successes is how many requests succeeded (completed) in the span.
	Successes int
}

// MaxGap is the longest interval within [from, to] in which a client was
// waiting and no request succeeded. A request succeeds when it completes
// (At+Latency): that is when service was observed, and for a stream chunk
// when the peer acknowledged it, so chunks written before a stall and
// acknowledged after it do not hide the stall. Between two successes (or a
// window edge and a success) the gap starts when the earliest request
// still in flight in that interval started, not at the previous success: a
// traffic generator that issued nothing for a while (a starved process on a
// loaded machine) is not a service gap, while a request that waited - a SYN
// retransmitted, a stream stalled - is one from its start. The edges count:
// requests in flight at the window's end without a success are a gap to
// the end, and a window no request overlaps at all is a gap as long as the
// window (nothing says service was there).
func MaxGap(reqs []runner.Request, from, to time.Duration) Gap {
	if to <= from {
		return Gap{From: from, To: from}
	}
	var ok []time.Duration
	// Requests that overlap the window, by start.
	var live []runner.Request
	for _, r := range reqs {
		end := r.At + r.Latency
		if r.Err == "" && end >= from && end <= to {
			ok = append(ok, end)
		}
		if r.At < to && end > from {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return Gap{Len: to - from, From: from, To: to}
	}
	slices.Sort(ok)
	slices.SortFunc(live, func(a, b runner.Request) int { return cmp.Compare(a.At, b.At) })
	g := Gap{Successes: len(ok)}
	// Sweep the intervals between successes in order. waiting holds the
	// requests started so far, earliest start on top; one that ended by an
	// interval's start cannot be waiting in it or any later one.
	waiting := &startHeap{}
	next := 0
	prev := from
	for _, at := range append(ok, to) {
		for next < len(live) && live[next].At < at {
			heap.Push(waiting, live[next])
			next++
		}
		for waiting.Len() > 0 && (*waiting)[0].At+(*waiting)[0].Latency <= prev {
			heap.Pop(waiting)
		}
		if waiting.Len() > 0 {
			since := max(prev, (*waiting)[0].At)
			if d := at - since; d > g.Len {
				g.Len, g.From, g.To = d, since, at
			}
		}
		prev = at
	}
	return g
}

// startHeap is a min-heap of requests by start.
type startHeap []runner.Request

func (h startHeap) Len() int           { return len(h) }
func (h startHeap) Less(i, j int) bool { return h[i].At < h[j].At }
func (h startHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *startHeap) Push(x any)        { *h = append(*h, x.(runner.Request)) }
func (h *startHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// sortedKeys lists a count map's keys in name order.
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare)
	return keys
}
