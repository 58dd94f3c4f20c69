package ipvs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/ipvs/ctl"
)

// connTabSize is what the banner of ipvsadm -L reports: the kernel's default
// connection hash size (2^12); lvsd's table grows as needed.
const connTabSize = 4096

// SetGuard makes every configuration change also update the nftables guard,
// before the change takes effect. Call it before Apply and Run.
func (e *Engine) SetGuard(g *KernelGuard) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.guard = g
}

// SetMarks installs the classifier rules that feed fwmark services.
func (e *Engine) SetMarks(rules []MarkRule) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.marks
	e.marks = slices.Clone(rules)
	if err := e.syncGuard(e.table); err != nil {
		e.marks = old
		return err
	}
	// A rule's single destination address is a VIP of an fwmark service:
	// lvsd answers ARP for it as for any VIP. The kernel still sees what
	// the rules do not match (the other director's frames, in seed 003).
	e.markAddrs = map[[4]byte]bool{}
	for _, r := range e.marks {
		if r.Dst.IsValid() && r.Dst.IsSingleIP() {
			e.markAddrs[r.Dst.Addr().As4()] = true
		}
	}
	return nil
}

// GuardRule derives what the kernel must not see from a configuration.
func (e *Engine) guardRule(t config.Table) GuardRule {
	var r GuardRule
	for _, vs := range t.Services {
		s := vs.Service
		if s.Protocol != config.ProtoFwmark && s.Addr.Is4() {
			r.Owned = append(r.Owned, s.Addr)
		}
		for _, d := range vs.Dests {
			if d.Forward == config.ForwardMasq && s.Protocol != config.ProtoFwmark {
				port := d.Port
				if port == 0 {
					port = s.Port
				}
				r.NATReal = append(r.NATReal, ProtoAddrPort{Proto: s.Protocol.IPProto(), AddrPort: netipAddrPort(d.Addr, port)})
			}
		}
	}
	r.Marks = e.marks
	return r
}

func (e *Engine) syncGuard(t config.Table) error {
	if e.guard == nil {
		return nil
	}
	return e.guard.Apply(context.Background(), e.guardRule(t))
}

// Apply runs one configuration command. It is all or nothing: a refused
// command changes neither the engine nor the kernel guard.
func (e *Engine) Apply(c config.Command) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.apply(c)
}

func cloneTable(t config.Table) config.Table {
	n := config.Table{Timeouts: t.Timeouts, Services: make([]config.VirtualService, len(t.Services))}
	for i, vs := range t.Services {
		n.Services[i] = config.VirtualService{Service: vs.Service, Dests: slices.Clone(vs.Dests)}
	}
	return n
}

func (e *Engine) apply(c config.Command) error {
	switch c.Op {
	case config.OpStartDaemon, config.OpStopDaemon:
		return errors.New("the connection sync daemon is not supported by lvsd")
	case config.OpZero:
		return e.zero(c)
	case config.OpSetDefense:
		// Run-time state like the sysctls, not part of the saved table.
		return e.conns.SetDefense(fromConfigDefense(c.Defense.Apply(toConfigDefense(e.conns.Defense()))))
	}
	next := cloneTable(e.table)
	if err := next.Apply(c); err != nil {
		return err
	}
	// Check what the runtime can refuse before touching anything.
	switch c.Op {
	case config.OpAddService:
		if _, err := newService(c.Service); err != nil {
			return err
		}
	case config.OpEditService:
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
		if err := e.conns.SetTimeouts(t.TCP, t.TCPFin, t.UDP); err != nil {
			return err
		}
	}
	if c.Op.Mutates() && c.Op != config.OpSetTimeouts {
		if err := e.syncGuard(next); err != nil {
			return err
		}
	}
	e.commit(c)
	e.table = next
	return nil
}

