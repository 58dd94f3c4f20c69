package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
)

// adminRules covers every column and option lvsadm prints or saves: TCP,
// UDP and fwmark services, every forwarding method, persistence with and
// without a mask, one-packet scheduling, scheduler flags, weights (0 too)
// and thresholds.
var adminRules = []string{
	"-A -t 207.175.44.110:80 -s wlc -p 360 -M 255.255.255.0",
	"-a -t 207.175.44.110:80 -r 192.168.10.1:80 -m -w 1",
	"-a -t 207.175.44.110:80 -r 192.168.10.2:80 -m -w 2 -x 100 -y 50",
	"-A -t 207.175.44.110:8080 -s rr",
	"-a -t 207.175.44.110:8080 -r 172.16.0.2:8080 -g -w 1",
	"-A -u 207.175.44.110:53 -s sh -b sh-fallback,sh-port",
	"-a -u 207.175.44.110:53 -r 172.16.0.3:53 -i -w 1",
	"-A -u 207.175.44.110:514 -s rr -o",
	"-a -u 207.175.44.110:514 -r 172.16.0.2:514 -m -w 1",
	"-A -f 1 -s wrr",
	"-a -f 1 -r 192.168.10.5:0 -g -w 0",
}

// The service table as ipvsadm 1.31 prints it for adminRules (services and
// real servers sorted; dest lines keep their trailing blanks).
const adminList = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  207.175.44.110:80 wlc persistent 360 mask 255.255.255.0
  -> 192.168.10.1:80              Masq    1      0          0         
  -> 192.168.10.2:80              Masq    2      0          0         
TCP  207.175.44.110:8080 rr
  -> 172.16.0.2:8080              Route   1      0          0         
UDP  207.175.44.110:53 sh (sh-fallback,sh-port)
  -> 172.16.0.3:53                Tunnel  1      0          0         
UDP  207.175.44.110:514 rr ops
  -> 172.16.0.2:514               Masq    1      0          0         
FWM  1 wrr
  -> 192.168.10.5:0               Route   0      0          0         
`

func TestLvsadmAgainstLiveLvsd(t *testing.T) {
	nstest.Require(t)
	d := nstest.New(t, "adm")
	peer := nstest.New(t, "admp")
	nstest.Veth(t, d, "eth0", peer, "eth0", 1500)
	d.Addr("eth0", "172.16.0.1/24")
	e2e.StartLVSD(t, d, "eth0")
	for _, r := range adminRules {
		e2e.LVSADM(t, d, r)
	}
	if got := e2e.LVSADM(t, d, "-L -n"); got != adminList {
		t.Errorf("lvsadm -L -n:\n%q\nwant\n%q", got, adminList)
	}
	// -S -n | -R round trip through the daemon.
	saved := e2e.LVSADM(t, d, "-S -n")
	e2e.LVSADM(t, d, "-C")
	if got := e2e.LVSADM(t, d, "-L -n"); strings.Count(got, "\n") != 3 {
		t.Fatalf("after -C the table is not empty:\n%s", got)
	}
	cmd := d.Cmd(t.Context(), e2e.Bin(t, "lvsadm"), "-R")
	cmd.Stdin = strings.NewReader(saved)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lvsadm -R: %v\n%s", err, out)
	}
	if again := e2e.LVSADM(t, d, "-S -n"); again != saved {
		t.Errorf("-S -n after -R differs:\n%s\nwant\n%s", again, saved)
	}
	if got := e2e.LVSADM(t, d, "-L -n"); got != adminList {
		t.Errorf("after -R, lvsadm -L -n:\n%s\nwant\n%s", got, adminList)
	}
	e2e.LVSADM(t, d, "--set 1200 5 60")
	if got, want := e2e.LVSADM(t, d, "-L --timeout"), "Timeout (tcp tcpfin udp): 1200 5 60\n"; got != want {
		t.Errorf("--timeout: %q, want %q", got, want)
	}
	// A refused command changes nothing and says why.
	out, err := d.Try(e2e.Bin(t, "lvsadm"), "-a", "-t", "207.175.44.110:9999", "-r", "10.0.0.1")
	if err == nil || !strings.Contains(out, "Service not defined") {
		t.Errorf("adding to a missing service: err %v, output %q", err, out)
	}
}

// TestLvsdLeavesNothingBehind: SIGTERM removes the nftables guard and
// restores the offloads lvsd turned off.
func TestLvsdLeavesNothingBehind(t *testing.T) {
	nstest.Require(t)
	d := nstest.New(t, "clean")
	peer := nstest.New(t, "cleanp")
	nstest.Veth(t, d, "eth0", peer, "eth0", 1500)
	d.Addr("eth0", "172.16.0.1/24")
	snapshot := func() string {
		nft := d.Run("nft", "list", "ruleset")
		feat := d.Run("ethtool", "-k", "eth0")
		addrs := d.Run("ip", "-4", "-d", "addr", "show")
		routes := d.Run("ip", "-4", "route", "show", "table", "all")
		return nft + feat + addrs + routes
	}
	// veth starts with GRO off; turn it on so lvsd has something to undo.
	d.Offload("eth0", "gro", "on")
	before := snapshot()
	if !strings.Contains(before, "generic-receive-offload: on") {
		t.Fatalf("could not turn GRO on:\n%s", before)
	}
	cmd, log := d.Start(e2e.Bin(t, "lvsd"), "-i", "eth0")
	waitFor(t, "lvsd up", func() bool {
		_, err := d.Try(e2e.Bin(t, "lvsadm"), "-L", "-n")
		return err == nil
	}, log.String)
	e2e.LVSADM(t, d, "-A -t 172.16.0.100:80 -s rr")
	e2e.LVSADM(t, d, "-a -t 172.16.0.100:80 -r 172.16.0.2:80 -m")
	during := snapshot()
	if !strings.Contains(during, "table netdev lvsd") || !strings.Contains(during, "generic-receive-offload: off") {
		t.Fatalf("lvsd did not install its guard or turn GRO off:\n%s\nlog:\n%s", during, log.String())
	}
	if !strings.Contains(log.String(), "turned off receive aggregation") {
		t.Errorf("lvsd did not say it turned GRO off:\n%s", log.String())
	}
	// ip netns exec execs lvsd, so the process is lvsd itself.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "lvsd exit", func() bool { return cmd.Exited() }, log.String)
	// What the kernel does after lvsd's last call returned (a link's
	// offload state, a table's removal) may settle a moment later: wait
	// for it, within a deadline, rather than for a fixed while.
	after := snapshot()
	for deadline := time.Now().Add(5 * time.Second); after != before && time.Now().Before(deadline); after = snapshot() {
		time.Sleep(50 * time.Millisecond)
	}
	if after != before {
		t.Errorf("lvsd left changes behind.\nbefore:\n%s\nafter:\n%s\nlog:\n%s", before, after, log.String())
	}
}
