package conntrack

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"lvslab/sched"
)

// DefaultMaxConns is the connection limit when Config.MaxConns is 0.
const DefaultMaxConns = 1 << 20

// maxConnsLimit keeps ConnID<<2 | kind within an index slot's uint32.
const maxConnsLimit = 1<<30 - 1

const (
	chunkBits = 12
	chunkSize = 1 << chunkBits
)

var (
	// ErrTableFull: the connection limit is reached; the refusal is counted
	// in Stats.Refused. Returned unwrapped, so a flood costs no allocation.
	ErrTableFull = errors.New("conntrack: connection table full")
	// ErrExists: one of the connection's keys is already tracked (for
	// FULLNAT: the local address and port are taken toward that real server).
	// Returned unwrapped, for the same reason.
	ErrExists = errors.New("conntrack: connection already tracked")

	ErrNotIPv4     = errors.New("not an IPv4 address")
	ErrProto       = errors.New("unsupported protocol")
	ErrNoDest      = errors.New("no destination")
	ErrNotTemplate = errors.New("not a live template")
	ErrTimeout     = errors.New("timeout out of range")
)

// Config sizes a Table.
type Config struct {
	// MaxConns caps live connections plus templates (0: DefaultMaxConns).
	// The kernel has no such cap; seed 000 fault 04 is what happens without
	// enough room, and Stats.Refused makes it visible.
	MaxConns int
	// SizeHint pre-sizes the index for this many connections so that it
	// never has to grow (a growth rehashes every entry in one go).
	SizeHint int
	// ReleaseLocal, if set, is called when a FULLNAT connection goes away,
	// so the local address pool can hand out local:port toward real again.
	// It must not call back into the Table.
	ReleaseLocal func(proto uint8, local, real netip.AddrPort)
	// Expiring, if set, is called when a connection's timer expires it
	// (not for a deletion, nor for templates), before its record is freed:
	// the engine resets FULLNAT connections that time out established.
	// It must not call back into the Table.
	Expiring func(id ConnID, c *Conn)
	// Seed keys the hash; 0 picks a random one.
	Seed uint64
	// ActiveEstablishedOnly counts only ESTABLISHED TCP connections in
	// ActiveConn, as kernels before 4.8 did (active.go); the default is
	// today's tcp_state_active_table.
	ActiveEstablishedOnly bool
}

// Stats are the table's counters.
type Stats struct {
	Conns     int    // live connections (templates excluded)
	Templates int    // live persistence templates
	Refused   uint64 // NewConn/NewTemplate refused because the table was full
	Created   uint64 // connections and templates created
	Expired   uint64 // connections and templates removed
	Recalled  uint64 // evicted handshakes re-created by RecallEvicted
}

type destRef struct {
	d    *sched.Dest
	refs uint32
}

// Table is the connection table. See the package comment for layout, time
// and concurrency.
type Table struct {
	chunks []*[chunkSize]Conn
	hw     uint32 // slab slots handed out so far: IDs 1..hw
	free   ConnID // free-list head, linked through wnext
	max    int

	idx index
	h   hasher
	w   wheel

	tcp    *tcpTable
	active *[numTCPStates]bool // tcpActive or tcpActivePre48
	// tcpTimeouts are the ones in force: tcpBase (the normal table, as
	// --set leaves it) or, with secure_tcp on, its shorter DOS variant.
	tcpTimeouts [numTCPStates]uint32
	tcpBase     [numTCPStates]uint32
	udpTimeout  uint32

	def     defense
	evicted evictedCache // handshakes Reclaim dropped (evicted.go)

	// Destinations by handle, so that Conn holds no pointer.
	dests    []destRef
	destFree []uint32
	destIdx  map[*sched.Dest]uint32

	release  func(proto uint8, local, real netip.AddrPort)
	expiring func(id ConnID, c *Conn)

	st Stats
}

