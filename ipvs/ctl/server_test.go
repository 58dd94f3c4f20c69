package ctl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"golang.org/x/sys/unix"

	"lvslab/config"
	"lvslab/internal/testenv"
)

// Local users hold as many connections as they like; only their budget is
// admitted, the rest are refused at once, and root is served all along.
func TestConnectionLimits(t *testing.T) {
	testenv.Root(t)
	rec := &recorder{}
	// IdleTimeout long enough that the admitted connections stay while
	// root is checked, however slow the machine.
	name := serveWith(t, &Server{Handler: rec, AllowUnprivilegedList: true,
		MaxPerUID: 4, MaxUnprivileged: 6, IdleTimeout: time.Minute})

	type hogProc struct {
		stdin io.WriteCloser
		line  string
		wait  func() error
	}
	start := func(uid uint32, n int) hogProc {
		t.Helper()
		cmd := asUser(t, uid, nil, fmt.Sprintf("hog:%d", n), name)
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err)
		return hogProc{stdin: stdin, line: line, wait: cmd.Wait}
	}
	a := start(65534, 300)
	assert.Equal(t, "admitted 4 refused 296 failed 0\n", a.line, "uid 65534: its own cap")
	b := start(65533, 300)
	assert.Equal(t, "admitted 2 refused 298 failed 0\n", b.line, "uid 65533: what is left of the total")

	// Root is served while they hold theirs, and may change state.
	c, err := Dial(name)
	require.NoError(t, err)
	_, err = c.Do(Request{Command: config.Command{Op: config.OpList}})
	require.NoError(t, err)
	_, err = c.Do(Request{Command: config.Command{Op: config.OpClear}})
	require.NoError(t, err)
	c.Close()

	// Places are given back when the connections close.
	a.stdin.Close()
	b.stdin.Close()
	require.NoError(t, a.wait())
	require.NoError(t, b.wait())
	deadline := time.Now().Add(10 * time.Second)
	for {
		again := start(65534, 10)
		again.stdin.Close()
		require.NoError(t, again.wait())
		if again.line == "admitted 4 refused 6 failed 0\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("places not given back: %q", again.line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAdminBudget(t *testing.T) {
	name := serveWith(t, &Server{Handler: &recorder{}, MaxAdmin: 2})
	var held []*Client
	for range 2 {
		c, err := Dial(name)
		require.NoError(t, err)
		_, err = c.Do(Request{Command: config.Command{Op: config.OpList}})
		require.NoError(t, err)
		held = append(held, c)
	}
	c, err := Dial(name)
	require.NoError(t, err)
	_, err = c.Do(Request{Command: config.Command{Op: config.OpList}})
	var re *RemoteError
	require.ErrorAs(t, err, &re)
	assert.True(t, re.Refused)
	assert.Equal(t, "too many connections to lvsd from administrators (limit 2)", re.Msg)
	for _, h := range held {
		h.Close()
	}
}

// An idle peer, and one that never finishes its request, are disconnected.
func TestIdleAndSlowPeers(t *testing.T) {
	name := serveWith(t, &Server{Handler: &recorder{}, IdleTimeout: 50 * time.Millisecond})
	for _, send := range []string{"", `{"command":`} {
		c, err := net.Dial("unix", SocketAddr(name))
		require.NoError(t, err)
		_, err = io.WriteString(c, send)
		require.NoError(t, err)
		// The test's own bound, far above the server's timeout: the event
		// judged is the server closing the connection.
		require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
		b, err := io.ReadAll(c)
		assert.NoError(t, err, "closed by lvsd, not by the test's deadline (sent %q)", send)
		assert.Empty(t, b)
		c.Close()
	}
}

// gate is a Handler whose mutating requests wait, like a busy engine, for
// the test to let them through; it records which were applied.
type gate struct {
	mu        sync.Mutex // held by the test: the engine is busy
	entered   chan struct{}
	cancelled chan struct{}
	applied   chan config.Op
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 1), cancelled: make(chan struct{}, 1), applied: make(chan config.Op, 4)}
}

func (g *gate) Handle(ctx context.Context, _ Peer, req Request) Reply {
	if !req.Command.Op.Mutates() {
		return Reply{}
	}
	context.AfterFunc(ctx, func() { g.cancelled <- struct{}{} })
	g.entered <- struct{}{}
	g.mu.Lock()
	defer g.mu.Unlock()
	if ctx.Err() != nil {
		return Reply{Error: "not applied: " + context.Cause(ctx).Error()}
	}
	g.applied <- req.Command.Op
	return Reply{}
}

