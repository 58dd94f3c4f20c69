package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
)

// The VS/NAT example of seeds/000_b9ebab0dbc6c4d1c.txt, with its public
// addresses mapped into documentation ranges:
//
//	202.103.106.5 (VIP)     -> 203.0.113.5
//	202.100.1.2   (client)  -> 198.51.100.2
//
// Port 80 goes to 172.16.0.2:80 (weight 1) and 172.16.0.3:8000 (weight 2)
// by wrr, port 21 to 172.16.0.3:21, and other ports are refused.
const seedNATRules = `# seeds/000: VS/NAT configuration table
-A -t 203.0.113.5:80 -s wrr
-a -t 203.0.113.5:80 -r 172.16.0.2:80 -m -w 1
-a -t 203.0.113.5:80 -r 172.16.0.3:8000 -m -w 2
-A -t 203.0.113.5:21 -s wrr
-a -t 203.0.113.5:21 -r 172.16.0.3:21 -m -w 1
`

func TestSeedNATExample(t *testing.T) {
	nstest.Require(t)
	cli := nstest.New(t, "cli")
	dir := nstest.New(t, "dir")
	lan := nstest.New(t, "lan")
	rs1 := nstest.New(t, "rs1")
	rs2 := nstest.New(t, "rs2")
	nstest.Veth(t, cli, "eth0", dir, "ext", 1500)
	nstest.Veth(t, dir, "int", lan, "p-dir", 1500)
	nstest.Veth(t, rs1, "eth0", lan, "p-rs1", 1500)
	nstest.Veth(t, rs2, "eth0", lan, "p-rs2", 1500)
	lan.Bridge("br0", "p-dir", "p-rs1", "p-rs2")
	cli.Addr("eth0", "198.51.100.2/24")
	cli.Route("203.0.113.5/32", "198.51.100.1", "eth0")
	dir.Addr("ext", "198.51.100.1/24")
	dir.Addr("int", "172.16.0.1/24")
	rs1.Addr("eth0", "172.16.0.2/24")
	rs2.Addr("eth0", "172.16.0.3/24")
	for _, rs := range []*nstest.NS{rs1, rs2} {
		rs.Run(e2e.Bin(t, "lvsrs"), "start", "--mode", "nat", "--dip", "172.16.0.1")
		t.Cleanup(func() { _, _ = rs.Try(e2e.Bin(t, "lvsrs"), "stop") })
	}
	// Each real server answers with its identity, as in the seed's lab.
	serve := func(ns *nstest.NS, port, id string) {
		_, log := ns.Start("socat", "TCP-LISTEN:"+port+",fork,reuseaddr", "SYSTEM:echo "+id)
		waitFor(t, id+" listening", func() bool {
			o, _ := ns.Try("ss", "-ltn", "sport = :"+port)
			return strings.Contains(o, "LISTEN")
		}, log.String)
	}
	serve(rs1, "80", "rs1")
	serve(rs2, "8000", "rs2")
	serve(rs2, "21", "rs2-ftp")

	tmp := t.TempDir()
	rules := filepath.Join(tmp, "rules")
	if err := os.WriteFile(rules, []byte(seedNATRules), 0o600); err != nil {
		t.Fatal(err)
	}
	e2e.StartLVSD(t, dir, "ext,int", "-R", rules)

	// Capture the first connection on both sides of the director.
	cliPcap, rsPcap := filepath.Join(tmp, "client.pcap"), filepath.Join(tmp, "server.pcap")
	// No -a duration: both run until told to stop after the traffic, since
	// on a loaded machine one may start seconds after the other.
	capCli, cliOut := cli.Start("tshark", "-q", "-n", "-i", "eth0", "-f", "tcp port 3456", "-w", cliPcap)
	capRS, rsOut := rs2.Start("tshark", "-q", "-n", "-i", "eth0", "-f", "tcp port 3456", "-w", rsPcap)
	// The first connection must not come before both capture.
	waitCapturing(t, cliOut)
	waitCapturing(t, rsOut)

	counts := map[string]int{}
	err := cli.Do(func() error {
		for i := 0; i < 300; i++ {
			d := net.Dialer{Timeout: 3 * time.Second}
			if i == 0 {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP("198.51.100.2"), Port: 3456}
			}
			id, err := request(&d, "203.0.113.5:80")
			if err != nil {
				return err
			}
			counts[id]++
		}
		d := net.Dialer{Timeout: 3 * time.Second}
		id, err := request(&d, "203.0.113.5:21")
		if err != nil {
			return err
		}
		if id != "rs2-ftp" {
			t.Errorf("port 21 answered by %q, want rs2-ftp (172.16.0.3:21)", id)
		}
		if _, err := request(&d, "203.0.113.5:23"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("port 23: got %v, want connection refused", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if counts["rs1"] != 100 || counts["rs2"] != 200 || len(counts) != 2 {
		t.Errorf("300 connections landed %v, want rs1 (172.16.0.2:80) 100 and rs2 (172.16.0.3:8000) 200", counts)
	}

	stopCaptures(capCli, capRS)
	// The seed's rewrite table: what the client sends and receives, and what
	// the real server receives and sends, for one connection.
	wantClient := []string{"198.51.100.2:3456 > 203.0.113.5:80", "203.0.113.5:80 > 198.51.100.2:3456"}
	wantServer := []string{"198.51.100.2:3456 > 172.16.0.3:8000", "172.16.0.3:8000 > 198.51.100.2:3456"}
	for _, c := range []struct {
		file string
		want []string
	}{{cliPcap, wantClient}, {rsPcap, wantServer}} {
		seen := tuples(t, c.file)
		for _, w := range c.want {
			if !seen[w] {
				t.Errorf("%s: no packet %s; saw %v", filepath.Base(c.file), w, seen)
			}
		}
		if len(seen) != 2 {
			t.Errorf("%s: want exactly the two directions, saw %v", filepath.Base(c.file), seen)
		}
	}
	out := e2e.LVSADM(t, dir, "-L -n --stats")
	if !strings.Contains(out, "172.16.0.3:8000") {
		t.Errorf("stats listing lacks the real server:\n%s", out)
	}
}

func request(d *net.Dialer, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	return strings.TrimSpace(string(b)), err
}

// tuples returns the distinct "src:sport > dst:dport" of a capture.
func tuples(t *testing.T, file string) map[string]bool {
	t.Helper()
	out, err := e2e.Tshark(file, "-T", "fields", "-E", "separator=,", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport")
	if err != nil {
		t.Fatalf("tshark %s: %v", file, err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) == 4 {
			seen[f[0]+":"+f[1]+" > "+f[2]+":"+f[3]] = true
		}
	}
	return seen
}
