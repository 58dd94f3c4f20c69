package conntrack

import (
	"fmt"
	"testing"
	"time"
)

// refStates is reference/ipvs.md §2.1, row by row: enum value, state,
// tcp_timeouts[] default, counted as ActiveConn. The abbreviations are those
// of §2.3 ("Values: NO=NONE, ES=ESTABLISHED, ...").
var refStates = []struct {
	abbr    string
	name    string
	value   State
	timeout time.Duration
	active  bool
}{
	{"NO", "NONE", 0, 2 * time.Second, false},
	{"ES", "ESTABLISHED", 1, 900 * time.Second, true},
	{"SS", "SYN_SENT", 2, 120 * time.Second, true},
	{"SR", "SYN_RECV", 3, 60 * time.Second, true},
	{"FW", "FIN_WAIT", 4, 120 * time.Second, false},
	{"TW", "TIME_WAIT", 5, 120 * time.Second, false},
	{"CL", "CLOSE", 6, 10 * time.Second, false},
	{"CW", "CLOSE_WAIT", 7, 60 * time.Second, false},
	{"LA", "LAST_ACK", 8, 30 * time.Second, false},
	{"LI", "LISTEN", 9, 120 * time.Second, false},
	{"SA", "SYNACK", 10, 120 * time.Second, true},
}

func refState(t *testing.T, s string) (v State, timeout time.Duration, active bool) {
	t.Helper()
	for _, r := range refStates {
		if r.abbr == s || r.name == s {
			return r.value, r.timeout, r.active
		}
	}
	t.Fatalf("no state %q in the reference", s)
	return
}

// A reference table row: current state, then the next state for SYN, FIN,
// ACK, RST, written exactly as in §2.3.
type refRow [5]string

// §2.3 INPUT (client→RS, dir offset 0).
var refInput = []refRow{
	{"NONE (NO)", "SR", "CL", "ES", "CL"},
	{"ESTABLISHED (ES)", "ES", "CW", "ES", "CL"},
	{"SYN_SENT (SS)", "ES", "SS", "SS", "CL"},
	{"SYN_RECV (SR)", "SR", "TW", "ES", "SR"},
	{"FIN_WAIT (FW)", "SR", "TW", "FW", "CL"},
	{"TIME_WAIT (TW)", "SR", "TW", "TW", "CL"},
	{"CLOSE (CL)", "SR", "CL", "CL", "CL"},
	{"CLOSE_WAIT (CW)", "SR", "CW", "CW", "CL"},
	{"LAST_ACK (LA)", "SR", "LA", "CL", "LA"},
	{"LISTEN (LI)", "SR", "LI", "LI", "LI"},
	{"SYNACK (SA)", "SR", "TW", "ES", "SR"},
}

// §2.3 OUTPUT (RS→client, offset 4).
var refOutput = []refRow{
	{"NONE (NO)", "SS", "TW", "ES", "CL"},
	{"ESTABLISHED (ES)", "ES", "FW", "ES", "CL"},
	{"SYN_SENT (SS)", "SS", "SS", "SS", "SS"},
	{"SYN_RECV (SR)", "SR", "TW", "ES", "CL"},
	{"FIN_WAIT (FW)", "SS", "FW", "FW", "CL"},
	{"TIME_WAIT (TW)", "SS", "TW", "TW", "TW"},
	{"CLOSE (CL)", "SS", "CL", "CL", "CL"},
	{"CLOSE_WAIT (CW)", "SS", "TW", "CW", "CL"},
	{"LAST_ACK (LA)", "SS", "LA", "LA", "CL"},
	{"LISTEN (LI)", "LI", "LI", "ES", "CL"},
	{"SYNACK (SA)", "SR", "TW", "ES", "CL"},
}

