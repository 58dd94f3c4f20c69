package topo

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The registry is one JSON file per lab under <state dir>/labs, written
// before anything is created and updated as namespaces and processes
// appear, plus a lock file the owning lvslab holds (flock) while it builds
// or runs the lab. Clean reads it after a crash: a lab whose lock is free
// and which is not "up" has lost its owner.

// Prefix starts the name of every namespace a lab creates.
const Prefix = "lvsl-"

// DefaultStateDir holds the registry and the files of labs that are up.
const DefaultStateDir = "/run/lvslab"

// Lab states in the registry.
const (
	StateBuilding = "building"
	StateUp       = "up"
	StateStopping = "stopping"
)

// Lab modes: who owns a lab that is up.
const (
	ModeRun = "run" // the running lvslab; gone when it is
	ModeUp  = "up"  // nobody; stays until down or clean
)

// Record is what the registry knows about one lab.
type Record struct {
	Lab        string       `json:"lab"`
	Spec       string       `json:"spec"`
	Mode       string       `json:"mode"`
	State      string       `json:"state"`
	Owner      int          `json:"owner_pid"`
	Created    time.Time    `json:"created"`
	RunDir     string       `json:"run_dir"`
	BinDir     string       `json:"bin_dir"`
	NetnsDir   string       `json:"netns_dir"`
	Namespaces []NSRecord   `json:"namespaces"`
	Processes  []ProcRecord `json:"processes"`
}

// NSRecord is one namespace of a lab.
type NSRecord struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"` // node or segment
	Of    string `json:"of"`   // the node or segment name
	Inode uint64 `json:"inode,omitempty"`
}

// ProcRecord is one process started in a lab. Start (the kernel's start
// time in clock ticks) tells it apart from a later process that reused the
// PID.
type ProcRecord struct {
	Node  string `json:"node"`
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// Namespace is the namespace name of a node (or segment) of the lab.
func (r *Record) Namespace(name string) (string, bool) {
	for _, ns := range r.Namespaces {
		if ns.Of == name && ns.Kind == "node" {
			return ns.Name, true
		}
	}
	return "", false
}

// Nodes lists the lab's node names in build order.
func (r *Record) Nodes() []string {
	var out []string
	for _, ns := range r.Namespaces {
		if ns.Kind == "node" {
			out = append(out, ns.Of)
		}
	}
	return out
}

// NamespaceName is the namespace of node or segment name in lab.
func NamespaceName(lab, name string) string { return Prefix + lab + "." + name }

// labOfNamespace parses lvsl-<lab>.<name>.
func labOfNamespace(ns string) (string, bool) {
	rest, ok := strings.CutPrefix(ns, Prefix)
	if !ok {
		return "", false
	}
	lab, _, ok := strings.Cut(rest, ".")
	return lab, ok && lab != ""
}

type registry struct {
	dir string // <state dir>/labs
}

func newRegistry(stateDir string) (*registry, error) {
	dir := filepath.Join(stateDir, "labs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("registry %s: %w", dir, err)
	}
	return &registry{dir: dir}, nil
}

func (g *registry) recordPath(lab string) string { return filepath.Join(g.dir, lab+".json") }
func (g *registry) lockPath(lab string) string   { return filepath.Join(g.dir, lab+".lock") }

// save writes a record atomically.
func (g *registry) save(r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode record of %s: %w", r.Lab, err)
	}
	tmp := g.recordPath(r.Lab) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write record of %s: %w", r.Lab, err)
	}
	if err := os.Rename(tmp, g.recordPath(r.Lab)); err != nil {
		return fmt.Errorf("write record of %s: %w", r.Lab, err)
	}
	return nil
}

func (g *registry) load(lab string) (*Record, error) {
	b, err := os.ReadFile(g.recordPath(lab))
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("record of lab %s: %w", lab, err)
	}
	return &r, nil
}

func (g *registry) remove(lab string) {
	os.Remove(g.recordPath(lab))
	os.Remove(g.lockPath(lab))
}

// list returns every recorded lab, sorted by name.
func (g *registry) list() ([]*Record, error) {
	entries, err := os.ReadDir(g.dir)
	if err != nil {
		return nil, fmt.Errorf("read registry %s: %w", g.dir, err)
	}
	var out []*Record
	for _, e := range entries {
		lab, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		r, err := g.load(lab)
		if err != nil {
			// A torn or foreign file: still a lab name to clean by prefix.
			r = &Record{Lab: lab}
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Record) int { return strings.Compare(a.Lab, b.Lab) })
	return out, nil
}

// labLock is the flock a lab's owner holds.
type labLock struct{ f *os.File }

// errLocked says another live lvslab owns the lab.
var errLocked = errors.New("lab is in use by another lvslab")

// tryLock takes the lab's lock without waiting.
func (g *registry) tryLock(lab string) (*labLock, error) {
	f, err := os.OpenFile(g.lockPath(lab), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock of lab %s: %w", lab, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock of lab %s: %w", lab, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &labLock{f: f}, nil
}

// holder is the PID written in a held lock file (0 if unknown).
func (g *registry) holder(lab string) int {
	b, err := os.ReadFile(g.lockPath(lab))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (l *labLock) release() {
	if l != nil && l.f != nil {
		_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		l.f.Close()
		l.f = nil
	}
}

// processStart is the start time (field 22 of /proc/PID/stat, in clock
// ticks since boot) of a process, 0 if it does not exist.
func processStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after it start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}
