package main

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// TestFullNATFTPEndToEnd: a real vsftpd behind FULLNAT services, the real
// server with no route to the client (only to the local address), curl as
// the client in the four data-connection modes. Passive and EPSV data
// connections reach the real server from the control connection's local
// address (vsftpd's default pasv_promiscuous=NO refuses any other); active
// and EPRT commands name the local address once lvsd has rewritten them
// (vsftpd's default port_promiscuous=NO connects only to the control
// connection's peer, and the client is unreachable anyway), and the real
// server's connection from port 20 reaches curl from VIP:20. Every file
// must arrive byte for byte, through 203.0.113.1 (FULLNAT) and 203.0.113.2
// (FULLNAT with the SYN proxy, whose control connections carry a third
// sequence translation).
func TestFullNATFTPEndToEnd(t *testing.T) {
	nstest.Require(t)
	testenv.Tools(t, "curl", "vsftpd")
	cli, dir, rs := nstest.New(t, "cli"), nstest.New(t, "dir"), nstest.New(t, "rs")
	nstest.Veth(t, cli, "eth0", dir, "ext", 1500)
	nstest.Veth(t, dir, "int", rs, "eth0", 1500)
	for _, l := range []struct {
		ns   *nstest.NS
		link string
	}{{cli, "eth0"}, {dir, "ext"}, {dir, "int"}, {rs, "eth0"}} {
		l.ns.Offload(l.link, "tso", "off", "gso", "off")
	}
	cli.Addr("eth0", "198.51.100.2/24")
	cli.Route("203.0.113.0/24", "198.51.100.1", "eth0")
	dir.Addr("ext", "198.51.100.1/24")
	// The real server's address is shorter than the VIP in a 227 reply
	// ("10,0,0,1" for "203,0,113,1"), the client's than the local address
	// in a PORT command: both rewrites change the length, so the control
	// connections' sequence numbers move both ways.
	dir.Addr("int", "10.0.0.254/24")
	rs.Addr("eth0", "10.0.0.1/24")
	rs.Route("192.168.100.0/24", "", "eth0") // the local address; nothing else
	if _, err := rs.Try("ip", "route", "get", "198.51.100.2"); err == nil {
		t.Fatal("the real server has a route to the client")
	}

	lvslab := e2e.Bin(t, "lvslab")
	_, vlog := rs.Start(lvslab, "service", "vsftpd", "--listen", ":21", "--identity", "rs1")
	waitFor(t, "vsftpd listening", func() bool { return strings.Contains(vlog.String(), "listening on") }, vlog.String)
	files := map[string][32]byte{}
	for _, f := range []string{"1048576.bin", "10485760.bin"} {
		// The reference: the file as the real server serves it locally.
		out, err := rs.Cmd(t.Context(), "curl", "-sS", "--max-time", "20", "ftp://127.0.0.1/"+f).Output()
		if err != nil || len(out) == 0 {
			t.Fatalf("local download of %s: %v", f, err)
		}
		files[f] = sha256.Sum256(out)
	}

	e2e.StartLVSD(t, dir, "ext,int", "--metrics", "127.0.0.1:9108")
	for _, c := range []string{
		"-A -t 203.0.113.1:21 -s rr",
		"-P -t 203.0.113.1:21 -z 192.168.100.1",
		"-a -t 203.0.113.1:21 -r 10.0.0.1:21 -b",
		"-A -t 203.0.113.2:21 -s rr -j enable",
		"-P -t 203.0.113.2:21 -z 192.168.100.1",
		"-a -t 203.0.113.2:21 -r 10.0.0.1:21 -b",
	} {
		e2e.LVSADM(t, dir, c)
	}
	if l := e2e.LVSADM(t, dir, "-L -n"); !strings.Contains(l, "FTP helper, ports 21") || !strings.Contains(l, "203.0.113.2:21") {
		t.Errorf("lvsadm -L -n does not say the FTP helper follows the FULLNAT services:\n%s", l)
	}

	modes := []struct {
		name string
		args []string
	}{
		{"passive", []string{"--disable-epsv", "--no-ftp-skip-pasv-ip"}},
		{"EPSV", nil},
		{"active", []string{"-P", "-", "--disable-eprt"}},
		{"EPRT", []string{"-P", "-"}},
	}
	for _, vip := range []string{"203.0.113.1", "203.0.113.2"} {
		for _, m := range modes {
			file := "1048576.bin"
			if m.name == "passive" {
				file = "10485760.bin"
			}
			t.Run(fmt.Sprintf("%s %s", vip, m.name), func(t *testing.T) {
				args := append([]string{"-sS", "-v", "--max-time", "30", "-o", "-"}, m.args...)
				cmd := cli.Cmd(t.Context(), "curl", append(args, "ftp://"+vip+"/"+file)...)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				got, err := cmd.Output()
				if err != nil || sha256.Sum256(got) != files[file] {
					t.Errorf("%s download of %s through %s: %v, %d bytes, intact %v\n%s", m.name, file, vip, err, len(got),
						sha256.Sum256(got) == files[file], stderr.String())
				}
				// The mode asked for is the one used (curl falls back
				// from EPRT to PORT, and from EPSV to PASV, on an error).
				want := map[string]string{"passive": "> PASV", "EPSV": "> EPSV", "active": "> PORT ", "EPRT": "> EPRT |1|"}[m.name]
				if v := stderr.String(); !strings.Contains(v, want) || (m.name == "EPRT" && strings.Contains(v, "> PORT ")) ||
					(m.name == "EPSV" && strings.Contains(v, "> PASV")) {
					t.Errorf("%s: curl did not use %q alone:\n%s", m.name, want, v)
				}
			})
		}
	}
	// Eight data connections expected, the four PORT/EPRT commands
	// rewritten to the local address, the two 227 replies to the VIP,
	// nothing left alone or dropped.
	m := dir.Run("curl", "-s", "http://127.0.0.1:9108/metrics")
	for name, want := range map[string]int{"lvsd_ftp_data_expected_total": 8, "lvsd_ftp_port_rewritten_total": 4, "lvsd_ftp_pasv_rewritten_total": 2,
		"lvsd_ftp_foreign_address_total": 0, "lvsd_drops_total{reason=\"ftp_rewrite_failed\"}": 0} {
		if got := metric(m, name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}
