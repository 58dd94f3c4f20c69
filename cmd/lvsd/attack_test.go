package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// The hostile-neighbour lab of issue 8 ("lvsd under attack"): a client on
// 10.0.0.0/16, a NAT director, two real servers behind it, and the client
// side also attacking lvsd's ARP and input paths. Each subtest runs one
// attack for a few seconds while the client makes requests through the VIP;
// every request must succeed and the attack must be counted. The 30 s and
// full-rate versions with RSS and latency figures are scripts/bench-arp.sh.

const (
	atkVIP = "10.0.0.100"
	atkDIP = "10.0.0.1"
)

// attackLab is the running lab.
type attackLab struct {
	cli, dir, rs1, rs2 *nstest.NS
	dirMAC             net.HardwareAddr
	script             string // the scapy attacker
	tmp                string
}

func newAttackLab(t testing.TB) *attackLab {
	t.Helper()
	nstest.Require(t)
	testenv.Tools(t, "socat", "curl", "hping3", "trafgen")
	testenv.RequireScapy(t)
	l := &attackLab{
		cli: nstest.New(t, "acli"), dir: nstest.New(t, "adir"),
		rs1: nstest.New(t, "ars1"), rs2: nstest.New(t, "ars2"),
		tmp: t.TempDir(),
	}
	lan := nstest.New(t, "alan")
	nstest.Veth(t, l.cli, "eth0", l.dir, "ext", 1500)
	nstest.Veth(t, l.dir, "int", lan, "p-dir", 1500)
	nstest.Veth(t, l.rs1, "eth0", lan, "p-rs1", 1500)
	nstest.Veth(t, l.rs2, "eth0", lan, "p-rs2", 1500)
	lan.Bridge("br0", "p-dir", "p-rs1", "p-rs2")
	l.cli.Addr("eth0", "10.0.0.2/16")
	l.dir.Addr("ext", atkDIP+"/16")
	l.dir.Addr("int", "172.16.0.1/24")
	l.rs1.Addr("eth0", "172.16.0.2/24")
	l.rs2.Addr("eth0", "172.16.0.3/24")
	for _, rs := range []*nstest.NS{l.rs1, l.rs2} {
		rs.Run(e2e.Bin(t, "lvsrs"), "start", "--mode", "nat", "--dip", "172.16.0.1")
	}
	for _, s := range []struct {
		ns *nstest.NS
		id string
	}{{l.rs1, "rs1"}, {l.rs2, "rs2"}} {
		_, log := s.ns.Start("socat", "TCP-LISTEN:80,fork,reuseaddr,backlog=256", "SYSTEM:echo "+s.id)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if o, _ := s.ns.Try("ss", "-ltn", "sport = :80"); strings.Contains(o, "LISTEN") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not listening:\n%s", s.id, log.String())
			}
		}
	}
	e2e.StartLVSD(t, l.dir, "ext,int", "--metrics", "127.0.0.1:9108")
	e2e.LVSADM(t, l.dir, "-A -t "+atkVIP+":80 -s rr")
	e2e.LVSADM(t, l.dir, "-a -t "+atkVIP+":80 -r 172.16.0.2:80 -m")
	e2e.LVSADM(t, l.dir, "-a -t "+atkVIP+":80 -r 172.16.0.3:80 -m")
	l.dirMAC = l.dir.MAC("ext")
	l.script = filepath.Join(l.tmp, "attack.py")
	if err := os.WriteFile(l.script, []byte(attackPy), 0o644); err != nil {
		t.Fatal(err)
	}
	// Both real servers answer before any attack: their entries exist.
	if fails := l.requests(t, 4, nil); fails != nil {
		t.Fatalf("lab does not forward before the attack: %v", fails)
	}
	return l
}

