package main

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
)

// TestServiceOnOwnAddressLeavesOtherPorts is defect 5 of issue 8: a service
// on the director's own address takes only its port from the kernel, as the
// kernel's IPVS does. A kernel listener on another port of the address stays
// reachable; the service's port is lvsd's (the kernel listener on it sees
// nothing).
func TestServiceOnOwnAddressLeavesOtherPorts(t *testing.T) {
	nstest.Require(t)
	d := nstest.New(t, "own-d")
	c := nstest.New(t, "own-c")
	nstest.Veth(t, d, "eth0", c, "eth0", 1500)
	d.Addr("eth0", "192.0.2.1/24")
	c.Addr("eth0", "192.0.2.2/24")

	// Kernel listeners in the director namespace: one on the service's
	// port, one on another port.
	var svcAccepts, otherAccepts atomic.Int32
	listen := func(port string, n *atomic.Int32) {
		var ln net.Listener
		if err := d.Do(func() (err error) { ln, err = net.Listen("tcp4", "192.0.2.1:"+port); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				n.Add(1)
				conn.Write([]byte("kernel\n"))
				conn.Close()
			}
		}()
	}
	listen("22", &svcAccepts)
	listen("2222", &otherAccepts)

	e2e.StartLVSD(t, d, "eth0")
	e2e.LVSADM(t, d, "-A -t 192.0.2.1:22 -s rr")

	dial := func(port string) (string, error) {
		var got string
		err := c.Do(func() error {
			conn, err := net.DialTimeout("tcp4", "192.0.2.1:"+port, 3*time.Second)
			if err != nil {
				return err
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
			b := make([]byte, 16)
			n, err := conn.Read(b)
			got = string(b[:n])
			if n > 0 {
				err = nil
			}
			return err
		})
		return got, err
	}
	got, err := dial("2222")
	if err != nil || !strings.HasPrefix(got, "kernel") {
		t.Fatalf("kernel listener on another port of the director's address: %q, %v\n%s", got, err,
			d.Run("nft", "list", "ruleset"))
	}
	// The service port is lvsd's: no real server, so lvsd refuses the
	// connection (ICMP port unreachable), and the kernel never sees it.
	if _, err := dial("22"); err == nil {
		t.Fatal("connecting to the service port with no real server succeeded")
	}
	if n := svcAccepts.Load(); n != 0 {
		t.Fatalf("the kernel listener on the service's port accepted %d connections", n)
	}
	if otherAccepts.Load() != 1 {
		t.Fatalf("other-port accepts: %d", otherAccepts.Load())
	}
	// ping is the kernel's too.
	if _, err := c.Try("ping", "-c", "1", "-W", "2", "192.0.2.1"); err != nil {
		t.Fatalf("the kernel no longer answers ping on its own address: %v", err)
	}
	// Deleting the service gives the port back.
	e2e.LVSADM(t, d, "-D -t 192.0.2.1:22")
	if _, err := dial("22"); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after -D the kernel listener on port 22 is unreachable: %v", err)
	}
	if svcAccepts.Load() != 1 {
		t.Fatalf("after -D, port-22 accepts: %d", svcAccepts.Load())
	}
}
