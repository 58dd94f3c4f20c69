package fault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"lvslab/internal/netns"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// labActor carries out timeline entries on a built lab.
type labActor struct {
	lab      *topo.Lab
	netnsDir string
	log      *slog.Logger
	netem    bool  // delay by netem; without it, by the userspace wire
	seed     int64 // the scenario's seed, for the wire's jitter

	mu    sync.Mutex
	segs  map[string]*segmentNS // by segment name, opened on first use
	roots map[rootKey]string    // root qdiscs we installed -> event name

	// The userspace delay wires in place and the filter chains on bridge
	// ports' ingress hooks, which a wire on the port mirrors (wire.go).
	wireMu  sync.Mutex
	wires   map[rootKey]wireOwner      // by bridge port
	ingress map[rootKey][]ingressChain // by bridge port
	// nftMu orders the runs of nft that rewrite a wire's mirror table.
	nftMu sync.Mutex
	// wireFault, set by tests only, makes building a wire fail at the
	// step it names, to show the rollback.
	wireFault func(step string) error
}

func newLabActor(lab *topo.Lab, opts Options, netem bool, seed int64, log *slog.Logger) *labActor {
	return &labActor{lab: lab, netnsDir: opts.NetnsDir, log: log, netem: netem, seed: seed,
		segs: map[string]*segmentNS{}, roots: map[rootKey]string{},
		wires: map[rootKey]wireOwner{}, ingress: map[rootKey][]ingressChain{}}
}

func (a *labActor) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.segs {
		_ = s.Close()
	}
	a.segs = map[string]*segmentNS{}
}

func (a *labActor) apply(ctx context.Context, e *spec.Event) (undoFunc, string, error) {
	switch e.Fault {
	case spec.FaultProcessKill, spec.FaultProcessStop, spec.FaultProcessCont,
		spec.FaultProcessStart, spec.FaultProcessRestart:
		return a.process(ctx, e)
	case spec.FaultLinkDown:
		return a.linkDown(e)
	case spec.FaultLinkUp:
		return a.linkUp(e)
	case spec.FaultBlackhole, spec.FaultLoss, spec.FaultPartition:
		return a.filter(ctx, e)
	case spec.FaultRate:
		return a.qdisc(e)
	case spec.FaultDelay:
		return a.delay(ctx, e)
	case spec.FaultSysctl:
		return a.sysctl(e)
	case spec.FaultARPFlush:
		return a.arpFlush(e)
	case spec.FaultNeighWrong:
		return a.neighWrong(e)
	case spec.FaultExec:
		return a.exec(ctx, e)
	case spec.FaultServiceSet:
		return a.serviceSet(e)
	case spec.FaultNodeKill:
		return a.nodeKill(ctx, e)
	}
	return nil, "", fmt.Errorf("unknown fault %q", e.Fault)
}

// checkTargets makes sure everything an entry names exists in the lab.
func checkTargets(lab *topo.Lab, e *spec.Event) error {
	node := func(name string) error {
		if lab.Node(name) == nil {
			return fmt.Errorf("no node %q in the lab", name)
		}
		return nil
	}
	iface := func(ref string) error {
		n, ifc, ok := spec.SplitIfaceRef(ref)
		if !ok {
			return node(ref)
		}
		if err := node(n); err != nil {
			return err
		}
		if sn := lab.Spec.Node(n); sn == nil || sn.Interface(ifc) == nil {
			return fmt.Errorf("node %s has no interface %q", n, ifc)
		}
		return nil
	}
	proc := func(ref string) error {
		n, p, ok := spec.SplitProcessRef(ref)
		if !ok {
			return fmt.Errorf("%q is not node/process", ref)
		}
		if lab.Process(n, p) == nil {
			return fmt.Errorf("no process %s in the lab", ref)
		}
		return nil
	}
	var errs []error
	switch e.Fault {
	case spec.FaultProcessKill, spec.FaultProcessStop, spec.FaultProcessCont,
		spec.FaultProcessStart, spec.FaultProcessRestart, spec.FaultServiceSet:
		errs = append(errs, proc(e.Target))
	case spec.FaultNodeKill:
		errs = append(errs, node(e.Target))
	case spec.FaultBlackhole, spec.FaultLoss:
		if e.Segment != "" {
			if lab.Spec.Segment(e.Segment) == nil {
				errs = append(errs, fmt.Errorf("no segment %q in the lab", e.Segment))
			}
		} else {
			errs = append(errs, iface(e.Target))
		}
	case spec.FaultPartition:
		if len(e.Between) != 2 {
			errs = append(errs, errors.New("partition needs two sides"))
		}
		for _, side := range e.Between {
			errs = append(errs, iface(side))
		}
	default:
		errs = append(errs, iface(e.Target))
	}
	if w := e.When; w != nil {
		if w.Log != nil {
			errs = append(errs, proc(w.Log.Process))
		}
		if w.State != nil {
			errs = append(errs, node(stateNode(w.State)))
		}
	}
	return errors.Join(errs...)
}