// attackPy is the scapy attacker. Modes:
//
//	poison SECONDS DIRMAC   ARP request and reply claiming the real servers' addresses, from the client's link
//	badmac SECONDS DIRMAC   ARP claiming the client's own address with broadcast, multicast, zero MACs,
//	                        and with senders 224.0.0.1, 255.255.255.255, the VIP and the director's address
//	martian COUNT DIRMAC    SYNs to the VIP from 0.0.0.0 (hping3 cannot send those)
const attackPy = `
import sys, time
from scapy.all import Ether, ARP, IP, TCP, sendp, get_if_hwaddr, conf
conf.verb = 0
mode, arg, dirmac = sys.argv[1], float(sys.argv[2]), sys.argv[3]
iface = "eth0"
me = get_if_hwaddr(iface)
bc = "ff:ff:ff:ff:ff:ff"
vip, dip = "` + atkVIP + `", "` + atkDIP + `"
if mode == "poison":
    pkts = []
    for rip in ("172.16.0.2", "172.16.0.3"):
        pkts.append(Ether(src=me, dst=bc)/ARP(op=1, hwsrc=me, psrc=rip, pdst=vip))
        pkts.append(Ether(src=me, dst=dirmac)/ARP(op=2, hwsrc=me, psrc=rip, hwdst=dirmac, pdst=dip))
elif mode == "badmac":
    pkts = []
    for mac in (bc, "01:00:5e:00:00:01", "33:33:00:00:00:01", "00:00:00:00:00:00"):
        pkts.append(Ether(src=me, dst=bc)/ARP(op=1, hwsrc=mac, psrc="10.0.0.2", pdst=vip))
        pkts.append(Ether(src=me, dst=dirmac)/ARP(op=2, hwsrc=mac, psrc="10.0.0.2", hwdst=dirmac, pdst=dip))
    for ip in ("224.0.0.1", "255.255.255.255", vip, dip):
        pkts.append(Ether(src=me, dst=bc)/ARP(op=1, hwsrc=me, psrc=ip, pdst=vip))
        pkts.append(Ether(src=me, dst=dirmac)/ARP(op=2, hwsrc=me, psrc=ip, hwdst=dirmac, pdst=dip))
elif mode == "martian":
    pkts = [Ether(src=me, dst=dirmac)/IP(src="0.0.0.0", dst=vip)/TCP(sport=1024+i, dport=80, flags="S") for i in range(int(arg))]
    sendp(pkts, iface=iface)
    print("sent", len(pkts), flush=True)
    sys.exit(0)
print("started", len(pkts), flush=True)
end = time.time() + arg
n = 0
while time.time() < end:
    sendp(pkts, iface=iface)
    n += len(pkts)
    time.sleep(0.02)
print("sent", n, flush=True)
`

