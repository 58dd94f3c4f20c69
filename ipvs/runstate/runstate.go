// Package runstate records what a running lvsd changed outside itself (the
// nftables guard table, interface offloads, a file-system control socket),
// so that what a killed lvsd left is undone by the next one, by
// `lvsd --cleanup`, or by `lvslab clean`, with the true originals.
//
// One state file per network namespace, /run/lvsd/netns-<inode>.json, as
// lvsrs keeps its own: the inode names the file, the namespace cookie (never
// reused) tells a file of a namespace that no longer exists from one of the
// current namespace. Originals are written before anything is changed, and
// the file is replaced atomically, so a kill at any moment leaves a record
// that undoes exactly what was done.
package runstate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"

	"lvslab/capture"
	"lvslab/internal/statefile"
	"lvslab/ipvs"
)

// DefaultDir is where lvsd keeps its state files.
const DefaultDir = "/run/lvsd"

const version = 1

// ErrRunning says the lvsd that wrote the state still runs.
var ErrRunning = errors.New("lvsd is running in this network namespace")

// State is what one lvsd changed.
type State struct {
	Version int       `json:"version"`
	NetNS   NetNSID   `json:"netns"`
	Owner   Owner     `json:"owner"`
	Started time.Time `json:"started"`
	// GuardTable is the nftables table (family netdev) lvsd installs.
	GuardTable string `json:"guard_table,omitempty"`
	// Offloads are the interfaces' features as they were before lvsd
	// changed any, in the form SetFeatures takes back.
	Offloads []Offload `json:"offloads,omitempty"`
	// Socket is the file-system path of the control socket (empty for an
	// abstract one, which vanishes with its process).
	Socket string `json:"socket,omitempty"`
}

// Offload is the requested state of an interface's features before lvsd
// touched them.
type Offload struct {
	Ifname    string          `json:"ifname"`
	Requested map[string]bool `json:"requested"`
}

// Owner identifies a process across PID reuse.
type Owner = statefile.Owner

// NetNSID identifies a network namespace.
type NetNSID = statefile.NetNSID

// CurrentNetNS identifies the calling thread's network namespace.
func CurrentNetNS() (NetNSID, error) { return statefile.CurrentNetNS() }

// Store is the state file of the calling thread's network namespace. Lock
// serialises lvsd starts and cleanups across processes.
type Store struct {
	*statefile.Store
}

// Open opens the store of the current network namespace under dir.
func Open(dir string) (*Store, error) {
	s, err := statefile.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lvsd %w", err)
	}
	return &Store{s}, nil
}

// Load returns the recorded state, or nil when there is none. A file left
// by a namespace that no longer exists (its inode reused) is removed and
// reported as none: what it recorded went with that namespace.
func (s *Store) Load() (*State, error) {
	var st State
	found, err := s.Read(&st)
	if err != nil || !found {
		return nil, err
	}
	if st.Version != version {
		return nil, fmt.Errorf("lvsd state %s has version %d, this lvsd understands %d", s.Path(), st.Version, version)
	}
	if !st.NetNS.Same(s.NS()) {
		return nil, s.Remove()
	}
	return &st, nil
}

// Save replaces the state file atomically.
func (s *Store) Save(st *State) error {
	st.Version, st.NetNS = version, s.NS()
	return s.Store.Save(st)
}

// Self identifies the calling process.
func Self() (Owner, error) { return statefile.Self() }

// Undo reverts what st records: the guard table is deleted, the offloads
// get their original values back, a stale socket file is removed. Missing
// pieces (an interface gone, the table already deleted) are fine.
func Undo(ctx context.Context, st *State) error {
	var errs []error
	if st.GuardTable != "" {
		g := &ipvs.KernelGuard{Table: st.GuardTable}
		if err := g.Remove(ctx); err != nil {
			errs = append(errs, err)
		}
		_ = g.Close()
	}
	for _, o := range st.Offloads {
		if _, err := net.InterfaceByName(o.Ifname); err != nil {
			continue // the interface went away, and its settings with it
		}
		if _, err := capture.SetFeatures(o.Ifname, o.Requested); err != nil {
			errs = append(errs, fmt.Errorf("restore offloads of %s: %w", o.Ifname, err))
		}
	}
	if st.Socket != "" {
		if err := ReclaimSocket(st.Socket); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Cleanup undoes what a dead lvsd of the current network namespace left
// and removes its state file. It reports whether there was anything; a
// running lvsd's state is refused with ErrRunning.
func Cleanup(ctx context.Context, dir string) (*State, error) {
	s, err := Open(dir)
	if err != nil {
		return nil, err
	}
	if err := s.Lock(); err != nil {
		return nil, err
	}
	defer s.Unlock()
	st, err := s.Load()
	if err != nil || st == nil {
		return nil, err
	}
	if st.Owner.Alive() {
		return st, fmt.Errorf("%w (pid %d): stop it instead", ErrRunning, st.Owner.PID)
	}
	if err := Undo(ctx, st); err != nil {
		return st, err
	}
	return st, s.Remove()
}

// ReclaimSocket removes a file-system unix socket nobody listens on (left
// by a killed process). A socket someone answers on, or a file that is not
// a socket, is an error and stays.
func ReclaimSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: a file that is not a socket is in the way", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: another process listens on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale control socket %s: %w", path, err)
	}
	return nil
}
