package ipvs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/ipvs/ctl"
)

// connTabSize is what the banner of ipvsadm -L reports: the kernel's default
// connection hash size (2^12); lvsd's table grows as needed.
const connTabSize = 4096

// Control-plane locking. Changes are serialised by ctlMu, which the receive
// workers never take. A change is validated and its side effects (the
// nftables guard, route lookups) are done holding ctlMu only; e.mu, the
// data-path lock, is then held just long enough to swap the run-time state
// (a few map and slice updates). Listings take e.mu in short chunks.

// SetGuard makes every configuration change also update the nftables guard,
// before the change takes effect. Call it before Apply and Run; the next
// change (SetMarks, Replace, Apply) installs the whole guard.
func (e *Engine) SetGuard(g *KernelGuard) {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	e.guard, e.guardOK = g, false
}

// SetMarks installs the classifier rules that feed fwmark services.
func (e *Engine) SetMarks(rules []MarkRule) error {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	marks := slices.Clone(rules)
	if err := e.installGuard(e.guardRefs(e.localAddrs), marks); err != nil {
		return err
	}
	// A rule's single destination address is a VIP of an fwmark service:
	// lvsd answers ARP for it as for any VIP. The kernel still sees what
	// the rules do not match (the other director's frames, in seed 003).
	addrs := map[[4]byte]bool{}
	for _, r := range marks {
		if r.Dst.IsValid() && r.Dst.IsSingleIP() {
			addrs[r.Dst.Addr().As4()] = true
		}
	}
	e.mu.Lock()
	e.marks, e.markAddrs = marks, addrs
	e.mu.Unlock()
	return nil
}

// svcElems is what a service makes the guard drop: the whole VIP, or only
// its protocol and port when the kernel also holds the address (a service
// on the director's own address must not take the address's other ports
// away from the kernel's listeners).
func svcElems(s config.Service, local map[[4]byte]bool) []GuardElem {
	if s.Protocol == config.ProtoFwmark || !s.Addr.Is4() {
		return nil
	}
	if local[s.Addr.As4()] && s.Port != 0 {
		return []GuardElem{{Set: SetOwnedSvc, Key: ProtoAddrPort{Proto: s.Protocol.IPProto(), AddrPort: netipAddrPort(s.Addr, s.Port)}}}
	}
	return []GuardElem{addrElem(SetOwned, s.Addr)}
}

// destElems is what a real server makes the guard drop: the replies and
// ICMP errors of NAT real servers, which lvsd translates.
func destElems(s config.Service, d config.Dest) []GuardElem {
	if d.Forward != config.ForwardMasq || s.Protocol == config.ProtoFwmark || !d.Addr.Is4() {
		return nil
	}
	port := d.Port
	if port == 0 {
		port = s.Port
	}
	return []GuardElem{
		{Set: SetNATReal, Key: ProtoAddrPort{Proto: s.Protocol.IPProto(), AddrPort: netipAddrPort(d.Addr, port)}},
		addrElem(SetNATRS, d.Addr),
	}
}

// guardRefs counts, for every guard element, the services and real servers
// that want it.
func (e *Engine) guardRefs(local map[[4]byte]bool) map[GuardElem]int {
	return tableRefs(e.tableLocked(), local)
}

func tableRefs(t config.Table, local map[[4]byte]bool) map[GuardElem]int {
	refs := map[GuardElem]int{}
	for a := range local {
		refs[addrElem(SetLocal, netip.AddrFrom4(a))]++
	}
	for _, vs := range t.Services {
		for _, el := range svcElems(vs.Service, local) {
			refs[el]++
		}
		for _, d := range vs.Dests {
			for _, el := range destElems(vs.Service, d) {
				refs[el]++
			}
		}
		for _, a := range vs.Laddrs {
			for _, el := range laddrElems(a) {
				refs[el]++
			}
		}
	}
	return refs
}

// installGuard replaces the whole guard with refs and marks.
func (e *Engine) installGuard(refs map[GuardElem]int, marks []MarkRule) error {
	if e.guard != nil {
		var r GuardRule
		for el := range refs {
			switch el.Set {
			case SetOwned:
				r.Owned = append(r.Owned, el.Key.Addr())
			case SetOwnedSvc:
				r.OwnedPorts = append(r.OwnedPorts, el.Key)
			case SetNATReal:
				r.NATReal = append(r.NATReal, el.Key)
			case SetLocal:
				r.Local = append(r.Local, el.Key.Addr())
			}
		}
		r.Marks = marks
		e.guardOK = false
		if err := e.guard.Apply(context.Background(), r); err != nil {
			return err
		}
		e.guardOK = true
	}
	e.gref = refs
	return nil
}

