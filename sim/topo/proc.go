package topo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"lvslab/sim/spec"
)

// Processes are started as `ip netns exec <namespace> <argv>`: iproute2
// enters the namespace, gives the process a private mount namespace with a
// /sys that shows the node's interfaces (lvsrs and ethtool look there),
// then execs argv in the same PID. Forking from a Go thread switched into
// the namespace would save that exec, but would give a stale /sys and ties
// Pdeathsig to a thread the runtime may retire (golang/go#27505). Each
// process leads its own process group, so stopping it stops its children;
// its output goes to a file (never a pipe), so it keeps running when an
// `lvslab up` exits.

// ProcState is what became of a process.
type ProcState string

// The process states.
const (
	ProcNotStarted ProcState = "not-started"
	ProcRunning    ProcState = "running"
	ProcExited     ProcState = "exited"
	ProcSignaled   ProcState = "signaled"
)

// ProcStatus is a snapshot of a process.
type ProcStatus struct {
	Node     string
	Name     string
	PID      int
	State    ProcState
	ExitCode int    // for exited
	Signal   string // for signaled
	Started  time.Time
	Ended    time.Time
	Log      string // path of its output
}

func (s ProcStatus) String() string {
	switch s.State {
	case ProcExited:
		return fmt.Sprintf("%s/%s exited %d", s.Node, s.Name, s.ExitCode)
	case ProcSignaled:
		return fmt.Sprintf("%s/%s killed by %s", s.Node, s.Name, s.Signal)
	}
	return fmt.Sprintf("%s/%s %s", s.Node, s.Name, s.State)
}

// Process is one process of the lab.
type Process struct {
	Node string
	Name string

	lab         *Lab
	node        *Node
	argv        []string
	env         []string
	oneshot     bool
	ready       *spec.Ready
	mayExit     bool // exiting 0 after start is fine (lvsrs tun with kernel ipip)
	stopSignal  syscall.Signal
	stopTimeout time.Duration
	autostart   bool
	after       []string
	logPath     string
	specPath    string // for messages: nodes.x.processes[i]

	mu     sync.Mutex
	status ProcStatus
	done   chan struct{}
}

// ProcessError is a process that failed to start, become ready or (for a
// oneshot) succeed: the lab did not come up as the scenario says.
type ProcessError struct {
	Node, Name string
	Err        error
}

func (e *ProcessError) Error() string {
	return fmt.Sprintf("process %s/%s: %v", e.Node, e.Name, e.Err)
}

func (e *ProcessError) Unwrap() error { return e.Err }

// EnvError is a problem of the machine rather than of the scenario: a
// missing program, no permission for namespaces.
type EnvError struct{ Err error }

func (e *EnvError) Error() string { return e.Err.Error() }
func (e *EnvError) Unwrap() error { return e.Err }

// Status is a snapshot of the process.
func (p *Process) Status() ProcStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Processes lists every process of the lab in start order.
func (l *Lab) Processes() []*Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Process(nil), l.procs...)
}

// Process returns node/name, or nil.
func (l *Lab) Process(node, name string) *Process {
	for _, p := range l.Processes() {
		if p.Node == node && p.Name == name {
			return p
		}
	}
	return nil
}

func roleRank(r spec.Role) int {
	switch r {
	case spec.RoleRealServer:
		return 0
	case spec.RoleHost:
		return 1
	case spec.RoleRouter:
		return 2
	case spec.RoleDirector:
		return 3
	}
	return 4 // clients last: they talk to everything else
}

// program finds a program in the bin directory, then in PATH.
func (l *Lab) program(name string) (string, error) {
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("program %s: %w", name, unwrapPath(err))
		}
		return name, nil
	}
	if l.opts.BinDir != "" {
		p := filepath.Join(l.opts.BinDir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		where := "PATH"
		if l.opts.BinDir != "" {
			where = l.opts.BinDir + " or PATH"
		}
		return "", fmt.Errorf("program %s not found in %s", name, where)
	}
	return p, nil
}

