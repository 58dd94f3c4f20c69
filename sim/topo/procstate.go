package topo

import (
	"os"
	"strconv"
	"strings"
)

// Running reports whether the recorded process is still alive: the PID
// exists, has the recorded start time (not a later process that reused
// the PID), and is not a zombie waiting to be reaped.
func (p ProcRecord) Running() bool {
	if p.PID <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return false
	}
	return p.Start == 0 || strconv.FormatUint(p.Start, 10) == f[19]
}
