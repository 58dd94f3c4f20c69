package report

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	segcap "lvslab/sim/capture"
	"lvslab/sim/spec"
)

// The walk: one request of a traffic followed through the segment
// captures, hop by hop, as seed 003 draws it (① client → director,
// ② director → real server, ③ real server → client): at every hop the
// segment, the time, the MAC addresses with the node:interface that owns
// them, the IP addresses and ports, TTL, TCP flags and, for IP-in-IP, both
// headers. The packet is recognised at every hop by what LVS never changes
// (TCP sequence numbers, payloads, ICMP ids), so the walk follows it through
// NAT and FULLNAT rewrites and tunnels; the reply is the first packet back
// on the segment where the request ended.

// ErrNotFound says the captures do not show the request.
var ErrNotFound = errors.New("request not found in the captures")

// Proto is the transport of the traffic a walk follows.
type Proto string

// The transports.
const (
	ProtoTCP  Proto = "tcp"
	ProtoUDP  Proto = "udp"
	ProtoICMP Proto = "icmp"
)

func (p Proto) number() uint8 {
	switch p {
	case ProtoUDP:
		return protoUDP
	case ProtoICMP:
		return protoICMP
	}
	return protoTCP
}

// Query selects the request a walk follows.
type Query struct {
	Traffic string
	Kind    spec.TrafficKind
	Seq     int // 1-based
	Proto   Proto
	// Local is the client's socket address; when it is not valid, the
	// Seq-th new flow from Client to Remote is taken.
	Local  netip.AddrPort
	Remote netip.AddrPort // what the client addressed (the VIP and port)
	Client []netip.Addr   // the client node's addresses
	At     time.Time      // when the request started (zero: unknown)
	// Backend and Err are what the traffic generator recorded.
	Backend string
	Err     string
}

// QueryFor builds the query for request seq of a traffic from the spec and
// the traffic's records (nil when none were saved).
func QueryFor(s *spec.Spec, traffic string, seq int, recs []Record) (Query, error) {
	var t *spec.Traffic
	for i := range s.Traffic {
		if s.Traffic[i].Name == traffic {
			t = &s.Traffic[i]
		}
	}
	if t == nil {
		return Query{}, fmt.Errorf("scenario %s has no traffic %q", s.Name, traffic)
	}
	if seq < 1 {
		seq = 1
	}
	q := Query{Traffic: traffic, Kind: t.Kind, Seq: seq, Proto: protoOf(t.Kind)}
	remote, err := targetOf(t)
	if err != nil {
		return q, err
	}
	q.Remote = remote
	if t.Source.IsValid() {
		q.Client = []netip.Addr{t.Source}
	} else if n := s.Node(t.From); n != nil {
		for _, ifc := range n.Interfaces {
			for _, a := range ifc.Addresses {
				q.Client = append(q.Client, a.Addr())
			}
		}
	}
	for _, r := range recs {
		if r.Seq != seq {
			continue
		}
		q.Local, q.At, q.Backend, q.Err = r.Local, r.Start, r.Backend, r.Err
		if r.Remote.IsValid() {
			q.Remote = r.Remote
		}
		break
	}
	return q, nil
}

func protoOf(k spec.TrafficKind) Proto {
	switch k {
	case spec.TrafficUDP, spec.TrafficDNS:
		return ProtoUDP
	case spec.TrafficICMP:
		return ProtoICMP
	}
	return ProtoTCP
}

// targetOf reads the address a traffic generator sends to.
func targetOf(t *spec.Traffic) (netip.AddrPort, error) {
	target := t.Target
	switch t.Kind {
	case spec.TrafficHTTP:
		u, err := url.Parse(target)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("traffic %s: target %q: %w", t.Name, target, err)
		}
		port := u.Port()
		if port == "" {
			port = "80"
			if u.Scheme == "https" {
				port = "443"
			}
		}
		target = netjoin(u.Hostname(), port)
	case spec.TrafficICMP:
		a, err := netip.ParseAddr(target)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("traffic %s: target %q: %w", t.Name, target, err)
		}
		return netip.AddrPortFrom(a, 0), nil
	}
	ap, err := netip.ParseAddrPort(target)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("traffic %s: target %q: %w", t.Name, target, err)
	}
	return ap, nil
}

