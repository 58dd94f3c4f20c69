package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const checkersConf = `global_defs {
    enable_script_security
    script_user root
}
virtual_server 10.0.0.100 80 {
    delay_loop 1
    lb_kind NAT
    protocol TCP
    real_server 172.16.0.11 80 {
        HTTP_GET {
            url {
              path /health
              status_code 200
            }
            url {
              path /body
              digest %[2]s
            }
            connect_timeout 1
            retry 0
            warmup 0
        }
    }
}
virtual_server 10.0.0.100 443 {
    delay_loop 1
    lb_kind NAT
    protocol TCP
    real_server 172.16.0.12 443 {
        SSL_GET {
            url {
              path /health
            }
            connect_timeout 1
            retry 0
            warmup 0
        }
    }
}
virtual_server 10.0.0.100 81 {
    delay_loop 1
    lb_kind NAT
    protocol TCP
    real_server 172.16.0.13 81 {
        weight 10
        MISC_CHECK {
            misc_path "%[1]s/misc %[1]s/miscstate"
            misc_timeout 2
            misc_dynamic
            warmup 0
        }
    }
}
virtual_server 10.0.0.100 25 {
    delay_loop 1
    lb_kind NAT
    protocol TCP
    real_server 172.16.0.14 25 {
        SMTP_CHECK {
            helo_name lvslab.test
            connect_timeout 1
            retry 0
            warmup 0
        }
    }
}
virtual_server 10.0.0.100 53 {
    delay_loop 1
    lb_kind NAT
    protocol UDP
    real_server 172.16.0.15 53 {
        UDP_CHECK {
            payload 68656c6c6f
            require_reply 68656c6c6f
            connect_timeout 1
            retry 0
            warmup 0
        }
    }
}
virtual_server 10.0.0.100 82 {
    delay_loop 1
    lb_kind NAT
    protocol TCP
    real_server 172.16.0.16 82 {
        PING_CHECK {
            connect_timeout 1
            retry 0
            warmup 0
        }
    }
}
`

