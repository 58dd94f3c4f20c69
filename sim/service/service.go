// Package service holds the lab's built-in servers, run inside nodes as
// `lvslab service KIND --listen ADDR --identity NAME`:
//
//   - http-echo answers every request with its identity (the body is the
//     identity and a newline; headers X-Lvslab-Backend and X-Lvslab-Peer
//     say who answered and which client address it saw), so traffic
//     generators learn which real server served each request; with TOA
//     set it reads the TOA option of FULLNAT connections (rs/toa) and
//     says in X-Lvslab-Toa-Client which client the director saw;
//   - tcp-sink greets each connection with "lvslab tcp-sink NAME" and a
//     newline as soon as it accepts it (so a long-lived stream learns which
//     real server it reached long before its end), reads the connection to
//     its end, then answers "bytes=N sha256=HEX" and logs the same as a JSON
//     line, so a sender can check the payload arrived intact (as the
//     kernel's IPVS selftest does with cmp);
//   - udp-echo answers each datagram with its identity, a newline and the
//     datagram;
//   - https-echo is http-echo over TLS with a self-signed certificate made
//     at start (keepalived's SSL_GET does not verify);
//   - smtp-banner greets with "220 IDENTITY ESMTP lvslab", answers
//     HELO/EHLO with 250 and QUIT with 221 (keepalived's SMTP_CHECK);
//   - vsftpd and dnsmasq run the real daemons (external.go).
//
// http-echo, https-echo and smtp-banner read their controls (controls.go:
// status, delay, body) from a control file on every answer, so a fault can
// make a real server slow or failing while it keeps running.
//
// Each prints one line "lvslab service KIND listening on ADDR as NAME" once
// it listens; the runner waits for it (or for the port).
package service

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"lvslab/rs/toa"
)

// Kinds lists the built-in services.
func Kinds() []string {
	return []string{"http-echo", "https-echo", "smtp-banner", "tcp-sink", "udp-echo", "vsftpd", "dnsmasq"}
}

// Config is one service instance.
type Config struct {
	Kind     string
	Listen   string // host:port, host optional
	Identity string
	// Control is the control file (controls.go); "" answers with the
	// defaults.
	Control string
	// Out receives the ready line and per-connection records.
	Out io.Writer
	// TOA makes http-echo read the TOA option of its connections (a
	// FULLNAT director's client address) and report it.
	TOA bool
}

