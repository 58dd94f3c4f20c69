package ipvs

import (
	"fmt"
	"net/netip"
	"unsafe"

	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/sched"
)

// Service is a virtual service at run time: its configuration, scheduler and
// real servers.
type Service struct {
	cfg     config.Service
	sched   sched.Scheduler
	persist *conntrack.Persistence // nil unless -p
	dests   []*Dest                // kernel order: newest first
	sdests  []*sched.Dest          // the same, as the scheduler sees them
	stats   counters
	est     estimator

	// trash holds deleted real servers for ip_vs_trash_get_dest (trash.go);
	// now is the engine's clock, for the trash's idle times.
	trash []trashedDest
	now   func() int64

	// FULLNAT local addresses (SetServiceLaddrs) and the round robin over them.
	laddrs []*laddrPool
	lnext  int
}

// Dest is a real server at run time. Its first field is the scheduler's
// record, which the connection table holds; destOf recovers the Dest from it.
type Dest struct {
	sched.Dest // must stay the first field (see destOf)
	cfg        config.Dest
	svc        *Service
	stats      counters
	est        estimator

	// Where packets to this real server leave, resolved from the routing
	// table (refreshed with it).
	destRoute
}

// destRoute is where packets to a real server leave.
type destRoute struct {
	out *Iface
	nh  netip.Addr // next hop: the RIP, or a gateway for NAT/TUN
	src netip.Addr // our address toward the RIP (outer source of TUN)
	// local: the RIP is one of our own addresses (IP_VS_CONN_F_LOCALNODE):
	// packets go to our own kernel, whatever the forwarding method said.
	local bool
}

// destOf is container_of: every *sched.Dest the engine hands to the
// scheduler or the connection table is the first field of a Dest, so the
// conversion is exact and costs nothing per packet.
func destOf(d *sched.Dest) *Dest { return (*Dest)(unsafe.Pointer(d)) }

func fwdOf(f config.Forward) (conntrack.Fwd, error) {
	switch f {
	case config.ForwardRoute:
		return conntrack.FwdRoute, nil
	case config.ForwardMasq:
		return conntrack.FwdMasq, nil
	case config.ForwardTunnel:
		return conntrack.FwdTunnel, nil
	case config.ForwardFullNAT:
		return conntrack.FwdFullNAT, nil
	}
	return 0, fmt.Errorf("forwarding method %s is not supported by lvsd yet", f.Name())
}

// svcKey finds TCP/UDP services on the packet path.
type svcKey struct {
	proto uint8
	addr  [4]byte
	port  uint16
}

func newService(cfg config.Service) (*Service, error) {
	if cfg.Is6() {
		return nil, fmt.Errorf("%s: IPv6 services are not supported by lvsd yet", cfg.ID())
	}
	if cfg.PE != "" {
		return nil, fmt.Errorf("%s: persistence engine %q is not supported by lvsd yet", cfg.ID(), cfg.PE)
	}
	if cfg.Protocol != config.ProtoTCP && cfg.Protocol != config.ProtoUDP && cfg.Protocol != config.ProtoFwmark {
		return nil, fmt.Errorf("%s: protocol %s is not supported by lvsd yet", cfg.ID(), cfg.Protocol.Name())
	}
	s := &Service{}
	if err := s.configure(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// configure applies a (new or edited) service configuration. A changed
// scheduler or flag set starts a fresh scheduler, as ip_vs_edit_service does.
func (s *Service) configure(cfg config.Service) error {
	name := cfg.Scheduler
	if name == "" {
		name = sched.DefaultName
	}
	if s.sched == nil || s.sched.Name() != name || s.cfg.Flags != cfg.Flags {
		sc, err := sched.New(name, cfg.Flags)
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.ID(), err)
		}
		s.sched = sc
		s.sched.Update(s.sdests)
	}
	s.cfg = cfg
	s.persist = nil
	if cfg.Persistent {
		p := &conntrack.Persistence{Port: cfg.Port, FwMark: cfg.Fwmark, Timeout: cfg.PersistTimeout}
		if cfg.Netmask.IsValid() {
			p.Netmask = cfg.Netmask
		}
		if p.Timeout == 0 {
			p.Timeout = config.DefaultPersistTimeout
		}
		s.persist = p
	}
	return nil
}

func (s *Service) findDest(id config.DestID) int {
	for i, d := range s.dests {
		if d.cfg.ID() == id {
			return i
		}
	}
	return -1
}

// addDest puts a new real server at the head of the list (list_add_rcu),
// which is what makes rr start with the newest server. A real server
// deleted earlier comes back from the trash with its counters, as
// ip_vs_add_dest does.
func (s *Service) addDest(cfg config.Dest, e *Engine) (*Dest, error) {
	if _, err := fwdOf(cfg.Forward); err != nil {
		return nil, err
	}
	if !cfg.Addr.Is4() {
		return nil, fmt.Errorf("real server %s: only IPv4 real servers are supported by lvsd yet", cfg.Addr)
	}
	s.now = e.now
	s.purgeTrash(e.now())
	d := s.reviveDest(cfg.ID())
	if d != nil {
		d.cfg = cfg
	} else {
		d = &Dest{cfg: cfg, svc: s}
		d.Addr, d.Port, d.Flags = cfg.Addr, cfg.Port, sched.DestAvailable
	}
	d.SetWeight(int32(cfg.Weight))
	d.SetThresholds(cfg.UThreshold, cfg.LThreshold)
	e.routeDest(d)
	s.dests = append([]*Dest{d}, s.dests...)
	s.resched()
	return d, nil
}

func (s *Service) editDest(i int, cfg config.Dest, e *Engine) error {
	if _, err := fwdOf(cfg.Forward); err != nil {
		return err
	}
	d := s.dests[i]
	d.cfg = cfg
	d.SetWeight(int32(cfg.Weight))
	d.SetThresholds(cfg.UThreshold, cfg.LThreshold)
	e.routeDest(d)
	s.resched()
	return nil
}

// delDest unlinks a real server onto the trash (trash.go). Connections
// still pointing at it keep the record alive; clearing Available makes their
// packets drop (expire_nodest_conn=0) and keeps dh/lblc/lblcr caches off it.
func (s *Service) delDest(i int) {
	d := s.dests[i]
	d.Flags &^= sched.DestAvailable
	s.trashDest(d)
	s.dests = append(s.dests[:i:i], s.dests[i+1:]...)
	s.resched()
}

func (s *Service) resched() {
	s.sdests = make([]*sched.Dest, len(s.dests))
	for i, d := range s.dests {
		s.sdests[i] = &d.Dest
	}
	s.sched.Update(s.sdests)
}

func (s *Service) key() svcKey {
	if !s.cfg.Addr.Is4() {
		return svcKey{} // fwmark services are found by mark, not by key
	}
	return svcKey{proto: s.cfg.Protocol.IPProto(), addr: s.cfg.Addr.As4(), port: s.cfg.Port}
}
