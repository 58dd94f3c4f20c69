package service

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startCtl runs a service with a control file and returns its address and
// the file.
func startCtl(t *testing.T, kind string) (string, string) {
	t.Helper()
	ctl := filepath.Join(t.TempDir(), kind+".control")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuf{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Kind: kind, Listen: "127.0.0.1:0", Identity: "rs7", Control: ctl, Out: out})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Error("service did not stop")
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if m := readyLine.FindStringSubmatch(out.String()); m != nil {
			return m[2], ctl
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never printed its ready line: %q", kind, out.String())
	return "", ""
}

func get(t *testing.T, c *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func strp(s string) *string { return &s }

func TestHTTPEchoControls(t *testing.T) {
	addr, ctl := startCtl(t, "http-echo")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	code, body, err := get(t, c, "http://"+addr+"/")
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.Equal(t, "rs7\n", body)

	require.NoError(t, WriteControls(ctl, Controls{Status: 503, Body: strp("down for maintenance\n")}))
	code, body, err = get(t, c, "http://"+addr+"/")
	require.NoError(t, err)
	assert.Equal(t, 503, code)
	assert.Equal(t, "down for maintenance\n", body)

	// An hour's delay: a client with a short timeout cannot get an
	// answer, whatever the machine's speed; the server keeps running.
	require.NoError(t, WriteControls(ctl, Controls{Delay: time.Hour}))
	short := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 200 * time.Millisecond}
	_, _, err = get(t, short, "http://"+addr+"/")
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "%v", err)

	// Back to the defaults: removing the file or writing zero controls.
	require.NoError(t, os.Remove(ctl))
	code, body, err = get(t, c, "http://"+addr+"/")
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.Equal(t, "rs7\n", body)
}

func TestControlFileBadKeepsLast(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "x.control")
	require.NoError(t, WriteControls(ctl, Controls{Status: 404}))
	r := newControlReader(ctl)
	assert.Equal(t, 404, r.get().Status)
	require.NoError(t, os.WriteFile(ctl, []byte(`{"status": "nope", "extra": 1}`), 0o644))
	assert.Equal(t, 404, r.get().Status, "a file that does not parse keeps the last good controls")
	_, err := ReadControls(ctl)
	assert.Error(t, err)
	c, err := ReadControls(filepath.Join(t.TempDir(), "missing"))
	require.NoError(t, err)
	assert.Equal(t, Controls{}, c)
}

func TestHTTPSEcho(t *testing.T) {
	addr, ctl := startCtl(t, "https-echo")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the lab's self-signed certificate
	code, body, err := get(t, c, "https://"+addr+"/")
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.Equal(t, "rs7\n", body)

	// The certificate names the identity.
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // as above
	require.NoError(t, err)
	assert.Equal(t, "rs7", conn.ConnectionState().PeerCertificates[0].Subject.CommonName)
	conn.Close()

	require.NoError(t, WriteControls(ctl, Controls{Status: 500}))
	code, _, err = get(t, c, "https://"+addr+"/")
	require.NoError(t, err)
	assert.Equal(t, 500, code)

	// Plain HTTP to the TLS port gets no HTTP answer.
	plain := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	code, _, err = get(t, plain, "http://"+addr+"/")
	if err == nil {
		assert.Equal(t, http.StatusBadRequest, code, "Go answers plain HTTP on a TLS port with 400")
	}
}

// smtpTalk has keepalived's SMTP_CHECK conversation and returns the lines
// it got.
func smtpTalk(t *testing.T, addr string, cmds ...string) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	rd := bufio.NewReader(conn)
	var got []string
	line, err := rd.ReadString('\n')
	require.NoError(t, err)
	got = append(got, strings.TrimRight(line, "\r\n"))
	for _, c := range cmds {
		_, err := io.WriteString(conn, c+"\r\n")
		require.NoError(t, err)
		line, err := rd.ReadString('\n')
		if errors.Is(err, io.EOF) && line == "" {
			break
		}
		require.NoError(t, err)
		got = append(got, strings.TrimRight(line, "\r\n"))
	}
	return got
}

func TestSMTPBanner(t *testing.T) {
	addr, ctl := startCtl(t, "smtp-banner")
	got := smtpTalk(t, addr, "HELO lvskeepalived", "MAIL FROM:<a@b>", "QUIT")
	assert.Equal(t, []string{"220 rs7 ESMTP lvslab", "250 rs7", "250 ok", "221 rs7 closing"}, got)

	// A failing greeting ends the session after the banner.
	require.NoError(t, WriteControls(ctl, Controls{Status: 421}))
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	b, err := io.ReadAll(conn)
	require.NoError(t, err)
	assert.Equal(t, "421 rs7 ESMTP lvslab\r\n", string(b))
}
