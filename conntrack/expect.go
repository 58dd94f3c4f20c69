package conntrack

import "fmt"

// Connections an application helper expects (the kernel's ip_vs_ftp): the
// data connection of an FTP session is created by the helper before its
// first packet, bound to the control connection's real server and
// controlled by the control connection (cp->control), so it lives as long
// as it is used and holds the control connection while it does. A passive
// data connection does not know the client's port yet (IP_VS_CONN_F_NO_CPORT):
// its client side is hashed with port 0 and filled in by the first packet
// (ip_vs_conn_fill_cport).

// FlagNoCport marks a connection whose client port is not known yet
// (IP_VS_CONN_F_NO_CPORT).
const FlagNoCport Flags = 0x0800

// NewExpected tracks a connection an application helper announced:
// p.Template must be 0, and p.Client's port may be 0 (the client port is
// filled in by FillClientPort). It is controlled by control, a live
// connection (not a template), and with listen it starts in LISTEN with
// LISTEN's timeout (ip_vs_tcp_conn_listen), the state both FTP data
// connections start in.
func (t *Table) NewExpected(p *ConnParams, control ConnID, listen bool, now int64) (ConnID, error) {
	if p.Template != 0 {
		return 0, fmt.Errorf("conntrack: expected connection with template %d: %w", p.Template, ErrNotTemplate)
	}
	if control == 0 || !t.Live(control) || t.conn(control).flags&FlagTemplate != 0 {
		return 0, fmt.Errorf("conntrack: control connection %d: %w", control, ErrNotTemplate)
	}
	if p.OnePacket {
		return 0, fmt.Errorf("conntrack: one-packet expected connection: %w", ErrProto)
	}
	id, err := t.NewConn(p, now)
	if err != nil {
		return 0, err
	}
	c := t.conn(id)
	if p.Client.Port() == 0 {
		c.flags |= FlagNoCport
	}
	c.control = control
	t.conn(control).nControl++
	if listen && c.proto == ProtoTCP {
		c.state = StateListen
		c.timeout = t.tcpTimeouts[StateListen]
		t.arm(id, c, t.deadlineTick(now, c.timeout))
	}
	return id, nil
}

// FillClientPort finds the expected connection without a client port that
// the packet tuple k (client:port -> vaddr:vport) opens, and records the
// port (ip_vs_conn_fill_cport): the connection is rehashed under its full
// tuple and found by Lookup from now on. 0 when there is none.
func (t *Table) FillClientPort(k Tuple) ConnID {
	if k.SrcPort == 0 {
		return 0
	}
	w := k
	w.SrcPort = 0
	id, _ := t.find(&w, t.h.sum(&w), kindIn)
	if id == 0 {
		return 0
	}
	c := t.conn(id)
	if c.flags&FlagNoCport == 0 {
		return 0
	}
	laddrIsClient := c.Fwd() != FwdFullNAT
	out := c.outKey()
	if laddrIsClient {
		out.DstPort = k.SrcPort
	}
	if o, _ := t.find(&out, t.h.sum(&out), kindOut); o != 0 && o != id {
		// The server side is someone else's already (a FULLNAT
		// connection's is its own local port, hashed from the start).
		return 0
	}
	t.unhash(id, c)
	c.cport = k.SrcPort
	if laddrIsClient {
		c.lport = k.SrcPort
	}
	c.flags &^= FlagNoCport
	c.flags |= FlagHashed
	t.hashIn(id, c, kindIn)
	o := c.outKey()
	t.idx.insert(t.h.sum(&o), uint32(id)<<2|kindOut)
	return id
}
