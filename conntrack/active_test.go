package conntrack

import (
	"testing"
	"time"
)

// activeRef: kernel is tcp_state_active_table exactly as
// net/netfilter/ipvs/ip_vs_proto_tcp.c has it since Linux 4.8 ("ipvs:
// count pre-established TCP states as active"), in enum order; pre48 is
// what set_tcp_state counted before (new_state == IP_VS_TCP_S_ESTABLISHED).
var activeRef = []struct {
	state         State
	kernel, pre48 bool
}{
	{StateNone, false, false},
	{StateEstablished, true, true},
	{StateSynSent, true, false},
	{StateSynRecv, true, false},
	{StateFinWait, false, false},
	{StateTimeWait, false, false},
	{StateClose, false, false},
	{StateCloseWait, false, false},
	{StateLastAck, false, false},
	{StateListen, false, false},
	{StateSynAck, true, false},
}

func TestActiveTablesAreTheKernels(t *testing.T) {
	if len(activeRef) != numTCPStates {
		t.Fatalf("reference has %d states, the table %d", len(activeRef), numTCPStates)
	}
	for _, r := range activeRef {
		name := StateName(ProtoTCP, 0, r.state)
		if got := activeTable(false)[r.state]; got != r.kernel {
			t.Errorf("%s: active %v, tcp_state_active_table says %v", name, got, r.kernel)
		}
		if got := activeTable(true)[r.state]; got != r.pre48 {
			t.Errorf("%s: pre-4.8 active %v, want %v", name, got, r.pre48)
		}
	}
}

// TestDRSynToDeadServer is the failover case behind the difference: in DR
// the director sees only the client's SYN (the dead real server's RST goes
// straight to the client), so the entry sits in SYN_RECV for its 60 s
// timeout. A 4.8+ kernel counts it in ActiveConn, which wlc weighs 256×;
// an older kernel counted it inactive.
func TestDRSynToDeadServer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pre48     bool
		wantCount [3]uint32
	}{
		{"kernel", false, [3]uint32{1, 0, 0}},
		{"pre-4.8", true, [3]uint32{0, 1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, Config{ActiveEstablishedOnly: tc.pre48})
			d := newDest("172.16.0.2:8080")
			id := mustConn(t, tb, ProtoTCP, "10.0.0.2:45678", "207.175.44.110:8080", d, FwdRoute, 0)
			if s := tb.Step(id, DirIn, tcpSYN, 60, sec); s != StateSynRecv {
				t.Fatalf("after the SYN: %s, want SYN_RECV", StateName(ProtoTCP, 0, s))
			}
			if got := counts(d); got != tc.wantCount {
				t.Errorf("ActiveConn InActConn PersistConn %v, want %v", got, tc.wantCount)
			}
			e, _ := entryOf(tb, id, sec)
			if e.Expires != 60*time.Second {
				t.Errorf("SYN_RECV expires in %v, want 1m0s", e.Expires)
			}
			// The client's retransmitted SYN keeps it there; only the
			// timeout ends it, and then the counters are zero again.
			tb.Step(id, DirIn, tcpSYN, 60, 2*sec)
			if n := tb.Expire(2*sec + 60*sec); n != 1 || counts(d) != [3]uint32{} {
				t.Errorf("after the timeout: expired %d, counters %v", n, counts(d))
			}
			// A completed handshake is active under both rules.
			id = mustConn(t, tb, ProtoTCP, "10.0.0.2:45679", "207.175.44.110:8080", d, FwdRoute, 70*sec)
			tb.Step(id, DirIn, tcpSYN, 60, 70*sec)
			tb.Step(id, DirIn, tcpACK, 60, 70*sec)
			if got := counts(d); got != [3]uint32{1, 0, 0} {
				t.Errorf("ESTABLISHED: counters %v, want [1 0 0]", got)
			}
		})
	}
}
