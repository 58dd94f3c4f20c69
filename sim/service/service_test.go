package service

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuf collects a service's output.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var readyLine = regexp.MustCompile(`(?m)^lvslab service (\S+) listening on (\S+) as (\S+)$`)

// start runs a service on a free loopback port and returns its address.
func start(t *testing.T, kind string) (string, *syncBuf) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuf{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Config{Kind: kind, Listen: "127.0.0.1:0", Identity: "rs7", Out: out}) }()
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
			require.Equal(t, kind, m[1])
			require.Equal(t, "rs7", m[3])
			return m[2], out
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never printed its ready line: %q", kind, out.String())
	return "", nil
}

func TestHTTPEcho(t *testing.T) {
	addr, _ := start(t, "http-echo")
	tr := &http.Transport{DisableKeepAlives: true}
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	resp, err := c.Post("http://"+addr+"/x", "text/plain", strings.NewReader("hello"))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "rs7\n", string(body))
	assert.Equal(t, "rs7", resp.Header.Get("X-Lvslab-Backend"))
	assert.Equal(t, "5", resp.Header.Get("X-Lvslab-Received"))
	assert.True(t, strings.HasPrefix(resp.Header.Get("X-Lvslab-Peer"), "127.0.0.1:"))
}

func TestTCPSink(t *testing.T) {
	addr, out := start(t, "tcp-sink")
	payload := make([]byte, 300_000)
	_, _ = rand.Read(payload)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write(payload)
	require.NoError(t, err)
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	br := bufio.NewReader(conn)
	hello, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "lvslab tcp-sink rs7\n", hello, "the greeting says who was reached")
	id, ok := ParseSinkGreeting(hello)
	assert.True(t, ok)
	assert.Equal(t, "rs7", id)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	sum := sha256.Sum256(payload)
	assert.Equal(t, SinkAnswer(int64(len(payload)), sum[:]), line)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), `"bytes":300000`) }, 2*time.Second, 10*time.Millisecond)
}

func TestParseSinkGreeting(t *testing.T) {
	for line, want := range map[string]string{"lvslab tcp-sink rs1\n": "rs1", "lvslab tcp-sink web-2\r\n": "web-2", "lvslab tcp-sink a b": "a b"} {
		id, ok := ParseSinkGreeting(line)
		assert.True(t, ok, line)
		assert.Equal(t, want, id)
	}
	for _, line := range []string{"", "lvslab tcp-sink \n", "bytes=0 sha256=00\n", "lvslab http-echo rs1\n"} {
		_, ok := ParseSinkGreeting(line)
		assert.False(t, ok, "%q is no greeting", line)
	}
}

func TestUDPEcho(t *testing.T) {
	addr, _ := start(t, "udp-echo")
	conn, err := net.Dial("udp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("ping 1"))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(2*time.Second)))
	buf := make([]byte, 100)
	n, err := conn.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "rs7\nping 1", string(buf[:n]))
}

func TestUnknownKind(t *testing.T) {
	err := Run(context.Background(), Config{Kind: "ftp", Listen: ":0", Identity: "x"})
	assert.EqualError(t, err, `unknown service "ftp" (one of http-echo, https-echo, smtp-banner, tcp-sink, udp-echo, vsftpd, dnsmasq)`)
}
