package main

import (
	"bufio"
	"fmt"
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

// lab is a director namespace running lvsd and lvskeepalived, and a real
// server namespace on the same link with one address per real server.
type lab struct {
	t        testing.TB
	dir, rs  *nstest.NS
	conf     string
	tmp      string
	ka       *nstest.Proc
	kaLog    *nstest.SyncBuffer
	servers  map[string]*nstest.Proc
	lvsdLog  *nstest.SyncBuffer
	pidFiles []string
}

func newLab(t testing.TB, name string, rsAddrs ...string) *lab {
	l := newLabNoLVSD(t, name, rsAddrs...)
	l.lvsdLog = e2e.StartLVSD(t, l.dir, "eth0")
	return l
}

func newLabNoLVSD(t testing.TB, name string, rsAddrs ...string) *lab {
	nstest.Require(t)
	l := &lab{t: t, dir: nstest.New(t, name+"d"), rs: nstest.New(t, name+"r"), tmp: t.TempDir(), servers: map[string]*nstest.Proc{}}
	nstest.Veth(t, l.dir, "eth0", l.rs, "eth0", 1500)
	l.dir.Addr("eth0", "172.16.0.1/24")
	for _, a := range rsAddrs {
		l.rs.Addr("eth0", a+"/24")
	}
	l.conf = filepath.Join(l.tmp, "keepalived.conf")
	return l
}

func (l *lab) writeConf(text string) {
	if err := os.WriteFile(l.conf, []byte(text), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// serve starts a TCP listener on addr:port in the real server namespace.
func (l *lab) serve(addr string, port int) {
	key := fmt.Sprintf("%s:%d", addr, port)
	p, log := l.rs.Start("socat", fmt.Sprintf("TCP-LISTEN:%d,bind=%s,fork,reuseaddr", port, addr), "SYSTEM:echo "+addr)
	l.servers[key] = p
	l.waitFor(key+" listening", func() bool {
		o, _ := l.rs.Try("ss", "-ltnH", "src", key)
		return strings.Contains(o, "LISTEN")
	}, log.String)
}

func (l *lab) stop(addr string, port int) {
	key := fmt.Sprintf("%s:%d", addr, port)
	p := l.servers[key]
	_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
	_ = p.Wait()
	delete(l.servers, key)
}

func (l *lab) start(extra ...string) {
	l.pidFiles = []string{filepath.Join(l.tmp, "ka.pid"), filepath.Join(l.tmp, "chk.pid"), filepath.Join(l.tmp, "vrrp.pid")}
	args := append([]string{"-n", "-l", "-G", "-f", l.conf, "-p", l.pidFiles[0], "-c", l.pidFiles[1], "-r", l.pidFiles[2]}, extra...)
	l.ka, l.kaLog = l.dir.Start(e2e.Bin(l.t, "lvskeepalived"), args...)
	l.t.Cleanup(func() {
		if l.t.Failed() {
			l.t.Logf("lvskeepalived log:\n%s", l.kaLog.String())
		}
	})
}

func (l *lab) save() string { return e2e.LVSADM(l.t, l.dir, "-S -n") }

func (l *lab) waitFor(what string, cond func() bool, log func() string) {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			l.t.Fatalf("timed out waiting for %s\n%s", what, log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *lab) waitLog(text string) {
	l.t.Helper()
	l.waitFor("log line "+text, func() bool { return strings.Contains(l.kaLog.String(), text) }, l.kaLog.String)
}

func (l *lab) waitTable(what string, cond func(save string) bool) {
	l.t.Helper()
	l.waitFor(what, func() bool { return cond(l.save()) }, func() string { return l.save() + "\n" + l.kaLog.String() })
}

const tcpConf = `global_defs {
    router_id lvslab
    enable_script_security
    script_user root
}
virtual_server 10.0.0.100 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    quorum 1
    quorum_up "%[1]s/script quorum_up"
    quorum_down "%[1]s/script quorum_down"
    sorry_server 172.16.0.9 80
    real_server 172.16.0.2 80 {
        weight 2
        notify_up "%[1]s/script up rs2"
        notify_down "%[1]s/script down rs2"
        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
            warmup 0
        }
    }
    real_server 172.16.0.3 80 {
        weight 3
        inhibit_on_failure
        TCP_CHECK {
            connect_timeout 1
            retry 0
            warmup 0
        }
    }
}
`

// TestTCPCheckDaemon is acceptance 2 for TCP_CHECK and 3: a real server
// that stops listening is removed (or inhibited to weight 0) and comes
// back, notify and quorum scripts run with their words, the sorry server
// takes over and gives back, and SIGHUP keeps the tables (and with a
// fatal error, the running configuration).
func TestTCPCheckDaemon(t *testing.T) {
	l := newLab(t, "kat", "172.16.0.2", "172.16.0.3")
	script := filepath.Join(l.tmp, "script")
	record := filepath.Join(l.tmp, "record")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" >> "+record+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	l.writeConf(fmt.Sprintf(tcpConf, l.tmp))
	l.serve("172.16.0.2", 80)
	l.serve("172.16.0.3", 80)
	l.start()
	l.waitTable("both real servers", func(s string) bool {
		return strings.Contains(s, "-r 172.16.0.2:80 -m -w 2") && strings.Contains(s, "-r 172.16.0.3:80 -m -w 3")
	})
	l.waitLog("TCP connection to [172.16.0.2]:tcp:80 success.")
	for _, f := range l.pidFiles[:2] {
		b, err := os.ReadFile(f)
		if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(l.ka.Process.Pid) {
			t.Errorf("pid file %s: %q %v, want %d", f, b, err, l.ka.Process.Pid)
		}
	}

	// rs2 fails: removed after its retry, notify_down runs.
	l.stop("172.16.0.2", 80)
	l.waitTable("172.16.0.2 removed", func(s string) bool { return !strings.Contains(s, "172.16.0.2:80") })
	l.waitLog("TCP_CHECK on service [172.16.0.2]:tcp:80 failed after 1 retries.")
	l.waitLog("Removing service [172.16.0.2]:tcp:80 from VS [10.0.0.100]:tcp:80")
	l.waitLog("Executing [" + script + " down rs2] for service [172.16.0.2]:tcp:80 in VS [10.0.0.100]:tcp:80")
	l.waitFor("notify_down ran", func() bool { b, _ := os.ReadFile(record); return strings.Contains(string(b), "down rs2\n") }, l.kaLog.String)

	// rs2 back.
	l.serve("172.16.0.2", 80)
	l.waitTable("172.16.0.2 back", func(s string) bool { return strings.Contains(s, "-r 172.16.0.2:80 -m -w 2") })
	l.waitLog("Adding service [172.16.0.2]:tcp:80 to VS [10.0.0.100]:tcp:80")
	l.waitFor("notify_up ran", func() bool { b, _ := os.ReadFile(record); return strings.Contains(string(b), "up rs2\n") }, l.kaLog.String)

	// rs3 fails: inhibit_on_failure keeps it at weight 0.
	l.stop("172.16.0.3", 80)
	l.waitTable("172.16.0.3 at weight 0", func(s string) bool { return strings.Contains(s, "-r 172.16.0.3:80 -m -w 0") })
	l.waitLog("Disabling service [172.16.0.3]:tcp:80 from VS [10.0.0.100]:tcp:80")

	// SIGHUP, same configuration: nothing changes.
	before := l.save()
	if err := l.ka.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.waitLog("Reload finished")
	if got := l.save(); got != before {
		t.Errorf("an unchanged reload changed the table:\n%s\nwant\n%s", got, before)
	}

	// Both down: quorum lost, the sorry server takes over.
	l.stop("172.16.0.2", 80)
	l.waitTable("sorry server in", func(s string) bool {
		return strings.Contains(s, "-r 172.16.0.9:80 -m -w 1") && !strings.Contains(s, "172.16.0.2:80")
	})
	l.waitLog("Lost quorum 1-0=1 > 0 for VS [10.0.0.100]:tcp:80")
	l.waitLog("Adding sorry server [172.16.0.9]:tcp:80 to VS [10.0.0.100]:tcp:80")
	l.waitFor("quorum_down ran", func() bool { b, _ := os.ReadFile(record); return strings.Contains(string(b), "quorum_down\n") }, l.kaLog.String)

	// A reload with a fatal error keeps everything.
	before = l.save()
	l.writeConf("global_defs {\n router_id\n}\n")
	if err := l.ka.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.waitLog("Reload failed: fatal error in configuration")
	if got := l.save(); got != before {
		t.Errorf("a fatal reload changed the table:\n%s\nwant\n%s", got, before)
	}
	l.writeConf(fmt.Sprintf(tcpConf, l.tmp))

	// rs3 back: quorum gained, the sorry server gives back.
	l.serve("172.16.0.3", 80)
	l.waitTable("sorry server out", func(s string) bool {
		return !strings.Contains(s, "172.16.0.9") && strings.Contains(s, "-r 172.16.0.3:80 -m -w 3")
	})
	l.waitLog("Gained quorum 1+0=1 <= 3 for VS [10.0.0.100]:tcp:80")
	l.waitLog("Removing sorry server [172.16.0.9]:tcp:80 from VS [10.0.0.100]:tcp:80")
	l.waitFor("quorum_up ran", func() bool { b, _ := os.ReadFile(record); return strings.Contains(string(b), "quorum_up\n") }, l.kaLog.String)

	// SIGTERM removes the service (keepalived without -I) and the pid files.
	if err := l.ka.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	l.waitFor("exit", l.ka.Exited, l.kaLog.String)
	if s := l.save(); strings.Contains(s, "10.0.0.100") {
		t.Errorf("after SIGTERM the service is still there:\n%s", s)
	}
	if _, err := os.Stat(l.pidFiles[0]); err == nil {
		t.Errorf("pid file %s left behind", l.pidFiles[0])
	}
}

const streamConf = `virtual_server 10.0.0.200 7000 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 172.16.0.2 7000 {
        TCP_CHECK {
            connect_timeout 1
            warmup 0
        }
    }
}
`

// TestReloadKeepsStream is acceptance 3 with a live stream: a TCP
// connection through the VIP stays intact across a SIGHUP that adds a
// virtual server and changes nothing in its own, across a SIGHUP with a
// fatal error, and across a SIGKILL of lvskeepalived and a new start (lvsd
// keeps forwarding with the tables it has; the new instance continues).
func TestReloadKeepsStream(t *testing.T) {
	l := newLabNoLVSD(t, "kar", "172.16.0.2")
	cli := nstest.New(t, "karc")
	nstest.Veth(t, cli, "eth0", l.dir, "ext", 1500)
	cli.Addr("eth0", "198.51.100.2/24")
	cli.Route("10.0.0.200/32", "198.51.100.1", "eth0")
	l.dir.Addr("ext", "198.51.100.1/24")
	l.rs.Route("198.51.100.0/24", "172.16.0.1", "eth0")
	e2e.StartLVSD(t, l.dir, "ext,eth0")
	_, echoLog := l.rs.Start("socat", "TCP-LISTEN:7000,bind=172.16.0.2,fork,reuseaddr", "EXEC:cat")
	l.waitFor("echo listening", func() bool {
		o, _ := l.rs.Try("ss", "-ltnH", "src", "172.16.0.2:7000")
		return strings.Contains(o, "LISTEN")
	}, echoLog.String)
	l.writeConf(streamConf)
	l.start()
	l.waitTable("service", func(s string) bool { return strings.Contains(s, "-r 172.16.0.2:7000 -m -w 1") })

	var conn net.Conn
	if err := cli.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", "10.0.0.200:7000", 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	echo := func(what string) {
		t.Helper()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(conn, "%s\n", what); err != nil {
			t.Fatalf("%s: write: %v", what, err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != what+"\n" {
			t.Fatalf("%s: echo %q, %v", what, got, err)
		}
	}
	echo("before")
	conns := func() string { return e2e.LVSADM(t, l.dir, "-L -n -c") }
	if !strings.Contains(conns(), "198.51.100.2") {
		t.Fatalf("no connection entry:\n%s", conns())
	}

	l.writeConf(streamConf + strings.ReplaceAll(strings.ReplaceAll(streamConf, "7000", "7001"), "10.0.0.200", "10.0.0.201"))
	if err := l.ka.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.waitTable("second service", func(s string) bool { return strings.Contains(s, "10.0.0.201:7001") })
	echo("after reload")

	l.writeConf("global_defs {\n router_id\n}\n")
	if err := l.ka.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.waitLog("Reload failed")
	echo("after fatal reload")

	before := l.save()
	if err := l.ka.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	l.waitFor("killed", l.ka.Exited, l.kaLog.String)
	echo("after SIGKILL")
	if got := l.save(); got != before {
		t.Errorf("SIGKILL changed lvsd's tables:\n%s\nwant\n%s", got, before)
	}
	l.writeConf(streamConf)
	l.start()
	// A service the new configuration does not name stays, as keepalived
	// leaves IPVS services it did not create at start (lvs_flush clears).
	l.waitTable("the service after restart", func(s string) bool {
		return strings.Contains(s, "10.0.0.200:7000") && strings.Contains(s, "-r 172.16.0.2:7000 -m -w 1")
	})
	l.waitLog("TCP connection to [172.16.0.2]:tcp:7000 success.")
	echo("after restart")
	if !strings.Contains(conns(), "198.51.100.2") {
		t.Errorf("the connection entry is gone:\n%s", conns())
	}
}
