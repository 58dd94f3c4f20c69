package topo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Namespaces are pinned by a bind mount under /run/netns, as `ip netns add`
// does, so that a lab outlives the command that built it (lvslab up) and
// `ip netns exec lvsl-<lab>.<node>` works for people. Pinning means a crash
// leaves them behind; the registry (registry.go) and the lvsl- prefix let
// Clean find and remove them.

// DefaultNetnsDir is where iproute2 looks for named namespaces.
const DefaultNetnsDir = "/run/netns"

// netNS is one lab namespace held open by the builder.
type netNS struct {
	name   string // lvsl-<lab>.<name>
	path   string
	handle netns.NsHandle
	nl     *netlink.Handle
	inode  uint64
}

// ensureSharedDir makes dir a shared mount point, as iproute2 does, so a
// later unmount of a pin propagates into mount namespaces that copied it
// (every `ip netns exec` makes one), and the namespace really goes away.
func ensureSharedDir(dir string) error {
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

// createNamespace makes a new network namespace pinned at dir/name, with lo
// up, and returns it open. The calling thread is never switched: the work is
// done on a fresh locked goroutine that switches back and then exits still
// locked, so its thread is discarded rather than reused.
func createNamespace(dir, name string) (*netNS, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("pin file for namespace %s: %w", name, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
		merr := unix.Mount(src, path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("return to the original namespace: %w", err)
			return
		}
		if merr != nil {
			merr = fmt.Errorf("bind %s: %w", path, merr)
		}
		errc <- merr
	}()
	if err := <-errc; err != nil {
		_ = unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return nil, fmt.Errorf("create namespace %s: %w", name, err)
	}
	ns, err := openNamespace(path)
	if err != nil {
		_ = deletePin(path)
		return nil, err
	}
	lo, err := ns.nl.LinkByName("lo")
	if err == nil {
		err = ns.nl.LinkSetUp(lo)
	}
	if err != nil {
		ns.close()
		_ = deletePin(path)
		return nil, fmt.Errorf("namespace %s: lo up: %w", name, err)
	}
	return ns, nil
}

// openNamespace opens a pinned namespace with a netlink handle in it.
func openNamespace(path string) (*netNS, error) {
	h, err := netns.GetFromPath(path)
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
		return nil, fmt.Errorf("netlink in %s: %w", path, err)
	}
	return &netNS{name: filepath.Base(path), path: path, handle: h, nl: nl, inode: st.Ino}, nil
}

func (n *netNS) close() {
	if n.nl != nil {
		n.nl.Close()
		n.nl = nil
	}
	if n.handle.IsOpen() {
		n.handle.Close()
	}
}

// deletePin unmounts and removes a namespace's pin; the kernel frees the
// namespace (and the veths in it) once no process and no descriptor holds
// it any more.
func deletePin(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// do runs fn on an OS thread switched into the namespace: for what netlink
// handles cannot do (sysctls, ethtool ioctls, sockets opened inside). The
// goroutine exits still locked, so a thread that failed to switch back is
// thrown away instead of running other goroutines in the wrong namespace.
func (n *netNS) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(n.handle); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", n.name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", n.name, err))
			return
		}
		errc <- ferr
	}()
	return <-errc
}

// writeSysctl writes one sysctl in the calling thread's namespace; key is
// dotted (net.ipv4.ip_forward) or slashed (net/ipv4/conf/eth0.100/rp_filter).
func writeSysctl(key, value string) error {
	rel := key
	if !strings.Contains(key, "/") {
		rel = strings.ReplaceAll(key, ".", "/")
	}
	path := "/proc/sys/" + rel
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, unwrapPath(err))
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// nsInode is the inode of the network namespace a process's main thread is
// in (0 if it cannot be read).
func nsInode(pid int) uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &st); err != nil {
		return 0
	}
	return st.Ino
}

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
		if inodes[nsInode(pid)] && !zombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// pinInode is the namespace inode a pin refers to (0 if not a live pin).
func pinInode(path string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0
	}
	// An unmounted pin is an empty regular file on the underlying
	// filesystem, not an nsfs inode.
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil || sfs.Type != unix.NSFS_MAGIC {
		return 0
	}
	return st.Ino
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

// DoIn runs fn on a throw-away OS thread switched into the namespace pinned
// at path (a segment's hidden namespace, say), as Node.Do does for nodes.
func DoIn(path string, fn func() error) error {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", path, err)
	}
	defer h.Close()
	return (&netNS{name: path, handle: h}).do(fn)
}
