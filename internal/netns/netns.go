package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultDir is where iproute2 pins named namespaces.
const DefaultDir = "/run/netns"

// NS is an open network namespace: its nsfs descriptor and a netlink handle
// bound to it. Close it when done.
type NS struct {
	name  string // the pin's base name (or the path given to Open)
	path  string // the pin
	h     vnetns.NsHandle
	nl    *netlink.Handle
	inode uint64
}

// Name is the base name of the namespace's pin (for `ip netns exec`).
func (n *NS) Name() string { return n.name }

// Path is the namespace's pin.
func (n *NS) Path() string { return n.path }

// Handle is the namespace's descriptor (for netlink.NsFd, PeerNamespace).
func (n *NS) Handle() vnetns.NsHandle { return n.h }

// Netlink is a netlink handle bound to the namespace, valid until Close.
func (n *NS) Netlink() *netlink.Handle { return n.nl }

// Inode identifies the namespace while it exists (a freed namespace's inode
// may be reused).
func (n *NS) Inode() uint64 { return n.inode }

// checkName refuses pin names that are not one path element.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("namespace name %q: want one path element", name)
	}
	return nil
}

// NewPinned creates a network namespace pinned at dir/name, as `ip netns
// add` does, with lo up, and returns it open. dir is created if missing.
// The calling thread never changes namespace; a name already pinned is an
// error (os.ErrExist), not a reuse.
func NewPinned(dir, name string) (*NS, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("pin file for namespace %s: %w", name, err)
	}
	f.Close()
	err = onLockedThread("the new namespace", func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		src := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		_ = unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return nil, fmt.Errorf("create namespace %s: %w", name, err)
	}
	ns, err := Open(path)
	if err != nil {
		_ = Unpin(path)
		return nil, err
	}
	lo, err := Retry(func() (netlink.Link, error) { return ns.nl.LinkByName("lo") })
	if err == nil {
		err = ns.nl.LinkSetUp(lo)
	}
	if err != nil {
		ns.Close()
		_ = Unpin(path)
		return nil, fmt.Errorf("namespace %s: lo up: %w", name, err)
	}
	return ns, nil
}

// Open opens the namespace pinned at path (or any nsfs file, such as
// /proc/PID/ns/net) with a netlink handle in it.
func Open(path string) (*NS, error) {
	h, err := vnetns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h), &st); err != nil {
		h.Close()
		return nil, fmt.Errorf("stat namespace %s: %w", path, err)
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink in namespace %s: %w", path, err)
	}
	return &NS{name: filepath.Base(path), path: path, h: h, nl: nl, inode: st.Ino}, nil
}

// Close closes the netlink handle and the descriptor. The namespace itself
// lives on while it is pinned or a process is in it. Safe to call twice.
func (n *NS) Close() error {
	if n.nl != nil {
		n.nl.Close()
		n.nl = nil
	}
	if n.h.IsOpen() {
		if err := n.h.Close(); err != nil {
			return fmt.Errorf("close namespace %s: %w", n.name, err)
		}
	}
	return nil
}

// Delete closes the namespace and removes its pin.
func (n *NS) Delete() error {
	return errors.Join(n.Close(), Unpin(n.path))
}

// Unpin unmounts and removes a namespace's pin; the kernel frees the
// namespace (and the links in it) once no process and no descriptor holds
// it any more. A pin that is already gone is not an error.
func Unpin(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// EnsureSharedDir makes dir a shared mount point, as iproute2 does, so a
// later unmount of a pin propagates into mount namespaces that copied it
// (every `ip netns exec` makes one), and the namespace really goes away.
func EnsureSharedDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		if err = unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
			err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	return nil
}

// PinnedInode is the inode of the namespace pinned at path, or 0 if path is
// not a live pin (an unmounted pin is an empty file of the underlying
// filesystem, not an nsfs inode).
func PinnedInode(path string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil || sfs.Type != unix.NSFS_MAGIC {
		return 0
	}
	return st.Ino
}

// ProcessInode is the inode of the network namespace a process's main
// thread is in, or 0 if it cannot be read.
func ProcessInode(pid int) uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &st); err != nil {
		return 0
	}
	return st.Ino
}

// Do runs fn on an OS thread switched into the namespace and returns its
// error. See the package documentation for what fn may do.
func (n *NS) Do(fn func() error) error { return do(n.h, n.name, fn) }

// DoPath runs fn inside the namespace pinned at path (or any nsfs file),
// for a one-off where no NS is held.
func DoPath(path string, fn func() error) error {
	h, err := vnetns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", path, err)
	}
	defer h.Close()
	return do(h, path, fn)
}

// do runs fn inside h on a locked thread of its own.
func do(h vnetns.NsHandle, what string, fn func() error) error {
	return onLockedThread("namespace "+what, func() error {
		if err := vnetns.Set(h); err != nil {
			return fmt.Errorf("enter namespace %s: %w", what, err)
		}
		return fn()
	})
}

// onLockedThread runs fn on a fresh goroutine locked to its OS thread and
// then puts the thread back in the namespace it started in (see leave).
// fn may move the thread into another namespace; what names that one for
// the error.
func onLockedThread(what string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread() // nothing moved yet
			errc <- fmt.Errorf("current namespace: %w", err)
			return
		}
		defer orig.Close()
		errc <- leave(orig, what, fn())
	}()
	return <-errc
}

// leave switches the locked calling thread back to orig and unlocks it; if
// that fails the thread stays locked, so it terminates with its goroutine.
// It returns ferr, joined with the failure to leave.
func leave(orig vnetns.NsHandle, what string, ferr error) error {
	if err := vnetns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("leave %s: %w (thread discarded)", what, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Retry calls f until it returns an error other than an interrupted dump
// or EINTR, five times at most, and returns its last result.
func Retry[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range 5 {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) && !errors.Is(err, unix.EINTR) {
			return v, err
		}
	}
	return v, err
}
