package traffic

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"lvslab/rewrite"
	"lvslab/sim/runner"
)

// icmpGen pings over one raw socket per traffic. Every raw ICMP socket of
// the node sees every ICMP packet, so replies are matched by identifier
// (from the seeded stream) and sequence number.
type icmpGen struct {
	*base
	conn    net.PacketConn
	dst     *net.IPAddr
	local   netip.AddrPort
	id      uint16
	size    int
	payload *lockedRand

	mu      sync.Mutex
	waiting map[uint16]chan string // sequence -> "" (echo reply) or an error
	done    chan struct{}
}

const (
	icmpEchoReply    = 0
	icmpUnreachable  = 3
	icmpEchoRequest  = 8
	icmpTimeExceeded = 11
)

func newICMP(b *base) (*icmpGen, error) {
	dst, err := netip.ParseAddr(b.t.Target)
	if err != nil {
		return nil, fmt.Errorf("icmp target %q must be an IP address", b.t.Target)
	}
	if !dst.Unmap().Is4() {
		return nil, fmt.Errorf("icmp target %s: only IPv4 echo is implemented", dst)
	}
	g := &icmpGen{base: b, dst: &net.IPAddr{IP: dst.Unmap().AsSlice()}, size: b.payloadSize(DefaultICMPPayload),
		waiting: map[uint16]chan string{}, done: make(chan struct{})}
	if g.size > 65000 {
		return nil, fmt.Errorf("icmp payload %d bytes is too large", g.size)
	}
	r := b.rng(0)
	g.id = uint16(r.Uint64())
	g.payload = &lockedRand{r: r}
	laddr := "0.0.0.0"
	if b.t.Source.IsValid() {
		laddr = b.t.Source.String()
		g.local = netip.AddrPortFrom(b.t.Source, 0)
	}
	err = b.node.Do(func() error {
		var err error
		g.conn, err = net.ListenPacket("ip4:icmp", laddr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("icmp socket in %s: %w", b.t.From, err)
	}
	go g.read()
	return g, nil
}

// close releases the socket (also when the stage never ran).
func (g *icmpGen) close() {
	g.conn.Close()
	<-g.done
}

func (g *icmpGen) run(ctx context.Context, stop <-chan struct{}) {
	defer g.close()
	g.requests(ctx, stop, g.one)
}

func (g *icmpGen) one(ctx context.Context, seq int) runner.Request {
	sq := uint16(seq)
	ch := make(chan string, 1)
	g.mu.Lock()
	g.waiting[sq] = ch
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.waiting, sq)
		g.mu.Unlock()
	}()
	pkt := make([]byte, 8+g.size)
	pkt[0] = icmpEchoRequest
	binary.BigEndian.PutUint16(pkt[4:], g.id)
	binary.BigEndian.PutUint16(pkt[6:], sq)
	g.payload.fill(pkt[8:])
	binary.BigEndian.PutUint16(pkt[2:], rewrite.Checksum(pkt))
	r := runner.Request{Local: g.local, Remote: addrPort(g.dst)}
	start := time.Now()
	if _, err := g.conn.WriteTo(pkt, g.dst); err != nil {
		r.Latency, r.Err = time.Since(start), describe("send", err, g.timeout)
		return r
	}
	t := time.NewTimer(g.timeout)
	defer t.Stop()
	select {
	case e := <-ch:
		r.Latency, r.Err = time.Since(start), e
		if e == "" {
			r.Bytes = int64(len(pkt))
		}
	case <-t.C:
		r.Latency, r.Err = time.Since(start), fmt.Sprintf("reply: timeout after %s", g.timeout)
	case <-ctx.Done():
		r.Latency, r.Err = time.Since(start), "reply: cancelled"
	}
	return r
}

// read dispatches echo replies and ICMP errors about our requests.
func (g *icmpGen) read() {
	defer close(g.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := g.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		seq, msg, ok := g.match(buf[:n])
		if !ok {
			continue
		}
		g.mu.Lock()
		ch := g.waiting[seq]
		g.mu.Unlock()
		if ch != nil {
			select {
			case ch <- msg:
			default:
			}
		}
	}
}

// match parses an ICMP message (Go strips the IPv4 header): an echo reply
// with our identifier, or an error quoting one of our echo requests.
func (g *icmpGen) match(p []byte) (seq uint16, msg string, ok bool) {
	if len(p) < 8 {
		return 0, "", false
	}
	switch p[0] {
	case icmpEchoReply:
		if binary.BigEndian.Uint16(p[4:]) != g.id {
			return 0, "", false
		}
		return binary.BigEndian.Uint16(p[6:]), "", true
	case icmpUnreachable, icmpTimeExceeded:
		inner := p[8:]
		if len(inner) < 20 {
			return 0, "", false
		}
		ihl := int(inner[0]&0x0f) * 4
		if len(inner) < ihl+8 || inner[9] != 1 {
			return 0, "", false
		}
		q := inner[ihl:]
		if q[0] != icmpEchoRequest || binary.BigEndian.Uint16(q[4:]) != g.id {
			return 0, "", false
		}
		return binary.BigEndian.Uint16(q[6:]), "reply: " + icmpErrorText(p[0], p[1]), true
	}
	return 0, "", false
}

func icmpErrorText(typ, code byte) string {
	if typ == icmpTimeExceeded {
		return "time exceeded"
	}
	switch code {
	case 0:
		return "network unreachable"
	case 1:
		return "host unreachable"
	case 3:
		return "port unreachable"
	case 4:
		return "fragmentation needed"
	case 9, 10, 13:
		return "administratively prohibited"
	}
	return fmt.Sprintf("destination unreachable (code %d)", code)
}
