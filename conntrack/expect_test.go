package conntrack

import (
	"testing"
	"time"
)

// TestExpectedPassive: an FTP passive data connection is announced without
// a client port, found by the client's first packet from any port, then
// only under its full tuple; it holds its control connection while it
// lives, and the control connection's expiry waits for it.
func TestExpectedPassive(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.3:21")
	ctl := mustConn(t, tb, ProtoTCP, "198.51.100.2:40000", "203.0.113.5:21", d, FwdMasq, 0)
	tb.Step(ctl, DirIn, fSYN, 60, 0)
	data, err := tb.NewExpected(&ConnParams{Proto: ProtoTCP, Client: ap("198.51.100.2:0"), Virtual: ap("203.0.113.5:30001"),
		Dest: d, DestPort: 30001, Fwd: FwdMasq}, ctl, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := tb.Conn(data)
	if c.State() != StateListen || c.Flags()&FlagNoCport == 0 || c.Control() != ctl || tb.Conn(ctl).NControl() != 1 {
		t.Fatalf("expected conn: state %v flags %#x control %d nControl %d", c.State(), c.Flags(), c.Control(), tb.Conn(ctl).NControl())
	}
	if c.Timeout() != 2*time.Minute {
		t.Errorf("LISTEN timeout %v, want 2m", c.Timeout())
	}
	syn := Tuple{Proto: ProtoTCP, Src: addr("198.51.100.2").As4(), SrcPort: 45678, Dst: addr("203.0.113.5").As4(), DstPort: 30001}
	if id, _ := tb.Lookup(syn); id != 0 {
		t.Fatal("full tuple found before the fill")
	}
	other := syn
	other.Src = addr("198.51.100.9").As4()
	if tb.FillClientPort(other) != 0 {
		t.Fatal("another client filled the port")
	}
	if got := tb.FillClientPort(syn); got != data {
		t.Fatalf("FillClientPort = %d, want %d", got, data)
	}
	if id, dir := tb.Lookup(syn); id != data || dir != DirIn {
		t.Fatalf("after the fill Lookup = %d %v", id, dir)
	}
	reply := Tuple{Proto: ProtoTCP, Src: addr("172.16.0.3").As4(), SrcPort: 30001, Dst: addr("198.51.100.2").As4(), DstPort: 45678}
	if id, dir := tb.Lookup(reply); id != data || dir != DirOut {
		t.Fatalf("reply Lookup = %d %v", id, dir)
	}
	if tb.FillClientPort(syn) != 0 {
		t.Fatal("a filled connection filled again")
	}
	// The control connection cannot go while its data connection lives.
	if tb.ExpireNow(ctl, sec) {
		t.Fatal("control connection expired under a live data connection")
	}
	tb.ExpireNow(data, 2*sec)
	if tb.Live(ctl) {
		// A forced expiry of the last child drops its controller, as
		// ip_vs_conn_expire does ("drop CTL or non-assured TPL").
		t.Fatal("control connection survived its forced child")
	}
	if s := tb.Stats(); s.Conns != 0 {
		t.Fatalf("%d connections left", s.Conns)
	}
}

// TestExpectedPassiveFullNAT: a FULLNAT passive data connection has its
// server side (RS:port -> LIP:lport) from the start; the client's first
// packet fills the client port and leaves that side as it was.
func TestExpectedPassiveFullNAT(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.3:21")
	ctl := mustConn(t, tb, ProtoTCP, "198.51.100.2:40000", "203.0.113.5:21", d, FwdFullNAT, 0)
	data, err := tb.NewExpected(&ConnParams{Proto: ProtoTCP, Client: ap("198.51.100.2:0"), Virtual: ap("203.0.113.5:30001"),
		Dest: d, DestPort: 30001, Fwd: FwdFullNAT, Local: ap("192.168.100.1:5001")}, ctl, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	reply := Tuple{Proto: ProtoTCP, Src: addr("172.16.0.3").As4(), SrcPort: 30001, Dst: addr("192.168.100.1").As4(), DstPort: 5001}
	syn := Tuple{Proto: ProtoTCP, Src: addr("198.51.100.2").As4(), SrcPort: 45678, Dst: addr("203.0.113.5").As4(), DstPort: 30001}
	if got := tb.FillClientPort(syn); got != data {
		t.Fatalf("FillClientPort = %d, want %d", got, data)
	}
	if id, dir := tb.Lookup(syn); id != data || dir != DirIn {
		t.Fatalf("after the fill Lookup = %d %v", id, dir)
	}
	if id, dir := tb.Lookup(reply); id != data || dir != DirOut {
		t.Fatalf("reply Lookup = %d %v", id, dir)
	}
	if c := tb.Conn(data); c.Client() != ap("198.51.100.2:45678") || c.Local() != ap("192.168.100.1:5001") {
		t.Fatalf("filled connection: client %v local %v", c.Client(), c.Local())
	}
	// Two index entries each, nothing left over after both go.
	tb.ExpireNow(data, sec)
	if tb.idx.n != 0 {
		t.Fatalf("%d index entries left", tb.idx.n)
	}
}

// TestExpectedActive: a PORT data connection is known whole; the real
// server's SYN from port 20 finds it from the server side.
func TestExpectedActive(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.3:21")
	ctl := mustConn(t, tb, ProtoTCP, "198.51.100.2:40000", "203.0.113.5:21", d, FwdMasq, 0)
	data, err := tb.NewExpected(&ConnParams{Proto: ProtoTCP, Client: ap("198.51.100.2:50000"), Virtual: ap("203.0.113.5:20"),
		Dest: d, DestPort: 20, Fwd: FwdMasq}, ctl, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	syn := Tuple{Proto: ProtoTCP, Src: addr("172.16.0.3").As4(), SrcPort: 20, Dst: addr("198.51.100.2").As4(), DstPort: 50000}
	if id, dir := tb.Lookup(syn); id != data || dir != DirOut {
		t.Fatalf("server SYN Lookup = %d %v", id, dir)
	}
	// tcp_states: an output SYN leaves LISTEN as it is; the client's
	// SYN-ACK (an input SYN) makes it SYN_RECV.
	if s := tb.Step(data, DirOut, fSYN, 60, sec); s != StateListen {
		t.Errorf("LISTEN + output SYN = %v, want LISTEN", s)
	}
	if s := tb.Step(data, DirIn, fSYN|fACK, 60, sec); s != StateSynRecv {
		t.Errorf("LISTEN + input SYN-ACK = %v, want SYN_RECV", s)
	}
	if _, err := tb.NewExpected(&ConnParams{Proto: ProtoTCP, Client: ap("198.51.100.2:50000"), Virtual: ap("203.0.113.5:20"),
		Dest: d, DestPort: 20, Fwd: FwdMasq}, ctl, true, 0); err == nil {
		t.Error("the same expected connection twice")
	}
	if _, err := tb.NewExpected(&ConnParams{Proto: ProtoTCP, Client: ap("198.51.100.2:50002"), Virtual: ap("203.0.113.5:20"),
		Dest: d, DestPort: 20, Fwd: FwdMasq}, 0, true, 0); err == nil {
		t.Error("an expected connection without a control connection")
	}
}
