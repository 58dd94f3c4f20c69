package ctl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"lvslab/config"
)

// maxRequest bounds one request line; a command is a few hundred bytes.
const maxRequest = 64 << 10

// Peer is who is on the other end of a connection (SO_PEERCRED).
type Peer struct {
	PID int32
	UID uint32
	GID uint32
}

// Handler executes requests. Handle is called from one goroutine per
// connection, so concurrently for different clients.
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

// Serve accepts connections on ln and answers their requests with h until
// ctx is done. It then closes ln and every open connection, waits for
// running handlers, and returns nil. Other accept failures end it with an
// error.
func Serve(ctx context.Context, ln *net.UnixListener, h Handler) error {
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(ctx, c, h)
		}()
	}
}

func serveConn(ctx context.Context, c *net.UnixConn, h Handler) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	enc := json.NewEncoder(c)
	peer, err := peerCred(c)
	if err != nil {
		_ = enc.Encode(Reply{Error: err.Error()})
		return
	}
	r := bufio.NewReaderSize(c, maxRequest)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Skip the rest of the line so the client reads the answer
			// instead of a reset.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return
			}
			if enc.Encode(Reply{Error: fmt.Sprintf("request longer than %d bytes", maxRequest)}) != nil {
				return
			}
			continue
		}
		switch {
		case errors.Is(err, io.EOF) && len(line) == 0:
			return
		case err != nil && !errors.Is(err, io.EOF):
			return
		}
		var req Request
		var reply Reply
		if err := json.Unmarshal(line, &req); err != nil {
			reply = Reply{Error: fmt.Sprintf("bad request: %v", err)}
		} else if err := authorize(peer, req); err != nil {
			reply = Reply{Error: err.Error()}
		} else {
			reply = h.Handle(ctx, peer, req)
		}
		if enc.Encode(reply) != nil {
			return
		}
	}
}

// authorize lets anyone read and only root change state.
func authorize(peer Peer, req Request) error {
	op := req.Command.Op
	if op == 0 {
		return errors.New("request without a command")
	}
	if op.Mutates() && peer.UID != 0 {
		return config.ErrPermission
	}
	return nil
}

func peerCred(c *net.UnixConn) (Peer, error) {
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
	return Peer{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}
