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
//
// Requests go to lvsd from a goroutine of their own, in the order they
// were made: the VRRP event loop that makes them never waits for lvsd. It
// did, up to ownTimeout a request, and on a loaded machine an lvsd slow to
// answer delayed the MASTER's next advert past a v3 peer's master-down
// interval (3 × 0.1 s + skew), which then took over.
type lvsdOwner struct {
	socket string
	logf   func(format string, args ...any)
	// notify, if set, hears of every own or release lvsd accepted.
	notify chan struct{}

	mu      sync.Mutex // what to say; held briefly, never across a request
	want    map[netip.Addr]ownWant
	report  []ctl.VRRPStatus
	queue   []ctl.Request
	sending bool // the sender has taken requests off the queue
	kick    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	start   sync.Once

	cmu    sync.Mutex // the connection, held across a request
	c      *ctl.Client
	failed bool // the last request failed (logged once until one works)
}

type ownWant struct {
	own      bool
	instance string
}

// ownTimeout bounds one request, so a wedged lvsd holds up the queue
// behind it for no longer than this (twice: one retry on a new
// connection).
const ownTimeout = 500 * time.Millisecond

// resendEvery is how often the whole state is said again.
const resendEvery = time.Second

// OwnVIPs implements vrrp.VIPOwner: it queues the change and returns. A
// request lvsd refuses or does not answer is logged by the sender.
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
	o.enqueueLocked(ctl.Request{Command: config.Command{Op: op}, Own: &ctl.OwnRequest{Instance: instance, VIPs: addrs}})
	return nil
}

// reset forgets what was said (a new configuration says it anew); what is
// queued still goes out, in order.
func (o *lvsdOwner) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.want, o.report = nil, nil
}

// GARP queues repeat gratuitous ARPs for vips (which it owns), after the
// ownership queued before it.
func (o *lvsdOwner) GARP(instance string, vips []netip.Addr, repeat int) error {
	if len(vips) == 0 || repeat <= 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.enqueueLocked(ctl.Request{Command: config.Command{Op: config.OpOwn},
		Own: &ctl.OwnRequest{Instance: instance, VIPs: slices.Clone(vips), GARP: min(repeat, ctl.MaxGARP)}})
	return nil
}

// Report queues the instances' states (and keeps them for the resends); a
// report still waiting in the queue is replaced, not sent twice.
func (o *lvsdOwner) Report(st []ctl.VRRPStatus) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.report = slices.Clone(st)
	req := ctl.Request{Command: config.Command{Op: config.OpVRRPReport}, VRRP: o.report}
	for i, q := range o.queue {
		if q.Command.Op == config.OpVRRPReport {
			o.queue[i] = req
			return nil
		}
	}
	o.enqueueLocked(req)
	return nil
}

// Resend says everything again (no GARPs), unless requests are still
// waiting: they say the newest state, and a wedged lvsd must not grow the
// queue by a resend a second.
func (o *lvsdOwner) Resend() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) > 0 || o.sending {
		return nil
	}
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
		insts := make([]string, 0, len(byInst))
		for inst := range byInst {
			insts = append(insts, inst)
		}
		slices.Sort(insts)
		for _, inst := range insts {
			addrs := byInst[inst]
			slices.SortFunc(addrs, netip.Addr.Compare)
			o.enqueueLocked(ctl.Request{Command: config.Command{Op: op}, Own: &ctl.OwnRequest{Instance: inst, VIPs: addrs}})
		}
	}
	if o.report != nil {
		o.enqueueLocked(ctl.Request{Command: config.Command{Op: config.OpVRRPReport}, VRRP: o.report})
	}
	return nil
}

func (o *lvsdOwner) enqueueLocked(req ctl.Request) {
	o.start.Do(func() {
		o.kick = make(chan struct{}, 1)
		o.quit = make(chan struct{})
		o.done = make(chan struct{})
		go o.sender()
	})
	o.queue = append(o.queue, req)
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// sender sends the queued requests in order.
func (o *lvsdOwner) sender() {
	defer close(o.done)
	for {
		o.mu.Lock()
		batch := o.queue
		o.queue = nil
		o.sending = len(batch) > 0
		o.mu.Unlock()
		for _, req := range batch {
			select {
			case <-o.quit:
				return // closing: what is left goes nowhere
			default:
			}
			o.cmu.Lock()
			err := o.doLocked(req)
			o.cmu.Unlock()
			if err == nil && req.Own != nil && req.Own.GARP == 0 && o.notify != nil {
				select {
				case o.notify <- struct{}{}:
				default:
				}
			}
		}
		o.mu.Lock()
		o.sending = false
		more := len(o.queue) > 0
		o.mu.Unlock()
		if more {
			continue
		}
		select {
		case <-o.kick:
		case <-o.quit:
			return
		}
	}
}

// flush waits until everything queued was sent (or failed), at most
// within; a stop uses it so its releases and last report reach lvsd.
func (o *lvsdOwner) flush(within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		o.mu.Lock()
		idle := len(o.queue) == 0 && !o.sending
		o.mu.Unlock()
		if idle {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// doLocked sends one request (cmu held), dialling (again) as needed: lvsd closes a
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
	started := o.quit != nil
	o.mu.Unlock()
	if started {
		close(o.quit)
		<-o.done
	}
	o.cmu.Lock()
	defer o.cmu.Unlock()
	if o.c != nil {
		o.c.Close()
		o.c = nil
	}
}