// plan makes the lab's processes from the resolved spec, in start order.
func (l *Lab) plan() ([]*Process, error) {
	s := l.Spec
	var procs []*Process
	nodes := slices.Clone(l.nodes)
	slices.SortStableFunc(nodes, func(a, b *Node) int { return roleRank(a.spec.Role) - roleRank(b.spec.Role) })
	for _, n := range nodes {
		sn := n.spec
		base := "nodes." + sn.Name
		mk := func(name, specPath string) *Process {
			return &Process{
				Node: sn.Name, Name: name, lab: l, node: n, autostart: true,
				stopSignal: syscall.SIGTERM, stopTimeout: 2 * time.Second,
				logPath: filepath.Join(n.Dir, name+".log"), specPath: specPath,
				status: ProcStatus{Node: sn.Name, Name: name, State: ProcNotStarted, Log: filepath.Join(n.Dir, name+".log")},
			}
		}
		if rs := sn.RealServer; spec.RunsLVSRS(sn) {
			p := mk(spec.ProcLVSRS, base+".realserver")
			stateDir := filepath.Join(n.Dir, "lvsrs")
			p.argv = []string{spec.ProcLVSRS, "start", "--mode", string(rs.Mode), "--state-dir", stateDir}
			if len(rs.VIPs) > 0 {
				vips := make([]string, len(rs.VIPs))
				for i, v := range rs.VIPs {
					vips[i] = v.String()
				}
				p.argv = append(p.argv, "--vip", strings.Join(vips, ","))
			}
			if rs.Iface != "" {
				p.argv = append(p.argv, "--iface", rs.Iface)
			}
			if rs.DIP.IsValid() {
				p.argv = append(p.argv, "--dip", rs.DIP.String())
			}
			if rs.Label != "" {
				p.argv = append(p.argv, "--label", rs.Label)
			}
			if rs.Mode == spec.ModeTUN {
				// Without kernel ipip, lvsrs decapsulates in the
				// foreground until signalled; with it, it exits 0.
				p.mayExit = true
				p.ready = &spec.Ready{Command: []string{spec.ProcLVSRS, "status", "--state-dir", stateDir},
					Timeout: spec.Duration(10 * time.Second), Interval: spec.Duration(100 * time.Millisecond)}
			} else {
				p.oneshot = true
			}
			procs = append(procs, p)
		}
		for i, sv := range sn.Services {
			p := mk(sv.ServiceName(), fmt.Sprintf("%s.services[%d]", base, i))
			p.argv = []string{l.opts.Self, "service", string(sv.Kind), "--listen", sv.Listen.String(), "--identity", sv.Identity}
			if sv.TOA {
				p.argv = append(p.argv, "--toa")
			}
			if hasControls(sv.Kind) {
				ctl, err := writeControls(n.Dir, sv)
				if err != nil {
					return nil, fmt.Errorf("node %s: %w", sn.Name, err)
				}
				p.argv = append(p.argv, "--control", ctl)
			}
			p.ready = serviceReady(sv)
			procs = append(procs, p)
		}
		if s.RunsLVSD(sn) && sn.Director != nil {
			d := sn.Director
			p := mk(spec.ProcLVSD, base+".director")
			bin := d.Binary
			if bin == "" {
				bin = spec.ProcLVSD
			}
			p.argv = []string{bin, "-i", strings.Join(d.Interfaces, ",")}
			if len(d.Rules) > 0 || d.RulesFile != "" {
				rules, err := writeRules(s, d, n.Dir)
				if err != nil {
					return nil, fmt.Errorf("node %s: %w", sn.Name, err)
				}
				p.argv = append(p.argv, "-R", rules)
			}
			sock := "@lvsd"
			if d.Socket != "" {
				p.argv = append(p.argv, "--socket", d.Socket)
				sock = d.Socket
				if !strings.HasPrefix(sock, "@") && !strings.HasPrefix(sock, "/") {
					sock = "@" + sock
				}
			}
			p.argv = append(p.argv, d.Flags...)
			// Every lvsd of a lab is scrapeable at the same address; a
			// binary of the scenario's own may not know the flag.
			if (d.Binary == "" || d.Binary == spec.ProcLVSD) && !hasMetricsFlag(d.Flags) {
				p.argv = append(p.argv, "--metrics", spec.MetricsAddr)
			}
			p.ready = &spec.Ready{Unix: sock, Timeout: spec.Duration(10 * time.Second), Interval: spec.Duration(50 * time.Millisecond)}
			procs = append(procs, p)
			if s.RunsKeepalived(sn) {
				kp, err := keepalivedProcess(mk(spec.ProcKeepalived, base+".director.keepalived"), s, d, n.Dir, sock)
				if err != nil {
					return nil, fmt.Errorf("node %s: %w", sn.Name, err)
				}
				procs = append(procs, kp)
			}
		}
		if s.RunsNodeKeepalived(sn) {
			sock := "@lvsd"
			if d := sn.Director; d != nil && d.Socket != "" {
				sock = d.Socket
				if !strings.HasPrefix(sock, "@") && !strings.HasPrefix(sock, "/") {
					sock = "@" + sock
				}
			}
			p, err := nodeKeepalivedProcess(mk(spec.ProcNodeKeepalived, base+".keepalived"), s, sn.Keepalived, n.Dir, sock)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", sn.Name, err)
			}
			procs = append(procs, p)
		}
		if sn.FRR != nil {
			ps, err := frrProcesses(mk, s, l.Spec.Name, sn, base)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", sn.Name, err)
			}
			procs = append(procs, ps...)
		}
		for i, pr := range sn.Processes {
			p := mk(pr.Name, fmt.Sprintf("%s.processes[%d]", base, i))
			if pr.Shell != "" {
				p.argv = []string{"/bin/sh", "-c", pr.Shell}
			} else {
				p.argv = slices.Clone(pr.Cmd)
			}
			for k, v := range pr.Env {
				p.env = append(p.env, k+"="+v)
			}
			slices.Sort(p.env)
			p.oneshot = pr.Oneshot
			p.ready = pr.Ready
			p.autostart = pr.Autostart == nil || *pr.Autostart
			if sig, ok := signalByName(string(pr.StopSignal)); ok {
				p.stopSignal = sig
			}
			if pr.StopTimeout != 0 {
				p.stopTimeout = pr.StopTimeout.D()
			}
			for _, a := range pr.After {
				if !strings.Contains(a, "/") {
					a = sn.Name + "/" + a
				}
				p.after = append(p.after, a)
			}
			// A director's own processes (a mon-like watcher calling
			// lvsadm) need its lvsd.
			if s.RunsLVSD(sn) {
				p.after = append(p.after, sn.Name+"/"+spec.ProcLVSD)
			}
			procs = append(procs, p)
		}
	}
	return orderProcesses(procs)
}

