package conntrack

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"
)

func tuple(proto uint8, src, dst string) Tuple {
	s, d := ap(src), ap(dst)
	return Tuple{Proto: proto, Src: s.Addr().As4(), SrcPort: s.Port(), Dst: d.Addr().As4(), DstPort: d.Port()}
}

func TestConnRecordSize(t *testing.T) {
	// The memory budget (≤ 200 B per connection with both index entries and
	// the timer) rests on this.
	if n := unsafe.Sizeof(Conn{}); n != 88 {
		t.Fatalf("Conn is %d bytes, want 88", n)
	}
}

func TestLookupBothDirections(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("192.168.10.1:80")
	nat := mustConn(t, tb, ProtoTCP, "10.0.0.2:45678", "207.175.44.110:80", d, FwdMasq, 0)
	dr := mustConn(t, tb, ProtoTCP, "10.0.0.3:45678", "207.175.44.110:80", d, FwdRoute, 0)
	udp := mustConn(t, tb, ProtoUDP, "10.0.0.2:45678", "207.175.44.110:80", d, FwdMasq, 0)

	for _, c := range []struct {
		name    string
		k       Tuple
		wantID  ConnID
		wantDir Dir
	}{
		{"NAT client side", tuple(ProtoTCP, "10.0.0.2:45678", "207.175.44.110:80"), nat, DirIn},
		{"NAT reply", tuple(ProtoTCP, "192.168.10.1:80", "10.0.0.2:45678"), nat, DirOut},
		{"DR client side", tuple(ProtoTCP, "10.0.0.3:45678", "207.175.44.110:80"), dr, DirIn},
		{"DR reply (if it ever passes)", tuple(ProtoTCP, "192.168.10.1:80", "10.0.0.3:45678"), dr, DirOut},
		{"UDP is another protocol", tuple(ProtoUDP, "10.0.0.2:45678", "207.175.44.110:80"), udp, DirIn},
		{"UDP reply", tuple(ProtoUDP, "192.168.10.1:80", "10.0.0.2:45678"), udp, DirOut},
		{"other client port", tuple(ProtoTCP, "10.0.0.2:45679", "207.175.44.110:80"), 0, DirIn},
		{"other VIP port", tuple(ProtoTCP, "10.0.0.2:45678", "207.175.44.110:81"), 0, DirIn},
		{"reply from another RS", tuple(ProtoTCP, "192.168.10.2:80", "10.0.0.2:45678"), 0, DirIn},
	} {
		id, dir := tb.Lookup(c.k)
		if id != c.wantID || (id != 0 && dir != c.wantDir) {
			t.Errorf("%s: Lookup = %d %v, want %d %v", c.name, id, dir, c.wantID, c.wantDir)
		}
		if c.wantID != 0 {
			if got := tb.LookupDir(c.k, c.wantDir); got != c.wantID {
				t.Errorf("%s: LookupDir(%v) = %d", c.name, c.wantDir, got)
			}
			if got := tb.LookupDir(c.k, 1-c.wantDir); got != 0 {
				t.Errorf("%s: LookupDir(other side) = %d, want 0", c.name, got)
			}
		}
	}
	if tb.Dest(nat) != d || tb.Conn(nat).Real() != ap("192.168.10.1:80") {
		t.Fatal("dest not recorded")
	}
}

