// Package fault carries out a scenario's timeline: each entry fires at a
// time (at:) or when something happens (when: another entry or its end, a
// line of a process's output, a state becoming true), does one thing to the
// lab, and with for: undoes it again and emits NAME.end.
//
// Where the faults act. Every node interface is a veth whose peer is a port
// of its segment's bridge, in the segment's hidden namespace (sim/topo).
// Faults that cut or thin the wire act on that port, like a switch would:
//
//   - link.down sets the bridge port down: the node's interface stays
//     administratively up with its addresses and routes, and loses carrier
//     (NO-CARRIER), as when a cable is pulled; link.up brings it back.
//   - blackhole, loss and partition are nftables netdev tables on the port
//     (ingress hook: what the node sends; egress hook: what it receives).
//     In the node they would miss half of lvsd's traffic: AF_PACKET taps
//     see frames before a node's own netdev ingress hook.
//   - rate is a tbf qdisc: egress on the node's interface, ingress on the
//     port (the port's egress is the node's ingress), so no ifb is needed.
//     A sender using PACKET_QDISC_BYPASS skips the egress tbf.
//   - delay uses netem the same way where the kernel has it. Without
//     netem, a userspace delay wire takes the port's place on the bridge
//     (wire.go): a veth pair whose bridge end replaces the port, and
//     lvslab copying frames between the port and the pair's other end
//     through AF_PACKET, holding those of the delayed direction(s) for
//     delay ± jitter (uniform, seeded from the scenario seed, order kept).
//     The port keeps its name and alias, so the other faults still act on
//     it; blackhole and loss of what the node sends are mirrored onto the
//     pair, since the wire's packet tap reads before the port's ingress.
//
// Directions are seen from the node: egress is what it sends, ingress what
// it receives. A partition drops, at each side's ports, frames from the
// other side's interface MACs and IP packets from the addresses on those
// interfaces (not lo: a DR VIP there is shared), so it also holds across
// routers.
//
// Timing. at: counts from T0 (Stage.Start's t0). A when: trigger is
// watched from T0: another entry (or NAME.end) fires it at that entry's
// time, a log trigger on the first matching line written after Start
// (polled), a state trigger when the check first holds (polled); after:
// adds to that moment, and timeout: (counted from T0) gives up. Events:
// NAME when an entry fires (Kind = the fault kind), NAME.end when for:
// undid it; NAME.failed, NAME.timeout, NAME.skipped (still waiting when the
// run ended) and NAME.revert (undone by Stop) say what else happened, so
// NAME and NAME.end only ever mean that it really happened.
//
// Everything the stage changed and has not undone is reverted by Stop,
// newest first: nftables tables, qdiscs, delay wires, port states,
// sysctls, neighbour entries, stopped processes.
package fault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// Kinds of the events the stage records besides the fault kinds
// themselves (Event.Kind is the fault kind, e.g. "link.down", for an entry
// firing and for its NAME.end).
const (
	KindError   = "error"   // NAME.failed, NAME.end.failed: the action failed
	KindTimeout = "timeout" // NAME.timeout: the trigger did not happen in time
	KindSkipped = "skipped" // NAME.skipped: still waiting when the run ended
	KindRevert  = "revert"  // NAME.revert: undone by Stop at the end of the run
)

// StageName is the stage's name.
const StageName = "timeline"

// Options configure the stage.
type Options struct {
	Logger *slog.Logger
	// NetnsDir is where the lab's namespaces are pinned (default
	// topo.DefaultNetnsDir); the stage opens the segment namespaces there
	// to reach the bridge ports.
	NetnsDir string
	// PollInterval is how often log and netlink state triggers are checked
	// (default 100ms); command state checks run at most every 500ms.
	PollInterval time.Duration
	// Netem says whether the kernel has netem (default: detected); false
	// delays by the userspace wire even where netem exists.
	Netem *bool
}

// Stage executes the timeline.
type Stage struct {
	spec  *spec.Spec
	opts  Options
	log   *slog.Logger
	netem bool

	sched   *scheduler
	act     *labActor
	stopped bool
}

// New makes the timeline stage of a resolved spec.
func New(s *spec.Spec, opts Options) *Stage {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.NetnsDir == "" {
		opts.NetnsDir = topo.DefaultNetnsDir
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	var netem bool
	if opts.Netem != nil {
		netem = *opts.Netem
	} else {
		netem = HasNetem()
	}
	return &Stage{spec: s, opts: opts, log: opts.Logger.With("stage", StageName), netem: netem}
}

// HasNetem reports whether the running kernel offers the netem qdisc.
func HasNetem() bool {
	if _, err := os.Stat("/sys/module/sch_netem"); err == nil {
		return true
	}
	ok, _ := runner.DetectFeatures("").Has("netem")
	return ok
}

// Name is "timeline".
func (st *Stage) Name() string { return StageName }

// Claims lists "timeline NAME" for every entry this stage can carry out
// here: all of them (delay by netem, or without it by the userspace wire).
func (st *Stage) Claims(s *spec.Spec) []string {
	var out []string
	for i := range s.Timeline {
		if st.supported(&s.Timeline[i]) == nil {
			out = append(out, "timeline "+s.Timeline[i].Name)
		}
	}
	return out
}

// supported says why an entry cannot be carried out here (nil: it can).
// Every fault kind can be, today; the hook stays for kinds that will need
// a kernel feature with no userspace stand-in.
func (st *Stage) supported(e *spec.Event) error {
	if e.Fault == "" {
		return errors.New("no fault kind")
	}
	return nil
}

// Start begins the timeline; t0 is the start of traffic. Targets are
// checked against the lab first, so a spec the lab cannot carry out fails
// here rather than halfway through the run.
func (st *Stage) Start(ctx context.Context, lab *topo.Lab, t0 time.Time) error {
	if st.sched != nil {
		return errors.New("timeline stage started twice")
	}
	var entries []*spec.Event
	var errs []error
	for i := range st.spec.Timeline {
		e := &st.spec.Timeline[i]
		if err := st.supported(e); err != nil {
			st.log.Warn("not executed", "event", e.Name, "reason", err)
			continue
		}
		if err := checkTargets(lab, e); err != nil {
			errs = append(errs, fmt.Errorf("timeline %s: %w", e.Name, err))
			continue
		}
		entries = append(entries, e)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	st.act = newLabActor(lab, st.opts, st.netem, st.spec.Seed, st.log)
	w := newLabWatcher(lab, st.opts.PollInterval)
	if err := w.arm(st.spec.Timeline); err != nil {
		return err
	}
	st.sched = newScheduler(realClock{}, t0, st.act, w, st.log)
	st.sched.start(ctx, entries)
	return nil
}

// Stop ends the timeline and reverts every fault still in place.
func (st *Stage) Stop(ctx context.Context) error {
	if st.sched == nil || st.stopped {
		return nil
	}
	st.stopped = true
	err := st.sched.stop(ctx)
	st.act.close()
	return err
}

// Events lists what the timeline did so far, in the order it happened.
func (st *Stage) Events() []runner.Event {
	if st.sched == nil {
		return nil
	}
	return st.sched.snapshot()
}

// Errors lists the actions that failed (also recorded as NAME.failed
// events), for a runner that wants to fail the run on them.
func (st *Stage) Errors() []error {
	if st.sched == nil {
		return nil
	}
	return st.sched.errors()
}

var _ runner.Stage = (*Stage)(nil)
var _ runner.EventSource = (*Stage)(nil)