func netjoin(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// Walk is one request followed through the captures.
type Walk struct {
	Query    Query
	Request  []Hop // the request's first packet, every place it was seen
	Reply    []Hop // the first packet back, likewise
	Findings []Finding
	// Conversation is every packet of the connection on every segment, in
	// time order (at most MaxConversation; ConversationMore says how many
	// more there were).
	Conversation     []Hop
	ConversationMore int
	Mode             string // DR, NAT, FULLNAT, TUN, or "" when no director was crossed
	// Matched says how the request was found in the captures.
	Matched string
}

// MaxConversation bounds the conversation listing.
const MaxConversation = 40

// Hop is one frame of the walk.
type Hop struct {
	Segment string
	File    string // capture file, relative to the run directory
	Frame   int    // Wireshark's frame number in File
	Time    time.Time
	Since   time.Duration // since the request's first hop

	SrcMAC, DstMAC   string
	SrcName, DstName string // node:interface owning the MAC, "" if unknown

	Outer *IPHeader // the IP-in-IP outer header
	IP    IPHeader  // the (inner) header the client's packet carries

	Proto    string // tcp, udp, icmp, or the protocol number
	SrcPort  uint16
	DstPort  uint16
	Flags    string // TCP flags: [SYN, ACK]
	Seq, Ack uint32
	ICMP     string // ICMP type, id and sequence
	Payload  int    // L4 payload bytes
	Len      int    // frame length on the wire

	// ARP is how the sender learnt the destination MAC, when the capture
	// shows it: the last ARP reply on the segment from that MAC.
	ARP string
	// Changed lists what differs from the previous hop of the same packet.
	Changed []string
}

// IPHeader is an IPv4 header as the walk shows it.
type IPHeader struct {
	Src, Dst netip.Addr
	TTL      uint8
	ID       uint16
	Proto    uint8
}

// Finding is one conclusion drawn from the hops.
type Finding struct {
	OK   bool
	Text string
}

// Trace follows the request q selects through the segment captures under
// dir/pcap. The spec (the run's resolved spec) names the MAC addresses and
// tells directors and real servers apart; it may be nil.
func Trace(dir string, s *spec.Spec, q Query) (*Walk, error) {
	pkts, err := loadSegments(dir, s)
	if err != nil {
		return nil, err
	}
	return trace(pkts, newNames(s), q)
}

// loadSegments reads every segment capture (not the per-interface ones,
// which would show each frame twice).
func loadSegments(dir string, s *spec.Spec) ([]*pkt, error) {
	var segs []string
	if s != nil {
		for _, sg := range s.Segments {
			segs = append(segs, sg.Name)
		}
	} else {
		m, _ := filepath.Glob(filepath.Join(dir, segcap.Dir, "*.pcapng"))
		for _, f := range m {
			if name := strings.TrimSuffix(filepath.Base(f), ".pcapng"); !strings.Contains(name, "_") {
				segs = append(segs, name)
			}
		}
	}
	var all []*pkt
	found := 0
	for _, seg := range segs {
		path := segcap.SegmentFile(dir, seg)
		rel, _ := filepath.Rel(dir, path)
		ps, err := readCapture(path, seg, rel)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found++
		all = append(all, ps...)
	}
	if found == 0 {
		return nil, fmt.Errorf("no segment captures in %s", filepath.Join(dir, segcap.Dir))
	}
	// Stable: frames of one file with equal timestamps keep their order.
	slices.SortStableFunc(all, func(a, b *pkt) int { return a.ts.Compare(b.ts) })
	return all, nil
}

// hopWindow bounds the time between two hops of one packet: a userspace
// director on a busy two-core machine can take a while, a retransmission
// (1s for a SYN) must not count as a hop.
const hopWindow = 500 * time.Millisecond

func trace(pkts []*pkt, nm *names, q Query) (*Walk, error) {
	start, how := findStart(pkts, q)
	if start == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, q.describe())
	}
	w := &Walk{Query: q, Matched: how}
	req := chain(pkts, start)
	last := req[len(req)-1]
	var rep []*pkt
	if r := findReply(pkts, last, q); r != nil {
		rep = chain(pkts, r)
	}
	t0 := req[0].ts
	w.Request = nm.hops(pkts, req, t0)
	w.Reply = nm.hops(pkts, rep, t0)
	w.Conversation, w.ConversationMore = nm.conversation(pkts, append(slices.Clone(req), rep...), t0)
	w.Mode, w.Findings = nm.findings(q, req, rep)
	return w, nil
}

