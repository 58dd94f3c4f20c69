package check

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"lvslab/config/keepalived"
	"lvslab/rewrite"
)

// Target says where a checker of a real server connects: connect_ip and
// connect_port, else the real server's.
func Target(c *keepalived.Checker, rs *keepalived.RealServer, svcPort uint16) netip.AddrPort {
	a, p := c.ConnectIP, c.ConnectPort
	if !a.IsValid() {
		a = rs.Addr
	}
	if p == 0 {
		p = rs.Port
	}
	if p == 0 {
		p = svcPort
	}
	return netip.AddrPortFrom(a, p)
}

// Runner runs MISC_CHECK scripts; the daemon supplies one that sets the
// user and group (script_user).
type Runner func(ctx context.Context, s *keepalived.Script) (exitCode int, err error)

// ProbeFor builds the Probe of one checker of a real server.
func ProbeFor(c *keepalived.Checker, rs *keepalived.RealServer, svcPort uint16, run Runner) (Probe, error) {
	to := Target(c, rs, svcPort)
	switch c.Kind {
	case keepalived.CheckTCP:
		return TCPProbe(TCPTarget{Addr: to, BindTo: c.BindTo, BindPort: c.BindPort}), nil
	case keepalived.CheckHTTP, keepalived.CheckSSL:
		return HTTPProbe(c, rs, to), nil
	case keepalived.CheckMisc:
		if c.Misc == nil || c.Misc.Path == nil {
			return nil, errors.New("MISC_CHECK without misc_path")
		}
		return MiscProbe(c.Misc, rs.Weight, run), nil
	case keepalived.CheckSMTP:
		return SMTPProbe(c, to), nil
	case keepalived.CheckUDP:
		return UDPProbe(c, to), nil
	case keepalived.CheckPing:
		return PingProbe(to.Addr()), nil
	case keepalived.CheckDNS:
		return DNSProbe(c, to)
	}
	return nil, fmt.Errorf("%s is not run by lvskeepalived yet", c.Kind)
}

// HTTPProbe is HTTP_GET/SSL_GET: every url must answer with an accepted
// status code and, when a digest is given, a body with that MD5.
// keepalived checks one url per delay_loop; this checks them all each
// time, so a failing url is seen at the next check rather than up to
// N delay_loops later.
func HTTPProbe(c *keepalived.Checker, rs *keepalived.RealServer, to netip.AddrPort) Probe {
	h := c.HTTP
	if h == nil {
		h = &keepalived.HTTPCheck{}
	}
	urls := h.URLs
	if len(urls) == 0 {
		urls = []keepalived.URL{{Path: "/"}}
	}
	return func(ctx context.Context) Outcome {
		for i, u := range urls {
			vhost := u.Virtualhost
			if vhost == "" {
				vhost = h.Virtualhost
			}
			q := HTTPRequest{Addr: to, Path: u.Path, Virtualhost: vhost, Protocol: h.Protocol, TLS: c.Kind == keepalived.CheckSSL,
				SNI: h.EnableSNI, BindTo: c.BindTo, Timeout: c.ConnectTimeout}
			res, err := Fetch(ctx, q)
			if err != nil {
				return Outcome{Err: err, Index: i}
			}
			if !u.Accepts(res.Status) {
				return Outcome{Err: fmt.Errorf("HTTP status code error to %s url(%s)", to, u.Path), Index: i}
			}
			if u.Digest != "" && res.DigestHex() != u.Digest {
				return Outcome{Err: fmt.Errorf("MD5 digest error to %s url(%s), expecting MD5SUM [%s]", to, u.Path, u.Digest), Index: i}
			}
		}
		return Outcome{OK: true}
	}
}

// MiscProbe is MISC_CHECK: the script's exit code 0 is a success and 1 a
// failure; with misc_dynamic, 2..255 are a success setting the weight to
// code-2, and 0 restores the configured weight.
func MiscProbe(m *keepalived.MiscCheck, weight int, run Runner) Probe {
	return func(ctx context.Context) Outcome {
		code, err := run(ctx, m.Path)
		switch {
		case err != nil:
			return Outcome{Err: err}
		case code == 0:
			if m.Dynamic {
				return Outcome{OK: true, Weight: weight, HasWeight: true}
			}
			return Outcome{OK: true}
		case m.Dynamic && code >= 2 && code <= 255:
			return Outcome{OK: true, Weight: code - 2, HasWeight: true}
		}
		return Outcome{Err: fmt.Errorf("exit status %d", code)}
	}
}

