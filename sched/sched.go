package sched

import "net/netip"

// Flow is what a scheduler may look at when a new connection arrives.
//
// sh and mh hash SrcAddr (and SrcPort with their -port flag), dh, lblc and
// lblcr hash DstAddr. For a connection scheduled from an ICMP error's
// embedded header (the kernel's "inverse" iph), the caller passes the
// client's address and port as SrcAddr/SrcPort, which is what the kernel
// hashes in that case. IPv4 addresses must be 4-byte (netip.AddrFrom4),
// not 4in6.
type Flow struct {
	Proto   uint8
	SrcAddr netip.Addr
	DstAddr netip.Addr
	SrcPort uint16
	DstPort uint16
	// Now is the caller's monotonic clock in nanoseconds (lblc/lblcr cache
	// ageing); schedulers never read the wall clock themselves.
	Now int64
}

// Flags are the service's scheduler flags (ipvsadm -b), IP_VS_SVC_F_SCHED*.
type Flags uint32

const (
	Flag1 Flags = 0x0008 // sh-fallback, mh-fallback
	Flag2 Flags = 0x0010 // sh-port, mh-port
	Flag3 Flags = 0x0020
)

// FlagSetter is implemented by every scheduler New returns: ipvsadm -E -b
// changes the flags of a running service without resetting its scheduler.
type FlagSetter interface {
	Flags() Flags
	SetFlags(Flags) error
}

// Scheduler picks a destination for a new connection. It is called once per
// new connection, never per packet.
type Scheduler interface {
	// Name is the ipvsadm name: "rr", "wrr", ...
	Name() string
	// Update is called whenever the destination list, a weight or a flag
	// changes. dests is in kernel list order: newest added first. The slice
	// is owned by the caller and must not be modified; the scheduler may
	// keep it until the next Update.
	Update(dests []*Dest)
	// Schedule returns the chosen destination, or nil when none is
	// available ("no destination available").
	Schedule(f *Flow) *Dest
}
