package traffic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"lvslab/sim/runner"
)

// Headers http-echo sets (sim/service).
const backendHeader = "X-Lvslab-Backend"

type httpGen struct {
	*base
	url    string
	client *http.Client
	tr     *http.Transport
}

func newHTTP(b *base) (*httpGen, error) {
	u, err := url.Parse(b.t.Target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("http target %q is not a URL like http://203.0.113.5/", b.t.Target)
	}
	if _, err := netip.ParseAddr(u.Hostname()); err != nil {
		return nil, fmt.Errorf("http target %q: the host must be an IP address (the lab has no DNS)", b.t.Target)
	}
	reuse := b.t.NewConnection != nil && !*b.t.NewConnection
	tr := &http.Transport{
		// No Proxy: the environment's proxy must never see lab traffic.
		DialContext:         b.dial,
		DisableKeepAlives:   !reuse,
		DisableCompression:  true,
		MaxIdleConnsPerHost: b.concurrency,
		IdleConnTimeout:     30 * time.Second,
	}
	if reuse {
		// A request that starts before the previous one's connection is
		// back in the idle pool (the transport returns it from another
		// goroutine, late on a loaded machine) waits for it rather than
		// dialling a second one.
		tr.MaxConnsPerHost = b.concurrency
	}
	return &httpGen{base: b, url: u.String(), tr: tr, client: &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

func (g *httpGen) run(ctx context.Context, stop <-chan struct{}) {
	defer g.tr.CloseIdleConnections()
	g.requests(ctx, stop, g.one)
}

func (g *httpGen) one(ctx context.Context, _ int) runner.Request {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	var (
		r         runner.Request
		mu        sync.Mutex
		connected bool
	)
	trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
		mu.Lock()
		defer mu.Unlock()
		connected = true
		r.Local, r.Remote = addrPort(ci.Conn.LocalAddr()), addrPort(ci.Conn.RemoteAddr())
	}}
	start := time.Now()
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, g.url, nil)
	if err != nil {
		return runner.Request{Err: "request: " + err.Error()}
	}
	req.Header.Set("User-Agent", "lvslab-traffic/"+g.t.Name)
	resp, err := g.client.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	r.Latency = time.Since(start)
	if resp != nil {
		r.Bytes = int64(len(body))
		r.Backend = backendOf(resp, body)
	}
	switch {
	case err != nil && !connected:
		r.Err = describe("connect", unwrapURL(err), g.timeout)
	case err != nil && resp == nil:
		r.Err = describe("response", unwrapURL(err), g.timeout)
	case err != nil:
		r.Err = describe("body", unwrapURL(err), g.timeout)
	case resp.StatusCode/100 != 2:
		r.Err = "HTTP " + resp.Status
	}
	return r
}

// backendOf is the identity of the server that answered: http-echo's
// header, else the first line of a short body (any server that answers
// with its name).
func backendOf(resp *http.Response, body []byte) string {
	if b := resp.Header.Get(backendHeader); b != "" {
		return b
	}
	if resp.StatusCode/100 != 2 || len(body) > 256 {
		return ""
	}
	line, _, _ := bytes.Cut(body, []byte("\n"))
	return strings.TrimSpace(string(line))
}

// unwrapURL drops net/http's `Get "http://...":` wrapper.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// tcp-connect: connect, then close.
type connectGen struct {
	*base
	target string
}

func newConnect(b *base) (*connectGen, error) {
	if _, err := netip.ParseAddrPort(b.t.Target); err != nil {
		return nil, fmt.Errorf("tcp-connect target %q must be addr:port", b.t.Target)
	}
	return &connectGen{base: b, target: b.t.Target}, nil
}

func (g *connectGen) run(ctx context.Context, stop <-chan struct{}) {
	g.requests(ctx, stop, g.one)
}

func (g *connectGen) one(ctx context.Context, _ int) runner.Request {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	start := time.Now()
	c, err := g.dial(ctx, "tcp", g.target)
	r := runner.Request{Latency: time.Since(start)}
	if err != nil {
		r.Err = describe("connect", err, g.timeout)
		return r
	}
	r.Local, r.Remote = addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
	c.Close()
	return r
}
