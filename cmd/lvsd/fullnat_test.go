package main

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// TestFullNATEndToEnd is seed 002's FULLNAT service with real peers: curl
// on the client, lvsd in FULLNAT with two local addresses, two real
// servers (the lab's http-echo with its TOA reader) on a subnet whose only
// route back leads to the local addresses. Seed 002's VIP 1.1.1.1 is
// 203.0.113.1 here; its local addresses and real servers are as written.
//
// rs1 reaches the local addresses on its link (lvsd answers ARP for them),
// rs2 through the director's own address (a gateway route); neither has a
// route to the client.
func TestFullNATEndToEnd(t *testing.T) {
	nstest.Require(t)
	testenv.Tools(t, "curl", "tshark")
	cli, dir, lan := nstest.New(t, "cli"), nstest.New(t, "dir"), nstest.New(t, "lan")
	rs1, rs2 := nstest.New(t, "rs1"), nstest.New(t, "rs2")
	nstest.Veth(t, cli, "eth0", dir, "ext", 1500)
	nstest.Veth(t, dir, "int", lan, "p-dir", 1500)
	nstest.Veth(t, rs1, "eth0", lan, "p-rs1", 1500)
	nstest.Veth(t, rs2, "eth0", lan, "p-rs2", 1500)
	lan.Bridge("br0", "p-dir", "p-rs1", "p-rs2")
	for _, l := range []struct {
		ns   *nstest.NS
		link string
	}{{cli, "eth0"}, {dir, "ext"}, {dir, "int"}, {rs1, "eth0"}, {rs2, "eth0"}} {
		l.ns.Offload(l.link, "tso", "off", "gso", "off")
	}
	cli.Addr("eth0", "198.51.100.2/24")
	cli.Route("203.0.113.1/32", "198.51.100.1", "eth0")
	dir.Addr("ext", "198.51.100.1/24")
	dir.Addr("int", "192.168.1.254/24")
	rs1.Addr("eth0", "192.168.1.1/24")
	rs2.Addr("eth0", "192.168.1.2/24")
	rs1.Route("192.168.100.0/24", "", "eth0")
	rs2.Route("192.168.100.0/24", "192.168.1.254", "eth0")

	lvslab := e2e.Bin(t, "lvslab")
	// 1 MiB to send both ways: tcp-sink checksums what it receives, socat
	// serves the file.
	tmp := t.TempDir()
	blob := make([]byte, 1<<20)
	_, _ = rand.Read(blob)
	blobFile := filepath.Join(tmp, "blob")
	if err := os.WriteFile(blobFile, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, rs := range []*nstest.NS{rs1, rs2} {
		id := fmt.Sprintf("rs%d", i+1)
		_, log := rs.Start(lvslab, "service", "http-echo", "--listen", ":80", "--identity", id, "--toa")
		waitFor(t, id+" listening", func() bool { return strings.Contains(log.String(), "listening on") }, log.String)
		_, slog := rs.Start(lvslab, "service", "tcp-sink", "--listen", ":9000", "--identity", id)
		waitFor(t, id+" sink listening", func() bool { return strings.Contains(slog.String(), "listening on") }, slog.String)
		_, flog := rs.Start("socat", "TCP-LISTEN:9001,fork,reuseaddr", "OPEN:"+blobFile+",rdonly")
		waitFor(t, id+" file server listening", func() bool {
			o, _ := rs.Try("ss", "-ltnH", "sport = :9001")
			return strings.Contains(o, "LISTEN")
		}, flog.String)
	}

	pcaps := t.TempDir()
	e2e.StartLVSD(t, dir, "ext,int", "--pcap-tx", pcaps)
	for _, c := range []string{
		"-A -t 203.0.113.1:80 -s rr",
		"-P -t 203.0.113.1:80 -z 192.168.100.1",
		"-P -t 203.0.113.1:80 -z 192.168.100.2",
		"-a -t 203.0.113.1:80 -r 192.168.1.1:80 -b -w 100",
		"-a -t 203.0.113.1:80 -r 192.168.1.2:80 -b -w 100",
		"-A -t 203.0.113.1:9000 -s rr",
		"-P -t 203.0.113.1:9000 -z 192.168.100.1",
		"-P -t 203.0.113.1:9000 -z 192.168.100.2",
		"-a -t 203.0.113.1:9000 -r 192.168.1.1:9000 -b",
		"-a -t 203.0.113.1:9000 -r 192.168.1.2:9000 -b",
		"-A -t 203.0.113.1:9001 -s rr",
		"-P -t 203.0.113.1:9001 -z 192.168.100.2",
		"-a -t 203.0.113.1:9001 -r 192.168.1.2:9001 -b",
	} {
		e2e.LVSADM(t, dir, c)
	}

	// Every request: the real server saw a local address as the peer and
	// the client's own address and port in the TOA.
	lips := []string{"192.168.100.1", "192.168.100.2"}
	request := func(t *testing.T) (backend, peer string) {
		t.Helper()
		out := cli.Run("curl", "-sS", "--max-time", "10", "-D", "-", "-o", "/dev/null",
			"-w", "local: %{local_ip}:%{local_port}\n", "http://203.0.113.1/")
		h := headers(out)
		peerAddr, err := netip.ParseAddrPort(h["x-lvslab-peer"])
		if err != nil || !slices.Contains(lips, peerAddr.Addr().String()) {
			t.Fatalf("the real server saw peer %q, want a local address %v:\n%s", h["x-lvslab-peer"], lips, out)
		}
		if got, want := h["x-lvslab-toa-client"], h["local"]; got != want || want == "" {
			t.Fatalf("the real server's TOA reader says the client is %q, curl was %q:\n%s", got, want, out)
		}
		return h["x-lvslab-backend"], peerAddr.Addr().String()
	}
	backends, peers := map[string]int{}, map[string]int{}
	for range 8 {
		b, p := request(t)
		backends[b]++
		peers[p]++
	}
	if len(backends) != 2 || len(peers) != 2 {
		t.Errorf("requests reached backends %v from local addresses %v: want both of each", backends, peers)
	}

	// 1 MiB each way arrives byte for byte (the sequence remap, the TOA
	// and the MSS are right for a long transfer too).
	sum := sha256.Sum256(blob)
	up := cli.Cmd(t.Context(), "socat", "-t", "10", "-", "TCP:203.0.113.1:9000")
	up.Stdin = strings.NewReader(string(blob))
	got, err := up.Output()
	if err != nil || !strings.Contains(string(got), fmt.Sprintf("bytes=%d sha256=%x", len(blob), sum)) {
		t.Errorf("upload through FULLNAT: %v, sink answered %q", err, got)
	}
	down, err := cli.Cmd(t.Context(), "socat", "-u", "TCP:203.0.113.1:9001", "STDOUT").Output()
	if err != nil || sha256.Sum256(down) != sum {
		t.Errorf("download through FULLNAT: %v, %d bytes, intact %v", err, len(down), sha256.Sum256(down) == sum)
	}

	// 2,000 connections open at once, over both local addresses and both
	// real servers: each real server sees every one as its own (a local
	// port given twice toward one real server would be one connection
	// there, and the second handshake would fail).
	const concurrent = 2000
	var open []net.Conn
	t.Cleanup(func() {
		for _, c := range open {
			c.Close()
		}
	})
	err = cli.Do(func() error {
		d := net.Dialer{Timeout: 10 * time.Second}
		for i := range concurrent {
			c, err := d.Dial("tcp", "203.0.113.1:9000")
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			open = append(open, c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fromLIP := map[string]int{} // local address -> connections the real servers hold from it
	waitFor(t, "the real servers holding every connection", func() bool {
		clear(fromLIP)
		total := 0
		for _, rs := range []*nstest.NS{rs1, rs2} {
			out, _ := rs.Try("ss", "-Htn", "state", "established", "( sport = :9000 )")
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(line)
				if len(f) < 4 {
					continue
				}
				if ap, err := netip.ParseAddrPort(f[len(f)-1]); err == nil {
					fromLIP[ap.Addr().Unmap().String()]++
					total++
				}
			}
		}
		return total == concurrent
	}, func() string { return fmt.Sprint(fromLIP) })
	for _, lip := range lips {
		if n := fromLIP[lip]; n < concurrent/2-100 || n > concurrent/2+100 {
			t.Errorf("%d of %d connections from %s, want about half: %v", n, concurrent, lip, fromLIP)
		}
	}

	// -G lists the local addresses as the fork's ipvsadm does.
	g := e2e.LVSADM(t, dir, "-G")
	t.Logf("lvsadm -G:\n%s", g)
	want := regexp.MustCompile(`(?m)^VIP:VPORT +TOTAL +LADDR +CONFLICTS +CONNS +\n203\.0\.113\.1:80 +2 +\n +192\.168\.100\.1 +0 +\d+ +\n +192\.168\.100\.2 +0 +\d+ +\n` +
		`203\.0\.113\.1:9000 +2 +\n +192\.168\.100\.1 +0 +\d+ +\n +192\.168\.100\.2 +0 +\d+ +\n203\.0\.113\.1:9001 +1 +\n +192\.168\.100\.2 +0 +\d+ +\n$`)
	if !want.MatchString(g) {
		t.Errorf("lvsadm -G does not match %s", want)
	}
	if l := e2e.LVSADM(t, dir, "-L -n"); strings.Count(l, "FullNat") != 5 {
		t.Errorf("lvsadm -L -n shows no FullNat real servers:\n%s", l)
	}

	// -S | -R: the table, local addresses included, comes back and serves.
	saved := e2e.LVSADM(t, dir, "-S -n")
	e2e.LVSADM(t, dir, "-C")
	if g := e2e.LVSADM(t, dir, "-G"); g != "" {
		t.Fatalf("after -C, -G prints %q", g)
	}
	restore := dir.Cmd(t.Context(), e2e.Bin(t, "lvsadm"), "-R")
	restore.Stdin = strings.NewReader(saved)
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("lvsadm -R: %v\n%s\n%s", err, out, saved)
	}
	if again := e2e.LVSADM(t, dir, "-S -n"); again != saved {
		t.Errorf("-S after -R:\n%s\nwant:\n%s", again, saved)
	}
	request(t)

	// What lvsd sent: valid checksums; toward the real servers, SYNs with
	// the TOA and without timestamps; toward the client, SYN/ACKs with the
	// real server's MSS less 8.
	e2e.CheckPcaps(t, pcaps, false)
	files, _ := filepath.Glob(filepath.Join(pcaps, "*.pcap"))
	count := func(filter string) int {
		n := 0
		for _, f := range files {
			out, err := e2e.Tshark(f, "-Y", filter, "-T", "fields", "-e", "frame.number")
			if err != nil {
				t.Fatalf("tshark %s: %v", f, err)
			}
			n += len(strings.Fields(out))
		}
		return n
	}
	toRS := "ip.dst in {192.168.1.1, 192.168.1.2} && tcp.dstport == 80 && tcp.flags.syn == 1"
	if n, toa := count(toRS), count(toRS+" && tcp.option_kind == 254"); n != 9 || toa != n {
		t.Errorf("%d SYNs to the real servers, %d with TOA: want 9 and 9", n, toa)
	}
	if n := count(toRS + " && tcp.option_kind == 8"); n != 0 {
		t.Errorf("%d SYNs to the real servers kept their timestamps", n)
	}
	if n := count("tcp.flags.ack == 1 && !(tcp.flags.syn == 1) && tcp.len > 0 && tcp.option_kind == 254 && tcp.dstport == 80 && ip.dst in {192.168.1.1, 192.168.1.2}"); n != 9 {
		t.Errorf("%d first data segments with TOA, want 9 (one per connection)", n)
	}
	synack := "ip.dst == 198.51.100.2 && tcp.srcport == 80 && tcp.flags.syn == 1 && tcp.flags.ack == 1"
	if n, clamped := count(synack), count(synack+" && tcp.options.mss_val == 1452"); n != 9 || clamped != n {
		t.Errorf("%d SYN/ACKs to the client, %d with MSS 1452: want 9 and 9", n, clamped)
	}
}

// headers reads curl -D output (and the -w line) into lower-case names.
func headers(out string) map[string]string {
	h := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), ":"); ok {
			h[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
	return h
}