// requests makes n requests through the VIP (at least n, and until done is
// closed if it is given) and returns the failures.
func (l *attackLab) requests(t testing.TB, n int, done <-chan struct{}) []error {
	t.Helper()
	var fails []error
	made := 0
	err := l.cli.Do(func() error {
		for i := 0; ; i++ {
			if i >= n {
				if done == nil {
					return nil
				}
				select {
				case <-done:
					return nil
				default:
				}
			}
			d := net.Dialer{Timeout: 2 * time.Second}
			id, err := request(&d, atkVIP+":80")
			made++
			if err == nil && id != "rs1" && id != "rs2" {
				err = fmt.Errorf("answer %q", id)
			}
			if err != nil {
				fails = append(fails, fmt.Errorf("request %d: %w", i, err))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests through the VIP, %d failed", made, len(fails))
	return fails
}

func (l *attackLab) metrics(t testing.TB) string {
	t.Helper()
	return l.dir.Run("curl", "-s", "http://127.0.0.1:9108/metrics")
}

// during runs the attacker process while the client keeps requesting, and
// fails the test on any failed request.
func (l *attackLab) during(t *testing.T, name string, args ...string) string {
	t.Helper()
	p, out := l.cli.Start(name, args...)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = p.Wait(); close(done) }()
	fails := l.requests(t, 10, done)
	wg.Wait()
	if err := p.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out.String())
	}
	for i, f := range fails {
		if i == 5 {
			t.Errorf("... %d failures in all", len(fails))
			break
		}
		t.Error(f)
	}
	return out.String()
}

// lvsdPID is the lvsd process of ns.
func lvsdPID(t testing.TB, ns *nstest.NS) string {
	t.Helper()
	out, _ := ns.Try("ip", "netns", "pids", ns.Name)
	for _, f := range strings.Fields(out) {
		if comm, err := os.ReadFile("/proc/" + f + "/comm"); err == nil && strings.TrimSpace(string(comm)) == "lvsd" {
			return f
		}
	}
	t.Fatalf("no lvsd process in %s", ns.Name)
	return ""
}

// memory returns lvsd's resident set and its anonymous part (the Go heap
// and stacks; the packet rings are file pages), in bytes.
func memory(t testing.TB, ns *nstest.NS) (rss, anon int) {
	t.Helper()
	st, err := os.ReadFile("/proc/" + lvsdPID(t, ns) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "RssAnon") {
			continue
		}
		kb, _ := strconv.Atoi(strings.Fields(v)[0])
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			anon = kb << 10
		}
	}
	return rss, anon
}

