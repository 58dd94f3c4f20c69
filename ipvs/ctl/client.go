package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// DefaultTimeout bounds one Do of a Client made by Dial: long enough for a
// big connection listing, short enough that a wedged lvsd does not hang a
// script forever.
const DefaultTimeout = time.Minute

// Client is a connection to lvsd. It is not safe for concurrent use.
type Client struct {
	conn *net.UnixConn
	enc  *json.Encoder
	dec  *json.Decoder
	// Timeout bounds each Do; zero means none.
	Timeout time.Duration
}

// Dial connects to the named control socket (see SocketAddr).
func Dial(name string) (*Client, error) {
	return DialContext(context.Background(), name)
}

// DialContext is Dial with a context for the connect.
func DialContext(ctx context.Context, name string) (*Client, error) {
	var d net.Dialer
	addr := SocketAddr(name)
	c, err := d.DialContext(ctx, "unix", addr)
	if err != nil {
		return nil, fmt.Errorf("ctl: connect to %s: %w", addr, err)
	}
	uc := c.(*net.UnixConn)
	return &Client{conn: uc, enc: json.NewEncoder(uc), dec: json.NewDecoder(uc), Timeout: DefaultTimeout}, nil
}

// Do sends one request and waits for its reply. A reply carrying an error
// is returned together with a *RemoteError holding it.
func (c *Client) Do(req Request) (Reply, error) {
	if c.Timeout > 0 {
		if err := c.conn.SetDeadline(time.Now().Add(c.Timeout)); err != nil {
			return Reply{}, fmt.Errorf("ctl: %w", err)
		}
	}
	if err := c.enc.Encode(req); err != nil {
		return Reply{}, fmt.Errorf("ctl: send %s: %w", req.Command.Op, err)
	}
	var reply Reply
	if err := c.dec.Decode(&reply); err != nil {
		return Reply{}, fmt.Errorf("ctl: reply to %s: %w", req.Command.Op, err)
	}
	if reply.Error != "" {
		return reply, &RemoteError{Msg: reply.Error}
	}
	return reply, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }
