package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setRTPriority puts every thread of lvsd in SCHED_RR at prio, as
// keepalived's vrrp_rt_priority and checker_rt_priority do for its
// processes. The kernel's IPVS forwards in softirq, ahead of every task;
// lvsd's receive workers are ordinary threads, and on a loaded machine
// they wait for a CPU behind whatever else is runnable: tens of
// milliseconds of forwarding stalled (and frames dropped once the ring's
// blocks are full) while the machine's own forwarding is not. The Go
// runtime moves goroutines between threads and wakes a worker through
// another thread's netpoll, so every thread gets the policy, not only
// those of the workers; threads the runtime starts later are cloned from
// these and inherit it. The kernel's RT throttling
// (kernel.sched_rt_runtime_us, 95% by default) still leaves ordinary tasks
// their share if lvsd is ever busy forever.
func setRTPriority(prio int) error {
	if prio < 1 || prio > 99 {
		return fmt.Errorf("%d is not a SCHED_RR priority (1..99)", prio)
	}
	// A thread started while we walk the list may have been cloned from
	// one not yet changed: walk again until a pass changes nothing.
	for pass := 0; pass < 10; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := 0
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			a, err := unix.SchedGetAttr(tid, 0)
			if err != nil {
				continue // the thread has exited
			}
			if a.Policy == unix.SCHED_RR && a.Priority == uint32(prio) {
				continue
			}
			a.Policy, a.Priority, a.Nice, a.Flags = unix.SCHED_RR, uint32(prio), 0, 0
			if err := unix.SchedSetAttr(tid, a, 0); err != nil {
				if err == unix.ESRCH {
					continue
				}
				return fmt.Errorf("sched_setattr(SCHED_RR, %d) on thread %d: %w (needs CAP_SYS_NICE or RLIMIT_RTPRIO)", prio, tid, err)
			}
			changed++
		}
		if changed == 0 {
			return nil
		}
	}
	return fmt.Errorf("threads kept appearing while their scheduling policy was set")
}
