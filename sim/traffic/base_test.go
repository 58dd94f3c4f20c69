package traffic

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/rewrite"
)

func TestDescribeGivesStableShortErrors(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, c := range []struct {
		phase string
		err   error
		want  string
	}{
		{"connect", refused, "connect: connection refused"},
		{"connect", &url.Error{Op: "Get", URL: "http://x/", Err: refused}, "connect: connection refused"},
		{"read", reset, "read: connection reset by peer"},
		{"connect", fmt.Errorf("dial: %w", context.DeadlineExceeded), "connect: timeout after 1s"},
		{"reply", os.ErrDeadlineExceeded, "reply: timeout after 1s"},
		{"response", io.EOF, "response: connection closed by peer"},
		{"send", syscall.EHOSTUNREACH, "send: no route to host"},
		{"connect", context.Canceled, "connect: cancelled"},
		{"x", nil, ""},
	} {
		assert.Equal(t, c.want, describe(c.phase, c.err, time.Second), "%v", c.err)
	}
}

func TestPacerDropsMissedTicks(t *testing.T) {
	// A caller busy for 3.5 ticks: ticks 1 and 2 are dropped, tick 3 fires
	// at once, tick 4 keeps the schedule (no burst to catch up).
	base := time.Now().Add(-3500 * ms)
	p := &pacer{base: base, interval: time.Second, end: base.Add(5 * time.Second)}
	defer p.close()
	require.True(t, p.next(context.Background(), nil))
	assert.Equal(t, int64(4), p.k, "tick 3 fired")
	ctx, cancel := context.WithTimeout(context.Background(), 50*ms)
	defer cancel()
	assert.False(t, p.next(ctx, nil), "tick 4 is due in 0.5s: waits, and ctx ends the wait")
	assert.False(t, p.next(context.Background(), nil), "tick 5 is at the end: the schedule is over")

	stop := make(chan struct{})
	close(stop)
	q := &pacer{base: time.Now().Add(time.Hour), interval: time.Second}
	assert.False(t, q.next(context.Background(), stop), "stop ends the wait")
}

func TestICMPMatch(t *testing.T) {
	g := &icmpGen{id: 0x1234}
	echo := func(typ byte, id, seq uint16) []byte {
		p := make([]byte, 16)
		p[0] = typ
		binary.BigEndian.PutUint16(p[4:], id)
		binary.BigEndian.PutUint16(p[6:], seq)
		binary.BigEndian.PutUint16(p[2:], rewrite.Checksum(p))
		return p
	}
	seq, msg, ok := g.match(echo(icmpEchoReply, 0x1234, 7))
	assert.True(t, ok)
	assert.Equal(t, uint16(7), seq)
	assert.Empty(t, msg)
	_, _, ok = g.match(echo(icmpEchoReply, 0x9999, 7))
	assert.False(t, ok, "another pinger's reply")
	_, _, ok = g.match(echo(icmpEchoRequest, 0x1234, 7))
	assert.False(t, ok, "our own request, seen by the raw socket")

	// Host unreachable quoting our request: IPv4 header (20 bytes,
	// protocol ICMP) then the first 8 bytes of the echo request.
	inner := make([]byte, 20)
	inner[0], inner[9] = 0x45, 1
	unreach := append([]byte{icmpUnreachable, 1, 0, 0, 0, 0, 0, 0}, append(inner, echo(icmpEchoRequest, 0x1234, 9)[:8]...)...)
	seq, msg, ok = g.match(unreach)
	assert.True(t, ok)
	assert.Equal(t, uint16(9), seq)
	assert.Equal(t, "reply: host unreachable", msg)

	// A valid checksum sums to zero.
	p := echo(icmpEchoRequest, 1, 2)
	assert.Equal(t, uint16(0), rewrite.Checksum(p))
}
