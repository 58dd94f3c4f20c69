package rs

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"lvslab/internal/statefile"
)

// ErrNotStarted says no state is recorded for this network namespace.
var ErrNotStarted = errors.New("lvsrs is not started in this network namespace")

// stateVersion changes when the file format does.
const stateVersion = 1

// State is everything start changed, in order, with what it replaced. It is
// what the state file holds.
type State struct {
	Version int       `json:"version"`
	NetNS   NetNSID   `json:"netns"`
	Config  Config    `json:"config"`
	Started time.Time `json:"started"`
	// Userspace is set when tun mode decapsulates in userspace.
	Userspace bool `json:"userspace,omitempty"`
	// Owner is the foreground process of userspace decapsulation: the TUN
	// device lives as long as it does.
	Owner *Owner `json:"owner,omitempty"`
	Items []Item `json:"items"`
}

// Owner identifies a process across PID reuse.
type Owner = statefile.Owner

// Item is one thing start wants in place. Exactly one field is set. Items
// that were already as wanted are recorded too (Changed/Added/Created
// false): status verifies them, stop leaves them alone.
type Item struct {
	Sysctl *SysctlItem `json:"sysctl,omitempty"`
	Addr   *AddrItem   `json:"addr,omitempty"`
	Link   *LinkItem   `json:"link,omitempty"`
	Route  *RouteItem  `json:"route,omitempty"`
}

// SysctlItem is one /proc/sys value.
type SysctlItem struct {
	Key     string `json:"key"` // path below /proc/sys, e.g. net/ipv4/conf/all/arp_ignore
	Want    string `json:"want"`
	Prev    string `json:"prev"`
	Changed bool   `json:"changed"`
}

// AddrItem is one address on a device.
type AddrItem struct {
	Dev    string       `json:"dev"`
	Prefix netip.Prefix `json:"prefix"`
	Label  string       `json:"label,omitempty"`
	Added  bool         `json:"added"`
}

// LinkItem is a device that must exist and be up.
type LinkItem struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`    // "tun" (userspace decapsulation) or "ipip"
	Created bool   `json:"created"` // we created it: stop removes it
	SetUp   bool   `json:"set_up"`  // it was down: stop sets it down again
}

// RouteItem is the nat default route and the default routes it replaced.
type RouteItem struct {
	Want     SavedRoute   `json:"want"`
	Added    bool         `json:"added"`
	Replaced []SavedRoute `json:"replaced,omitempty"`
}

// String describes the item for status output.
func (it Item) String() string {
	switch {
	case it.Sysctl != nil:
		s := it.Sysctl
		if s.Changed {
			return fmt.Sprintf("sysctl %s = %s (was %s)", s.Key, s.Want, s.Prev)
		}
		return fmt.Sprintf("sysctl %s = %s (already)", s.Key, s.Want)
	case it.Addr != nil:
		a := it.Addr
		l := ""
		if a.Label != "" {
			l = " label " + a.Label
		}
		if a.Added {
			return fmt.Sprintf("address %s on %s%s", a.Prefix, a.Dev, l)
		}
		return fmt.Sprintf("address %s on %s%s (already)", a.Prefix, a.Dev, l)
	case it.Link != nil:
		l := it.Link
		switch {
		case l.Created:
			return fmt.Sprintf("link %s (%s) created, up", l.Name, l.Kind)
		case l.SetUp:
			return fmt.Sprintf("link %s (%s) set up (was down)", l.Name, l.Kind)
		}
		return fmt.Sprintf("link %s (%s) up (already)", l.Name, l.Kind)
	case it.Route != nil:
		r := it.Route
		var old []string
		for _, p := range r.Replaced {
			old = append(old, p.String())
		}
		s := "route " + r.Want.String()
		if !r.Added {
			s += " (already)"
		}
		if len(old) > 0 {
			s += " replacing " + strings.Join(old, "; ")
		}
		return s
	}
	return "empty item"
}

// NetNSID identifies a network namespace: the inode names the state file,
// the cookie tells a file left by a namespace that no longer exists from
// one for the current namespace.
type NetNSID = statefile.NetNSID

// CurrentNetNS identifies the calling thread's network namespace.
func CurrentNetNS() (NetNSID, error) { return statefile.CurrentNetNS() }

// StatePath is the state file of a network namespace.
func StatePath(dir string, id NetNSID) string { return statefile.Path(dir, id) }

// store reads and writes one namespace's state file (statefile: a flock on
// the directory serialises start, stop and status across processes).
type store struct {
	*statefile.Store
	ns NetNSID
}

func openStore(dir string) (*store, error) {
	s, err := statefile.Open(dir)
	if err != nil {
		return nil, err
	}
	return &store{Store: s, ns: s.NS()}, nil
}

// errStale marks a state file written in a namespace that no longer exists
// (its inode now belongs to the current one).
var errStale = errors.New("state file belongs to a network namespace that no longer exists")

// load returns the recorded state, ErrNotStarted, or errStale.
func (s *store) load() (*State, error) {
	var st State
	found, err := s.Read(&st)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNotStarted
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state %s has version %d, this lvsrs understands %d", s.Path(), st.Version, stateVersion)
	}
	if !st.NetNS.Same(s.ns) {
		return &st, errStale
	}
	return &st, nil
}

func (s *store) save(st *State) error { return s.Save(st) }

func (s *store) remove() error { return s.Remove() }

// selfOwner identifies the calling process.
func selfOwner() (*Owner, error) {
	o, err := statefile.Self()
	if err != nil {
		return nil, err
	}
	return &o, nil
}
