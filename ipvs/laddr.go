package ipvs

import (
	"fmt"
	"net/netip"

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
	}
}

// checkFwd refuses a forwarding method the engine cannot run for service
// id: a FULLNAT real server needs the service's local addresses first (as
// with the fork's ipvsadm, -P before -a -b), or every connection would be
// dropped for want of a source.
func (e *Engine) checkFwd(id config.ServiceID, f config.Forward) error {
	if _, err := fwdOf(f); err != nil {
		return err
	}
	if f == config.ForwardFullNAT {
		if s := e.service(id); s == nil || len(s.laddrs) == 0 {
			return fmt.Errorf("forwarding method %s needs local addresses for %s first (-P/--add-laddr, not yet in lvsadm)", f.Name(), id)
		}
	}
	return nil
}

// SetServiceLaddrs sets the local addresses of a FULLNAT service (ipvsadm's
// -P/--add-laddr of the FULLNAT fork). Pools are shared by every service
// using an address, so its ports stay unique.
func (e *Engine) SetServiceLaddrs(id config.ServiceID, addrs []netip.Addr) error {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.service(id)
	if s == nil {
		return fmt.Errorf("local addresses for %s: no such service", id)
	}
	ls := make([]*laddrPool, 0, len(addrs))
	for _, a := range addrs {
		if !a.Is4() {
			return fmt.Errorf("local address %s for %s: only IPv4 is supported", a, id)
		}
		l := e.laddrs[a.As4()]
		if l == nil {
			l = &laddrPool{addr: a}
			e.laddrs[a.As4()] = l
		}
		ls = append(ls, l)
	}
	s.laddrs = ls
	return nil
}
