package topo

import (
	"os"
	"strconv"
	"strings"

	"lvslab/internal/netns"
)

// Namespaces are pinned by a bind mount under /run/netns, as `ip netns add`
// does, so that a lab outlives the command that built it (lvslab up) and
// `ip netns exec lvsl-<lab>.<node>` works for people. Pinning means a crash
// leaves them behind; the registry (registry.go) and the lvsl- prefix let
// Clean find and remove them. Handles, threads inside a namespace and
// sysctls are internal/netns's.

// DefaultNetnsDir is where iproute2 looks for named namespaces.
const DefaultNetnsDir = netns.DefaultDir

// pidsInNamespaces lists the processes whose main thread is in one of the
// namespaces (by inode), except this process.
func pidsInNamespaces(inodes map[uint64]bool) []int {
	if len(inodes) == 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if inodes[netns.ProcessInode(pid)] && !zombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// zombie reports whether a process has exited and waits to be reaped (a
// signal cannot do anything more to it).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}
