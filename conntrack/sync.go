package conntrack

import (
	"fmt"
	"net/netip"
	"time"

	"lvslab/sched"
)

// The table's side of connection synchronisation (ip_vs_sync.c): which
// connections a master sends after a packet (SyncNeeded), what it sends
// (SyncEntry), and how a backup applies what it receives (ApplySync).

// FlagSync is IP_VS_CONN_F_SYNC: the connection was created or last updated
// from a sync message. lvsd clears it at the connection's first packet on
// this director, which is when a synced connection starts counting as
// active here (see ApplySync).
const FlagSync Flags = 0x0020

// Kernel defaults of the sync sysctls (ipvs-sysctl.rst).
const (
	DefaultSyncThreshold = 3
	DefaultSyncPeriod    = 50
)

// syncStates are the TCP states in which a connection is synced
// (ip_vs_sync_conn_needed).
var syncStates = [numTCPStates]bool{
	StateEstablished: true, StateFinWait: true, StateClose: true, StateCloseWait: true, StateTimeWait: true,
}

// SyncNeeded is ip_vs_sync_conn_needed with sync_refresh_period 0: whether
// the master sends connection id after an incoming packet that moved it from
// state old. TCP is synced only in ESTABLISHED and the closing states, at
// once when it moves into a closing state, otherwise on the packets where
// in_pkts % period == threshold (3rd, 53rd, ... by default; with period 0
// only the threshold-th); UDP on the same packets; one-packet connections
// never.
func (t *Table) SyncNeeded(id ConnID, old State, threshold, period uint32) bool {
	c := t.conn(id)
	if c.flags&(FlagOnePacket|FlagTemplate) != 0 {
		return false
	}
	force := false
	if c.proto == ProtoTCP {
		if int(c.state) >= numTCPStates || !syncStates[c.state] {
			return false
		}
		force = c.state != old
		if force && c.state != StateEstablished {
			return true
		}
	}
	pkts := c.inPkts
	if period > 0 {
		return pkts%period == threshold
	}
	return force || pkts == threshold
}

// SyncEntry fills sc with connection (or template) id as ip_vs_sync_conn
// puts it on the wire: its flags without HASHED, state, addresses and
// ports, and its timeout in seconds; a FULLNAT connection's local address
// goes in lvsd's extension option.
func (t *Table) SyncEntry(id ConnID, sc *SyncConn) {
	c := t.conn(id)
	*sc = SyncConn{
		Proto: c.proto, Flags: uint32(c.flags &^ (FlagHashed | flagLive | FlagSync)), State: uint16(c.state),
		CPort: c.cport, VPort: c.vport, DPort: c.dport, Timeout: c.timeout / 1000,
		CAddr: c.caddr, VAddr: c.vaddr, DAddr: c.daddr,
	}
	if c.Fwd() == FwdFullNAT {
		sc.HasLocal, sc.LAddr, sc.LPort = true, c.laddr, c.lport
	}
}

// Control returns the template connection id is linked to, or 0.
func (t *Table) Control(id ConnID) ConnID { return t.conn(id).control }

// SyncResult is what ApplySync did with an entry.
type SyncResult uint8

const (
	SyncCreated  SyncResult = iota + 1 // a new connection or template
	SyncUpdated                        // an existing one took the message's state and timeout
	SyncReplaced                       // one to another real server was replaced (the master rescheduled)
	SyncStale                          // an inactive message about a connection to another real server: ignored
)

// maxSyncTimeout caps a received timeout, as the kernel caps it at
// MAX_SCHEDULE_TIMEOUT; lvsd's timer wheel takes at most MaxTimeout.
const maxSyncTimeout = uint32(MaxTimeout / time.Second)

