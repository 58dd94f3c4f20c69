package main

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"

	"lvslab/config"
	"lvslab/ipvs/ctl"
)

// lvsdTables programs lvsd through its control socket with the per-command
// operations lvsadm sends (add/edit/delete service and server), and keeps
// what it believes lvsd has, so a change costs only the commands that
// differ: an unchanged service or server gets no command at all and keeps
// its connections and counters.
type lvsdTables struct {
	socket  string
	c       *ctl.Client
	applied map[config.ServiceID]*appliedService
	logf    func(format string, args ...any)
}

type appliedService struct {
	svc    config.Service
	dests  map[config.DestID]config.Dest
	laddrs []netip.Addr // FULLNAT local addresses
}

// connect dials lvsd and reads its tables (lvsadm -S), so a restarted
// lvskeepalived continues from what lvsd forwards with.
func (t *lvsdTables) connect() error {
	if t.c != nil {
		return nil
	}
	c, err := ctl.Dial(t.socket)
	if err != nil {
		return err
	}
	r, err := c.Do(ctl.Request{Command: config.Command{Op: config.OpSave}})
	if err != nil {
		c.Close()
		return fmt.Errorf("read lvsd's tables: %w", err)
	}
	t.c = c
	t.applied = map[config.ServiceID]*appliedService{}
	for _, s := range r.Services {
		a := &appliedService{svc: s.Service, dests: map[config.DestID]config.Dest{}}
		for _, d := range s.Dests {
			a.dests[d.Dest.ID()] = d.Dest
		}
		for _, l := range s.Laddrs {
			a.laddrs = append(a.laddrs, l.Addr)
		}
		t.applied[s.Service.ID()] = a
	}
	return nil
}

// ownedVIPs is lvsd's ownership listing: the addresses it answers for.
func (t *lvsdTables) ownedVIPs() (map[netip.Addr]bool, error) {
	var r ctl.Reply
	err := t.connect()
	if err == nil {
		r, err = t.c.Do(ctl.Request{Command: config.Command{Op: config.OpOwnership}})
		var re *ctl.RemoteError
		if err != nil && !errors.As(err, &re) {
			t.close() // the next request dials again
		}
	}
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]bool{}
	for _, o := range r.Ownership {
		if o.Owned {
			out[o.VIP] = true
		}
	}
	return out, nil
}

func (t *lvsdTables) close() {
	if t.c != nil {
		t.c.Close()
		t.c = nil
	}
}

// do sends one command; a broken connection is dropped (the caller
// resynchronises), an error of lvsd's is returned as it is.
func (t *lvsdTables) do(cmd config.Command) error {
	if err := t.connect(); err != nil {
		return err
	}
	_, err := t.c.Do(ctl.Request{Command: cmd})
	if err != nil && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		// lvsd closes a control connection idle for its IdleTimeout (5 s):
		// between two health-check results that is the normal case. A
		// send that met the closed socket never reached lvsd, so the same
		// command goes again on a new connection (the tables read at
		// connect stay valid: nothing else programs this lvsd).
		if c, derr := ctl.Dial(t.socket); derr == nil {
			t.c.Close()
			t.c = c
			_, err = t.c.Do(ctl.Request{Command: cmd})
		}
	}
	var re *ctl.RemoteError
	if err != nil && !errors.As(err, &re) {
		t.close()
	}
	return err
}

// errLost says the connection to lvsd broke: every service must be
// resynchronised once it is back.
var errLost = errors.New("lost lvsd")

// sync makes lvsd's service svc have exactly the local addresses laddrs
// (FULLNAT) and the dests want. New local addresses go in before the real
// servers that need them, old ones out after.
func (t *lvsdTables) sync(svc config.Service, laddrs []netip.Addr, want []config.Dest) error {
	if err := t.connect(); err != nil {
		return err
	}
	id := svc.ID()
	a := t.applied[id]
	var errs []error
	fail := func(what string, err error) {
		errs = append(errs, fmt.Errorf("IPVS: %s %s: %w", what, id, err))
	}
	if a == nil {
		if err := t.do(config.Command{Op: config.OpAddService, Service: svc}); err != nil {
			fail("add service", err)
			return errors.Join(errs...)
		}
		a = &appliedService{svc: svc, dests: map[config.DestID]config.Dest{}}
		t.applied[id] = a
	} else if a.svc != svc {
		if err := t.do(config.Command{Op: config.OpEditService, Service: svc}); err != nil {
			fail("edit service", err)
		} else {
			a.svc = svc
		}
	}
	for _, l := range laddrs {
		if slices.Contains(a.laddrs, l) {
			continue
		}
		if err := t.do(config.Command{Op: config.OpAddLaddr, Service: svc, Laddr: l}); err != nil {
			fail("add local address "+l.String(), err)
			continue
		}
		a.laddrs = append(a.laddrs, l)
	}
	seen := make(map[config.DestID]bool, len(want))
	for _, d := range want {
		did := d.ID()
		seen[did] = true
		have, ok := a.dests[did]
		switch {
		case !ok:
			if err := t.do(config.Command{Op: config.OpAddDest, Service: svc, Dest: d}); err != nil {
				fail("add server "+netAddr(did), err)
				continue
			}
		case have != d:
			if err := t.do(config.Command{Op: config.OpEditDest, Service: svc, Dest: d}); err != nil {
				fail("edit server "+netAddr(did), err)
				continue
			}
		default:
			continue
		}
		a.dests[did] = d
	}
	for did, d := range a.dests {
		if seen[did] {
			continue
		}
		if err := t.do(config.Command{Op: config.OpDeleteDest, Service: svc, Dest: d}); err != nil {
			fail("delete server "+netAddr(did), err)
			continue
		}
		delete(a.dests, did)
	}
	for _, l := range slices.Clone(a.laddrs) {
		if slices.Contains(laddrs, l) {
			continue
		}
		if err := t.do(config.Command{Op: config.OpDelLaddr, Service: svc, Laddr: l}); err != nil {
			fail("delete local address "+l.String(), err)
			continue
		}
		a.laddrs = slices.DeleteFunc(a.laddrs, func(x netip.Addr) bool { return x == l })
	}
	if t.c == nil {
		errs = append(errs, errLost)
	}
	return errors.Join(errs...)
}

// remove deletes a service lvskeepalived no longer wants.
func (t *lvsdTables) remove(id config.ServiceID) error {
	if err := t.connect(); err != nil {
		return err
	}
	a := t.applied[id]
	if a == nil {
		return nil
	}
	if err := t.do(config.Command{Op: config.OpDeleteService, Service: a.svc}); err != nil {
		return fmt.Errorf("IPVS: delete service %s: %w", id, err)
	}
	delete(t.applied, id)
	return nil
}

func netAddr(d config.DestID) string {
	if d.Addr.Is6() {
		return fmt.Sprintf("[%s]:%d", d.Addr, d.Port)
	}
	return fmt.Sprintf("%s:%d", d.Addr, d.Port)
}
