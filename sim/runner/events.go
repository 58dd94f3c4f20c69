package runner

import (
	"context"
	"net/netip"
	"slices"
	"time"
)

// Event is something that happened during a run: a timeline entry firing or
// being undone (name.end), or an observation.
type Event struct {
	Name   string        `json:"name"`
	At     time.Duration `json:"at"` // since the start of traffic (T0)
	Kind   string        `json:"kind"`
	Detail string        `json:"detail,omitempty"`
}

// EventSource is a stage that produces events (the fault timeline, the
// observers). Events may be called while the stage runs.
type EventSource interface {
	Events() []Event
}

// Request is the outcome of one request, connection or datagram of a
// traffic generator.
type Request struct {
	Seq     int           `json:"seq"` // 1-based, in start order
	At      time.Duration `json:"at"`  // start, since T0
	Latency time.Duration `json:"latency"`
	// Backend is the identity of the real server that answered ("" when
	// unknown or failed).
	Backend string `json:"backend,omitempty"`
	// Err is empty on success.
	Err   string `json:"err,omitempty"`
	Bytes int64  `json:"bytes"`
	// Local and Remote are the client-side socket addresses (what the
	// hop-by-hop walk looks for in the captures).
	Local  netip.AddrPort `json:"local,omitzero"`
	Remote netip.AddrPort `json:"remote,omitzero"`
	// Broken marks a stream whose payload did not arrive intact.
	Broken bool `json:"broken,omitempty"`
}

// RequestSource is a stage that records traffic (the traffic generators).
type RequestSource interface {
	// Traffic lists the traffic names it recorded.
	Traffic() []string
	// Requests returns the records of one traffic, in Seq order.
	Requests(traffic string) []Request
}

// Reporter writes report artefacts after the expectations are judged and
// before the lab is torn down (captures are closed by then).
type Reporter interface {
	Report(ctx context.Context, run *Run, res *Result) error
}

// Events returns the events of every stage, in time order.
func (r *Run) Events() []Event {
	var all []Event
	for _, st := range r.Stage {
		if es, ok := st.(EventSource); ok {
			all = append(all, es.Events()...)
		}
	}
	slices.SortStableFunc(all, func(a, b Event) int {
		if a.At != b.At {
			return int(a.At - b.At)
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return all
}

// EventTime returns when the named event first happened.
func (r *Run) EventTime(name string) (time.Duration, bool) {
	for _, e := range r.Events() {
		if e.Name == name {
			return e.At, true
		}
	}
	return 0, false
}

// Requests returns the records of one traffic from whichever stage has them.
func (r *Run) Requests(traffic string) []Request {
	for _, st := range r.Stage {
		if rs, ok := st.(RequestSource); ok && slices.Contains(rs.Traffic(), traffic) {
			return rs.Requests(traffic)
		}
	}
	return nil
}
