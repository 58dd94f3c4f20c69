package ipvs

// The FTP helper, the kernel's ip_vs_ftp: on NAT and FULLNAT connections
// whose virtual port is one of the helper's ports (21 unless configured, as
// the module's ports= parameter), it follows the control connection. A
// client's PASV or EPSV arms it; the server's 227 reply gets the VIP
// written over the real server's address, and a data connection
// (client:any -> VIP:port -> RS:port) is expected, bound to the control
// connection's real server. A client's PORT or EPRT makes it expect the
// server's connection back (RS:20 -> client:port, leaving as VIP:20). When
// the rewritten text is longer or shorter, the control connection's
// sequence numbers are offset from then on, both ways (rewrite.SeqAdjust).
//
// FULLNAT (which the kernel's helper does not follow: the fork binds
// applications to NAT connections only, alibaba/LVS issue #17, and DPVS
// has no FTP helper) differs where the real server's view differs: it
// knows the director's local address, never the client. A data connection
// is a FULLNAT connection of its own on a new port of the control
// connection's local address: passive, client -> VIP:port becomes
// LIP:lport -> RS:port; active, the PORT/EPRT command's client address is
// rewritten to LIP,lport (the real server's only route back), and its
// connection RS:20 -> LIP:lport leaves as VIP:20 -> client:port, as NAT's
// does from the VIP.
//
// Packets of other connections never come here; those of a control
// connection cost one map lookup, and nothing here allocates except the
// first packet of a new control connection.

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/rewrite"
)

// MaxFTPPorts is IP_VS_APP_MAX_PORTS: how many ports the helper can watch.
const MaxFTPPorts = 8

// DefaultFTPPorts is ip_vs_ftp's default ports= value.
var DefaultFTPPorts = []uint16{21}

// ParseFTPPorts reads a comma-separated port list as lvsd's --ftp-ports
// takes it (ip_vs_ftp ports=21,2121); "" or "none" turns the helper off.
func ParseFTPPorts(s string) ([]uint16, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return []uint16{}, nil
	}
	var out []uint16
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("ftp port %q: want a port number 1-65535", f)
		}
		if !slices.Contains(out, uint16(n)) {
			out = append(out, uint16(n))
		}
	}
	if len(out) > MaxFTPPorts {
		return nil, fmt.Errorf("ftp ports %q: at most %d ports (IP_VS_APP_MAX_PORTS)", s, MaxFTPPorts)
	}
	return out, nil
}

// ftpHelper is the helper's state in the engine.
type ftpHelper struct {
	ports [MaxFTPPorts]uint16
	n     int
	conns map[conntrack.ConnID]*ftpConn
	// sweepAt is the map size at which entries of expired connections are
	// swept out (connection IDs are reused, so the map is keyed by ID and
	// each entry checked against its connection).
	sweepAt int
}

// ftpConn is one control connection's helper state (cp->app_data and the
// in_seq/out_seq of struct ip_vs_conn).
type ftpConn struct {
	client, virtual netip.AddrPort // which connection the entry is for
	// expect is the reply a PASV or EPSV asked for (FTPNone: none).
	expect rewrite.FTPKind
	// replied is the kind and sequence number of the last reply the
	// helper handled: a retransmission of it is rewritten again (the
	// kernel forgets the PASV after the first copy and would let a
	// retransmitted 227 out with the real server's address).
	replied    rewrite.FTPKind
	repliedSeq uint32
	// cmdLocal and cmdSeq are the local address a FULLNAT PORT or EPRT
	// was rewritten to and the segment's sequence number: a
	// retransmission names the same address again.
	cmdLocal netip.AddrPort
	cmdSeq   uint32
	in, out  rewrite.SeqAdjust
}