func TestFullNAT(t *testing.T) {
	type rel struct {
		proto       uint8
		local, real netip.AddrPort
	}
	var released []rel
	tb := newTable(t, Config{ReleaseLocal: func(proto uint8, local, real netip.AddrPort) {
		released = append(released, rel{proto, local, real})
	}})
	d := newDest("192.168.10.1:80")
	p := &ConnParams{
		Proto: ProtoTCP, Client: ap("198.51.100.7:40000"), Virtual: ap("203.0.113.10:80"),
		Dest: d, DestPort: 80, Fwd: FwdFullNAT, Local: ap("10.1.1.1:5000"),
	}
	id, err := tb.NewConn(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := tb.Conn(id)
	if c.Flags()&FlagNoOutput != 0 {
		t.Fatal("FULLNAT sees replies: no NOOUTPUT")
	}
	if c.Local() != ap("10.1.1.1:5000") || c.Client() != ap("198.51.100.7:40000") {
		t.Fatalf("local %v client %v", c.Local(), c.Client())
	}
	// The reply comes from rip:rport to laddr:lport, not to the client.
	if got, dir := tb.Lookup(tuple(ProtoTCP, "192.168.10.1:80", "10.1.1.1:5000")); got != id || dir != DirOut {
		t.Fatalf("reply lookup: %d %v", got, dir)
	}
	if got, _ := tb.Lookup(tuple(ProtoTCP, "192.168.10.1:80", "198.51.100.7:40000")); got != 0 {
		t.Fatal("FULLNAT reply found by client address")
	}
	if got := tb.LookupDir(tuple(ProtoTCP, "198.51.100.7:40000", "203.0.113.10:80"), DirIn); got != id {
		t.Fatal("client side lookup")
	}
	// The same local port toward the same RS is taken; another RS is fine.
	p2 := *p
	p2.Client = ap("198.51.100.8:40000")
	if _, err := tb.NewConn(&p2, 0); !errors.Is(err, ErrExists) {
		t.Fatalf("reusing local port: %v, want ErrExists", err)
	}
	p2.Dest = newDest("192.168.10.2:80")
	if _, err := tb.NewConn(&p2, 0); err != nil {
		t.Fatal(err)
	}
	// A listing line shows the local address.
	if e, _ := entryOf(tb, id, 0); e.Local != ap("10.1.1.1:5000") || e.Fwd != FwdFullNAT {
		t.Fatalf("entry %+v", e)
	}
	tb.Expire(3 * sec) // both die in NONE after 3 s
	want := []rel{
		{ProtoTCP, ap("10.1.1.1:5000"), ap("192.168.10.1:80")},
		{ProtoTCP, ap("10.1.1.1:5000"), ap("192.168.10.2:80")},
	}
	if len(released) != 2 || !(released[0] == want[0] && released[1] == want[1] || released[0] == want[1] && released[1] == want[0]) {
		t.Fatalf("released %v, want %v", released, want)
	}
}

func TestDuplicateRefused(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("192.168.10.1:80")
	mustConn(t, tb, ProtoTCP, "10.0.0.2:1", "207.175.44.110:80", d, FwdMasq, 0)
	_, err := tb.NewConn(&ConnParams{Proto: ProtoTCP, Client: ap("10.0.0.2:1"), Virtual: ap("207.175.44.110:80"), Dest: d, DestPort: 80}, 0)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if counts(d) != [3]uint32{0, 1, 0} || tb.Len() != 1 {
		t.Fatalf("refused duplicate was counted: %v, len %d", counts(d), tb.Len())
	}
}

func TestNewConnErrors(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("192.168.10.1:80")
	good := ConnParams{Proto: ProtoTCP, Client: ap("10.0.0.2:1"), Virtual: ap("207.175.44.110:80"), Dest: d, DestPort: 80}
	for _, c := range []struct {
		name string
		mod  func(p *ConnParams)
		want error
	}{
		{"sctp", func(p *ConnParams) { p.Proto = 132 }, ErrProto},
		{"no dest", func(p *ConnParams) { p.Dest = nil }, ErrNoDest},
		{"ipv6 client", func(p *ConnParams) { p.Client = ap("[2001:db8::1]:1") }, ErrNotIPv4},
		{"fullnat without local", func(p *ConnParams) { p.Fwd = FwdFullNAT }, ErrNotIPv4},
		{"bad fwd", func(p *ConnParams) { p.Fwd = 6 }, ErrProto},
		{"template that is not", func(p *ConnParams) { p.Template = 999 }, ErrNotTemplate},
	} {
		p := good
		c.mod(&p)
		if _, err := tb.NewConn(&p, 0); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if tb.Len() != 0 || counts(d) != [3]uint32{} {
		t.Fatal("a refused connection left traces")
	}
	if _, err := New(Config{MaxConns: -1}); err == nil {
		t.Error("MaxConns -1 accepted")
	}
}

// Seed 000 fault 04: a table too small for the load refuses, and says so.
func TestMaxConns(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 3})
	d := newDest("192.168.10.1:80")
	for i := range 3 {
		mustConn(t, tb, ProtoTCP, netip.AddrPortFrom(addr("10.0.0.2"), uint16(1000+i)).String(), "207.175.44.110:80", d, FwdMasq, 0)
	}
	for i := range 2 {
		_, err := tb.NewConn(&ConnParams{Proto: ProtoTCP, Client: ap("10.0.0.9:9"), Virtual: ap("207.175.44.110:80"), Dest: d, DestPort: 80}, 0)
		if !errors.Is(err, ErrTableFull) {
			t.Fatalf("4th connection: %v, want ErrTableFull", err)
		}
		if got := tb.Stats().Refused; got != uint64(i+1) {
			t.Fatalf("Refused = %d, want %d", got, i+1)
		}
	}
	k := TemplateKey{Proto: ProtoTCP, SNet: [4]byte{10, 0, 0, 9}, VAddr: [4]byte{207, 175, 44, 110}, VPort: 80}
	if _, err := tb.NewTemplate(&k, d, time.Minute, 0); !errors.Is(err, ErrTableFull) {
		t.Fatalf("template in a full table: %v", err)
	}
	if tb.Stats().Refused != 3 || d.InactConns != 3 {
		t.Fatalf("stats %+v dest %v", tb.Stats(), counts(d))
	}
	// Room again once one expires.
	tb.Expire(3 * sec)
	if tb.Len() != 0 {
		t.Fatalf("len %d after expiry", tb.Len())
	}
	mustConn(t, tb, ProtoTCP, "10.0.0.9:9", "207.175.44.110:80", d, FwdMasq, 3*sec)
}