// orderProcesses sorts by after: edges, otherwise keeping the given order.
func orderProcesses(procs []*Process) ([]*Process, error) {
	index := map[string]int{}
	for i, p := range procs {
		index[p.Node+"/"+p.Name] = i
	}
	placed := make([]bool, len(procs))
	var out []*Process
	for len(out) < len(procs) {
		progress := false
		for i, p := range procs {
			if placed[i] {
				continue
			}
			ready := true
			for _, a := range p.after {
				j, ok := index[a]
				if !ok {
					return nil, fmt.Errorf("process %s/%s waits for unknown %s", p.Node, p.Name, a)
				}
				ready = ready && placed[j]
			}
			if ready {
				placed[i] = true
				out = append(out, p)
				progress = true
				break // restart from the front: keep the given order
			}
		}
		if !progress {
			return nil, errors.New("processes wait for each other in a cycle")
		}
	}
	return out, nil
}

func serviceReady(sv spec.Service) *spec.Ready {
	r := &spec.Ready{Timeout: spec.Duration(10 * time.Second), Interval: spec.Duration(20 * time.Millisecond)}
	switch sv.Kind {
	case spec.ServiceUDPEcho, spec.ServiceDnsmasq:
		r.Log = spec.Regexp{Regexp: serviceListening}
	default:
		host := "127.0.0.1"
		if a := sv.Listen.Addr; a.IsValid() && !a.IsUnspecified() {
			host = a.String()
		}
		r.TCP = net.JoinHostPort(host, strconv.Itoa(int(sv.Listen.Port)))
	}
	return r
}