func (q Query) describe() string {
	s := fmt.Sprintf("request %d of traffic %s (%s", q.Seq, q.Traffic, q.Proto)
	if q.Local.IsValid() {
		s += " " + q.Local.String()
	} else if len(q.Client) > 0 {
		s += fmt.Sprintf(" from %v", q.Client)
	}
	s += " → " + q.Remote.String()
	if !q.At.IsZero() {
		s += " at " + q.At.Format(time.StampMicro)
	}
	return s + ")"
}

// findStart finds the request's first packet: the one that matches the
// client's socket (or the Seq-th new flow from the client) closest to the
// recorded start, and of its copies the earliest.
func findStart(pkts []*pkt, q Query) (first *pkt, how string) {
	proto := q.Proto.number()
	opening := func(p *pkt) bool {
		if !p.hasIP || p.ip.Proto != proto || p.ip.Dst != q.Remote.Addr() {
			return false
		}
		switch proto {
		case protoTCP:
			return p.syn() && (q.Remote.Port() == 0 || p.dport == q.Remote.Port())
		case protoUDP:
			return q.Remote.Port() == 0 || p.dport == q.Remote.Port()
		case protoICMP:
			return p.icmpType == 8
		}
		return false
	}
	// What the record says of the client's socket: an ICMP generator
	// has no port (its "port" would be the echo id) and may be unbound.
	local := q.Local.IsValid() && !q.Local.Addr().IsUnspecified()
	var cands []*pkt
	for _, p := range pkts {
		if !opening(p) {
			continue
		}
		switch {
		case local && p.ip.Src != q.Local.Addr():
			continue
		case local && proto != protoICMP && p.sport != q.Local.Port():
			continue
		case q.Local.IsValid() && proto == protoICMP && q.Local.Port() != 0 && p.icmpID != q.Local.Port():
			continue
		case !local && len(q.Client) > 0 && !slices.Contains(q.Client, p.ip.Src):
			continue
		}
		cands = append(cands, p)
	}
	if len(cands) == 0 {
		return nil, ""
	}
	var pick *pkt
	switch {
	case local:
		how = "by the client's socket " + q.Local.String()
	case q.Local.IsValid() && q.Local.Port() != 0:
		how = fmt.Sprintf("by the echo id %d", q.Local.Port())
	}
	switch {
	case !q.At.IsZero():
		if how == "" {
			how = "by time alone (the record names no socket)"
		}
		how += ", nearest to the recorded start"
		// Ports get reused over a long run: the one nearest the record,
		// counting a packet sent before the recorded start as far off.
		dist := func(p *pkt) time.Duration {
			d := p.ts.Sub(q.At)
			if d < -50*time.Millisecond {
				return -d * 4
			}
			return d.Abs()
		}
		pick = slices.MinFunc(cands, func(a, b *pkt) int { return cmp.Compare(dist(a), dist(b)) })
	case local:
		pick = cands[0]
	default:
		how = fmt.Sprintf("as new flow number %d from the client to %s (no request records)", q.Seq, q.Remote)
		// Without records: the Seq-th distinct packet (retransmissions and
		// further hops share its key).
		seen := map[pktKey]bool{}
		for _, p := range cands {
			if seen[p.key] {
				continue
			}
			seen[p.key] = true
			if len(seen) == q.Seq {
				pick = p
				break
			}
		}
		if pick == nil {
			return nil, ""
		}
	}
	if !q.At.IsZero() && q.At.Sub(pick.ts) > 100*time.Millisecond {
		// Keep-alive HTTP, stream chunks: the connection is older than the
		// request, and its opening is what the walk can show.
		how += fmt.Sprintf("; the request used a connection opened %s before it, whose opening is shown", round(q.At.Sub(pick.ts)))
	}
	for _, p := range cands {
		if p.key == pick.key && !p.ts.Before(pick.ts.Add(-hopWindow)) {
			return p, how // cands are in time order: the earliest copy
		}
	}
	return pick, how
}

