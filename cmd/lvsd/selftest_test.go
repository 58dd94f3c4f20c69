package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
)

// TestKernelSelftest rebuilds tools/testing/selftests/net/netfilter/ipvs.sh
// with lvsd in the director namespace instead of ip_vs: for DR, NAT and TUN,
// a random payload sent by socat arrives byte-identical at the real server.
// The payload is 1 MiB rather than the selftest's 32 bytes, so every path
// (checksum completion, segmentation, MTU) is exercised.
func TestKernelSelftest(t *testing.T) {
	nstest.Require(t)
	for _, mode := range []string{"dr", "nat", "tun"} {
		t.Run(mode, func(t *testing.T) { runSelftest(t, mode, false, false) })
	}
}

// TestSelftestWithTSO runs the same transfers with veth's default offloads:
// the senders' TCP stacks hand over 64 KiB super-frames, which lvsd cuts
// into MTU-sized segments as the wire would.
func TestSelftestWithTSO(t *testing.T) {
	nstest.Require(t)
	for _, mode := range []string{"dr", "nat", "tun"} {
		t.Run(mode, func(t *testing.T) { runSelftest(t, mode, false, true) })
	}
}

// TestSelftestRXRingV2 runs the TSO transfers with --rx-ring v2: the
// super-frames overflow their 2 KiB slots and must come whole through the
// socket's queue to be segmented.
func TestSelftestRXRingV2(t *testing.T) {
	nstest.Require(t)
	for _, mode := range []string{"dr", "nat", "tun"} {
		t.Run(mode, func(t *testing.T) { runSelftest(t, mode, false, true, "--rx-ring", "v2") })
	}
}

// TestNATWithIPForward is acceptance point 4: with ip_forward=1 on the
// director the kernel could route real-server replies to the client
// untranslated; the guard prevents it, so the client never sees a packet
// from a real-server address and the transfer still passes.
func TestNATWithIPForward(t *testing.T) {
	nstest.Require(t)
	runSelftest(t, "nat", true, false)
}

