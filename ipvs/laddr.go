package ipvs

import (
	"fmt"
	"net/netip"
	"slices"

	"lvslab/config"
	"lvslab/rewrite"
)

// FULLNAT local ports, the kernel's fullnat_lport_min/max defaults.
const (
	lportMin = 5000
	lportMax = 65535
)

// laddrPool hands out the local ports of one FULLNAT local address, per
// protocol, from a FIFO of free ports: O(1) per connection instead of the
// kernel's trial loop (DPVS's pre-allocated pools are the model), and a
// released port goes to the back, so a real server's TIME_WAIT for it has
// the longest time to end before it is reused. A port is unique per local
// address across every real server: stricter than the kernel's uniqueness
// per ⟨RIP:RPORT, LIP⟩, so one address carries at most 60,536 connections
// per protocol.
type laddrPool struct {
	addr netip.Addr
	tcp  portRing
	udp  portRing
	// conns counts the connections holding one of its ports (the CONNS
	// column of ipvsadm -G).
	conns uint32
}

type portRing struct {
	free        []uint16 // allocated on first use
	head, count int
}

func (r *portRing) get() (uint16, bool) {
	if r.free == nil {
		r.free = make([]uint16, lportMax-lportMin+1)
		for i := range r.free {
			r.free[i] = uint16(lportMin + i)
		}
		r.count = len(r.free)
	}
	if r.count == 0 {
		return 0, false
	}
	p := r.free[r.head]
	r.head = (r.head + 1) % len(r.free)
	r.count--
	return p, true
}

func (r *portRing) put(p uint16) {
	if r.free == nil || r.count == len(r.free) || p < lportMin {
		return
	}
	r.free[(r.head+r.count)%len(r.free)] = p
	r.count++
}

func (l *laddrPool) ring(proto uint8) *portRing {
	if proto == rewrite.ProtoUDP {
		return &l.udp
	}
	return &l.tcp
}

// allocLocal picks the service's next local address round robin and a free
// port on it.
func (s *Service) allocLocal(proto uint8) (netip.AddrPort, bool) {
	for range s.laddrs {
		l := s.laddrs[s.lnext%len(s.laddrs)]
		s.lnext++
		if port, ok := l.ring(proto).get(); ok {
			l.conns++
			return netip.AddrPortFrom(l.addr, port), true
		}
	}
	return netip.AddrPort{}, false
}

// releaseLocal gives a FULLNAT connection's local port back (the connection
// table calls it when the connection goes away).
func (e *Engine) releaseLocal(proto uint8, local, _ netip.AddrPort) {
	if l := e.laddrs[local.Addr().As4()]; l != nil {
		l.ring(proto).put(local.Port())
		if l.conns > 0 {
			l.conns--
		}
	}
}

// checkFwd refuses a forwarding method the engine cannot run for service
// id with nLaddrs local addresses: a FULLNAT real server needs the
// service's local addresses first (as with the fork's ipvsadm, -P before
// -a -b), or every connection would be dropped for want of a source.
func checkFwd(id config.ServiceID, f config.Forward, nLaddrs int) error {
	if _, err := fwdOf(f); err != nil {
		return err
	}
	if f == config.ForwardFullNAT && nLaddrs == 0 {
		return fmt.Errorf("forwarding method %s needs local addresses for %s first (-P -z LADDR)", f.Name(), id)
	}
	return nil
}

// checkLaddr validates a -P or -Q against a service's view.
func checkLaddr(c config.Command, sv *svcView) (guardChange, error) {
	if sv == nil {
		return nil, config.ErrServiceNotDefined
	}
	i := slices.Index(sv.laddrs, c.Laddr)
	ch := guardChange{}
	switch c.Op {
	case config.OpAddLaddr:
		if !c.Laddr.Is4() || c.Laddr.IsUnspecified() || c.Laddr.IsMulticast() || c.Laddr.IsLoopback() {
			return nil, fmt.Errorf("local address %s for %s: lvsd needs a unicast IPv4 address", c.Laddr, c.Service.ID())
		}
		if i >= 0 {
			return nil, config.ErrLaddrExists
		}
		ch.add(laddrElems(c.Laddr), 1)
	case config.OpDelLaddr:
		if i < 0 {
			return nil, config.ErrNoLaddr
		}
		if len(sv.laddrs) == 1 && slices.ContainsFunc(sv.dests, func(d config.Dest) bool { return d.Forward == config.ForwardFullNAT }) {
			return nil, fmt.Errorf("local address %s is the last of %s, which has FULLNAT real servers (delete them first)", c.Laddr, c.Service.ID())
		}
		ch.add(laddrElems(c.Laddr), -1)
	}
	return ch, nil
}

// laddrElems is what a local address makes the guard drop: every packet to
// it (the real servers' replies are lvsd's to translate), as for a VIP.
func laddrElems(a netip.Addr) []GuardElem { return []GuardElem{addrElem(SetOwned, a)} }

// addLaddr gives s the local address a: its port pool, shared with every
// service using a, and lvsd's ownership of a (ARP, ICMP echo). Call it
// holding ctlMu and e.mu.
func (e *Engine) addLaddr(s *Service, a netip.Addr) {
	l := e.laddrs[a.As4()]
	if l == nil {
		// Pools are never removed: a port stays unique for as long as a
		// connection may hold it, whatever the configuration does.
		l = &laddrPool{addr: a}
		e.laddrs[a.As4()] = l
	}
	s.laddrs = append(s.laddrs, l)
	e.owned[a.As4()]++
}

// delLaddr takes a from s; its connections keep their ports until they end.
func (e *Engine) delLaddr(s *Service, a netip.Addr) {
	i := slices.IndexFunc(s.laddrs, func(l *laddrPool) bool { return l.addr == a })
	if i < 0 {
		return
	}
	s.laddrs = slices.Delete(s.laddrs, i, i+1)
	if k := a.As4(); e.owned[k] > 1 {
		e.owned[k]--
	} else {
		delete(e.owned, k)
	}
}

func laddrAddrs(ls []*laddrPool) []netip.Addr {
	if len(ls) == 0 {
		return nil
	}
	out := make([]netip.Addr, len(ls))
	for i, l := range ls {
		out[i] = l.addr
	}
	return out
}

// SetServiceLaddrs makes addrs the local addresses of a FULLNAT service, by
// the -Q and -P commands that take it there (one transaction).
func (e *Engine) SetServiceLaddrs(id config.ServiceID, addrs []netip.Addr) error {
	t := e.Table()
	vs, ok := t.Lookup(id)
	if !ok {
		return fmt.Errorf("local addresses for %s: %w", id, config.ErrServiceNotDefined)
	}
	var cmds []config.Command
	for _, a := range addrs {
		if !slices.Contains(vs.Laddrs, a) {
			cmds = append(cmds, config.Command{Op: config.OpAddLaddr, Service: vs.Service, Laddr: a})
		}
	}
	for _, a := range vs.Laddrs {
		if !slices.Contains(addrs, a) {
			cmds = append(cmds, config.Command{Op: config.OpDelLaddr, Service: vs.Service, Laddr: a})
		}
	}
	return e.ApplyAll(cmds)
}