// SetFTPPorts sets the ports the FTP helper watches; none turns it off.
// Control connections already followed keep their sequence offsets.
func (e *Engine) SetFTPPorts(ports []uint16) error {
	if len(ports) > MaxFTPPorts {
		return fmt.Errorf("ftp helper: %d ports, at most %d", len(ports), MaxFTPPorts)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	h := &e.ftp
	h.ports = [MaxFTPPorts]uint16{}
	h.n = copy(h.ports[:], ports)
	if h.conns == nil {
		h.conns = map[conntrack.ConnID]*ftpConn{}
	}
	return nil
}

// FTPPorts returns the ports the FTP helper watches.
func (e *Engine) FTPPorts() []uint16 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ftp.ports[:e.ftp.n])
}

// watches says whether c is an FTP control connection the helper follows:
// NAT or FULLNAT, TCP, on one of its ports (ip_vs_bind_app matches the
// virtual port).
func (h *ftpHelper) watches(c *conntrack.Conn) bool {
	if h.n == 0 || c.Proto() != rewrite.ProtoTCP {
		return false
	}
	if f := c.Fwd(); f != conntrack.FwdMasq && f != conntrack.FwdFullNAT {
		return false
	}
	vport := c.Virtual().Port()
	for _, p := range h.ports[:h.n] {
		if p == vport {
			return true
		}
	}
	return false
}

// state returns the helper state of control connection id, creating it on
// its first packet.
func (h *ftpHelper) state(id conntrack.ConnID, c *conntrack.Conn, live func(conntrack.ConnID) bool) *ftpConn {
	client, virtual := c.Client(), c.Virtual()
	if st := h.conns[id]; st != nil {
		if st.client == client && st.virtual == virtual {
			return st
		}
		*st = ftpConn{client: client, virtual: virtual} // the ID was reused
		return st
	}
	if len(h.conns) >= h.sweepAt {
		for k := range h.conns {
			if !live(k) {
				delete(h.conns, k)
			}
		}
		h.sweepAt = 2*len(h.conns) + 64
	}
	st := &ftpConn{client: client, virtual: virtual}
	h.conns[id] = st
	return st
}

// lookup returns the helper state of connection c (id), nil when the
// helper has none for it.
func (h *ftpHelper) lookup(id conntrack.ConnID, c *conntrack.Conn) *ftpConn {
	if st := h.conns[id]; st != nil && st.client == c.Client() && st.virtual == c.Virtual() {
		return st
	}
	return nil
}

