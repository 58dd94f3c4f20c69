package benchnet

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc's CPU times (USER_HZ, 100 on every Linux
// architecture Go supports).
const userHZ = 100

func ticks(n uint64) time.Duration { return time.Duration(n) * time.Second / userHZ }

// processTime is utime+stime of a process (all its threads) from
// /proc/PID/stat. Softirq work done in the process's system calls (the
// receive path of a veth peer it transmits to) is charged to it too.
func processTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("process time: %w", err)
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("process time: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("process time: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("process time: /proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return ticks(ut + st), nil
}

// softirqTime is the time CPU cpu spent in softirq context so far,
// whoever's thread it interrupted: where the kernel's own forwarding runs.
func softirqTime(cpu int) (time.Duration, error) { return cpuStat(cpu, 6) }

// idleTime is the time CPU cpu spent idle so far. Idle time on the
// forwarder's CPU while frames are dropped means the forwarder waited for
// something other than the CPU.
func idleTime(cpu int) (time.Duration, error) { return cpuStat(cpu, 3) }

// cpuStat reads column col (0 user, 1 nice, 2 system, 3 idle, 4 iowait,
// 5 irq, 6 softirq) of CPU cpu's line in /proc/stat.
func cpuStat(cpu, col int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	prefix := "cpu" + strconv.Itoa(cpu) + " "
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		if len(f) < col+2 {
			break
		}
		v, err := strconv.ParseUint(f[col+1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time: %q: %w", line, err)
		}
		return ticks(v), nil
	}
	return 0, fmt.Errorf("cpu time: no cpu%d in /proc/stat", cpu)
}

// ksoftirqd returns the PID of the softirq thread of cpu: softirq work that
// overflows the context that raised it (here: the sink's receive path
// behind a forwarder's transmits) runs there, not in the forwarder's
// process.
func ksoftirqd(cpu int) (int, error) {
	want := "ksoftirqd/" + strconv.Itoa(cpu)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("find %s: %w", want, err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.TrimSpace(string(comm)) == want {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s thread", want)
}
