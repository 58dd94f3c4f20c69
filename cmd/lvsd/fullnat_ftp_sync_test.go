package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// TestFullNATFTPSyncFailover: an FTP session through a FULLNAT director
// survives the director's failover to its backup. The client's PORT
// command was rewritten to the local address (2 bytes longer: 10,0,0,2
// became 10,0,0,201), so from then on the control connection's numbering
// differs on the two sides by the helper's offset on top of FULLNAT's
// remap; both travel in the sync daemon's entry (SEQ_DATA and lvsd's
// APPSEQ option). After the master is killed and the client's and the
// real server's traffic turned to the backup (their neighbour entries
// rewritten, as gratuitous ARP would), the same control connection goes
// on: a NOOP is answered, a passive and an active download arrive whole.
// A backup without the offset puts the client's next command 2 bytes
// early in the real server's stream, over the end of the last one: vsftpd
// reads "OP" and answers "500 Unknown command." (seen with the backup's
// ftpSyncIn taken out).
func TestFullNATFTPSyncFailover(t *testing.T) {
	nstest.Require(t)
	testenv.Tools(t, "vsftpd")
	sw := nstest.New(t, "fsw")
	cli, d1, d2, rs := nstest.New(t, "fcli"), nstest.New(t, "fd1"), nstest.New(t, "fd2"), nstest.New(t, "frs")
	for i, n := range []*nstest.NS{cli, d1, d2, rs} {
		nstest.Veth(t, n, "eth0", sw, fmt.Sprintf("p%d", i), 1500)
		n.Offload("eth0", "tso", "off", "gso", "off")
	}
	sw.Bridge("br0", "p0", "p1", "p2", "p3")
	cli.Addr("eth0", "10.0.0.2/24")
	d1.Addr("eth0", "10.0.0.11/24")
	d2.Addr("eth0", "10.0.0.12/24")
	rs.Addr("eth0", "10.0.0.20/24")
	_, vlog := rs.Start(e2e.Bin(t, "lvslab"), "service", "vsftpd", "--listen", ":21", "--identity", "rs")
	waitFor(t, "vsftpd listening", func() bool { return strings.Contains(vlog.String(), "listening on") }, vlog.String)

	master, _ := e2e.StartLVSDProc(t, d1, "eth0")
	e2e.StartLVSD(t, d2, "eth0", "--no-arp")
	for _, d := range []*nstest.NS{d1, d2} {
		e2e.LVSADM(t, d, "-A -t 10.0.0.100:21 -s rr")
		e2e.LVSADM(t, d, "-P -t 10.0.0.100:21 -z 10.0.0.201")
		e2e.LVSADM(t, d, "-a -t 10.0.0.100:21 -r 10.0.0.20:21 -b")
	}
	e2e.LVSADM(t, d1, "--start-daemon master --mcast-interface eth0 --syncid 7")
	e2e.LVSADM(t, d2, "--start-daemon backup --mcast-interface eth0 --syncid 7")
	// Both directors own the VIP and the local address; the master gets
	// the traffic until the failover.
	turn := func(d *nstest.NS) {
		cli.Run("ip", "neigh", "replace", "10.0.0.100", "lladdr", d.MAC("eth0").String(), "dev", "eth0", "nud", "permanent")
		rs.Run("ip", "neigh", "replace", "10.0.0.201", "lladdr", d.MAC("eth0").String(), "dev", "eth0", "nud", "permanent")
	}
	turn(d1)

	var s *ftpSession
	if err := cli.Do(func() (err error) { s, err = dialFTP("10.0.0.100:21"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.c.Close() })
	before, err := s.active(t, cli, "65536.bin")
	if err != nil || len(before) != 65536 {
		t.Fatalf("active download before the failover: %v, %d bytes", err, len(before))
	}
	// The data connection's client packets sync it, and with it its
	// control connection and the offset; a partly filled message goes out
	// within 2 s.
	waitFor(t, "the backup to learn the control connection", func() bool {
		return strings.Contains(e2e.LVSADM(t, d2, "-L -n -c"), "10.0.0.100:21")
	}, func() string { return e2e.LVSADM(t, d2, "-L -n -c") })

	_ = syscall.Kill(master.Process.Pid, syscall.SIGKILL)
	_ = master.Wait()
	turn(d2)

	if code, line, err := s.cmd("NOOP"); err != nil || code != 200 {
		t.Fatalf("NOOP after the failover: %d %q %v", code, line, err)
	}
	passive, err := s.passive(cli, "65536.bin")
	if err != nil || !bytes.Equal(passive, before) {
		t.Errorf("passive download after the failover: %v, %d bytes, same as before %v", err, len(passive), bytes.Equal(passive, before))
	}
	after, err := s.active(t, cli, "65536.bin")
	if err != nil || !bytes.Equal(after, before) {
		t.Errorf("active download after the failover: %v, %d bytes, same as before %v", err, len(after), bytes.Equal(after, before))
	}
	if code, line, err := s.cmd("QUIT"); err != nil || code != 221 {
		t.Errorf("QUIT: %d %q %v", code, line, err)
	}
}

// ftpSession is a minimal FTP client: one control connection, anonymous,
// binary, downloads in passive (PASV) or active (PORT) mode.
type ftpSession struct {
	c  net.Conn
	rd *bufio.Reader
}

func dialFTP(addr string) (*ftpSession, error) {
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	s := &ftpSession{c: c, rd: bufio.NewReader(c)}
	if code, line, err := s.reply(); err != nil || code != 220 {
		c.Close()
		return nil, fmt.Errorf("banner %d %q: %v", code, line, err)
	}
	for _, cmd := range []string{"USER anonymous", "TYPE I"} {
		if code, line, err := s.cmd(cmd); err != nil || code >= 300 {
			c.Close()
			return nil, fmt.Errorf("%s: %d %q: %v", cmd, code, line, err)
		}
	}
	return s, nil
}

// reply reads one reply (multi-line ones to their last line).
func (s *ftpSession) reply() (int, string, error) {
	_ = s.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			return 0, line, err
		}
		if len(line) >= 4 && line[3] == ' ' {
			code, err := strconv.Atoi(line[:3])
			return code, strings.TrimSpace(line), err
		}
	}
}