// frameSig tells frames apart that carry the same packet.
type frameSig struct {
	seg      string
	src, dst [6]byte
	outer    ipHdr
	hasOuter bool
	ipSrc    netip.AddrPort
	ipDst    netip.AddrPort
	ttl      uint8
}

func sigOf(p *pkt) frameSig {
	s := frameSig{seg: p.seg, src: p.src, dst: p.dst, ipSrc: p.srcAP(), ipDst: p.dstAP(), ttl: p.ip.TTL}
	if p.outer != nil {
		s.outer, s.hasOuter = *p.outer, true
		s.outer.ID, s.outer.Len = 0, 0
	}
	return s
}

// chain follows one packet from its first sighting: each next hop is the
// earliest later frame carrying the same packet that is not a copy of a
// frame already seen and not going back the way it came.
func chain(pkts []*pkt, start *pkt) []*pkt {
	out := []*pkt{start}
	seen := map[frameSig]bool{sigOf(start): true}
	cur := start
	i := slices.Index(pkts, start)
	for {
		var next *pkt
		for j := i + 1; j < len(pkts); j++ {
			p := pkts[j]
			if p.ts.Sub(cur.ts) > hopWindow {
				break
			}
			if !p.hasIP || p.key != start.key || seen[sigOf(p)] {
				continue
			}
			if p.srcAP() == cur.dstAP() && p.dstAP() == cur.srcAP() {
				continue // an echo of it on the way back, not a hop
			}
			next, i = p, j
			break
		}
		if next == nil {
			return out
		}
		out = append(out, next)
		seen[sigOf(next)] = true
		cur = next
	}
}

// findReply is the first packet back on the segment where the request
// ended: from its destination to its source.
func findReply(pkts []*pkt, last *pkt, q Query) *pkt {
	i := slices.Index(pkts, last)
	for j := i + 1; j < len(pkts); j++ {
		p := pkts[j]
		if p.ts.Sub(last.ts) > 5*time.Second {
			break
		}
		if !p.hasIP || p.seg != last.seg || p.ip.Proto != last.ip.Proto {
			continue
		}
		if p.srcAP() != last.dstAP() || p.dstAP() != last.srcAP() {
			// An ICMP error about the request names it only inside.
			continue
		}
		if last.ip.Proto == protoICMP && (p.icmpType != 0 || p.icmpID != last.icmpID || p.icmpSeq != last.icmpSeq) {
			continue
		}
		return p
	}
	return nil
}

// names resolves MAC addresses to what owns them in the lab.
type names struct {
	label    map[[6]byte]string // node:iface, or a bridge
	node     map[[6]byte]string
	director map[string]bool
	rs       map[string]bool
}

func newNames(s *spec.Spec) *names {
	nm := &names{label: map[[6]byte]string{}, node: map[[6]byte]string{}, director: map[string]bool{}, rs: map[string]bool{}}
	if s == nil {
		return nm
	}
	put := func(m spec.MAC, label, node string) {
		hw := m.HardwareAddr()
		if len(hw) != 6 {
			return
		}
		var k [6]byte
		copy(k[:], hw)
		nm.label[k] = label
		if node != "" {
			nm.node[k] = node
		}
	}
	for _, sg := range s.Segments {
		put(spec.DefaultMAC(s.Name, sg.Name, "br0"), "bridge of "+sg.Name, "")
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.Role == spec.RoleDirector || s.RunsLVSD(n) {
			nm.director[n.Name] = true
		}
		if n.Role == spec.RoleRealServer || n.RealServer != nil {
			nm.rs[n.Name] = true
		}
		for _, ifc := range n.Interfaces {
			mac := ifc.MAC
			if mac == "" {
				mac = spec.DefaultMAC(s.Name, n.Name, ifc.Name)
			}
			put(mac, n.Name+":"+ifc.Name, n.Name)
		}
	}
	return nm
}