// commit applies a validated command to the run-time state.
func (e *Engine) commit(c config.Command) {
	switch c.Op {
	case config.OpAddService:
		s, _ := newService(c.Service)
		e.addService(s)
	case config.OpEditService:
		s := e.service(c.Service.ID())
		old := s.key()
		_ = s.configure(c.Service)
		if s.key() != old && s.cfg.Protocol != config.ProtoFwmark {
			e.unindex(s, old)
			e.index(s)
		}
	case config.OpDeleteService:
		e.deleteService(e.service(c.Service.ID()))
	case config.OpClear:
		for _, s := range slices.Clone(e.services) {
			e.deleteService(s)
		}
	case config.OpAddDest:
		s := e.service(c.Service.ID())
		_, _ = s.addDest(c.Dest, e)
	case config.OpEditDest:
		s := e.service(c.Service.ID())
		_ = s.editDest(s.findDest(c.Dest.ID()), c.Dest, e)
	case config.OpDeleteDest:
		s := e.service(c.Service.ID())
		s.delDest(s.findDest(c.Dest.ID()))
	}
}

func (e *Engine) service(id config.ServiceID) *Service {
	for _, s := range e.services {
		if s.cfg.ID() == id {
			return s
		}
	}
	return nil
}

func (e *Engine) addService(s *Service) {
	e.services = append(e.services, s)
	e.index(s)
}

func (e *Engine) index(s *Service) {
	if s.cfg.Protocol == config.ProtoFwmark {
		e.byMark[s.cfg.Fwmark] = s
		return
	}
	e.byKey[s.key()] = s
	e.owned[s.key().addr]++
}

func (e *Engine) unindex(s *Service, k svcKey) {
	if s.cfg.Protocol == config.ProtoFwmark {
		delete(e.byMark, s.cfg.Fwmark)
		return
	}
	delete(e.byKey, k)
	if e.owned[k.addr]--; e.owned[k.addr] <= 0 {
		delete(e.owned, k.addr)
	}
}

func (e *Engine) deleteService(s *Service) {
	if s == nil {
		return
	}
	e.retire(s)
	e.unindex(s, s.key())
	for len(s.dests) > 0 {
		s.delDest(0)
	}
	e.services = slices.DeleteFunc(e.services, func(x *Service) bool { return x == s })
}

func (e *Engine) zero(c config.Command) error {
	if c.HasService {
		s := e.service(c.Service.ID())
		if s == nil {
			return config.ErrNoService
		}
		e.retire(s)
		zeroService(s)
		return nil
	}
	e.gone = counters{}
	for _, s := range e.services {
		zeroService(s)
	}
	return nil
}

func zeroService(s *Service) {
	s.stats, s.est = counters{}, estimator{}
	for _, d := range s.dests {
		d.stats, d.est = counters{}, estimator{}
	}
}

// Replace makes the configuration exactly t (a reloaded rule file): services
// and real servers that stay keep their connections and counters. It is all
// or nothing.
func (e *Engine) Replace(t config.Table) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Validate every service and real server before changing anything.
	for _, vs := range t.Services {
		if _, err := newService(vs.Service); err != nil {
			return err
		}
		for _, d := range vs.Dests {
			if _, err := fwdOf(d.Forward); err != nil {
				return fmt.Errorf("%s: %w", vs.Service.ID(), err)
			}
		}
	}
	tmo := t.Timeouts
	if err := e.conns.SetTimeouts(tmo.TCP, tmo.TCPFin, tmo.UDP); err != nil {
		return err
	}
	if err := e.syncGuard(t); err != nil {
		return err
	}
	keep := map[config.ServiceID]bool{}
	for _, vs := range t.Services {
		keep[vs.Service.ID()] = true
	}
	for _, s := range slices.Clone(e.services) {
		if !keep[s.cfg.ID()] {
			e.deleteService(s)
		}
	}
	for _, vs := range t.Services {
		s := e.service(vs.Service.ID())
		if s == nil {
			s, _ = newService(vs.Service)
			e.addService(s)
		} else {
			old := s.key()
			_ = s.configure(vs.Service)
			if s.key() != old && s.cfg.Protocol != config.ProtoFwmark {
				e.unindex(s, old)
				e.index(s)
			}
		}
		want := map[config.DestID]bool{}
		for _, d := range vs.Dests {
			want[d.ID()] = true
			if i := s.findDest(d.ID()); i >= 0 {
				_ = s.editDest(i, d, e)
			} else {
				_, _ = s.addDest(d, e)
			}
		}
		for i := len(s.dests) - 1; i >= 0; i-- {
			if !want[s.dests[i].cfg.ID()] {
				s.delDest(i)
			}
		}
	}
	e.table = cloneTable(t)
	return nil
}