func runSelftest(t *testing.T, mode string, watchRIP, tso bool, lvsdArgs ...string) {
	s := e2e.NewSelftest(t)
	if tso {
		s = e2e.NewSelftestTSO(t)
	}
	d, r := s.Director, s.Real
	switch mode {
	case "dr", "nat":
		d.Sysctl("net.ipv4.ip_forward", "1")
	case "tun":
		d.Sysctl("net.ipv4.ip_forward", "0")
		d.Sysctl("net.ipv4.conf.all.send_redirects", "0")
		d.Sysctl("net.ipv4.conf.default.send_redirects", "0")
	}
	pcaps := t.TempDir()
	e2e.StartLVSD(t, d, "veth10,veth12", append([]string{"--pcap-tx", pcaps, "--metrics", "127.0.0.1:9108"}, lvsdArgs...)...)
	t.Cleanup(func() {
		if t.Failed() {
			m, _ := d.Try("curl", "-s", "http://127.0.0.1:9108/metrics")
			t.Logf("lvsd metrics:\n%s", m)
		}
	})
	e2e.LVSADM(t, d, "-A -t "+e2e.VIP+":"+e2e.Port+" -s rr")
	flag := map[string]string{"dr": "-g", "nat": "-m", "tun": "-i"}[mode]
	e2e.LVSADM(t, d, "-a "+flag+" -t "+e2e.VIP+":"+e2e.Port+" -r "+e2e.RIP+":"+e2e.Port)

	switch mode {
	case "dr":
		r.Run(e2e.Bin(t, "lvsrs"), "start", "--mode", "dr", "--vip", e2e.VIP, "--iface", "veth20")
		t.Cleanup(func() { _, _ = r.Try(e2e.Bin(t, "lvsrs"), "stop") })
	case "nat":
		r.Run("ip", "link", "del", "veth20")
		r.Run(e2e.Bin(t, "lvsrs"), "start", "--mode", "nat", "--dip", e2e.DIP)
		t.Cleanup(func() { _, _ = r.Try(e2e.Bin(t, "lvsrs"), "stop") })
	case "tun":
		_, log := r.Start(e2e.Bin(t, "lvsrs"), "start", "--mode", "tun", "--vip", e2e.VIP, "--iface", "veth21")
		t.Cleanup(func() { _, _ = r.Try(e2e.Bin(t, "lvsrs"), "stop") })
		waitFor(t, "lvsrs tun device", func() bool {
			out, _ := r.Try("ip", "-4", "addr", "show")
			return strings.Contains(out, e2e.VIP)
		}, log.String)
	}

	var capture *nstest.SyncBuffer
	if watchRIP {
		// Anything from 172.16.0.0/24 reaching the client is a leak.
		_, capture = s.Client.Start("tshark", "-l", "-n", "-i", "br0", "-f", "src net 172.16.0.0/24", "-T", "fields", "-e", "ip.src")
		waitCapturing(t, capture)
	}

	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	payload := make([]byte, 1<<20)
	_, _ = rand.Read(payload)
	if err := os.WriteFile(in, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, srvLog := r.Start("timeout", "20", "socat", "-u", "-4", "TCP-LISTEN:"+e2e.Port+",reuseaddr", "CREATE:"+out)
	waitFor(t, "server listening", func() bool {
		o, _ := r.Try("ss", "-ltn", "sport = :"+e2e.Port)
		return strings.Contains(o, "LISTEN")
	}, srvLog.String)
	if o, err := s.Client.Try("timeout", "15", "socat", "-u", "-4", "OPEN:"+in, "TCP:"+e2e.VIP+":"+e2e.Port); err != nil {
		t.Fatalf("client: %v\n%s", err, o)
	}
	done := make(chan struct{})
	go func() { _ = srv.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("server did not finish")
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("server output: %v (server: %s)", err, srvLog.String())
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("%s: received %d bytes, want the %d sent, identical", mode, len(got), len(payload))
	}
	conns := e2e.LVSADM(t, d, "-L -n -c")
	want := map[string]string{"dr": "FIN_WAIT", "tun": "FIN_WAIT", "nat": "TIME_WAIT"}[mode]
	if !strings.Contains(conns, want) {
		t.Errorf("%s: connection listing lacks %s:\n%s", mode, want, conns)
	}
	e2e.CheckPcaps(t, pcaps, mode == "tun")
	if tso {
		m := d.Run("curl", "-s", "http://127.0.0.1:9108/metrics")
		if metric(m, "lvsd_rx_gso_segments_total") == 0 {
			t.Errorf("no super-frame was segmented with TSO on")
		}
	}
	if mode == "tun" && !tso {
		// Full-size segments do not fit the tunnel at MTU 1500: lvsd must
		// have told the client the tunnel MTU (1480), which is what let the
		// transfer through.
		m := d.Run("curl", "-s", "http://127.0.0.1:9108/metrics")
		if metric(m, `lvsd_drops_total{reason="frag_needed"}`) == 0 {
			t.Errorf("no ICMP fragmentation-needed sent in TUN mode")
		}
	}
	if watchRIP {
		time.Sleep(300 * time.Millisecond)
		if leaked := strings.TrimSpace(capture.String()); strings.Contains(leaked, "172.16.0.") {
			t.Errorf("client saw packets from real-server addresses:\n%s", leaked)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool, log func() string) {
	t.Helper()
	waitForWithin(t, what, 10*time.Second, cond, log)
}

// tsharkStartup bounds how long tshark takes to start capturing: seconds
// on a loaded machine (13 s seen while other builds ran).
const tsharkStartup = time.Minute

// waitCapturing waits until a tshark started with nstest's Start says its
// capture runs (dumpcap's "Capture started"), so nothing is sent before it
// can be seen.
func waitCapturing(t *testing.T, out *nstest.SyncBuffer) {
	t.Helper()
	waitForWithin(t, "tshark capturing", tsharkStartup, func() bool { return strings.Contains(out.String(), "Capture started") }, out.String)
}

// captureDrain is how long a packet can sit in the kernel's capture ring
// before dumpcap sees it: TPACKET_V3 hands a block over when it is full or
// when its timeout (dumpcap's 250 ms read timeout) runs out, and dumpcap
// stopped by SIGINT never reads a block not yet handed over. A CI run lost
// the last SYN of a flood test that way.
const captureDrain = 600 * time.Millisecond

// stopCaptures stops tsharks started with nstest's Start once what was sent
// last has reached their files: it waits out captureDrain, then SIGINT to
// each process group (tshark and its dumpcap write out what they have and
// exit).
func stopCaptures(procs ...*nstest.Proc) {
	time.Sleep(captureDrain)
	for _, p := range procs {
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGINT)
		_ = p.Wait()
	}
}

func waitForWithin(t *testing.T, what string, within time.Duration, cond func() bool, log func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
