package traffic

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"lvslab/sim/runner"
	"lvslab/sim/service"
	"lvslab/sim/spec"
)

// DefaultFTPPayload is the file an ftp traffic downloads when payload: is
// not given.
const DefaultFTPPayload = 64 << 10

// ftpGen downloads one file from a vsftpd per request with curl, the FTP
// client operators use, run in the node's namespace: a control connection,
// the data connection as ftp_mode says, the bytes checked as they arrive.
type ftpGen struct {
	*base
	url  string
	size int64
	args []string
}

func newFTP(b *base) (*ftpGen, error) {
	ap, err := netip.ParseAddrPort(b.t.Target)
	if err != nil {
		return nil, fmt.Errorf("ftp target %q must be addr:port", b.t.Target)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		return nil, errors.New("ftp traffic needs curl (scripts/deps.sh installs it)")
	}
	size := int64(b.payloadSize(DefaultFTPPayload))
	g := &ftpGen{base: b, size: size, url: fmt.Sprintf("ftp://%s/%d.bin", ap, size)}
	secs := strconv.FormatFloat(b.timeout.Seconds(), 'f', 3, 64)
	g.args = []string{"netns", "exec", b.node.Namespace(), "curl", "-sS", "-v", "--max-time", secs, "--connect-timeout", secs, "-o", "-"}
	switch b.t.FTPMode {
	case spec.FTPPassive, "":
		// A classic client: data to where the 227 reply points, which
		// is what the director's FTP helper rewrites.
		g.args = append(g.args, "--disable-epsv", "--no-ftp-skip-pasv-ip")
	case spec.FTPEPSV:
	case spec.FTPActive:
		g.args = append(g.args, "-P", "-", "--disable-eprt")
	case spec.FTPEPRT:
		g.args = append(g.args, "-P", "-")
	default:
		return nil, fmt.Errorf("ftp_mode %q", b.t.FTPMode)
	}
	if b.t.Source.IsValid() {
		g.args = append(g.args, "--interface", b.t.Source.String())
	}
	g.args = append(g.args, g.url)
	return g, nil
}

func (g *ftpGen) run(ctx context.Context, stop <-chan struct{}) {
	g.requests(ctx, stop, g.one)
}

func (g *ftpGen) one(ctx context.Context, _ int) runner.Request {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, g.timeout+2*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, "ip", g.args...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return runner.Request{Err: "curl: " + err.Error()}
	}
	if err := cmd.Start(); err != nil {
		return runner.Request{Err: "curl: " + err.Error(), Latency: time.Since(start)}
	}
	got, mismatch := g.check(stdout)
	werr := cmd.Wait()
	r := runner.Request{Latency: time.Since(start), Bytes: got}
	r.Backend, r.Remote = curlPeers(stderr.Bytes())
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.Err = "curl: cancelled"
	case errors.As(werr, &ee):
		r.Err = curlError(ee.ExitCode(), g.timeout)
	case werr != nil:
		r.Err = "curl: " + werr.Error()
	case mismatch >= 0 && g.t.Verify:
		r.Err = fmt.Sprintf("verify: byte %d differs from what vsftpd serves", mismatch)
	case got != g.size:
		r.Err = fmt.Sprintf("verify: %d bytes arrived of %d", got, g.size)
	}
	return r
}

// check reads the download and returns its length and the offset of the
// first byte that differs from the served content (-1: none).
func (g *ftpGen) check(rd io.Reader) (int64, int64) {
	buf := make([]byte, 64<<10)
	want := make([]byte, len(buf))
	var off int64
	mismatch := int64(-1)
	for {
		n, err := rd.Read(buf)
		if n > 0 && mismatch < 0 && g.t.Verify {
			service.FTPContent(want[:n], off)
			if i := firstDiff(buf[:n], want[:n]); i >= 0 {
				mismatch = off + int64(i)
			}
		}
		off += int64(n)
		if err != nil {
			return off, mismatch
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// curlPeers reads curl -v's trace: the vsftpd banner names the backend;
// "Connected to HOST (ADDR) port N" the control connection's peer.
func curlPeers(trace []byte) (backend string, remote netip.AddrPort) {
	sc := bufio.NewScanner(bytes.NewReader(trace))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "< 220 lvslab vsftpd "); ok && backend == "" {
			backend = strings.TrimSpace(rest)
		}
		if rest, ok := strings.CutPrefix(line, "* Connected to "); ok && !remote.IsValid() {
			// "* Connected to 203.0.113.5 (203.0.113.5) port 21 (#0)"
			f := strings.Fields(rest)
			if len(f) >= 4 && f[2] == "port" {
				a, err1 := netip.ParseAddr(strings.Trim(f[1], "()"))
				p, err2 := strconv.ParseUint(f[3], 10, 16)
				if err1 == nil && err2 == nil {
					remote = netip.AddrPortFrom(a, uint16(p))
				}
			}
		}
	}
	return backend, remote
}

// curlError names curl's exit codes the lab meets (curl(1) EXIT CODES),
// stable for counting.
func curlError(code int, timeout time.Duration) string {
	names := map[int]string{
		7:  "connect: connection refused or unreachable",
		8:  "ftp: weird server reply",
		9:  "ftp: access denied",
		12: "ftp: server did not connect back in time (active)",
		13: "ftp: bad PASV/EPSV reply",
		18: "ftp: partial file",
		25: "ftp: upload failed",
		28: "timeout after " + timeout.String(),
		30: "ftp: PORT failed",
		56: "ftp: receive failure",
		67: "ftp: login denied",
		78: "ftp: file not found",
	}
	if n, ok := names[code]; ok {
		return fmt.Sprintf("curl exit %d: %s", code, n)
	}
	return fmt.Sprintf("curl exit %d", code)
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