func (s *ftpSession) cmd(c string) (int, string, error) {
	_ = s.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(s.c, c+"\r\n"); err != nil {
		return 0, "", err
	}
	return s.reply()
}

// retr sends RETR over data (opened by open once the command is out) and
// returns the file.
func (s *ftpSession) retr(file string, open func() (net.Conn, error)) ([]byte, error) {
	_ = s.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(s.c, "RETR "+file+"\r\n"); err != nil {
		return nil, err
	}
	data, err := open()
	if err != nil {
		return nil, err
	}
	defer data.Close()
	_ = data.SetReadDeadline(time.Now().Add(10 * time.Second))
	body, rerr := io.ReadAll(data)
	for {
		code, line, err := s.reply()
		if err != nil {
			return body, err
		}
		if code == 226 {
			return body, rerr
		}
		if code >= 400 {
			return body, fmt.Errorf("RETR: %s", line)
		}
	}
}

// passive downloads file through PASV, connecting where the 227 reply
// points (which the director rewrote to the VIP).
func (s *ftpSession) passive(cli *nstest.NS, file string) ([]byte, error) {
	code, line, err := s.cmd("PASV")
	if err != nil || code != 227 {
		return nil, fmt.Errorf("PASV: %d %q %v", code, line, err)
	}
	i, j := strings.IndexByte(line, '('), strings.IndexByte(line, ')')
	if i < 0 || j < i {
		return nil, fmt.Errorf("227 without an address: %q", line)
	}
	var h [6]int
	if _, err := fmt.Sscanf(line[i+1:j], "%d,%d,%d,%d,%d,%d", &h[0], &h[1], &h[2], &h[3], &h[4], &h[5]); err != nil {
		return nil, fmt.Errorf("227 %q: %v", line, err)
	}
	ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(h[0]), byte(h[1]), byte(h[2]), byte(h[3])}), uint16(h[4]<<8|h[5]))
	if ap.Addr() != netip.MustParseAddr("10.0.0.100") {
		return nil, fmt.Errorf("227 names %v, not the VIP", ap)
	}
	var data net.Conn
	if err := cli.Do(func() (err error) { data, err = net.DialTimeout("tcp4", ap.String(), 5*time.Second); return err }); err != nil {
		return nil, err
	}
	return s.retr(file, func() (net.Conn, error) { return data, nil })
}

// active downloads file through PORT, naming a listener on the client.
func (s *ftpSession) active(t *testing.T, cli *nstest.NS, file string) ([]byte, error) {
	var ln net.Listener
	if err := cli.Do(func() (err error) { ln, err = net.Listen("tcp4", "10.0.0.2:0"); return err }); err != nil {
		return nil, err
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if code, line, err := s.cmd(fmt.Sprintf("PORT 10,0,0,2,%d,%d", port>>8, port&0xff)); err != nil || code != 200 {
		return nil, fmt.Errorf("PORT: %d %q %v", code, line, err)
	}
	return s.retr(file, func() (net.Conn, error) {
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
		c, err := ln.Accept()
		if err == nil {
			if ra := c.RemoteAddr().(*net.TCPAddr); ra.Port != 20 || !ra.IP.Equal(net.IPv4(10, 0, 0, 100)) {
				t.Errorf("active data connection from %v, want the VIP's port 20", ra)
			}
		}
		return c, err
	})
}