// RunScript runs a script with its words as argv and waits for it: the
// Runner MISC_CHECK uses when no user change is needed. A script still
// running at the deadline is killed, as keepalived kills it after
// misc_timeout.
func RunScript(ctx context.Context, s *keepalived.Script, cred *syscall.Credential) (int, error) {
	if s == nil || len(s.Args) == 0 {
		return -1, errors.New("empty script")
	}
	cmd := exec.CommandContext(ctx, s.Args[0], s.Args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err == nil {
		defer devnull.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	}
	err = cmd.Run()
	if ctx.Err() != nil {
		return -1, fmt.Errorf("%s: timed out", s.Args[0])
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("run %s: %w", s.Args[0], err)
	}
	return 0, nil
}

// SMTPProbe is SMTP_CHECK: the 220 greeting, HELO answered with 250, QUIT;
// every host { } (or the real server) must pass.
func SMTPProbe(c *keepalived.Checker, to netip.AddrPort) Probe {
	helo := "smtpchecker.keepalived.org"
	type host struct {
		addr netip.AddrPort
		bind netip.Addr
	}
	var hosts []host
	if c.SMTP != nil {
		if c.SMTP.HeloName != "" {
			helo = c.SMTP.HeloName
		}
		for _, h := range c.SMTP.Hosts {
			a, p := h.ConnectIP, h.ConnectPort
			if !a.IsValid() {
				a = to.Addr()
			}
			if p == 0 {
				p = to.Port()
			}
			hosts = append(hosts, host{netip.AddrPortFrom(a, p), h.BindTo})
		}
	}
	if len(hosts) == 0 {
		if to.Port() == 0 {
			to = netip.AddrPortFrom(to.Addr(), 25)
		}
		hosts = []host{{to, c.BindTo}}
	}
	return func(ctx context.Context) Outcome {
		for i, h := range hosts {
			if err := smtpOnce(ctx, h.addr, h.bind, helo); err != nil {
				return Outcome{Err: err, Index: i}
			}
		}
		return Outcome{OK: true}
	}
}

func smtpOnce(ctx context.Context, to netip.AddrPort, bind netip.Addr, helo string) error {
	d := net.Dialer{}
	if bind.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: bind.AsSlice()}
	}
	c, err := d.DialContext(ctx, "tcp", to.String())
	if err != nil {
		return fmt.Errorf("SMTP connection to %s: %w", to, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	r := bufio.NewReader(c)
	reply := func() (int, error) {
		for {
			ln, err := r.ReadString('\n')
			if err != nil {
				return 0, err
			}
			if len(ln) < 4 {
				return 0, fmt.Errorf("short SMTP reply %q", ln)
			}
			code, err := strconv.Atoi(ln[:3])
			if err != nil {
				return 0, fmt.Errorf("bad SMTP reply %q", ln)
			}
			if ln[3] != '-' {
				return code, nil
			}
		}
	}
	if code, err := reply(); err != nil || code != 220 {
		return fmt.Errorf("SMTP server %s greeting %d: %v", to, code, err)
	}
	if _, err := fmt.Fprintf(c, "HELO %s\r\n", helo); err != nil {
		return err
	}
	if code, err := reply(); err != nil || code != 250 {
		return fmt.Errorf("SMTP server %s HELO answer %d: %v", to, code, err)
	}
	_, _ = c.Write([]byte("QUIT\r\n"))
	return nil
}

// UDPProbe is UDP_CHECK: send the payload (an empty datagram if none) from
// a connected socket. Without require_reply, only an ICMP port unreachable
// (a refused read) within connect_timeout fails; with it, a reply must
// come, match reply (a prefix) and the length bounds.
func UDPProbe(c *keepalived.Checker, to netip.AddrPort) Probe {
	spec := c.UDP
	if spec == nil {
		spec = &keepalived.UDPCheck{}
	}
	return func(ctx context.Context) Outcome {
		d := net.Dialer{}
		if c.BindTo.IsValid() {
			d.LocalAddr = &net.UDPAddr{IP: c.BindTo.AsSlice()}
		}
		conn, err := d.DialContext(ctx, "udp", to.String())
		if err != nil {
			return Outcome{Err: err}
		}
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		if _, err := conn.Write(spec.Payload); err != nil {
			return Outcome{Err: fmt.Errorf("UDP send to %s: %w", to, err)}
		}
		buf := make([]byte, 65536)
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if !spec.RequireReply && errors.As(err, &ne) && ne.Timeout() {
				return Outcome{OK: true}
			}
			return Outcome{Err: fmt.Errorf("UDP check of %s: %w", to, err)}
		}
		got := buf[:n]
		if spec.RequireReply {
			if len(spec.Reply) > 0 && !bytes.HasPrefix(got, spec.Reply) {
				return Outcome{Err: fmt.Errorf("UDP reply from %s does not match", to)}
			}
			if spec.MinReplyLen > 0 && n < spec.MinReplyLen || spec.MaxReplyLen > 0 && n > spec.MaxReplyLen {
				return Outcome{Err: fmt.Errorf("UDP reply from %s has length %d", to, n)}
			}
		}
		return Outcome{OK: true}
	}
}

// PingProbe is PING_CHECK: one ICMP echo (a datagram ICMP socket, which
// needs no raw privilege when net.ipv4.ping_group_range allows it, else
// the raw socket root has) answered before connect_timeout.
func PingProbe(a netip.Addr) Probe {
	return func(ctx context.Context) Outcome {
		if err := ping(ctx, a); err != nil {
			return Outcome{Err: err}
		}
		return Outcome{OK: true}
	}
}

func ping(ctx context.Context, a netip.Addr) error {
	netw, typ, reply := "ip4:icmp", byte(8), byte(0)
	if a.Is6() {
		netw, typ, reply = "ip6:ipv6-icmp", 128, 129
	}
	c, err := net.ListenPacket(netw, "")
	if err != nil {
		return fmt.Errorf("ping %s: %w", a, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	id := uint16(os.Getpid())
	seq := uint16(time.Now().UnixNano())
	msg := []byte{typ, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'l', 'v', 's', 'k'}
	if !a.Is6() { // the kernel computes ICMPv6 checksums itself
		binary.BigEndian.PutUint16(msg[2:], rewrite.Checksum(msg))
	}
	dst := &net.IPAddr{IP: a.AsSlice()}
	if _, err := c.WriteTo(msg, dst); err != nil {
		return fmt.Errorf("ping %s: %w", a, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("ping %s: %w", a, err)
		}
		b := buf[:n]
		if ip, ok := from.(*net.IPAddr); !ok || !ip.IP.Equal(dst.IP) {
			continue
		}
		if len(b) >= 8 && b[0] == reply && binary.BigEndian.Uint16(b[4:]) == id && binary.BigEndian.Uint16(b[6:]) == seq {
			return nil
		}
	}
}

// Name is the checker's name in keepalived's log texts ("TCP_CHECK").
func Name(k keepalived.CheckerKind) string { return strings.ToUpper(k.String()) }
