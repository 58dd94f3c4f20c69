package observe

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"lvslab/internal/netns"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// The VRRP observer ("vrrp") reads every segment's wire passively, on one
// packet socket per segment bridge (the bridge passes every frame it
// forwards up to its taps when promiscuous, as the capture stage relies
// on), with a kernel filter that lets only VRRP (IP protocol 112, or 51:
// keepalived's auth_type AH) and ARP through. It records, into
// <run dir>/vrrp.jsonl:
//
//   - every VRRP advertisement: segment, VRID, version, priority, interval,
//     auth, addresses, and who sent it (the node, by source address, else
//     by hardware address: use_vmac sends from 00:00:5e:00:01:VRID);
//   - every gratuitous ARP and every ARP reply, with the node that sent it;
//   - for each vip: expectation's address, an ARP probe from the bridge
//     every spec.VIPProbeInterval (sender IP 0.0.0.0, RFC 5227, so no node
//     learns a neighbour entry from it) and which hardware addresses
//     answered it before the next one: the VIP's holders over time.
//
// It reads the wire, so it sees any implementation alike (Debian's
// keepalived, lvskeepalived, FRR's vrrpd). A change of the sender of a
// VRID's adverts (a new MASTER) and a change of a VIP's holders become
// runner events (kind "vrrp"), so the timeline and the summary mark them;
// Masters() turns the adverts into bands for the picture.

// VRRPStageName is the VRRP observer's stage name.
const VRRPStageName = "vrrp"

// VRRPFile is the VRRP observer's output in the run directory.
const VRRPFile = "vrrp.jsonl"

// KindVRRP is the Kind of the runner events the VRRP observer produces.
const KindVRRP = "vrrp"

// VRRP record kinds.
const (
	RecAdvert = "advert"
	RecARP    = "arp"
	RecProbe  = "probe"
)

// VRRPRecord is one line of vrrp.jsonl.
type VRRPRecord struct {
	T       float64 `json:"t"` // seconds since T0
	Segment string  `json:"segment"`
	Kind    string  `json:"kind"` // advert, arp, probe
	// advert
	VRID     int      `json:"vrid,omitempty"`
	Version  int      `json:"version,omitempty"`
	Priority *int     `json:"priority,omitempty"` // 0 is a master resigning
	Interval string   `json:"interval,omitempty"`
	Auth     string   `json:"auth,omitempty"`
	Addrs    []string `json:"addrs,omitempty"`
	// advert and arp: the sender
	Src  string `json:"src,omitempty"`
	MAC  string `json:"mac,omitempty"`
	Node string `json:"node,omitempty"` // "" when no node of the lab has that address
	// arp
	Op         string `json:"op,omitempty"` // request, reply
	Gratuitous bool   `json:"gratuitous,omitempty"`
	Target     string `json:"target,omitempty"` // target IP
	// probe: the address probed and who answered
	VIP     string   `json:"vip,omitempty"`
	Holders []string `json:"holders,omitempty"` // node (or MAC when unknown) per answering MAC
	MACs    []string `json:"macs,omitempty"`

	at time.Duration
}

// At is the record's time since T0.
func (r VRRPRecord) At() time.Duration {
	if r.at == 0 && r.T != 0 {
		return time.Duration(r.T * float64(time.Second))
	}
	return r.at
}

// VRRPOptions configure the VRRP observer.
type VRRPOptions struct {
	Logger *slog.Logger
	// NetnsDir is where the lab pins its namespaces (default
	// topo.DefaultNetnsDir).
	NetnsDir string
	// MaxRecords caps what is kept (default 50000); the rest is counted.
	MaxRecords int
}

// VRRPStage is the VRRP observer.
type VRRPStage struct {
	opts VRRPOptions
	log  *slog.Logger
	spec *spec.Spec

	t0     time.Time
	path   string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	socks  []*segSocket

	mu      sync.Mutex
	out     *bufio.Writer
	file    *os.File
	records []VRRPRecord
	events  []runner.Event
	dropped int
	master  map[string]string // segment/vrid -> sender of the last advert
	holders map[string]string // vip -> holders of the last probe
}

// NewVRRP makes the VRRP observer. It claims nothing of the spec; the
// vip: expectations it makes answerable are judged by VIPJudge.
func NewVRRP(s *spec.Spec, opts VRRPOptions) *VRRPStage {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.NetnsDir == "" {
		opts.NetnsDir = topo.DefaultNetnsDir
	}
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = 50000
	}
	return &VRRPStage{opts: opts, log: opts.Logger.With("stage", VRRPStageName), spec: s,
		master: map[string]string{}, holders: map[string]string{}}
}