func (nm *names) of(m [6]byte) string {
	if l, ok := nm.label[m]; ok {
		return l
	}
	switch {
	case m == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}:
		return "broadcast"
	case m[0]&1 != 0:
		return "multicast"
	}
	return ""
}

func (nm *names) isDirector(m [6]byte) bool { return nm.director[nm.node[m]] }

// hops turns a chain into hops, with what changed between them and how
// each sender knew the destination MAC.
func (nm *names) hops(all []*pkt, ch []*pkt, t0 time.Time) []Hop {
	out := make([]Hop, 0, len(ch))
	for i, p := range ch {
		h := nm.hop(p, t0)
		if a := lastARP(all, p); a != nil {
			h.ARP = fmt.Sprintf("%s is-at %s%s, ARP reply %s earlier (frame %d)",
				a.arp.SenderIP, macString(a.arp.SenderMAC), paren(nm.of(a.arp.SenderMAC)), round(p.ts.Sub(a.ts)), a.frame)
		}
		if i > 0 {
			h.Changed = changes(ch[i-1], p, nm)
		}
		out = append(out, h)
	}
	return out
}

func (nm *names) hop(p *pkt, t0 time.Time) Hop {
	h := Hop{
		Segment: p.seg, File: p.file, Frame: p.frame, Time: p.ts, Since: p.ts.Sub(t0),
		SrcMAC: macString(p.src), DstMAC: macString(p.dst), SrcName: nm.of(p.src), DstName: nm.of(p.dst),
		IP:      IPHeader{Src: p.ip.Src, Dst: p.ip.Dst, TTL: p.ip.TTL, ID: p.ip.ID, Proto: p.ip.Proto},
		SrcPort: p.sport, DstPort: p.dport, Payload: p.plen, Len: p.wire,
	}
	if p.outer != nil {
		h.Outer = &IPHeader{Src: p.outer.Src, Dst: p.outer.Dst, TTL: p.outer.TTL, ID: p.outer.ID, Proto: p.outer.Proto}
	}
	switch p.ip.Proto {
	case protoTCP:
		h.Proto, h.Flags, h.Seq, h.Ack = "tcp", flagString(p.flags), p.seq, p.ack
	case protoUDP:
		h.Proto = "udp"
	case protoICMP:
		h.Proto = "icmp"
		h.ICMP = icmpString(p)
	default:
		h.Proto = strconv.Itoa(int(p.ip.Proto))
	}
	return h
}

func icmpString(p *pkt) string {
	switch p.icmpType {
	case 8:
		return fmt.Sprintf("echo request id %d seq %d", p.icmpID, p.icmpSeq)
	case 0:
		return fmt.Sprintf("echo reply id %d seq %d", p.icmpID, p.icmpSeq)
	case 3:
		return fmt.Sprintf("destination unreachable (code %d)", p.icmpCode)
	case 11:
		return "time exceeded"
	}
	return fmt.Sprintf("type %d code %d", p.icmpType, p.icmpCode)
}

// lastARP is the latest ARP reply on p's segment, before p, sent from the
// MAC p is addressed to: how the sender learnt where to send it.
func lastARP(all []*pkt, p *pkt) *pkt {
	i := slices.Index(all, p)
	for j := i - 1; j >= 0; j-- {
		a := all[j]
		if p.ts.Sub(a.ts) > time.Minute {
			break
		}
		if a.arp != nil && a.seg == p.seg && a.arp.Op == 2 && a.arp.SenderMAC == p.dst {
			return a
		}
	}
	return nil
}

