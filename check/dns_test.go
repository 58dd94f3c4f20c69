package check

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"lvslab/config/keepalived"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// The query is dns_make_query's, byte for byte: ID, RD, one question, the
// name as labels (the root as one zero byte), type, class IN.
func TestDNSQueryBytes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"www.example.com", 1, "abcd0100000100000000000003777777076578616d706c6503636f6d0000010001"},
		{"www.example.com.", 16, "abcd0100000100000000000003777777076578616d706c6503636f6d0000100001"},
		{".", 6, "abcd0100000100000000000000" + "00060001"},
	} {
		q, err := dnsQuery(0xabcd, tc.qtype, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(q); got != tc.want {
			t.Errorf("%q type %d:\n got %s\nwant %s", tc.name, tc.qtype, got, tc.want)
		}
	}
	if _, err := dnsQuery(1, 1, strings.Repeat("a", 64)+".com"); err == nil {
		t.Error("a 64-byte label was accepted")
	}
}

// A reply with another ID, then a query echoed back (no QR), are passed
// over; the first real reply decides: RCODE 0 succeeds, another fails with
// keepalived's message; silence is the read timeout.
func TestDNSProbeReplies(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Skip(err)
	}
	defer pc.Close()
	rcode := make(chan int, 4)
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			code := <-rcode
			if code < 0 {
				continue // silence
			}
			q := append([]byte(nil), buf[:n]...)
			other := append([]byte(nil), q...)
			other[0] ^= 0xff // another ID
			other[2] |= 0x80
			_, _ = pc.WriteTo(other, from)
			_, _ = pc.WriteTo(q, from) // the query itself: no QR
			r := append([]byte(nil), q...)
			binary.BigEndian.PutUint16(r[2:], 0x8180|uint16(code))
			_, _ = pc.WriteTo(r, from)
		}
	}()
	to := netip.MustParseAddrPort(pc.LocalAddr().String())
	probe, err := DNSProbe(&keepalived.Checker{Kind: keepalived.CheckDNS, DNS: &keepalived.DNSCheck{Type: "A", Name: "www.example.com"}}, to)
	if err != nil {
		t.Fatal(err)
	}
	run := func() Outcome {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		return probe(ctx)
	}
	rcode <- 0
	if o := run(); !o.OK {
		t.Errorf("RCODE 0: %+v", o)
	}
	rcode <- 2
	if o := run(); o.OK || o.Err == nil || o.Err.Error() != "DNS_CHECK ([127.0.0.1]:"+strconv.Itoa(int(to.Port()))+") error occurread. (rcode = 2)" {
		t.Errorf("SERVFAIL: %+v", o)
	}
	rcode <- -1
	if o := run(); o.OK || o.Err == nil || !strings.HasSuffix(o.Err.Error(), "read timeout from socket.") {
		t.Errorf("no reply: %+v", o)
	}
}

// Against a real dnsmasq in a namespace: a name it serves succeeds; the
// default question (SOA of the root), which a server without upstreams
// refuses, fails with RCODE 5, as keepalived's check would.
func TestDNSProbeDnsmasq(t *testing.T) {
	nstest.Require(t)
	testenv.Tools(t, "dnsmasq")
	ns := nstest.New(t, "kdns")
	_, log := ns.Start("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=5353", "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--pid-file=", "--user=root", "--address=/lab.test/192.0.2.7")
	check := func(c *keepalived.DNSCheck) Outcome {
		var o Outcome
		_ = ns.Do(func() error {
			probe, err := DNSProbe(&keepalived.Checker{Kind: keepalived.CheckDNS, DNS: c}, netip.MustParseAddrPort("127.0.0.1:5353"))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			o = probe(ctx)
			return nil
		})
		return o
	}
	deadline := time.Now().Add(10 * time.Second)
	for o := check(&keepalived.DNSCheck{Type: "A", Name: "www.lab.test"}); !o.OK; o = check(&keepalived.DNSCheck{Type: "A", Name: "www.lab.test"}) {
		if time.Now().After(deadline) {
			t.Fatalf("DNS_CHECK of a name dnsmasq serves: %+v\n%s", o, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if o := check(&keepalived.DNSCheck{Type: "SOA", Name: "."}); o.OK || o.Err == nil || !strings.Contains(o.Err.Error(), "(rcode = 5)") {
		t.Errorf("SOA of the root from a dnsmasq without upstreams: %+v, want a failure with rcode 5 (REFUSED)", o)
	}
}