// ftpPacket runs the helper on a packet of control connection id (already
// stepped) before it is translated, and returns the frame to send on (it
// may have grown or shrunk, moving into slot's headroom area), or nil when
// the packet is dropped.
//
// The helper's sequence offsets are kept in the numbering of the side that
// sends the resized data, before any other translation: the client's
// numbering for PORT/EPRT (st.in), the real server's for 227 (st.out). So
// it runs after the SYN proxy has put a client's acknowledgement into the
// real server's numbering and before it moves a real server's sequence
// number into the cookie's (synProxyConn), and before FULLNAT remaps the
// client's sequence numbers toward the real server - whose
// acknowledgements, in the remapped numbering, are shifted back by that
// remap here (ackIn).
func (e *Engine) ftpPacket(frame, slot []byte, p *rewrite.Packet, id conntrack.ConnID, c *conntrack.Conn, dir conntrack.Dir, now int64) []byte {
	st := e.ftp.state(id, c, e.conns.Live)
	seq := rewrite.TCP(frame[p.L4:p.Payload]).Seq()
	established := c.State() == conntrack.StateEstablished
	if dir == conntrack.DirIn {
		_ = rewrite.AdjustSeqAck(frame, p, &st.in, &st.out)
		if !established || p.End == p.Payload {
			return frame
		}
		payload := frame[p.Payload:p.End]
		if k := rewrite.FTPPassiveRequest(payload); k != rewrite.FTPNone {
			st.expect = k
			return frame
		}
		a, ok := rewrite.ParseFTPCommand(payload)
		if !ok {
			return frame
		}
		st.expect = rewrite.FTPNone
		fnat := c.Fwd() == conntrack.FwdFullNAT
		var local netip.AddrPort
		if fnat && st.cmdLocal.IsValid() && seq == st.cmdSeq {
			local = st.cmdLocal
		} else if local, ok = e.ftpActive(id, c, &a, now); !ok || !fnat {
			return frame // NAT: the real server reaches the client itself
		}
		st.cmdLocal, st.cmdSeq = local, seq
		// FULLNAT: the real server has a route to the local addresses
		// only, so the address it must connect to is the local one the
		// data connection was given.
		out := e.ftpRewrite(frame, slot, p, &a, local, destOf(e.conns.Dest(id)).out.MTU, &st.in, seq)
		if out != nil {
			e.ctr[ftpPortRewritten]++
		}
		return out
	}
	ackIn := st.in
	if c.Fwd() == conntrack.FwdFullNAT {
		// The real server acknowledges the client's data in FULLNAT's
		// remapped numbering (fnatTCPOut moves it back afterwards).
		ackIn.InitSeq += e.fnatState(id).delta
	}
	_ = rewrite.AdjustSeqAck(frame, p, &st.out, &ackIn)
	want := st.expect
	if want == rewrite.FTPNone && st.replied != rewrite.FTPNone && seq == st.repliedSeq {
		want = st.replied
	}
	if !established || want == rewrite.FTPNone || p.End == p.Payload {
		return frame
	}
	a, ok := rewrite.ParseFTPReply(frame[p.Payload:p.End], want)
	if !ok {
		return frame
	}
	st.expect = rewrite.FTPNone
	st.replied, st.repliedSeq = a.Kind, seq
	real := c.Real().Addr()
	if a.Addr.IsValid() && a.Addr != real {
		// The kernel would send the data connection to that address; a
		// connection entry binds one real server, so lvsd leaves a reply
		// naming another host as it is.
		e.ctr[ftpIgnored]++
		return frame
	}
	if _, ok := e.ftpExpect(id, c, netip.AddrPortFrom(c.Client().Addr(), 0), netip.AddrPortFrom(c.Virtual().Addr(), a.Port), a.Port, now); !ok {
		return frame
	}
	if a.Kind != rewrite.FTPPasv {
		return frame // EPSV names no address; the port stays
	}
	mtu := 0xffff
	if out, _, ok := e.clientRoute(c); ok {
		mtu = out.MTU
	}
	out := e.ftpRewrite(frame, slot, p, &a, netip.AddrPortFrom(c.Virtual().Addr(), a.Port), mtu, &st.out, seq)
	if out == nil {
		st.expect = a.Kind // the retransmission is rewritten
		return nil
	}
	e.ctr[ftpRewritten]++
	return out
}

// ftpRewrite writes ap over the address text a of the frame's payload and
// records the length change in adj for the segment starting at seq (as its
// sender numbered it). It returns nil when the rewrite fails: as
// ip_vs_ftp_out returns 0 when mangling fails, the packet is dropped and
// its retransmission tried again.
func (e *Engine) ftpRewrite(frame, slot []byte, p *rewrite.Packet, a *rewrite.FTPAddress, ap netip.AddrPort, mtu int, adj *rewrite.SeqAdjust, seq uint32) []byte {
	// A frame lent from the receive ring must not grow into the ring's
	// next frame: move it into its slot first, as tunIn does.
	if len(slot) >= headroom+len(frame) && &frame[0] != &slot[headroom] {
		frame = slot[headroom : headroom+copy(slot[headroom:], frame)]
	} else if len(slot) < headroom+len(frame) {
		frame = frame[:len(frame):len(frame)]
	}
	out, delta, err := rewrite.RewriteFTP(frame, p, a, ap, mtu)
	if err != nil {
		e.ctr[ftpRewriteFailed]++
		return nil
	}
	if delta != 0 {
		adj.Update(seq, delta)
	}
	return out
}

