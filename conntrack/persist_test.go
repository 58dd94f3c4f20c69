package conntrack

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"lvslab/sched"
)

// persistSvc plays the engine's part of ip_vs_sched_persist: find or make
// the template, then the connection it controls.
type persistSvc struct {
	t       *testing.T
	tb      *Table
	p       Persistence
	fwd     Fwd
	pick    func() *sched.Dest // the scheduler
	quiesce bool               // expire_quiescent_template
}

func (s *persistSvc) connect(proto uint8, client, vip netip.AddrPort, now int64) (ConnID, ConnID) {
	s.t.Helper()
	k, err := s.p.Key(proto, client.Addr(), vip.Addr(), vip.Port())
	if err != nil {
		s.t.Fatal(err)
	}
	ct := s.tb.LookupTemplate(&k, s.quiesce)
	var d *sched.Dest
	if ct == 0 {
		d = s.pick()
		if ct, err = s.tb.NewTemplate(&k, d, s.p.Timeout, now); err != nil {
			s.t.Fatal(err)
		}
	} else {
		d = s.tb.Dest(ct)
	}
	svcPort := s.p.Port
	if s.p.FwMark != 0 {
		svcPort = 0
	}
	id, err := s.tb.NewConn(&ConnParams{
		Proto: proto, Client: client, Virtual: vip, Dest: d,
		DestPort: DestPort(true, vip.Port(), svcPort, d.Port), Fwd: s.fwd, Template: ct,
	}, now)
	if err != nil {
		s.t.Fatal(err)
	}
	return id, ct
}

func rr(ds ...*sched.Dest) func() *sched.Dest {
	i := 0
	return func() *sched.Dest { i++; return ds[(i-1)%len(ds)] }
}

func TestTemplateKeys(t *testing.T) {
	vip := addr("207.175.44.110")
	for _, c := range []struct {
		name   string
		p      Persistence
		proto  uint8
		client string
		vport  uint16
		want   TemplateKey
	}{
		{"normal /32", Persistence{Port: 80}, ProtoTCP, "10.0.0.2", 80,
			TemplateKey{ProtoTCP, [4]byte{10, 0, 0, 2}, [4]byte{207, 175, 44, 110}, 80}},
		{"-M 255.255.255.0", Persistence{Port: 80, Netmask: addr("255.255.255.0")}, ProtoTCP, "10.0.0.77", 80,
			TemplateKey{ProtoTCP, [4]byte{10, 0, 0, 0}, [4]byte{207, 175, 44, 110}, 80}},
		{"-M 255.255.0.0", Persistence{Port: 80, Netmask: addr("255.255.0.0")}, ProtoUDP, "10.3.4.5", 80,
			TemplateKey{ProtoUDP, [4]byte{10, 3, 0, 0}, [4]byte{207, 175, 44, 110}, 80}},
		{"FTP control", Persistence{Port: 21}, ProtoTCP, "10.0.0.2", 21,
			TemplateKey{ProtoTCP, [4]byte{10, 0, 0, 2}, [4]byte{207, 175, 44, 110}, 0}},
		{"FTP data", Persistence{Port: 21}, ProtoTCP, "10.0.0.2", 40001,
			TemplateKey{ProtoTCP, [4]byte{10, 0, 0, 2}, [4]byte{207, 175, 44, 110}, 0}},
		{"port zero", Persistence{Port: 0}, ProtoTCP, "10.0.0.2", 443,
			TemplateKey{ProtoTCP, [4]byte{10, 0, 0, 2}, [4]byte{207, 175, 44, 110}, 0}},
		{"fwmark 1", Persistence{FwMark: 1}, ProtoTCP, "10.0.0.2", 443,
			TemplateKey{ProtoIP, [4]byte{10, 0, 0, 2}, [4]byte{0, 0, 0, 1}, 0}},
		{"fwmark 0x01020304 UDP", Persistence{FwMark: 0x01020304}, ProtoUDP, "10.0.0.2", 53,
			TemplateKey{ProtoIP, [4]byte{10, 0, 0, 2}, [4]byte{1, 2, 3, 4}, 0}},
	} {
		got, err := c.p.Key(c.proto, addr(c.client), vip, c.vport)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.name, got, err, c.want)
		}
	}
	if _, err := (&Persistence{}).Key(ProtoTCP, addr("2001:db8::1"), vip, 80); !errors.Is(err, ErrNotIPv4) {
		t.Errorf("IPv6 client: %v", err)
	}
}

