package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/internal/testenv"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

const testdata = "../../sim/testdata"

// lvslab runs the command in-process (for what starts no lab processes).
func lvslab(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestValidate(t *testing.T) {
	code, out, errOut := lvslab("validate", filepath.Join(testdata, "lan3.yaml"), filepath.Join(testdata, "nat-000.yaml"))
	assert.Equal(t, exitPass, code, errOut)
	assert.Contains(t, out, "lan3.yaml: ok (lan3: 1 segments, 3 nodes")
	assert.Contains(t, out, "nat-000.yaml: ok (nat-000: 3 segments, 5 nodes")

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("name: bad\nsegments: {lan: {}}\nnodes:\n  x:\n    role: host\n    colour: red\n    interfaces: [{name: eth0, segment: lna}]\n"), 0o644))
	code, _, errOut = lvslab("validate", bad)
	assert.Equal(t, exitInvalid, code)
	assert.Equal(t, bad+`:6:5: nodes.x.colour: unknown field "colour"`+"\n"+
		bad+`:7:40: nodes.x.interfaces[0].segment: unknown segment "lna" (did you mean "lan"?)`+"\n", errOut)

	code, out, _ = lvslab("validate", "--resolved", filepath.Join(testdata, "nat-000.yaml"))
	assert.Equal(t, exitPass, code)
	assert.Contains(t, out, "dip: 172.16.0.1")
	assert.Contains(t, out, "net.ipv4.ip_forward: \"1\"")
}

func TestList(t *testing.T) {
	code, out, _ := lvslab("--scenarios", testdata, "list")
	assert.Equal(t, exitPass, code)
	assert.Regexp(t, `(?m)^lan3\s+\S+lan3.yaml\s+Three hosts on one L2 segment`, out)
	assert.Regexp(t, `(?m)^nat-000\s+\S+nat-000.yaml\s+VS/NAT example of seed 000`, out)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("name: [\n"), 0o644))
	code, out, _ = lvslab("--scenarios", dir, "list")
	assert.Equal(t, exitInvalid, code)
	assert.Contains(t, out, "INVALID: "+filepath.Join(dir, "broken.yaml")+":1:1: yaml:")
}

func TestSchemaCommand(t *testing.T) {
	code, out, _ := lvslab("schema")
	assert.Equal(t, exitPass, code)
	want, err := spec.Schema()
	require.NoError(t, err)
	assert.Equal(t, string(want), out)
	var v map[string]any
	assert.NoError(t, json.Unmarshal([]byte(out), &v))
}

func TestUsage(t *testing.T) {
	code, _, errOut := lvslab("frobnicate")
	assert.Equal(t, exitInvalid, code)
	assert.Contains(t, errOut, `unknown command "frobnicate"`)
	code, _, _ = lvslab()
	assert.Equal(t, exitInvalid, code)
}

// The tests below start labs and need the real binary: the lab runs
// built-in services as `lvslab service ...`.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// lvslabBinary builds cmd/lvslab once per test run.
func lvslabBinary(t *testing.T) string {
	t.Helper()
	testenv.Netns(t)
	testenv.Tools(t, "curl", "go")
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("go toolchain: %w", err)
			return
		}
		binDir, buildErr = os.MkdirTemp("", "lvslab-test-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "lvslab")
		out, err := exec.Command(goBin, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

func labName(what string) string { return fmt.Sprintf("t%d-%s", os.Getpid(), what) }

type session struct {
	t        *testing.T
	bin      string
	stateDir string
}

func newSession(t *testing.T) *session {
	return &session{t: t, bin: lvslabBinary(t), stateDir: t.TempDir()}
}

func (s *session) cmd(ctx context.Context, args ...string) *exec.Cmd {
	all := append([]string{"--state-dir", s.stateDir, "--bin-dir", filepath.Dir(s.bin)}, args...)
	return exec.CommandContext(ctx, s.bin, all...)
}

// exec runs lvslab to completion.
func (s *session) run(args ...string) (int, string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := s.cmd(ctx, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	require.NoError(s.t, err, "%s", out)
	return 0, string(out)
}

func (s *session) leftovers(lab string) []string {
	s.t.Helper()
	left, err := topo.Leftovers(topo.Options{StateDir: s.stateDir}, lab)
	require.NoError(s.t, err)
	return left
}

// startUntil starts lvslab in the background and waits for a line of its
// output containing want.
func (s *session) startUntil(want string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	s.t.Helper()
	cmd := s.cmd(context.Background(), args...)
	var all bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	require.NoError(s.t, cmd.Start())
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		ok := false
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if !ok && strings.Contains(sc.Text(), want) {
				ok = true
				found <- true
			}
		}
		if !ok {
			found <- false
		}
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
	}()
	select {
	case ok := <-found:
		require.True(s.t, ok, "lvslab ended without %q:\n%s", want, all.String())
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		s.t.Fatalf("no %q after a minute:\n%s", want, all.String())
	}
	return cmd, &all
}

func (s *session) record(lab string) *topo.Record {
	s.t.Helper()
	rec, err := topo.FindLab(topo.Options{StateDir: s.stateDir}, lab)
	require.NoError(s.t, err)
	return rec
}

// waitReaped waits until a killed child of the test is gone entirely: not
// only dead (a zombie still answers kill 0, and lvslab takes a lab whose
// owner answers as in use) but reaped by its Wait.
func waitReaped(t *testing.T, pid int) {
	t.Helper()
	require.Eventually(t, func() bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }, 30*time.Second, 10*time.Millisecond, "lvslab %d survived SIGKILL", pid)
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil && !isZombie(pid) }

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

