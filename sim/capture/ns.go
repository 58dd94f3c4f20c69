package segcap

import "lvslab/internal/netns"

// doInPinned runs fn on a fresh OS thread switched into the namespace
// pinned at path; the caller's thread never moves.
func doInPinned(path string, fn func() error) error { return netns.DoPath(path, fn) }
