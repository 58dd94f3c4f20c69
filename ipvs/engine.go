// Package ipvs is the director's engine: virtual services and real servers,
// the packet pipeline (parse, connection lookup, scheduling, state, rewrite,
// transmit), neighbour resolution, ownership of the VIPs, and the control
// operations lvsadm drives.
//
// Concurrency: one mutex (the data-path lock) guards the run-time state.
// Each interface has a receive goroutine that takes it once per batch of
// frames, processes the batch and transmits what it produced before letting
// go; the timer goroutine takes it too. The control plane is serialised by
// a second mutex and does everything slow (the nftables guard, route
// lookups, building listings) outside the data-path lock, which it holds
// only to swap in a validated change or to read one chunk of a listing.
package ipvs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"time"

	"lvslab/capture"
	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/rewrite"
	"lvslab/sched"
	"lvslab/synproxy"
)

// Config tunes an Engine.
type Config struct {
	Logger *slog.Logger
	// MaxConns caps the connection table (0: conntrack's default).
	MaxConns int
	// ConnReuseMode is the sysctl conn_reuse_mode; 0 means the default 1,
	// a negative value means 0 (never reuse).
	ConnReuseMode int
	// ExpireQuiescentTemplate is the sysctl expire_quiescent_template.
	ExpireQuiescentTemplate bool
	// ExpireNodestConn is the sysctl expire_nodest_conn: a packet for a
	// connection whose real server was removed expires the connection and
	// is scheduled anew, instead of being dropped.
	ExpireNodestConn bool
	// ActiveEstablishedOnly counts only ESTABLISHED TCP connections as
	// ActiveConn, as kernels before 4.8 did (conntrack.Config).
	ActiveEstablishedOnly bool
	// Now is the clock (monotonic nanoseconds); nil uses the process clock.
	Now func() int64
	// Batch is how many frames one receive call takes (default 64).
	Batch int
	// NoARP stops lvsd answering ARP and ping for its VIPs: a director that
	// holds the rules while another one owns the addresses (a keepalived
	// backup).
	NoARP bool
	// OpenLocal opens the device through which packets for LOCALNODE real
	// servers (one of the director's own addresses) reach the director's
	// own kernel. Called once, the first time such a packet is forwarded.
	OpenLocal func() (LocalPort, error)
	// Defense are the flood defences (drop_entry, drop_packet, secure_tcp,
	// amemthresh, am_droprate); the zero value means the kernel's
	// defaults, every defence off.
	Defense conntrack.Defense
	// SynProxy are the SYN proxy's settings (the fork's synproxy_*
	// sysctls); the zero value means synproxy.DefaultSettings.
	SynProxy synproxy.Settings
	// FTPPorts are the virtual ports the FTP helper follows on NAT and FULLNAT
	// services (ip_vs_ftp ports=); nil means DefaultFTPPorts, an empty
	// list turns the helper off (ftp.go).
	FTPPorts []uint16
	// DefenceTCPDrop and DefenceUDPDrop are the FULLNAT fork's
	// defence_tcp_drop and defence_udp_drop: a packet to a VIP that finds
	// no connection and opens none is dropped in silence, not answered
	// (lvsadm --set-defense changes them at run time).
	DefenceTCPDrop, DefenceUDPDrop bool
}

// LocalPort hands frames to the director's own kernel stack (a TAP device).
type LocalPort interface {
	io.Writer
	MAC() rewrite.MAC
}

// Iface is an interface lvsd forwards on.
type Iface struct {
	Name  string
	Index int
	MAC   rewrite.MAC
	MTU   int
	// Addrs are the kernel's IPv4 addresses on the interface: the source of
	// lvsd's ARP requests and of tunnel headers.
	Addrs []netip.Prefix
	Port  capture.Port

	slot int
}

// srcFor returns our address on ifc for talking to dst: one in dst's
// subnet if there is one, else the first.
func (i *Iface) srcFor(dst netip.Addr) netip.Addr {
	for _, p := range i.Addrs {
		if p.Contains(dst) {
			return p.Addr()
		}
	}
	if len(i.Addrs) > 0 {
		return i.Addrs[0].Addr()
	}
	return netip.Addr{}
}