// writeRules puts a director's rules (rules: then rules_file:) into one
// ipvsadm -R file for lvsd -R.
func writeRules(s *spec.Spec, d *spec.Director, dir string) (string, error) {
	var b bytes.Buffer
	b.WriteString("# written by lvslab from " + s.File + "\n")
	for _, r := range d.Rules {
		b.WriteString(r + "\n")
	}
	if d.RulesFile != "" {
		data, err := os.ReadFile(s.Abs(d.RulesFile))
		if err != nil {
			return "", fmt.Errorf("rules file: %w", err)
		}
		b.Write(data)
	}
	path := filepath.Join(dir, "etc", "lvsd.rules")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}

func signalByName(name string) (syscall.Signal, bool) {
	m := map[string]syscall.Signal{
		"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT,
		"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "QUIT": syscall.SIGQUIT,
	}
	s, ok := m[strings.TrimPrefix(strings.ToUpper(name), "SIG")]
	return s, ok
}

// SignalByName maps TERM, SIGKILL, ... to the signal.
func SignalByName(name string) (syscall.Signal, bool) { return signalByName(name) }

// checkPrograms finds every program the processes will run before anything
// is built, so a missing binary is an environment error up front.
func (l *Lab) checkPrograms() error {
	if _, err := exec.LookPath("ip"); err != nil {
		return &EnvError{errors.New("iproute2's ip is needed to start processes in namespaces")}
	}
	var errs []error
	check := func(name, specPath string) {
		if name == "" || strings.Contains(name, "${") {
			return
		}
		if _, err := l.program(name); err != nil {
			errs = append(errs, l.Spec.Errorf(specPath, "%v", err))
		}
	}
	for _, n := range l.Spec.Nodes {
		base := "nodes." + n.Name
		if spec.RunsLVSRS(&n) {
			check(spec.ProcLVSRS, base+".realserver")
		}
		if l.Spec.RunsLVSD(&n) && n.Director != nil {
			check(n.Director.Binary, base+".director")
		}
		if l.Spec.RunsKeepalived(&n) {
			check(spec.ProcKeepalived, base+".director.keepalived")
		}
		if l.Spec.RunsNodeKeepalived(&n) {
			check(string(n.Keepalived.Impl()), base+".keepalived")
		}
		for i, p := range n.Processes {
			if len(p.Cmd) > 0 {
				check(p.Cmd[0], fmt.Sprintf("%s.processes[%d].cmd", base, i))
			}
			if p.Ready != nil && len(p.Ready.Command) > 0 {
				check(p.Ready.Command[0], fmt.Sprintf("%s.processes[%d].ready.command", base, i))
			}
		}
	}
	if len(errs) > 0 {
		return &EnvError{errors.Join(errs...)}
	}
	return nil
}

// expandRuntime fills ${node}, ${node_dir}, ${run_dir}, ${lab}, ${bin_dir}.
func (p *Process) expandRuntime(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return strings.NewReplacer(
		"${node}", p.Node, "${node_dir}", p.node.Dir, "${run_dir}", p.lab.opts.RunDir,
		"${lab}", p.lab.Spec.Name, "${bin_dir}", p.lab.opts.BinDir,
	).Replace(s)
}

// environ is the environment of lab processes.
func (l *Lab) environ(n *Node, extra []string) []string {
	env := os.Environ()
	path := os.Getenv("PATH")
	if l.opts.BinDir != "" {
		path = l.opts.BinDir + ":" + path
	}
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") })
	env = append(env, "PATH="+path, "LVSLAB_LAB="+l.Spec.Name, "LVSLAB_NODE="+n.Name,
		"LVSLAB_NODE_DIR="+n.Dir, "LVSLAB_RUN_DIR="+l.opts.RunDir, "LVSLAB_NAMESPACE="+n.ns.Name())
	return append(env, extra...)
}

// nsCommand is argv run inside the node's namespace.
func (l *Lab) nsCommand(ctx context.Context, n *Node, argv []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.ns.Name()}, argv...)...)
	cmd.Dir = n.Dir
	cmd.Env = l.environ(n, nil)
	return cmd
}

