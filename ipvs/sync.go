package ipvs

// The connection synchronisation daemon (ip_vs_sync.c): a master sends the
// connections it forwards to a multicast group, a backup applies what it
// hears, so that the backup can carry those connections on when it takes
// the VIP over. Protocol version 1 on the wire (conntrack/syncmsg.go); the
// kernel's defaults and rules (reference/ipvs.md §5).
//
// The master's side runs on the data path: after an incoming packet,
// conntrack.SyncNeeded decides (the 3rd, 53rd, ... packet, or a move into a
// closing state) and the entry is appended to the current message, under
// the data-path lock and without allocating. Full messages go to a sender
// goroutine through a fixed pool of buffers (a full pool drops the message
// and counts it, as the kernel's sync_qlen_max does); the timer loop sends a
// partly filled one once it is 2 s old (IPVS_SYNC_FLUSH_TIME). The backup's
// side is a goroutine reading the group, applying each message under the
// data-path lock.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/ipvs/ctl"
)

const (
	syncFlushAge  = int64(2 * time.Second) // IPVS_SYNC_FLUSH_TIME
	syncPool      = 64                     // messages in flight to the sender
	syncMasterMTU = 1500                   // the master's sync_maxlen is computed from 1500 whatever the device
	syncHeaders   = 28                     // IPv4 + UDP
)

type syncMaster struct {
	cfg     config.Daemon
	conn    *net.UDPConn
	w       conntrack.SyncWriter
	cur     []byte // the message being filled, nil when none
	since   int64  // when cur got its first entry
	free    chan []byte
	queue   chan []byte
	scratch conntrack.SyncConn
	done    chan struct{}
}

type syncBackup struct {
	cfg     config.Daemon
	conn    *net.UDPConn
	scratch conntrack.SyncConn
	done    chan struct{}
}

// ErrSyncRunning and ErrSyncNotRunning are the kernel's EEXIST and ESRCH
// for --start-daemon and --stop-daemon.
var (
	ErrSyncRunning    = errors.New("sync daemon already running")
	ErrSyncNotRunning = errors.New("no sync daemon running")
)

// StartSync starts the master or backup sync daemon (--start-daemon).
// Master and backup may run at once, as in the kernel.
func (e *Engine) StartSync(d config.Daemon) error {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	if d.Group == (netip.Addr{}) {
		d.Group = netip.MustParseAddr(conntrack.DefaultSyncGroup)
	}
	if d.Port == 0 {
		d.Port = conntrack.DefaultSyncPort
	}
	if d.TTL == 0 {
		d.TTL = 1
	}
	if !d.Group.Is4() || !d.Group.IsMulticast() {
		return fmt.Errorf("sync daemon: group %v is not an IPv4 multicast address", d.Group)
	}
	ifi, err := net.InterfaceByName(d.McastIfn)
	if err != nil {
		return fmt.Errorf("sync daemon: --mcast-interface %s: %w", d.McastIfn, err)
	}
	switch d.State {
	case "master":
		e.mu.Lock()
		running := e.syncM != nil
		e.mu.Unlock()
		if running {
			return fmt.Errorf("master %w", ErrSyncRunning)
		}
		if d.MaxLen == 0 {
			d.MaxLen = syncMasterMTU - syncHeaders
		}
		m, err := openSyncMaster(d, ifi)
		if err != nil {
			return err
		}
		e.mu.Lock()
		e.syncM = m
		e.mu.Unlock()
		go e.syncSender(m)
		e.log.Info("sync daemon started", "state", "master", "mcast_ifn", d.McastIfn, "syncid", d.SyncID, "group", d.Group, "port", d.Port, "maxlen", d.MaxLen)
	case "backup":
		e.mu.Lock()
		running := e.syncB != nil
		e.mu.Unlock()
		if running {
			return fmt.Errorf("backup %w", ErrSyncRunning)
		}
		if d.MaxLen == 0 {
			d.MaxLen = min(max(ifi.MTU, 1500), 65535) - syncHeaders
		}
		conn, err := net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: d.Group.AsSlice(), Port: int(d.Port)})
		if err != nil {
			return fmt.Errorf("sync daemon: backup on %s %v:%d: %w", d.McastIfn, d.Group, d.Port, err)
		}
		b := &syncBackup{cfg: d, conn: conn, done: make(chan struct{})}
		e.mu.Lock()
		e.syncB = b
		e.mu.Unlock()
		go e.syncReceiver(b)
		e.log.Info("sync daemon started", "state", "backup", "mcast_ifn", d.McastIfn, "syncid", d.SyncID, "group", d.Group, "port", d.Port)
	default:
		return fmt.Errorf("sync daemon: state %q, want master or backup", d.State)
	}
	return nil
}

