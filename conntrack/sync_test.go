package conntrack

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// ip_vs_sync_conn_needed with the default sync_threshold [3, 50]: a TCP
// connection is sent at its 3rd, 53rd, 103rd... incoming packet while
// ESTABLISHED, at once when it moves into a closing state, never while
// SYN_RECV; UDP at the same packets; one-packet connections never.
func TestSyncNeeded(t *testing.T) {
	tb := newTable(t, Config{})
	d := newDest("172.16.0.2:80")
	id := mustConn(t, tb, ProtoTCP, "198.51.100.2:40000", "203.0.113.5:80", d, FwdRoute, sec)
	var sent []int
	step := func(n int, flags uint8) {
		old := tb.Conn(id).State()
		tb.Step(id, DirIn, flags, 60, sec)
		if tb.SyncNeeded(id, old, DefaultSyncThreshold, DefaultSyncPeriod) {
			sent = append(sent, n)
		}
	}
	step(1, fSYN)
	for n := 2; n <= 110; n++ {
		step(n, fACK)
	}
	step(111, fFIN|fACK)
	want := []int{3, 53, 103, 111}
	if len(sent) != len(want) {
		t.Fatalf("synced at packets %v, want %v", sent, want)
	}
	for i := range want {
		if sent[i] != want[i] {
			t.Fatalf("synced at packets %v, want %v", sent, want)
		}
	}

	u := mustConn(t, tb, ProtoUDP, "198.51.100.2:5353", "203.0.113.5:53", d, FwdMasq, sec)
	var usent []int
	for n := 1; n <= 60; n++ {
		old := tb.Conn(u).State()
		tb.Step(u, DirIn, 0, 60, sec)
		if tb.SyncNeeded(u, old, DefaultSyncThreshold, DefaultSyncPeriod) {
			usent = append(usent, n)
		}
	}
	if len(usent) != 2 || usent[0] != 3 || usent[1] != 53 {
		t.Errorf("UDP synced at %v, want [3 53]", usent)
	}
	// period 0: only the threshold-th packet, and state changes.
	id2 := mustConn(t, tb, ProtoTCP, "198.51.100.3:40000", "203.0.113.5:80", d, FwdRoute, sec)
	var p0 []int
	for n, f := range []uint8{fSYN, fACK, fACK, fACK, fACK, fFIN | fACK} {
		old := tb.Conn(id2).State()
		tb.Step(id2, DirIn, f, 60, sec)
		if tb.SyncNeeded(id2, old, DefaultSyncThreshold, 0) {
			p0 = append(p0, n+1)
		}
	}
	if len(p0) != 3 || p0[0] != 2 || p0[1] != 3 || p0[2] != 6 {
		t.Errorf("period 0: synced at %v, want [2 3 6] (into ESTABLISHED, the 3rd packet, into FIN_WAIT)", p0)
	}
}