// §2.3 INPUT-ONLY (NOOUTPUT conns: DR/TUN/…; offset 8).
var refInputOnly = []refRow{
	{"NONE (NO)", "SR", "CL", "ES", "CL"},
	{"ESTABLISHED (ES)", "ES", "FW", "ES", "CL"},
	{"SYN_SENT (SS)", "ES", "SS", "SS", "CL"},
	{"SYN_RECV (SR)", "SR", "TW", "ES", "SR"},
	{"FIN_WAIT (FW)", "SR", "FW", "FW", "CL"},
	{"TIME_WAIT (TW)", "SR", "TW", "TW", "CL"},
	{"CLOSE (CL)", "SR", "CL", "CL", "CL"},
	{"CLOSE_WAIT (CW)", "SR", "CW", "CW", "CL"},
	{"LAST_ACK (LA)", "SR", "LA", "CL", "LA"},
	{"LISTEN (LI)", "SR", "LI", "LI", "LI"},
	{"SYNACK (SA)", "SR", "TW", "ES", "CL"},
}

// §2.4 tcp_states_dos: the cells that differ from tcp_states.
var refDOS = []struct{ table, event, from, normal, dos string }{
	{"INPUT", "SYN", "SA", "SR", "SA"},
	{"INPUT", "FIN", "SA", "TW", "SA"},
	{"INPUT", "ACK", "SR", "ES", "SR"},
	{"INPUT", "ACK", "SA", "ES", "SA"},
	{"INPUT", "RST", "SA", "SR", "CL"},
	{"OUTPUT", "SYN", "SR", "SR", "SA"},
	{"OUTPUT", "SYN", "SA", "SR", "SA"},
	{"INPUT-ONLY", "SYN", "NO", "SR", "SA"},
	{"INPUT-ONLY", "SYN", "FW", "SR", "SA"},
	{"INPUT-ONLY", "SYN", "TW", "SR", "SA"},
	{"INPUT-ONLY", "SYN", "CL", "SR", "SA"},
	{"INPUT-ONLY", "SYN", "CW", "SR", "SA"},
	{"INPUT-ONLY", "SYN", "LA", "SR", "SA"},
	{"INPUT-ONLY", "SYN", "LI", "SR", "SA"},
	{"INPUT-ONLY", "SYN", "SA", "SR", "SA"},
}

// Every way of writing each event on the wire: precedence RST > SYN > FIN >
// ACK, so SYN+ACK is SYN, FIN+ACK is FIN, anything with RST is RST.
var eventFlags = [4]struct {
	name  string
	flags []uint8
}{
	{"SYN", []uint8{fSYN, fSYN | fACK, fSYN | fFIN, fSYN | fPSH}},
	{"FIN", []uint8{fFIN, fFIN | fACK, fFIN | fPSH | fACK}},
	{"ACK", []uint8{fACK, fACK | fPSH, fACK | fURG}},
	{"RST", []uint8{fRST, fRST | fACK, fRST | fSYN, fRST | fSYN | fFIN | fACK}},
}

type tableCase struct {
	name string
	rows []refRow
	fwd  Fwd // Masq: INPUT/OUTPUT rows; Route and Tunnel set NOOUTPUT
	dir  Dir
}

var tableCases = []tableCase{
	{"INPUT", refInput, FwdMasq, DirIn},
	{"INPUT", refInput, FwdFullNAT, DirIn},
	{"OUTPUT", refOutput, FwdMasq, DirOut},
	{"OUTPUT", refOutput, FwdFullNAT, DirOut},
	{"INPUT-ONLY", refInputOnly, FwdRoute, DirIn},
	{"INPUT-ONLY", refInputOnly, FwdTunnel, DirIn},
}

// runCell puts a fresh connection in state from, steps one packet, and
// checks the next state, its timeout, the restarted timer, and the dest's
// active/inactive counts against §2.1.
// refDOSTimeouts is vs_timeout_table_dos of linux-2.4
// net/ipv4/ipvs/ip_vs_conn.c, the timeouts secure_tcp switches to (lvsd
// applies the shorter of these and the normal ones).
var refDOSTimeouts = map[State]time.Duration{
	StateNone:        15 * time.Minute,
	StateEstablished: 8 * time.Minute,
	StateSynSent:     60 * time.Second,
	StateSynRecv:     10 * time.Second,
	StateFinWait:     60 * time.Second,
	StateTimeWait:    60 * time.Second,
	StateClose:       10 * time.Second,
	StateCloseWait:   60 * time.Second,
	StateLastAck:     30 * time.Second,
	StateListen:      2 * time.Minute,
	StateSynAck:      100 * time.Second,
}

