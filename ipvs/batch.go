package ipvs

import (
	"context"
	"fmt"
	"time"

	"lvslab/config"
	"lvslab/conntrack"
)

// ApplyBatch applies the commands of a rules file (lvsadm -R) as one
// transaction, the way Replace applies a reloaded file: every command is
// checked, in order, against a copy of the configuration first, and only if
// all pass are they committed, with one update of the kernel guard. On any
// refusal nothing changes and the error names the rule's file and line.
//
// Committing replays the commands in order on the running state, so it has
// exactly their meaning (a -D then -A of one service starts it afresh; -Z
// zeroes where it stands). If ctx is done before the commit (the client
// went away), nothing is applied and the error is ctx's cause.
func (e *Engine) ApplyBatch(ctx context.Context, rules []config.Rule) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.applyBatch(ctx, rules)
}

func (e *Engine) applyBatch(ctx context.Context, rules []config.Rule) error {
	if len(rules) == 0 {
		return nil
	}
	next := cloneTable(e.table)
	var tmo config.Timeouts // the net effect of every --set, 0 keeps
	for _, r := range rules {
		c := r.Command
		err := next.Apply(c)
		if err == nil {
			err = checkRuntime(c)
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %w", r.File, r.Line, err)
		}
		if c.Op == config.OpSetTimeouts {
			tmo = mergeTimeouts(tmo, c.Timeouts)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not applied: %w", context.Cause(ctx))
	}
	if err := e.syncGuard(next); err != nil {
		return err
	}
	// Checked above, so this cannot fail.
	_ = e.conns.SetTimeouts(tmo.TCP, tmo.TCPFin, tmo.UDP)
	for _, r := range rules {
		switch c := r.Command; c.Op {
		case config.OpZero:
			_ = e.zero(c)
		case config.OpSetTimeouts:
		default:
			e.commit(c)
		}
	}
	e.table = next
	return nil
}

// checkRuntime refuses what config.Table accepts but the engine cannot run,
// with the errors Apply gives, without changing anything.
func checkRuntime(c config.Command) error {
	switch c.Op {
	case config.OpAddService, config.OpEditService:
		if _, err := newService(c.Service); err != nil {
			return err
		}
	case config.OpAddDest, config.OpEditDest:
		if _, err := fwdOf(c.Dest.Forward); err != nil {
			return err
		}
		if !c.Dest.Addr.Is4() {
			return fmt.Errorf("real server %s: only IPv4 real servers are supported by lvsd yet", c.Dest.Addr)
		}
	case config.OpSetTimeouts:
		t := c.Timeouts
		for _, v := range [...]struct {
			name string
			d    time.Duration
		}{{"tcp", t.TCP}, {"tcpfin", t.TCPFin}, {"udp", t.UDP}} {
			if v.d < 0 || v.d > conntrack.MaxTimeout {
				// conntrack.Table.SetTimeouts's words.
				return fmt.Errorf("conntrack: --set %s %v: %w (0..%v)", v.name, v.d, conntrack.ErrTimeout, conntrack.MaxTimeout)
			}
		}
	}
	return nil
}

func mergeTimeouts(t, set config.Timeouts) config.Timeouts {
	if set.TCP != 0 {
		t.TCP = set.TCP
	}
	if set.TCPFin != 0 {
		t.TCPFin = set.TCPFin
	}
	if set.UDP != 0 {
		t.UDP = set.UDP
	}
	return t
}
