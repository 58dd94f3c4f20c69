package segcap

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// doInPinned runs fn on a fresh OS thread switched into the namespace
// pinned at path; the caller's thread never moves. topo keeps segment
// namespaces to itself, so this is how a segment's bridge is reached. As in
// topo, the goroutine exits still locked: its thread is discarded rather
// than returned to the scheduler, whatever namespace it ended in.
func doInPinned(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", path, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			ferr = errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", path, err))
		}
		errc <- ferr
	}()
	return <-errc
}