// Name is "vrrp".
func (st *VRRPStage) Name() string { return VRRPStageName }

// Claims is empty: the observer carries out no part of the spec.
func (st *VRRPStage) Claims(*spec.Spec) []string { return nil }

// segSocket is the packet socket on one segment's bridge.
type segSocket struct {
	segment string
	fd      int
	ifindex int
	mac     net.HardwareAddr
	probes  []netip.Addr // the VIPs probed on this segment

	mu      sync.Mutex
	pending map[netip.Addr]*probe // the probe in flight per VIP
}

type probe struct {
	at   time.Duration
	macs []string
}

// vrrpFilter passes ARP, and IPv4 whose protocol is VRRP or AH (classic
// BPF, as tcpdump -dd "arp or ip proto 112 or ip proto 51" would give).
func vrrpFilter() []unix.SockFilter {
	const (
		ldh = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
		ldb = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret = unix.BPF_RET | unix.BPF_K
	)
	return []unix.SockFilter{
		{Code: ldh, K: 12},                   // 0: ethertype
		{Code: jeq, K: etherTypeARP, Jt: 4},  // 1: ARP -> 6
		{Code: jeq, K: etherTypeIPv4, Jf: 4}, // 2: not IPv4 -> 7
		{Code: ldb, K: 14 + 9},               // 3: IP protocol
		{Code: jeq, K: protoVRRP, Jt: 1},     // 4: VRRP -> 6
		{Code: jeq, K: protoAH, Jf: 1},       // 5: not AH -> 7
		{Code: ret, K: 1 << 16},              // 6: accept
		{Code: ret, K: 0},                    // 7: drop
	}
}

// openSegment opens the filtered packet socket on the segment's bridge,
// inside the segment's namespace (the socket stays bound to it after the
// thread leaves).
func (st *VRRPStage) openSegment(lab *topo.Lab, seg string) (*segSocket, error) {
	filter := vrrpFilter()
	s := &segSocket{segment: seg, fd: -1, pending: map[netip.Addr]*probe{}}
	err := netns.DoPath(filepath.Join(st.opts.NetnsDir, topo.NamespaceName(lab.Name(), seg)), func() error {
		br, err := net.InterfaceByName("br0")
		if err != nil {
			return err
		}
		s.ifindex, s.mac = br.Index, br.HardwareAddr
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		fail := func(what string, err error) error {
			unix.Close(fd)
			return fmt.Errorf("%s: %w", what, err)
		}
		// The filter goes on before the bind, so no unfiltered frame is
		// ever queued.
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
			return fail("filter", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: br.Index}); err != nil {
			return fail("bind br0", err)
		}
		mreq := unix.PacketMreq{Ifindex: int32(br.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fail("promiscuous br0", err)
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fail("receive timeout", err)
		}
		s.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Start opens every segment and begins probing the vip: addresses.
func (st *VRRPStage) Start(ctx context.Context, lab *topo.Lab, t0 time.Time) error {
	if st.cancel != nil {
		return errors.New("vrrp stage started twice")
	}
	st.t0 = t0
	st.path = filepath.Join(lab.RunDir(), VRRPFile)
	f, err := os.Create(st.path)
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	st.file, st.out = f, bufio.NewWriter(f)
	probes := map[string][]netip.Addr{}
	for _, e := range lab.Spec.Expect {
		if v := e.VIP; v != nil && (v.Holders != nil || v.Holder != "") {
			seg, err := lab.Spec.VIPSegment(v)
			if err == nil && !slices.Contains(probes[seg], v.Address) {
				probes[seg] = append(probes[seg], v.Address)
			}
		}
	}
	names := newNamer(lab.Spec)
	for _, sg := range lab.Spec.Segments {
		s, err := st.openSegment(lab, sg.Name)
		if err != nil {
			st.closeAll()
			return fmt.Errorf("vrrp: segment %s: %w", sg.Name, err)
		}
		s.probes = probes[sg.Name]
		st.socks = append(st.socks, s)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	st.cancel = cancel
	for _, s := range st.socks {
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			st.read(rctx, s, names)
		}()
		if len(s.probes) > 0 {
			st.wg.Add(1)
			go func() {
				defer st.wg.Done()
				st.probe(rctx, s, names)
			}()
		}
	}
	return nil
}

func (st *VRRPStage) closeAll() {
	for _, s := range st.socks {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
	}
	st.socks = nil
}

// read decodes what the segment's socket receives until ctx ends.
func (st *VRRPStage) read(ctx context.Context, s *segSocket, names *namer) {
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		n, from, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if ctx.Err() == nil {
				st.log.Warn("vrrp observer read", "segment", s.segment, "err", err)
			}
			return
		}
		at := time.Since(st.t0)
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // our own probes
		}
		adv, arp := decodeFrame(buf[:n])
		switch {
		case adv != nil:
			st.advert(s, at, adv, names)
		case arp != nil:
			st.arp(s, at, arp, names)
		}
	}
}