func runCell(t *testing.T, tb *Table, tc tableCase, from, want string, flags uint8) {
	t.Helper()
	d := newDest("172.16.0.2:8080")
	now := 1000 * sec
	id := mustConn(t, tb, ProtoTCP, "10.0.0.2:45678", "207.175.44.110:8080", d, tc.fwd, now)
	c := tb.Conn(id)
	fromV, _, fromActive := refState(t, from)
	c.state = fromV
	if fromActive {
		c.flags &^= FlagInactive
		d.ConnActivated()
	}
	now += 5 * sec
	got := tb.Step(id, tc.dir, flags, 60, now)

	wantV, wantTimeout, wantActive := refState(t, want)
	if tb.SecureTCP() {
		wantTimeout = min(wantTimeout, refDOSTimeouts[wantV])
	}
	if got != wantV || c.State() != wantV {
		t.Errorf("%s/%v %s --flags %#02x--> %s, want %s", tc.name, tc.fwd, from,
			flags, StateName(ProtoTCP, 0, got), StateName(ProtoTCP, 0, wantV))
	}
	if c.Timeout() != wantTimeout {
		t.Errorf("%s %s->%s: timeout %v, want %v", tc.name, from, want, c.Timeout(), wantTimeout)
	}
	e, ok := entryOf(tb, id, now)
	if !ok || e.Expires != wantTimeout {
		t.Errorf("%s %s->%s: expires in %v, want %v", tc.name, from, want, e.Expires, wantTimeout)
	}
	wantCounts := [3]uint32{0, 1, 0}
	if wantActive {
		wantCounts = [3]uint32{1, 0, 0}
	}
	if counts(d) != wantCounts {
		t.Errorf("%s %s->%s: dest (active, inact, persist) = %v, want %v", tc.name, from, want, counts(d), wantCounts)
	}
	if (c.Flags()&FlagInactive == 0) != wantActive {
		t.Errorf("%s %s->%s: INACTIVE flag %v with active=%v", tc.name, from, want, c.Flags()&FlagInactive != 0, wantActive)
	}
	// The INPUT-ONLY rows are used while NOOUTPUT stays set.
	if tc.fwd == FwdRoute || tc.fwd == FwdTunnel {
		if c.Flags()&FlagNoOutput == 0 {
			t.Errorf("%s: NOOUTPUT cleared by an input packet", tc.name)
		}
	} else if c.Flags()&FlagNoOutput != 0 {
		t.Errorf("%v connection has NOOUTPUT", tc.fwd)
	}
	if !tb.ExpireNow(id, now) || counts(d) != [3]uint32{} {
		t.Errorf("%s %s->%s: after removal dest counts %v", tc.name, from, want, counts(d))
	}
}

func TestTCPStatesTable(t *testing.T) {
	tb := newTable(t, Config{})
	for _, tc := range tableCases {
		if len(tc.rows) != numTCPStates {
			t.Fatalf("%s: %d rows", tc.name, len(tc.rows))
		}
		for _, row := range tc.rows {
			from := row[0][len(row[0])-3 : len(row[0])-1] // "NONE (NO)" -> "NO"
			for ev, e := range eventFlags {
				for _, fl := range e.flags {
					runCell(t, tb, tc, from, row[1+ev], fl)
				}
			}
			// No RST/SYN/FIN/ACK at all: CLOSE from every state.
			for _, fl := range []uint8{0, fPSH, fURG, fPSH | fURG} {
				runCell(t, tb, tc, from, "CL", fl)
			}
		}
	}
	if tb.Len() != 0 {
		t.Fatalf("%d connections left", tb.Len())
	}
}

