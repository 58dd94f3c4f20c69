package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// DefaultTimeout bounds one Do of a Client made by Dial: long enough for a
// big connection listing, short enough that a wedged lvsd does not hang a
// script forever.
const DefaultTimeout = time.Minute

// dialRetry bounds how long Dial retries a listen queue that is full (a
// flood of connections from another user): lvsd drains it quickly.
const dialRetry = 10 * time.Second

// errClosed is what Do returns once the connection was given up.
var errClosed = errors.New("ctl: connection closed after an earlier failure")

// Client is a connection to lvsd. It is not safe for concurrent use.
type Client struct {
	conn   *net.UnixConn
	enc    *json.Encoder
	dec    *json.Decoder
	closed bool
	// Timeout bounds each Do; zero means none.
	Timeout time.Duration
}

// Dial connects to the named control socket (see SocketAddr).
func Dial(name string) (*Client, error) {
	return DialContext(context.Background(), name)
}

// DialContext is Dial with a context for the connect. A full listen queue
// (EAGAIN) is retried until ctx is done, or for 10 s.
func DialContext(ctx context.Context, name string) (*Client, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dialRetry)
		defer cancel()
	}
	var d net.Dialer
	addr := SocketAddr(name)
	wait := time.Millisecond
	for {
		c, err := d.DialContext(ctx, "unix", addr)
		if err == nil {
			uc := c.(*net.UnixConn)
			return &Client{conn: uc, enc: json.NewEncoder(uc), dec: json.NewDecoder(uc), Timeout: DefaultTimeout}, nil
		}
		if !errors.Is(err, syscall.EAGAIN) {
			return nil, fmt.Errorf("ctl: connect to %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ctl: connect to %s: %w", addr, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// Do sends one request and waits for its reply. A reply carrying an error
// is returned together with a *RemoteError holding it.
//
// When Do fails for any other reason (its Timeout expired, the connection
// broke) it closes the connection: closing is how a client cancels, and
// lvsd never applies a command whose client has gone. Later calls fail.
func (c *Client) Do(req Request) (Reply, error) {
	if c.closed {
		return Reply{}, errClosed
	}
	if c.Timeout > 0 {
		if err := c.conn.SetDeadline(time.Now().Add(c.Timeout)); err != nil {
			c.giveUp()
			return Reply{}, fmt.Errorf("ctl: %w", err)
		}
	}
	var reply Reply
	if err := c.enc.Encode(req); err != nil {
		// lvsd may have refused the connection and closed it before
		// reading anything: its reply says why.
		if c.dec.Decode(&reply) == nil && reply.Error != "" {
			c.giveUp()
			return reply, remoteError(reply)
		}
		c.giveUp()
		return Reply{}, fmt.Errorf("ctl: send %s: %w", req.Command.Op, err)
	}
	if err := c.dec.Decode(&reply); err != nil {
		c.giveUp()
		return Reply{}, fmt.Errorf("ctl: reply to %s: %w", req.Command.Op, err)
	}
	if reply.Refused {
		c.giveUp()
	}
	if reply.Error != "" {
		return reply, remoteError(reply)
	}
	return reply, nil
}

func remoteError(r Reply) error { return &RemoteError{Msg: r.Error, Refused: r.Refused} }

func (c *Client) giveUp() {
	c.closed = true
	c.conn.Close()
}

// Close closes the connection.
func (c *Client) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.conn.Close()
}
