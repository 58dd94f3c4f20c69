package ipvs

// Who answers for a VIP. A director that holds the rules for a VIP either
// owns it (answers ARP and ICMP echo for it, as the kernel does for an
// address it holds) or has released it (silent: another director owns
// it); the rules stay in both states, as a kernel IPVS backup keeps its
// tables. lvskeepalived's VRRP moves the VIPs between the two over the
// control socket (ctl's "own", "release"); --no-arp (Config.NoARP) is
// "start with every VIP released".

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lvslab/capture"
	"lvslab/config"
	"lvslab/ipvs/ctl"
	"lvslab/rewrite"
)

// ownState is the per-address ownership, guarded by the data-path lock
// (the ARP and echo paths read it) and changed under ctlMu.
type ownState struct {
	vips  map[[4]byte]*vipOwn
	garps uint64
	// vrrp is lvskeepalived's latest report (ctlMu).
	vrrp ctl.VRRPReport
}

type vipOwn struct {
	owned    bool
	instance string
	garps    uint64
	changed  time.Time
}

// released says lvsd is silent for a: released by the control socket, or
// never told and started with NoARP. Call it holding mu.
func (e *Engine) released(a netip.Addr) bool {
	if !a.Is4() {
		return true
	}
	if v := e.own.vips[a.As4()]; v != nil {
		return !v.owned
	}
	return e.cfg.NoARP
}

// vipIface is the interface a VIP lives on: the one whose subnet holds it,
// else the one its route leaves by, else the only one. Call it holding
// ctlMu (the routes and interfaces only change under it).
func (e *Engine) vipIface(a netip.Addr) *Iface {
	for _, ifc := range e.ifaces {
		for _, p := range ifc.Addrs {
			if p.Contains(a) {
				return ifc
			}
		}
	}
	if r, _, ok := e.routes.Lookup(a); ok {
		if ifc := e.byIndex[r.Ifindex]; ifc != nil {
			return ifc
		}
	}
	if len(e.ifaces) == 1 {
		return e.ifaces[0]
	}
	return nil
}

// SetOwnership owns (or releases) vips for instance; owning sends garp
// gratuitous ARPs for each VIP a service uses, on the interface it lives
// on. It returns the addresses' state afterwards.
func (e *Engine) SetOwnership(instance string, vips []netip.Addr, own bool, garp int) ([]ctl.VIPOwnership, error) {
	if len(vips) == 0 {
		return nil, fmt.Errorf("no VIP given")
	}
	for _, a := range vips {
		if !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
			return nil, fmt.Errorf("VIP %s: want an IPv4 unicast address", a)
		}
	}
	if garp < 0 || garp > ctl.MaxGARP {
		return nil, fmt.Errorf("garp %d: want 0-%d", garp, ctl.MaxGARP)
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	now := time.Now()
	type announce struct {
		ifc *Iface
		vip netip.Addr
		v   *vipOwn
	}
	var out []announce
	e.mu.Lock()
	if e.own.vips == nil {
		e.own.vips = map[[4]byte]*vipOwn{}
	}
	for _, a := range vips {
		k := a.As4()
		v := e.own.vips[k]
		if v == nil {
			v = &vipOwn{owned: !e.cfg.NoARP}
			e.own.vips[k] = v
		}
		if v.owned != own {
			v.changed = now
			e.log.Info("VIP ownership", "vip", a, "owned", own, "instance", instance)
		}
		v.owned, v.instance = own, instance
		if own && garp > 0 && e.answersARP(a) {
			if ifc := e.vipIface(a); ifc != nil {
				out = append(out, announce{ifc, a, v})
			}
		}
	}
	// The gratuitous ARPs go out under the data-path lock, so they
	// serialise with the receive goroutines' transmissions on the port.
	var frames []capture.Frame
	for _, x := range out {
		frames = frames[:0]
		for range garp {
			b := make([]byte, 128)
			n, err := rewrite.BuildGratuitousARP(b, x.ifc.MAC, x.vip, 0)
			if err != nil {
				e.ctr[txErrors]++
				continue
			}
			frames = append(frames, capture.Frame{Buf: b, N: n, Len: n})
		}
		for sent := 0; sent < len(frames); {
			n, err := x.ifc.Port.WriteBatch(frames[sent:])
			e.ctr[txFrames] += uint64(n)
			x.v.garps += uint64(n)
			e.own.garps += uint64(n)
			sent += n
			if err != nil {
				e.ctr[txErrors]++
				sent++
			}
		}
	}
	e.mu.Unlock()
	list := e.ownershipLocked()
	asked := map[netip.Addr]bool{}
	for _, a := range vips {
		asked[a] = true
	}
	return slices.DeleteFunc(list, func(o ctl.VIPOwnership) bool { return !asked[o.VIP] }), nil
}