func TestTCPStatesDOSTable(t *testing.T) {
	tb := newTable(t, Config{})
	tb.SetSecureTCP(true)
	if !tb.SecureTCP() {
		t.Fatal("SecureTCP() = false after SetSecureTCP(true)")
	}
	for _, tc := range tableCases {
		for _, row := range tc.rows {
			from := row[0][len(row[0])-3 : len(row[0])-1]
			for ev, e := range eventFlags {
				want := row[1+ev]
				for _, d := range refDOS {
					if d.table == tc.name && d.event == e.name && d.from == from {
						if d.normal != want {
							t.Fatalf("reference §2.4 says normal %s, §2.3 says %s", d.normal, want)
						}
						want = d.dos
					}
				}
				for _, fl := range e.flags {
					runCell(t, tb, tc, from, want, fl)
				}
			}
		}
	}
	// Switching back restores the normal table.
	tb.SetSecureTCP(false)
	runCell(t, tb, tableCases[0], "SR", "ES", fACK)
}

func TestStateNames(t *testing.T) {
	for _, r := range refStates {
		if got := StateName(ProtoTCP, 0, r.value); got != r.name {
			t.Errorf("TCP state %d: %q, want %q", r.value, got, r.name)
		}
	}
	for _, c := range []struct {
		proto uint8
		flags Flags
		s     State
		want  string
	}{
		{ProtoUDP, 0, StateUDP, "UDP"},
		{ProtoUDP, 0, 1, "BUG!"},
		{ProtoTCP, 0, 11, "BUG!"},
		{ProtoTCP, FlagTemplate, TemplateNone, "NONE"},
		{ProtoTCP, FlagTemplate, TemplateAssured, "ASSURED"},
		{ProtoIP, FlagTemplate, TemplateAssured, "ASSURED"},
		{ProtoUDP, FlagTemplate, TemplateNone, "NONE"},
	} {
		if got := StateName(c.proto, c.flags, c.s); got != c.want {
			t.Errorf("StateName(%d, %#x, %d) = %q, want %q", c.proto, c.flags, c.s, got, c.want)
		}
	}
	for p, want := range map[uint8]string{ProtoIP: "IP", ProtoTCP: "TCP", ProtoUDP: "UDP"} {
		if got := ProtoName(p); got != want {
			t.Errorf("ProtoName(%d) = %q, want %q", p, got, want)
		}
	}
}

// A reply seen on a NOOUTPUT connection clears the flag and switches it to
// the OUTPUT rows, then INPUT rows (§2.2).
func TestNoOutputSwitch(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.2:8080")
	id := mustConn(t, tb, ProtoTCP, "10.0.0.2:1000", "207.175.44.110:8080", d, FwdRoute, 0)
	c := tb.Conn(id)
	tb.Step(id, DirIn, fSYN, 60, 0)
	tb.Step(id, DirIn, fACK, 60, 0) // ES
	if c.Flags()&FlagNoOutput == 0 {
		t.Fatal("DR connection without NOOUTPUT")
	}
	// OUTPUT FIN from ES: FW (INPUT-ONLY would not apply to output anyway).
	if s := tb.Step(id, DirOut, fFIN|fACK, 60, 0); s != StateFinWait {
		t.Fatalf("output FIN from ES: %s", StateName(ProtoTCP, 0, s))
	}
	if c.Flags()&FlagNoOutput != 0 {
		t.Fatal("NOOUTPUT still set after an output packet")
	}
	// Now an input FIN from FW uses INPUT (TW), not INPUT-ONLY (FW).
	if s := tb.Step(id, DirIn, fFIN|fACK, 60, 0); s != StateTimeWait {
		t.Fatalf("input FIN from FW after the switch: %s, want TIME_WAIT", StateName(ProtoTCP, 0, s))
	}
}

