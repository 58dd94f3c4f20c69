package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// TCPTarget is a TCP_CHECK: connect, and close at once.
type TCPTarget struct {
	Addr   netip.AddrPort
	BindTo netip.Addr
	// BindPort is bind_port (0: any).
	BindPort uint16
}

// TCPProbe is TCP_CHECK as a Probe. The socket is closed with SO_LINGER 0
// (a reset): at 10,000 checks a second a normal close would leave the
// director with hundreds of thousands of TIME_WAIT sockets; keepalived
// closes normally, which a real server cannot tell apart from a client.
func TCPProbe(t TCPTarget) Probe {
	return func(ctx context.Context) Outcome {
		d := net.Dialer{}
		if t.BindTo.IsValid() || t.BindPort != 0 {
			a := &net.TCPAddr{Port: int(t.BindPort)}
			if t.BindTo.IsValid() {
				a.IP = t.BindTo.AsSlice()
			}
			d.LocalAddr = a
		}
		c, err := d.DialContext(ctx, "tcp", t.Addr.String())
		if err != nil {
			return Outcome{Err: fmt.Errorf("TCP connection to %s: %w", t.Addr, err)}
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
		return Outcome{OK: true}
	}
}
