package ipvs

// The TCP side of FULLNAT (alibaba/LVS tcp_fnat_in_handler and
// tcp_fnat_out_handler, reference anchors-fullnat-synproxy.md §2.1 and
// §2.3): timestamps off the client's SYN, TOA in the SYN and in the first
// ACK or data packet, the sequence remap with its SACK edges, and the MSS
// of the real server's SYN/ACK lowered so the TOA always fits.

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"lvslab/conntrack"
	"lvslab/rewrite"
)

// fnatConn is what a FULLNAT TCP connection needs beyond the connection
// table's record, kept beside it by ConnID (the table's records hold no
// room for it, and other methods need none).
type fnatConn struct {
	// delta is fnat_seq.delta: the remapped initial sequence number toward
	// the real server minus the client's (clientISN).
	delta     uint32
	clientISN uint32
	// fdataSeq is fnat_seq.fdata_seq, the real server's ISN + 1 once its
	// SYN/ACK has passed: the acknowledgement of the client's first ACK
	// or data packet, which carries the TOA.
	fdataSeq uint32
	// rsSeq and rsAck are the real server's last next-sequence and
	// acknowledgement (its own numbering), for the RSTs of an expiry.
	rsSeq, rsAck uint32
	flags        fnatFlags
}

type fnatFlags uint8

const (
	fnatSeqInit fnatFlags = 1 << iota // delta is set
	fnatDataSeq                       // fdataSeq is known
	fnatRSSeen                        // rsSeq and rsAck are known
)

// fnatNew makes room for connection id's state and clears what a previous
// connection in its slot left.
func (e *Engine) fnatNew(id conntrack.ConnID) {
	if int(id) >= len(e.fnat) {
		// Grows with the table's high-water mark, never per packet.
		n := max(2*len(e.fnat), int(id)+1, 1024)
		e.fnat = append(e.fnat, make([]fnatConn, n-len(e.fnat))...)
	}
	e.fnat[id] = fnatConn{}
}

// fnatState is connection id's state; a connection that lvsd did not open
// (a synced one) gets a zero one.
func (e *Engine) fnatState(id conntrack.ConnID) *fnatConn {
	if int(id) >= len(e.fnat) {
		e.fnatNew(id)
	}
	return &e.fnat[id]
}

// fnatISN is secure_tcp_sequence_number(laddr, daddr, lport, dport): a
// hash of the local→real pair keyed by key, plus a clock that advances
// 2^32 in about 275 s, so successive connections on one reused local port
// start higher than the last, and a real server's TIME_WAIT for the port
// takes the new SYN (with timestamps removed, PAWS cannot tell it).
func fnatISN(key uint64, local, real netip.AddrPort, now int64) uint32 {
	la, ra := local.Addr().As4(), real.Addr().As4()
	x := key ^ (uint64(binary.BigEndian.Uint32(la[:]))<<32 | uint64(binary.BigEndian.Uint32(ra[:])))
	x = mix64(x ^ uint64(local.Port())<<16 ^ uint64(real.Port()))
	return uint32(x) + uint32(now>>6)
}

