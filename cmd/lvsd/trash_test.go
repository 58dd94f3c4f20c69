package main

import (
	"regexp"
	"strings"
	"testing"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
)

// TestDeletedRealServerComesBackWithItsConnections is the kernel's
// ip_vs_trash_get_dest seen from lvsadm: three open connections through a
// real server, lvsadm -d and -a of that server, and -L -n still shows its 3
// ActiveConn (the kernel revives the same destination from its trash list)
// instead of a fresh 0 that would make wlc send it every new connection.
func TestDeletedRealServerComesBackWithItsConnections(t *testing.T) {
	nstest.Require(t)
	s := e2e.NewSelftest(t)
	d, r := s.Director, s.Real
	d.Sysctl("net.ipv4.ip_forward", "1")
	e2e.StartLVSD(t, d, "veth10,veth12")
	svc := "-t " + e2e.VIP + ":" + e2e.Port
	e2e.LVSADM(t, d, "-A "+svc+" -s wlc")
	e2e.LVSADM(t, d, "-a "+svc+" -r "+e2e.RIP+":"+e2e.Port+" -m")
	r.Run("ip", "link", "del", "veth20")
	r.Run(e2e.Bin(t, "lvsrs"), "start", "--mode", "nat", "--dip", e2e.DIP)
	t.Cleanup(func() { _, _ = r.Try(e2e.Bin(t, "lvsrs"), "stop") })

	// The server holds every connection open until its client closes it.
	_, srvLog := r.Start("socat", "-u", "-4", "TCP-LISTEN:"+e2e.Port+",reuseaddr,fork", "OPEN:/dev/null")
	waitFor(t, "server listening", func() bool {
		o, _ := r.Try("ss", "-ltn", "sport = :"+e2e.Port)
		return strings.Contains(o, "LISTEN")
	}, srvLog.String)
	for range 3 {
		s.Client.Start("socat", "-u", "-4", "SYSTEM:sleep 60", "TCP:"+e2e.VIP+":"+e2e.Port)
	}
	rsLine := regexp.MustCompile(`(?m)^  -> ` + regexp.QuoteMeta(e2e.RIP+":"+e2e.Port) + `\s+Masq\s+1\s+(\d+)\s+(\d+)`)
	counts := func() string {
		m := rsLine.FindStringSubmatch(e2e.LVSADM(t, d, "-L -n"))
		if m == nil {
			return "absent"
		}
		return m[1] + " " + m[2]
	}
	waitFor(t, "3 active connections", func() bool { return counts() == "3 0" }, func() string {
		return e2e.LVSADM(t, d, "-L -n") + e2e.LVSADM(t, d, "-L -n -c")
	})

	e2e.LVSADM(t, d, "-d "+svc+" -r "+e2e.RIP+":"+e2e.Port)
	if got := counts(); got != "absent" {
		t.Fatalf("after -d the real server is still listed (%s)", got)
	}
	e2e.LVSADM(t, d, "-a "+svc+" -r "+e2e.RIP+":"+e2e.Port+" -m")
	if got := counts(); got != "3 0" {
		t.Errorf("re-added real server: ActiveConn InActConn %s, want 3 0 (its three connections are still open)\n%s",
			got, e2e.LVSADM(t, d, "-L -n -c"))
	}
}