// -M 255.255.255.0: two clients of one /24 share the template and the RS; a
// client of another /24 gets the next RS.
func TestTemplateNetmaskGranularity(t *testing.T) {
	tb := newTable(t, Config{})
	a, b := newDest("192.168.10.1:80"), newDest("192.168.10.2:80")
	s := &persistSvc{t: t, tb: tb, p: Persistence{Port: 80, Netmask: addr("255.255.255.0"), Timeout: 360 * time.Second},
		fwd: FwdMasq, pick: rr(a, b)}
	vip := ap("207.175.44.110:80")
	c1, t1 := s.connect(ProtoTCP, ap("10.0.0.2:1000"), vip, 0)
	c2, t2 := s.connect(ProtoTCP, ap("10.0.0.200:1000"), vip, sec)
	c3, t3 := s.connect(ProtoTCP, ap("10.0.1.2:1000"), vip, 2*sec)
	if t1 != t2 || t1 == t3 {
		t.Fatalf("templates %d %d %d: the /24 should share one, the other /24 not", t1, t2, t3)
	}
	if tb.Dest(c1) != a || tb.Dest(c2) != a || tb.Dest(c3) != b {
		t.Fatal("the shared template did not pin the RS")
	}
	if tb.Conn(t1).NControl() != 2 || tb.Conn(c1).Control() != t1 {
		t.Fatalf("n_control %d", tb.Conn(t1).NControl())
	}
	if a.PersistConns != 1 || b.PersistConns != 1 || a.InactConns != 2 {
		t.Fatalf("dest a %v b %v", counts(a), counts(b))
	}
	// The listing line of a template: client /24, port 0, state NONE.
	e, _ := entryOf(tb, t1, 2*sec)
	if e.State != "NONE" || e.Client != ap("10.0.0.0:0") || e.Virtual != vip || e.Real != ap("192.168.10.1:80") ||
		e.Expires != 359*time.Second || e.Flags&FlagTemplate == 0 {
		t.Fatalf("template entry %+v", e)
	}
}

func TestTemplatePortZeroAndFwmark(t *testing.T) {
	tb := newTable(t, Config{})
	a, b := newDest("192.168.10.5:0"), newDest("192.168.10.6:0")
	pcc := &persistSvc{t: t, tb: tb, p: Persistence{Port: 0, Timeout: 300 * time.Second}, fwd: FwdRoute, pick: rr(a, b)}
	vip := addr("207.175.44.110")
	// Port-zero: any port of the VIP sticks to the RS, forwarded to the same port.
	c1, t1 := pcc.connect(ProtoTCP, ap("10.0.0.2:1000"), netip.AddrPortFrom(vip, 80), 0)
	c2, t2 := pcc.connect(ProtoTCP, ap("10.0.0.2:1001"), netip.AddrPortFrom(vip, 443), 0)
	if t1 != t2 || tb.Dest(c2) != a || tb.Conn(c2).Real() != ap("192.168.10.5:443") {
		t.Fatalf("port-zero: templates %d %d, real %v", t1, t2, tb.Conn(c2).Real())
	}
	if tb.Conn(t1).Virtual() != ap("207.175.44.110:0") || tb.Conn(t1).Real() != ap("192.168.10.5:0") {
		t.Fatalf("port-zero template %v -> %v", tb.Conn(t1).Virtual(), tb.Conn(t1).Real())
	}
	_ = c1

	// fwmark 1: protocol IP, the mark as the virtual address; TCP and UDP of
	// one client share it.
	fwm := &persistSvc{t: t, tb: tb, p: Persistence{FwMark: 1, Timeout: 300 * time.Second}, fwd: FwdRoute, pick: rr(b, a)}
	f1, ft1 := fwm.connect(ProtoTCP, ap("10.0.0.3:1000"), netip.AddrPortFrom(vip, 80), 0)
	f2, ft2 := fwm.connect(ProtoUDP, ap("10.0.0.3:1000"), netip.AddrPortFrom(addr("207.175.44.111"), 53), 0)
	if ft1 != ft2 || tb.Dest(f1) != b || tb.Dest(f2) != b {
		t.Fatalf("fwmark templates %d %d", ft1, ft2)
	}
	e, _ := entryOf(tb, ft1, 0)
	if ProtoName(e.Proto) != "IP" || e.Virtual != ap("0.0.0.1:0") || e.Client != ap("10.0.0.3:0") || e.Real != ap("192.168.10.6:0") {
		t.Fatalf("fwmark template line %s %+v", ProtoName(e.Proto), e)
	}
	// The port-zero template of 10.0.0.3 is a different key (proto TCP, VIP).
	k, _ := pcc.p.Key(ProtoTCP, addr("10.0.0.3"), vip, 80)
	if tb.LookupTemplate(&k, false) != 0 {
		t.Fatal("fwmark template matched a port-zero key")
	}
}

