package check

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// HTTPRequest is one keepalived HTTP_GET/SSL_GET request.
type HTTPRequest struct {
	Addr netip.AddrPort
	Path string
	// Virtualhost is the Host header's name; empty means the address.
	Virtualhost string
	// Protocol is "1.0" (keepalived's default), "1.0C" (1.0 with
	// Connection: close) or "1.1" (which also sends Connection: close).
	Protocol string
	TLS      bool
	// SNI sends Virtualhost as the TLS server name (enable_sni).
	SNI bool
	// BindTo is the local address to connect from (bindto), if valid.
	BindTo netip.Addr
	// Timeout bounds the whole request (connect_timeout); 0: 5 s.
	Timeout time.Duration
	// MaxBody bounds what is read; 0: 16 MiB.
	MaxBody int64
}

// HTTPResult is what came back.
type HTTPResult struct {
	Status int
	Header []byte // status line and headers, up to the blank line
	Body   []byte // after the first CRLFCRLF, at most Content-Length bytes
	// Digest is the MD5 of Body: keepalived hashes the bytes after the
	// headers as they arrived, chunk-size lines included when the server
	// chunks (it does not decode Transfer-Encoding).
	Digest [md5.Size]byte
}

// DigestHex is the digest as keepalived's digest keyword and genhash write it.
func (r HTTPResult) DigestHex() string { return fmt.Sprintf("%x", r.Digest[:]) }

// Request builds keepalived's request bytes (check_http.c request_template).
func (q HTTPRequest) Request() []byte {
	minor := 0
	conn := ""
	switch strings.ToUpper(q.Protocol) {
	case "1.1":
		minor, conn = 1, "Connection: close\r\n"
	case "1.0C":
		conn = "Connection: close\r\n"
	}
	// keepalived: a virtualhost is sent as written; otherwise the address
	// with its port, always (check_http.c http_request_thread).
	host, port := q.Virtualhost, ""
	if host == "" {
		host = q.Addr.Addr().String()
		if q.Addr.Addr().Is6() {
			host = "[" + host + "]"
		}
		port = ":" + strconv.Itoa(int(q.Addr.Port()))
	}
	path := q.Path
	if path == "" {
		path = "/"
	}
	return fmt.Appendf(nil, "GET %s HTTP/1.%d\r\nUser-Agent: KeepAliveClient\r\n%sHost: %s%s\r\n\r\n", path, minor, conn, host, port)
}

// Fetch sends the request and reads the response until the server closes
// the connection or Content-Length bytes of body have arrived.
func Fetch(ctx context.Context, q HTTPRequest) (HTTPResult, error) {
	var res HTTPResult
	timeout := q.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{}
	if q.BindTo.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: q.BindTo.AsSlice()}
	}
	c, err := d.DialContext(ctx, "tcp", q.Addr.String())
	if err != nil {
		return res, fmt.Errorf("connect to %s: %w", q.Addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if q.TLS {
		cfg := &tls.Config{InsecureSkipVerify: true} // keepalived does not verify the real server's certificate
		if q.SNI && q.Virtualhost != "" {
			cfg.ServerName = q.Virtualhost
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return res, fmt.Errorf("TLS handshake with %s: %w", q.Addr, err)
		}
		c = tc
	}
	if _, err := c.Write(q.Request()); err != nil {
		return res, fmt.Errorf("send request to %s: %w", q.Addr, err)
	}
	max := q.MaxBody
	if max <= 0 {
		max = 16 << 20
	}
	raw, err := io.ReadAll(io.LimitReader(c, max+64<<10))
	if err != nil && len(raw) == 0 {
		return res, fmt.Errorf("read from %s: %w", q.Addr, err)
	}
	return Parse(raw)
}

// Parse splits a raw response as keepalived does and computes the digest.
func Parse(raw []byte) (HTTPResult, error) {
	var res HTTPResult
	if len(raw) == 0 {
		return res, errors.New("no data received from remote webserver")
	}
	i := bytes.Index(raw, []byte("\r\n\r\n"))
	if i < 0 {
		res.Header = raw
		return res, errors.New("no end of the HTTP header in the response")
	}
	res.Header = raw[:i+2]
	res.Body = raw[i+4:]
	sc := bufio.NewScanner(bytes.NewReader(res.Header))
	first := true
	for sc.Scan() {
		ln := strings.TrimRight(sc.Text(), "\r")
		if first {
			first = false
			f := strings.Fields(ln)
			if len(f) >= 2 && strings.HasPrefix(f[0], "HTTP/") {
				res.Status, _ = strconv.Atoi(f[1])
			}
			continue
		}
		k, v, ok := strings.Cut(ln, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n >= 0 && n < int64(len(res.Body)) {
				res.Body = res.Body[:n]
			}
		}
	}
	res.Digest = md5.Sum(res.Body)
	return res, nil
}
