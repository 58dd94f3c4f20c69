package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lvslab/internal/e2e"
)

// TestHASuspend: ha_suspend (seed 000:519) on a director paired with
// keepalived 2.2.7. As BACKUP the VIP is not held (lvsd does not own it):
// its TCP_CHECK sends nothing to the real server; as MASTER (the peer
// stopped) the checks start at once; BACKUP again (the peer back at a
// higher priority), they stop. keepalived's lines say so per checker.
func TestHASuspend(t *testing.T) {
	b := newVBed(t, "vh")
	r := &vrun{t: t, name: "ha_suspend", main: true}
	ours, peer := b.nodes(t, r, "ours", "keepalived", vspec{version: 3, advInt: "0.1"})
	// The real server: the client namespace, counting connections.
	var probes atomic.Int64
	var ln net.Listener
	if err := b.c.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", vaC+":80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			probes.Add(1)
			c.Close()
		}
	}()
	peer.start(150)
	vwait(r, "the peer master", 5*time.Second, peer.hasVIP)
	conf := filepath.Join(b.dir, "ours.conf")
	text := fmt.Sprintf(`global_defs {
  vrrp_version 3
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 0.1
  virtual_ipaddress {
    %s
  }
}
virtual_server %s 80 {
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  ha_suspend
  real_server %s 80 {
    weight 1
    TCP_CHECK {
      connect_timeout 1
    }
  }
}
`, vaVIP24, vaVIP, vaC)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ours.p, ours.log = ours.ns.Start("env", "TMPDIR="+b.dir, e2e.Bin(t, "lvskeepalived"), "-n", "-l", "-G", "-D", "-f", conf,
		"-p", filepath.Join(b.dir, "ka.pid"), "-r", filepath.Join(b.dir, "vrrp.pid"), "-c", filepath.Join(b.dir, "chk.pid"))
	vwait(r, "ours backup", 5*time.Second, func() bool { return strings.Contains(ours.log.String(), "(VI_1) Entering BACKUP STATE") })
	svc := fmt.Sprintf("[%s]:tcp:80 for VS [%s]:tcp:80", vaC, vaVIP)
	if !strings.Contains(ours.log.String(), "Deactivating healthchecker for service "+svc) {
		t.Errorf("no 'Deactivating healthchecker' line at start:\n%s", ours.log.String())
	}
	time.Sleep(3500 * time.Millisecond) // three delay_loops
	if n := probes.Load(); n != 0 || ours.master() {
		t.Fatalf("BACKUP: %d probes reached the real server (master %v)", n, ours.master())
	}
	start := time.Now()
	peer.termAsync()()
	vwait(r, "ours master", 3*time.Second, ours.hasVIP)
	took := vwait(r, "the first probe", 3*time.Second, func() bool { return probes.Load() > 0 })
	r.logf("first probe %v after the peer's SIGTERM (%v after ours owned the VIP)", time.Since(start), took)
	if !strings.Contains(ours.log.String(), "Activating healthchecker for service "+svc) {
		t.Errorf("no 'Activating healthchecker' line:\n%s", ours.log.String())
	}
	time.Sleep(2500 * time.Millisecond)
	if n := probes.Load(); n < 2 {
		t.Errorf("MASTER: %d probes in 2.5 s of delay_loop 1", n)
	}
	// The peer back at 150 preempts: suspended again.
	peer.start(150)
	vwait(r, "the peer preempts", 5*time.Second, func() bool { return peer.hasVIP() && !ours.hasVIP() })
	vwait(r, "Suspending", 3*time.Second, func() bool { return strings.Contains(ours.log.String(), "Suspending healthchecker for service "+svc) })
	time.Sleep(1500 * time.Millisecond) // a probe under way may finish
	n := probes.Load()
	time.Sleep(3 * time.Second)
	if m := probes.Load(); m != n {
		t.Errorf("BACKUP again: %d probes in 3 s", m-n)
	}
	ours.finish()
	peer.finish()
}