// Each new connection restarts the template's timer; after its last
// connection the template lives on for the service timeout.
func TestTemplateRearmAndOutlive(t *testing.T) {
	tb := newTable(t, Config{})
	a := newDest("192.168.10.1:80")
	s := &persistSvc{t: t, tb: tb, p: Persistence{Port: 80, Timeout: 360 * time.Second}, fwd: FwdRoute, pick: rr(a)}
	vip := ap("207.175.44.110:80")
	c1, ct := s.connect(ProtoTCP, ap("10.0.0.2:1000"), vip, 0)
	// Short connection: SYN, ACK, FIN, ACK, then FIN_WAIT's 120 s.
	for _, f := range []uint8{fSYN, fACK, fFIN | fACK, fACK} {
		tb.Step(c1, DirIn, f, 60, 0)
	}
	if e, _ := entryOf(tb, ct, 0); e.State != "ASSURED" {
		t.Fatalf("template %s after ESTABLISHED, want ASSURED", e.State)
	}
	// A second connection at 100 s restarts the template to 460 s.
	c2, ct2 := s.connect(ProtoTCP, ap("10.0.0.2:1001"), vip, 100*sec)
	if ct2 != ct {
		t.Fatal("second connection got another template")
	}
	if e, _ := entryOf(tb, ct, 100*sec); e.Expires != 360*time.Second {
		t.Fatalf("template not re-armed by the new connection: %v left", e.Expires)
	}
	tb.Step(c2, DirIn, fRST, 60, 100*sec) // CLOSE, 10 s
	if tb.Expire(120*sec) != 2 {          // c1 (FIN_WAIT, 120 s) and c2 (CLOSE, 10 s)
		t.Fatal("connections did not expire")
	}
	if tb.Conn(ct).NControl() != 0 || !tb.Live(ct) {
		t.Fatal("template gone with its connections")
	}
	if tb.Expire(460*sec-1) != 0 {
		t.Fatal("template expired before svc timeout after its last new connection")
	}
	if tb.Expire(460*sec) != 1 || tb.Live(ct) || a.PersistConns != 0 || tb.Len() != 0 {
		t.Fatalf("template not expired at 460 s: dest %v", counts(a))
	}
	// The next client connection gets a fresh template.
	k, _ := s.p.Key(ProtoTCP, addr("10.0.0.2"), vip.Addr(), 80)
	if tb.LookupTemplate(&k, false) != 0 {
		t.Fatal("expired template still found")
	}
}

// A template whose time is up while it still controls a live connection is
// re-armed for 60 s, again and again, and goes at the first check after its
// last connection is gone.
func TestTemplateDeferral(t *testing.T) {
	tb := newTable(t, Config{})
	a := newDest("192.168.10.1:80")
	s := &persistSvc{t: t, tb: tb, p: Persistence{Port: 80, Timeout: 100 * time.Second}, fwd: FwdMasq, pick: rr(a)}
	c, ct := s.connect(ProtoTCP, ap("10.0.0.2:1000"), ap("207.175.44.110:80"), 0)
	tb.Step(c, DirIn, fSYN, 60, 0)
	tb.Step(c, DirIn, fACK, 60, 0) // ES: 900 s
	// Keep the connection alive with a packet every 100 s until 500 s.
	for now := int64(100); now <= 500; now += 100 {
		if n := tb.Expire(now * sec); n != 0 {
			t.Fatalf("something expired at %d s", now)
		}
		tb.Step(c, DirIn, fACK, 60, now*sec)
	}
	// The template was due at 100 s; deferred to 160, 220, ... every 60 s.
	if e, _ := entryOf(tb, ct, 500*sec); e.Expires != 20*time.Second || tb.Conn(ct).Timeout() != 60*time.Second {
		t.Fatalf("deferred template: %v left, timeout %v; want 20s and 60s", e.Expires, tb.Conn(ct).Timeout())
	}
	// Connection torn down at 500 s: RST -> CLOSE, gone at 510 s.
	tb.Step(c, DirIn, fRST, 60, 500*sec)
	if tb.Expire(510*sec) != 1 || !tb.Live(ct) {
		t.Fatal("connection should be gone, template not yet")
	}
	if tb.Expire(520*sec-1) != 0 || tb.Expire(520*sec) != 1 || tb.Live(ct) {
		t.Fatal("template not removed at its next 60 s check (520 s)")
	}
	if counts(a) != [3]uint32{} {
		t.Fatalf("dest %v", counts(a))
	}
}