// ApplySync applies one received entry (ip_vs_proc_conn). dest is the local
// real server the entry's daddr:dport names in its service, found by the
// caller (ip_vs_find_dest); the forwarding method is dest's, not the
// message's. fwd is that method. A connection created here is counted
// inactive on its real server until it carries a packet here, whatever its
// state (Step then counts it by its state): a backup's schedulers must not
// see the master's connections as load on its real servers before they move
// over. The message's timeout is used (v1), or the state's timeout when it
// is 0 (v0), and 3 minutes for templates, as the kernel does.
//
// What lvsd does not do that the kernel does: an entry whose real server is
// not configured here is refused (ErrNoDest) instead of being kept unbound
// until the server appears.
func (t *Table) ApplySync(sc *SyncConn, dest *sched.Dest, fwd Fwd, now int64) (SyncResult, ConnID, error) {
	if dest == nil {
		return 0, 0, fmt.Errorf("conntrack: sync entry to %v:%d: %w", netip.AddrFrom4(sc.DAddr), sc.DPort, ErrNoDest)
	}
	flags := Flags(sc.Flags & SyncBackupMask)
	timeout := sc.Timeout
	template := flags&FlagTemplate != 0
	if template {
		if timeout == 0 {
			timeout = 180
		}
	} else if timeout == 0 {
		if sc.Proto == ProtoTCP {
			timeout = t.tcpTimeouts[sc.State] / 1000
		} else {
			timeout = t.udpTimeout / 1000
		}
	}
	timeout = min(max(timeout, 1), maxSyncTimeout)

	var id ConnID
	if template {
		k := TemplateKey{Proto: sc.Proto, SNet: sc.CAddr, VAddr: sc.VAddr, VPort: sc.VPort}
		tu := k.tuple()
		id, _ = t.find(&tu, t.h.sum(&tu), kindTpl)
	} else {
		in := Tuple{Proto: sc.Proto, Src: sc.CAddr, SrcPort: sc.CPort, Dst: sc.VAddr, DstPort: sc.VPort}
		id, _ = t.find(&in, t.h.sum(&in), kindIn)
	}
	replaced := false
	if id != 0 {
		c := t.conn(id)
		if c.daddr != sc.DAddr || c.dport != sc.DPort {
			if flags&FlagInactive != 0 {
				return SyncStale, id, nil
			}
			t.ExpireNow(id, now)
			replaced = true
			id = 0
		} else {
			// IP_VS_CONN_F_BACKUP_UPD_MASK: only INACTIVE (and the
			// sequence flags, which lvsd does not keep) follow the
			// message; a connection that has carried packets here keeps
			// its own accounting.
			c.state = State(sc.State)
			c.timeout = timeout * 1000
			t.arm(id, c, t.deadlineTick(now, c.timeout))
			return SyncUpdated, id, nil
		}
	}

	if template {
		k := TemplateKey{Proto: sc.Proto, SNet: sc.CAddr, VAddr: sc.VAddr, VPort: sc.VPort}
		nid, err := t.NewTemplate(&k, dest, time.Duration(timeout)*time.Second, now)
		if err != nil {
			return 0, 0, err
		}
		c := t.conn(nid)
		c.state = State(sc.State)
		c.dport = sc.DPort
		c.flags |= FlagSync
		return result(replaced), nid, nil
	}
	p := ConnParams{
		Proto:    sc.Proto,
		Client:   netip.AddrPortFrom(netip.AddrFrom4(sc.CAddr), sc.CPort),
		Virtual:  netip.AddrPortFrom(netip.AddrFrom4(sc.VAddr), sc.VPort),
		Dest:     dest,
		DestPort: sc.DPort,
		Fwd:      fwd,
	}
	if fwd == FwdFullNAT {
		if !sc.HasLocal {
			return 0, 0, fmt.Errorf("conntrack: sync entry %v -> %v to a FULLNAT real server without a local address: %w", p.Client, p.Virtual, ErrSyncEntry)
		}
		p.Local = netip.AddrPortFrom(netip.AddrFrom4(sc.LAddr), sc.LPort)
	}
	nid, err := t.NewConn(&p, now)
	if err != nil {
		return 0, 0, err
	}
	c := t.conn(nid)
	c.state = State(sc.State)
	c.timeout = timeout * 1000
	c.flags |= FlagSync
	c.inPkts = DefaultSyncThreshold // in_pkts = sync_threshold, as ip_vs_proc_conn sets it
	t.arm(nid, c, t.deadlineTick(now, c.timeout))
	return result(replaced), nid, nil
}

func result(replaced bool) SyncResult {
	if replaced {
		return SyncReplaced
	}
	return SyncCreated
}

// firstLocalPacket is called by Step for a connection still flagged
// FlagSync: its first packet on this director. From now on it counts on its
// real server by its state, as if it had been scheduled here.
func (t *Table) firstLocalPacket(c *Conn) {
	c.flags &^= FlagSync
	if c.flags&FlagTemplate != 0 || c.proto != ProtoTCP || !t.active[c.state] || c.flags&FlagInactive == 0 {
		return
	}
	if d := t.dests[c.dest].d; d != nil {
		d.ConnActivated()
		c.flags &^= FlagInactive
	}
}