// Engine is one director.
type Engine struct {
	mu sync.Mutex // the data-path lock
	// ctlMu serialises control-plane changes; held while taking mu, never
	// taken by the data path.
	ctlMu sync.Mutex
	log   *slog.Logger
	cfg   Config
	now   func() int64

	ifaces  []*Iface
	byIndex map[int]*Iface

	services []*Service // in the order they were added
	byID     map[config.ServiceID]*Service
	timeouts config.Timeouts // what --set asked for (0: never set)
	byKey    map[svcKey]*Service
	byMark   map[uint32]*Service
	owned    map[[4]byte]int // VIP -> number of services on it
	marks    []MarkRule
	// markAddrs are the single addresses the mark rules claim: lvsd
	// answers ARP for them.
	markAddrs map[[4]byte]bool

	conns  *conntrack.Table
	routes *RouteTable
	neigh  *neighTable

	ctr   [numReasons]uint64
	parse [rewrite.NumReasons]uint64
	// gone holds the counters of deleted (and singly zeroed) services, so
	// the totals of node_ipvs_*_total count since start (see retire).
	gone counters

	lastOversizeWarn int64
	// The sync daemons (sync.go), nil when not running; read by the data
	// path under mu.
	syncM        *syncMaster
	syncB        *syncBackup
	lastSyncWarn int64
	ipID         uint16
	pendingARP   []arpProbe
	guard        *KernelGuard
	guardOK      bool              // the guard holds gref (else the next change reinstalls it)
	gref         map[GuardElem]int // guard elements wanted, by how many services and dests (ctlMu)
	lastFullWarn int64
	lastDefense  int64
	defense      conntrack.DefenseReport

	localAddrs map[[4]byte]bool
	// own is who answers for the VIPs (own.go).
	own ownState
	// laddrs are the FULLNAT local addresses' port pools, by address.
	laddrs   map[[4]byte]*laddrPool
	local    LocalPort
	localErr error

	sp  synProxy // synproxy.go
	ftp ftpHelper

	// fnat is the TCP state of FULLNAT connections, by ConnID (fnat.go).
	fnat   []fnatConn
	isnKey uint64 // keys the remapped initial sequence numbers
	// expiryW and expiryNow are the worker and time of the expiry run
	// in progress (expireConns), for the RSTs it sends.
	expiryW   *worker
	expiryNow int64
	// defTCPDrop and defUDPDrop are defence_tcp_drop and defence_udp_drop.
	defTCPDrop, defUDPDrop bool
}