// Ownership lists every address lvsd serves or was told about.
func (e *Engine) Ownership() []ctl.VIPOwnership {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	return e.ownershipLocked()
}

func (e *Engine) ownershipLocked() []ctl.VIPOwnership {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[[4]byte]bool{}
	var out []ctl.VIPOwnership
	add := func(k [4]byte) {
		if seen[k] {
			return
		}
		seen[k] = true
		a := netip.AddrFrom4(k)
		o := ctl.VIPOwnership{VIP: a, Owned: !e.released(a), Served: e.answersARP(a)}
		if v := e.own.vips[k]; v != nil {
			o.Instance, o.GARPs, o.Changed = v.instance, v.garps, v.changed
		}
		if ifc := e.vipIface(a); ifc != nil {
			o.Iface = ifc.Name
		}
		out = append(out, o)
	}
	for k := range e.owned {
		add(k)
	}
	for k := range e.markAddrs {
		add(k)
	}
	for k := range e.own.vips {
		add(k)
	}
	slices.SortFunc(out, func(a, b ctl.VIPOwnership) int { return a.VIP.Compare(b.VIP) })
	return out
}

// SetVRRPReport keeps lvskeepalived's latest VRRP report.
func (e *Engine) SetVRRPReport(r ctl.VRRPReport) error {
	seen := map[string]bool{}
	for _, s := range r.Instances {
		if s.Instance == "" {
			return fmt.Errorf("vrrp-report: an instance without a name")
		}
		if seen[s.Instance] {
			return fmt.Errorf("vrrp-report: instance %s twice", s.Instance)
		}
		seen[s.Instance] = true
		if !slices.Contains(vrrpStates, s.State) {
			return fmt.Errorf("vrrp-report: instance %s: state %q: want one of %v", s.Instance, s.State, vrrpStates)
		}
	}
	r.Instances = slices.Clone(r.Instances)
	slices.SortFunc(r.Instances, func(a, b ctl.VRRPStatus) int { return cmp.Compare(a.Instance, b.Instance) })
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	e.own.vrrp = r
	return nil
}

// VRRPReport returns the latest report (zero if none came).
func (e *Engine) VRRPReport() ctl.VRRPReport {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	r := e.own.vrrp
	r.Instances = slices.Clone(r.Instances)
	return r
}

// vrrpStates are keepalived's state words, as notify scripts get them.
var vrrpStates = []string{"INIT", "BACKUP", "MASTER", "FAULT", "STOP"}