func TestUpExecDown(t *testing.T) {
	s := newSession(t)
	lab := labName("up")
	code, out := s.run("up", "--name", lab, filepath.Join(testdata, "lan3.yaml"))
	require.Equal(t, exitPass, code, out)
	t.Cleanup(func() { s.run("clean", lab) })
	assert.Contains(t, out, "lab "+lab+" is up: 1 segments, 3 nodes")
	assert.Regexp(t, `(?m)^web1\s+host\s+eth0 10.0.0.1/24\s+http-echo marker\s+lvsl-`+lab+`.web1$`, out)

	code, out = s.run("exec", "client", "--", "curl", "-s", "http://10.0.0.1/")
	assert.Equal(t, 0, code, out)
	assert.Equal(t, "web1\n", out)
	code, out = s.run("exec", "--lab", lab, "web2", "--", "cat", "etc/motd")
	assert.Equal(t, 0, code, out)
	assert.Equal(t, "web2\n", out, "exec runs in the node directory")
	code, _ = s.run("exec", "client", "--", "sh", "-c", "exit 3")
	assert.Equal(t, 3, code, "exec passes the exit code through")
	code, out = s.run("exec", "nobody", "--", "true")
	assert.Equal(t, exitInvalid, code)
	assert.Contains(t, out, `has no node "nobody" (nodes: client, web1, web2)`)

	code, out = s.run("status")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, lab+" (up, up)")

	code, out = s.run("up", "--name", lab, filepath.Join(testdata, "lan3.yaml"))
	assert.Equal(t, exitInvalid, code)
	assert.Contains(t, out, "is up (since")

	rec := s.record(lab)
	code, out = s.run("down", lab)
	require.Equal(t, 0, code, out)
	assert.Empty(t, s.leftovers(lab))
	for _, p := range rec.Processes {
		assert.Eventually(t, func() bool { return !alive(p.PID) }, 2*time.Second, 20*time.Millisecond, "%s/%s", p.Node, p.Name)
	}
	_, err := os.Stat(rec.RunDir)
	assert.True(t, errors.Is(err, os.ErrNotExist), "down removes the lab's files")
}

// TestCrashClean: lvslab up is SIGKILLed while it holds the lab; lvslab
// clean removes every namespace, link and process of it.
func TestCrashClean(t *testing.T) {
	s := newSession(t)
	lab := labName("crash")
	cmd, _ := s.startUntil("lab is up", "up", "--foreground", "--name", lab, filepath.Join(testdata, "lan3.yaml"))
	rec := s.record(lab)
	require.Len(t, rec.Processes, 4)
	for _, p := range rec.Processes {
		require.True(t, alive(p.PID), "%s/%s runs before the crash", p.Node, p.Name)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	// Its lock goes with it: wait for the exit, not for a while.
	waitReaped(t, cmd.Process.Pid)

	// The crash left everything behind ...
	left := s.leftovers(lab)
	assert.Contains(t, left, "namespace "+topo.NamespaceName(lab, "web1"))
	assert.Contains(t, left, "namespace "+topo.NamespaceName(lab, "lan"))
	code, out := s.run("status")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "owner gone (lvslab clean removes it)")

	// ... and clean removes it.
	code, out = s.run("clean", lab)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "removed lab "+lab)
	assert.Empty(t, s.leftovers(lab))
	for _, p := range rec.Processes {
		assert.Eventually(t, func() bool { return !alive(p.PID) }, 2*time.Second, 20*time.Millisecond, "%s/%s", p.Node, p.Name)
	}
	out2, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	require.NoError(t, err)
	assert.NotContains(t, string(out2), topo.Prefix, "no lab link in the root namespace")
	code, out = s.run("clean", lab)
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "nothing to clean")
}

// TestRunSweepsStale: a run killed mid-way leaves a stale lab that the next
// run of it removes by itself.
func TestRunSweepsStale(t *testing.T) {
	s := newSession(t)
	lab := labName("sweep")
	scen := filepath.Join(testdata, "lan3.yaml")
	cmd, _ := s.startUntil("msg=running", "-v", "run", "--duration", "1m", "--name", lab, "--out", t.TempDir(), scen)
	rec := s.record(lab)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	waitReaped(t, cmd.Process.Pid)
	require.NotEmpty(t, s.leftovers(lab))

	code, out := s.run("run", "--duration", "200ms", "--name", lab, "--out", t.TempDir(), scen)
	assert.Equal(t, exitPass, code, out)
	assert.Contains(t, out, "verdict: pass (exit 0)")
	for _, p := range rec.Processes {
		assert.False(t, alive(p.PID), "stale %s/%s (%d) survived", p.Node, p.Name, p.PID)
	}
	assert.Empty(t, s.leftovers(lab))
}

