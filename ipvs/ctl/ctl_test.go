package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"lvslab/config"
	"lvslab/internal/testenv"
)

// socketName is unique per test and process: abstract names are shared by
// everything in the network namespace, other test runs included.
func socketName(t *testing.T) string {
	return fmt.Sprintf("lvslab-ctl-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"))
}

// recorder is a Handler that remembers what it was asked and by whom.
type recorder struct {
	mu    sync.Mutex
	reqs  []Request
	peers []Peer
	reply Reply
}

func (r *recorder) Handle(_ context.Context, p Peer, req Request) Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	r.peers = append(r.peers, p)
	return r.reply
}

// serve runs Serve on a fresh abstract socket until the test ends.
func serve(t *testing.T, h Handler) string {
	t.Helper()
	return serveWith(t, &Server{Handler: h})
}

// serveWith runs a Server on a fresh abstract socket until the test ends.
func serveWith(t *testing.T, srv *Server) string {
	t.Helper()
	name := socketName(t)
	ln, err := Listen(name)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return name
}

func statusFixture() Reply {
	vip := netip.MustParseAddr("207.175.44.110")
	return Reply{
		ConnTabSize: 4096,
		Services: []ServiceStatus{{
			Service: config.Service{Protocol: config.ProtoTCP, Addr: vip, Port: 80, Scheduler: "wlc",
				Persistent: true, PersistTimeout: 360 * time.Second, Netmask: netip.MustParseAddr("255.255.255.0")},
			Stats: Stats{Conns: 113786, InPkts: 19495479, InBytes: 2110000000},
			Rate:  Rate{CPS: 3, InPPS: 210, InBPS: 19312},
			Dests: []DestStatus{{
				Dest:        config.Dest{Addr: netip.MustParseAddr("192.168.10.1"), Port: 80, Forward: config.ForwardMasq, Weight: 1},
				ActiveConns: 12, InactConns: 3, PersistConns: 2,
				Stats: Stats{Conns: 12883, InPkts: 1679941, InBytes: 181747000},
			}},
		}},
		Conns: []ConnStatus{{Proto: "TCP", State: "ESTABLISHED", Expires: 899 * time.Second,
			Client:  netip.MustParseAddrPort("10.0.0.2:45678"),
			Virtual: netip.MustParseAddrPort("207.175.44.110:8080"),
			Dest:    netip.MustParseAddrPort("172.16.0.2:8080")}},
		Timeouts: config.DefaultTimeouts(),
		Daemons: []DaemonStatus{{State: "master", McastIfn: "eth0", MaxLen: 1472,
			Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1}},
	}
}

func TestServeDial(t *testing.T) {
	rec := &recorder{reply: statusFixture()}
	name := serve(t, rec)

	c, err := Dial(name)
	require.NoError(t, err)
	defer c.Close()

	list, err := config.Parser{}.ParseArgs([]string{"-L", "-n", "--stats"})
	require.NoError(t, err)
	reply, err := c.Do(Request{Command: list})
	require.NoError(t, err)
	assert.Equal(t, statusFixture(), reply, "every status field crosses the socket")

	// Several requests on one connection, answered in order.
	clear := config.Command{Op: config.OpClear}
	_, err = c.Do(Request{Command: clear})
	require.NoError(t, err)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.reqs, 2)
	assert.Equal(t, list, rec.reqs[0].Command)
	assert.Equal(t, clear, rec.reqs[1].Command)
	assert.Equal(t, uint32(os.Getuid()), rec.peers[0].UID, "SO_PEERCRED")
	assert.Equal(t, int32(os.Getpid()), rec.peers[0].PID)
}

func TestRemoteError(t *testing.T) {
	name := serve(t, HandlerFunc(func(context.Context, Peer, Request) Reply {
		return Reply{Error: config.ErrNoService.Error()}
	}))
	c, err := Dial(name)
	require.NoError(t, err)
	defer c.Close()
	reply, err := c.Do(Request{Command: config.Command{Op: config.OpList}})
	var re *RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "No such service", re.Msg)
	assert.Equal(t, "No such service", reply.Error)
}

