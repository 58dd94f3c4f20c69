package traffic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"lvslab/sim/runner"
	"lvslab/sim/service"
)

// dnsGen sends one TXT query for whoami.lvslab per request from a fresh
// socket (a new source port, so the director schedules each query) and
// records which dnsmasq answered: its TXT record is its identity.
type dnsGen struct {
	*base
	raddr *net.UDPAddr
	laddr *net.UDPAddr
}

func newDNS(b *base) (*dnsGen, error) {
	ap, err := netip.ParseAddrPort(b.t.Target)
	if err != nil {
		return nil, fmt.Errorf("dns target %q must be addr:port", b.t.Target)
	}
	g := &dnsGen{base: b, raddr: net.UDPAddrFromAddrPort(ap)}
	if b.t.Source.IsValid() {
		g.laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(b.t.Source, 0))
	}
	return g, nil
}

func (g *dnsGen) run(ctx context.Context, stop <-chan struct{}) {
	g.requests(ctx, stop, g.one)
}

func (g *dnsGen) one(ctx context.Context, _ int) runner.Request {
	start := time.Now()
	var local netip.AddrPort
	dial := func() (*net.UDPConn, error) {
		var c *net.UDPConn
		err := g.node.Do(func() error {
			var err error
			c, err = net.DialUDP("udp", g.laddr, g.raddr)
			return err
		})
		if err == nil {
			local = addrPort(c.LocalAddr())
		}
		return c, err
	}
	txt, err := service.QueryTXT(ctx, dial, g.raddr.String(), service.DNSName, g.timeout)
	r := runner.Request{Latency: time.Since(start), Local: local, Remote: g.raddr.AddrPort(), Backend: txt}
	var ne net.Error
	switch {
	case err != nil && ctx.Err() != nil:
		r.Err = "query: cancelled"
	case err != nil && !errors.As(err, &ne):
		r.Err = err.Error() // the answer's own fault: "dns: rcode 2", "dns: no TXT answer"
	case err != nil:
		r.Err = describe("query", err, g.timeout)
	default:
		r.Bytes = int64(len(txt))
	}
	return r
}
