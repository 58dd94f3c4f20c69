package ipvs

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"lvslab/config"
	"lvslab/ipvs/ctl"
	"lvslab/rewrite"
)

// The kernel keeps a deleted real server on its trash list while
// connections reference it, and ipvsadm -a of the same address revives that
// destination, counters and all (ip_vs_trash_get_dest,
// net/netfilter/ipvs/ip_vs_ctl.c). These fixtures pin that behaviour.

var rs2MAC = rewrite.MAC{2, 0, 0, 0, 0, 0x21}

// newTrashEngine: the NAT fixture with wlc and two real servers,
// 172.16.0.2:8080 (A) and 172.16.0.3:8080 (B), both weight 1.
func newTrashEngine(t *testing.T) *testEngine {
	t.Helper()
	te := newTestEngine(t, "-m")
	te.neigh.learn(netip.MustParseAddr("172.16.0.3"), rs2MAC, te.int, te.clock, true)
	te.apply(t, "-E -t 10.0.0.100:80 -s wlc")
	return te
}

func (te *testEngine) apply(t *testing.T, line string) {
	t.Helper()
	c, err := config.ParseArgs(splitFields(line))
	if err != nil {
		t.Fatal(err)
	}
	if err := te.Apply(c); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
}

// syn sends one client SYN to the VIP from port sport and returns the real
// server it was forwarded to.
func (te *testEngine) syn(t *testing.T, sport uint16) string {
	t.Helper()
	te.intPort.last = te.intPort.last[:0]
	te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", sport, 80, true, false, 0))
	if len(te.intPort.last) != 1 {
		t.Fatalf("SYN from port %d: %d frames forwarded, want 1", sport, len(te.intPort.last))
	}
	ip, _ := decode(t, te.intPort.last[0].Data())
	return ip.DstIP.String()
}

func (te *testEngine) destStatus(t *testing.T, rip string) ctl.DestStatus {
	t.Helper()
	for _, d := range te.serviceReply(config.Command{}).Services[0].Dests {
		if d.Dest.Addr.String() == rip {
			return d
		}
	}
	t.Fatalf("real server %s is not in the service", rip)
	return ctl.DestStatus{}
}

func TestDeletedDestRevivedWithItsConnections(t *testing.T) {
	te := newTrashEngine(t)
	// Three connections on A while it is the only real server.
	for p := uint16(40000); p < 40003; p++ {
		if got := te.syn(t, p); got != "172.16.0.2" {
			t.Fatalf("SYN %d went to %s with A alone", p, got)
		}
	}
	te.apply(t, "-a -t 10.0.0.100:80 -r 172.16.0.3:8080 -m")
	te.apply(t, "-d -t 10.0.0.100:80 -r 172.16.0.2:8080")
	te.clock += int64(time.Second)
	te.apply(t, "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 -m")

	a := te.destStatus(t, "172.16.0.2")
	if a.ActiveConns != 3 || a.InactConns != 0 || a.Stats.Conns != 3 {
		t.Errorf("re-added A: ActiveConn %d InActConn %d Conns %d, want the 3 it still has (3 0 3)",
			a.ActiveConns, a.InactConns, a.Stats.Conns)
	}
	// wlc: A has 3*256 of overhead, B none; new connections go to B.
	for p := uint16(41000); p < 41003; p++ { // until B carries as many
		if got := te.syn(t, p); got != "172.16.0.3" {
			t.Errorf("SYN %d after A came back went to %s, want B (A still carries 3 connections)", p, got)
		}
	}
}

func TestDeletedDestCountsItsConnectionsWhileTrashed(t *testing.T) {
	te := newTrashEngine(t)
	te.syn(t, 40000)
	te.apply(t, "-d -t 10.0.0.100:80 -r 172.16.0.2:8080")
	// The connection ends while A is deleted: its counter is A's, not a
	// stranger's.
	te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, false, false, 0))
	te.clock += int64(3 * time.Minute)
	te.conns.Expire(te.clock)
	te.apply(t, "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 -m")
	a := te.destStatus(t, "172.16.0.2")
	if a.ActiveConns != 0 || a.InactConns != 0 || a.Stats.Conns != 1 {
		t.Errorf("re-added A: ActiveConn %d InActConn %d Conns %d, want 0 0 1", a.ActiveConns, a.InactConns, a.Stats.Conns)
	}
}

func TestTrashForgetsIdleDestAfterPeriod(t *testing.T) {
	for _, tc := range []struct {
		after     time.Duration
		wantConns uint64
	}{
		{10 * time.Second, 1},  // still in the trash: revived with its statistics
		{121 * time.Second, 0}, // unreferenced for longer than IP_VS_DEST_TRASH_PERIOD: a new destination
	} {
		t.Run(fmt.Sprint(tc.after), func(t *testing.T) {
			te := newTrashEngine(t)
			te.syn(t, 40000)
			te.clock += int64(3 * time.Minute) // SYN_RECV (60 s) expires
			te.conns.Expire(te.clock)
			te.apply(t, "-d -t 10.0.0.100:80 -r 172.16.0.2:8080")
			te.clock += int64(tc.after)
			te.apply(t, "-a -t 10.0.0.100:80 -r 172.16.0.3:8080 -m") // any add reads the trash
			te.clock += int64(tc.after)
			te.apply(t, "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 -m")
			if got := te.destStatus(t, "172.16.0.2").Stats.Conns; got != tc.wantConns {
				t.Errorf("re-added after %v: Conns %d, want %d", tc.after, got, tc.wantConns)
			}
		})
	}
}

func TestTrashedDestDropsUntilRevived(t *testing.T) {
	te := newTrashEngine(t)
	te.syn(t, 40000)
	te.apply(t, "-a -t 10.0.0.100:80 -r 172.16.0.3:8080 -m")
	te.apply(t, "-d -t 10.0.0.100:80 -r 172.16.0.2:8080")
	ack := tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 80, false, true, 10)
	te.intPort.last = te.intPort.last[:0]
	te.feed(te.ext, ack)
	if len(te.intPort.last) != 0 {
		t.Fatalf("a packet of a deleted real server's connection was forwarded (expire_nodest_conn=0 drops it)")
	}
	te.apply(t, "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 -m")
	te.feed(te.ext, ack)
	if len(te.intPort.last) != 1 {
		t.Fatalf("after the real server came back its connection's packet was not forwarded")
	}
	if ip, _ := decode(t, te.intPort.last[0].Data()); ip.DstIP.String() != "172.16.0.2" {
		t.Errorf("forwarded to %s, want the revived 172.16.0.2", ip.DstIP)
	}
}
