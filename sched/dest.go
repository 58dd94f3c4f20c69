// Package sched holds the IPVS schedulers and the destination (real server)
// record they choose between. The connection table (package conntrack)
// updates the connection counters held here, so a Dest is the meeting point of
// scheduling and tracking, exactly as struct ip_vs_dest is in the kernel.
//
// New builds a scheduler from its ipvsadm name (rr wrr lc wlc sed nq fo ovf
// sh dh mh lblc lblcr twos) and the service's -b flags; ParseFlags and
// FlagNames convert those flags from and to ipvsadm's spelling. Every
// selection rule, table fill and tie-break follows the kernel's modules
// (net/netfilter/ipvs/ip_vs_*.c), as summarised in reference/ipvs.md §3.
//
// Nothing in this package is safe for concurrent use: the engine serialises
// access (one worker owns a service's schedulers and counters).
package sched

import (
	"errors"
	"fmt"
	"net/netip"
)

// DestFlags mirror IP_VS_DEST_F_*.
type DestFlags uint8

const (
	// DestAvailable is cleared when a destination is deleted while connections
	// still reference it (the kernel moves it to the trash).
	DestAvailable DestFlags = 1 << iota
	// DestOverload is set and cleared by the connection thresholds.
	DestOverload
)

// Dest is one real server of one virtual service.
type Dest struct {
	Addr netip.Addr
	Port uint16

	// Weight 0 quiesces: no scheduler picks the destination for new
	// connections, existing ones go on.
	Weight int32
	// LastWeight is the last non-zero weight (the mh table is built from it,
	// so quiescing does not reshuffle the table).
	LastWeight int32

	Flags DestFlags

	// UThreshold and LThreshold are ipvsadm's -x and -y; 0 means unset.
	UThreshold, LThreshold uint32

	// Connection counters as IPVS defines them: a connection is inactive
	// until its state machine enters an active state; templates count only
	// in PersistConns.
	ActiveConns, InactConns, PersistConns uint32
}

// NewDest returns an available destination with the given weight.
func NewDest(addr netip.Addr, port uint16, weight int32) *Dest {
	d := &Dest{Addr: addr, Port: port, Flags: DestAvailable}
	d.SetWeight(weight)
	return d
}

// SetWeight changes the weight, remembering the last non-zero one.
func (d *Dest) SetWeight(w int32) {
	d.Weight = w
	if w > 0 {
		d.LastWeight = w
	}
}

// Available reports IP_VS_DEST_F_AVAILABLE.
func (d *Dest) Available() bool { return d.Flags&DestAvailable != 0 }

// Overloaded reports IP_VS_DEST_F_OVERLOAD.
func (d *Dest) Overloaded() bool { return d.Flags&DestOverload != 0 }

// Overhead is ip_vs_dest_conn_overhead: activeconns*256 + inactconns.
func (d *Dest) Overhead() uint64 {
	return uint64(d.ActiveConns)<<8 + uint64(d.InactConns)
}

// TotalConns is what the thresholds compare against (templates excluded).
func (d *Dest) TotalConns() uint32 { return d.ActiveConns + d.InactConns }

// BindConn accounts a new connection, which always starts inactive
// (ip_vs_bind_dest), and sets the overload flag when the upper threshold is
// reached.
func (d *Dest) BindConn() {
	d.InactConns++
	d.checkUpper()
}

// BindTemplate accounts a new persistence template.
//
// ip_vs_bind_dest runs the upper-threshold test for templates too; templates
// do not count in the total, so only the connections can push it over.
func (d *Dest) BindTemplate() {
	d.PersistConns++
	d.checkUpper()
}

// UnbindTemplate releases a persistence template; ip_vs_unbind_dest applies
// the overload-clearing rule for it as for a connection.
func (d *Dest) UnbindTemplate() {
	if d.PersistConns > 0 {
		d.PersistConns--
	}
	d.checkLower()
}

// ConnActivated moves a connection from inactive to active.
func (d *Dest) ConnActivated() {
	if d.InactConns > 0 {
		d.InactConns--
	}
	d.ActiveConns++
}

// ConnDeactivated moves a connection from active to inactive.
func (d *Dest) ConnDeactivated() {
	if d.ActiveConns > 0 {
		d.ActiveConns--
	}
	d.InactConns++
}

// UnbindConn releases a connection (ip_vs_unbind_dest) and applies the
// kernel's rule for clearing the overload flag.
func (d *Dest) UnbindConn(active bool) {
	if active {
		if d.ActiveConns > 0 {
			d.ActiveConns--
		}
	} else if d.InactConns > 0 {
		d.InactConns--
	}
	d.checkLower()
}

// checkLower clears the overload flag by the kernel's rule: below the lower
// threshold, or below 3/4 of the upper one when no lower one is set.
func (d *Dest) checkLower() {
	total := d.TotalConns()
	switch {
	case d.LThreshold != 0:
		if total < d.LThreshold {
			d.Flags &^= DestOverload
		}
	case d.UThreshold != 0:
		if uint64(total)*4 < uint64(d.UThreshold)*3 {
			d.Flags &^= DestOverload
		}
	default:
		d.Flags &^= DestOverload
	}
}

// SetThresholds applies an edit of -x/-y as __ip_vs_update_dest does: a
// removed or raised upper threshold clears the overload flag.
func (d *Dest) SetThresholds(upper, lower uint32) {
	if upper == 0 || upper > d.UThreshold {
		d.Flags &^= DestOverload
	}
	d.UThreshold, d.LThreshold = upper, lower
}

func (d *Dest) checkUpper() {
	if d.UThreshold != 0 && d.TotalConns() >= d.UThreshold {
		d.Flags |= DestOverload
	}
}

// ErrDestParams is the kernel's -ERANGE for a destination's parameters.
var ErrDestParams = errors.New("destination parameters out of range")

// ValidateDestParams applies the kernel's add/edit checks
// (ip_vs_add_dest, ip_vs_edit_dest): a negative weight, or a lower
// threshold above the upper one, is refused.
func ValidateDestParams(weight int32, upper, lower uint32) error {
	if weight < 0 {
		return fmt.Errorf("weight %d: %w", weight, ErrDestParams)
	}
	if lower > upper {
		return fmt.Errorf("lower threshold %d above upper threshold %d: %w", lower, upper, ErrDestParams)
	}
	return nil
}