// A client that gives up (closes its connection, as lvsadm's timeout does)
// while its command waits for the engine: the command is not applied
// afterwards.
func TestClientGoneNotApplied(t *testing.T) {
	g := newGate()
	name := serve(t, g)
	g.mu.Lock()
	c, err := net.Dial("unix", SocketAddr(name))
	require.NoError(t, err)
	_, err = io.WriteString(c, `{"command":{"op":"add-service"}}`+"\n")
	require.NoError(t, err)
	<-g.entered // waiting for the engine
	require.NoError(t, c.Close())
	<-g.cancelled // the hang-up reached the handler's context
	g.mu.Unlock()

	// A later command on a live connection is applied: the gate was free.
	c2, err := Dial(name)
	require.NoError(t, err)
	defer c2.Close()
	_, err = c2.Do(Request{Command: config.Command{Op: config.OpClear}})
	require.NoError(t, err)
	assert.Equal(t, config.OpClear, <-g.applied, "only the live client's command was applied")
}

// The client's timeout gives the connection up: that is how it cancels.
func TestClientTimeoutCloses(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	name := serve(t, HandlerFunc(func(ctx context.Context, _ Peer, _ Request) Reply {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return Reply{}
	}))
	c, err := Dial(name)
	require.NoError(t, err)
	c.Timeout = 50 * time.Millisecond
	_, err = c.Do(Request{Command: config.Command{Op: config.OpAddService}})
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "%v", err)
	_, err = c.Do(Request{Command: config.Command{Op: config.OpList}})
	assert.ErrorIs(t, err, errClosed)
	assert.NoError(t, c.Close())
}

// hungUp tells a closed peer from one that only stopped sending.
func TestHungUp(t *testing.T) {
	pair := func() (a, b int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		require.NoError(t, err)
		return fds[0], fds[1]
	}
	a, b := pair()
	_, err := unix.Write(b, []byte("request\n"))
	require.NoError(t, err)
	assert.False(t, hungUp(uintptr(a)), "connected, request pending")
	require.NoError(t, unix.Shutdown(b, unix.SHUT_WR))
	assert.False(t, hungUp(uintptr(a)), "half-closed: it still reads the reply")
	unix.Close(a)
	unix.Close(b)
	a, b = pair()
	defer unix.Close(a)
	_, err = unix.Write(b, []byte("request\n"))
	require.NoError(t, err)
	require.NoError(t, unix.Close(b))
	assert.True(t, hungUp(uintptr(a)), "closed with its request unread")
}

// A client that only shuts down its sending side (socat at the end of its
// input) still reads the reply: its command is applied.
func TestHalfCloseApplied(t *testing.T) {
	g := newGate()
	name := serve(t, g)
	c, err := net.Dial("unix", SocketAddr(name))
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, `{"command":{"op":"flush"}}`+"\n")
	require.NoError(t, err)
	require.NoError(t, c.(*net.UnixConn).CloseWrite())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	b, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "{}\n", string(b))
	assert.Equal(t, config.OpClear, <-g.applied)
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tlvsadm\nUid:\t1000\t65534\t1000\t65534\nCapInh:\t0000000000000000\nCapPrm:\t0000000000001000\nCapEff:\t0000000000001000\n"
	st, ok := parseStatus([]byte(status))
	require.True(t, ok)
	assert.Equal(t, procStatus{euid: 65534, capEff: 1 << 12}, st, "the effective uid, as SO_PEERCRED")
	for _, bad := range []string{"Name:\tx\n", "Uid:\t1\t2\t3\t4\n", "CapEff:\t0\n", "Uid:\t1\nCapEff:\t0\n", "Uid:\t1\t2\nCapEff:\tzz\n"} {
		_, ok = parseStatus([]byte(bad))
		assert.False(t, ok, "%q", bad)
	}
	assert.False(t, hasNetAdmin(0, 0), "a peer in another PID namespace")
	assert.True(t, hasNetAdmin(int32(os.Getpid()), uint32(os.Geteuid())) == (os.Geteuid() == 0), "this process")
	assert.False(t, hasNetAdmin(int32(os.Getpid()), 12345), "a pid that now names another uid's process")
}

func TestLongAdminRequest(t *testing.T) {
	rec := &recorder{}
	name := serve(t, rec)
	c, err := Dial(name)
	require.NoError(t, err)
	defer c.Close()
	// A restore far beyond the 64 KiB of an ordinary request.
	rules := make([]config.Rule, 5000)
	for i := range rules {
		rules[i] = config.Rule{File: "<stdin>", Line: i + 1, Command: config.Command{Op: config.OpZero}}
	}
	_, err = c.Do(Request{Command: config.Command{Op: config.OpRestore}, Rules: rules})
	require.NoError(t, err)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.reqs, 1)
	assert.Len(t, rec.reqs[0].Rules, 5000)
	assert.Equal(t, 5000, rec.reqs[0].Rules[4999].Line)
}