// Command runs argv in the node (its output is the caller's to wire).
func (l *Lab) Command(ctx context.Context, node string, argv ...string) (*exec.Cmd, error) {
	n := l.Node(node)
	if n == nil {
		return nil, fmt.Errorf("lab %s has no node %q", l.Spec.Name, node)
	}
	return l.nsCommand(ctx, n, argv), nil
}

// startAll starts the autostart processes in order, each ready before the
// next.
func (l *Lab) startAll(ctx context.Context) error {
	procs, err := l.plan()
	if err != nil {
		return err
	}
	for i := range l.Spec.Nodes {
		if sn := &l.Spec.Nodes[i]; sn.FRR != nil {
			if err := prepareFRR(l.Spec, l.Spec.Name, sn); err != nil {
				return err
			}
		}
	}
	l.mu.Lock()
	l.procs = procs
	l.mu.Unlock()
	for _, p := range procs {
		if !p.autostart {
			continue
		}
		if err := p.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Start starts the process (again, if it ended) and waits until it is
// ready, or, for a oneshot, until it exited 0.
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.status.State == ProcRunning {
		p.mu.Unlock()
		return &ProcessError{p.Node, p.Name, errors.New("already running")}
	}
	p.mu.Unlock()
	if err := p.start(); err != nil {
		return &ProcessError{p.Node, p.Name, err}
	}
	if p.oneshot {
		timeout := 30 * time.Second
		select {
		case <-p.done:
		case <-time.After(timeout):
			return &ProcessError{p.Node, p.Name, fmt.Errorf("oneshot still running after %s%s", timeout, p.tail())}
		case <-ctx.Done():
			return ctx.Err()
		}
		st := p.Status()
		if st.State != ProcExited || st.ExitCode != 0 {
			return &ProcessError{p.Node, p.Name, fmt.Errorf("%s%s", describeEnd(st), p.tail())}
		}
		return nil
	}
	if err := p.waitReady(ctx); err != nil {
		return &ProcessError{p.Node, p.Name, err}
	}
	return nil
}

func describeEnd(st ProcStatus) string {
	if st.State == ProcSignaled {
		return "killed by " + st.Signal
	}
	return fmt.Sprintf("exited with status %d", st.ExitCode)
}

func (p *Process) start() error {
	if err := os.MkdirAll(p.node.Dir, 0o755); err != nil {
		return err
	}
	argv := make([]string, len(p.argv))
	for i, a := range p.argv {
		argv[i] = p.expandRuntime(a)
	}
	prog, err := p.lab.program(argv[0])
	if err != nil {
		return err
	}
	argv[0] = prog
	logf, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "# lvslab %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	env := make([]string, len(p.env))
	for i, e := range p.env {
		env[i] = p.expandRuntime(e)
	}
	// Not CommandContext: the process outlives the build's context and is
	// stopped by Close.
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.node.ns.Name()}, argv...)...)
	cmd.Dir = p.node.Dir
	cmd.Env = p.lab.environ(p.node, env)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.done = done
	p.status = ProcStatus{Node: p.Node, Name: p.Name, PID: cmd.Process.Pid, State: ProcRunning, Started: time.Now(), Log: p.logPath}
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.status.Ended = time.Now()
		p.status.State = ProcExited
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.status.State = ProcSignaled
				p.status.Signal = strings.TrimPrefix(strings.ToUpper(unixSignalName(ws.Signal())), "SIG")
			} else {
				p.status.ExitCode = ee.ExitCode()
			}
		}
		p.mu.Unlock()
		close(done)
	}()
	l := p.lab
	l.mu.Lock()
	l.rec.Processes = append(l.rec.Processes, ProcRecord{Node: p.Node, Name: p.Name, PID: cmd.Process.Pid, Start: processStart(cmd.Process.Pid)})
	err = l.reg.save(l.rec)
	l.mu.Unlock()
	l.log.Debug("process started", "node", p.Node, "process", p.Name, "pid", cmd.Process.Pid)
	return err
}

