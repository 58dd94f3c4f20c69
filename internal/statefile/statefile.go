// Package statefile keeps the per-network-namespace state files of the
// daemons that change things outside themselves (lvsrs's real-server setup,
// lvsd's guard table and offloads), so that what a killed process left is
// undone by the next one with the true originals.
//
// One file per network namespace, DIR/netns-<inode>.json: the inode names
// the file; the namespace cookie (never reused, unlike inodes) tells a file
// left by a namespace that no longer exists from one of the current
// namespace. A flock on DIR serialises the processes that read and write
// it, and Save replaces the file atomically, so a crash leaves the old or
// the new record, never half of one. The record's format is the caller's
// (JSON of any type); Owner identifies a process across PID reuse.
package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// NetNSID identifies a network namespace.
type NetNSID struct {
	Inode  uint64 `json:"inode"`
	Cookie uint64 `json:"cookie,omitempty"`
}

// CurrentNetNS identifies the calling thread's network namespace.
func CurrentNetNS() (NetNSID, error) {
	var st unix.Stat_t
	// thread-self, not self: the caller may have switched only this thread.
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

// Same reports whether a recorded namespace is cur (the cookie decides
// where both have one).
func (id NetNSID) Same(cur NetNSID) bool {
	return id.Inode == cur.Inode && (id.Cookie == 0 || cur.Cookie == 0 || id.Cookie == cur.Cookie)
}

// Path is the state file of namespace id under dir.
func Path(dir string, id NetNSID) string {
	return filepath.Join(dir, fmt.Sprintf("netns-%d.json", id.Inode))
}

// Store is the state file of the calling thread's network namespace.
type Store struct {
	dir, path string
	ns        NetNSID
	lock      *os.File
}

// Open opens the store of the current network namespace under dir,
// creating dir.
func Open(dir string) (*Store, error) {
	ns, err := CurrentNetNS()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &Store{dir: dir, path: Path(dir, ns), ns: ns}, nil
}

// Path is the state file's path.
func (s *Store) Path() string { return s.path }

// NS is the namespace the store belongs to.
func (s *Store) NS() NetNSID { return s.ns }

// Lock takes the directory's lock (released by Unlock).
func (s *Store) Lock() error {
	f, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("open state directory %s for locking: %w", s.dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return fmt.Errorf("lock state directory %s: %w", s.dir, err)
	}
	s.lock = f
	return nil
}

// Unlock releases Lock.
func (s *Store) Unlock() {
	if s.lock != nil {
		s.lock.Close() // closing drops the flock
		s.lock = nil
	}
}

// Read decodes the state file into v; it reports false (and no error) when
// there is none.
func (s *Store) Read(v any) (bool, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("parse state %s: %w", s.path, err)
	}
	return true, nil
}

// Save replaces the state file with v, atomically.
func (s *Store) Save(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, ".netns-*.tmp")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	// Readable by all, as /run state usually is; CreateTemp makes it 0600.
	perr := tmp.Chmod(0o644)
	_, werr := tmp.Write(append(b, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(perr, werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// Remove deletes the state file; a missing one is fine.
func (s *Store) Remove() error {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove state: %w", err)
	}
	return nil
}

// Owner identifies a process across PID reuse.
type Owner struct {
	PID int `json:"pid"`
	// StartTicks is the process start time (field 22 of /proc/PID/stat).
	StartTicks uint64 `json:"start_ticks"`
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

// Alive reports whether the owner still runs and is not a zombie; a nil
// owner is not alive.
func (o *Owner) Alive() bool {
	if o == nil {
		return false
	}
	t, zombie, err := procStart(o.PID)
	return err == nil && t == o.StartTicks && !zombie
}

// procStart reads a process's start time (which with the PID identifies it)
// and whether it is a zombie.
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