// Run serves until ctx ends.
func Run(ctx context.Context, c Config) error {
	if c.Identity == "" {
		return errors.New("service needs an identity")
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	out := &lockedWriter{w: c.Out}
	switch c.Kind {
	case "http-echo":
		return httpEcho(ctx, c, out, false)
	case "https-echo":
		return httpEcho(ctx, c, out, true)
	case "smtp-banner":
		return smtpBanner(ctx, c, out)
	case "tcp-sink":
		return tcpSink(ctx, c, out)
	case "udp-echo":
		return udpEcho(ctx, c, out)
	case "vsftpd":
		return vsftpd(ctx, c, out)
	case "dnsmasq":
		return dnsmasq(ctx, c, out)
	}
	return fmt.Errorf("unknown service %q (one of %s)", c.Kind, strings.Join(Kinds(), ", "))
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

func ready(out *lockedWriter, c Config, addr net.Addr) {
	out.printf("lvslab service %s listening on %s as %s\n", c.Kind, addr, c.Identity)
}

func listenTCP(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

func httpEcho(ctx context.Context, c Config, out *lockedWriter, useTLS bool) error {
	ln, err := listenTCP(ctx, c.Listen)
	if err != nil {
		return err
	}
	if useTLS {
		cfg, err := selfSigned(c.Identity)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, cfg)
	}
	var toaReader *toa.Reader
	if c.TOA {
		if toaReader, err = toa.Open(); err != nil {
			ln.Close()
			return err
		}
		defer toaReader.Close()
	}
	ctl := newControlReader(c.Control)
	identityBody := []byte(c.Identity + "\n")
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		cur := ctl.get()
		if cur.Delay > 0 {
			select {
			case <-time.After(cur.Delay):
			case <-r.Context().Done():
				return
			}
		}
		body := identityBody
		if cur.Body != nil {
			body = []byte(*cur.Body)
		}
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("X-Lvslab-Backend", c.Identity)
		h.Set("X-Lvslab-Peer", r.RemoteAddr)
		h.Set("X-Lvslab-Received", strconv.FormatInt(n, 10))
		if toaReader != nil {
			if client, ok := toaClient(r, toaReader); ok {
				h.Set("X-Lvslab-Toa-Client", client.String())
			}
		}
		if cur.Status != 0 {
			w.WriteHeader(cur.Status)
		}
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	ready(out, c, ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", c.Kind, err)
	}
	return nil
}

// toaClient is the client address the TOA option of r's connection
// carried. The option came with the connection's first packets, queued
// before it was accepted: the wait is only for the reader to get to them.
func toaClient(r *http.Request, rd *toa.Reader) (netip.AddrPort, bool) {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	lap, err1 := netip.ParseAddrPort(fmt.Sprint(local))
	rap, err2 := netip.ParseAddrPort(r.RemoteAddr)
	if local == nil || err1 != nil || err2 != nil {
		return netip.AddrPort{}, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	return rd.Lookup(ctx, toa.Key{Local: unmap(lap), Remote: unmap(rap)})
}

// SinkRecord is what tcp-sink logs and answers for each connection.
type SinkRecord struct {
	Peer   string  `json:"peer"`
	Local  string  `json:"local"`
	Bytes  int64   `json:"bytes"`
	SHA256 string  `json:"sha256"`
	Secs   float64 `json:"secs"`
	Err    string  `json:"err,omitempty"`
}

// SinkAnswer is the line tcp-sink sends back after the sender's EOF.
func SinkAnswer(bytes int64, sum []byte) string {
	return fmt.Sprintf("bytes=%d sha256=%s\n", bytes, hex.EncodeToString(sum))
}

// sinkGreetingPrefix starts the line tcp-sink sends on accept.
const sinkGreetingPrefix = "lvslab tcp-sink "

// SinkGreeting is the line tcp-sink sends as soon as it accepts a
// connection.
func SinkGreeting(identity string) string { return sinkGreetingPrefix + identity + "\n" }

// ParseSinkGreeting returns the identity in a greeting line (with or
// without its newline); false when line is not one.
func ParseSinkGreeting(line string) (string, bool) {
	id, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), sinkGreetingPrefix)
	if !ok || id == "" {
		return "", false
	}
	return id, true
}

// serveConns accepts on ln until ctx ends, each connection handled by
// handle on its own goroutine (and closed after it); it returns once the
// handlers have finished. name labels an accept error.
func serveConns(ctx context.Context, ln net.Listener, name string, handle func(net.Conn)) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			handle(conn)
		}()
	}
}

func tcpSink(ctx context.Context, c Config, out *lockedWriter) error {
	ln, err := listenTCP(ctx, c.Listen)
	if err != nil {
		return err
	}
	greeting := SinkGreeting(c.Identity)
	ready(out, c, ln.Addr())
	return serveConns(ctx, ln, "tcp-sink", func(conn net.Conn) {
		start := time.Now()
		// A failed greeting shows up as the read error below.
		_, _ = io.WriteString(conn, greeting)
		h := sha256.New()
		n, rerr := io.Copy(h, bufio.NewReaderSize(conn, 64<<10))
		sum := h.Sum(nil)
		rec := SinkRecord{Peer: conn.RemoteAddr().String(), Local: conn.LocalAddr().String(),
			Bytes: n, SHA256: hex.EncodeToString(sum), Secs: time.Since(start).Seconds()}
		if rerr != nil {
			rec.Err = rerr.Error()
		} else {
			_, _ = io.WriteString(conn, SinkAnswer(n, sum))
		}
		b, _ := json.Marshal(rec)
		out.printf("%s\n", b)
	})
}

func udpEcho(ctx context.Context, c Config, out *lockedWriter) error {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	go func() {
		<-ctx.Done()
		pc.Close()
	}()
	ready(out, c, pc.LocalAddr())
	buf := make([]byte, 65536)
	prefix := []byte(c.Identity + "\n")
	reply := make([]byte, 0, len(prefix)+len(buf))
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("udp-echo: %w", err)
		}
		reply = append(append(reply[:0], prefix...), buf[:n]...)
		if len(reply) > 65507 {
			reply = reply[:65507]
		}
		_, _ = pc.WriteTo(reply, from)
	}
}

// unmap turns an IPv4-mapped IPv6 address (a dual-stack listener's view)
// into the IPv4 one the TOA reader records.
func unmap(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }
