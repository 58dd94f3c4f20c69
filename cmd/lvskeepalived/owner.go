package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"lvslab/config"
	"lvslab/ipvs/ctl"
)

// lvsdOwner tells lvsd which VIPs this director owns (ctl "own" and
// "release") and what state the VRRP instances are in ("vrrp-report"). It
// is the VRRP side's vrrp.VIPOwner. It keeps what it last told lvsd and
// says it again every resendEvery, so an lvsd restarted under a running
// lvskeepalived (which starts with every VIP owned, or released with
// --no-arp) learns the truth within a second or two.
type lvsdOwner struct {
	socket string
	logf   func(format string, args ...any)

	mu     sync.Mutex
	c      *ctl.Client
	want   map[netip.Addr]ownWant
	report []ctl.VRRPStatus
	failed bool // the last request failed (logged once until one works)
}

type ownWant struct {
	own      bool
	instance string
}

// ownTimeout bounds one request: the VRRP event loop waits for it, and a
// wedged lvsd must not stop the adverts for long.
const ownTimeout = 500 * time.Millisecond

// resendEvery is how often the whole state is said again.
const resendEvery = time.Second

// OwnVIPs implements vrrp.VIPOwner.
func (o *lvsdOwner) OwnVIPs(instance string, vips []netip.Prefix, own bool) error {
	if len(vips) == 0 {
		return nil
	}
	addrs := make([]netip.Addr, len(vips))
	for i, p := range vips {
		addrs[i] = p.Addr()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.want == nil {
		o.want = map[netip.Addr]ownWant{}
	}
	for _, a := range addrs {
		o.want[a] = ownWant{own, instance}
	}
	op := config.OpRelease
	if own {
		op = config.OpOwn
	}
	return o.doLocked(ctl.Request{Command: config.Command{Op: op}, Own: &ctl.OwnRequest{Instance: instance, VIPs: addrs}})
}

// reset forgets what was said (a new configuration says it anew).
func (o *lvsdOwner) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.want, o.report = nil, nil
}

// GARP asks lvsd for repeat gratuitous ARPs for vips (which it owns).
func (o *lvsdOwner) GARP(instance string, vips []netip.Addr, repeat int) error {
	if len(vips) == 0 || repeat <= 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.doLocked(ctl.Request{Command: config.Command{Op: config.OpOwn},
		Own: &ctl.OwnRequest{Instance: instance, VIPs: vips, GARP: min(repeat, ctl.MaxGARP)}})
}

// Report sends the instances' states (and keeps them for the resends).
func (o *lvsdOwner) Report(st []ctl.VRRPStatus) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.report = slices.Clone(st)
	return o.doLocked(ctl.Request{Command: config.Command{Op: config.OpVRRPReport}, VRRP: o.report})
}

// Resend says everything again (no GARPs).
func (o *lvsdOwner) Resend() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	for _, own := range []bool{true, false} {
		byInst := map[string][]netip.Addr{}
		for a, w := range o.want {
			if w.own == own {
				byInst[w.instance] = append(byInst[w.instance], a)
			}
		}
		op := config.OpRelease
		if own {
			op = config.OpOwn
		}
		for inst, addrs := range byInst {
			slices.SortFunc(addrs, netip.Addr.Compare)
			errs = append(errs, o.doLocked(ctl.Request{Command: config.Command{Op: op}, Own: &ctl.OwnRequest{Instance: inst, VIPs: addrs}}))
		}
	}
	if o.report != nil {
		errs = append(errs, o.doLocked(ctl.Request{Command: config.Command{Op: config.OpVRRPReport}, VRRP: o.report}))
	}
	return errors.Join(errs...)
}

// doLocked sends one request, dialling (again) as needed: lvsd closes a
// connection idle for 5 s, and may have restarted.
func (o *lvsdOwner) doLocked(req ctl.Request) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if o.c == nil {
			// Bounded like a request: ctl.Dial would wait 10 s on a full
			// listen queue.
			ctx, cancel := context.WithTimeout(context.Background(), ownTimeout)
			c, derr := ctl.DialContext(ctx, o.socket)
			cancel()
			if err = derr; err != nil {
				continue
			}
			c.Timeout = ownTimeout
			o.c = c
		}
		if _, err = o.c.Do(req); err == nil {
			if o.failed {
				o.logf("lvsd: %s accepted again", req.Command.Op)
			}
			o.failed = false
			return nil
		}
		var re *ctl.RemoteError
		if errors.As(err, &re) && !re.Refused {
			break // lvsd's answer: asking again changes nothing
		}
		o.c.Close()
		o.c = nil
	}
	if !o.failed {
		o.logf("lvsd: %s: %v", req.Command.Op, err)
	}
	o.failed = true
	return fmt.Errorf("lvsd %s: %w", req.Command.Op, err)
}

func (o *lvsdOwner) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.c != nil {
		o.c.Close()
		o.c = nil
	}
}