// A template whose destination became unavailable is not used again: the
// next connection is scheduled afresh and gets a new template. The old one
// keeps its timer and child.
func TestTemplateInvalidReplaced(t *testing.T) {
	tb := newTable(t, Config{})
	a, b := newDest("192.168.10.1:80"), newDest("192.168.10.2:80")
	s := &persistSvc{t: t, tb: tb, p: Persistence{Port: 80, Timeout: 360 * time.Second}, fwd: FwdMasq, pick: rr(a, b)}
	vip := ap("207.175.44.110:80")
	c1, t1 := s.connect(ProtoTCP, ap("10.0.0.2:1000"), vip, 0)
	a.Flags &^= sched.DestAvailable // deleted while in use
	c2, t2 := s.connect(ProtoTCP, ap("10.0.0.2:1001"), vip, sec)
	if t2 == t1 || tb.Dest(c2) != b {
		t.Fatalf("invalid template reused (t1 %d t2 %d, dest %v)", t1, t2, tb.Dest(c2).Addr)
	}
	if !tb.Live(t1) || tb.Conn(c1).Control() != t1 || tb.Conn(t1).Virtual().Port() != 0xffff {
		t.Fatal("old template should live on, unhashed, with its child")
	}
	// Coming back does not revive the old template: the new one is found.
	a.Flags |= sched.DestAvailable
	_, t3 := s.connect(ProtoTCP, ap("10.0.0.2:1002"), vip, 2*sec)
	if t3 != t2 {
		t.Fatalf("third connection template %d, want %d", t3, t2)
	}
	// The old template expires normally after its child.
	tb.Expire(360 * sec)
	if tb.Live(t1) || a.PersistConns != 0 || a.InactConns != 0 {
		t.Fatalf("old template left: dest a %v", counts(a))
	}
}

// With expire_quiescent_template, weight 0 invalidates; without, a quiesced
// RS keeps its persistent clients (§4.3.2).
func TestTemplateQuiescent(t *testing.T) {
	tb := newTable(t, Config{})
	a, b := newDest("192.168.10.1:80"), newDest("192.168.10.2:80")
	s := &persistSvc{t: t, tb: tb, p: Persistence{Port: 80, Timeout: 360 * time.Second}, fwd: FwdMasq, pick: rr(a, b)}
	vip := ap("207.175.44.110:80")
	_, t1 := s.connect(ProtoTCP, ap("10.0.0.2:1000"), vip, 0)
	a.SetWeight(0)
	a.Flags |= sched.DestOverload
	c2, t2 := s.connect(ProtoTCP, ap("10.0.0.2:1001"), vip, 0)
	if t2 != t1 || tb.Dest(c2) != a {
		t.Fatal("weight 0 / overload broke persistence without expire_quiescent_template")
	}
	s.quiesce = true
	c3, t3 := s.connect(ProtoTCP, ap("10.0.0.2:1002"), vip, 0)
	if t3 == t1 || tb.Dest(c3) != b {
		t.Fatal("expire_quiescent_template did not invalidate a weight-0 template")
	}
}