// process faults go through topo's process handles: signals go to the
// process group, start waits for readiness as at build time.
func (a *labActor) process(ctx context.Context, e *spec.Event) (undoFunc, string, error) {
	n, name, _ := spec.SplitProcessRef(e.Target)
	p := a.lab.Process(n, name)
	if p == nil {
		return nil, "", fmt.Errorf("no process %s", e.Target)
	}
	pid := p.Status().PID
	switch e.Fault {
	case spec.FaultProcessKill:
		sigName := string(e.Signal)
		if sigName == "" {
			sigName = "KILL"
		}
		sig, ok := topo.SignalByName(sigName)
		if !ok {
			return nil, "", fmt.Errorf("unknown signal %q", sigName)
		}
		if err := p.Signal(sig); err != nil {
			return nil, "", err
		}
		return nil, fmt.Sprintf("SIG%s to %s (pid %d)", strings.TrimPrefix(strings.ToUpper(sigName), "SIG"), e.Target, pid), nil
	case spec.FaultProcessStop:
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			return nil, "", err
		}
		undo := func(context.Context) error {
			// A process restarted or ended meanwhile is not ours to
			// continue.
			if st := p.Status(); st.State != topo.ProcRunning || st.PID != pid {
				return nil
			}
			return p.Signal(syscall.SIGCONT)
		}
		return undo, fmt.Sprintf("SIGSTOP to %s (pid %d): frozen", e.Target, pid), nil
	case spec.FaultProcessCont:
		if err := p.Signal(syscall.SIGCONT); err != nil {
			return nil, "", err
		}
		return nil, fmt.Sprintf("SIGCONT to %s (pid %d)", e.Target, pid), nil
	case spec.FaultProcessStart:
		if err := p.Start(ctx); err != nil {
			return nil, "", err
		}
		return nil, fmt.Sprintf("started %s (pid %d), ready", e.Target, p.Status().PID), nil
	case spec.FaultProcessRestart:
		if err := stopProcess(ctx, p); err != nil {
			return nil, "", err
		}
		if err := p.Start(ctx); err != nil {
			return nil, "", err
		}
		return nil, fmt.Sprintf("restarted %s (pid %d -> %d), ready", e.Target, pid, p.Status().PID), nil
	}
	return nil, "", fmt.Errorf("not a process fault: %s", e.Fault)
}

// nodeKill signals every running process of a node at once, as a crash
// ends them: the whole director (lvsd and its keepalived), not one of its
// daemons. With KILL it waits until they are gone, so what follows meets
// a node with nothing running. Its undo (for:) starts them again in the
// lab's start order, each waiting for readiness, as the node's boot would.
// The kernel state stays: addresses a daemon added (keepalived's VIPs)
// remain, as after a kill -9 of keepalived in production.
func (a *labActor) nodeKill(ctx context.Context, e *spec.Event) (undoFunc, string, error) {
	sigName := string(e.Signal)
	if sigName == "" {
		sigName = "KILL"
	}
	sig, ok := topo.SignalByName(sigName)
	if !ok {
		return nil, "", fmt.Errorf("unknown signal %q", sigName)
	}
	var hit []*topo.Process
	var parts []string
	for _, p := range a.lab.Processes() {
		if p.Node != e.Target {
			continue
		}
		st := p.Status()
		if st.State != topo.ProcRunning {
			continue
		}
		if err := p.Signal(sig); err != nil && p.Status().State == topo.ProcRunning {
			return nil, "", fmt.Errorf("%s/%s: %w", p.Node, p.Name, err)
		}
		hit = append(hit, p)
		parts = append(parts, fmt.Sprintf("%s (pid %d)", p.Name, st.PID))
	}
	if len(hit) == 0 {
		return nil, "", fmt.Errorf("node %s runs no process", e.Target)
	}
	if sig == syscall.SIGKILL {
		for _, p := range hit {
			select {
			case <-p.Done():
			case <-time.After(5 * time.Second):
				return nil, "", fmt.Errorf("%s/%s does not end after KILL", p.Node, p.Name)
			case <-ctx.Done():
				return nil, "", ctx.Err()
			}
		}
	}
	detail := fmt.Sprintf("SIG%s to every process of %s: %s", strings.TrimPrefix(strings.ToUpper(sigName), "SIG"), e.Target, strings.Join(parts, ", "))
	if e.For == 0 {
		// A crash stays one: nothing to start again at the end of the run.
		return nil, detail, nil
	}
	undo := func(ctx context.Context) error {
		var errs []error
		for _, p := range hit {
			if p.Status().State == topo.ProcRunning {
				continue // started again meanwhile (process.start)
			}
			if err := p.Start(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s/%s: %w", p.Node, p.Name, err))
			}
		}
		return errors.Join(errs...)
	}
	return undo, detail + "; started again after " + e.For.String(), nil
}

