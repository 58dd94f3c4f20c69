package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"lvslab/capture"
	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// TestRXRingFlag: --rx-ring takes v2 or v3, v3 by default.
func TestRXRingFlag(t *testing.T) {
	o, err := parseFlags([]string{"-i", "eth0"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, capture.RXRingV3, o.rxRing)
	o, err = parseFlags([]string{"-i", "eth0", "--rx-ring", "v2"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, capture.RXRingV2, o.rxRing)
	_, err = parseFlags([]string{"-i", "eth0", "--rx-ring", "v1"}, io.Discard)
	assert.ErrorContains(t, err, `--rx-ring: receive ring "v1": want v2 or v3`)
}

// TestRTPriorityFlag: --rt-priority takes a SCHED_RR priority, 0 (the
// default) for none.
func TestRTPriorityFlag(t *testing.T) {
	o, err := parseFlags([]string{"-i", "eth0"}, io.Discard)
	require.NoError(t, err)
	assert.Zero(t, o.rtPriority)
	o, err = parseFlags([]string{"-i", "eth0", "--rt-priority", "10"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 10, o.rtPriority)
	for _, bad := range []string{"100", "-1"} {
		_, err = parseFlags([]string{"-i", "eth0", "--rt-priority", bad}, io.Discard)
		assert.ErrorContains(t, err, "--rt-priority "+bad+": a SCHED_RR priority is 1..99")
	}
}

// threadPolicies is policy/priority -> how many of pid's threads have it.
func threadPolicies(t *testing.T, pid int) map[string]int {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	require.NoError(t, err)
	out := map[string]int{}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		require.NoError(t, err)
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // exited
		}
		out[fmt.Sprintf("policy %d priority %d", a.Policy, a.Priority)]++
	}
	return out
}

// TestRTPriorityEveryThread: with --rt-priority every thread of lvsd is
// SCHED_RR at that priority, also those the Go runtime starts after the
// flag took effect (a burst of control requests makes it start some);
// without the flag none is. An lvsd that may not have real-time scheduling
// exits non-zero saying why, before it changes anything.
func TestRTPriorityEveryThread(t *testing.T) {
	nstest.Require(t)
	testenv.Tools(t, "setpriv", "prlimit")
	d := nstest.New(t, "rtp")
	peer := nstest.New(t, "rtpp")
	nstest.Veth(t, d, "eth0", peer, "eth0", 1500)
	d.Addr("eth0", "172.16.0.1/24")

	p, _ := e2e.StartLVSDProc(t, d, "eth0", "--rt-priority", "7")
	done := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, err := d.Try(e2e.Bin(t, "lvsadm"), "-A", "-t", fmt.Sprintf("10.0.0.%d:80", i+1), "-s", "rr")
			done <- err
		}()
	}
	for range 8 {
		require.NoError(t, <-done)
	}
	want := fmt.Sprintf("policy %d priority 7", unix.SCHED_RR)
	got := threadPolicies(t, p.Process.Pid)
	assert.Equal(t, []string{want}, keys(got), "every thread SCHED_RR 7: %v", got)
	assert.GreaterOrEqual(t, got[want], 4, "a Go process has several threads")

	// Another namespace, another lvsd: without the flag, ordinary tasks.
	d2 := nstest.New(t, "rtq")
	peer2 := nstest.New(t, "rtqp")
	nstest.Veth(t, d2, "eth0", peer2, "eth0", 1500)
	p2, _ := e2e.StartLVSDProc(t, d2, "eth0")
	assert.Equal(t, []string{fmt.Sprintf("policy %d priority 0", unix.SCHED_NORMAL)}, keys(threadPolicies(t, p2.Process.Pid)))

	// Without CAP_SYS_NICE (and RLIMIT_RTPRIO 0) the kernel refuses.
	out, err := d2.Try("setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice", "prlimit", "--rtprio=0",
		e2e.Bin(t, "lvsd"), "-i", "eth0", "--rt-priority", "7", "--socket", "@lvsd-rtp-refused", "--state-dir", t.TempDir())
	require.Error(t, err, out)
	assert.Contains(t, out, "--rt-priority: sched_setattr(SCHED_RR, 7)")
	assert.Contains(t, out, "needs CAP_SYS_NICE or RLIMIT_RTPRIO")
	assert.NotContains(t, out, "lvsd running")
}

func keys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