// tail is the end of the process's output, for error messages.
func (p *Process) tail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = slices.DeleteFunc(lines, func(s string) bool { return strings.HasPrefix(s, "# lvslab ") })
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	if len(lines) == 0 {
		return ""
	}
	return "; output (" + p.logPath + "):\n    " + strings.Join(lines, "\n    ")
}

func (p *Process) waitReady(ctx context.Context) error {
	r := p.ready
	if r == nil {
		// No check given: alive after a short while is all we can say.
		select {
		case <-p.done:
			return p.endedEarly()
		case <-time.After(50 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	timeout, interval := r.Timeout.D(), r.Interval.D()
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	if interval == 0 {
		interval = 50 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = p.check(ctx, r); last == nil {
			return nil
		}
		select {
		case <-p.done:
			if st := p.Status(); p.mayExit && st.State == ProcExited && st.ExitCode == 0 {
				return nil
			}
			return p.endedEarly()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %v%s", timeout, last, p.tail())
		}
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *Process) endedEarly() error {
	st := p.Status()
	if p.mayExit && st.State == ProcExited && st.ExitCode == 0 {
		return nil
	}
	return fmt.Errorf("%s before it was ready%s", describeEnd(st), p.tail())
}

// check runs one readiness probe.
func (p *Process) check(ctx context.Context, r *spec.Ready) error {
	switch {
	case r.TCP != "":
		return p.node.Do(func() error {
			c, err := net.DialTimeout("tcp", r.TCP, 250*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
	case r.Unix != "":
		return p.node.Do(func() error {
			c, err := net.DialTimeout("unix", p.expandRuntime(r.Unix), 250*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
	case r.File != "":
		_, err := os.Stat(NodePath(p.node.Dir, p.expandRuntime(r.File)))
		return err
	case len(r.Command) > 0:
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		argv := make([]string, len(r.Command))
		for i, a := range r.Command {
			argv[i] = p.expandRuntime(a)
		}
		if prog, err := p.lab.program(argv[0]); err == nil {
			argv[0] = prog
		}
		out, err := p.lab.nsCommand(cctx, p.node, argv).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(r.Command, " "), err, bytes.TrimSpace(out))
		}
		return nil
	case r.Log.Regexp != nil:
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			return err
		}
		if !r.Log.Match(b) {
			return fmt.Errorf("output does not match %q yet", r.Log.String())
		}
		return nil
	}
	return nil
}

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) error {
	st := p.Status()
	if st.State != ProcRunning {
		return fmt.Errorf("process %s/%s is %s", p.Node, p.Name, st.State)
	}
	if err := syscall.Kill(-st.PID, sig); err != nil {
		return fmt.Errorf("signal %s/%s: %w", p.Node, p.Name, err)
	}
	return nil
}

// Done is closed when the current run of the process ends (nil if it never
// started).
func (p *Process) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// stop sends the stop signal, waits, then kills the group.
func (p *Process) stop(ctx context.Context) {
	st := p.Status()
	done := p.Done()
	if st.State != ProcRunning || done == nil {
		return
	}
	_ = syscall.Kill(-st.PID, p.stopSignal)
	// A process frozen by a fault cannot act on TERM until continued.
	_ = syscall.Kill(-st.PID, syscall.SIGCONT)
	select {
	case <-done:
	case <-time.After(p.stopTimeout):
	case <-ctx.Done():
	}
	// The leader may be gone while its group lives on.
	_ = syscall.Kill(-st.PID, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.lab.log.Warn("process does not die", "node", p.Node, "process", p.Name, "pid", st.PID)
	}
}

// serviceListening matches the line a built-in service prints once it
// listens (see sim/service).
var serviceListening = regexp.MustCompile(`(?m)^lvslab service .* listening on `)

func unixSignalName(s syscall.Signal) string { return unix.SignalName(s) }

// hasMetricsFlag reports whether lvsd flags already choose a metrics
// address (Go's flag package takes -metrics and --metrics, with = or not).
func hasMetricsFlag(flags []string) bool {
	for _, f := range flags {
		name, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if strings.HasPrefix(f, "-") && name == "metrics" {
			return true
		}
	}
	return false
}

// unwrapPath drops an *os.PathError's path where the message names it.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
