package rs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotStarted says no state is recorded for this network namespace.
var ErrNotStarted = errors.New("lvsrs is not started in this network namespace")

// stateVersion changes when the file format does.
const stateVersion = 1

// State is everything start changed, in order, with what it replaced. It is
// what the state file holds.
type State struct {
	Version int       `json:"version"`
	NetNS   NetNSID   `json:"netns"`
	Config  Config    `json:"config"`
	Started time.Time `json:"started"`
	// Userspace is set when tun mode decapsulates in userspace.
	Userspace bool `json:"userspace,omitempty"`
	// Owner is the foreground process of userspace decapsulation: the TUN
	// device lives as long as it does.
	Owner *Owner `json:"owner,omitempty"`
	Items []Item `json:"items"`
}

// Owner identifies a process across PID reuse.
type Owner struct {
	PID int `json:"pid"`
	// StartTicks is the process start time (field 22 of /proc/PID/stat).
	StartTicks uint64 `json:"start_ticks"`
}

// Item is one thing start wants in place. Exactly one field is set. Items
// that were already as wanted are recorded too (Changed/Added/Created
// false): status verifies them, stop leaves them alone.
type Item struct {
	Sysctl *SysctlItem `json:"sysctl,omitempty"`
	Addr   *AddrItem   `json:"addr,omitempty"`
	Link   *LinkItem   `json:"link,omitempty"`
	Route  *RouteItem  `json:"route,omitempty"`
}

// SysctlItem is one /proc/sys value.
type SysctlItem struct {
	Key     string `json:"key"` // path below /proc/sys, e.g. net/ipv4/conf/all/arp_ignore
	Want    string `json:"want"`
	Prev    string `json:"prev"`
	Changed bool   `json:"changed"`
}

// AddrItem is one address on a device.
type AddrItem struct {
	Dev    string       `json:"dev"`
	Prefix netip.Prefix `json:"prefix"`
	Label  string       `json:"label,omitempty"`
	Added  bool         `json:"added"`
}

// LinkItem is a device that must exist and be up.
type LinkItem struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`    // "tun" (userspace decapsulation) or "ipip"
	Created bool   `json:"created"` // we created it: stop removes it
	SetUp   bool   `json:"set_up"`  // it was down: stop sets it down again
}

// RouteItem is the nat default route and the default routes it replaced.
type RouteItem struct {
	Want     SavedRoute   `json:"want"`
	Added    bool         `json:"added"`
	Replaced []SavedRoute `json:"replaced,omitempty"`
}

// String describes the item for status output.
func (it Item) String() string {
	switch {
	case it.Sysctl != nil:
		s := it.Sysctl
		if s.Changed {
			return fmt.Sprintf("sysctl %s = %s (was %s)", s.Key, s.Want, s.Prev)
		}
		return fmt.Sprintf("sysctl %s = %s (already)", s.Key, s.Want)
	case it.Addr != nil:
		a := it.Addr
		l := ""
		if a.Label != "" {
			l = " label " + a.Label
		}
		if a.Added {
			return fmt.Sprintf("address %s on %s%s", a.Prefix, a.Dev, l)
		}
		return fmt.Sprintf("address %s on %s%s (already)", a.Prefix, a.Dev, l)
	case it.Link != nil:
		l := it.Link
		switch {
		case l.Created:
			return fmt.Sprintf("link %s (%s) created, up", l.Name, l.Kind)
		case l.SetUp:
			return fmt.Sprintf("link %s (%s) set up (was down)", l.Name, l.Kind)
		}
		return fmt.Sprintf("link %s (%s) up (already)", l.Name, l.Kind)
	case it.Route != nil:
		r := it.Route
		var old []string
		for _, p := range r.Replaced {
			old = append(old, p.String())
		}
		s := "route " + r.Want.String()
		if !r.Added {
			s += " (already)"
		}
		if len(old) > 0 {
			s += " replacing " + strings.Join(old, "; ")
		}
		return s
	}
	return "empty item"
}

// NetNSID identifies a network namespace. The inode names the state file;
// the cookie (never reused, unlike inodes) tells a file left by a namespace
// that no longer exists from one for the current namespace.
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

// sameNS reports whether a recorded namespace is the current one.
func (id NetNSID) sameNS(cur NetNSID) bool {
	return id.Inode == cur.Inode && (id.Cookie == 0 || cur.Cookie == 0 || id.Cookie == cur.Cookie)
}

// StatePath is the state file of a network namespace.
func StatePath(dir string, id NetNSID) string {
	return filepath.Join(dir, fmt.Sprintf("netns-%d.json", id.Inode))
}

// store reads and writes one namespace's state file. A flock on the
// directory serialises start, stop and status across processes.
type store struct {
	dir  string
	path string
	ns   NetNSID
	lock *os.File
}

func openStore(dir string) (*store, error) {
	ns, err := CurrentNetNS()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &store{dir: dir, path: StatePath(dir, ns), ns: ns}, nil
}

func (s *store) Lock() error {
	f, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("open state directory for locking: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return fmt.Errorf("lock state directory %s: %w", s.dir, err)
	}
	s.lock = f
	return nil
}

func (s *store) Unlock() {
	if s.lock != nil {
		s.lock.Close() // closing drops the flock
		s.lock = nil
	}
}

// errStale marks a state file written in a namespace that no longer exists
// (its inode now belongs to the current one).
var errStale = errors.New("state file belongs to a network namespace that no longer exists")

// load returns the recorded state, ErrNotStarted, or errStale.
func (s *store) load() (*State, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotStarted
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse state %s: %w", s.path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state %s has version %d, this lvsrs understands %d", s.path, st.Version, stateVersion)
	}
	if !st.NetNS.sameNS(s.ns) {
		return &st, errStale
	}
	return &st, nil
}

// save replaces the state file atomically, so a crash leaves the old or the
// new record, never half of one.
func (s *store) save(st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
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

func (s *store) remove() error {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove state: %w", err)
	}
	return nil
}

// selfOwner identifies the calling process.
func selfOwner() (*Owner, error) {
	pid := os.Getpid()
	t, _, err := procStart(pid)
	if err != nil {
		return nil, err
	}
	return &Owner{PID: pid, StartTicks: t}, nil
}

// procStart reads a process's start time (which with the PID identifies it)
// and whether it is a zombie.
func procStart(pid int) (ticks uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'. Field 3 (state) is then the first.
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

// Alive reports whether the owner process still runs (and is not a zombie).
func (o *Owner) Alive() bool {
	if o == nil {
		return false
	}
	t, zombie, err := procStart(o.PID)
	return err == nil && t == o.StartTicks && !zombie
}
