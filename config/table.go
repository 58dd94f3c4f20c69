package config

import (
	"fmt"
	"slices"
)

// IPVSError is an error the kernel's IPVS reports, worded as ipvsadm prints
// it (libipvs ipvs_strerror), so lvsd's answers read like the kernel's.
type IPVSError string

func (e IPVSError) Error() string { return string(e) }

// The messages ipvsadm prints for kernel errors.
const (
	ErrServiceExists     IPVSError = "Service already exists"
	ErrNoService         IPVSError = "No such service"
	ErrServiceNotDefined IPVSError = "Service not defined" // -a/-e/-d on a missing service
	ErrDestExists        IPVSError = "Destination already exists"
	ErrNoDest            IPVSError = "No such destination"
	ErrSchedNotFound     IPVSError = "Scheduler or persistence engine not found"
	ErrPermission        IPVSError = "Permission denied (you must be root)"
	ErrInvalid           IPVSError = "Invalid operation.  Possibly wrong module version, address not unicast, ..."
	// The FULLNAT fork's libipvs words for -P and -Q.
	ErrLaddrExists IPVSError = "Local address already exists"
	ErrNoLaddr     IPVSError = "No such Local address"
)

// Table is a configuration built by commands: the virtual services with
// their real servers, in the order commands added them, and the timeouts a
// --set asked for (a zero field was never set).
type Table struct {
	Services []VirtualService `json:"services"`
	Timeouts Timeouts         `json:"timeouts,omitzero"`
}

// Apply applies one configuration command with the kernel's semantics and
// error messages. A failed command leaves the Table unchanged.
func (t *Table) Apply(c Command) error { return t.apply(c, t.find) }

// ApplyRules applies rules in order, as Apply, and stops at the first
// refused one with an error "file:line: message"; the Table then holds the
// rules before it (callers wanting all or nothing apply to a copy). It looks
// services up in an index, so a rules file of n lines takes O(n), not
// O(n²), as long as it deletes few services.
func (t *Table) ApplyRules(rules []Rule) error {
	idx := make(map[ServiceID]int, len(t.Services))
	reindex := func() {
		clear(idx)
		for i, vs := range t.Services {
			idx[vs.Service.ID()] = i
		}
	}
	reindex()
	find := func(id ServiceID) int {
		if i, ok := idx[id]; ok {
			return i
		}
		return -1
	}
	for _, r := range rules {
		n := len(t.Services)
		if err := t.apply(r.Command, find); err != nil {
			return fmt.Errorf("%s:%d: %w", r.File, r.Line, err)
		}
		switch r.Command.Op {
		case OpAddService:
			idx[r.Command.Service.ID()] = n
		case OpDeleteService, OpClear:
			reindex() // later services moved down
		}
	}
	return nil
}

func (t *Table) apply(c Command, find func(ServiceID) int) error {
	switch c.Op {
	case OpAddService:
		if err := c.Service.Validate(); err != nil {
			return err
		}
		if find(c.Service.ID()) >= 0 {
			return ErrServiceExists
		}
		t.Services = append(t.Services, VirtualService{Service: c.Service})
	case OpEditService:
		if err := c.Service.Validate(); err != nil {
			return err
		}
		i := find(c.Service.ID())
		if i < 0 {
			return ErrNoService
		}
		t.Services[i].Service = c.Service
	case OpDeleteService:
		i := find(c.Service.ID())
		if i < 0 {
			return ErrNoService
		}
		t.Services = slices.Delete(t.Services, i, i+1)
	case OpClear:
		t.Services = nil
	case OpAddDest, OpEditDest, OpDeleteDest:
		return t.applyDest(c, find)
	case OpAddLaddr, OpDelLaddr:
		return t.applyLaddr(c, find)
	case OpZero:
		// Counters are not configuration; only the existence check remains.
		if c.HasService && find(c.Service.ID()) < 0 {
			return ErrNoService
		}
	case OpSetTimeouts:
		if c.Timeouts.TCP != 0 {
			t.Timeouts.TCP = c.Timeouts.TCP
		}
		if c.Timeouts.TCPFin != 0 {
			t.Timeouts.TCPFin = c.Timeouts.TCPFin
		}
		if c.Timeouts.UDP != 0 {
			t.Timeouts.UDP = c.Timeouts.UDP
		}
	default:
		return fmt.Errorf("%s is not a configuration command", c.Op)
	}
	return nil
}

func (t *Table) applyDest(c Command, find func(ServiceID) int) error {
	i := find(c.Service.ID())
	if i < 0 {
		return ErrServiceNotDefined
	}
	vs := &t.Services[i]
	j := slices.IndexFunc(vs.Dests, func(d Dest) bool { return d.ID() == c.Dest.ID() })
	switch c.Op {
	case OpAddDest:
		if err := c.Dest.Validate(); err != nil {
			return err
		}
		if j >= 0 {
			return ErrDestExists
		}
		vs.Dests = append(vs.Dests, c.Dest)
	case OpEditDest:
		if err := c.Dest.Validate(); err != nil {
			return err
		}
		if j < 0 {
			return ErrNoDest
		}
		vs.Dests[j] = c.Dest
	case OpDeleteDest:
		if j < 0 {
			return ErrNoDest
		}
		vs.Dests = slices.Delete(vs.Dests, j, j+1)
	}
	return nil
}

func (t *Table) applyLaddr(c Command, find func(ServiceID) int) error {
	i := find(c.Service.ID())
	if i < 0 {
		return ErrServiceNotDefined
	}
	vs := &t.Services[i]
	j := slices.Index(vs.Laddrs, c.Laddr)
	switch c.Op {
	case OpAddLaddr:
		if j >= 0 {
			return ErrLaddrExists
		}
		vs.Laddrs = append(slices.Clip(vs.Laddrs), c.Laddr)
	case OpDelLaddr:
		if j < 0 {
			return ErrNoLaddr
		}
		vs.Laddrs = slices.Delete(slices.Clone(vs.Laddrs), j, j+1)
	}
	return nil
}

func (t *Table) find(id ServiceID) int {
	return slices.IndexFunc(t.Services, func(vs VirtualService) bool { return vs.Service.ID() == id })
}

// Lookup returns the virtual service with the given identity.
func (t *Table) Lookup(id ServiceID) (VirtualService, bool) {
	if i := t.find(id); i >= 0 {
		return t.Services[i], true
	}
	return VirtualService{}, false
}
