package sched

import "net/netip"

// Flow is what a scheduler may look at when a new connection arrives.
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
