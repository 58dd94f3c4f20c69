package traffic

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"lvslab/sim/runner"
)

// udpGen sends one datagram per request from a fresh socket (a new source
// port, so the director schedules each datagram as a new connection) and
// waits for udp-echo's answer: identity, newline, the datagram.
type udpGen struct {
	*base
	raddr   *net.UDPAddr
	laddr   *net.UDPAddr
	size    int
	payload *lockedRand
}

func newUDP(b *base) (*udpGen, error) {
	ap, err := netip.ParseAddrPort(b.t.Target)
	if err != nil {
		return nil, fmt.Errorf("udp target %q must be addr:port", b.t.Target)
	}
	g := &udpGen{base: b, raddr: net.UDPAddrFromAddrPort(ap), size: b.payloadSize(DefaultUDPPayload),
		payload: &lockedRand{r: b.rng(0)}}
	if g.size > 65000 {
		return nil, fmt.Errorf("udp payload %d bytes does not fit an echoed datagram", g.size)
	}
	if b.t.Source.IsValid() {
		g.laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(b.t.Source, 0))
	}
	return g, nil
}

func (g *udpGen) run(ctx context.Context, stop <-chan struct{}) {
	g.requests(ctx, stop, g.one)
}

func (g *udpGen) one(ctx context.Context, _ int) runner.Request {
	start := time.Now()
	var c *net.UDPConn
	err := g.node.Do(func() error {
		var err error
		c, err = net.DialUDP("udp", g.laddr, g.raddr)
		return err
	})
	if err != nil {
		return runner.Request{Err: describe("socket", err, g.timeout), Latency: time.Since(start)}
	}
	defer c.Close()
	// The read below must also end when the stage is cancelled.
	stopRead := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stopRead()
	r := runner.Request{Local: addrPort(c.LocalAddr()), Remote: addrPort(c.RemoteAddr())}
	out := make([]byte, g.size)
	g.payload.fill(out)
	_ = c.SetDeadline(start.Add(g.timeout))
	if _, err := c.Write(out); err != nil {
		r.Latency, r.Err = time.Since(start), describe("send", err, g.timeout)
		return r
	}
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	r.Latency = time.Since(start)
	if err != nil && ctx.Err() != nil {
		r.Err = "reply: cancelled"
		return r
	}
	if err != nil {
		r.Err = describe("reply", err, g.timeout)
		return r
	}
	r.Bytes = int64(n)
	id, echoed, ok := bytes.Cut(buf[:n], []byte("\n"))
	if !ok {
		r.Err = fmt.Sprintf("reply: %d bytes without udp-echo's identity line", n)
		return r
	}
	r.Backend = string(id)
	if g.t.Verify && !bytes.Equal(echoed, out) {
		r.Err = fmt.Sprintf("reply: echoed %d bytes differ from the %d sent", len(echoed), len(out))
	}
	return r
}