// guardChange is the net effect of one change on the guard's reference
// counts.
type guardChange map[GuardElem]int

func (g guardChange) add(els []GuardElem, n int) {
	for _, el := range els {
		g[el] += n
	}
}

// updateGuard applies a change's guard effect: elements whose count reaches
// zero are removed, those that leave it added. Additions go in now, before
// the change takes effect (the kernel never sees a flow lvsd is about to
// own); removals are returned to run after it (the kernel never sees a NAT
// reply lvsd still translates). The counts change only when the kernel took
// the additions.
func (e *Engine) updateGuard(ch guardChange) (after func(), err error) {
	if e.guard != nil && !e.guardOK {
		next := maps.Clone(e.gref)
		applyRefs(next, ch)
		return func() {}, e.installGuard(next, e.marksLocked())
	}
	var add, del []GuardElem
	for el, n := range ch {
		before, after := e.gref[el] > 0, e.gref[el]+n > 0
		switch {
		case after && !before:
			add = append(add, el)
		case before && !after:
			del = append(del, el)
		}
	}
	if e.guard != nil && len(add) > 0 {
		if err := e.guard.Update(context.Background(), add, nil); err != nil {
			return nil, err
		}
	}
	applyRefs(e.gref, ch)
	return func() {
		if e.guard == nil || len(del) == 0 {
			return
		}
		if err := e.guard.Update(context.Background(), nil, del); err != nil {
			// The kernel is kept out of more than it needs to be; the
			// next change reinstalls the whole guard.
			e.guardOK = false
			e.log.Warn("removing nftables guard elements", "err", err)
		}
	}, nil
}

func applyRefs(refs map[GuardElem]int, ch guardChange) {
	for el, n := range ch {
		if refs[el] += n; refs[el] <= 0 {
			delete(refs, el)
		}
	}
}

func (e *Engine) marksLocked() []MarkRule {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.marks
}

// Apply runs one configuration command. It is all or nothing: a refused
// command changes neither the engine nor the kernel guard.
func (e *Engine) Apply(c config.Command) error { return e.applyOne(context.Background(), c) }

func (e *Engine) applyOne(ctx context.Context, c config.Command) error {
	if c.Op == config.OpSetDefense {
		// Run-time state like the sysctls, not part of the saved table.
		e.ctlMu.Lock()
		defer e.ctlMu.Unlock()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("not applied: %w", context.Cause(ctx))
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.setConfigDefense(c.Defense.Apply(e.configDefense()))
	}
	err := e.applyAll(ctx, []config.Command{c})
	var be *BatchError
	if errors.As(err, &be) {
		return be.Err // the command's own error, worded as the kernel's
	}
	return err
}

// BatchError says which command of a batch was refused.
type BatchError struct {
	Index int // of the refused command
	Err   error
}

func (e *BatchError) Error() string { return fmt.Sprintf("command %d: %v", e.Index+1, e.Err) }
func (e *BatchError) Unwrap() error { return e.Err }

// ApplyAll runs configuration commands as one: each is checked against the
// configuration the ones before it leave, the guard is programmed once for
// all of them (one netlink transaction), and then they are committed. A
// refused command (a *BatchError) changes nothing at all. This is
// what makes lvsadm -R of 10,000 lines a fraction of a second.
func (e *Engine) ApplyAll(cmds []config.Command) error {
	return e.applyAll(context.Background(), cmds)
}

