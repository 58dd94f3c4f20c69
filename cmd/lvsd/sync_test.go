package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// The connection sync daemon, end to end between two directors on one
// segment (DR, one real server, long-lived echo streams): the master sends,
// the backup learns every established connection (counted inactive there
// until it carries traffic), and when the master is killed and the
// segment's traffic for the VIP turns to the backup (the client's neighbour
// entry rewritten, as a gratuitous ARP would), every stream goes on. The
// same failover without the daemon breaks every stream, side by side.
func TestSyncFailoverKeepsStreams(t *testing.T) {
	nstest.Require(t)
	testenv.Tools(t, "socat")
	for _, withSync := range []bool{true, false} {
		name := "without-sync"
		if withSync {
			name = "with-sync"
		}
		t.Run(name, func(t *testing.T) {
			broken, total := syncFailover(t, withSync)
			t.Logf("%s: %d of %d streams broke over the failover", name, broken, total)
			if withSync && broken != 0 {
				t.Errorf("with the sync daemon %d of %d streams broke, want none", broken, total)
			}
			if !withSync && broken != total {
				t.Errorf("without the sync daemon %d of %d streams broke, want all (the test would not show what sync does)", broken, total)
			}
		})
	}
}

const syncStreams = 20

func syncFailover(t *testing.T, withSync bool) (broken, total int) {
	sw := nstest.New(t, "ysw")
	cli := nstest.New(t, "ycli")
	d1 := nstest.New(t, "yd1")
	d2 := nstest.New(t, "yd2")
	rs := nstest.New(t, "yrs")
	for i, n := range []*nstest.NS{cli, d1, d2, rs} {
		nstest.Veth(t, n, "eth0", sw, fmt.Sprintf("p%d", i), 1500)
	}
	sw.Bridge("br0", "p0", "p1", "p2", "p3")
	cli.Addr("eth0", "10.0.0.2/24")
	d1.Addr("eth0", "10.0.0.11/24")
	d2.Addr("eth0", "10.0.0.12/24")
	rs.Addr("eth0", "10.0.0.20/24")
	rs.Run(e2e.Bin(t, "lvsrs"), "start", "--mode", "dr", "--vip", "10.0.0.100", "--iface", "eth0")
	t.Cleanup(func() { _, _ = rs.Try(e2e.Bin(t, "lvsrs"), "stop") })
	startEchoServer(t, rs)

	master, _ := e2e.StartLVSDProc(t, d1, "eth0")
	e2e.StartLVSD(t, d2, "eth0", "--no-arp") // the backup: rules, no ARP for the VIP
	for _, d := range []*nstest.NS{d1, d2} {
		e2e.LVSADM(t, d, "-A -t 10.0.0.100:80 -s rr")
		e2e.LVSADM(t, d, "-a -t 10.0.0.100:80 -r 10.0.0.20:80 -g")
	}
	if withSync {
		e2e.LVSADM(t, d1, "--start-daemon master --mcast-interface eth0 --syncid 5")
		e2e.LVSADM(t, d2, "--start-daemon backup --mcast-interface eth0 --syncid 5")
		if got, want := e2e.LVSADM(t, d1, "-L --daemon"), "master sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"; got != want {
			t.Errorf("master -L --daemon:\n%q, want\n%q", got, want)
		}
		if got := e2e.LVSADM(t, d2, "-L --daemon"); !strings.HasPrefix(got, "backup sync daemon (mcast=eth0, syncid=5,") {
			t.Errorf("backup -L --daemon: %q", got)
		}
	}

	var streams []*echoStream
	_ = cli.Do(func() error {
		for i := range syncStreams {
			c, err := net.DialTimeout("tcp4", "10.0.0.100:80", 5*time.Second)
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			t.Cleanup(func() { _ = c.Close() })
			streams = append(streams, &echoStream{c: c, rd: bufio.NewReader(c)})
		}
		return nil
	})
	// Three rounds each: the 3rd incoming packet of an established
	// connection is the one the master syncs.
	for round := range 3 {
		for i, s := range streams {
			if err := s.roundTrip(fmt.Sprintf("stream %d round %d", i, round)); err != nil {
				t.Fatalf("before the failover, stream %d round %d: %v", i, round, err)
			}
		}
	}
	if withSync {
		// The backup has them all, ESTABLISHED, before anything moves;
		// a partly filled message goes out after 2 s.
		waitFor(t, "the backup to learn every stream", func() bool {
			return strings.Count(e2e.LVSADM(t, d2, "-L -n -c"), "ESTABLISHED") == syncStreams
		}, func() string { return e2e.LVSADM(t, d2, "-L -n -c") })
		if a, in := destConns(t, d2, "10.0.0.20:80"); a != 0 || in != syncStreams {
			t.Errorf("backup before the failover: ActiveConn %d InActConn %d, want 0 and %d (synced streams count as inactive until they carry traffic here)", a, in, syncStreams)
		}
	}

	// The failover: the master dies, the VIP's traffic goes to the backup.
	_ = syscall.Kill(master.Process.Pid, syscall.SIGKILL)
	_ = master.Wait()
	cli.Run("ip", "neigh", "replace", "10.0.0.100", "lladdr", d2.MAC("eth0").String(), "dev", "eth0", "nud", "permanent")

	for i, s := range streams {
		if err := s.roundTrip(fmt.Sprintf("stream %d after", i)); err != nil {
			broken++
		}
	}
	if withSync {
		if a, _ := destConns(t, d2, "10.0.0.20:80"); a != syncStreams-broken {
			t.Errorf("backup after the failover: ActiveConn %d, want %d (every stream that carried traffic here)", a, syncStreams-broken)
		}
	}
	return broken, syncStreams
}

// destConns reads a real server's ActiveConn and InActConn from lvsadm -L -n.
func destConns(t *testing.T, ns *nstest.NS, rip string) (active, inactive int) {
	t.Helper()
	for _, line := range strings.Split(e2e.LVSADM(t, ns, "-L -n"), "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && f[0] == "->" && f[1] == rip {
			_, _ = fmt.Sscan(f[4], &active)
			_, _ = fmt.Sscan(f[5], &inactive)
			return active, inactive
		}
	}
	t.Fatalf("%s not in lvsadm -L -n", rip)
	return 0, 0
}