func openSyncMaster(d config.Daemon, ifi *net.Interface) (*syncMaster, error) {
	// Bound to the interface's primary IPv4 address and connected to the
	// group, as make_send_sock does.
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("sync daemon: %s: %w", ifi.Name, err)
	}
	var src net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			src = n.IP.To4()
			break
		}
	}
	if src == nil {
		return nil, fmt.Errorf("sync daemon: --mcast-interface %s has no IPv4 address", ifi.Name)
	}
	conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: src}, &net.UDPAddr{IP: d.Group.AsSlice(), Port: int(d.Port)})
	if err != nil {
		return nil, fmt.Errorf("sync daemon: master socket %v -> %v:%d: %w", src, d.Group, d.Port, err)
	}
	rc, err := conn.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			s := int(fd)
			err = errors.Join(
				unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, int(d.TTL)),
				unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0),
				unix.SetsockoptIPMreqn(s, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)}),
				unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT),
			)
		})
		err = errors.Join(err, cerr)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("sync daemon: master socket options: %w", err)
	}
	m := &syncMaster{cfg: d, conn: conn, free: make(chan []byte, syncPool), queue: make(chan []byte, syncPool), done: make(chan struct{})}
	for range syncPool {
		m.free <- make([]byte, d.MaxLen)
	}
	return m, nil
}

// StopSync stops the master or backup sync daemon (--stop-daemon). A
// master sends what it has collected first.
func (e *Engine) StopSync(state string) error {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	switch state {
	case "master":
		e.mu.Lock()
		m := e.syncM
		if m != nil {
			e.syncQueue(m)
			e.syncM = nil
		}
		e.mu.Unlock()
		if m == nil {
			return fmt.Errorf("master: %w", ErrSyncNotRunning)
		}
		close(m.queue)
		<-m.done
		_ = m.conn.Close()
	case "backup":
		e.mu.Lock()
		b := e.syncB
		e.syncB = nil
		e.mu.Unlock()
		if b == nil {
			return fmt.Errorf("backup: %w", ErrSyncNotRunning)
		}
		_ = b.conn.Close()
		<-b.done
	default:
		return fmt.Errorf("sync daemon: state %q, want master or backup", state)
	}
	e.log.Info("sync daemon stopped", "state", state)
	return nil
}

// stopAllSync is for Close.
func (e *Engine) stopAllSync() {
	for _, st := range []string{"master", "backup"} {
		_ = e.StopSync(st)
	}
}

// SyncStatus is ipvsadm -L --daemon.
func (e *Engine) SyncStatus() []ctl.DaemonStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ctl.DaemonStatus
	for _, d := range []*config.Daemon{e.syncCfg(true), e.syncCfg(false)} {
		if d != nil {
			out = append(out, ctl.DaemonStatus{State: d.State, McastIfn: d.McastIfn, SyncID: d.SyncID, MaxLen: uint32(d.MaxLen), Group: d.Group, Port: d.Port, TTL: d.TTL})
		}
	}
	return out
}

func (e *Engine) syncCfg(master bool) *config.Daemon {
	if master && e.syncM != nil {
		return &e.syncM.cfg
	}
	if !master && e.syncB != nil {
		return &e.syncB.cfg
	}
	return nil
}

// syncConn is the master's hook after an incoming packet moved connection
// id from state old. Called with e.mu held.
func (e *Engine) syncConn(id conntrack.ConnID, old conntrack.State, now int64) {
	m := e.syncM
	if !e.conns.SyncNeeded(id, old, conntrack.DefaultSyncThreshold, conntrack.DefaultSyncPeriod) {
		return
	}
	e.syncAdd(m, id, now)
	if ctl := e.conns.Control(id); ctl != 0 {
		// Its template goes with it, so the backup keeps the client's
		// persistence too.
		e.syncAdd(m, ctl, now)
	}
}

func (e *Engine) syncAdd(m *syncMaster, id conntrack.ConnID, now int64) {
	e.conns.SyncEntry(id, &m.scratch)
	e.synProxySyncOut(id, &m.scratch)
	e.fnatSyncOut(id, &m.scratch)
	e.ftpSyncOut(id, &m.scratch)
	if m.cur != nil && m.w.Add(&m.scratch) {
		e.ctr[syncConnsSent]++
		return
	}
	e.syncQueue(m)
	select {
	case m.cur = <-m.free:
	default:
		e.ctr[syncDropped]++ // every buffer is waiting to be sent
		return
	}
	m.w.Reset(m.cur, m.cfg.SyncID, m.cfg.MaxLen)
	m.since = now
	if m.w.Add(&m.scratch) {
		e.ctr[syncConnsSent]++
	}
}