// applyAll is ApplyAll that applies nothing once ctx is done (the client
// has gone, maybe after giving up while the control plane was busy).
func (e *Engine) applyAll(ctx context.Context, cmds []config.Command) error {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not applied: %w", context.Cause(ctx))
	}
	v := newConfigView(e)
	total := guardChange{}
	for i, c := range cmds {
		ch, err := v.check(c)
		if err != nil {
			return &BatchError{Index: i, Err: err}
		}
		for el, n := range ch {
			total[el] += n
		}
		v.apply(c)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not applied: %w", context.Cause(ctx))
	}
	after := func() {}
	if v.cleared {
		if err := e.installGuard(v.refs(), e.marksLocked()); err != nil {
			return err
		}
	} else {
		var err error
		if after, err = e.updateGuard(total); err != nil {
			return err
		}
	}
	// Nothing can fail from here on. A long batch is committed in chunks,
	// so the data path waits for one chunk at most; like the kernel's
	// ipvsadm -R, it may see the first part of a batch before the rest.
	for chunk := range slices.Chunk(cmds, commitChunk) {
		e.mu.Lock()
		for _, c := range chunk {
			e.commit(c)
		}
		e.mu.Unlock()
	}
	e.timeouts = v.timeouts
	after()
	return nil
}

// commitChunk is how many commands of a batch one hold of the data-path
// lock commits (tens of microseconds).
const commitChunk = 64

// configView is the configuration as a batch of commands leaves it, before
// any is committed: the running one, with the services the batch touches
// copied on first use.
type configView struct {
	e        *Engine
	touched  map[config.ServiceID]*svcView // nil: deleted by the batch
	order    []config.ServiceID            // services the batch added
	cleared  bool                          // a -C: untouched services are gone
	timeouts config.Timeouts
}

type svcView struct {
	cfg    config.Service
	dests  []config.Dest
	laddrs []netip.Addr
}

func newConfigView(e *Engine) *configView {
	return &configView{e: e, touched: map[config.ServiceID]*svcView{}, timeouts: e.timeouts}
}

func (v *configView) lookup(id config.ServiceID) *svcView {
	if sv, ok := v.touched[id]; ok || v.cleared {
		return sv
	}
	s := v.e.byID[id]
	if s == nil {
		return nil
	}
	sv := &svcView{cfg: s.cfg, dests: make([]config.Dest, len(s.dests)), laddrs: laddrAddrs(s.laddrs)}
	for i, d := range s.dests {
		sv.dests[i] = d.cfg
	}
	v.touched[id] = sv
	return sv
}

func (sv *svcView) findDest(id config.DestID) int {
	return slices.IndexFunc(sv.dests, func(d config.Dest) bool { return d.ID() == id })
}

// refs counts the guard elements of the whole view (after a -C).
func (v *configView) refs() map[GuardElem]int {
	var t config.Table
	for _, id := range v.order {
		if sv := v.touched[id]; sv != nil {
			t.Services = append(t.Services, config.VirtualService{Service: sv.cfg, Dests: sv.dests, Laddrs: sv.laddrs})
		}
	}
	return tableRefs(t, v.e.localAddrs)
}

