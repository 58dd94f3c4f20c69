package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// FormatSave is what ipvsadm -S prints for the given services: rules that
// ParseRules (ipvsadm -R) loads back. Services and real servers are sorted
// as ipvsadm sorts them. names resolves hosts and ports as ipvsadm -S does
// without -n; nil is -n.
//
// One deliberate difference: ipvsadm -S drops the connection thresholds;
// here a non-zero -x or -y is written after -w, so a save reloads to the
// same configuration. Without thresholds the output is ipvsadm's, byte for
// byte. As in ipvsadm, -M is written only for persistent services and the
// --set timeouts are not saved.
func FormatSave(services []VirtualService, names *Names) string {
	var b strings.Builder
	for _, vs := range SortServices(services) {
		s := vs.Service
		name := SaveServiceName(s, names)
		fmt.Fprintf(&b, "-A %s -s %s", name, s.Scheduler)
		if s.Persistent {
			fmt.Fprintf(&b, " -p %d", int64(s.PersistTimeout/time.Second))
			if bits := s.MaskBits(); s.Is6() && bits != 128 {
				fmt.Fprintf(&b, " -M %d", bits)
			} else if !s.Is6() && bits != 32 {
				fmt.Fprintf(&b, " -M %s", maskFromBits(bits, false))
			}
		}
		if s.PE != "" {
			fmt.Fprintf(&b, " --pe %s", s.PE)
		}
		if s.OnePacket {
			b.WriteString(" -o")
		}
		if s.SynProxy {
			b.WriteString(" -j enable")
		}
		if s.Flags != 0 {
			fmt.Fprintf(&b, " -b %s", SchedFlagsString(s.Scheduler, s.Flags))
		}
		b.WriteByte('\n')
		// The fork's ipvsadm -S saves neither local addresses nor FULLNAT
		// real servers; here both are written, local addresses first, as
		// a FULLNAT real server needs them.
		for _, l := range vs.Laddrs {
			fmt.Fprintf(&b, "-P %s -z %s\n", name, l)
		}
		for _, d := range SortDests(vs.Dests) {
			fmt.Fprintf(&b, "-a %s -r %s %s -w %d", name,
				FormatAddrPort(d.Addr, d.Port, s.Protocol, names), d.Forward.Switch(), d.Weight)
			if d.UThreshold != 0 {
				fmt.Fprintf(&b, " -x %d", d.UThreshold)
			}
			if d.LThreshold != 0 {
				fmt.Fprintf(&b, " -y %d", d.LThreshold)
			}
			if d.Forward == ForwardTunnel {
				switch d.TunType {
				case TunIPIP:
					b.WriteString(" --tun-type ipip")
				case TunGUE:
					fmt.Fprintf(&b, " --tun-type gue --tun-port %d --tun-%s", d.TunPort, d.TunCsum)
				case TunGRE:
					fmt.Fprintf(&b, " --tun-type gre --tun-%s", d.TunCsum)
				}
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// SaveServiceName is the service as -S names it: "-t host:port",
// "-u host:port", "--sctp-service host:port", "-f N" or "-f N -6".
func SaveServiceName(s Service, names *Names) string {
	switch s.Protocol {
	case ProtoFwmark:
		if s.FwmarkIPv6 {
			return fmt.Sprintf("-f %d -6", s.Fwmark)
		}
		return fmt.Sprintf("-f %d", s.Fwmark)
	case ProtoUDP:
		return "-u " + FormatAddrPort(s.Addr, s.Port, s.Protocol, names)
	case ProtoSCTP:
		return "--sctp-service " + FormatAddrPort(s.Addr, s.Port, s.Protocol, names)
	}
	return "-t " + FormatAddrPort(s.Addr, s.Port, s.Protocol, names)
}

// CompareServices orders services as ipvsadm -L and -S do: address services
// before fwmark ones (by mark), IPv4 before IPv6, then TCP, UDP, SCTP, then
// address and port. (ipvsadm subtracts 32-bit addresses into an int, which
// misorders addresses more than 2^31 apart; this compares them properly.)
func CompareServices(a, b Service) int {
	if c := cmp.Compare(a.Fwmark, b.Fwmark); c != 0 {
		return c
	}
	if c := cmpBool(a.Is6(), b.Is6()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Protocol.IPProto(), b.Protocol.IPProto()); c != 0 {
		return c
	}
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// CompareDests orders real servers as ipvsadm does: by address, then port.
func CompareDests(a, b Dest) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// SortServices returns the services sorted by CompareServices.
func SortServices(vss []VirtualService) []VirtualService {
	out := slices.Clone(vss)
	slices.SortStableFunc(out, func(a, b VirtualService) int { return CompareServices(a.Service, b.Service) })
	return out
}

// SortDests returns the real servers sorted by CompareDests.
func SortDests(ds []Dest) []Dest {
	out := slices.Clone(ds)
	slices.SortStableFunc(out, CompareDests)
	return out
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