// Forced removal of a connection drops its template with it if the template
// was never ASSURED and has no other children; an ASSURED one stays.
func TestTemplateDroppedWithForcedChild(t *testing.T) {
	tb := newTable(t, Config{})
	a := newDest("192.168.10.1:80")
	s := &persistSvc{t: t, tb: tb, p: Persistence{Port: 80, Timeout: 360 * time.Second}, fwd: FwdMasq, pick: rr(a)}
	vip := ap("207.175.44.110:80")

	c1, t1 := s.connect(ProtoTCP, ap("10.0.0.2:1000"), vip, 0)
	c2, _ := s.connect(ProtoTCP, ap("10.0.0.2:1001"), vip, 0)
	tb.ExpireNow(c1, sec)
	if !tb.Live(t1) {
		t.Fatal("template dropped while it still had a child")
	}
	tb.ExpireNow(c2, sec)
	if tb.Live(t1) || counts(a) != [3]uint32{} {
		t.Fatalf("non-assured template survived its last forced child: dest %v", counts(a))
	}

	c3, t3 := s.connect(ProtoTCP, ap("10.0.0.3:1000"), vip, 2*sec)
	tb.Step(c3, DirIn, fSYN, 60, 2*sec)
	tb.Step(c3, DirIn, fACK, 60, 2*sec) // ES: ASSURED
	tb.ExpireNow(c3, 3*sec)
	if !tb.Live(t3) {
		t.Fatal("ASSURED template dropped with its forced child")
	}

	// UDP: assured by an output packet.
	u, tu := s.connect(ProtoUDP, ap("10.0.0.4:1000"), vip, 4*sec)
	tb.Step(u, DirIn, 0, 60, 4*sec)
	if tb.Conn(tu).State() != TemplateNone {
		t.Fatal("UDP input packet assured the template")
	}
	tb.Step(u, DirOut, 0, 60, 4*sec)
	if tb.Conn(tu).State() != TemplateAssured {
		t.Fatal("UDP output packet did not assure the template")
	}

	// A plain timeout of a child is not forced: the non-assured template
	// keeps its own timer.
	c5, t5 := s.connect(ProtoTCP, ap("10.0.0.5:1000"), vip, 5*sec)
	_ = c5
	tb.Expire(8 * sec) // c5 dies in NONE after 3 s
	if !tb.Live(t5) {
		t.Fatal("template dropped by a child's ordinary expiry")
	}

	// Forcing a template that controls live children defers it.
	c6, t6 := s.connect(ProtoTCP, ap("10.0.0.6:1000"), vip, 9*sec)
	if tb.ExpireNow(t6, 9*sec) || !tb.Live(t6) || !tb.Live(c6) {
		t.Fatal("ExpireNow removed a template with live children")
	}
}

func TestNewTemplateErrors(t *testing.T) {
	tb := newTable(t, Config{})
	a := newDest("192.168.10.1:80")
	k := TemplateKey{Proto: ProtoTCP, SNet: [4]byte{10, 0, 0, 2}, VAddr: [4]byte{1, 1, 1, 1}, VPort: 80}
	if _, err := tb.NewTemplate(&k, nil, time.Minute, 0); !errors.Is(err, ErrNoDest) {
		t.Errorf("nil dest: %v", err)
	}
	if _, err := tb.NewTemplate(&k, a, 0, 0); !errors.Is(err, ErrTimeout) {
		t.Errorf("0 timeout: %v", err)
	}
	if _, err := tb.NewTemplate(&k, a, time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.NewTemplate(&k, a, time.Minute, 0); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate: %v", err)
	}
	// A template never matches a connection lookup and vice versa.
	if id, _ := tb.Lookup(Tuple{Proto: ProtoTCP, Src: k.SNet, Dst: k.VAddr, DstPort: 80}); id != 0 {
		t.Error("connection lookup found a template")
	}
}

// The template's daddr:dport (§4.2): the dest port for a normal service, 0
// for FTP, port-zero and fwmark services, whatever port the dest has.
func TestTemplateDestPort(t *testing.T) {
	tb := newTable(t, Config{})
	vip := addr("207.175.44.110")
	for i, c := range []struct {
		p     Persistence
		vport uint16
		want  string
	}{
		{Persistence{Port: 80, Timeout: time.Minute}, 80, "192.168.10.1:8080"},
		{Persistence{Port: 21, Timeout: time.Minute}, 21, "192.168.10.1:0"},
		{Persistence{Port: 0, Timeout: time.Minute}, 80, "192.168.10.1:0"},
		{Persistence{FwMark: 7, Timeout: time.Minute}, 80, "192.168.10.1:0"},
	} {
		d := newDest("192.168.10.1:8080")
		client := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
		s := &persistSvc{t: t, tb: tb, p: c.p, fwd: FwdMasq, pick: rr(d)}
		id, ct := s.connect(ProtoTCP, netip.AddrPortFrom(client, 5000), netip.AddrPortFrom(vip, c.vport), 0)
		if got := tb.Conn(ct).Real(); got != ap(c.want) {
			t.Errorf("%+v: template real %v, want %s", c.p, got, c.want)
		}
		// The connection itself: dest port when the service port was hit.
		wantPort := c.vport
		if c.vport == c.p.Port && c.p.FwMark == 0 {
			wantPort = 8080
		}
		if got := tb.Conn(id).Real().Port(); got != wantPort {
			t.Errorf("%+v: connection real port %d, want %d", c.p, got, wantPort)
		}
	}
}