// Handle answers one lvsadm request. A command that changes state is not
// applied once ctx is done: the client has gone (ctl.ErrClientGone), maybe
// after giving up while the engine was busy.
func (e *Engine) Handle(ctx context.Context, _ ctl.Peer, req ctl.Request) ctl.Reply {
	c := req.Command
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.Op.Mutates() && ctx.Err() != nil {
		return ctl.Reply{Error: "not applied: " + context.Cause(ctx).Error()}
	}
	switch c.Op {
	case config.OpList:
		switch {
		case c.List.Connections:
			return ctl.Reply{ConnTabSize: connTabSize, Conns: e.connStatus()}
		case c.List.Timeout:
			tcp, fin, udp := e.conns.Timeouts()
			return ctl.Reply{Timeouts: ctl.Timeouts{TCP: tcp, TCPFin: fin, UDP: udp}}
		case c.List.Daemon:
			return ctl.Reply{}
		case c.List.Defense:
			d := toConfigDefense(e.conns.Defense())
			return ctl.Reply{Defense: &d}
		}
		return e.serviceReply(c)
	case config.OpSave:
		return e.serviceReply(c)
	case config.OpVersion, config.OpHelp:
		return ctl.Reply{}
	case config.OpRestore:
		if err := e.applyBatch(ctx, req.Rules); err != nil {
			return ctl.Reply{Error: err.Error()}
		}
		return ctl.Reply{}
	}
	if err := e.apply(c); err != nil {
		return ctl.Reply{Error: err.Error()}
	}
	return ctl.Reply{}
}

func (e *Engine) serviceReply(c config.Command) ctl.Reply {
	r := ctl.Reply{ConnTabSize: connTabSize}
	for _, s := range e.services {
		if c.HasService && s.cfg.ID() != c.Service.ID() {
			continue
		}
		r.Services = append(r.Services, s.status())
	}
	if c.HasService && len(r.Services) == 0 {
		r.Error = config.ErrNoService.Error()
	}
	return r
}

func (s *Service) status() ctl.ServiceStatus {
	st := ctl.ServiceStatus{Service: s.cfg, Stats: s.stats.status(), Rate: s.est.status()}
	for _, d := range s.dests {
		cfg := d.cfg
		if d.local {
			cfg.Forward = config.ForwardLocal // what ipvsadm -L shows; -S still saves -g
		}
		st.Dests = append(st.Dests, ctl.DestStatus{
			Dest:        cfg,
			ActiveConns: d.ActiveConns, InactConns: d.InactConns, PersistConns: d.PersistConns,
			Stats: d.stats.status(), Rate: d.est.status(),
		})
	}
	return st
}

func (e *Engine) connStatus() []ctl.ConnStatus {
	var out []ctl.ConnStatus
	e.conns.Range(e.now(), func(en *conntrack.Entry) bool {
		out = append(out, ctl.ConnStatus{
			Proto:   conntrack.ProtoName(en.Proto),
			State:   en.State,
			Expires: en.Expires.Truncate(time.Second),
			Client:  en.Client, Virtual: en.Virtual, Dest: en.Real,
		})
		return true
	})
	return out
}

// Table returns the applied configuration.
func (e *Engine) Table() config.Table {
	e.mu.Lock()
	defer e.mu.Unlock()
	return cloneTable(e.table)
}
