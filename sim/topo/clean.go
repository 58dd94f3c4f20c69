package topo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"lvslab/internal/netns"
	"lvslab/ipvs/runstate"
)

// Removing a lab without its builder: after a crash, for lvslab down of a
// lab that is up, and for lvslab clean. Processes are found two ways: by the
// PIDs the registry recorded (checked against their start time, so a reused
// PID is left alone) and by the namespace their main thread is in.

// Labs lists the labs in the registry with whether their owner is alive.
func Labs(opts Options) ([]LabInfo, error) {
	opts, err := opts.withDefaults("_")
	if err != nil {
		return nil, err
	}
	reg, err := newRegistry(opts.StateDir)
	if err != nil {
		return nil, err
	}
	recs, err := reg.list()
	if err != nil {
		return nil, err
	}
	out := make([]LabInfo, 0, len(recs))
	for _, r := range recs {
		out = append(out, LabInfo{Record: r, Live: reg.live(r)})
	}
	return out, nil
}

// LabInfo is a registry entry and whether the lab is in use: up, or owned
// by a running lvslab.
type LabInfo struct {
	*Record
	Live bool
}

// live reports whether a lab is legitimately there: its owner holds the
// lock, or it was brought up (and finished building) by lvslab up.
func (g *registry) live(r *Record) bool {
	if r.Mode == ModeUp && r.State == StateUp {
		return true
	}
	lock, err := g.tryLock(r.Lab)
	if err != nil {
		return true // locked by a live owner (or unknowable: leave it)
	}
	lock.release()
	return false
}

// FindLab returns the record of a lab: the one named, or the only one.
func FindLab(opts Options, name string) (*Record, error) {
	labs, err := Labs(opts)
	if err != nil {
		return nil, err
	}
	if name != "" {
		for _, l := range labs {
			if l.Lab == name {
				return l.Record, nil
			}
		}
		return nil, fmt.Errorf("no lab %q is up", name)
	}
	switch len(labs) {
	case 0:
		return nil, errors.New("no lab is up")
	case 1:
		return labs[0].Record, nil
	}
	names := make([]string, len(labs))
	for i, l := range labs {
		names[i] = l.Lab
	}
	return nil, fmt.Errorf("several labs are up (%s): name one", strings.Join(names, ", "))
}

// Down removes a lab that is up (or whose owner died). A lab owned by a
// running lvslab is refused.
func Down(ctx context.Context, opts Options, name string) error {
	opts, err := opts.withDefaults("_")
	if err != nil {
		return err
	}
	rec, err := FindLab(opts, name)
	if err != nil {
		return err
	}
	reg, err := newRegistry(opts.StateDir)
	if err != nil {
		return err
	}
	lock, err := reg.tryLock(rec.Lab)
	if errors.Is(err, errLocked) {
		return fmt.Errorf("lab %s is owned by a running lvslab (pid %d); stop that instead", rec.Lab, reg.holder(rec.Lab))
	}
	if err != nil {
		return err
	}
	defer lock.release()
	if err := destroyRecord(ctx, rec, opts.Logger); err != nil {
		return err
	}
	removeRunDir(rec, opts.StateDir)
	reg.remove(rec.Lab)
	return nil
}

func removeRunDir(rec *Record, stateDir string) {
	if rec.RunDir != "" && isUnder(rec.RunDir, stateDir) {
		os.RemoveAll(rec.RunDir)
	}
}

// CleanReport says what Clean removed.
type CleanReport struct {
	Labs       []string // labs removed
	Namespaces []string // namespaces unpinned
	Killed     int      // processes killed
	Skipped    []string // labs in use, left alone
}

// SweepStale removes the registry's labs whose owner died before the lab
// was up or while running it. Labs that are up and labs owned by a running
// lvslab are left alone.
func SweepStale(ctx context.Context, opts Options) (CleanReport, error) {
	return clean(ctx, opts, cleanScope{})
}

// Clean removes the named labs, or every lab when no name is given: stale
// ones and those that are up; with force also those owned by a running
// lvslab. With the default registry it also removes lvsl- namespaces no
// record explains (of the named labs, or all); a private registry (tests)
// cannot tell another registry's labs from orphans, so it removes only what
// it recorded.
func Clean(ctx context.Context, opts Options, force bool, names ...string) (CleanReport, error) {
	return clean(ctx, opts, cleanScope{includeUp: true, force: force, names: names,
		orphans: opts.StateDir == "" || filepath.Clean(opts.StateDir) == DefaultStateDir})
}

