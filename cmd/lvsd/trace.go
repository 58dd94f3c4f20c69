package main

import (
	"fmt"
	"os"
	"runtime/trace"
)

// startTrace writes a Go execution trace to path until the returned stop
// is called (at exit), for looking at forwarding stalls: a receive
// worker's wait between its frame becoming readable and it running again
// shows in `go tool trace -pprof=sched` and in the trace's timeline.
func startTrace(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return func() {
		trace.Stop()
		f.Close()
	}, nil
}
