package conntrack

import (
	"net/netip"
	"testing"
	"time"

	"lvslab/sched"
)

const sec = int64(time.Second)

// TCP flag bytes as they appear on the wire.
const (
	fFIN = 0x01
	fSYN = 0x02
	fRST = 0x04
	fPSH = 0x08
	fACK = 0x10
	fURG = 0x20
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
func addr(s string) netip.Addr   { return netip.MustParseAddr(s) }

func newTable(t testing.TB, cfg Config) *Table {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	tb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func newDest(s string) *sched.Dest {
	a := ap(s)
	return sched.NewDest(a.Addr(), a.Port(), 1)
}

// mustConn creates a TCP or UDP connection from client to vip on d.
func mustConn(t testing.TB, tb *Table, proto uint8, client, vip string, d *sched.Dest, fwd Fwd, now int64) ConnID {
	t.Helper()
	p := &ConnParams{
		Proto: proto, Client: ap(client), Virtual: ap(vip),
		Dest: d, DestPort: d.Port, Fwd: fwd,
	}
	if fwd == FwdFullNAT {
		// The local port follows the client port: unique enough for tests.
		p.Local = netip.AddrPortFrom(addr("192.168.100.1"), p.Client.Port())
	}
	id, err := tb.NewConn(p, now)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func counts(d *sched.Dest) [3]uint32 { return [3]uint32{d.ActiveConns, d.InactConns, d.PersistConns} }

// entryOf finds a connection's listing line.
func entryOf(tb *Table, id ConnID, now int64) (Entry, bool) {
	var out Entry
	found := false
	tb.Range(now, func(e *Entry) bool {
		if e.ID == id {
			out, found = *e, true
			return false
		}
		return true
	})
	return out, found
}
