package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"lvslab/config"
)

// maxRequest bounds one request line of a peer that is not an
// administrator; a command is a few hundred bytes.
const maxRequest = 64 << 10

// The defaults of Server's limits.
const (
	// DefaultMaxPerUID caps the connections of one uid that is not an
	// administrator.
	DefaultMaxPerUID = 16
	// DefaultMaxUnprivileged caps the connections of all such peers.
	DefaultMaxUnprivileged = 128
	// DefaultMaxAdmin is the administrators' own budget (root or
	// CAP_NET_ADMIN): generous, and out of reach of everyone else, but
	// bounded so that even a runaway script cannot take the descriptors the
	// director needs.
	DefaultMaxAdmin = 256
	// DefaultIdleTimeout is how long a request may take to arrive,
	// complete, after the connection opened or the previous reply went.
	DefaultIdleTimeout = 5 * time.Second
	// DefaultWriteTimeout is how long a peer may take to read a reply.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxAdminRequest bounds an administrator's request line: a
	// restore carries a whole rules file (a rule is about 150 bytes of
	// JSON, so this is some 400,000 lines).
	DefaultMaxAdminRequest = 64 << 20
)

// refuseTimeout bounds the write of a refusal, done on the accept path.
const refuseTimeout = 100 * time.Millisecond

// ErrClientGone is the cause of a request context's cancellation when the
// client closed its connection before the reply: the command must not be
// applied.
var ErrClientGone = errors.New("the client closed the connection before the command was applied")

// Peer is who is on the other end of a connection (SO_PEERCRED).
type Peer struct {
	PID int32
	UID uint32
	GID uint32
	// Admin is set for root and for processes with CAP_NET_ADMIN in
	// their effective set: the peers ipvsadm would serve.
	Admin bool
}

// Handler executes requests. Handle is called from one goroutine per
// connection, so concurrently for different clients. For commands that
// change state, ctx is cancelled (with cause ErrClientGone) when the client
// disconnects: Handle must check it before it changes anything.
type Handler interface {
	Handle(ctx context.Context, peer Peer, req Request) Reply
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, peer Peer, req Request) Reply

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, peer Peer, req Request) Reply {
	return f(ctx, peer, req)
}

// Listen listens on the named control socket (see SocketAddr). A path-name
// socket is removed when the listener closes; a stale file in its place is
// an error, left for the caller to judge.
func Listen(name string) (*net.UnixListener, error) {
	addr := &net.UnixAddr{Name: SocketAddr(name), Net: "unix"}
	ln, err := net.ListenUnix("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("ctl: listen on %s: %w", addr.Name, err)
	}
	return ln, nil
}

// Serve is (&Server{Handler: h}).Serve(ctx, ln): administrators only, the
// default limits.
func Serve(ctx context.Context, ln *net.UnixListener, h Handler) error {
	return (&Server{Handler: h}).Serve(ctx, ln)
}

// Server answers requests on a control socket. The zero values of its
// limits are the defaults above. Set the fields before Serve.
type Server struct {
	Handler Handler
	// AllowUnprivilegedList lets peers that are not administrators
	// connect to list and save. Off, they are refused at once, as
	// ipvsadm is without CAP_NET_ADMIN.
	AllowUnprivilegedList bool
	MaxPerUID             int
	MaxUnprivileged       int
	MaxAdmin              int
	IdleTimeout           time.Duration
	WriteTimeout          time.Duration
	MaxAdminRequest       int
	// Logger receives refusals and commands not applied; nil discards.
	Logger *slog.Logger

	mu       sync.Mutex
	admins   int
	others   int
	perUID   map[uint32]int
	lastWarn time.Time
}

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Serve accepts connections on ln and answers their requests until ctx is
// done. It then closes ln and every open connection, waits for running
// handlers, and returns nil. Other accept failures end it with an error.
func (s *Server) Serve(ctx context.Context, ln *net.UnixListener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var errno unix.Errno
			if errors.As(err, &errno) && (errno == unix.EMFILE || errno == unix.ENFILE ||
				errno == unix.ENOBUFS || errno == unix.ENOMEM || errno == unix.ECONNABORTED) {
				// Out of descriptors or memory for a moment: wait, as
				// net/http does, rather than give up the socket.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			return fmt.Errorf("ctl: accept: %w", err)
		}
		backoff = 0
		// Admission is decided here, on the accept path, so that a
		// refused connection costs no goroutine and no buffer.
		peer, err := peerOf(c)
		if err != nil {
			s.refuse(c, peer, err.Error())
			continue
		}
		release, why := s.admit(peer)
		if why != "" {
			s.refuse(c, peer, why)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release()
			s.serveConn(ctx, c, peer)
		}()
	}
}

