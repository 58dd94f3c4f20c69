package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"lvslab/internal/e2e"
)

// TestSeed002FullNAT: seed 002's cluster configuration as written (its
// virtual_server_group, local_address_group, lb_kind FNAT, syn_proxy,
// alpha and inhibit_on_failure; VIPs mapped to 203.0.113.1-2) programs
// lvsd: every VIP gets the SYN proxy, the five local addresses and both
// real servers in FULLNAT, at weight 100 once their TCP_CHECK and HTTP_GET
// pass.
func TestSeed002FullNAT(t *testing.T) {
	l := newLab(t, "fn", "192.168.1.1", "192.168.1.2")
	l.dir.Addr("eth0", "192.168.1.254/24")
	_, log := l.rs.Start(e2e.Bin(t, "lvslab"), "service", "http-echo", "--listen", ":80", "--identity", "rs")
	l.waitFor("http-echo listening", func() bool { return strings.Contains(log.String(), "listening on") }, log.String)
	conf, err := filepath.Abs("../../scenarios/keepalived/002-cluster/keepalived.conf")
	if err != nil {
		t.Fatal(err)
	}
	l.conf = conf
	l.start()

	var want []string
	for _, vip := range []string{"203.0.113.1:80", "203.0.113.2:80"} {
		want = append(want, "-A -t "+vip+" -s rr -j enable")
		for i := 1; i <= 5; i++ {
			want = append(want, fmt.Sprintf("-P -t %s -z 192.168.100.%d", vip, i))
		}
		for _, rs := range []string{"192.168.1.1:80", "192.168.1.2:80"} {
			want = append(want, "-a -t "+vip+" -r "+rs+" --fullnat -w 100")
		}
	}
	l.waitTable("seed 002's FULLNAT services with their checks passed", func(save string) bool {
		return strings.TrimSpace(save) == strings.Join(want, "\n")
	})
	g := e2e.LVSADM(t, l.dir, "-G")
	if n := strings.Count(g, "192.168.100."); n != 10 {
		t.Errorf("lvsadm -G lists %d local addresses, want 5 per VIP:\n%s", n, g)
	}
	// The fork's keywords are noted.
	l.waitLog("the FULLNAT fork's keyword")
}