// handleOwn answers the ownership and VRRP operations of the control socket.
func (e *Engine) handleOwn(ctx context.Context, peer ctl.Peer, req ctl.Request) ctl.Reply {
	op := req.Command.Op
	if op.Mutates() && ctx.Err() != nil {
		return ctl.Reply{Error: context.Cause(ctx).Error()}
	}
	switch op {
	case config.OpOwnership:
		return ctl.Reply{Ownership: e.Ownership()}
	case config.OpVRRPReport:
		if err := e.SetVRRPReport(ctl.VRRPReport{Instances: req.VRRP, Reported: time.Now(), PID: peer.PID}); err != nil {
			return ctl.Reply{Error: err.Error()}
		}
		return ctl.Reply{}
	}
	if req.Own == nil {
		return ctl.Reply{Error: fmt.Sprintf("%s: no VIPs (request field \"own\")", op)}
	}
	garp := req.Own.GARP
	if op == config.OpRelease {
		garp = 0
	}
	list, err := e.SetOwnership(req.Own.Instance, req.Own.VIPs, op == config.OpOwn, garp)
	if err != nil {
		return ctl.Reply{Error: fmt.Sprintf("%s: %v", op, err)}
	}
	return ctl.Reply{Ownership: list}
}

// OwnershipCollector exports VIP ownership, gratuitous ARPs and the VRRP
// report to Prometheus.
type OwnershipCollector struct {
	e                               *Engine
	owned, garps, garpsAll          *prometheus.Desc
	vrrpState, vrrpPrio, vrrpReport *prometheus.Desc
}

// OwnershipCollector returns the collector (register it beside Collector).
func (e *Engine) OwnershipCollector() *OwnershipCollector {
	d := prometheus.NewDesc
	inst := []string{"instance", "vrid"}
	return &OwnershipCollector{
		e:          e,
		owned:      d("lvsd_vip_owned", "1 if lvsd answers ARP and ping for the VIP (owned), 0 if it has released it (another director owns it).", []string{"vip"}, nil),
		garps:      d("lvsd_vip_gratuitous_arps_total", "Gratuitous ARPs lvsd sent for the VIP on taking it over.", []string{"vip"}, nil),
		garpsAll:   d("lvsd_gratuitous_arps_total", "Gratuitous ARPs lvsd sent for all VIPs.", nil, nil),
		vrrpState:  d("lvsd_vrrp_state", "1 for the state lvskeepalived last reported for the VRRP instance, 0 for the others.", append(inst, "state"), nil),
		vrrpPrio:   d("lvsd_vrrp_priority", "The VRRP instance's effective priority, as lvskeepalived last reported it.", inst, nil),
		vrrpReport: d("lvsd_vrrp_report_timestamp_seconds", "When lvskeepalived last reported its VRRP state (a stale value: it stopped reporting).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *OwnershipCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.owned, c.garps, c.garpsAll, c.vrrpState, c.vrrpPrio, c.vrrpReport} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *OwnershipCollector) Collect(ch chan<- prometheus.Metric) {
	m := prometheus.MustNewConstMetric
	for _, o := range c.e.Ownership() {
		v := 0.0
		if o.Owned {
			v = 1
		}
		ch <- m(c.owned, prometheus.GaugeValue, v, o.VIP.String())
		ch <- m(c.garps, prometheus.CounterValue, float64(o.GARPs), o.VIP.String())
	}
	c.e.mu.Lock()
	total := c.e.own.garps
	c.e.mu.Unlock()
	ch <- m(c.garpsAll, prometheus.CounterValue, float64(total))
	r := c.e.VRRPReport()
	if r.Reported.IsZero() {
		return
	}
	ch <- m(c.vrrpReport, prometheus.GaugeValue, float64(r.Reported.UnixNano())/1e9)
	for _, s := range r.Instances {
		vrid := fmt.Sprint(s.VRID)
		for _, st := range vrrpStates {
			v := 0.0
			if st == s.State {
				v = 1
			}
			ch <- m(c.vrrpState, prometheus.GaugeValue, v, s.Instance, vrid, st)
		}
		ch <- m(c.vrrpPrio, prometheus.GaugeValue, float64(s.Priority), s.Instance, vrid)
	}
}

// listOwnership adds the ownership and the VRRP report to a listing.
func (e *Engine) listOwnership(r *ctl.Reply) {
	r.Ownership = e.Ownership()
	if v := e.VRRPReport(); !v.Reported.IsZero() {
		r.VRRP = &v
	}
}