// stopProcess ends a running process: TERM (and CONT, in case a fault froze
// it), then KILL if it lingers.
func stopProcess(ctx context.Context, p *topo.Process) error {
	if p.Status().State != topo.ProcRunning {
		return nil
	}
	done := p.Done()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := p.Signal(sig); err != nil && p.Status().State == topo.ProcRunning {
			return err
		}
		if sig == syscall.SIGTERM {
			_ = p.Signal(syscall.SIGCONT)
		}
		select {
		case <-done:
			return nil
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("%s/%s does not end after KILL", p.Node, p.Name)
}

func (a *labActor) sysctl(e *spec.Event) (undoFunc, string, error) {
	n := a.lab.Node(e.Target)
	if n == nil {
		return nil, "", fmt.Errorf("no node %s", e.Target)
	}
	type saved struct{ key, old string }
	var done []saved
	restore := func() error {
		// Runs inside the node (Do); newest first, so a key set twice
		// ends at its first old value.
		var errs []error
		for i := len(done) - 1; i >= 0; i-- {
			if err := netns.WriteSysctl(done[i].key, done[i].old); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	var parts []string
	err := n.Do(func() error {
		for _, kv := range e.Set {
			oldv, err := netns.ReadSysctl(kv.Key)
			if err != nil {
				return err
			}
			if err := netns.WriteSysctl(kv.Key, kv.Value); err != nil {
				return err
			}
			done = append(done, saved{kv.Key, oldv})
			parts = append(parts, fmt.Sprintf("%s=%s (was %s)", kv.Key, kv.Value, oldv))
		}
		return nil
	})
	if err != nil {
		// Leave nothing half set.
		if rerr := n.Do(restore); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, "", err
	}
	undo := func(context.Context) error { return n.Do(restore) }
	return undo, fmt.Sprintf("%s: %s", e.Target, strings.Join(parts, ", ")), nil
}

func (a *labActor) exec(ctx context.Context, e *spec.Event) (undoFunc, string, error) {
	n := a.lab.Node(e.Target)
	if n == nil {
		return nil, "", fmt.Errorf("no node %s", e.Target)
	}
	argv := e.Cmd
	if e.Shell != "" {
		argv = []string{"/bin/sh", "-c", e.Shell}
	}
	cmd, err := a.lab.Command(ctx, e.Target, argv...)
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return nil, "", err
	}
	logPath := filepath.Join(n.Dir, "timeline-"+e.Name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, "", fmt.Errorf("output file: %w", err)
	}
	defer f.Close()
	var tail bytes.Buffer
	cmd.Stdout = &tailWriter{f: f, tail: &tail}
	cmd.Stderr = cmd.Stdout
	// Its own group, so the end of the run also ends what a script
	// started in the background.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	out := lastLines(tail.String(), 3)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w%s (output in %s)", strings.Join(argv, " "), err, out, logPath)
	}
	return nil, fmt.Sprintf("%s in %s exited 0%s (output in %s)", strings.Join(argv, " "), e.Target, out, logPath), nil
}

// tailWriter writes to the file and keeps the last few KiB for messages.
type tailWriter struct {
	f    *os.File
	tail *bytes.Buffer
}

func (w *tailWriter) Write(b []byte) (int, error) {
	w.tail.Write(b)
	if w.tail.Len() > 4096 {
		rest := slices.Clone(w.tail.Bytes()[w.tail.Len()-2048:])
		w.tail.Reset()
		w.tail.Write(rest)
	}
	return w.f.Write(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return ": " + strings.Join(lines, " | ")
}
