package check

import "time"

// Transition is what one check result did to a checker.
type Transition uint8

const (
	// None: the checker stays as it was (or a failure is being retried).
	None Transition = iota
	// Up: the checker is (re)declared up. keepalived also declares the
	// first success of a checker that started up, so the daemon treats Up
	// and Down as idempotent.
	Up
	// Down: the checker is declared down (after its retries, or at once
	// on its very first run).
	Down
)

func (t Transition) String() string {
	switch t {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "none"
}

// State is one checker's keepalived 2.2.7 state machine (check_tcp.c
// tcp_epilog; the other checkers share it): the pure core, without
// clocks or sockets, so it is table-tested.
//
//   - A success, or a failure with the retries used up, waits DelayLoop
//     for the next check and resets the retry count; a failure with
//     retries left waits DelayBeforeRetry.
//   - A checker that is up goes down after Retry+1 consecutive failures;
//     one success brings it up (no "rise").
//   - The very first check has no retries (the retry count starts used
//     up), and its result is always declared, up or down.
type State struct {
	Retry            int
	DelayLoop        time.Duration
	DelayBeforeRetry time.Duration

	Up      bool // the checker counts as passing
	HasRun  bool // at least one result recorded
	RetryIt int  // consecutive failures being retried
}

// NewState is a checker before its first run: up unless alpha.
func NewState(retry int, delayLoop, delayBeforeRetry time.Duration, alpha bool) State {
	if retry < 0 {
		retry = 0
	}
	return State{Retry: retry, DelayLoop: delayLoop, DelayBeforeRetry: delayBeforeRetry, Up: !alpha, RetryIt: retry}
}

// Result records one check's outcome and says how long to wait before the
// next check and what changed.
func (s *State) Result(ok bool) (next time.Duration, t Transition) {
	if ok || s.RetryIt >= s.Retry {
		next = s.DelayLoop
		s.RetryIt = 0
		switch {
		case ok && (!s.Up || !s.HasRun):
			t = Up
			s.Up = true
		case !ok && (s.Up || !s.HasRun):
			t = Down
			s.Up = false
		}
	} else {
		next = s.DelayBeforeRetry
		s.RetryIt++
	}
	s.HasRun = true
	return next, t
}

// FirstDelay is when a checker first runs after start or reload:
// keepalived waits one second plus a random part of warmup, so thousands
// of checkers do not all fire at once. rnd(n) returns a value in [0, n).
func FirstDelay(warmup time.Duration, rnd func(n int64) int64) time.Duration {
	d := time.Second
	if warmup > 0 && rnd != nil {
		d += time.Duration(rnd(int64(warmup)))
	}
	return d
}
