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
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"lvslab/capture"
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
type Owner struct {
	PID int `json:"pid"`
	// StartTicks is the process start time (field 22 of /proc/PID/stat).
	StartTicks uint64 `json:"start_ticks"`
}

// NetNSID identifies a network namespace.
type NetNSID struct {
	Inode  uint64 `json:"inode"`
	Cookie uint64 `json:"cookie,omitempty"`
}

// CurrentNetNS identifies the calling thread's network namespace.
func CurrentNetNS() (NetNSID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return NetNSID{}, fmt.Errorf("stat /proc/thread-self/ns/net: %w", err)
	}
	id := NetNSID{Inode: st.Ino}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return NetNSID{}, fmt.Errorf("socket for the netns cookie: %w", err)
	}
	defer unix.Close(fd)
	// Kernels before 5.14 lack SO_NETNS_COOKIE: the inode alone then.
	if c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE); err == nil {
		id.Cookie = c
	}
	return id, nil
}

func (id NetNSID) same(cur NetNSID) bool {
	return id.Inode == cur.Inode && (id.Cookie == 0 || cur.Cookie == 0 || id.Cookie == cur.Cookie)
}

// Store is the state file of the calling thread's network namespace. Lock
// serialises lvsd starts and cleanups across processes.
type Store struct {
	dir, path string
	ns        NetNSID
	lock      *os.File
}

// Open opens the store of the current network namespace under dir.
func Open(dir string) (*Store, error) {
	ns, err := CurrentNetNS()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lvsd state directory: %w", err)
	}
	return &Store{dir: dir, path: filepath.Join(dir, fmt.Sprintf("netns-%d.json", ns.Inode)), ns: ns}, nil
}

// Path is the state file's path.
func (s *Store) Path() string { return s.path }

// Lock takes the directory's lock (released by Unlock).
func (s *Store) Lock() error {
	f, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("open %s for locking: %w", s.dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return fmt.Errorf("lock %s: %w", s.dir, err)
	}
	s.lock = f
	return nil
}

// Unlock releases Lock.
func (s *Store) Unlock() {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// Load returns the recorded state, or nil when there is none. A file left
// by a namespace that no longer exists (its inode reused) is removed and
// reported as none: what it recorded went with that namespace.
func (s *Store) Load() (*State, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lvsd state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse lvsd state %s: %w", s.path, err)
	}
	if st.Version != version {
		return nil, fmt.Errorf("lvsd state %s has version %d, this lvsd understands %d", s.path, st.Version, version)
	}
	if !st.NetNS.same(s.ns) {
		return nil, s.Remove()
	}
	return &st, nil
}

// Save replaces the state file atomically.
func (s *Store) Save(st *State) error {
	st.Version, st.NetNS = version, s.ns
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lvsd state: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, ".netns-*.tmp")
	if err != nil {
		return fmt.Errorf("write lvsd state: %w", err)
	}
	perr := tmp.Chmod(0o644)
	_, werr := tmp.Write(append(b, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(perr, werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write lvsd state %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write lvsd state: %w", err)
	}
	return nil
}

// Remove deletes the state file; a missing one is fine.
func (s *Store) Remove() error {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove lvsd state: %w", err)
	}
	return nil
}

// Self identifies the calling process.
func Self() (Owner, error) {
	pid := os.Getpid()
	t, _, err := procStart(pid)
	if err != nil {
		return Owner{}, err
	}
	return Owner{PID: pid, StartTicks: t}, nil
}

// Alive reports whether the owner still runs (and is not a zombie).
func (o Owner) Alive() bool {
	t, zombie, err := procStart(o.PID)
	return err == nil && t == o.StartTicks && !zombie
}

func procStart(pid int) (ticks uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'. Field 3 (state) is then the first.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false, fmt.Errorf("process %d: unexpected /proc stat format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false, fmt.Errorf("process %d: short /proc stat", pid)
	}
	t, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("process %d start time: %w", pid, err)
	}
	return t, f[0] == "Z", nil
}

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
