package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"lvslab/internal/testenv"
)

func TestSysctlPath(t *testing.T) {
	for _, c := range []struct{ key, path, err string }{
		{"net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward", ""},
		{"net/ipv4/conf/eth0.100/rp_filter", "/proc/sys/net/ipv4/conf/eth0.100/rp_filter", ""},
		{"/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_forward", ""},
		{"", "", `sysctl key "": empty, "." or ".." element`},
		{"net/../../etc/passwd", "", `sysctl key "net/../../etc/passwd": empty, "." or ".." element`},
		{"net..ipv4", "", `sysctl key "net..ipv4": empty, "." or ".." element`},
		{"net/ipv4/", "", `sysctl key "net/ipv4/": empty, "." or ".." element`},
	} {
		p, err := SysctlPath(c.key)
		if c.err != "" {
			assert.EqualError(t, err, c.err, c.key)
			continue
		}
		assert.NoError(t, err, c.key)
		assert.Equal(t, c.path, p, c.key)
	}
}

func TestRetry(t *testing.T) {
	for _, c := range []struct {
		name  string
		fails int
		err   error
		calls int
		want  error
	}{
		{"interrupted dump twice", 2, netlink.ErrDumpInterrupted, 3, nil},
		{"EINTR once", 1, unix.EINTR, 2, nil},
		{"always interrupted", 100, fmt.Errorf("link list: %w", netlink.ErrDumpInterrupted), 5, netlink.ErrDumpInterrupted},
		{"other error", 100, unix.ENODEV, 1, unix.ENODEV},
	} {
		calls := 0
		v, err := Retry(func() (int, error) {
			calls++
			if calls <= c.fails {
				return -1, c.err
			}
			return 7, nil
		})
		assert.Equal(t, c.calls, calls, c.name)
		if c.want == nil {
			assert.NoError(t, err, c.name)
			assert.Equal(t, 7, v, c.name)
		} else {
			assert.ErrorIs(t, err, c.want, c.name)
		}
	}
}

// A thread that cannot switch back is not returned to the scheduler: its
// goroutine ends locked and the runtime terminates the thread.
func TestLeaveFailureDiscardsThread(t *testing.T) {
	for range 20 {
		type result struct {
			tid int
			err error
		}
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			done <- result{unix.Gettid(), leave(vnetns.None(), "namespace x", errors.New("fn failed"))}
		}()
		r := <-done
		require.Error(t, r.err)
		assert.Contains(t, r.err.Error(), "fn failed")
		assert.Contains(t, r.err.Error(), "leave namespace x")
		assert.Contains(t, r.err.Error(), "(thread discarded)")
		if r.tid == os.Getpid() {
			// The main thread is parked rather than terminated; try
			// again on another.
			continue
		}
		task := "/proc/self/task/" + strconv.Itoa(r.tid)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(task); errors.Is(err, os.ErrNotExist) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("thread %d still exists after its goroutine ended locked", r.tid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Fatal("every attempt ran on the main thread")
}

// threadInodes is the set of network namespaces this process's threads are in.
func threadInodes(t *testing.T) map[uint64]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	require.NoError(t, err)
	out := map[uint64]int{}
	for _, task := range tasks {
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc/self/task", task.Name(), "ns/net"), &st) == nil {
			out[st.Ino]++
		}
	}
	return out
}

func selfInode(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat("/proc/thread-self/ns/net", &st))
	return st.Ino
}

func TestPinnedNamespace(t *testing.T) {
	testenv.Netns(t)
	// Named as internal/nstest names its namespaces (prefix and PID), so
	// its sweep removes them should this test die half way.
	dir, name := DefaultDir, fmt.Sprintf("lvst-%d-netns", os.Getpid())
	outside := selfInode(t)
	before, err := ReadSysctl("net.ipv4.ip_forward")
	require.NoError(t, err)

	ns, err := NewPinned(dir, name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Delete() })
	assert.Equal(t, name, ns.Name())
	assert.Equal(t, filepath.Join(dir, name), ns.Path())
	assert.NotZero(t, ns.Inode())
	assert.NotEqual(t, outside, ns.Inode(), "a new namespace")
	assert.Equal(t, ns.Inode(), PinnedInode(ns.Path()))
	assert.Equal(t, outside, selfInode(t), "the caller did not move")

	lo, err := ns.Netlink().LinkByName("lo")
	require.NoError(t, err)
	assert.NotZero(t, lo.Attrs().Flags&unix.IFF_UP, "lo is up")

	_, err = NewPinned(dir, name)
	assert.ErrorIs(t, err, os.ErrExist, "a pinned name is not reused")
	assert.Equal(t, ns.Inode(), PinnedInode(ns.Path()), "the failed create left the pin alone")

	t.Run("Do", func(t *testing.T) {
		var inside uint64
		require.NoError(t, ns.Do(func() error { inside = selfInode(t); return nil }))
		assert.Equal(t, ns.Inode(), inside)
		boom := errors.New("boom")
		assert.ErrorIs(t, ns.Do(func() error { return boom }), boom)
		for range 50 {
			require.NoError(t, ns.Do(func() error { return nil }))
		}
		assert.Equal(t, map[uint64]int{outside: threadInodes(t)[outside]}, threadInodes(t),
			"every thread returned to the scheduler is back in the caller's namespace")
		require.NoError(t, DoPath(ns.Path(), func() error { inside = selfInode(t); return nil }))
		assert.Equal(t, ns.Inode(), inside)
		assert.ErrorContains(t, DoPath(filepath.Join(dir, name+"-none"), func() error { return nil }), "open namespace")
	})

	t.Run("sysctl", func(t *testing.T) {
		v, err := ns.ReadSysctl("net.ipv4.ip_forward")
		require.NoError(t, err)
		assert.Equal(t, "0", v, "a new namespace does not forward")
		require.NoError(t, ns.WriteSysctl("net.ipv4.ip_forward", "1"))
		v, err = ns.ReadSysctl("net/ipv4/ip_forward")
		require.NoError(t, err)
		assert.Equal(t, "1", v)
		out, err := ReadSysctl("net.ipv4.ip_forward")
		require.NoError(t, err)
		assert.Equal(t, before, out, "the caller's namespace is untouched")

		err = ns.WriteSysctl("net.ipv4.conf.nosuchdev.rp_filter", "0")
		assert.ErrorIs(t, err, os.ErrNotExist)
		assert.EqualError(t, err, "sysctl net.ipv4.conf.nosuchdev.rp_filter=0: no such file or directory")
		_, err = ns.ReadSysctl("net.ipv4.nosuch")
		assert.EqualError(t, err, "read sysctl net.ipv4.nosuch: no such file or directory")
	})

	t.Run("open", func(t *testing.T) {
		o, err := Open(ns.Path())
		require.NoError(t, err)
		assert.Equal(t, ns.Inode(), o.Inode())
		require.NoError(t, o.Close())
		require.NoError(t, o.Close(), "twice")
		_, err = Open(filepath.Join(dir, name+"-none"))
		assert.ErrorContains(t, err, "open namespace "+filepath.Join(dir, name+"-none"))
	})

	require.NoError(t, ns.Delete())
	assert.Zero(t, PinnedInode(ns.Path()))
	_, err = os.Stat(ns.Path())
	assert.ErrorIs(t, err, os.ErrNotExist, "the pin is gone")
	assert.NoError(t, Unpin(ns.Path()), "unpinning what is gone is not an error")
}

func TestNewPinnedRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b"} {
		_, err := NewPinned(t.TempDir(), name)
		assert.EqualError(t, err, fmt.Sprintf("namespace name %q: want one path element", name))
	}
}