func TestAuthorize(t *testing.T) {
	// Peers other than administrators reach authorize only with
	// AllowUnprivilegedList.
	root, user := Peer{UID: 0, Admin: true}, Peer{UID: 1000}
	for _, op := range []config.Op{config.OpList, config.OpSave} {
		assert.NoError(t, authorize(user, Request{Command: config.Command{Op: op}}), op)
	}
	for _, op := range []config.Op{config.OpAddService, config.OpEditService, config.OpDeleteService,
		config.OpClear, config.OpAddDest, config.OpEditDest, config.OpDeleteDest, config.OpZero, config.OpSetTimeouts} {
		assert.Equal(t, config.ErrPermission, authorize(user, Request{Command: config.Command{Op: op}}), op)
		assert.NoError(t, authorize(root, Request{Command: config.Command{Op: op}}), op)
		assert.NoError(t, authorize(Peer{UID: 1000, Admin: true}, Request{Command: config.Command{Op: op}}), "CAP_NET_ADMIN: %s", op)
	}
	assert.Equal(t, config.ErrPermission, authorize(user, Request{Command: config.Command{Op: config.OpRestore}}))
	assert.Error(t, authorize(root, Request{}))
}

// A real unprivileged peer: this test binary, re-run as nobody, connects to
// the socket. By default it is refused at once, as ipvsadm is without
// CAP_NET_ADMIN; with AllowUnprivilegedList it may list but not change
// anything; with CAP_NET_ADMIN it may do everything.
func TestNonRootPeer(t *testing.T) {
	if helperMain() {
		return
	}
	testenv.Root(t)
	for _, tc := range []struct {
		name      string
		allowList bool
		caps      []uintptr
		userns    bool
		want      []string
		reached   []config.Op
	}{
		{name: "default", want: []string{"flush: Permission denied (you must be root) (refused)\n",
			"list: ctl: connection closed after an earlier failure\n"}},
		{name: "list allowed", allowList: true, want: []string{"flush: Permission denied (you must be root)\n", "list: ok\n"},
			reached: []config.Op{config.OpList}},
		{name: "CAP_NET_ADMIN", caps: []uintptr{unix.CAP_NET_ADMIN}, want: []string{"flush: ok\n", "list: ok\n"},
			reached: []config.Op{config.OpClear, config.OpList}},
		// unshare -Ur: root with every capability, of its own user
		// namespace only.
		{name: "user namespace", userns: true, want: []string{"flush: Permission denied (you must be root) (refused)\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			name := serveWith(t, &Server{Handler: rec, AllowUnprivilegedList: tc.allowList})
			cmd := asUser(t, 65534, tc.caps, "ops", name)
			if tc.userns {
				// Root of a new user namespace whose root is nobody
				// outside, as "unshare -Ur" run by nobody makes.
				cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER,
					UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65534, Size: 1}},
					GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65534, Size: 1}},
					Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}}
			}
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			for _, w := range tc.want {
				assert.Contains(t, string(out), w)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			var ops []config.Op
			for i, r := range rec.reqs {
				ops = append(ops, r.Command.Op)
				assert.Equal(t, uint32(65534), rec.peers[i].UID)
				assert.Equal(t, tc.caps != nil, rec.peers[i].Admin)
			}
			assert.Equal(t, tc.reached, ops, "what reached the handler")
		})
	}
}

// helperMain runs this binary's helper role when asUser started it.
func helperMain() bool {
	role, name := os.Getenv("LVSLAB_CTL_HELPER"), os.Getenv("LVSLAB_CTL_SOCKET")
	switch {
	case role == "":
		return false
	case role == "ops":
		nonRootClient(name)
	case strings.HasPrefix(role, "hog:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(role, "hog:"))
		hog(name, n)
	}
	os.Exit(0)
	return true
}

// asUser returns a command running this test binary's helper role as uid,
// with the given ambient capabilities.
func asUser(t *testing.T, uid uint32, caps []uintptr, role, socket string) *exec.Cmd {
	t.Helper()
	// The binary must be reachable by uid; go test's build directory is
	// private.
	exe, err := os.Executable()
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "lvslab-ctl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "ctl.test")
	copyFile(t, exe, bin)
	cmd := exec.Command(bin, "-test.run=^TestNonRootPeer$")
	cmd.Env = append(os.Environ(), "LVSLAB_CTL_HELPER="+role, "LVSLAB_CTL_SOCKET="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}, AmbientCaps: caps}
	return cmd
}