// New returns an empty table with the kernel's default timeouts and the
// normal (not secure_tcp) state table.
func New(cfg Config) (*Table, error) {
	if cfg.MaxConns < 0 || cfg.MaxConns > maxConnsLimit {
		return nil, fmt.Errorf("conntrack: MaxConns %d outside 0..%d", cfg.MaxConns, maxConnsLimit)
	}
	if cfg.SizeHint < 0 || cfg.SizeHint > maxConnsLimit {
		return nil, fmt.Errorf("conntrack: SizeHint %d outside 0..%d", cfg.SizeHint, maxConnsLimit)
	}
	limit := cfg.MaxConns
	if limit == 0 {
		limit = DefaultMaxConns
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t := &Table{
		max:         limit,
		h:           newHasher(seed),
		tcp:         &tcpStates,
		active:      activeTable(cfg.ActiveEstablishedOnly),
		tcpTimeouts: defaultTCPTimeouts,
		tcpBase:     defaultTCPTimeouts,
		udpTimeout:  defaultUDPTimeout,
		dests:       make([]destRef, 1, 8),
		destIdx:     make(map[*sched.Dest]uint32),
		release:     cfg.ReleaseLocal,
		expiring:    cfg.Expiring,
	}
	t.def.cfg = DefaultDefense()
	t.def.rng = seed ^ 0x5bd1e995 // the drop_entry walk's random source
	hint := min(cfg.SizeHint, limit)
	t.idx.init(2 * hint)
	t.chunks = make([]*[chunkSize]Conn, 0, (hint+chunkSize-1)/chunkSize)
	return t, nil
}

func (t *Table) conn(id ConnID) *Conn {
	i := uint32(id) - 1
	return &t.chunks[i>>chunkBits][i&(chunkSize-1)]
}

// Conn returns the record of a live connection. The pointer stays valid
// until the connection is removed (records never move).
func (t *Table) Conn(id ConnID) *Conn { return t.conn(id) }

// Live reports whether id names a live connection or template.
func (t *Table) Live(id ConnID) bool {
	return id != 0 && uint32(id) <= t.hw && t.conn(id).flags&flagLive != 0
}

// Dest returns the destination a connection or template is bound to.
func (t *Table) Dest(id ConnID) *sched.Dest { return t.dests[t.conn(id).dest].d }

// Len is the number of live connections plus templates.
func (t *Table) Len() int { return t.st.Conns + t.st.Templates }

// Stats returns the counters.
func (t *Table) Stats() Stats { return t.st }

func (t *Table) alloc() (ConnID, *Conn) {
	if id := t.free; id != 0 {
		c := t.conn(id)
		t.free = c.wnext
		return id, c
	}
	if t.hw%chunkSize == 0 {
		t.chunks = append(t.chunks, new([chunkSize]Conn))
	}
	t.hw++
	id := ConnID(t.hw)
	return id, t.conn(id)
}

func (t *Table) freeSlot(id ConnID, c *Conn) {
	*c = Conn{wnext: t.free, wslot: noSlot}
	t.free = id
}

func (t *Table) acquireDest(d *sched.Dest) uint32 {
	if h, ok := t.destIdx[d]; ok {
		t.dests[h].refs++
		return h
	}
	var h uint32
	if n := len(t.destFree); n > 0 {
		h = t.destFree[n-1]
		t.destFree = t.destFree[:n-1]
	} else {
		h = uint32(len(t.dests))
		t.dests = append(t.dests, destRef{})
	}
	t.dests[h] = destRef{d: d, refs: 1}
	t.destIdx[d] = h
	return h
}

// releaseDest drops a reference; the last one forgets the pointer so that a
// deleted destination can be collected.
func (t *Table) releaseDest(h uint32) {
	r := &t.dests[h]
	if r.refs--; r.refs == 0 {
		delete(t.destIdx, r.d)
		r.d = nil
		t.destFree = append(t.destFree, h)
	}
}

func (c *Conn) inKey() Tuple {
	return Tuple{Proto: c.proto, Src: c.caddr, SrcPort: c.cport, Dst: c.vaddr, DstPort: c.vport}
}

func (c *Conn) outKey() Tuple {
	return Tuple{Proto: c.proto, Src: c.daddr, SrcPort: c.dport, Dst: c.laddr, DstPort: c.lport}
}

func (c *Conn) matches(kind uint32, k *Tuple) bool {
	if c.proto != k.Proto {
		return false
	}
	if kind == kindOut {
		return c.daddr == k.Src && c.dport == k.SrcPort && c.laddr == k.Dst && c.lport == k.DstPort
	}
	return c.caddr == k.Src && c.cport == k.SrcPort && c.vaddr == k.Dst && c.vport == k.DstPort
}

// find probes for an entry of kind want (0: in or out) matching k.
func (t *Table) find(k *Tuple, h, want uint32) (ConnID, uint32) {
	x := &t.idx
	for i := h & x.mask; ; i = (i + 1) & x.mask {
		s := x.slots[i]
		if s.ref == 0 {
			return 0, 0
		}
		if s.hash != h {
			continue
		}
		kind := s.ref & 3
		if want == 0 && kind == kindTpl || want != 0 && kind != want {
			continue
		}
		id := ConnID(s.ref >> 2)
		if t.conn(id).matches(kind, k) {
			return id, kind
		}
	}
}

// Lookup finds the connection a packet belongs to, whichever way it travels:
// k is the packet's own tuple. Dir says which side matched: DirIn for the
// client side, DirOut for the real server's reply. 0 means no connection.
func (t *Table) Lookup(k Tuple) (ConnID, Dir) {
	id, kind := t.find(&k, t.h.sum(&k), 0)
	if kind == kindOut {
		return id, DirOut
	}
	return id, DirIn
}

// Hash is the index hash of tuple k, for WarmSlot and LookupHash.
func (t *Table) Hash(k *Tuple) uint32 { return t.h.sum(k) }

// LookupHash is Lookup(k) with h = Hash(&k) already computed.
func (t *Table) LookupHash(k Tuple, h uint32) (ConnID, Dir) {
	id, kind := t.find(&k, h, 0)
	if kind == kindOut {
		return id, DirOut
	}
	return id, DirIn
}

// WarmSlot reads the index slot a lookup of hash h probes first and
// returns it as a hint for WarmConn. Neither changes anything: they exist
// for batches. A lookup costs two cache misses when the table is cold (the
// slot, then the record it names), and the caller's CPU serves a few misses
// at once only if it sees them coming: calling WarmSlot for every packet of
// a batch, then WarmConn for every hint, then looking them up, overlaps the
// misses instead of paying them one after the other. A hint is only a
// guess (a colliding entry, or none); the lookup decides.
func (t *Table) WarmSlot(h uint32) uint32 {
	return t.idx.slots[h&t.idx.mask].ref
}

// WarmConn reads both cache lines of the record hint names (a record is
// 88 bytes, so it often spans two) and returns bits of them, for the
// caller to fold into a value it keeps, so that the reads are not
// optimised away.
func (t *Table) WarmConn(hint uint32) uint32 {
	id := hint >> 2
	if id == 0 || id > t.hw {
		return 0
	}
	c := t.conn(ConnID(id))
	return uint32(c.deadline) ^ uint32(c.proto)
}

// LookupDir finds the connection whose side d matches the packet tuple k
// (ip_vs_conn_in_get / ip_vs_conn_out_get). A FULLNAT local port allocator
// asks LookupDir({proto, rip, rport, lip, lport}, DirOut) == 0.
func (t *Table) LookupDir(k Tuple, d Dir) ConnID {
	want := uint32(kindIn)
	if d == DirOut {
		want = kindOut
	}
	id, _ := t.find(&k, t.h.sum(&k), want)
	return id
}

func (t *Table) hashIn(id ConnID, c *Conn, kind uint32) {
	k := c.inKey()
	t.idx.insert(t.h.sum(&k), uint32(id)<<2|kind)
}

func (t *Table) unhash(id ConnID, c *Conn) {
	if c.flags&FlagHashed == 0 {
		return
	}
	k := c.inKey()
	kind := uint32(kindIn)
	if c.flags&FlagTemplate != 0 {
		kind = kindTpl
	} else {
		o := c.outKey()
		t.idx.remove(t.h.sum(&o), uint32(id)<<2|kindOut)
	}
	t.idx.remove(t.h.sum(&k), uint32(id)<<2|kind)
	c.flags &^= FlagHashed
}

// ConnParams describe a new connection.
type ConnParams struct {
	Proto   uint8          // ProtoTCP or ProtoUDP
	Client  netip.AddrPort // caddr:cport
	Virtual netip.AddrPort // vaddr:vport
	// Dest is the chosen real server; its address is daddr.
	Dest *sched.Dest
	// DestPort is dport (see DestPort for the kernel's rule).
	DestPort uint16
	Fwd      Fwd
	// Local is FULLNAT's laddr:lport, ignored for other methods.
	Local netip.AddrPort
	// Template is the controlling persistence template, 0 for none.
	Template ConnID
	// OnePacket (-o, UDP only): the connection is not hashed and is
	// expected to be released with Release right after its packet.
	OnePacket bool
}

func as4(a netip.Addr, what string) ([4]byte, error) {
	if !a.Is4() {
		return [4]byte{}, fmt.Errorf("conntrack: %s %v: %w", what, a, ErrNotIPv4)
	}
	return a.As4(), nil
}

// NewConn tracks a new connection (ip_vs_conn_new + ip_vs_bind_dest +
// ip_vs_control_add): state NONE, INACTIVE, a 3 s timer until its first
// packet is stepped, counted in the dest's InactConns. With a Template it is
// linked to it and the template's timer restarts at its own timeout.
func (t *Table) NewConn(p *ConnParams, now int64) (ConnID, error) {
	if p.Proto != ProtoTCP && p.Proto != ProtoUDP {
		return 0, fmt.Errorf("conntrack: protocol %d: %w", p.Proto, ErrProto)
	}
	if p.Dest == nil {
		return 0, fmt.Errorf("conntrack: %v -> %v: %w", p.Client, p.Virtual, ErrNoDest)
	}
	caddr, err := as4(p.Client.Addr(), "client")
	if err != nil {
		return 0, err
	}
	vaddr, err := as4(p.Virtual.Addr(), "virtual address")
	if err != nil {
		return 0, err
	}
	daddr, err := as4(p.Dest.Addr, "destination")
	if err != nil {
		return 0, err
	}
	laddr, lport := caddr, p.Client.Port()
	if p.Fwd == FwdFullNAT {
		if laddr, err = as4(p.Local.Addr(), "local address"); err != nil {
			return 0, err
		}
		lport = p.Local.Port()
	}
	if p.Fwd > FwdFullNAT {
		return 0, fmt.Errorf("conntrack: forwarding method %d: %w", p.Fwd, ErrProto)
	}
	if p.Template != 0 && (!t.Live(p.Template) || t.conn(p.Template).flags&FlagTemplate == 0) {
		return 0, fmt.Errorf("conntrack: control %d: %w", p.Template, ErrNotTemplate)
	}
	if t.Len() >= t.max {
		t.st.Refused++
		return 0, ErrTableFull
	}

	flags := Flags(p.Fwd) | FlagInactive | flagLive
	// __ip_vs_update_dest: every method but NAT gets NOOUTPUT. FULLNAT is NAT
	// in this respect: the director sees the replies.
	if p.Fwd != FwdMasq && p.Fwd != FwdFullNAT {
		flags |= FlagNoOutput
	}
	if p.OnePacket && p.Proto == ProtoUDP { // ip_vs_bind_dest strips it for TCP
		flags |= FlagOnePacket
	} else {
		flags |= FlagHashed
		in := Tuple{Proto: p.Proto, Src: caddr, SrcPort: p.Client.Port(), Dst: vaddr, DstPort: p.Virtual.Port()}
		out := Tuple{Proto: p.Proto, Src: daddr, SrcPort: p.DestPort, Dst: laddr, DstPort: lport}
		if id, _ := t.find(&in, t.h.sum(&in), kindIn); id != 0 {
			return 0, ErrExists
		}
		if id, _ := t.find(&out, t.h.sum(&out), kindOut); id != 0 {
			return 0, ErrExists
		}
	}

	id, c := t.alloc()
	*c = Conn{
		caddr: caddr, vaddr: vaddr, daddr: daddr, laddr: laddr,
		cport: p.Client.Port(), vport: p.Virtual.Port(), dport: p.DestPort, lport: lport,
		timeout: newConnTimeout,
		flags:   flags,
		wslot:   noSlot,
		proto:   p.Proto,
		state:   StateNone,
	}
	c.dest = t.acquireDest(p.Dest)
	p.Dest.BindConn()
	if flags&FlagHashed != 0 {
		t.hashIn(id, c, kindIn)
		o := c.outKey()
		t.idx.insert(t.h.sum(&o), uint32(id)<<2|kindOut)
	}
	t.w.start(uint64(max(now, 0)) / tickNs)
	t.arm(id, c, t.deadlineTick(now, c.timeout))
	t.st.Conns++
	t.st.Created++

	if p.Template != 0 {
		ct := t.conn(p.Template)
		c.control = p.Template
		ct.nControl++
		// ip_vs_conn_put(ct): each new connection restarts the template.
		t.arm(p.Template, ct, t.deadlineTick(now, ct.timeout))
	}
	return id, nil
}

// Step accounts one packet of connection id travelling in direction dir and
// runs its state machine (set_tcp_state / udp_state_transition): tcpFlags is
// byte 13 of the TCP header (ignored for UDP), size the packet's length. The
// timeout of the resulting state is applied and the timer restarted on every
// packet, as the kernel does, whether or not the state changed. It returns
// the new state. id must be a live connection, not a template.
func (t *Table) Step(id ConnID, dir Dir, tcpFlags uint8, size int, now int64) State {
	c := t.conn(id)
	if c.flags&FlagSync != 0 {
		t.firstLocalPacket(c)
	}
	if dir == DirOut {
		c.outPkts++
		c.outBytes += uint64(size)
	} else {
		c.inPkts++
		c.inBytes += uint64(size)
	}
	switch c.proto {
	case ProtoTCP:
		t.stepTCP(c, dir, tcpFlags)
	case ProtoUDP:
		c.timeout = t.udpTimeout
		if dir == DirOut {
			t.assure(c)
		}
	}
	t.arm(id, c, t.deadlineTick(now, c.timeout))
	return c.state
}

func (t *Table) stepTCP(c *Conn, dir Dir, tcpFlags uint8) {
	rows := rowsInput
	if dir == DirOut {
		rows = rowsOutput
	}
	if c.flags&FlagNoOutput != 0 {
		if rows == rowsOutput {
			// A reply got through us after all: track both directions.
			c.flags &^= FlagNoOutput
		} else {
			rows = rowsInputOnly
		}
	}
	next := StateClose // no RST/SYN/FIN/ACK at all
	if ev := tcpEvent(tcpFlags); ev >= 0 {
		next = t.tcp[rows][ev][c.state]
	}
	if next != c.state {
		if d := t.dests[c.dest].d; d != nil {
			switch {
			case c.flags&FlagInactive == 0 && !t.active[next]:
				d.ConnDeactivated()
				c.flags |= FlagInactive
			case c.flags&FlagInactive != 0 && t.active[next]:
				d.ConnActivated()
				c.flags &^= FlagInactive
			}
		}
		if next == StateEstablished {
			t.assure(c)
		}
	}
	c.state = next
	c.timeout = t.tcpTimeouts[next]
}

// assure is ip_vs_control_assure_ct: the controlling template has seen its
// client get through, so it survives a forced expiry of that connection.
func (t *Table) assure(c *Conn) {
	if c.control == 0 {
		return
	}
	if ct := t.conn(c.control); ct.flags&FlagTemplate != 0 {
		ct.state = TemplateAssured
	}
}

// expire is ip_vs_conn_expire. forced is the kernel's cp->timeout == 0 (a
// deletion rather than a timeout): it also drops a controlling template left
// without children unless the template is ASSURED.
func (t *Table) expire(id ConnID, c *Conn, forced bool, now int64) bool {
	if c.nControl > 0 {
		// Still controls live connections: look again in 60 s, and keep
		// 60 s as the timeout from now on, as the kernel does.
		c.timeout = templateDeferral
		t.arm(id, c, t.deadlineTick(now, c.timeout))
		return false
	}
	if !forced && t.expiring != nil && c.flags&FlagTemplate == 0 {
		t.expiring(id, c)
	}
	t.unhash(id, c)
	if c.wslot != noSlot {
		t.unfile(c)
	}
	if ctl := c.control; ctl != 0 {
		ct := t.conn(ctl)
		ct.nControl--
		c.control = 0
		if forced && ct.nControl == 0 && (ct.flags&FlagTemplate == 0 || ct.state != TemplateAssured) {
			t.expire(ctl, ct, true, now)
		}
	}
	d := t.dests[c.dest].d
	if c.flags&FlagTemplate != 0 {
		d.UnbindTemplate()
		t.st.Templates--
	} else {
		d.UnbindConn(c.flags&FlagInactive == 0)
		t.st.Conns--
		if c.Fwd() == FwdFullNAT && t.release != nil {
			t.release(c.proto, netip.AddrPortFrom(netip.AddrFrom4(c.laddr), c.lport), c.Real())
		}
	}
	t.releaseDest(c.dest)
	t.freeSlot(id, c)
	t.st.Expired++
	return true
}

// ExpireNow removes a connection at once (ip_vs_conn_del: flush, a deleted
// destination with expire_nodest_conn, connection reuse). A connection that
// still controls others is re-armed for 60 s instead, and false is returned.
// A template left without children by this is dropped too unless ASSURED.
func (t *Table) ExpireNow(id ConnID, now int64) bool {
	c := t.conn(id)
	if c.wslot != noSlot {
		t.unfile(c)
	}
	return t.expire(id, c, true, now)
}

// Release frees a one-packet (-o) connection after its packet was forwarded
// (ip_vs_conn_put on an OPS connection). It is an ordinary expiry, not a
// forced one: the template, if any, keeps its timer.
func (t *Table) Release(id ConnID, now int64) bool {
	c := t.conn(id)
	if c.wslot != noSlot {
		t.unfile(c)
	}
	return t.expire(id, c, false, now)
}

func msOf(d time.Duration) uint32 { return uint32(d / time.Millisecond) }

// SetTimeouts is ipvsadm --set tcp tcpfin udp: the ESTABLISHED, FIN_WAIT and
// UDP timeouts. 0 leaves a value unchanged. Existing connections pick the new
// value up with their next packet, as in the kernel.
func (t *Table) SetTimeouts(tcp, tcpfin, udp time.Duration) error {
	for _, v := range [...]struct {
		name string
		d    time.Duration
	}{{"tcp", tcp}, {"tcpfin", tcpfin}, {"udp", udp}} {
		if v.d < 0 || v.d > MaxTimeout {
			return fmt.Errorf("conntrack: --set %s %v: %w (0..%v)", v.name, v.d, ErrTimeout, MaxTimeout)
		}
	}
	if tcp != 0 {
		t.tcpBase[StateEstablished] = msOf(tcp)
	}
	if tcpfin != 0 {
		t.tcpBase[StateFinWait] = msOf(tcpfin)
	}
	t.applyTimeouts()
	if udp != 0 {
		t.udpTimeout = msOf(udp)
	}
	return nil
}

// Timeouts reads back what SetTimeouts sets (ipvsadm -L --timeout).
func (t *Table) Timeouts() (tcp, tcpfin, udp time.Duration) {
	ms := func(v uint32) time.Duration { return time.Duration(v) * time.Millisecond }
	return ms(t.tcpBase[StateEstablished]), ms(t.tcpBase[StateFinWait]), ms(t.udpTimeout)
}

// applyTimeouts recomputes the TCP timeouts in force: with secure_tcp on,
// each state's is the shorter of the normal one and the DOS table's.
func (t *Table) applyTimeouts() {
	t.tcpTimeouts = t.tcpBase
	if t.SecureTCP() {
		for i, v := range dosTCPTimeouts {
			t.tcpTimeouts[i] = min(t.tcpTimeouts[i], v)
		}
	}
}

// SetSecureTCP selects tcp_states_dos and the DOS timeouts (secure_tcp on)
// or tcp_states and the normal timeouts. Connections pick the timeout up
// with their next packet, as with --set. With a SecureTCP defence mode other
// than 0, the next defence evaluation may switch it again.
func (t *Table) SetSecureTCP(on bool) {
	if on {
		t.tcp = &tcpStatesDOS
	} else {
		t.tcp = &tcpStates
	}
	t.applyTimeouts()
}

// SecureTCP reports whether tcp_states_dos is in use.
func (t *Table) SecureTCP() bool { return t.tcp == &tcpStatesDOS }

// ReuseOnSYN is the conn_reuse_mode rule (is_new_conn_expected): a new SYN
// that found connection id must expire it (ExpireNow) and be scheduled as a
// new connection when mode is non-zero, the connection is not controlled
// (persistence, FTP), controls nothing, and is TCP in TIME_WAIT or CLOSE, or
// with mode&2 in FIN_WAIT with NOOUTPUT (DR/TUN, where the director never
// sees the server's FIN).
func (t *Table) ReuseOnSYN(id ConnID, mode int) bool {
	c := t.conn(id)
	if mode == 0 || c.control != 0 || c.nControl != 0 || c.proto != ProtoTCP {
		return false
	}
	switch c.state {
	case StateTimeWait, StateClose:
		return true
	case StateFinWait:
		return mode&2 != 0 && c.flags&FlagNoOutput != 0
	}
	return false
}

// Entry is one line of ipvsadm -L -c.
type Entry struct {
	ID      ConnID
	Proto   uint8
	State   string // as ipvsadm prints it: ESTABLISHED, UDP, ASSURED, ...
	Expires time.Duration
	Client  netip.AddrPort
	Virtual netip.AddrPort
	Real    netip.AddrPort
	Local   netip.AddrPort // FULLNAT only
	Fwd     Fwd
	Flags   Flags
	Dest    *sched.Dest
	Control ConnID

	InPkts, OutPkts   uint32
	InBytes, OutBytes uint64
}

// Range calls fn for every connection and template, in slab order, until fn
// returns false. One-packet connections are not listed (the kernel never
// hashes them). e is reused between calls; fn must not change the table.
func (t *Table) Range(now int64, fn func(e *Entry) bool) {
	t.RangeFrom(1, math.MaxInt, now, fn)
}

// RangeFrom is Range over at most n slots starting at slot start. It
// returns the slot to continue from, or 0 when the walk is done (or fn
// stopped it): a caller walks a large table in pieces, letting go of its
// lock in between.
func (t *Table) RangeFrom(start ConnID, n int, now int64, fn func(e *Entry) bool) ConnID {
	var e Entry
	end := uint64(t.hw)
	if uint64(start)+uint64(n)-1 < end {
		end = uint64(start) + uint64(n) - 1
	}
	for i := max(uint32(start), 1); uint64(i) <= end; i++ {
		c := t.conn(ConnID(i))
		if c.flags&flagLive == 0 || c.flags&FlagOnePacket != 0 {
			continue
		}
		left := int64(c.deadline)*tickNs - now
		e = Entry{
			ID:      ConnID(i),
			Proto:   c.proto,
			State:   StateName(c.proto, c.flags, c.state),
			Expires: time.Duration(max(left, 0)),
			Client:  c.Client(),
			Virtual: c.Virtual(),
			Real:    c.Real(),
			Local:   c.Local(),
			Fwd:     c.Fwd(),
			Flags:   c.Flags(),
			Dest:    t.dests[c.dest].d,
			Control: c.control,
			InPkts:  c.inPkts, OutPkts: c.outPkts,
			InBytes: c.inBytes, OutBytes: c.outBytes,
		}
		if !fn(&e) {
			return 0
		}
	}
	if end >= uint64(t.hw) {
		return 0
	}
	return ConnID(end + 1)
}

// DestPort is the port a new connection is forwarded to. Persistent services
// (ip_vs_sched_persist) keep the packet's port unless it hit the service port
// and the destination has a port of its own; others (ip_vs_schedule) use the
// destination's port whenever it has one.
func DestPort(persistent bool, pktPort, svcPort, destPort uint16) uint16 {
	if destPort != 0 && (!persistent || pktPort == svcPort) {
		return destPort
	}
	return pktPort
}
