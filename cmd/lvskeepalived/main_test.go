package main

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keepalived.conf")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

// -t exits as keepalived -t does: 0 clean, 5 any problem, 6 script
// security, 2 a fatal error; every message names file:line.
func TestConfigTestExitCodes(t *testing.T) {
	clean := "virtual_server 192.0.2.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n real_server 10.0.0.1 80 {\n  TCP_CHECK {\n  }\n }\n}\n"
	for _, tc := range []struct {
		name, text string
		code       int
		want       string
	}{
		{"clean", clean, 0, ""},
		{"warning", "global_defs {\n bogus 1\n}\n", 5, ":2: warning: Unknown keyword 'bogus'"},
		{"fatal", "global_defs {\n router_id\n}\n", 2, ":2: fatal: *** Configuration line starting `router_id` is missing a parameter"},
		{"security", strings.Replace(clean, " protocol TCP\n", " protocol TCP\n quorum_up /bin/true\n", 1), 6, ":5: security: SECURITY VIOLATION"},
		// The VRRP side's refusals are reported with file:line too.
		{"vrrp", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  2001:db8::1\n }\n}\n", 5,
			":5: error: vrrp_instance V: virtual_ipaddress: 2001:db8::1/128: only IPv4 is implemented"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := write(t, tc.text)
			code, _, stderr := runCmd("-t", "-f", f)
			assert.Equal(t, tc.code, code, stderr)
			if tc.want == "" {
				assert.Empty(t, stderr)
			} else {
				assert.Contains(t, stderr, f+tc.want)
			}
		})
	}
	code, _, stderr := runCmd("--config-test", "--use-file="+filepath.Join(t.TempDir(), "missing.conf"))
	assert.Equal(t, 6, code)
	assert.Contains(t, stderr, "Config files missing")
}

func TestConfigTestLogFile(t *testing.T) {
	f := write(t, "global_defs {\n bogus 1\n}\n")
	log := filepath.Join(t.TempDir(), "t.log")
	code, _, stderr := runCmd("--config-test="+log, "-f", f)
	assert.Equal(t, 5, code)
	assert.Empty(t, stderr)
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Contains(t, string(b), "Unknown keyword 'bogus'")
}

func TestDumpConf(t *testing.T) {
	f := write(t, "virtual_server 192.0.2.1 80 {\n lb_algo rr\n lb_kind DR\n protocol TCP\n real_server 10.0.0.1 80 {\n  TCP_CHECK {\n  }\n }\n}\n")
	code, stdout, _ := runCmd("-t", "-d", "-f", f)
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, `"scheduler": "rr"`)
	assert.Contains(t, stdout, `"forward": "route"`)
	assert.Contains(t, stdout, `"kind": "TCP_CHECK"`)
}

func TestCommandLine(t *testing.T) {
	o, _, err := parseArgs([]string{"-nlDG", "-f", "a.conf", "-P", "-p", "/run/a.pid", "-r/run/b.pid", "--checkers_pid=/run/c.pid", "-g/tmp/x.log", "-C"})
	require.NoError(t, err)
	assert.Equal(t, options{file: "a.conf", dontFork: true, logConsole: true, logDetail: true, noSyslog: true, vrrpOnly: true, checkOnly: true,
		pidFile: "/run/a.pid", vrrpPid: "/run/b.pid", checkPid: "/run/c.pid", logFile: "/tmp/x.log"}, o)
	_, rest, err := parseArgs([]string{"-T", "-s", "1.2.3.4", "-p", "80"})
	require.NoError(t, err)
	assert.Equal(t, []string{"-s", "1.2.3.4", "-p", "80"}, rest)
	code, _, stderr := runCmd("-Q")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "unknown option -Q")
	// The daemon does not start on a fatal configuration (keepalived's exit 2).
	code, _, stderr = runCmd("-n", "-f", write(t, "global_defs {\n router_id\n}\n"))
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "missing a parameter")
}

// genhash: the MD5 of the body only, keepalived's request on the wire.
func TestGenhash(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	body := "hello from the real server\n"
	reqs := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		reqs <- string(buf[:n])
		fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Length: %d\r\nServer: x\r\n\r\n%strailing junk", len(body), body)
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	code, stdout, stderr := runCmd("-T", "-s", "127.0.0.1", "-p", fmt.Sprint(port), "-u", "/index.html", "-V", "www.example.org")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, fmt.Sprintf("%x\n", md5.Sum([]byte(body))), stdout)
	assert.Equal(t, "GET /index.html HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: www.example.org\r\n\r\n", <-reqs)
	code, _, stderr = runCmd("-T", "-s", "127.0.0.1")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "Usage")
}
