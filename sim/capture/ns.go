package segcap

import "lvslab/sim/topo"

// doInPinned runs fn on a fresh OS thread switched into the namespace
// pinned at path; the caller's thread never moves.
func doInPinned(path string, fn func() error) error { return topo.DoIn(path, fn) }
