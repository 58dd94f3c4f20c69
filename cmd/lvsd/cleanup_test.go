package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// TestKill9ThenCleanup is defect 10 of issue 8: after kill -9 lvsd, the
// nftables table, the offloads it turned off and a file-system control
// socket stay behind. lvsd --cleanup puts the namespace back as it was
// before lvsd first started; a restart instead of --cleanup reclaims the
// socket and restores the true originals on its clean exit.
func TestKill9ThenCleanup(t *testing.T) {
	nstest.Require(t)
	testenv.Tools(t, "nft", "ethtool")
	d := nstest.New(t, "k9-d")
	peer := nstest.New(t, "k9-p")
	nstest.Veth(t, d, "eth0", peer, "eth0", 1500)
	d.Addr("eth0", "192.0.2.1/24")
	// GRO on, so lvsd has something to turn off and must restore.
	d.Offload("eth0", "gro", "on")

	dir := t.TempDir()
	sock := filepath.Join(dir, "lvsd.sock")
	stateDir := filepath.Join(dir, "state")
	snapshot := func() (string, string) {
		return d.Run("nft", "list", "ruleset"), d.Run("ethtool", "-k", "eth0")
	}
	ruleset0, features0 := snapshot()
	if !strings.Contains(features0, "generic-receive-offload: on") {
		t.Fatalf("GRO is not on to start with:\n%s", features0)
	}

	start := func() *nstest.Proc {
		p, log := d.Start(e2e.Bin(t, "lvsd"), "-i", "eth0", "--socket", sock, "--state-dir", stateDir)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := d.Try(e2e.Bin(t, "lvsadm"), "--socket", sock, "-A", "-t", "198.51.100.1:80"); err == nil {
				break
			}
			if p.Exited() || time.Now().After(deadline) {
				t.Fatalf("lvsd did not come up:\n%s", log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		return p
	}
	kill9 := func(p *nstest.Proc) {
		if err := p.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.Wait()
	}

	p := start()
	kill9(p)
	ruleset, features := snapshot()
	if !strings.Contains(ruleset, "table netdev lvsd") || !strings.Contains(features, "generic-receive-offload: off") {
		t.Fatalf("lvsd did not change what the test expects it to:\n%s\n%s", ruleset, features)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("the killed lvsd's socket file: %v", err)
	}

	out := d.Run(e2e.Bin(t, "lvsd"), "--cleanup", "--state-dir", stateDir)
	t.Logf("lvsd --cleanup: %s", out)
	ruleset, features = snapshot()
	if ruleset != ruleset0 {
		t.Errorf("nft list ruleset after --cleanup:\n%s\nbefore lvsd:\n%s", ruleset, ruleset0)
	}
	if features != features0 {
		t.Errorf("ethtool -k after --cleanup:\n%s\nbefore lvsd:\n%s", features, features0)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file after --cleanup: %v", err)
	}
	if out := d.Run(e2e.Bin(t, "lvsd"), "--cleanup", "--state-dir", stateDir); !strings.Contains(out, "nothing to clean") {
		t.Errorf("second --cleanup: %s", out)
	}

	// kill -9, then a restart: the stale socket is reclaimed and the clean
	// exit restores the offloads the first lvsd found, not the off it left.
	kill9(start())
	p = start()
	if err := p.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("lvsd exit after SIGTERM: %v", err)
	}
	ruleset, features = snapshot()
	if ruleset != ruleset0 || features != features0 {
		t.Errorf("after kill -9, restart and SIGTERM:\n%s\n%s\nwant\n%s\n%s", ruleset, features, ruleset0, features0)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file after a clean exit: %v", err)
	}
	if ents, _ := os.ReadDir(stateDir); len(ents) != 0 {
		t.Errorf("state files left after a clean exit: %v", ents)
	}
}
