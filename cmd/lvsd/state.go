package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"lvslab/capture"
	"lvslab/ipvs/ctl"
	"lvslab/ipvs/runstate"
)

// record is this lvsd's state file: what it changed, originals first.
type record struct {
	store *runstate.Store
	st    runstate.State
	log   *slog.Logger
}

// startRecord undoes what a dead lvsd of this namespace left (so the
// originals read next are the true ones, not the dead lvsd's settings) and
// starts this lvsd's record. A live lvsd in the namespace is an error.
func startRecord(ctx context.Context, o options, log *slog.Logger) (*record, error) {
	s, err := runstate.Open(o.stateDir)
	if err != nil {
		return nil, err
	}
	if err := s.Lock(); err != nil {
		return nil, err
	}
	defer s.Unlock()
	prev, err := s.Load()
	if err != nil {
		return nil, err
	}
	if prev != nil {
		if prev.Owner.Alive() {
			return nil, fmt.Errorf("another lvsd (pid %d) runs in this network namespace (state %s)", prev.Owner.PID, s.Path())
		}
		log.Info("undoing what a dead lvsd left", "pid", prev.Owner.PID, "state", s.Path())
		if err := runstate.Undo(ctx, prev); err != nil {
			return nil, fmt.Errorf("undo what the dead lvsd (pid %d) left: %w", prev.Owner.PID, err)
		}
	}
	self, err := runstate.Self()
	if err != nil {
		return nil, err
	}
	r := &record{store: s, log: log, st: runstate.State{Owner: self, Started: time.Now().UTC(), GuardTable: o.guardTable}}
	if path := ctl.SocketAddr(o.socket); !strings.HasPrefix(path, "@") {
		r.st.Socket = path
	}
	if err := s.Save(&r.st); err != nil {
		return nil, err
	}
	return r, nil
}

// offloads records the receive-aggregation features of ifname as they are
// now, before lvsd turns them off, and returns them for the restore.
func (r *record) offloads(ifname string) (map[string]bool, error) {
	orig := map[string]bool{}
	fs, err := capture.ReadFeatures(ifname)
	if err != nil {
		r.log.Warn("could not read offloads", "iface", ifname, "err", err)
		return orig, nil
	}
	for _, n := range capture.AggregationFeatures() {
		if f, ok := fs.Get(n); ok && f.Changeable {
			orig[n] = f.Requested
		}
	}
	r.st.Offloads = append(r.st.Offloads, runstate.Offload{Ifname: ifname, Requested: orig})
	if err := r.store.Save(&r.st); err != nil {
		return nil, err
	}
	return orig, nil
}

// finish removes the record once everything it names is undone (it runs
// last, after the other undo steps).
func (r *record) finish() {
	if err := r.store.Remove(); err != nil {
		r.log.Warn("remove state file", "err", err)
	}
}

// cleanup is lvsd --cleanup: undo what a dead lvsd of this namespace left.
func cleanup(o options, log *slog.Logger) error {
	st, err := runstate.Cleanup(context.Background(), o.stateDir)
	if err != nil {
		return err
	}
	if st == nil {
		fmt.Fprintln(os.Stdout, "nothing to clean: no lvsd state for this network namespace")
		return nil
	}
	log.Info("undid what a dead lvsd left", "pid", st.Owner.PID, "guard_table", st.GuardTable, "interfaces", len(st.Offloads), "socket", st.Socket)
	return nil
}