// changes says what a hop did to the packet.
func changes(a, b *pkt, nm *names) []string {
	var out []string
	if a.seg != b.seg {
		out = append(out, fmt.Sprintf("segment %s → %s", a.seg, b.seg))
	}
	if a.src != b.src {
		out = append(out, fmt.Sprintf("source MAC %s → %s", nm.short(a.src), nm.short(b.src)))
	}
	if a.dst != b.dst {
		out = append(out, fmt.Sprintf("destination MAC %s → %s", nm.short(a.dst), nm.short(b.dst)))
	}
	switch {
	case a.outer == nil && b.outer != nil:
		out = append(out, fmt.Sprintf("encapsulated in IP-in-IP %s → %s", b.outer.Src, b.outer.Dst))
	case a.outer != nil && b.outer == nil:
		out = append(out, "decapsulated")
	}
	if a.srcAP() != b.srcAP() {
		out = append(out, fmt.Sprintf("source %s → %s", apString(a.srcAP(), a.ip.Proto), apString(b.srcAP(), b.ip.Proto)))
	}
	if a.dstAP() != b.dstAP() {
		out = append(out, fmt.Sprintf("destination %s → %s", apString(a.dstAP(), a.ip.Proto), apString(b.dstAP(), b.ip.Proto)))
	}
	if a.ip.TTL != b.ip.TTL {
		out = append(out, fmt.Sprintf("TTL %d → %d", a.ip.TTL, b.ip.TTL))
	}
	if len(out) == 0 {
		out = append(out, "nothing (the same frame seen again)")
	}
	return out
}

func (nm *names) short(m [6]byte) string {
	if l := nm.of(m); l != "" {
		return l
	}
	return macString(m)
}

func apString(ap netip.AddrPort, proto uint8) string {
	if proto == protoTCP || proto == protoUDP {
		return ap.String()
	}
	return ap.Addr().String()
}

// conversation lists every packet of the connection: on each segment, the
// frames between the endpoints the hops showed there, in either direction,
// from the first hop for as long as the capture shows the connection (up
// to 10s).
func (nm *names) conversation(all []*pkt, hops []*pkt, t0 time.Time) ([]Hop, int) {
	type pair struct {
		seg  string
		a, b netip.AddrPort
	}
	norm := func(seg string, x, y netip.AddrPort) pair {
		if x.Compare(y) > 0 {
			x, y = y, x
		}
		return pair{seg, x, y}
	}
	want := map[pair]bool{}
	proto := uint8(0)
	for _, h := range hops {
		want[norm(h.seg, h.srcAP(), h.dstAP())] = true
		proto = h.ip.Proto
	}
	var out []Hop
	more := 0
	for _, p := range all {
		if p.ts.Before(t0) || p.ts.Sub(t0) > 10*time.Second {
			continue
		}
		if !p.hasIP || p.ip.Proto != proto || !want[norm(p.seg, p.srcAP(), p.dstAP())] {
			continue
		}
		if len(out) == MaxConversation {
			more++
			continue
		}
		out = append(out, nm.hop(p, t0))
	}
	return out, more
}