type cleanScope struct {
	includeUp, force, orphans bool
	names                     []string // only these labs (all when empty)
}

func (c cleanScope) wants(lab string) bool { return len(c.names) == 0 || slices.Contains(c.names, lab) }

func clean(ctx context.Context, opts Options, scope cleanScope) (CleanReport, error) {
	var rep CleanReport
	opts, err := opts.withDefaults("_")
	if err != nil {
		return rep, err
	}
	reg, err := newRegistry(opts.StateDir)
	if err != nil {
		return rep, err
	}
	recs, err := reg.list()
	if err != nil {
		return rep, err
	}
	var errs []error
	claimed := map[string]bool{}
	for _, r := range recs {
		claimed[r.Lab] = true
		if !scope.wants(r.Lab) {
			continue
		}
		lock, lerr := reg.tryLock(r.Lab)
		if errors.Is(lerr, errLocked) && !scope.force {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s (in use by lvslab pid %d)", r.Lab, reg.holder(r.Lab)))
			continue
		}
		if lerr != nil && !errors.Is(lerr, errLocked) {
			errs = append(errs, lerr)
			continue
		}
		if r.Mode == ModeUp && r.State == StateUp && !scope.includeUp {
			lock.release()
			continue
		}
		n, derr := destroyRecordCount(ctx, r, opts.Logger)
		rep.Killed += n
		if derr != nil {
			errs = append(errs, derr)
		} else {
			for _, ns := range r.Namespaces {
				rep.Namespaces = append(rep.Namespaces, ns.Name)
			}
			removeRunDir(r, opts.StateDir)
			reg.remove(r.Lab)
			rep.Labs = append(rep.Labs, r.Lab)
		}
		lock.release()
	}
	// Pins no record explains: a registry lost, or a crash between
	// creating a pin and recording it.
	netnsDir := opts.NetnsDir
	entries, _ := os.ReadDir(netnsDir)
	orphans := map[string][]string{}
	for _, e := range entries {
		lab, ok := labOfNamespace(e.Name())
		if !ok || claimed[lab] || !scope.orphans || !scope.wants(lab) {
			continue
		}
		orphans[lab] = append(orphans[lab], e.Name())
	}
	for lab, names := range orphans {
		lock, lerr := reg.tryLock(lab)
		if errors.Is(lerr, errLocked) && !scope.force {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s (in use by lvslab pid %d)", lab, reg.holder(lab)))
			continue
		}
		r := &Record{Lab: lab, NetnsDir: netnsDir}
		for _, n := range names {
			r.Namespaces = append(r.Namespaces, NSRecord{Name: n})
		}
		n, derr := destroyRecordCount(ctx, r, opts.Logger)
		rep.Killed += n
		if derr != nil {
			errs = append(errs, derr)
		} else {
			rep.Namespaces = append(rep.Namespaces, names...)
			rep.Labs = append(rep.Labs, lab)
			os.Remove(reg.lockPath(lab))
		}
		if lock != nil {
			lock.release()
		}
	}
	slices.Sort(rep.Labs)
	slices.Sort(rep.Namespaces)
	return rep, errors.Join(errs...)
}

func destroyRecord(ctx context.Context, r *Record, log *slog.Logger) error {
	_, err := destroyRecordCount(ctx, r, log)
	return err
}

