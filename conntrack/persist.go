package conntrack

import (
	"fmt"
	"net/netip"
	"time"

	"lvslab/sched"
)

// ftpPort is FTPPORT: a persistent service on port 21 keys its templates
// with port 0 so the FTP data connections (other ports) stick too.
const ftpPort = 21

// Persistence describes a persistent virtual service (ipvsadm -p, -M).
type Persistence struct {
	// Port is the service port: 0 for a port-zero ("PCC") service, 21 for
	// FTP. Ignored for fwmark services, whose port is 0.
	Port uint16
	// FwMark is the mark of an fwmark service (-f), 0 otherwise.
	FwMark uint32
	// Netmask is -M, the client granularity. The zero Addr means
	// 255.255.255.255 (one template per client address).
	Netmask netip.Addr
	// Timeout is -p: how long a template outlives its last new connection.
	Timeout time.Duration
}

// TemplateKey is what a persistence template is found by: the kernel's
// <protocol, snet, 0, vaddr, vport> (§4.2).
type TemplateKey struct {
	Proto uint8   // the packet's protocol, ProtoIP for fwmark services
	SNet  [4]byte // client address & netmask
	VAddr [4]byte // the VIP, or the fwmark as an address
	VPort uint16  // the service port, or 0 for FTP, port-zero and fwmark services
}

// Key builds the template key for a packet of protocol proto from client to
// vaddr:vport hitting this service (ip_vs_sched_persist).
func (p *Persistence) Key(proto uint8, client, vaddr netip.Addr, vport uint16) (TemplateKey, error) {
	caddr, err := as4(client, "client")
	if err != nil {
		return TemplateKey{}, err
	}
	mask := [4]byte{255, 255, 255, 255}
	if p.Netmask.IsValid() {
		if mask, err = as4(p.Netmask, "netmask"); err != nil {
			return TemplateKey{}, err
		}
	}
	k := TemplateKey{Proto: proto}
	for i := range k.SNet {
		k.SNet[i] = caddr[i] & mask[i]
	}
	svcPort := p.Port
	if p.FwMark != 0 {
		svcPort = 0
	}
	switch {
	case vport == svcPort:
		// <protocol, caddr, 0, vaddr, vport>, or vport 0 for FTP.
		if svcPort != ftpPort {
			k.VPort = vport
		}
		if k.VAddr, err = as4(vaddr, "virtual address"); err != nil {
			return TemplateKey{}, err
		}
	case p.FwMark != 0:
		// <IPPROTO_IP, caddr, 0, fwmark, 0>
		k.Proto = ProtoIP
		m := p.FwMark
		k.VAddr = [4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
	default:
		// Port-zero service: <protocol, caddr, 0, vaddr, 0>.
		if k.VAddr, err = as4(vaddr, "virtual address"); err != nil {
			return TemplateKey{}, err
		}
	}
	return k, nil
}

func (k *TemplateKey) tuple() Tuple {
	return Tuple{Proto: k.Proto, Src: k.SNet, Dst: k.VAddr, DstPort: k.VPort}
}

// LookupTemplate returns the valid template for k, or 0 (ip_vs_ct_in_get +
// ip_vs_check_template). A template is valid while its destination is
// available and, with expireQuiescent (sysctl expire_quiescent_template),
// has a non-zero weight. A template found invalid is taken out of the index
// at once, so it never matches again, but keeps its timer and its children;
// the caller schedules afresh and creates a new one with NewTemplate.
func (t *Table) LookupTemplate(k *TemplateKey, expireQuiescent bool) ConnID {
	tu := k.tuple()
	id, _ := t.find(&tu, t.h.sum(&tu), kindTpl)
	if id == 0 {
		return 0
	}
	c := t.conn(id)
	d := t.dests[c.dest].d
	if d != nil && d.Available() && !(expireQuiescent && d.Weight == 0) {
		return id
	}
	t.unhash(id, c)
	c.vport, c.dport = 0xffff, 0xffff // as listed by the kernel afterwards
	return 0
}

// NewTemplate creates the persistence template for k bound to dest, with
// timeout svc timeout. Its destination port is dest's for a normal service
// and 0 for FTP, port-zero and fwmark services. It starts in state NONE and
// counts in dest's PersistConns.
func (t *Table) NewTemplate(k *TemplateKey, dest *sched.Dest, timeout time.Duration, now int64) (ConnID, error) {
	if dest == nil {
		return 0, fmt.Errorf("conntrack: template %v: %w", k.SNet, ErrNoDest)
	}
	if timeout <= 0 || timeout > MaxTimeout {
		return 0, fmt.Errorf("conntrack: template timeout %v: %w (1ms..%v)", timeout, ErrTimeout, MaxTimeout)
	}
	daddr, err := as4(dest.Addr, "destination")
	if err != nil {
		return 0, err
	}
	if k.Proto != ProtoIP && k.Proto != ProtoTCP && k.Proto != ProtoUDP {
		return 0, fmt.Errorf("conntrack: template protocol %d: %w", k.Proto, ErrProto)
	}
	if t.Len() >= t.max {
		t.st.Refused++
		return 0, ErrTableFull
	}
	tu := k.tuple()
	if id, _ := t.find(&tu, t.h.sum(&tu), kindTpl); id != 0 {
		return 0, ErrExists
	}
	var dport uint16
	if k.VPort != 0 {
		dport = dest.Port
	}
	id, c := t.alloc()
	*c = Conn{
		caddr: k.SNet, vaddr: k.VAddr, daddr: daddr, laddr: k.SNet,
		vport: k.VPort, dport: dport,
		timeout: msOf(timeout),
		flags:   FlagTemplate | FlagHashed | flagLive,
		wslot:   noSlot,
		proto:   k.Proto,
		state:   TemplateNone,
	}
	c.dest = t.acquireDest(dest)
	dest.BindTemplate()
	t.hashIn(id, c, kindTpl)
	t.w.start(uint64(max(now, 0)) / tickNs)
	t.arm(id, c, t.deadlineTick(now, c.timeout))
	t.st.Templates++
	t.st.Created++
	return id, nil
}