// TestRunVerdicts: exit 1 when an expectation fails, 2 when the machine
// lacks what the scenario needs or parts of it cannot be judged yet.
func TestRunVerdicts(t *testing.T) {
	s := newSession(t)
	dir := t.TempDir()
	base, err := os.ReadFile(filepath.Join(testdata, "lan3.yaml"))
	require.NoError(t, err)

	failing := filepath.Join(dir, "failing.yaml")
	require.NoError(t, os.WriteFile(failing, append(base, []byte(`  - name: marker-gone
    process: {target: web1/marker, state: exited}
  - name: documented-failure
    xfail: web2 keeps its address, this shows the xfail path
    state: {addr: {node: web2, lacks: 10.0.0.2}}
`)...), 0o644))
	out := filepath.Join(dir, "out")
	code, stdout := s.run("run", "--duration", "200ms", "--name", labName("fail"), "--out", out, failing)
	assert.Equal(t, exitFail, code, stdout)
	assert.Contains(t, stdout, "PASS          web1-echo-running")
	assert.Contains(t, stdout, "FAIL          marker-gone: web1/marker running")
	assert.Contains(t, stdout, "XFAIL         documented-failure")
	var res map[string]any
	b, err := os.ReadFile(filepath.Join(out, "result.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &res))
	assert.Equal(t, "fail", res["verdict"])
	_, err = os.Stat(filepath.Join(out, "resolved.yaml"))
	assert.NoError(t, err)
	_, err = os.Stat(filepath.Join(out, "nodes", "web1", "http-echo.log"))
	assert.NoError(t, err, "node logs are in the report directory")

	incomplete := filepath.Join(dir, "incomplete.yaml")
	// A scenario that needs a kernel feature this machine lacks, with no
	// userspace fallback, is refused with the reason (exit 2), never run.
	if ok, _ := runner.DetectFeatures("").Has("ip_vs"); !ok {
		require.NoError(t, os.WriteFile(incomplete, append([]byte("requires: [ip_vs]\n"), base...), 0o644))
		code, stdout = s.run("run", "--duration", "200ms", "--name", labName("inc"), "--out", filepath.Join(dir, "inc"), incomplete)
		assert.Equal(t, exitInvalid, code, stdout)
		assert.Contains(t, stdout, "the kernel lacks ip_vs")
	}

	// nat-000 needs lvsd, lvsadm and lvsrs; the test's bin directory has
	// only lvslab.
	code, stdout = s.run("run", "--name", labName("env"), "--out", filepath.Join(dir, "env"), filepath.Join(testdata, "nat-000.yaml"))
	assert.Equal(t, exitInvalid, code, stdout)
	assert.Contains(t, stdout, "error: environment: lvsd is not built (make build puts it in bin/)")

	for _, l := range []string{labName("fail"), labName("inc"), labName("env")} {
		assert.Empty(t, s.leftovers(l))
	}
}

// TestWindowedState: state expectations with windows are sampled live — an
// address added by the timeline at 300 ms must appear within 1 s of that
// event, must not be there before it, and one that never appears fails.
func TestWindowedState(t *testing.T) {
	s := newSession(t)
	dir := t.TempDir()
	base, err := os.ReadFile(filepath.Join(testdata, "lan3.yaml"))
	require.NoError(t, err)
	f := filepath.Join(dir, "window.yaml")
	require.NoError(t, os.WriteFile(f, append(base, []byte(`  - name: appears-after-add
    after: add-addr
    within: 1s
    state: {addr: {node: web1, dev: eth0, has: 10.0.0.51}}
  - name: absent-before
    during: [0s, 250ms]
    state: {addr: {node: web1, dev: eth0, lacks: 10.0.0.51}}
  - name: never-appears
    xfail: nobody adds 10.0.0.52, so this shows a failing window
    after: add-addr
    within: 500ms
    state: {addr: {node: web1, dev: eth0, has: 10.0.0.52}}
timeline:
  - {name: add-addr, at: 300ms, fault: exec, target: web1, cmd: [ip, addr, add, 10.0.0.51/24, dev, eth0]}
`)...), 0o644))
	code, out := s.run("run", "--duration", "1500ms", "--name", labName("win"), "--out", filepath.Join(dir, "out"), f)
	assert.Equal(t, exitPass, code, out)
	assert.Contains(t, out, "PASS          appears-after-add: true")
	assert.Contains(t, out, "PASS          absent-before: held in")
	assert.Contains(t, out, "XFAIL         never-appears: never true")
	assert.Empty(t, s.leftovers(labName("win")))
}