// mix64 is splitmix64's finaliser: every input bit moves every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// fnatTCPIn is the client→real server half: it returns the frame to send
// (moved into slot when the TOA makes it grow), or nil to drop.
func (e *Engine) fnatTCPIn(w *worker, slot, frame []byte, p *rewrite.Packet, c *conntrack.Conn, mtu int, now int64) []byte {
	st := e.fnatState(w.cid)
	seg := rewrite.TCP(frame[p.L4:p.End])
	flags := seg.Flags()
	toa := false
	if flags&rewrite.TCPFlagSYN != 0 && flags&rewrite.TCPFlagACK == 0 {
		if changed, _ := rewrite.RemoveTimestamps(frame, p); changed {
			e.ctr[fnatTimestampsRemoved]++
		}
		// A new client ISN (the first SYN, or a new connection reusing
		// one in SYN_SENT/SYN_RECV: fullnat_conn_reused) gets a new
		// remap; a retransmitted SYN keeps the one it had.
		if isn := seg.Seq(); st.flags&fnatSeqInit == 0 || isn != st.clientISN {
			st.clientISN = isn
			st.delta = fnatISN(e.isnKey, c.Local(), c.Real(), now) - isn
			st.flags = fnatSeqInit
		}
		toa = true
	} else if flags&(rewrite.TCPFlagSYN|rewrite.TCPFlagRST|rewrite.TCPFlagFIN) == 0 && flags&rewrite.TCPFlagACK != 0 &&
		st.flags&fnatDataSeq != 0 && seg.Ack() == st.fdataSeq {
		toa = true
	}
	_ = rewrite.FULLNATSeqIn(frame, p, st.delta) // p was checked by Parse
	if !toa {
		return frame
	}
	if len(frame) > len(slot)-headroom {
		e.ctr[fnatTOAFailMem]++
		return frame
	}
	if &frame[0] != &slot[headroom] {
		// Lent from the ring, which has no room to grow: move it into
		// the slot (the Packet's offsets are relative to the frame).
		frame = slot[headroom : headroom+copy(slot[headroom:], frame)]
	}
	out, err := rewrite.InsertTOA(frame, p, c.Client(), mtu)
	switch {
	case err == nil:
		e.ctr[fnatTOAOK]++
	case errors.Is(err, rewrite.ErrExceedsMTU):
		e.ctr[fnatTOAFailLen]++
	case errors.Is(err, rewrite.ErrNoOptionSpace):
		e.ctr[fnatTOAFailHeadFull]++
	default:
		e.ctr[fnatTOAFailMem]++
	}
	return out
}

// fnatTCPOut is the real server→client half.
func (e *Engine) fnatTCPOut(w *worker, frame []byte, p *rewrite.Packet) {
	st := e.fnatState(w.cid)
	seg := rewrite.TCP(frame[p.L4:p.End])
	flags := seg.Flags()
	if flags&(rewrite.TCPFlagSYN|rewrite.TCPFlagACK) == rewrite.TCPFlagSYN|rewrite.TCPFlagACK {
		st.fdataSeq = seg.Seq() + 1
		st.flags |= fnatDataSeq
		if changed, _ := rewrite.ReduceMSSForTOA(frame, p); changed {
			e.ctr[fnatMSSReduced]++
		}
	}
	end := seg.Seq() + uint32(p.End-p.Payload)
	if flags&(rewrite.TCPFlagSYN|rewrite.TCPFlagFIN) != 0 {
		end++
	}
	st.rsSeq, st.flags = end, st.flags|fnatRSSeen
	if flags&rewrite.TCPFlagACK != 0 {
		st.rsAck = seg.Ack()
	}
	_ = rewrite.FULLNATSeqOut(frame, p, st.delta)
}

// expireConns runs the connection table's timers with w and now at hand
// for the RSTs of expiring (the table calls back while it expires).
func (e *Engine) expireConns(w *worker, now int64) {
	e.expiryW, e.expiryNow = w, now
	e.conns.Expire(now)
	e.expiryW = nil
}

// expiring is conn_expire_tcp_rst: an established FULLNAT connection that
// times out is reset at both ends, as the fork does, so neither the client
// nor the real server keeps a connection the director has forgotten (its
// next segment would find no entry and be refused). Each RST carries the
// sequence number its receiver expects next, from the last segments seen.
func (e *Engine) expiring(id conntrack.ConnID, c *conntrack.Conn) {
	w := e.expiryW
	if w == nil || c.Fwd() != conntrack.FwdFullNAT || c.Proto() != rewrite.ProtoTCP || c.State() != conntrack.StateEstablished ||
		int(id) >= len(e.fnat) {
		return
	}
	st := &e.fnat[id]
	if st.flags&fnatRSSeen == 0 {
		return
	}
	// To the client: the real server's next byte, acknowledging what the
	// real server acknowledged (in the client's numbering).
	e.sendReset(w, c.Virtual(), c.Client(), st.rsSeq, st.rsAck-st.delta)
	// To the real server: the client's next byte in its numbering, which
	// also counts what the FTP helper's rewrites added or took away
	// (ftpPacket moved the acknowledgement back before it was noted).
	next := st.rsAck
	if fc := e.ftp.lookup(id, c); fc != nil && fc.in.Active() {
		next = fc.in.Seq(next-st.delta) + st.delta
	}
	e.sendReset(w, c.Local(), c.Real(), next, st.rsSeq)
}

