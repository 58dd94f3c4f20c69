package service

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Controls are what a fault may change in a running service: the HTTP
// status (smtp-banner: the greeting code), a delay before answering, the
// HTTP body. Zero values (and a nil Body) are the defaults: 200 (220),
// no delay, the identity and a newline.
type Controls struct {
	Status int           `json:"status,omitempty"`
	Delay  time.Duration `json:"delay,omitempty"`
	Body   *string       `json:"body,omitempty"`
}

// maxControlFile bounds what a service reads of its control file.
const maxControlFile = 2 << 20

// ReadControls reads a control file; a missing file is the defaults.
func ReadControls(path string) (Controls, error) {
	var c Controls
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("control file: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(&limitReader{f: f, n: maxControlFile}))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Controls{}, fmt.Errorf("control file %s: %w", path, err)
	}
	return c, nil
}

// WriteControls replaces the control file atomically (a rename), so a
// service reading it mid-write sees the old or the new controls.
func WriteControls(path string, c Controls) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("control file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("control file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("control file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("control file: %w", err)
	}
	return nil
}

type limitReader struct {
	f *os.File
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("over %d bytes", maxControlFile)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// controlReader re-reads the control file when its modification time or
// size changes; a file that does not parse keeps the last good controls
// (and is logged once per change by the caller's output).
type controlReader struct {
	path  string
	mu    sync.Mutex
	stamp [2]int64 // mtime ns, size
	cur   Controls
}

func newControlReader(path string) *controlReader { return &controlReader{path: path} }

func (r *controlReader) get() Controls {
	if r.path == "" {
		return Controls{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := os.Stat(r.path)
	if err != nil {
		r.stamp, r.cur = [2]int64{}, Controls{}
		return r.cur
	}
	stamp := [2]int64{st.ModTime().UnixNano(), st.Size()}
	if stamp == r.stamp {
		return r.cur
	}
	if c, err := ReadControls(r.path); err == nil {
		r.stamp, r.cur = stamp, c
	}
	return r.cur
}

// selfSigned is a fresh P-256 certificate for the identity.
func selfSigned(identity string) (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tls key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: identity, Organization: []string{"lvslab"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{identity},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion: tls.VersionTLS12}, nil
}

// smtpBanner is the conversation keepalived's SMTP_CHECK has: greeting,
// HELO/EHLO, QUIT. Every other command gets 250, so a mail client's probe
// does not hang; a line over 1000 bytes ends the session (RFC 5321's limit).
func smtpBanner(ctx context.Context, c Config, out *lockedWriter) error {
	ln, err := listenTCP(ctx, c.Listen)
	if err != nil {
		return err
	}
	ctl := newControlReader(c.Control)
	ready(out, c, ln.Addr())
	return serveConns(ctx, ln, "smtp-banner", func(conn net.Conn) {
		smtpSession(ctx, conn, c.Identity, ctl.get())
	})
}

func smtpSession(ctx context.Context, conn net.Conn, identity string, cur Controls) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(time.Minute + cur.Delay))
	if cur.Delay > 0 {
		select {
		case <-time.After(cur.Delay):
		case <-ctx.Done():
			return
		}
	}
	code := cur.Status
	if code == 0 {
		code = 220
	}
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "%d %s ESMTP lvslab\r\n", code, identity)
	if w.Flush() != nil || code != 220 {
		return
	}
	rd := bufio.NewReaderSize(conn, 1024)
	for {
		line, err := rd.ReadSlice('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.TrimSpace(string(line)))
		verb, _, _ = strings.Cut(verb, " ")
		switch verb {
		case "HELO", "EHLO":
			fmt.Fprintf(w, "250 %s\r\n", identity)
		case "QUIT":
			fmt.Fprintf(w, "221 %s closing\r\n", identity)
			_ = w.Flush()
			return
		default:
			fmt.Fprintf(w, "250 ok\r\n")
		}
		if w.Flush() != nil {
			return
		}
	}
}