// check validates c against the view with the kernel's semantics and error
// messages (those of config.Table.Apply), in constant time per command,
// and returns what it does to the guard.
func (v *configView) check(c config.Command) (guardChange, error) {
	local := v.e.localAddrs
	ch := guardChange{}
	switch c.Op {
	case config.OpStartDaemon, config.OpStopDaemon:
		return nil, errors.New("--start-daemon and --stop-daemon are not rules: give them to lvsadm one at a time, not in a restore")
	case config.OpClear, config.OpZero, config.OpSetTimeouts:
	case config.OpAddService, config.OpEditService, config.OpDeleteService,
		config.OpAddDest, config.OpEditDest, config.OpDeleteDest:
	case config.OpAddLaddr, config.OpDelLaddr:
		return checkLaddr(c, v.lookup(c.Service.ID()))
	default:
		return nil, fmt.Errorf("%s is not a configuration command", c.Op)
	}
	s := v.lookup(c.Service.ID())
	switch c.Op {
	case config.OpAddService, config.OpEditService:
		if err := c.Service.Validate(); err != nil {
			return nil, err
		}
		if c.Op == config.OpAddService && s != nil {
			return nil, config.ErrServiceExists
		}
		if c.Op == config.OpEditService && s == nil {
			return nil, config.ErrNoService
		}
		if _, err := newService(c.Service); err != nil {
			return nil, err
		}
		if s != nil {
			for _, d := range s.dests {
				if err := checkSynProxy(c.Service, d.Forward); err != nil {
					return nil, err
				}
			}
			ch.add(svcElems(s.cfg, local), -1)
			for _, d := range s.dests {
				ch.add(destElems(s.cfg, d), -1)
				ch.add(destElems(c.Service, d), 1)
			}
		}
		ch.add(svcElems(c.Service, local), 1)
	case config.OpDeleteService:
		if s == nil {
			return nil, config.ErrNoService
		}
		ch.add(svcElems(s.cfg, local), -1)
		for _, d := range s.dests {
			ch.add(destElems(s.cfg, d), -1)
		}
		for _, a := range s.laddrs {
			ch.add(laddrElems(a), -1)
		}
	case config.OpAddDest, config.OpEditDest, config.OpDeleteDest:
		if s == nil {
			return nil, config.ErrServiceNotDefined
		}
		i := s.findDest(c.Dest.ID())
		switch c.Op {
		case config.OpAddDest, config.OpEditDest:
			if err := c.Dest.Validate(); err != nil {
				return nil, err
			}
			if c.Op == config.OpAddDest && i >= 0 {
				return nil, config.ErrDestExists
			}
			if c.Op == config.OpEditDest && i < 0 {
				return nil, config.ErrNoDest
			}
			if err := checkFwd(c.Service.ID(), c.Dest.Forward, len(s.laddrs)); err != nil {
				return nil, err
			}
			if err := checkSynProxy(s.cfg, c.Dest.Forward); err != nil {
				return nil, err
			}
			if !c.Dest.Addr.Is4() {
				return nil, fmt.Errorf("real server %s: only IPv4 real servers are supported by lvsd yet", c.Dest.Addr)
			}
			ch.add(destElems(s.cfg, c.Dest), 1)
		case config.OpDeleteDest:
			if i < 0 {
				return nil, config.ErrNoDest
			}
		}
		if i >= 0 {
			ch.add(destElems(s.cfg, s.dests[i]), -1)
		}
	case config.OpZero:
		if c.HasService && s == nil {
			return nil, config.ErrNoService
		}
	case config.OpSetTimeouts:
		if err := checkTimeouts(c.Timeouts); err != nil {
			return nil, err
		}
	}
	return ch, nil
}

// apply records a checked command in the view.
func (v *configView) apply(c config.Command) {
	id := c.Service.ID()
	switch c.Op {
	case config.OpAddService:
		v.touched[id] = &svcView{cfg: c.Service}
		v.order = append(v.order, id)
	case config.OpEditService:
		v.lookup(id).cfg = c.Service
	case config.OpDeleteService:
		v.touched[id] = nil
	case config.OpClear:
		v.cleared = true
		clear(v.touched)
		v.order = v.order[:0]
	case config.OpAddDest:
		sv := v.lookup(id)
		sv.dests = append(sv.dests, c.Dest)
	case config.OpEditDest:
		sv := v.lookup(id)
		sv.dests[sv.findDest(c.Dest.ID())] = c.Dest
	case config.OpDeleteDest:
		sv := v.lookup(id)
		sv.dests = slices.Delete(sv.dests, sv.findDest(c.Dest.ID()), sv.findDest(c.Dest.ID())+1)
	case config.OpSetTimeouts:
		v.timeouts = mergeTimeouts(v.timeouts, c.Timeouts)
	case config.OpAddLaddr:
		sv := v.lookup(id)
		sv.laddrs = append(slices.Clip(sv.laddrs), c.Laddr)
	case config.OpDelLaddr:
		sv := v.lookup(id)
		sv.laddrs = slices.DeleteFunc(slices.Clone(sv.laddrs), func(a netip.Addr) bool { return a == c.Laddr })
	}
}

// checkTimeouts refuses what conntrack's SetTimeouts would, before anything
// is changed.
func checkTimeouts(t config.Timeouts) error {
	for _, v := range [...]struct {
		name string
		d    time.Duration
	}{{"tcp", t.TCP}, {"tcpfin", t.TCPFin}, {"udp", t.UDP}} {
		if v.d < 0 || v.d > conntrack.MaxTimeout {
			return fmt.Errorf("conntrack: --set %s %v: %w (0..%v)", v.name, v.d, conntrack.ErrTimeout, conntrack.MaxTimeout)
		}
	}
	return nil
}

func mergeTimeouts(t, c config.Timeouts) config.Timeouts {
	if c.TCP != 0 {
		t.TCP = c.TCP
	}
	if c.TCPFin != 0 {
		t.TCPFin = c.TCPFin
	}
	if c.UDP != 0 {
		t.UDP = c.UDP
	}
	return t
}