func (st *VRRPStage) advert(s *segSocket, at time.Duration, a *advert, names *namer) {
	prio := a.Priority
	addrs := make([]string, len(a.Addrs))
	for i, ad := range a.Addrs {
		addrs[i] = ad.String()
	}
	node := names.byIP(a.Src)
	if node == "" {
		node = names.byMAC(a.SrcMAC)
	}
	r := VRRPRecord{Segment: s.segment, Kind: RecAdvert, VRID: a.VRID, Version: a.Version, Priority: &prio,
		Interval: a.Interval.String(), Auth: a.Auth, Addrs: addrs, Src: a.Src.String(), MAC: a.SrcMAC.String(), Node: node, at: at}
	who := senderName(node, a.Src.String())
	key := fmt.Sprintf("%s/%d", s.segment, a.VRID)
	st.mu.Lock()
	prev, seen := st.master[key]
	st.master[key] = who
	if !seen || prev != who {
		detail := fmt.Sprintf("%s VRID %d: %s sends adverts (priority %d)", s.segment, a.VRID, who, prio)
		if seen {
			detail += ", after " + prev
		}
		st.events = append(st.events, runner.Event{Name: fmt.Sprintf("%s.vrid%d", s.segment, a.VRID), At: at, Kind: KindVRRP, Detail: detail})
	}
	st.mu.Unlock()
	st.add(r)
}

func (st *VRRPStage) arp(s *segSocket, at time.Duration, a *arpFrame, names *namer) {
	node := names.byMAC(a.SenderMAC)
	// An answer to one of our probes: addressed to the bridge, target IP
	// 0.0.0.0 (the probe's sender IP).
	if a.Reply && slices.Equal(a.EtherDst, s.mac) && a.TargetIP.IsUnspecified() {
		s.mu.Lock()
		if p := s.pending[a.SenderIP]; p != nil {
			who := a.SenderMAC.String()
			if !slices.Contains(p.macs, who) {
				p.macs = append(p.macs, who)
			}
		}
		s.mu.Unlock()
		return
	}
	if !a.Reply && !a.Gratuitous() {
		return // ordinary who-has: the replies say who answered
	}
	op := "request"
	if a.Reply {
		op = "reply"
	}
	st.add(VRRPRecord{Segment: s.segment, Kind: RecARP, Op: op, Gratuitous: a.Gratuitous(), Src: a.SenderIP.String(),
		MAC: a.SenderMAC.String(), Node: node, Target: a.TargetIP.String(), at: at})
}

// probe sends an ARP probe for each of the segment's VIPs every
// VIPProbeInterval and records the answers the previous one got. A probe
// has a whole interval for its answers, also when this goroutine runs
// late: the next probe goes out an interval after this one did, not at
// the next tick of a clock (a ticker's buffered tick once sent the next
// probe 90 ms after a late one, on a loaded machine, and a holder's answer
// that took longer made a VIP look unheld).
func (st *VRRPStage) probe(ctx context.Context, s *segSocket, names *namer) {
	timer := time.NewTimer(spec.VIPProbeInterval)
	defer timer.Stop()
	frames := map[netip.Addr][]byte{}
	for _, vip := range s.probes {
		frames[vip] = arpProbe(s.mac, vip)
	}
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: s.ifindex, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	send := func() {
		at := time.Since(st.t0)
		for _, vip := range s.probes {
			s.mu.Lock()
			prev := s.pending[vip]
			s.pending[vip] = &probe{at: at}
			s.mu.Unlock()
			if prev != nil {
				st.probed(s, vip, prev, names)
			}
			if err := unix.Sendto(s.fd, frames[vip], 0, to); err != nil && ctx.Err() == nil {
				st.log.Warn("vrrp observer probe", "segment", s.segment, "vip", vip, "err", err)
			}
		}
	}
	send()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			send()
			timer.Reset(spec.VIPProbeInterval)
		}
	}
}