// findings draws the conclusions a trainer points at: how the director
// forwarded the packet and which way the reply went.
func (nm *names) findings(q Query, req, rep []*pkt) (mode string, out []Finding) {
	add := func(ok bool, format string, args ...any) {
		out = append(out, Finding{OK: ok, Text: fmt.Sprintf(format, args...)})
	}
	in, outp := -1, -1
	for i := 0; i+1 < len(req); i++ {
		if nm.isDirector(req[i].dst) && nm.isDirector(req[i+1].src) {
			in, outp = i, i+1
			break
		}
	}
	last := req[len(req)-1]
	switch {
	case in < 0 && nm.isDirector(last.dst) && len(rep) > 0 && nm.isDirector(rep[0].src):
		add(true, "%s answered the request itself (it owns %s) instead of forwarding it", nm.node[last.dst], last.ip.Dst)
	case in < 0 && nm.isDirector(last.dst):
		add(false, "%s received the request but did not forward it", nm.node[last.dst])
	case in < 0:
		add(false, "the request did not pass through a director: no frame of it went to a director's MAC and left from one")
	default:
		a, b := req[in], req[outp]
		dir := nm.node[b.src]
		switch {
		case a.outer == nil && b.outer != nil:
			mode = "TUN"
			add(true, "%s encapsulated the packet in IP-in-IP (LVS-TUN): outer %s → %s, inner %s → %s unchanged",
				dir, b.outer.Src, b.outer.Dst, apString(b.srcAP(), b.ip.Proto), apString(b.dstAP(), b.ip.Proto))
		case a.srcAP() == b.srcAP() && a.dstAP() == b.dstAP():
			mode = "DR"
			ttl := ""
			if a.ip.TTL != b.ip.TTL {
				ttl = fmt.Sprintf("; only the TTL went %d → %d, as any forwarder (and the kernel's IPVS) decrements it", a.ip.TTL, b.ip.TTL)
			}
			add(true, "%s forwarded the frame by rewriting only the MAC addresses (LVS-DR): destination MAC %s → %s, addresses and ports %s → %s unchanged%s",
				dir, nm.short(a.dst), nm.short(b.dst), apString(b.srcAP(), b.ip.Proto), apString(b.dstAP(), b.ip.Proto), ttl)
		case a.srcAP() == b.srcAP():
			mode = "NAT"
			add(true, "%s rewrote the destination %s → %s (LVS-NAT); the source %s stayed",
				dir, apString(a.dstAP(), a.ip.Proto), apString(b.dstAP(), b.ip.Proto), apString(b.srcAP(), b.ip.Proto))
		default:
			mode = "FULLNAT"
			add(true, "%s rewrote both ends (FULLNAT): source %s → %s, destination %s → %s",
				dir, apString(a.srcAP(), a.ip.Proto), apString(b.srcAP(), b.ip.Proto), apString(a.dstAP(), a.ip.Proto), apString(b.dstAP(), b.ip.Proto))
		}
	}
	server := nm.node[last.dst]
	serverLabel := nm.short(last.dst)
	if (mode == "DR" || mode == "TUN") && nm.rs[server] {
		if last.ip.Dst == q.Remote.Addr() {
			add(true, "%s received the frame addressed to its own MAC (%s) while the IP destination stayed the VIP %s", server, serverLabel, last.ip.Dst)
		} else {
			add(false, "%s received the frame, but its IP destination is %s, not the VIP %s", server, last.ip.Dst, q.Remote.Addr())
		}
	}
	if len(rep) == 0 {
		add(false, "no reply to it appears in the captures")
		return mode, out
	}
	first := rep[0]
	via := -1
	for i, p := range rep {
		if nm.isDirector(p.src) || nm.isDirector(p.dst) {
			via = i
			break
		}
	}
	if f, ok := nm.resetFinding(mode, last, first, via); ok {
		out = append(out, f)
	}
	if nm.rs[nm.node[first.src]] {
		same := ""
		if first.src == last.dst {
			same = " (the one the request went to)"
		}
		add(true, "the reply left %s%s from its MAC %s with source %s", nm.node[first.src], same, nm.short(first.src), apString(first.srcAP(), first.ip.Proto))
	}
	switch mode {
	case "DR", "TUN":
		if via < 0 {
			add(true, "the reply bypassed the director: none of its %d frame(s) came from or went to a director's MAC", len(rep))
		} else {
			add(false, "the reply passed a director at hop %d (%s → %s), which %s should avoid", len(req)+via+1, nm.short(rep[via].src), nm.short(rep[via].dst), mode)
		}
		if first.ip.Src == q.Remote.Addr() {
			add(true, "the reply's source is the VIP %s, so the client sees the address it asked for", first.ip.Src)
		}
	case "NAT", "FULLNAT":
		if via < 0 || via+1 >= len(rep) {
			add(false, "the reply did not come back through the director, which %s needs", mode)
			break
		}
		a, b := rep[via], rep[via+1]
		add(true, "the reply came back through %s, which rewrote the source %s → %s", nm.node[b.src], apString(a.srcAP(), a.ip.Proto), apString(b.srcAP(), b.ip.Proto))
	}
	if q.Backend != "" && server != "" {
		add(true, "the traffic generator recorded backend %q; the request went to %s", q.Backend, server)
	}
	return mode, out
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
