package service

// Services that are real daemons rather than lvslab's own: vsftpd (an FTP
// server, for the director's FTP helper and port-0 persistence) and dnsmasq
// (a DNS server, for UDP services). Each is configured from --listen and
// --identity, runs in the foreground as a child of `lvslab service`, and
// dies with it (a fault that kills the service kills the daemon).
//
//   - vsftpd serves anonymous downloads of FTPFiles (deterministic bytes,
//     FTPContent) and greets with "220 lvslab vsftpd IDENTITY", so a client
//     learns which real server it reached from the banner. Passive data
//     ports are FTPPassivePorts; active data connections come from port 20.
//   - dnsmasq answers TXT queries for DNSName with the identity, and
//     nothing else (no upstream, no hosts file).

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FTPFiles are the sizes of the files vsftpd serves, as /SIZE.bin.
var FTPFiles = []int64{4 << 10, 64 << 10, 1 << 20, 10 << 20}

// FTPPassivePorts are vsftpd's passive data ports (pasv_min_port,
// pasv_max_port).
const FTPPassiveMin, FTPPassiveMax = 30000, 30999

// DNSName is the TXT record dnsmasq answers with its identity.
const DNSName = "whoami.lvslab"

// FTPContent fills b with the bytes at offset off of every served file:
// SHA-256 of the block number, block after block, so a client checks a
// download without a copy of the file.
func FTPContent(b []byte, off int64) {
	var blk [8]byte
	for len(b) > 0 {
		n := off / sha256.Size
		binary.BigEndian.PutUint64(blk[:], uint64(n))
		sum := sha256.Sum256(blk[:])
		c := copy(b, sum[off%sha256.Size:])
		b, off = b[c:], off+int64(c)
	}
}

func writeFTPFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for off := int64(0); off < size; {
		n := min(int64(len(buf)), size-off)
		FTPContent(buf[:n], off)
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		off += n
	}
	return f.Close()
}

func vsftpd(ctx context.Context, c Config, out *lockedWriter) error {
	host, port, err := splitListen(c.Listen)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lvslab-vsftpd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root, empty := filepath.Join(dir, "root"), filepath.Join(dir, "empty")
	for _, d := range []string{root, empty} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	for _, size := range FTPFiles {
		if err := writeFTPFile(filepath.Join(root, strconv.FormatInt(size, 10)+".bin"), size); err != nil {
			return fmt.Errorf("vsftpd files: %w", err)
		}
	}
	// /tmp is world-writable; vsftpd wants its anonymous root and the
	// directories above it not writable by the anonymous user.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	conf := []string{
		"listen=YES", "listen_ipv6=NO", "listen_port=" + strconv.Itoa(port), "background=NO",
		"anonymous_enable=YES", "no_anon_password=YES", "anon_root=" + root, "local_enable=NO", "write_enable=NO",
		"anon_world_readable_only=YES", "ftpd_banner=lvslab vsftpd " + c.Identity,
		"pasv_enable=YES", "pasv_min_port=" + strconv.Itoa(FTPPassiveMin), "pasv_max_port=" + strconv.Itoa(FTPPassiveMax),
		"port_enable=YES", "connect_from_port_20=YES",
		"secure_chroot_dir=" + empty, "nopriv_user=nobody", "ftp_username=ftp",
		"seccomp_sandbox=NO", "isolate_network=NO", "isolate=NO",
		"xferlog_enable=NO", "syslog_enable=NO", "vsftpd_log_file=/dev/null", "dual_log_enable=NO",
		"max_clients=0", "max_per_ip=0", "idle_session_timeout=60", "data_connection_timeout=60",
		"accept_timeout=10", "connect_timeout=10",
	}
	if host != "" {
		conf = append(conf, "listen_address="+host)
	}
	confPath := filepath.Join(dir, "vsftpd.conf")
	if err := os.WriteFile(confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return runDaemon(ctx, c, out, "tcp", host, port, "vsftpd", confPath)
}

func dnsmasq(ctx context.Context, c Config, out *lockedWriter) error {
	host, port, err := splitListen(c.Listen)
	if err != nil {
		return err
	}
	args := []string{"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
		"--pid-file=", "--user=root", "--group=root", "--port=" + strconv.Itoa(port), "--cache-size=0",
		"--txt-record=" + DNSName + "," + c.Identity, "--log-facility=-", "--dns-forward-max=1000"}
	if host != "" {
		args = append(args, "--listen-address="+host, "--bind-interfaces")
	}
	return runDaemon(ctx, c, out, "udp", host, port, "dnsmasq", args...)
}

// splitListen reads "host:port" (host optional).
func splitListen(listen string) (string, int, error) {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("listen %q: bad port", listen)
	}
	return h, port, nil
}

