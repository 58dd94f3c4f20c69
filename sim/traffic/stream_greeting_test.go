package traffic

import (
	"crypto/sha256"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/service"
)

// readerFor runs a stream's reader on a loopback connection whose peer
// says what and closes.
func readerFor(t *testing.T, what string) *streamConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = c.Write([]byte(what))
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	sc := &streamConn{g: &streamGen{base: &base{timeout: time.Second}}, c: c.(*net.TCPConn), hash: sha256.New(),
		greeted: make(chan struct{}), readDone: make(chan struct{}), dead: make(chan struct{})}
	assert.Empty(t, sc.backend(), "nothing read yet")
	go sc.read()
	select {
	case <-sc.readDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not end")
	}
	return sc
}

func TestStreamReaderLearnsTheSinksIdentity(t *testing.T) {
	sc := readerFor(t, service.SinkGreeting("rs2")+"bytes=0 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n")
	assert.Equal(t, "rs2", sc.backend())
	assert.Empty(t, sc.checkAnswer(), "the digest after the greeting is checked as before")

	// Only the greeting, then the peer went away: the break names it.
	sc = readerFor(t, service.SinkGreeting("rs1"))
	assert.Equal(t, "rs1", sc.backend())
	assert.True(t, sc.peerGone())
	assert.Equal(t, "read: connection closed by peer", sc.peerReason())

	// Not a tcp-sink: no backend, and what it said is unexpected.
	sc = readerFor(t, "SSH-2.0-OpenSSH_9.6\r\n")
	assert.Empty(t, sc.backend())
	assert.Equal(t, "read: 21 unexpected bytes from the peer before the end of the stream", sc.peerReason())
	sc = readerFor(t, "no newline")
	assert.Empty(t, sc.backend())
	assert.Equal(t, `digest: unexpected answer "no newline"`, sc.checkAnswer())
}