func (e *Engine) sendReset(w *worker, src, dst netip.AddrPort, seq, ack uint32) {
	r, nh, ok := e.routes.Lookup(dst.Addr())
	out := e.byIndex[r.Ifindex]
	buf := w.genBuf()
	if !ok || out == nil || buf == nil {
		e.ctr[txErrors]++
		return
	}
	n, err := rewrite.BuildReset(buf, src, dst, seq, ack, defaultTTL)
	if err != nil {
		e.ctr[txErrors]++
		return
	}
	e.ctr[fnatExpireRST]++
	e.transmit(w, out, nh, buf[:n], e.expiryNow)
}

// fnatSyncOut puts a FULLNAT connection's sequence remap into its sync
// entry, in the kernel's SEQ_DATA option (in_seq: the client's ISN and the
// delta), so a backup that takes over keeps translating the client's
// numbering as the real server knows it.
func (e *Engine) fnatSyncOut(id conntrack.ConnID, sc *conntrack.SyncConn) {
	if !sc.HasLocal || int(id) >= len(e.fnat) || e.fnat[id].flags&fnatSeqInit == 0 {
		return
	}
	st := &e.fnat[id]
	sc.HasSeq = true
	sc.InSeq = conntrack.SeqData{InitSeq: st.clientISN, Delta: st.delta}
	sc.OutSeq = conntrack.SeqData{}
}

// fnatSyncIn is the backup's half: a synced FULLNAT connection takes the
// master's remap (a new one starts from a clean state).
func (e *Engine) fnatSyncIn(id conntrack.ConnID, r conntrack.SyncResult, sc *conntrack.SyncConn) {
	if !sc.HasLocal || id == 0 || r == conntrack.SyncStale {
		return
	}
	if r == conntrack.SyncCreated || r == conntrack.SyncReplaced {
		e.fnatNew(id)
	}
	if sc.HasSeq {
		st := e.fnatState(id)
		st.clientISN, st.delta = sc.InSeq.InitSeq, sc.InSeq.Delta
		st.flags |= fnatSeqInit
	}
}

// fnatServerSYNACK prepares a FULLNAT connection's SYN/ACK for the SYN
// proxy, which takes it (it goes no further): its acknowledgement is put
// back into the client's numbering, which the proxy checks it against, and
// the real server's ISN is noted, so the client's stored ACK, released to
// the real server next, counts as the first ACK and carries the TOA
// (toa.ko reads it from the handshake's last packet). It always reports
// true, to sit in the proxy's condition.
func (e *Engine) fnatServerSYNACK(id conntrack.ConnID, c *conntrack.Conn, frame []byte, p *rewrite.Packet) bool {
	if c.Fwd() != conntrack.FwdFullNAT || p.Protocol != rewrite.ProtoTCP {
		return true
	}
	seg := rewrite.TCP(frame[p.L4:p.End])
	if seg.Flags()&(rewrite.TCPFlagSYN|rewrite.TCPFlagACK) == rewrite.TCPFlagSYN|rewrite.TCPFlagACK {
		st := e.fnatState(id)
		st.fdataSeq = seg.Seq() + 1
		st.flags |= fnatDataSeq
		_ = rewrite.FULLNATSeqOut(frame, p, st.delta) // p was checked by Parse
	}
	return true
}