// probed records what one probe found.
func (st *VRRPStage) probed(s *segSocket, vip netip.Addr, p *probe, names *namer) {
	slices.Sort(p.macs)
	holders := make([]string, len(p.macs))
	for i, m := range p.macs {
		hw, _ := net.ParseMAC(m)
		holders[i] = senderName(names.byMAC(hw), m)
	}
	r := VRRPRecord{Segment: s.segment, Kind: RecProbe, VIP: vip.String(), MACs: p.macs, Holders: holders, at: p.at}
	now := strings.Join(holders, ", ")
	if now == "" {
		now = "nobody"
	}
	st.mu.Lock()
	prev, seen := st.holders[vip.String()]
	st.holders[vip.String()] = now
	if !seen || prev != now {
		st.events = append(st.events, runner.Event{Name: "vip " + vip.String(), At: p.at, Kind: KindVRRP,
			Detail: fmt.Sprintf("%s answered by %s", vip, now)})
	}
	st.mu.Unlock()
	st.add(r)
}

func senderName(node, fallback string) string {
	if node != "" {
		return node
	}
	return fallback
}

func (st *VRRPStage) add(r VRRPRecord) {
	r.T = r.at.Seconds()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.records) >= st.opts.MaxRecords {
		st.dropped++
		return
	}
	st.records = append(st.records, r)
	if st.out != nil {
		b, _ := json.Marshal(r)
		st.out.Write(b)
		st.out.WriteByte('\n')
	}
}

// Stop ends reading and probing and closes vrrp.jsonl.
func (st *VRRPStage) Stop(context.Context) error {
	if st.cancel == nil {
		return nil
	}
	st.cancel()
	st.wg.Wait()
	// The last probe of each VIP had its interval to collect answers.
	names := newNamer(st.spec)
	for _, s := range st.socks {
		for _, vip := range s.probes {
			s.mu.Lock()
			p := s.pending[vip]
			delete(s.pending, vip)
			s.mu.Unlock()
			if p != nil {
				st.probed(s, vip, p, names)
			}
		}
	}
	st.closeAll()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.dropped > 0 {
		st.log.Warn("vrrp observer dropped records", "dropped", st.dropped, "kept", len(st.records))
	}
	var errs []error
	if st.out != nil {
		errs = append(errs, st.out.Flush(), st.file.Close())
		st.out, st.file = nil, nil
	}
	return errors.Join(errs...)
}

// Records returns what the observer recorded, in time order per segment.
func (st *VRRPStage) Records() []VRRPRecord {
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.records)
}

// Events are the new senders of each VRID's adverts and the changes of
// each probed VIP's holders.
func (st *VRRPStage) Events() []runner.Event {
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.events)
}

// namer maps addresses seen on the wire to the lab's nodes.
type namer struct {
	ips  map[netip.Addr]string
	macs map[string]string
}

func newNamer(s *spec.Spec) *namer {
	nm := &namer{ips: map[netip.Addr]string{}, macs: map[string]string{}}
	if s == nil {
		return nm
	}
	for _, n := range s.Nodes {
		for _, ifc := range n.Interfaces {
			for _, a := range ifc.Addresses {
				nm.ips[a.Addr()] = n.Name
			}
			if hw := ifc.MAC.HardwareAddr(); hw != nil {
				nm.macs[hw.String()] = n.Name
			}
		}
	}
	return nm
}

func (nm *namer) byIP(a netip.Addr) string { return nm.ips[a] }

func (nm *namer) byMAC(hw net.HardwareAddr) string { return nm.macs[hw.String()] }

// LoadVRRP reads a run directory's vrrp.jsonl (nil, nil when there is
// none: the run had no VRRP observer).
func LoadVRRP(dir string) ([]VRRPRecord, error) {
	f, err := os.Open(filepath.Join(dir, VRRPFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []VRRPRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r VRRPRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", VRRPFile, err)
		}
		r.at = time.Duration(r.T * float64(time.Second))
		out = append(out, r)
	}
	return out, sc.Err()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