// commit applies a validated command to the run-time state. Call it holding
// ctlMu and e.mu.
func (e *Engine) commit(c config.Command) {
	switch c.Op {
	case config.OpZero:
		e.zero(c)
	case config.OpSetTimeouts:
		t := c.Timeouts
		_ = e.conns.SetTimeouts(t.TCP, t.TCPFin, t.UDP) // checked by checkTimeouts
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
	case config.OpAddLaddr:
		e.addLaddr(e.service(c.Service.ID()), c.Laddr)
	case config.OpDelLaddr:
		e.delLaddr(e.service(c.Service.ID()), c.Laddr)
	}
}

func (e *Engine) service(id config.ServiceID) *Service { return e.byID[id] }

func (e *Engine) addService(s *Service) {
	e.services = append(e.services, s)
	e.byID[s.cfg.ID()] = s
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
	delete(e.byID, s.cfg.ID())
	for len(s.dests) > 0 {
		s.delDest(0)
	}
	for len(s.laddrs) > 0 {
		e.delLaddr(s, s.laddrs[0].addr)
	}
	e.services = slices.DeleteFunc(e.services, func(x *Service) bool { return x == s })
}

// zero clears counters; check has verified the service exists.
func (e *Engine) zero(c config.Command) {
	if c.HasService {
		s := e.service(c.Service.ID())
		e.retire(s)
		zeroService(s)
		return
	}
	e.gone = counters{}
	for _, s := range e.services {
		zeroService(s)
	}
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
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	// Validate every service and real server before changing anything.
	for _, vs := range t.Services {
		if _, err := newService(vs.Service); err != nil {
			return err
		}
		for _, d := range vs.Dests {
			if err := checkFwd(vs.Service.ID(), d.Forward, len(vs.Laddrs)); err != nil {
				return fmt.Errorf("%s: %w", vs.Service.ID(), err)
			}
			if err := checkSynProxy(vs.Service, d.Forward); err != nil {
				return err
			}
		}
		for _, a := range vs.Laddrs {
			if _, err := checkLaddr(config.Command{Op: config.OpAddLaddr, Service: vs.Service, Laddr: a}, &svcView{}); err != nil {
				return err
			}
		}
	}
	tmo := t.Timeouts
	e.mu.Lock()
	err := e.conns.SetTimeouts(tmo.TCP, tmo.TCPFin, tmo.UDP)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if err := e.installGuard(tableRefs(t, e.localAddrs), e.marksLocked()); err != nil {
		return err
	}
	e.timeouts = t.Timeouts
	// Reloading is atomic for the data path: one critical section.
	e.mu.Lock()
	defer e.mu.Unlock()
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
		for _, l := range slices.Clone(s.laddrs) {
			if !slices.Contains(vs.Laddrs, l.addr) {
				e.delLaddr(s, l.addr)
			}
		}
		for _, a := range vs.Laddrs {
			if !slices.Contains(laddrAddrs(s.laddrs), a) {
				e.addLaddr(s, a)
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
	return nil
}

// Handle answers one lvsadm request. A command that changes state is not
// applied once ctx is done: the client has gone (ctl.ErrClientGone), maybe
// after giving up while the engine was busy.
func (e *Engine) Handle(ctx context.Context, peer ctl.Peer, req ctl.Request) ctl.Reply {
	c := req.Command
	switch c.Op {
	case config.OpOwn, config.OpRelease, config.OpOwnership, config.OpVRRPReport:
		return e.handleOwn(ctx, peer, req)
	case config.OpList:
		switch {
		case c.List.Connections:
			return ctl.Reply{ConnTabSize: connTabSize, Conns: e.connStatus()}
		case c.List.Timeout:
			e.mu.Lock()
			tcp, fin, udp := e.conns.Timeouts()
			e.mu.Unlock()
			return ctl.Reply{Timeouts: ctl.Timeouts{TCP: tcp, TCPFin: fin, UDP: udp}}
		case c.List.Daemon:
			return ctl.Reply{Daemons: e.SyncStatus()}
		case c.List.Defense:
			e.mu.Lock()
			d := e.configDefense()
			e.mu.Unlock()
			return ctl.Reply{Defense: &d}
		}
		r := e.serviceReply(c)
		if !c.HasService && r.Error == "" {
			e.listOwnership(&r) // what lvsadm -L shows after the table
		}
		return r
	case config.OpSave:
		return e.serviceReply(c)
	case config.OpGetLaddr:
		r := e.serviceReply(c)
		if r.Error == config.ErrNoService.Error() {
			r.Error = config.ErrServiceNotDefined.Error() // the fork's word for -G
		}
		return r
	case config.OpVersion, config.OpHelp:
		return ctl.Reply{}
	case config.OpStartDaemon, config.OpStopDaemon:
		if ctx.Err() != nil {
			return ctl.Reply{Error: ctl.ErrClientGone.Error()}
		}
		var err error
		if c.Op == config.OpStartDaemon {
			err = e.StartSync(c.Daemon)
		} else {
			err = e.StopSync(c.Daemon.State)
		}
		if err != nil {
			return ctl.Reply{Error: err.Error()}
		}
		return ctl.Reply{}
	case config.OpRestore:
		if err := e.applyBatch(ctx, req.Rules); err != nil {
			return ctl.Reply{Error: err.Error()}
		}
		return ctl.Reply{}
	}
	if err := e.applyOne(ctx, c); err != nil {
		return ctl.Reply{Error: err.Error()}
	}
	return ctl.Reply{}
}

// listChunk is how many services or connection slots a listing handles per
// hold of the data-path lock: a long listing never stalls forwarding for
// more than one chunk.
const listChunk = 1024

func (e *Engine) serviceReply(c config.Command) ctl.Reply {
	e.ctlMu.Lock() // the service list stays as it is while we walk it
	defer e.ctlMu.Unlock()
	r := ctl.Reply{ConnTabSize: connTabSize, FTPPorts: e.FTPPorts()}
	if c.HasService {
		s := e.byID[c.Service.ID()]
		if s == nil {
			r.Error = config.ErrNoService.Error()
			return r
		}
		e.mu.Lock()
		r.Services = append(r.Services, s.status())
		e.mu.Unlock()
		return r
	}
	r.Services = make([]ctl.ServiceStatus, 0, len(e.services))
	for chunk := range slices.Chunk(e.services, listChunk) {
		e.mu.Lock()
		for _, s := range chunk {
			r.Services = append(r.Services, s.status())
		}
		e.mu.Unlock()
	}
	return r
}

func (s *Service) status() ctl.ServiceStatus {
	st := ctl.ServiceStatus{Service: s.cfg, Stats: s.stats.status(), Rate: s.est.status()}
	for _, l := range s.laddrs {
		st.Laddrs = append(st.Laddrs, ctl.LaddrStatus{Addr: l.addr, Conns: l.conns})
	}
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

// connStatus lists the connection table in chunks of slots, letting go of
// the data-path lock between them (600k connections are hundreds of
// milliseconds of work). Like reading /proc/net/ip_vs_conn, the listing is
// not one instant: connections may come and go while it is taken.
func (e *Engine) connStatus() []ctl.ConnStatus {
	e.mu.Lock()
	out := make([]ctl.ConnStatus, 0, e.conns.Len())
	e.mu.Unlock()
	fn := func(en *conntrack.Entry) bool {
		out = append(out, ctl.ConnStatus{
			Proto:   conntrack.ProtoName(en.Proto),
			State:   en.State,
			Expires: en.Expires.Truncate(time.Second),
			Client:  en.Client, Virtual: en.Virtual, Dest: en.Real,
		})
		return true
	}
	for next := conntrack.ConnID(1); next != 0; {
		e.mu.Lock()
		next = e.conns.RangeFrom(next, 4*listChunk, e.now(), fn)
		e.mu.Unlock()
	}
	return out
}

// Table returns the applied configuration.
func (e *Engine) Table() config.Table {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	return e.tableLocked()
}

// tableLocked builds the configuration from the run-time state (real
// servers in the order they were added). Call it holding ctlMu.
func (e *Engine) tableLocked() config.Table {
	t := config.Table{Timeouts: e.timeouts, Services: make([]config.VirtualService, 0, len(e.services))}
	for _, s := range e.services {
		vs := config.VirtualService{Service: s.cfg, Laddrs: laddrAddrs(s.laddrs)}
		if len(s.dests) > 0 {
			vs.Dests = make([]config.Dest, 0, len(s.dests))
		}
		for i := len(s.dests) - 1; i >= 0; i-- {
			vs.Dests = append(vs.Dests, s.dests[i].cfg)
		}
		t.Services = append(t.Services, vs)
	}
	return t
}