// destroyRecordCount kills a lab's processes and unpins its namespaces.
func destroyRecordCount(ctx context.Context, r *Record, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := r.NetnsDir
	if dir == "" {
		dir = DefaultNetnsDir
	}
	killed := 0
	// Recorded processes first (they may have left the namespace, e.g. a
	// daemon that setns'd elsewhere).
	for i := len(r.Processes) - 1; i >= 0; i-- {
		p := r.Processes[i]
		if p.PID <= 1 || p.Start == 0 || processStart(p.PID) != p.Start {
			continue
		}
		_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		if syscall.Kill(p.PID, syscall.SIGKILL) == nil {
			killed++
		}
	}
	// Only live pins say which namespace an inode is: a recorded inode of a
	// namespace that is gone may since belong to another one. And a pin
	// whose inode differs from the recorded one is another lab's (of the
	// same name, in another registry): not ours to remove.
	inodes := map[uint64]bool{}
	var mine []NSRecord
	for _, ns := range r.Namespaces {
		ino := netns.PinnedInode(filepath.Join(dir, ns.Name))
		if ino != 0 && ns.Inode != 0 && ino != ns.Inode {
			log.Warn("namespace of the same name belongs to another lab; left alone", "lab", r.Lab, "namespace", ns.Name)
			continue
		}
		mine = append(mine, ns)
		if ino != 0 {
			inodes[ino] = true
		}
	}
	n, err := killInNamespacesCount(ctx, inodes)
	killed += n
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	var names []string
	for _, ns := range mine {
		names = append(names, ns.Name)
	}
	removeFRR(names) // the daemons are dead: their runtime directories go
	// A director's lvsd was just killed: what it recorded (its state file,
	// a file-system socket outside the namespace) would outlive the
	// namespace, so its cleanup runs in each namespace before the unpin.
	for _, ns := range mine {
		pin := filepath.Join(dir, ns.Name)
		if netns.PinnedInode(pin) == 0 {
			continue
		}
		err := netns.DoPath(pin, func() error {
			// The lvsd was just SIGKILLed; a big process takes a moment
			// to finish dying after it has left its namespace.
			deadline := time.Now().Add(5 * time.Second)
			for {
				st, err := runstate.Cleanup(ctx, runstate.DefaultDir)
				if errors.Is(err, runstate.ErrRunning) && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if st != nil && err == nil {
					log.Info("undid what the lab's lvsd left", "lab", r.Lab, "namespace", ns.Name, "pid", st.Owner.PID)
				}
				return err
			}
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("lvsd cleanup in %s: %w", ns.Name, err))
		}
	}
	for _, ns := range mine {
		if err := netns.Unpin(filepath.Join(dir, ns.Name)); err != nil {
			errs = append(errs, err)
		}
	}
	if killed > 0 {
		log.Info("killed lab processes", "lab", r.Lab, "count", killed)
	}
	if len(errs) > 0 {
		return killed, fmt.Errorf("remove lab %s: %w", r.Lab, errors.Join(errs...))
	}
	return killed, nil
}

func killInNamespaces(ctx context.Context, inodes map[uint64]bool) error {
	_, err := killInNamespacesCount(ctx, inodes)
	return err
}

// killInNamespacesCount SIGKILLs every process in the namespaces until none
// is left (a dying shell may still fork).
func killInNamespacesCount(ctx context.Context, inodes map[uint64]bool) (int, error) {
	killed := 0
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := pidsInNamespaces(inodes)
		if len(pids) == 0 {
			return killed, nil
		}
		for _, pid := range pids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		if time.Now().After(deadline) {
			return killed, fmt.Errorf("processes %v survive SIGKILL", pids)
		}
		select {
		case <-ctx.Done():
			return killed, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Leftovers lists what of the named labs (all labs if none) still exists:
// pins under the netns directory, processes in their namespaces, registry
// entries. For tests and lvslab clean --check.
func Leftovers(opts Options, labs ...string) ([]string, error) {
	opts, err := opts.withDefaults("_")
	if err != nil {
		return nil, err
	}
	match := func(lab string) bool { return len(labs) == 0 || slices.Contains(labs, lab) }
	var out []string
	inodes := map[uint64]bool{}
	entries, _ := os.ReadDir(opts.NetnsDir)
	for _, e := range entries {
		if lab, ok := labOfNamespace(e.Name()); ok && match(lab) {
			out = append(out, "namespace "+e.Name())
			if ino := netns.PinnedInode(filepath.Join(opts.NetnsDir, e.Name())); ino != 0 {
				inodes[ino] = true
			}
		}
	}
	reg, err := newRegistry(opts.StateDir)
	if err != nil {
		return nil, err
	}
	recs, err := reg.list()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if !match(r.Lab) {
			continue
		}
		out = append(out, "registry entry "+r.Lab)
		for _, p := range r.Processes {
			if p.Start != 0 && processStart(p.PID) == p.Start {
				out = append(out, fmt.Sprintf("process %d (%s/%s)", p.PID, p.Node, p.Name))
			}
		}
	}
	for _, pid := range pidsInNamespaces(inodes) {
		out = append(out, fmt.Sprintf("process %d in a lab namespace", pid))
	}
	return out, nil
}
