package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

const sorryConf = `virtual_server 10.0.0.100 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    sorry_server 172.16.0.9 80
    real_server 172.16.0.2 80 {
        notify_down "/bin/true %s"
        TCP_CHECK {
            connect_timeout 1
            retry 0
            warmup 0
        }
    }
}
`

// TestSorryServerTakesOverWithoutAGap: when the last real server of a
// service fails, the sorry server takes its place with no moment in which
// lvsd has a service without a destination. SYNs arrive every 100 µs across
// the change; not one may be dropped for want of a destination (lvsd's
// drop_no_destination), as none is by keepalived and the kernel, whose two
// netlink commands follow each other in microseconds. lvskeepalived once
// applied the removal and the sorry server in two control round trips with
// a notify script between them, and a loaded CI run lost two connects.
func TestSorryServerTakesOverWithoutAGap(t *testing.T) {
	testenv.Tools(t, "hping3", "socat", "curl")
	l := newLabNoLVSD(t, "kso", "172.16.0.2", "172.16.0.9")
	cli := nstest.New(t, "ksoc")
	nstest.Veth(t, cli, "eth0", l.dir, "ext", 1500)
	cli.Addr("eth0", "198.51.100.2/24")
	cli.Route("10.0.0.100/32", "198.51.100.1", "eth0")
	l.dir.Addr("ext", "198.51.100.1/24")
	l.rs.Route("198.51.100.0/24", "172.16.0.1", "eth0")
	l.lvsdLog = e2e.StartLVSD(t, l.dir, "ext,eth0", "--metrics", "127.0.0.1:9109")
	noDest := func() int {
		m := l.dir.Run("curl", "-s", "http://127.0.0.1:9109/metrics")
		sm := regexp.MustCompile(`(?m)^lvsd_drops_total\{reason="no_destination"\} (\d+)$`).FindStringSubmatch(m)
		if sm == nil {
			t.Fatalf("no lvsd_drops_total{reason=\"no_destination\"} in the metrics:\n%s", m)
		}
		n, _ := strconv.Atoi(sm[1])
		return n
	}
	l.writeConf(fmt.Sprintf(sorryConf, "down"))
	l.serve("172.16.0.2", 80)
	l.serve("172.16.0.9", 80)
	l.start()
	l.waitTable("the real server", func(s string) bool { return strings.Contains(s, "-r 172.16.0.2:80 -m") })
	l.waitLog("TCP connection to [172.16.0.2]:tcp:80 success.")
	before := noDest()

	syn, hlog := cli.Start("hping3", "-q", "-S", "-p", "80", "-i", "u100", "10.0.0.100")
	defer func() { _ = syscall.Kill(-syn.Process.Pid, syscall.SIGINT); _ = syn.Wait() }()
	time.Sleep(500 * time.Millisecond)
	l.stop("172.16.0.2", 80)
	l.waitTable("the sorry server in", func(s string) bool {
		return strings.Contains(s, "-r 172.16.0.9:80 -m") && !strings.Contains(s, "172.16.0.2:80")
	})
	l.waitLog("Adding sorry server [172.16.0.9]:tcp:80 to VS [10.0.0.100]:tcp:80")
	time.Sleep(500 * time.Millisecond)
	if syn.Exited() {
		t.Fatalf("hping3 stopped:\n%s", hlog.String())
	}
	if n := noDest() - before; n != 0 {
		t.Errorf("lvsd dropped %d SYNs for want of a destination while the sorry server took over\n%s", n, l.kaLog.String())
	}
	stats := e2e.LVSADM(t, l.dir, "-L -n --stats")
	if !regexp.MustCompile(`-> 172\.16\.0\.9:80\s+[1-9]`).MatchString(stats) {
		t.Errorf("the sorry server got no connections:\n%s", stats)
	}
}