// A master's connections, through a message, into a backup: the backup
// finds each by its client tuple with the master's state, real server,
// timeout and FULLNAT local address; they count as inactive on the
// backup's real servers until they carry a packet there; a later message
// updates; one to another real server replaces (or, inactive, is stale).
func TestSyncMasterToBackup(t *testing.T) {
	master := newTable(t, Config{Seed: 1})
	backup := newTable(t, Config{Seed: 2})
	md := newDest("172.16.0.2:80")
	bd := newDest("172.16.0.2:80")
	other := newDest("172.16.0.3:80")
	now := 10 * sec

	dr := mustConn(t, master, ProtoTCP, "198.51.100.2:40000", "203.0.113.5:80", md, FwdRoute, now)
	for _, f := range []uint8{fSYN, fACK, fACK} {
		master.Step(dr, DirIn, f, 60, now)
	}
	fp := ConnParams{Proto: ProtoTCP, Client: ap("198.51.100.9:41000"), Virtual: ap("203.0.113.5:80"), Dest: md, DestPort: 80, Fwd: FwdFullNAT, Local: ap("10.9.0.1:5001")}
	fn, err := master.NewConn(&fp, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		dir Dir
		f   uint8
	}{{DirIn, fSYN}, {DirOut, fSYN | fACK}, {DirIn, fACK}} {
		master.Step(fn, s.dir, s.f, 60, now)
	}
	k := TemplateKey{Proto: ProtoTCP, SNet: [4]byte{198, 51, 100, 2}, VAddr: [4]byte{203, 0, 113, 5}, VPort: 80}
	tpl, err := master.NewTemplate(&k, md, 360*time.Second, now)
	if err != nil {
		t.Fatal(err)
	}

	buf := make([]byte, 1472)
	var w SyncWriter
	w.Reset(buf, 1, len(buf))
	var sc SyncConn
	for _, id := range []ConnID{dr, fn, tpl} {
		master.SyncEntry(id, &sc)
		if !w.Add(&sc) {
			t.Fatal("message full after 3 entries")
		}
	}
	var results []SyncResult
	apply := func(msg []byte) {
		results = results[:0]
		_, err := ParseSync(msg, new(SyncConn), func(c *SyncConn) {
			fwd := FwdRoute
			if c.HasLocal {
				fwd = FwdFullNAT
			}
			d := bd
			if c.DAddr != [4]byte{172, 16, 0, 2} {
				d = other
			}
			r, _, err := backup.ApplySync(c, d, fwd, now)
			if err != nil {
				t.Fatalf("ApplySync %+v: %v", c, err)
			}
			results = append(results, r)
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	apply(w.Bytes())
	if len(results) != 3 || results[0] != SyncCreated || results[1] != SyncCreated || results[2] != SyncCreated {
		t.Fatalf("results %v, want 3 × created", results)
	}
	bdr, _ := backup.Lookup(Tuple{Proto: ProtoTCP, Src: [4]byte{198, 51, 100, 2}, SrcPort: 40000, Dst: [4]byte{203, 0, 113, 5}, DstPort: 80})
	bfn, _ := backup.Lookup(Tuple{Proto: ProtoTCP, Src: [4]byte{198, 51, 100, 9}, SrcPort: 41000, Dst: [4]byte{203, 0, 113, 5}, DstPort: 80})
	if bdr == 0 || bfn == 0 {
		t.Fatalf("backup lookups: DR %d FULLNAT %d", bdr, bfn)
	}
	if c := backup.Conn(bdr); c.State() != StateEstablished || c.Real() != ap("172.16.0.2:80") || c.Fwd() != FwdRoute || c.flags&FlagSync == 0 {
		t.Errorf("synced DR conn: state %v real %v fwd %v flags %#x", c.State(), c.Real(), c.Fwd(), c.flags)
	}
	// The FULLNAT connection is found from the real server's side by its
	// local address, as on the master.
	if id, dir := backup.Lookup(Tuple{Proto: ProtoTCP, Src: [4]byte{172, 16, 0, 2}, SrcPort: 80, Dst: [4]byte{10, 9, 0, 1}, DstPort: 5001}); id != bfn || dir != DirOut {
		t.Errorf("FULLNAT reply tuple on the backup: id %d dir %d, want %d out", id, dir, bfn)
	}
	if got := backup.LookupTemplate(&k, false); got == 0 {
		t.Error("template not synced")
	}
	if bd.ActiveConns != 0 || bd.InactConns != 2 {
		t.Errorf("backup dest before traffic: active %d inactive %d, want 0 and 2", bd.ActiveConns, bd.InactConns)
	}
	backup.Step(bdr, DirIn, fACK, 60, now)
	if bd.ActiveConns != 1 || bd.InactConns != 1 {
		t.Errorf("backup dest after one packet of the DR conn: active %d inactive %d, want 1 and 1", bd.ActiveConns, bd.InactConns)
	}

	// The same message again: updates. Then the master moves the DR
	// connection to another real server.
	apply(w.Bytes())
	if results[0] != SyncUpdated || results[1] != SyncUpdated || results[2] != SyncUpdated {
		t.Errorf("second application: %v, want 3 × updated", results)
	}
	sc = SyncConn{Proto: ProtoTCP, State: uint16(StateEstablished), CPort: 40000, VPort: 80, DPort: 80, Timeout: 900,
		CAddr: [4]byte{198, 51, 100, 2}, VAddr: [4]byte{203, 0, 113, 5}, DAddr: [4]byte{172, 16, 0, 3}, Flags: uint32(FwdRoute) | uint32(FlagInactive)}
	w.Reset(buf, 1, len(buf))
	w.Add(&sc)
	apply(w.Bytes())
	if results[0] != SyncStale {
		t.Errorf("inactive entry to another real server: %v, want stale", results)
	}
	sc.Flags &^= uint32(FlagInactive)
	w.Reset(buf, 1, len(buf))
	w.Add(&sc)
	apply(w.Bytes())
	if results[0] != SyncReplaced {
		t.Errorf("active entry to another real server: %v, want replaced", results)
	}
	if id, _ := backup.Lookup(Tuple{Proto: ProtoTCP, Src: [4]byte{198, 51, 100, 2}, SrcPort: 40000, Dst: [4]byte{203, 0, 113, 5}, DstPort: 80}); id == 0 || backup.Conn(id).Real() != ap("172.16.0.3:80") {
		t.Error("replaced connection not on the new real server")
	}
	if _, _, err := backup.ApplySync(&sc, nil, FwdRoute, now); !errors.Is(err, ErrNoDest) {
		t.Errorf("no local real server: %v, want ErrNoDest", err)
	}
}

// BenchmarkSyncApply is the backup's side: one op is one entry of a full
// 1472-byte message parsed and applied as a new connection (the rate a
// backup takes a master's new connections at, per core). The reference run
// beside it is the same entries inserted with NewConn directly, so the
// ratio is what the sync path adds.
func BenchmarkSyncApply(b *testing.B) {
	const perTable = 1 << 16
	d := newDest("172.16.0.2:80")
	entries := make([]SyncConn, perTable)
	for i := range entries {
		entries[i] = SyncConn{Proto: ProtoTCP, Flags: uint32(FwdRoute), State: uint16(StateEstablished),
			CPort: uint16(1024 + i%60000), VPort: 80, DPort: 80, Timeout: 900,
			CAddr: [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}, VAddr: [4]byte{203, 0, 113, 5}, DAddr: [4]byte{172, 16, 0, 2}}
	}
	// The messages, built once.
	var msgs [][]byte
	var w SyncWriter
	buf := make([]byte, 1472)
	w.Reset(buf, 0, len(buf))
	for i := range entries {
		if !w.Add(&entries[i]) {
			msgs = append(msgs, append([]byte(nil), w.Bytes()...))
			w.Reset(buf, 0, len(buf))
			w.Add(&entries[i])
		}
	}
	msgs = append(msgs, append([]byte(nil), w.Bytes()...))
	b.Run("sync", func(b *testing.B) {
		var tb *Table
		var scratch SyncConn
		apply := func(c *SyncConn) {
			if _, _, err := tb.ApplySync(c, d, FwdRoute, sec); err != nil {
				b.Fatal(err)
			}
		}
		n := 0
		for n < b.N {
			b.StopTimer()
			tb = newTable(b, Config{MaxConns: perTable, SizeHint: perTable})
			b.StartTimer()
			for _, m := range msgs {
				if _, err := ParseSync(m, &scratch, apply, nil); err != nil {
					b.Fatal(err)
				}
			}
			n += perTable
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/entry")
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("newconn-reference", func(b *testing.B) {
		n := 0
		for n < b.N {
			b.StopTimer()
			tb := newTable(b, Config{MaxConns: perTable, SizeHint: perTable})
			b.StartTimer()
			for i := range entries {
				e := &entries[i]
				p := ConnParams{Proto: e.Proto, Client: netip.AddrPortFrom(netip.AddrFrom4(e.CAddr), e.CPort),
					Virtual: netip.AddrPortFrom(netip.AddrFrom4(e.VAddr), e.VPort), Dest: d, DestPort: 80, Fwd: FwdRoute}
				if _, err := tb.NewConn(&p, sec); err != nil {
					b.Fatal(err)
				}
			}
			n += perTable
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/entry")
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
	})
}

// BenchmarkSyncBytesPerConn is the master's side: connections run through
// a typical short HTTP life as a DR director sees it (SYN, ACK, request,
// ACKs, FIN, last ACK: 8 packets in) with SyncNeeded deciding, and the
// entries packed into 1472-byte messages as the daemon does; it reports
// the sync bytes on the wire per connection (each message with its 42
// bytes of Ethernet, IPv4 and UDP header).
func BenchmarkSyncBytesPerConn(b *testing.B) {
	tb := newTable(b, Config{MaxConns: 1 << 20})
	d := newDest("172.16.0.2:80")
	var w SyncWriter
	buf := make([]byte, 1472)
	w.Reset(buf, 0, len(buf))
	var sc SyncConn
	wire, entries := 0, 0
	flush := func() {
		if m := w.Bytes(); m != nil {
			wire += len(m) + 42
		}
		w.Reset(buf, 0, len(buf))
	}
	life := []uint8{fSYN, fACK, fACK | fPSH, fACK, fACK, fACK, fFIN | fACK, fACK}
	for i := range b.N {
		p := ConnParams{Proto: ProtoTCP, Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i%60000)),
			Virtual: ap("203.0.113.5:80"), Dest: d, DestPort: 80, Fwd: FwdRoute}
		id, err := tb.NewConn(&p, sec)
		if err != nil {
			tb = newTable(b, Config{MaxConns: 1 << 20})
			id, _ = tb.NewConn(&p, sec)
		}
		for _, f := range life {
			old := tb.Conn(id).State()
			tb.Step(id, DirIn, f, 60, sec)
			if tb.SyncNeeded(id, old, DefaultSyncThreshold, DefaultSyncPeriod) {
				tb.SyncEntry(id, &sc)
				entries++
				if !w.Add(&sc) {
					flush()
					w.Add(&sc)
				}
			}
		}
		tb.ExpireNow(id, sec)
	}
	flush()
	b.ReportMetric(float64(wire)/float64(b.N), "wire-bytes/conn")
	b.ReportMetric(float64(entries)/float64(b.N), "entries/conn")
}