// New creates an engine with no interfaces and no services.
func New(cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.ConnReuseMode == 0 {
		cfg.ConnReuseMode = 1
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	now := cfg.Now
	if now == nil {
		start := time.Now()
		now = func() int64 { return int64(time.Since(start)) + int64(time.Hour) }
	}
	var e *Engine
	ct, err := conntrack.New(conntrack.Config{MaxConns: cfg.MaxConns, ActiveEstablishedOnly: cfg.ActiveEstablishedOnly,
		ReleaseLocal: func(proto uint8, local, real netip.AddrPort) { e.releaseLocal(proto, local, real) },
		Expiring:     func(id conntrack.ConnID, c *conntrack.Conn) { e.expiring(id, c) }})
	if err != nil {
		return nil, fmt.Errorf("connection table: %w", err)
	}
	if cfg.Defense == (conntrack.Defense{}) {
		cfg.Defense = conntrack.DefaultDefense()
	}
	if err := ct.SetDefense(cfg.Defense); err != nil {
		return nil, fmt.Errorf("flood defences: %w", err)
	}
	e = &Engine{
		log: cfg.Logger, cfg: cfg, now: now,
		byIndex: map[int]*Iface{},
		byKey:   map[svcKey]*Service{}, byMark: map[uint32]*Service{},
		byID:   map[config.ServiceID]*Service{},
		gref:   map[GuardElem]int{},
		owned:  map[[4]byte]int{},
		conns:  ct,
		routes: NewRouteTable(nil),
		neigh:  newNeighTable(),
		laddrs: map[[4]byte]*laddrPool{},
		isnKey: rand.Uint64(),
	}
	if err := e.sp.init(cfg.SynProxy); err != nil {
		return nil, err
	}
	ftpPorts := cfg.FTPPorts
	if ftpPorts == nil {
		ftpPorts = DefaultFTPPorts
	}
	if err := e.SetFTPPorts(ftpPorts); err != nil {
		return nil, err
	}
	e.defTCPDrop, e.defUDPDrop = cfg.DefenceTCPDrop, cfg.DefenceUDPDrop
	return e, nil
}

// AddIface registers an interface before Run.
func (e *Engine) AddIface(ifc *Iface) {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	ifc.slot = len(e.ifaces)
	e.ifaces = append(e.ifaces, ifc)
	e.byIndex[ifc.Index] = ifc
}

// SetRoutes replaces the routing snapshot and re-resolves every real server.
func (e *Engine) SetRoutes(t *RouteTable) {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	_ = e.setNetState(t, e.localAddrs)
}

// SetLocalAddrs tells the engine the namespace's own addresses: a real
// server at one of them is LOCALNODE (ipvsadm shows "Local"), and a service
// on one of them takes only its port from the kernel.
func (e *Engine) SetLocalAddrs(addrs []netip.Addr) error {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	return e.setNetState(e.routes, addrSet(addrs))
}

// SetNetState replaces routes and own addresses together, re-resolving the
// real servers once: what lvsd does every second. The route lookups happen
// outside the data-path lock. When the own addresses change (the guard
// exempts them from its NAT-reply drops), or an address lvsd serves becomes (or stops
// being) one of the kernel's, the guard is reinstalled to match; the error
// says that failed (the engine then keeps the old addresses).
func (e *Engine) SetNetState(t *RouteTable, addrs []netip.Addr) error {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	return e.setNetState(t, addrSet(addrs))
}

func (e *Engine) setNetState(t *RouteTable, local map[[4]byte]bool) error {
	var err error
	if e.kernelHeldChanged(local) || !maps.Equal(e.localAddrs, local) {
		if err = e.installGuard(e.guardRefs(local), e.marksLocked()); err != nil {
			local = e.localAddrs
		}
	}
	type resolved struct {
		d *Dest
		r destRoute
	}
	var rs []resolved
	for _, s := range e.services {
		for _, d := range s.dests {
			rs = append(rs, resolved{d, e.resolve(d, t, local)})
		}
	}
	e.mu.Lock()
	e.routes, e.localAddrs = t, local
	for _, x := range rs {
		x.d.destRoute = x.r
	}
	e.mu.Unlock()
	return err
}

// kernelHeldChanged says whether a service address moves into or out of
// the kernel's own addresses with local.
func (e *Engine) kernelHeldChanged(local map[[4]byte]bool) bool {
	for a := range e.owned {
		if e.localAddrs[a] != local[a] {
			return true
		}
	}
	return false
}

func addrSet(addrs []netip.Addr) map[[4]byte]bool {
	m := make(map[[4]byte]bool, len(addrs))
	for _, a := range addrs {
		if a.Is4() {
			m[a.As4()] = true
		}
	}
	return m
}

// routeDest caches where packets to d leave. Call it holding e.mu.
func (e *Engine) routeDest(d *Dest) {
	d.destRoute = e.resolve(d, e.routes, e.localAddrs)
}

// resolve finds where packets to d leave. DR needs the RIP on-link (the
// kernel's IP_VS_RT_MODE_KNOWN_NH: the L2 next hop is the RIP itself). It
// reads only d's configuration and the interfaces, which change under
// ctlMu, so the control plane calls it without the data-path lock.
func (e *Engine) resolve(d *Dest, routes *RouteTable, local map[[4]byte]bool) destRoute {
	var dr destRoute
	dr.local = d.Addr.Is4() && local[d.Addr.As4()] && d.cfg.Forward != config.ForwardMasq && d.cfg.Forward != config.ForwardFullNAT
	if dr.local {
		return dr
	}
	r, nh, ok := routes.Lookup(d.Addr)
	if !ok {
		return dr
	}
	ifc := e.byIndex[r.Ifindex]
	if ifc == nil {
		return dr
	}
	if d.cfg.Forward == config.ForwardRoute {
		nh = d.Addr
	}
	dr.out, dr.nh = ifc, nh
	dr.src = r.Src
	if !dr.src.IsValid() {
		dr.src = ifc.srcFor(nh)
	}
	return dr
}

// Run receives on every interface until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	ifaces := append([]*Iface(nil), e.ifaces...)
	e.mu.Unlock()
	if len(ifaces) == 0 {
		return errors.New("no interfaces")
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(ifaces))
	for _, ifc := range ifaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.rxLoop(ctx, ifc); err != nil {
				errc <- fmt.Errorf("%s: %w", ifc.Name, err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.timerLoop(ctx)
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, ifc := range ifaces {
		_ = ifc.Port.SetReadDeadline(time.Now())
	}
	wg.Wait()
	e.stopAllSync()
	return err
}

func (e *Engine) timerLoop(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastEst int64
	w := e.newWorker()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		e.mu.Lock()
		now := e.now()
		e.expireConns(w, now)
		e.defenseTick(now)
		e.syncTick(now)
		e.neighTimers(w, now)
		e.synProxyTimers(w, now)
		if now-lastEst >= int64(2*time.Second) {
			lastEst = now
			for _, s := range e.services {
				s.est.tick(s.stats)
				for _, d := range s.dests {
					d.est.tick(d.stats)
				}
			}
		}
		e.flush(w)
		e.mu.Unlock()
	}
}

// headroom lets IP-in-IP encapsulation and TOA grow a frame in place.
const (
	headroom = 32
	slotSize = 2048 + headroom
	genSize  = 1024
)

// worker holds one goroutine's buffers: received frames (rewritten in
// place), generated replies, and per-interface transmit lists.
type worker struct {
	rx    []capture.Frame
	slots [][]byte
	gen   [][]byte
	ngen  int
	tx    [][]capture.Frame
	p     rewrite.Packet
	flow  sched.Flow
	// cid is the connection of the packet being transmitted (set before
	// xmitIn and xmitOut), for the per-connection state of FULLNAT.
	cid conntrack.ConnID
	// GSO super-frames: the super-frame's Packet and segment buffers.
	gp   rewrite.Packet
	segs [][]byte
	nseg int
	// warm's work for the batch: each frame's tuple as PeekTuple saw it
	// (Proto 0 when it could not), its hash and the index slot read; and
	// what it folded from the records (kept so that the reads stay).
	peeked []conntrack.Tuple
	hashes []uint32
	hints  []uint32
	warmed uint32
	// cur is the batch index of the frame being handled, -1 for a
	// segment of a GSO super-frame.
	cur int
}

// nextSeg hands SegmentTCP the next segment buffer (nil when used up).
func (w *worker) nextSeg() []byte {
	if w.nseg == len(w.segs) {
		return nil
	}
	w.nseg++
	return w.segs[w.nseg-1]
}

func (e *Engine) newWorker() *worker {
	n := e.cfg.Batch
	w := &worker{rx: make([]capture.Frame, n), slots: make([][]byte, n), gen: make([][]byte, 2*n),
		peeked: make([]conntrack.Tuple, n), hashes: make([]uint32, n), hints: make([]uint32, n), cur: -1}
	for i := range w.slots {
		w.slots[i] = make([]byte, slotSize)
	}
	for i := range w.gen {
		w.gen[i] = make([]byte, genSize)
	}
	// A 64 KiB super-frame is 45 segments at MTU 1500.
	w.segs = make([][]byte, 64)
	for i := range w.segs {
		w.segs[i] = make([]byte, slotSize)
	}
	w.tx = make([][]capture.Frame, len(e.ifaces))
	for i := range w.tx {
		w.tx[i] = make([]capture.Frame, 0, 2*n)
	}
	return w
}

// genBuf returns a buffer for a generated frame, or nil when the batch has
// used them all (the reply is then not sent, and counted as a tx error).
func (w *worker) genBuf() []byte {
	if w.ngen == len(w.gen) {
		return nil
	}
	b := w.gen[w.ngen]
	w.ngen++
	return b
}

func (w *worker) queue(ifc *Iface, frame []byte) {
	w.tx[ifc.slot] = append(w.tx[ifc.slot], capture.Frame{Buf: frame, N: len(frame), Len: len(frame)})
}

func (e *Engine) rxLoop(ctx context.Context, ifc *Iface) error {
	w := e.newWorker()
	// Frames are rewritten where the ring holds them when the port lends
	// them; only a frame that must grow (IP-in-IP) is copied into a slot.
	zc, lend := ifc.Port.(capture.ZeroCopyReader)
	for ctx.Err() == nil {
		var (
			n   int
			err error
		)
		if lend {
			n, err = zc.ReadBatchZeroCopy(w.rx)
		} else {
			for i := range w.rx {
				w.rx[i] = capture.Frame{Buf: w.slots[i][headroom:]}
			}
			n, err = ifc.Port.ReadBatch(w.rx)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		e.handleBatch(w, ifc, n)
	}
	return nil
}

// handleBatch processes the n frames received in w.rx and transmits what
// they produced, under the data-path lock.
func (e *Engine) handleBatch(w *worker, in *Iface, n int) {
	e.mu.Lock()
	now := e.now()
	e.warm(w, n)
	for i := 0; i < n; i++ {
		e.handle(w, in, i, now)
	}
	e.flush(w)
	e.mu.Unlock()
}

// warm reads what looking up the batch's connections will read, before
// any is handled: the frames' headers, the index slots and the records
// (and FULLNAT's TCP state of the connection). In
// lvsd the kernel's share of forwarding a frame evicts the connection
// table from the CPU's caches, so each lookup would wait for two misses in
// turn; read in a tight loop over the batch, the misses overlap (perf, the
// end-to-end bench: the table's lookup was a fifth of lvsd's user time).
func (e *Engine) warm(w *worker, n int) {
	if n < 2 || e.conns.Len() == 0 {
		for i := range n {
			w.peeked[i].Proto = 0
		}
		return
	}
	peeked, hashes, hints := w.peeked[:n], w.hashes[:n], w.hints[:n]
	for i := range peeked {
		f := &w.rx[i]
		k := &peeked[i]
		var ok bool
		k.Proto, k.Src, k.Dst, k.SrcPort, k.DstPort, ok = rewrite.PeekTuple(f.Buf[:f.N])
		if !ok {
			k.Proto, hints[i] = 0, 0
			continue
		}
		hashes[i] = e.conns.Hash(k)
		hints[i] = e.conns.WarmSlot(hashes[i])
	}
	sum := w.warmed
	fnat := e.fnat
	for _, h := range hints {
		sum ^= e.conns.WarmConn(h)
		if id := h >> 2; id < uint32(len(fnat)) {
			sum ^= fnat[id].delta // FULLNAT's TCP state, by ConnID
		}
	}
	w.warmed = sum
}

// flush transmits what a batch produced and resets the worker.
func (e *Engine) flush(w *worker) {
	for slot, frames := range w.tx {
		if len(frames) == 0 {
			continue
		}
		ifc := e.ifaces[slot]
		for sent := 0; sent < len(frames); {
			n, err := ifc.Port.WriteBatch(frames[sent:])
			e.ctr[txFrames] += uint64(n)
			sent += n
			if err != nil {
				// The frame at sent was refused (too big, ring full): count
				// it and carry on with the rest.
				e.ctr[txErrors]++
				sent++
			}
		}
		w.tx[slot] = frames[:0]
	}
	w.ngen = 0
	w.nseg = 0
}

// Counters returns the engine's event counters by metric name, and the parse
// errors by reason.
func (e *Engine) Counters() (events map[string]uint64, parse map[string]uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	events = make(map[string]uint64, numReasons)
	for i, v := range e.ctr {
		events[reasonNames[i]] = v
	}
	parse = map[string]uint64{}
	for i, v := range e.parse {
		if i > 0 && v > 0 {
			parse[reasonLabel(rewrite.Reason(i))] = v
		}
	}
	st := e.conns.Stats()
	events["conns"] = uint64(st.Conns)
	events["templates"] = uint64(st.Templates)
	events["conns_refused"] = st.Refused
	events["conns_created"] = st.Created
	events["conns_expired"] = st.Expired
	return events, parse
}