// admit counts a new connection against its peer's budget. It returns the
// function that gives the place back, or why the connection is refused.
func (s *Server) admit(p Peer) (release func(), why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Admin {
		if max := orDefault(s.MaxAdmin, DefaultMaxAdmin); s.admins >= max {
			return nil, fmt.Sprintf("too many connections to lvsd from administrators (limit %d)", max)
		}
		s.admins++
		return func() {
			s.mu.Lock()
			s.admins--
			s.mu.Unlock()
		}, ""
	}
	if !s.AllowUnprivilegedList {
		return nil, config.ErrPermission.Error()
	}
	if max := orDefault(s.MaxPerUID, DefaultMaxPerUID); s.perUID[p.UID] >= max {
		return nil, fmt.Sprintf("too many connections to lvsd from uid %d (limit %d)", p.UID, max)
	}
	if max := orDefault(s.MaxUnprivileged, DefaultMaxUnprivileged); s.others >= max {
		return nil, fmt.Sprintf("too many connections to lvsd from users other than root (limit %d)", max)
	}
	if s.perUID == nil {
		s.perUID = map[uint32]int{}
	}
	s.perUID[p.UID]++
	s.others++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.others--
		if s.perUID[p.UID]--; s.perUID[p.UID] <= 0 {
			delete(s.perUID, p.UID)
		}
	}, ""
}

// refuse answers a connection it will not serve with one refusing reply
// (without reading its request) and closes it. A fresh socket's send
// buffer is empty, so the short write does not wait.
func (s *Server) refuse(c *net.UnixConn, p Peer, why string) {
	_ = c.SetWriteDeadline(time.Now().Add(refuseTimeout))
	_ = json.NewEncoder(c).Encode(Reply{Error: why, Refused: true})
	c.Close()
	// A flood of refusals must not flood the log too.
	s.mu.Lock()
	now := time.Now()
	warn := now.Sub(s.lastWarn) >= 10*time.Second
	if warn {
		s.lastWarn = now
	}
	s.mu.Unlock()
	if warn && s.Logger != nil {
		s.Logger.Warn("control socket: connection refused (further refusals are not logged for 10 s)",
			"uid", p.UID, "pid", p.PID, "reason", why)
	}
}

func (s *Server) serveConn(ctx context.Context, c *net.UnixConn, peer Peer) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	enc := json.NewEncoder(c)
	limit := maxRequest
	if peer.Admin {
		limit = orDefault(s.MaxAdminRequest, DefaultMaxAdminRequest)
	}
	idle := orDefault(s.IdleTimeout, DefaultIdleTimeout)
	write := orDefault(s.WriteTimeout, DefaultWriteTimeout)
	r := bufio.NewReaderSize(c, 16<<10)
	var buf []byte
	for {
		// The whole request must be in by the deadline: an idle peer and
		// one that trickles a byte at a time are both cut off.
		if c.SetReadDeadline(time.Now().Add(idle)) != nil {
			return
		}
		line, tooLong, err := readLine(r, limit, &buf)
		if tooLong {
			if err != nil && !errors.Is(err, io.EOF) {
				return
			}
			if c.SetWriteDeadline(time.Now().Add(write)) != nil ||
				enc.Encode(Reply{Error: fmt.Sprintf("request longer than %d bytes", limit)}) != nil {
				return
			}
			continue
		}
		switch {
		case errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) == 0:
			return
		case err != nil && !errors.Is(err, io.EOF):
			return // a timeout, or the peer reset
		}
		var req Request
		var reply Reply
		if err := json.Unmarshal(line, &req); err != nil {
			reply = Reply{Error: fmt.Sprintf("bad request: %v", err)}
		} else if err := authorize(peer, req); err != nil {
			reply = Reply{Error: err.Error()}
		} else {
			reply = s.handle(ctx, c, peer, req)
		}
		if c.SetWriteDeadline(time.Now().Add(write)) != nil || enc.Encode(reply) != nil {
			return
		}
	}
}

// readLine reads one line of at most limit bytes (newline included) into
// *buf, or reports it too long after skipping the rest of it, so the client
// reads an answer instead of a reset.
func readLine(r *bufio.Reader, limit int, buf *[]byte) (line []byte, tooLong bool, err error) {
	*buf = (*buf)[:0]
	for {
		frag, err := r.ReadSlice('\n')
		if len(*buf)+len(frag) > limit {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			return nil, true, err
		}
		if !errors.Is(err, bufio.ErrBufferFull) && len(*buf) == 0 {
			return frag, false, err // the usual short line: no copy
		}
		*buf = append(*buf, frag...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return *buf, false, err
		}
	}
}