func TestHostileNeighbour(t *testing.T) {
	l := newAttackLab(t)
	mac := l.dirMAC.String()

	// Defect 1: ARP from the client's link claiming the real servers'
	// addresses. Before the fix every request scheduled to a real server
	// went to the attacker's MAC on the server link.
	t.Run("arp-claim-from-other-link", func(t *testing.T) {
		before := metric(l.metrics(t), `lvsd_drops_total{reason="arp_wrong_interface"}`)
		l.during(t, testenv.Scapy, l.script, "poison", "2", mac)
		if got := metric(l.metrics(t), `lvsd_drops_total{reason="arp_wrong_interface"}`) - before; got == 0 {
			t.Error("the wrong-interface drops did not count the claims")
		}
	})

	// Defect 3: ARP claiming the client with group and zero MACs, and ARP
	// from impossible sender IPs. Before the fix the client was black-holed.
	t.Run("arp-bad-sender", func(t *testing.T) {
		m := l.metrics(t)
		mac0, ip0 := metric(m, `lvsd_drops_total{reason="arp_bad_sender_mac"}`), metric(m, `lvsd_drops_total{reason="arp_bad_sender_ip"}`)
		l.during(t, testenv.Scapy, l.script, "badmac", "2", mac)
		m = l.metrics(t)
		if metric(m, `lvsd_drops_total{reason="arp_bad_sender_mac"}`) == mac0 || metric(m, `lvsd_drops_total{reason="arp_bad_sender_ip"}`) == ip0 {
			t.Errorf("bad senders not counted:\n%s", grepLines(m, "arp"))
		}
	})

	// Defect 2: a full-rate flood of ARP replies, half with random sender
	// IPs, half with on-link ones lvsd never asked about. Nothing is learned,
	// so lvsd's heap does not grow.
	t.Run("arp-reply-flood", func(t *testing.T) {
		conf := filepath.Join(l.tmp, "flood.cfg")
		if err := os.WriteFile(conf, []byte(arpFloodConf(l.dirMAC)), 0o644); err != nil {
			t.Fatal(err)
		}
		m := l.metrics(t)
		seen0 := metric(m, `lvsd_drops_total{reason="arp_unsolicited"}`) + metric(m, `lvsd_drops_total{reason="arp_wrong_interface"}`)
		neigh0 := neighbourEntries(m)
		_, rss0 := memory(t, l.dir)
		out := l.during(t, "trafgen", "--dev", "eth0", "--conf", conf, "-n", "300000", "-q")
		_, rss1 := memory(t, l.dir)
		m = l.metrics(t)
		seen := metric(m, `lvsd_drops_total{reason="arp_unsolicited"}`) + metric(m, `lvsd_drops_total{reason="arp_wrong_interface"}`) - seen0
		t.Logf("300000 ARP replies sent, %d refused by lvsd (the rest dropped by the ring); lvsd RssAnon %d -> %d KiB\n%s",
			seen, rss0>>10, rss1>>10, out)
		if n := neighbourEntries(m); n > neigh0 {
			t.Errorf("lvsd's neighbour cache grew from %d to %d entries under the flood", neigh0, n)
		}
		if seen == 0 {
			t.Error("the flood was not counted as unsolicited or wrong-interface ARP")
		}
		if rss1-rss0 > 10<<20 {
			t.Errorf("lvsd's anonymous memory grew by %d KiB under the flood, want < 10 MiB", (rss1-rss0)>>10)
		}
	})

	// Defect 8: SYNs from martian sources (hping3, and scapy for 0.0.0.0)
	// create no connection and never reach a real server.
	t.Run("martian-syn", func(t *testing.T) {
		m := l.metrics(t)
		created0, mart0 := metric(m, "lvsd_conn_table_created_total"), metric(m, `lvsd_drops_total{reason="martian_source"}`)
		sent := 0
		var wg sync.WaitGroup
		srcs := []string{"127.0.0.1", "224.0.0.5", "255.255.255.255", atkVIP, atkDIP}
		outs := make([]string, len(srcs))
		for i, src := range srcs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// hping3 exits 1 when nothing answers, which is the point.
				outs[i], _ = l.cli.Try("hping3", "-q", "-S", "-p", "80", "-a", src, "-c", "20", "-i", "u2000", atkVIP)
			}()
		}
		wg.Wait()
		for i, out := range outs {
			if !strings.Contains(out, "20 packets transmitted") {
				t.Fatalf("hping3 -a %s did not send:\n%s", srcs[i], out)
			}
			sent += 20
		}
		if out, err := l.cli.Try(testenv.Scapy, l.script, "martian", "20", l.dirMAC.String()); err != nil {
			t.Fatalf("scapy: %v\n%s", err, out)
		}
		sent += 20
		// Martians are dropped on arrival; a request afterwards proves they
		// were all processed (frames of one ring are handled in order).
		if fails := l.requests(t, 1, nil); fails != nil {
			t.Fatal(fails)
		}
		m = l.metrics(t)
		if got := metric(m, "lvsd_conn_table_created_total") - created0; got != 1 {
			t.Errorf("%d connections created, want 1 (the real request): martian SYNs were balanced", got)
		}
		if got := metric(m, `lvsd_drops_total{reason="martian_source"}`) - mart0; got != sent {
			t.Errorf("martian-source drops grew by %d, want %d", got, sent)
		}
	})
}

// arpFloodConf is a trafgen configuration of ARP replies to the director:
// one with a random sender IP, one with a random on-link sender in
// 10.0.128.0/24 (never the client), both from random unicast MACs.
func arpFloodConf(dir net.HardwareAddr) string {
	hex := func(m net.HardwareAddr) string {
		var b strings.Builder
		for i, x := range m {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "0x%02x", x)
		}
		return b.String()
	}
	pkt := func(spa string) string {
		return fmt.Sprintf(`{
  %[1]s, 0x02, drnd(5), 0x08, 0x06,
  0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
  0x02, drnd(5), %[2]s,
  %[1]s, 10, 0, 0, 1,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
}
`, hex(dir), spa)
	}
	return pkt("drnd(4)") + pkt("10, 0, 128, drnd()")
}

// neighbourEntries sums lvsd_neighbour_entries over its states.
func neighbourEntries(text string) int {
	n := 0
	for _, state := range []string{"reachable", "stale", "incomplete"} {
		n += metric(text, `lvsd_neighbour_entries{state="`+state+`"}`)
	}
	return n
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
