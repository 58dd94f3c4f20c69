package ipvs

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/ipvs/ctl"
)

// floodEngine is the NAT test engine with a 5000-entry table and the given
// defences.
func floodEngine(tb testing.TB, def conntrack.Defense) *testEngine {
	tb.Helper()
	te := newTestEngine(tb, "-m")
	ct, err := conntrack.New(conntrack.Config{MaxConns: 5000, SizeHint: 5000, Seed: 5})
	if err != nil {
		tb.Fatal(err)
	}
	if err := ct.SetDefense(def); err != nil {
		tb.Fatal(err)
	}
	te.conns = ct
	return te
}

// synFlood feeds n SYNs to the VIP from the attacker 10.0.0.66, each from
// a new port, as hping3 -S --flood would (the source address does not matter
// to the table).
func (te *testEngine) synFlood(tb testing.TB, n int) {
	tb.Helper()
	syn := tcpFrame(tb, clientMAC, extMAC, "10.0.0.66", "10.0.0.100", 1, 80, true, false, 0)
	for i := range n {
		port := uint16(1024 + i)
		syn[34], syn[35] = byte(port>>8), byte(port)
		te.feed(te.ext, syn)
	}
}

// legitSYN sends the legitimate client's SYN and reports whether lvsd
// forwarded it to the real server.
func (te *testEngine) legitSYN(tb testing.TB, port uint16) bool {
	tb.Helper()
	before := te.intPort.sent
	te.feed(te.ext, tcpFrame(tb, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", port, 80, true, false, 0))
	return te.intPort.sent > before
}

func (te *testEngine) counter(name string) uint64 {
	ev, _ := te.Counters()
	return ev[name]
}

// Issue 8 item 9: a SYN flood fills the table with SYN_RECV entries and a
// legitimate client is refused until they time out; with drop_entry it gets
// in at once, and the counters say drop_entry made the room.
func TestEngineSYNFloodDropEntry(t *testing.T) {
	off := floodEngine(t, conntrack.DefaultDefense())
	off.synFlood(t, 5000)
	off.clock += int64(2 * time.Second)
	off.defenseTick(off.clock)
	if off.legitSYN(t, 40000) {
		t.Error("defences off: a SYN got through a table full of SYN_RECV entries (the fixture does not reproduce the defect)")
	}
	if off.counter("drop_conn_table_full") != 1 {
		t.Errorf("defences off: drop_conn_table_full %d, want 1", off.counter("drop_conn_table_full"))
	}

	def := conntrack.DefaultDefense()
	def.DropEntry = 1
	te := floodEngine(t, def)
	te.synFlood(t, 5000)
	// During the flood, before any defence tick has run: the full table is
	// pressure enough.
	if !te.legitSYN(t, 40000) {
		t.Fatal("drop_entry 1: legitimate SYN refused in a table full of SYN_RECV entries")
	}
	te.synFlood(t, 3000) // the flood goes on, taking the places of its own
	te.clock += int64(time.Second)
	te.defenseTick(te.clock)
	if got := te.Defense().DropEntry; got != 2 {
		t.Errorf("drop_entry reads %d under pressure, want 2", got)
	}
	if !te.legitSYN(t, 40001) {
		t.Error("drop_entry 1: legitimate SYN refused after the flood")
	}
	if n := te.counter("defense_drop_entry_reclaimed"); n != 3001 {
		t.Errorf("defense_drop_entry_reclaimed %d, want 3001 (1 + 3000 flood; the walk made room for the last)", n)
	}
	if n := te.counter("defense_drop_entry_dropped"); n == 0 {
		t.Error("the once-a-second walk dropped nothing from a table full of SYN_RECV entries")
	}
	if n := te.counter("drop_conn_table_full"); n != 0 {
		t.Errorf("drop_conn_table_full %d with drop_entry on", n)
	}
}

// drop_packet in a full table drops every new connection (rate 1), and
// secure_tcp switches the state table; both show in the counters.
func TestEngineDropPacketSecureTCP(t *testing.T) {
	def := conntrack.DefaultDefense()
	def.DropPacket, def.SecureTCP = 1, 1
	te := floodEngine(t, def)
	te.synFlood(t, 4500) // 500 free, below amemthresh 1024
	te.clock += int64(time.Second)
	te.defenseTick(te.clock)
	if !te.conns.SecureTCP() || te.counter("defense_secure_tcp_activations") != 1 {
		t.Errorf("secure_tcp not switched on under pressure (activations %d)", te.counter("defense_secure_tcp_activations"))
	}
	// rate 1024/(1024-500) = 1: every new connection is dropped.
	for i := range 10 {
		if te.legitSYN(t, uint16(40000+i)) {
			t.Fatal("drop_packet at rate 1 let a new connection through")
		}
	}
	if n := te.counter("drop_defense_drop_packet"); n != 10 {
		t.Errorf("drop_defense_drop_packet %d, want 10", n)
	}
}

func TestEngineDefenseNoAllocs(t *testing.T) {
	def := conntrack.DefaultDefense()
	def.DropEntry, def.DropPacket = 1, 3
	te := floodEngine(t, def)
	te.synFlood(t, 5000)
	syn := tcpFrame(t, clientMAC, extMAC, "10.0.0.67", "10.0.0.100", 1, 80, true, false, 0)
	port := uint16(1)
	if n := testing.AllocsPerRun(1000, func() {
		port++
		syn[34], syn[35] = byte(port>>8), byte(port)
		te.feed(te.ext, syn)
	}); n != 0 {
		t.Errorf("%.1f allocations per flood SYN with drop_entry and drop_packet on", n)
	}
}

// lvsadm --set-defense changes only the named settings; -L --defense reads
// them back as the sysctls would.
func TestEngineSetDefenseCommand(t *testing.T) {
	te := newTestEngine(t, "-m")
	c, err := config.ParseArgs([]string{"--set-defense", "drop_entry=3", "amemthresh=10"})
	if err != nil {
		t.Fatal(err)
	}
	if r := te.Handle(context.Background(), ctl.Peer{}, ctl.Request{Command: c}); r.Error != "" {
		t.Fatal(r.Error)
	}
	l, _ := config.ParseArgs([]string{"-L", "--defense"})
	r := te.Handle(context.Background(), ctl.Peer{}, ctl.Request{Command: l})
	if r.Defense == nil || *r.Defense != (config.Defense{DropEntry: 3, AmemThresh: 10, AmDropRate: 10}) {
		t.Errorf("-L --defense: %+v", r.Defense)
	}
	if len(te.Table().Services) != 1 {
		t.Error("--set-defense changed the service table")
	}
}

// A legitimate handshake that drop_entry evicts before the client's ACK
// arrives (a flood fast enough to lap the table within one round trip) is
// re-created from the evicted-handshake memory on the same real server: the
// ACK is forwarded and the connection is ESTABLISHED, not reset.
func TestEngineEvictedHandshakeRecalled(t *testing.T) {
	def := conntrack.DefaultDefense()
	def.DropEntry = 1
	te := floodEngine(t, def)
	te.synFlood(t, 5000)
	if !te.legitSYN(t, 40000) {
		t.Fatal("legitimate SYN refused in a full table with drop_entry on")
	}
	te.synFlood(t, 5000) // laps the table: the legitimate entry is evicted
	tup := conntrack.Tuple{Proto: 6, Src: [4]byte{10, 0, 0, 2}, SrcPort: 40000, Dst: [4]byte{10, 0, 0, 100}, DstPort: 80}
	if id, _ := te.conns.Lookup(tup); id != 0 {
		t.Fatal("the legitimate entry survived 5000 more flood SYNs (the fixture does not evict it)")
	}
	before, refused := te.intPort.sent, te.counter("drop_not_syn")
	te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, false, true, 0))
	if te.intPort.sent != before+1 {
		t.Fatalf("the client's ACK after eviction: %d frames to the real server, want 1 (drop_not_syn %d -> %d)",
			te.intPort.sent-before, refused, te.counter("drop_not_syn"))
	}
	id, _ := te.conns.Lookup(tup)
	if id == 0 {
		t.Fatal("no connection after the recalled ACK")
	}
	if c := te.conns.Conn(id); c.State() != conntrack.StateEstablished || c.Real() != netip.MustParseAddrPort("172.16.0.2:8080") {
		t.Errorf("recalled connection: state %v to %v, want ESTABLISHED to 172.16.0.2:8080", c.State(), c.Real())
	}
	if n := te.counter("defense_drop_entry_recalled"); n != 1 {
		t.Errorf("defense_drop_entry_recalled %d, want 1", n)
	}
	// An ACK nobody's handshake was evicted for is still refused.
	te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.3", "10.0.0.100", 40001, 80, false, true, 0))
	if n := te.counter("drop_not_syn"); n != refused+1 {
		t.Errorf("a stray ACK: drop_not_syn %d, want %d", n, refused+1)
	}
}