// handle runs one authorized request. A command that changes state runs
// under a context cancelled when the client hangs up, and not at all if it
// already has: a client that gave up (lvsadm's timeout closes its
// connection) must not see its command applied later.
func (s *Server) handle(ctx context.Context, c *net.UnixConn, peer Peer, req Request) Reply {
	if !req.Command.Op.Mutates() {
		return s.Handler.Handle(ctx, peer, req)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return Reply{Error: fmt.Sprintf("ctl: %v", err)}
	}
	gone := false
	_ = raw.Control(func(fd uintptr) { gone = hungUp(fd) })
	if gone {
		s.notApplied(peer, req)
		return Reply{Error: "not applied: " + ErrClientGone.Error()}
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Watch for the hang-up while the handler runs (it may wait for the
	// engine). The read side is idle until the reply is written, so the
	// watcher may hold it; a past read deadline ends the watch.
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		_ = raw.Read(func(fd uintptr) bool {
			if hungUp(fd) {
				cancel(ErrClientGone)
				return true
			}
			return false // wait for the next readiness edge
		})
	}()
	reply := s.Handler.Handle(rctx, peer, req)
	_ = c.SetReadDeadline(time.Now())
	<-watching
	if errors.Is(context.Cause(rctx), ErrClientGone) {
		s.notApplied(peer, req)
	}
	return reply
}

func (s *Server) notApplied(peer Peer, req Request) {
	if s.Logger != nil {
		s.Logger.Warn("control socket: command not applied, its client has gone",
			"op", req.Command.Op.String(), "uid", peer.UID, "pid", peer.PID)
	}
}

// hungUp reports whether the peer has closed its end (both directions: a
// client that only shut down writing still reads the reply). A zero-timeout
// poll; POLLHUP is only set once the peer has closed.
func hungUp(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
}

// authorize lets administrators do anything and others (if admitted at
// all) only read.
func authorize(peer Peer, req Request) error {
	op := req.Command.Op
	if op == 0 {
		return errors.New("request without a command")
	}
	if op.Mutates() && !peer.Admin {
		return config.ErrPermission
	}
	return nil
}

// peerOf reads the peer's credentials and whether it is an administrator.
func peerOf(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("ctl: peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, fmt.Errorf("ctl: peer credentials: %w", err)
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("ctl: peer credentials: %w", cerr)
	}
	p := Peer{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}
	p.Admin = p.UID == 0 || hasNetAdmin(p.PID, p.UID)
	return p, nil
}

// hasNetAdmin reports whether process pid, whose effective uid was uid
// when it connected, has CAP_NET_ADMIN in its effective set, in lvsd's own
// user namespace. A process that is gone, hidden in another PID namespace
// (pid 0), or whose pid now names a process of another uid, has not; nor
// has one in another user namespace: "unshare -Ur" gives anyone a full
// CapEff that the kernel would not honour for lvsd's network namespace.
func hasNetAdmin(pid int32, uid uint32) bool {
	if pid <= 0 {
		return false
	}
	proc := "/proc/" + strconv.Itoa(int(pid))
	var self, peer unix.Stat_t
	if unix.Stat("/proc/self/ns/user", &self) != nil || unix.Stat(proc+"/ns/user", &peer) != nil ||
		self.Dev != peer.Dev || self.Ino != peer.Ino {
		return false
	}
	b, err := os.ReadFile(proc + "/status")
	if err != nil {
		return false
	}
	st, ok := parseStatus(b)
	return ok && st.euid == uid && st.capEff&(1<<unix.CAP_NET_ADMIN) != 0
}

type procStatus struct {
	euid   uint32
	capEff uint64
}

// parseStatus reads the Uid (real, effective, ...) and CapEff lines of
// /proc/PID/status.
func parseStatus(status []byte) (procStatus, bool) {
	var st procStatus
	var haveUID, haveCaps bool
	for line := range bytes.Lines(status) {
		if v, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
			f := bytes.Fields(v)
			if len(f) < 2 {
				return st, false
			}
			u, err := strconv.ParseUint(string(f[1]), 10, 32)
			if err != nil {
				return st, false
			}
			st.euid, haveUID = uint32(u), true
		}
		if v, ok := bytes.CutPrefix(line, []byte("CapEff:")); ok {
			caps, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
			if err != nil {
				return st, false
			}
			st.capEff, haveCaps = caps, true
		}
	}
	return st, haveUID && haveCaps
}