// runDaemon starts a daemon in the foreground, prints the ready line once
// it answers on the port (a TCP connect, or a DNS query for udp), and
// stops it with ctx. The daemon dies with this process (PDEATHSIG), so a
// fault that SIGKILLs the service does not leave it running.
func runDaemon(ctx context.Context, c Config, out *lockedWriter, network, host string, port int, prog string, args ...string) error {
	path, err := exec.LookPath(prog)
	if err != nil {
		return fmt.Errorf("%s is not installed (scripts/deps.sh installs it): %w", prog, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", prog, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	if host == "" {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if probeDaemon(network, addr) == nil {
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited before it listened on %s: %v", prog, addr, err)
		case <-ctx.Done():
			stop()
			return nil
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("%s did not listen on %s within 10s", prog, addr)
		}
	}
	a, _ := net.ResolveTCPAddr("tcp", addr)
	ready(out, c, a)
	select {
	case err := <-exited:
		return fmt.Errorf("%s exited: %v", prog, err)
	case <-ctx.Done():
		stop()
		return nil
	}
}

func probeDaemon(network, addr string) error {
	if network == "tcp" {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err
	}
	_, err := QueryTXT(context.Background(), nil, addr, DNSName, 200*time.Millisecond)
	return err
}

// QueryTXT asks the DNS server at addr for the TXT record name over UDP
// from a fresh socket (dial, when given, opens it: a traffic generator's
// namespace) and returns the record's first string. An answer without one
// is an error naming the response code.
func QueryTXT(ctx context.Context, dial func() (*net.UDPConn, error), addr, name string, timeout time.Duration) (string, error) {
	var (
		c   *net.UDPConn
		err error
	)
	if dial != nil {
		c, err = dial()
	} else {
		var ua *net.UDPAddr
		if ua, err = net.ResolveUDPAddr("udp", addr); err == nil {
			c, err = net.DialUDP("udp", nil, ua)
		}
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	id := uint16(rand.Uint32())
	q, err := dnsQuery(id, name, dnsTypeTXT)
	if err != nil {
		return "", err
	}
	stopRead := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stopRead()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(q); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return "", err
		}
		txt, match, err := dnsTXTAnswer(buf[:n], id)
		if !match {
			continue // a stray answer to another query: keep waiting
		}
		return txt, err
	}
}

const dnsTypeTXT = 16

// dnsQuery builds a recursion-desired query for name (class IN).
func dnsQuery(id uint16, name string, qtype uint16) ([]byte, error) {
	b := make([]byte, 12, 12+len(name)+6)
	binary.BigEndian.PutUint16(b[0:], id)
	b[2] = 0x01 // RD
	binary.BigEndian.PutUint16(b[4:], 1)
	for label := range strings.SplitSeq(strings.TrimSuffix(name, "."), ".") {
		if len(label) == 0 || len(label) > 63 {
			return nil, fmt.Errorf("dns name %q: bad label", name)
		}
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	b = append(b, 0, byte(qtype>>8), byte(qtype), 0, 1)
	return b, nil
}

// dnsTXTAnswer reads a response to query id: the first TXT string of the
// answer section. match is false for a datagram that is not that response.
func dnsTXTAnswer(b []byte, id uint16) (txt string, match bool, err error) {
	if len(b) < 12 || binary.BigEndian.Uint16(b[0:]) != id || b[2]&0x80 == 0 {
		return "", false, nil
	}
	if rcode := b[3] & 0x0f; rcode != 0 {
		return "", true, fmt.Errorf("dns: rcode %d", rcode)
	}
	qd, an := binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:])
	off := 12
	for range qd {
		if off = skipName(b, off); off < 0 || off+4 > len(b) {
			return "", true, errors.New("dns: malformed question")
		}
		off += 4
	}
	for range an {
		if off = skipName(b, off); off < 0 || off+10 > len(b) {
			return "", true, errors.New("dns: malformed answer")
		}
		typ := binary.BigEndian.Uint16(b[off:])
		rdlen := int(binary.BigEndian.Uint16(b[off+8:]))
		off += 10
		if off+rdlen > len(b) {
			return "", true, errors.New("dns: answer past the datagram")
		}
		if typ == dnsTypeTXT && rdlen > 0 && int(b[off])+1 <= rdlen {
			return string(b[off+1 : off+1+int(b[off])]), true, nil
		}
		off += rdlen
	}
	return "", true, errors.New("dns: no TXT answer")
}

// skipName returns the offset after the (possibly compressed) name at off,
// or -1 when it is malformed.
func skipName(b []byte, off int) int {
	for off < len(b) {
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1
		case l&0xc0 == 0xc0:
			if off+2 > len(b) {
				return -1
			}
			return off + 2
		case l&0xc0 != 0:
			return -1
		}
		off += 1 + l
	}
	return -1
}