func TestReuseOnSYN(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("192.168.10.1:80")
	port := uint16(1000)
	mk := func(fwd Fwd, st State) ConnID {
		port++
		id := mustConn(t, tb, ProtoTCP, netip.AddrPortFrom(addr("10.0.0.2"), port).String(), "207.175.44.110:80", d, fwd, 0)
		tb.Conn(id).state = st
		return id
	}
	for _, c := range []struct {
		fwd   Fwd
		state State
		mode  int
		want  bool
	}{
		{FwdMasq, StateTimeWait, 1, true},
		{FwdMasq, StateClose, 1, true},
		{FwdMasq, StateTimeWait, 0, false}, // mode 0 disables reuse
		{FwdMasq, StateEstablished, 3, false},
		{FwdMasq, StateFinWait, 3, false}, // FIN_WAIT needs NOOUTPUT
		{FwdRoute, StateFinWait, 1, false},
		{FwdRoute, StateFinWait, 2, true},
		{FwdRoute, StateFinWait, 3, true},
		{FwdTunnel, StateFinWait, 3, true},
		{FwdRoute, StateCloseWait, 3, false},
		{FwdRoute, StateSynRecv, 3, false},
	} {
		if got := tb.ReuseOnSYN(mk(c.fwd, c.state), c.mode); got != c.want {
			t.Errorf("%v in %s, mode %d: %v, want %v", c.fwd, StateName(ProtoTCP, 0, c.state), c.mode, got, c.want)
		}
	}
	// UDP never; a controlled connection never.
	u := mustConn(t, tb, ProtoUDP, "10.0.0.2:1", "207.175.44.110:80", d, FwdMasq, 0)
	if tb.ReuseOnSYN(u, 3) {
		t.Error("UDP reused")
	}
	k := TemplateKey{Proto: ProtoTCP, SNet: [4]byte{10, 0, 0, 3}, VAddr: [4]byte{207, 175, 44, 110}, VPort: 80}
	ct, err := tb.NewTemplate(&k, d, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tb.NewConn(&ConnParams{Proto: ProtoTCP, Client: ap("10.0.0.3:5"), Virtual: ap("207.175.44.110:80"), Dest: d, DestPort: 80, Template: ct}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tb.Conn(id).state = StateTimeWait
	if tb.ReuseOnSYN(id, 3) {
		t.Error("persistent (controlled) connection reused")
	}
}

// After ReuseOnSYN says so, the old entry goes and the SYN makes a new one.
func TestReuseReschedules(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("192.168.10.1:80")
	id := mustConn(t, tb, ProtoTCP, "10.0.0.2:1", "207.175.44.110:80", d, FwdRoute, 0)
	for _, f := range []uint8{fSYN, fACK, fFIN | fACK, fACK} {
		tb.Step(id, DirIn, f, 60, sec)
	}
	k := tuple(ProtoTCP, "10.0.0.2:1", "207.175.44.110:80")
	if got, _ := tb.Lookup(k); got != id || !tb.ReuseOnSYN(id, 3) {
		t.Fatal("FIN_WAIT DR connection not reusable with mode 3")
	}
	if !tb.ExpireNow(id, 2*sec) {
		t.Fatal("ExpireNow refused")
	}
	if got, _ := tb.Lookup(k); got != 0 || counts(d) != [3]uint32{} {
		t.Fatalf("old entry still there: %d, dest %v", got, counts(d))
	}
	id2 := mustConn(t, tb, ProtoTCP, "10.0.0.2:1", "207.175.44.110:80", d, FwdRoute, 2*sec)
	if s := tb.Step(id2, DirIn, fSYN, 60, 2*sec); s != StateSynRecv || d.ActiveConns != 1 {
		t.Fatalf("new connection %s, dest %v", StateName(ProtoTCP, 0, s), counts(d))
	}
}

func TestRangeListing(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.2:8080")
	now := 100 * sec
	id := mustConn(t, tb, ProtoTCP, "10.0.0.2:45678", "207.175.44.110:8080", d, FwdRoute, now)
	tb.Step(id, DirIn, fSYN, 60, now)
	tb.Step(id, DirIn, fACK, 60, now)
	ops, err := tb.NewConn(&ConnParams{Proto: ProtoUDP, Client: ap("10.0.0.2:53001"), Virtual: ap("207.175.44.110:53"),
		Dest: d, DestPort: 53, OnePacket: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	var lines []Entry
	tb.Range(now+sec, func(e *Entry) bool { lines = append(lines, *e); return true })
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1 (one-packet connections are not listed)", len(lines))
	}
	e := lines[0]
	if e.Proto != ProtoTCP || e.State != "ESTABLISHED" || e.Expires != 899*time.Second ||
		e.Client != ap("10.0.0.2:45678") || e.Virtual != ap("207.175.44.110:8080") ||
		e.Real != ap("172.16.0.2:8080") || e.Local.IsValid() || e.Fwd != FwdRoute || e.Dest != d {
		t.Fatalf("entry %+v", e)
	}
	// One-packet: not hashed, released right after its packet.
	if got, _ := tb.Lookup(tuple(ProtoUDP, "10.0.0.2:53001", "207.175.44.110:53")); got != 0 {
		t.Fatal("one-packet connection hashed")
	}
	tb.Step(ops, DirIn, 0, 100, now)
	if !tb.Release(ops, now) || d.InactConns != 0 {
		t.Fatalf("release: dest %v", counts(d))
	}
	// Stopping early.
	mustConn(t, tb, ProtoTCP, "10.0.0.3:1", "207.175.44.110:8080", d, FwdRoute, now)
	n := 0
	tb.Range(now, func(*Entry) bool { n++; return false })
	if n != 1 {
		t.Fatalf("Range went on after false: %d", n)
	}
}

// One-packet scheduling applies to UDP only: a TCP connection asking for it
// is an ordinary hashed one (ip_vs_bind_dest strips the flag).
func TestOnePacketTCPStripped(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.2:80")
	id, err := tb.NewConn(&ConnParams{Proto: ProtoTCP, Client: ap("10.0.0.2:1"), Virtual: ap("207.175.44.110:80"),
		Dest: d, DestPort: 80, OnePacket: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Conn(id).Flags()&FlagOnePacket != 0 {
		t.Fatal("TCP connection with ONE_PACKET")
	}
	if got, _ := tb.Lookup(tuple(ProtoTCP, "10.0.0.2:1", "207.175.44.110:80")); got != id {
		t.Fatal("not hashed")
	}
}

func TestDestPort(t *testing.T) {
	for _, c := range []struct {
		persistent           bool
		pkt, svc, dest, want uint16
	}{
		{false, 80, 80, 8080, 8080},
		{false, 443, 0, 8080, 8080}, // fwmark, not persistent: always the dest port
		{false, 443, 0, 0, 443},
		{true, 80, 80, 8080, 8080},
		{true, 443, 0, 8080, 443}, // port-zero/fwmark persistent: the client's port
		{true, 443, 0, 0, 443},
		{true, 80, 80, 0, 80},
	} {
		if got := DestPort(c.persistent, c.pkt, c.svc, c.dest); got != c.want {
			t.Errorf("DestPort(%v, %d, %d, %d) = %d, want %d", c.persistent, c.pkt, c.svc, c.dest, got, c.want)
		}
	}
}

// The index against a map, under random inserts and removals that exercise
// growth, clusters and backward-shift deletion with a tiny table.
func TestIndexModel(t *testing.T) {
	var x index
	x.init(0)
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[uint32]uint32{} // ref -> hash
	var refs []uint32
	for step := range 20000 {
		if len(refs) == 0 || rng.IntN(3) != 0 {
			ref := uint32(step+1) << 2
			h := rng.Uint32() & 0xff // few distinct hashes: long clusters
			x.insert(h, ref)
			model[ref] = h
			refs = append(refs, ref)
		} else {
			i := rng.IntN(len(refs))
			ref := refs[i]
			refs[i] = refs[len(refs)-1]
			refs = refs[:len(refs)-1]
			if !x.remove(model[ref], ref) {
				t.Fatalf("step %d: remove %d failed", step, ref)
			}
			delete(model, ref)
		}
		if step%997 == 0 || step == 19999 {
			checkIndex(t, &x, model)
		}
	}
	if x.remove(0x12, 0xdead<<2) {
		t.Fatal("removed an absent ref")
	}
}

func checkIndex(t *testing.T, x *index, model map[uint32]uint32) {
	t.Helper()
	if x.n != len(model) {
		t.Fatalf("n = %d, model %d", x.n, len(model))
	}
	if x.n*4 > len(x.slots)*3 {
		t.Fatalf("load %d/%d above 3/4", x.n, len(x.slots))
	}
	// Every entry reachable from its home slot without crossing an empty one.
	for ref, h := range model {
		found := false
		for i := h & x.mask; x.slots[i].ref != 0; i = (i + 1) & x.mask {
			if x.slots[i].ref == ref {
				found = x.slots[i].hash == h
				break
			}
		}
		if !found {
			t.Fatalf("ref %d (hash %#x) unreachable", ref, h)
		}
	}
}