// §1.5: the state at the end of the kernel selftest, per mode.
func TestSelftestSequences(t *testing.T) {
	type pkt struct {
		dir   Dir
		flags uint8
		want  string
	}
	dr := []pkt{
		{DirIn, fSYN, "SYN_RECV"},
		{DirIn, fACK, "ESTABLISHED"},
		{DirIn, fACK | fPSH, "ESTABLISHED"}, // data
		{DirIn, fFIN | fACK, "FIN_WAIT"},    // client FIN
		{DirIn, fACK, "FIN_WAIT"},           // last ACK
	}
	nat := []pkt{
		{DirIn, fSYN, "SYN_RECV"},
		{DirOut, fSYN | fACK, "SYN_RECV"},
		{DirIn, fACK, "ESTABLISHED"},
		{DirIn, fFIN | fACK, "CLOSE_WAIT"},
		{DirOut, fACK, "CLOSE_WAIT"},
		{DirOut, fFIN | fACK, "TIME_WAIT"},
		{DirIn, fACK, "TIME_WAIT"},
	}
	for _, m := range []struct {
		name  string
		fwd   Fwd
		seq   []pkt
		final string
	}{
		{"DR", FwdRoute, dr, "FIN_WAIT"},
		{"TUN", FwdTunnel, dr, "FIN_WAIT"},
		{"NAT", FwdMasq, nat, "TIME_WAIT"},
	} {
		t.Run(m.name, func(t *testing.T) {
			tb := newTable(t, Config{})
			d := newDest("172.16.0.2:8080")
			now := 10 * sec
			id := mustConn(t, tb, ProtoTCP, "10.0.0.2:45678", "207.175.44.110:8080", d, m.fwd, now)
			for i, p := range m.seq {
				now += sec / 100
				s := tb.Step(id, p.dir, p.flags, 80, now)
				if got := StateName(ProtoTCP, 0, s); got != p.want {
					t.Fatalf("packet %d (%v %#02x): %s, want %s", i, p.dir, p.flags, got, p.want)
				}
			}
			e, _ := entryOf(tb, id, now)
			if e.State != m.final || e.Expires != 120*time.Second {
				t.Errorf("final %s %v, want %s 2m0s", e.State, e.Expires, m.final)
			}
			if d.ActiveConns != 0 || d.InactConns != 1 {
				t.Errorf("ActiveConn %d InActConn %d, want 0 1", d.ActiveConns, d.InactConns)
			}
			// And 120 s later it is gone, counters back to zero.
			if n := tb.Expire(now + 120*sec); n != 1 || counts(d) != [3]uint32{} {
				t.Errorf("expired %d, dest %v", n, counts(d))
			}
		})
	}
}

func TestUDPState(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.3:53")
	id := mustConn(t, tb, ProtoUDP, "10.0.0.2:53001", "207.175.44.110:53", d, FwdMasq, 0)
	for i, dir := range []Dir{DirIn, DirOut, DirIn, DirOut} {
		now := int64(i+1) * sec
		if s := tb.Step(id, dir, 0xff, 100, now); s != StateUDP {
			t.Fatalf("UDP state %d", s)
		}
		e, _ := entryOf(tb, id, now)
		if e.State != "UDP" || e.Expires != 300*time.Second {
			t.Fatalf("%s %v, want UDP 5m0s", e.State, e.Expires)
		}
		// UDP connections never become active.
		if d.ActiveConns != 0 || d.InactConns != 1 {
			t.Fatalf("UDP counted active: %v", counts(d))
		}
	}
	in, out, inB, outB := tb.Conn(id).Counters()
	if in != 2 || out != 2 || inB != 200 || outB != 200 {
		t.Fatalf("counters %d %d %d %d", in, out, inB, outB)
	}
}

func TestEventPrecedence(t *testing.T) {
	for _, c := range []struct {
		flags uint8
		want  int
	}{
		{fRST | fSYN | fFIN | fACK, evRST}, {fSYN | fFIN | fACK, evSYN}, {fFIN | fACK, evFIN},
		{fACK, evACK}, {fPSH, -1}, {0, -1},
	} {
		if got := tcpEvent(c.flags); got != c.want {
			t.Errorf("tcpEvent(%#02x) = %d, want %d", c.flags, got, c.want)
		}
	}
}

func ExampleStateName() {
	fmt.Println(StateName(ProtoTCP, 0, StateFinWait), StateName(ProtoIP, FlagTemplate, TemplateAssured))
	// Output: FIN_WAIT ASSURED
}