// TestCheckers is acceptance 2 for HTTP_GET, SSL_GET, MISC_CHECK (with
// misc_dynamic weights), SMTP_CHECK, UDP_CHECK and PING_CHECK: each real
// server, made to fail its check, is removed, and restored when it passes.
// The servers are Go listeners opened in the real server namespace, so the
// test controls what they answer.
func TestCheckers(t *testing.T) {
	addrs := []string{"172.16.0.11", "172.16.0.12", "172.16.0.13", "172.16.0.14", "172.16.0.15", "172.16.0.16"}
	l := newLab(t, "kac", addrs...)
	var healthy [6]atomic.Bool
	for i := range healthy {
		healthy[i].Store(true)
	}
	body := "hello from lvslab\n"
	var listeners []net.Listener
	var udp net.PacketConn
	err := l.rs.Do(func() error {
		for _, a := range []string{"172.16.0.11:80", "172.16.0.12:443", "172.16.0.14:25"} {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				return err
			}
			listeners = append(listeners, ln)
		}
		var err error
		udp, err = net.ListenPacket("udp", "172.16.0.15:53")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, ln := range listeners {
			ln.Close()
		}
		udp.Close()
	})
	handler := func(i int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !healthy[i].Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			if r.URL.Path == "/body" {
				w.Write([]byte(body))
				return
			}
			w.Write([]byte("ok"))
		})
	}
	go http.Serve(listeners[0], handler(0))
	go http.Serve(tls.NewListener(listeners[1], &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}), handler(1))
	go smtpServer(listeners[2], &healthy[3])
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			if healthy[4].Load() {
				udp.WriteTo(buf[:n], from)
			}
		}
	}()
	misc := filepath.Join(l.tmp, "misc")
	state := filepath.Join(l.tmp, "miscstate")
	if err := os.WriteFile(misc, []byte("#!/bin/sh\nexit $(cat \"$1\")\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	setMisc := func(code int) {
		if err := os.WriteFile(state, []byte(fmt.Sprint(code)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setMisc(0)
	digest := fmt.Sprintf("%x", md5.Sum([]byte(body)))
	l.writeConf(fmt.Sprintf(checkersConf, l.tmp, digest))
	l.start()
	present := func(rs string) func(string) bool {
		return func(s string) bool { return strings.Contains(s, "-r "+rs+" ") }
	}
	absent := func(rs string) func(string) bool {
		return func(s string) bool { return !strings.Contains(s, "-r "+rs+" ") }
	}
	for _, rs := range []string{"172.16.0.11:80", "172.16.0.12:443", "172.16.0.13:81", "172.16.0.14:25", "172.16.0.15:53", "172.16.0.16:82"} {
		l.waitTable(rs+" present", present(rs))
	}
	cases := []struct {
		rs, vs     string
		fail, heal func()
	}{
		{"172.16.0.11:80", "[10.0.0.100]:tcp:80", func() { healthy[0].Store(false) }, func() { healthy[0].Store(true) }},
		{"172.16.0.12:443", "[10.0.0.100]:tcp:443", func() { healthy[1].Store(false) }, func() { healthy[1].Store(true) }},
		{"172.16.0.13:81", "[10.0.0.100]:tcp:81", func() { setMisc(1) }, func() { setMisc(0) }},
		{"172.16.0.14:25", "[10.0.0.100]:tcp:25", func() { healthy[3].Store(false) }, func() { healthy[3].Store(true) }},
		{"172.16.0.15:53", "[10.0.0.100]:udp:53", func() { healthy[4].Store(false) }, func() { healthy[4].Store(true) }},
		{"172.16.0.16:82", "[10.0.0.100]:tcp:82", func() { l.rs.Run("ip", "addr", "del", "172.16.0.16/24", "dev", "eth0") },
			func() { l.rs.Run("ip", "addr", "add", "172.16.0.16/24", "dev", "eth0") }},
	}
	for _, c := range cases {
		host, port, _ := strings.Cut(c.rs, ":")
		proto := "tcp"
		if port == "53" {
			proto = "udp"
		}
		name := fmt.Sprintf("[%s]:%s:%s", host, proto, port)
		c.fail()
		l.waitTable(c.rs+" removed", absent(c.rs))
		l.waitLog("Removing service " + name + " from VS " + c.vs)
		c.heal()
		l.waitTable(c.rs+" restored", present(c.rs))
		l.waitLog("Adding service " + name + " to VS " + c.vs)
	}
	// misc_dynamic: exit code 2+w sets the weight to w; 0 restores it.
	setMisc(2 + 7)
	l.waitTable("dynamic weight 7", func(s string) bool { return strings.Contains(s, "-r 172.16.0.13:81 -m -w 7") })
	l.waitLog("Changing weight from 10 to 7 for active service [172.16.0.13]:tcp:81 of VS [10.0.0.100]:tcp:81")
	setMisc(0)
	l.waitTable("weight 10 again", func(s string) bool { return strings.Contains(s, "-r 172.16.0.13:81 -m -w 10") })
}

func smtpServer(ln net.Listener, healthy *atomic.Bool) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if !healthy.Load() {
				fmt.Fprint(c, "554 no service\r\n")
				return
			}
			fmt.Fprint(c, "220 lvslab ESMTP\r\n")
			r := bufio.NewReader(c)
			for {
				ln, err := r.ReadString('\n')
				if err != nil {
					return
				}
				switch strings.ToUpper(strings.Fields(ln + " x")[0]) {
				case "HELO", "EHLO":
					fmt.Fprint(c, "250 lvslab\r\n")
				case "QUIT":
					fmt.Fprint(c, "221 bye\r\n")
					return
				default:
					fmt.Fprint(c, "500 what\r\n")
				}
			}
		}()
	}
}

// selfSigned is a throw-away certificate for the SSL_GET server
// (keepalived does not verify real servers' certificates).
func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rs.lvslab"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