// ftpActive expects the real server's data connection back to the client
// named by a PORT or EPRT command: RS:dport-1 -> client:port, which leaves
// the director as VIP:vport-1 (ip_vs_ftp_in). The kernel takes any address;
// lvsd takes only the control connection's client (anything else is an FTP
// bounce, which no server should follow). For FULLNAT it returns the local
// address and port the real server must connect to instead.
func (e *Engine) ftpActive(id conntrack.ConnID, c *conntrack.Conn, a *rewrite.FTPAddress, now int64) (netip.AddrPort, bool) {
	if a.Addr != c.Client().Addr() {
		e.ctr[ftpIgnored]++
		return netip.AddrPort{}, false
	}
	return e.ftpExpect(id, c, a.AddrPort(), netip.AddrPortFrom(c.Virtual().Addr(), c.Virtual().Port()-1), c.Real().Port()-1, now)
}

// ftpExpect creates the data connection client -> virtual -> RS:dport,
// controlled by control connection id, unless it exists already. A FULLNAT
// data connection gets a port of the control connection's own local
// address (vsftpd, with its default pasv_promiscuous=NO and
// port_promiscuous=NO, accepts a data connection only from, and connects
// only to, the address of the control connection's peer), which it
// returns.
func (e *Engine) ftpExpect(id conntrack.ConnID, c *conntrack.Conn, client, virtual netip.AddrPort, dport uint16, now int64) (netip.AddrPort, bool) {
	fnat := c.Fwd() == conntrack.FwdFullNAT
	if fnat {
		// The local port is new for each data connection, so a repeated
		// PASV or a retransmitted PORT is known by its client side; the
		// retransmission must name the same local port as the first copy.
		in := conntrack.Tuple{Proto: rewrite.ProtoTCP, Src: client.Addr().As4(), SrcPort: client.Port(),
			Dst: virtual.Addr().As4(), DstPort: virtual.Port()}
		if x := e.conns.LookupDir(in, conntrack.DirIn); x != 0 {
			xc := e.conns.Conn(x)
			switch xc.State() {
			case conntrack.StateListen:
				if xc.Control() == id && xc.Real().Addr() == c.Real().Addr() {
					return xc.Local(), true // not used yet: a repeated PASV or PORT
				}
				e.ctr[ftpIgnored]++ // another session's expectation
				return netip.AddrPort{}, false
			case conntrack.StateFinWait, conntrack.StateTimeWait, conntrack.StateClose, conntrack.StateCloseWait, conntrack.StateLastAck:
				// An earlier data connection from the client port the client
				// now listens on again: it is over. It goes (not forced, so
				// its control connection stays), and the new one takes a
				// new local port (the real server may hold the old one in
				// TIME_WAIT).
				e.conns.Release(x, now)
			default:
				e.ctr[ftpIgnored]++ // in use: no client listens on that port
				return netip.AddrPort{}, false
			}
		}
	} else {
		out := conntrack.Tuple{Proto: rewrite.ProtoTCP, Src: c.Real().Addr().As4(), SrcPort: dport,
			Dst: client.Addr().As4(), DstPort: client.Port()}
		if e.conns.LookupDir(out, conntrack.DirOut) != 0 {
			return netip.AddrPort{}, true // ip_vs_conn_out_get found it: a repeated PASV
		}
	}
	params := conntrack.ConnParams{Proto: rewrite.ProtoTCP, Client: client, Virtual: virtual,
		Dest: e.conns.Dest(id), DestPort: dport, Fwd: c.Fwd()}
	if fnat {
		l := e.laddrs[c.Local().Addr().As4()]
		port, ok := uint16(0), false
		if l != nil {
			port, ok = l.tcp.get()
		}
		if !ok {
			e.ctr[rxNoLocalPort]++
			return netip.AddrPort{}, false
		}
		l.conns++
		params.Local = netip.AddrPortFrom(l.addr, port)
	}
	e.makeRoom(now, id)
	x, err := e.conns.NewExpected(&params, id, true, now)
	if err != nil {
		if fnat {
			e.releaseLocal(rewrite.ProtoTCP, params.Local, netip.AddrPort{})
		}
		e.ctr[rxTableFull]++
		return netip.AddrPort{}, false
	}
	if fnat {
		e.fnatNew(x)
	}
	e.ctr[ftpDataExpected]++
	return params.Local, true
}