// syncQueue hands the current message to the sender.
func (e *Engine) syncQueue(m *syncMaster) {
	if m.cur == nil {
		return
	}
	if msg := m.w.Bytes(); msg != nil {
		m.queue <- msg // never blocks: the queue holds the whole pool
	} else {
		m.free <- m.cur
	}
	m.cur = nil
}

// syncTick sends a partly filled message once it is old enough. Called by
// the timer loop with e.mu held.
func (e *Engine) syncTick(now int64) {
	if m := e.syncM; m != nil && m.cur != nil && now-m.since >= syncFlushAge {
		e.syncQueue(m)
	}
}

func (e *Engine) syncSender(m *syncMaster) {
	defer close(m.done)
	for msg := range m.queue {
		_, err := m.conn.Write(msg)
		e.mu.Lock()
		if err != nil {
			e.ctr[syncSendErrors]++
		} else {
			e.ctr[syncMessagesSent]++
		}
		e.mu.Unlock()
		m.free <- msg[:cap(msg)]
	}
}

func (e *Engine) syncReceiver(b *syncBackup) {
	defer close(b.done)
	buf := make([]byte, 65535)
	for {
		n, err := b.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.EINTR) {
				continue
			}
			e.log.Warn("sync daemon: backup read", "err", err)
			return
		}
		e.applySyncMessage(b, buf[:n])
	}
}

// applySyncMessage is ip_vs_process_message: the syncid filter, then each
// entry.
func (e *Engine) applySyncMessage(b *syncBackup, msg []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ctr[syncMessagesReceived]++
	if len(msg) > 1 && b.cfg.SyncID != 0 && msg[1] != b.cfg.SyncID {
		// The syncid is byte 1 in both versions' headers.
		e.ctr[syncOtherSyncID]++
		return
	}
	now := e.now()
	_, err := conntrack.ParseSync(msg, &b.scratch, func(c *conntrack.SyncConn) { e.applySyncEntry(c, now) },
		func(conntrack.SyncSkip) { e.ctr[syncEntriesSkipped]++ })
	if err != nil {
		e.ctr[syncMalformed]++
		if now-e.lastSyncWarn > int64(10*time.Second) {
			e.lastSyncWarn = now
			e.log.Warn("sync daemon: bad message", "bytes", len(msg), "err", err)
		}
	}
}

func (e *Engine) applySyncEntry(c *conntrack.SyncConn, now int64) {
	d := e.syncDest(c)
	if d == nil {
		e.ctr[syncNoDest]++
		return
	}
	fwd, _ := fwdOf(d.cfg.Forward)
	r, id, err := e.conns.ApplySync(c, &d.Dest, fwd, now)
	if err != nil {
		e.ctr[syncApplyFailed]++
		return
	}
	if r != conntrack.SyncStale {
		e.synProxySyncIn(id, c)
	}
	e.fnatSyncIn(id, r, c)
	e.ftpSyncIn(id, r, c)
	switch r {
	case conntrack.SyncCreated, conntrack.SyncReplaced:
		e.ctr[syncConnsCreated]++
		if c.Flags&uint32(conntrack.FlagTemplate) == 0 {
			d.stats.conns++
			d.svc.stats.conns++
		}
	case conntrack.SyncUpdated:
		e.ctr[syncConnsUpdated]++
	case conntrack.SyncStale:
		e.ctr[syncStale]++
	}
}

// syncDest is ip_vs_find_dest for an entry: the service by protocol,
// virtual address and port (or fwmark), then the real server by address
// and port.
func (e *Engine) syncDest(c *conntrack.SyncConn) *Dest {
	var s *Service
	if c.Fwmark != 0 {
		s = e.byMark[c.Fwmark]
	}
	if s == nil && c.Proto == conntrack.ProtoIP {
		// A fwmark template carries the mark as its virtual address.
		s = e.byMark[uint32(c.VAddr[0])<<24|uint32(c.VAddr[1])<<16|uint32(c.VAddr[2])<<8|uint32(c.VAddr[3])]
	}
	if s == nil {
		s = e.byKey[svcKey{proto: c.Proto, addr: c.VAddr, port: c.VPort}]
	}
	if s == nil {
		s = e.byKey[svcKey{proto: c.Proto, addr: c.VAddr}]
	}
	if s == nil {
		return nil
	}
	daddr := netip.AddrFrom4(c.DAddr)
	for _, d := range s.dests {
		if d.Addr == daddr && (d.Port == c.DPort || c.DPort == 0 || d.Port == 0) {
			return d
		}
	}
	return nil
}
