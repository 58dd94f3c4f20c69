package check

import (
	"crypto/md5"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDigestsBodyAsKeepalived(t *testing.T) {
	// Content-Length bounds the body; headers are not hashed.
	r, err := Parse([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA"))
	require.NoError(t, err)
	assert.Equal(t, 200, r.Status)
	assert.Equal(t, md5.Sum([]byte("hello")), r.Digest)
	// Chunked bodies are hashed as they arrive: keepalived does not decode them.
	raw := "5\r\nhello\r\n0\r\n\r\n"
	r, err = Parse([]byte("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n" + raw))
	require.NoError(t, err)
	assert.Equal(t, 404, r.Status)
	assert.Equal(t, md5.Sum([]byte(raw)), r.Digest)
	_, err = Parse(nil)
	assert.Error(t, err)
}

func TestRequestTemplate(t *testing.T) {
	q := HTTPRequest{Addr: netip.MustParseAddrPort("192.0.2.1:8080"), Path: "/x", Protocol: "1.1"}
	assert.Equal(t, "GET /x HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: 192.0.2.1:8080\r\n\r\n", string(q.Request()))
	q = HTTPRequest{Addr: netip.MustParseAddrPort("[2001:db8::1]:80"), Protocol: "1.0C"}
	assert.Equal(t, "GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: [2001:db8::1]:80\r\n\r\n", string(q.Request()))
}