func nonRootClient(name string) {
	c, err := Dial(name)
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	defer c.Close()
	for _, op := range []config.Op{config.OpClear, config.OpList} {
		_, err := c.Do(Request{Command: config.Command{Op: op}})
		var re *RemoteError
		switch {
		case errors.As(err, &re) && re.Refused:
			fmt.Printf("%s: %v (refused)\n", op, err)
		case err != nil:
			fmt.Printf("%s: %v\n", op, err)
		default:
			fmt.Printf("%s: ok\n", op)
		}
	}
}

// hog opens n connections, lists on each, prints how many lvsd admitted,
// and holds them all until stdin closes.
func hog(name string, n int) {
	var conns []*Client
	admitted, refused, failed := 0, 0, 0
	for range n {
		c, err := Dial(name)
		if err != nil {
			failed++
			continue
		}
		conns = append(conns, c)
		var re *RemoteError
		switch _, err := c.Do(Request{Command: config.Command{Op: config.OpList}}); {
		case err == nil:
			admitted++
		case errors.As(err, &re) && re.Refused:
			refused++
		default:
			failed++
		}
	}
	fmt.Printf("admitted %d refused %d failed %d\n", admitted, refused, failed)
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}

func TestBadRequests(t *testing.T) {
	rec := &recorder{}
	// An administrator's requests may be longer (a restore); use the
	// small limit here.
	name := serveWith(t, &Server{Handler: rec, MaxAdminRequest: maxRequest})
	raw := func(send string) string {
		t.Helper()
		c, err := net.Dial("unix", SocketAddr(name))
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
		_, err = io.WriteString(c, send)
		require.NoError(t, err)
		c.(*net.UnixConn).CloseWrite()
		b, err := io.ReadAll(c)
		require.NoError(t, err)
		return string(b)
	}
	assert.Contains(t, raw("not json\n"), `{"error":"bad request: `)
	assert.Equal(t, "{\"error\":\"request without a command\"}\n", raw("{}\n"))
	assert.Equal(t, "{\"error\":\"request longer than 65536 bytes\"}\n", raw(strings.Repeat(" ", maxRequest+10)+"\n"))
	// A hand-written request, as with socat.
	assert.Equal(t, "{}\n", raw(`{"command":{"op":"list","list":{"numeric":true}}}`+"\n"))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.reqs, 1)
	assert.True(t, rec.reqs[0].Command.List.Numeric)
}

func TestServeStops(t *testing.T) {
	name := socketName(t)
	ln, err := Listen(name)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, HandlerFunc(func(context.Context, Peer, Request) Reply { return Reply{} }))
	}()
	c, err := Dial(name)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Do(Request{Command: config.Command{Op: config.OpList}})
	require.NoError(t, err)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
	_, err = c.Do(Request{Command: config.Command{Op: config.OpList}})
	assert.Error(t, err, "the open connection was closed")
	_, err = Dial(name)
	assert.Error(t, err, "nobody listens any more")
}

func TestDialNoServer(t *testing.T) {
	_, err := Dial(socketName(t))
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "%v", err)
	assert.Contains(t, err.Error(), "@"+socketName(t))
}

func TestSocketAddr(t *testing.T) {
	assert.Equal(t, "@lvsd", SocketAddr(DefaultSocket))
	assert.Equal(t, "@lvsd", SocketAddr("@lvsd"))
	assert.Equal(t, "/run/lvsd.sock", SocketAddr("/run/lvsd.sock"))
	assert.Equal(t, "./x.sock", SocketAddr("./x.sock"))

	// Path sockets work too.
	p := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := Listen(p)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, HandlerFunc(func(context.Context, Peer, Request) Reply { return Reply{ConnTabSize: 7} }))
	}()
	c, err := Dial(p)
	require.NoError(t, err)
	r, err := c.Do(Request{Command: config.Command{Op: config.OpList}})
	require.NoError(t, err)
	assert.Equal(t, 7, r.ConnTabSize)
	c.Close()
	cancel()
	assert.NoError(t, <-done)
	_, err = os.Stat(p)
	assert.ErrorIs(t, err, os.ErrNotExist, "the socket file goes with the listener")
}