// ftpSyncOut adds a control connection's offsets to its sync entry, so a
// backup that takes over keeps the control connection's numbering: for
// NAT in SEQ_DATA with the IN_SEQ/OUT_SEQ flags, as the kernel syncs
// ip_vs_ftp's in_seq and out_seq; for FULLNAT, whose SEQ_DATA carries the
// local address's remap, in lvsd's APPSEQ option. The expected data
// connections do not travel (nor do the kernel's): one the master created
// but the client or real server has not opened yet is unknown to the
// backup, and its transfer fails if the takeover falls in between.
func (e *Engine) ftpSyncOut(id conntrack.ConnID, sc *conntrack.SyncConn) {
	if len(e.ftp.conns) == 0 || sc.Flags&uint32(conntrack.FlagTemplate) != 0 {
		return
	}
	c := e.conns.Conn(id)
	st := e.ftp.lookup(id, c)
	if st == nil || (!st.in.Set && !st.out.Set) {
		return
	}
	in, out := seqDataOf(st.in), seqDataOf(st.out)
	switch c.Fwd() {
	case conntrack.FwdMasq:
		sc.HasSeq, sc.InSeq, sc.OutSeq = true, in, out
		if st.in.Set {
			sc.Flags |= conntrack.SyncFlagInSeq
		}
		if st.out.Set {
			sc.Flags |= conntrack.SyncFlagOutSeq
		}
	case conntrack.FwdFullNAT:
		sc.HasAppSeq, sc.AppIn, sc.AppOut = true, in, out
	}
}

// ftpSyncIn is the backup's half: a synced control connection the helper
// follows takes the master's offsets.
func (e *Engine) ftpSyncIn(id conntrack.ConnID, r conntrack.SyncResult, sc *conntrack.SyncConn) {
	if id == 0 || r == conntrack.SyncStale || sc.Flags&uint32(conntrack.FlagTemplate) != 0 {
		return
	}
	c := e.conns.Conn(id)
	if !e.ftp.watches(c) {
		return
	}
	var in, out conntrack.SeqData
	var inSet, outSet bool
	switch {
	case c.Fwd() == conntrack.FwdMasq && sc.HasSeq:
		in, out = sc.InSeq, sc.OutSeq
		inSet, outSet = sc.Flags&conntrack.SyncFlagInSeq != 0, sc.Flags&conntrack.SyncFlagOutSeq != 0
	case c.Fwd() == conntrack.FwdFullNAT && sc.HasAppSeq:
		in, out = sc.AppIn, sc.AppOut
		inSet, outSet = in != (conntrack.SeqData{}), out != (conntrack.SeqData{})
	default:
		return
	}
	st := e.ftp.state(id, c, e.conns.Live)
	st.in, st.out = seqAdjustOf(in, inSet), seqAdjustOf(out, outSet)
}

func seqDataOf(a rewrite.SeqAdjust) conntrack.SeqData {
	return conntrack.SeqData{InitSeq: a.InitSeq, Delta: uint32(a.Delta), PrevDelta: uint32(a.PreviousDelta)}
}

func seqAdjustOf(d conntrack.SeqData, set bool) rewrite.SeqAdjust {
	return rewrite.SeqAdjust{InitSeq: d.InitSeq, Delta: int32(d.Delta), PreviousDelta: int32(d.PrevDelta), Set: set}
}

// FTPServices lists the NAT services of t the FTP helper follows with
// ports: TCP services on one of them with a NAT real server, whose data
// connections' replies the kernel could forward too (lvsd's warning about
// ip_forward). A FULLNAT service's go to a local address, which the guard
// keeps from the kernel.
func FTPServices(t config.Table, ports []uint16) []config.Service {
	var out []config.Service
	for _, vs := range t.Services {
		if vs.Service.Protocol != config.ProtoTCP || !slices.Contains(ports, vs.Service.Port) {
			continue
		}
		if slices.ContainsFunc(vs.Dests, func(d config.Dest) bool { return d.Forward == config.ForwardMasq }) {
			out = append(out, vs.Service)
		}
	}
	return out
}
