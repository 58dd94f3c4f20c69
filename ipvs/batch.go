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
// Committing replays the commands in order on the running state (what
// commit does for one command), so it has exactly their meaning (a -D then -A of one service starts it afresh; -Z
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
	// What the engine cannot run does not depend on the table: find the
	// first such line, then check the table up to it. On that line the
	// table's verdict comes first, as in apply.
	bad, badErr := len(rules), error(nil)
	var tmo config.Timeouts // the net effect of every --set, 0 keeps
	for i, r := range rules {
		if err := checkRuntime(r.Command); err != nil {
			bad, badErr = i, err
			break
		}
		if r.Command.Op == config.OpSetTimeouts {
			tmo = mergeTimeouts(tmo, r.Command.Timeouts)
		}
	}
	next := cloneTable(e.table)
	if err := next.ApplyRules(rules[:bad]); err != nil {
		return err
	}
	if badErr != nil {
		r := rules[bad]
		if err := next.Apply(r.Command); err != nil {
			badErr = err
		}
		return fmt.Errorf("%s:%d: %w", r.File, r.Line, badErr)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not applied: %w", context.Cause(ctx))
	}
	if err := e.syncGuard(next); err != nil {
		return err
	}
	// Checked above, so this cannot fail.
	_ = e.conns.SetTimeouts(tmo.TCP, tmo.TCPFin, tmo.UDP)
	e.commitBatch(rules)
	e.table = next
	return nil
}

// commitBatch is commit for every rule, in order, with the services
// looked up in an index rather than one by one.
func (e *Engine) commitBatch(rules []config.Rule) {
	byID := make(map[config.ServiceID]*Service, len(e.services))
	for _, s := range e.services {
		byID[s.cfg.ID()] = s
	}
	for _, r := range rules {
		c := r.Command
		id := c.Service.ID()
		switch c.Op {
		case config.OpAddService:
			s, _ := newService(c.Service)
			e.addService(s)
			byID[id] = s
		case config.OpDeleteService:
			e.deleteService(byID[id])
			delete(byID, id)
		case config.OpClear:
			for _, s := range e.services {
				e.unindex(s, s.key())
				for len(s.dests) > 0 {
					s.delDest(0)
				}
			}
			e.services = nil
			clear(byID)
		case config.OpEditService:
			s := byID[id]
			old := s.key()
			_ = s.configure(c.Service)
			if s.key() != old && s.cfg.Protocol != config.ProtoFwmark {
				e.unindex(s, old)
				e.index(s)
			}
		case config.OpAddDest:
			_, _ = byID[id].addDest(c.Dest, e)
		case config.OpEditDest:
			s := byID[id]
			_ = s.editDest(s.findDest(c.Dest.ID()), c.Dest, e)
		case config.OpDeleteDest:
			s := byID[id]
			s.delDest(s.findDest(c.Dest.ID()))
		case config.OpZero:
			if !c.HasService {
				for _, s := range e.services {
					zeroService(s)
				}
			} else {
				zeroService(byID[id])
			}
		}
	}
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
