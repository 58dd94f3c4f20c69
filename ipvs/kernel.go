package ipvs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// KernelGuard keeps the namespace's own kernel stack out of the flows lvsd
// owns. AF_PACKET taps see a frame before tc and netfilter ingress do, so an
// nftables netdev-ingress drop hides the frame from the kernel while lvsd
// still reads it. Without the guard the kernel would answer a SYN to a VIP it
// does not listen on with a RST, or (ip_forward=1) route a NAT reply to the
// client un-translated.
//
// The guard owns one nftables table, programmed over netlink (no nft
// subprocess). Its chains are fixed; what changes with the configuration
// are the elements of named sets, which Update adds and removes
// incrementally in one transaction, so a rule change costs one small netlink
// round trip whatever the size of the table. Apply (re)installs everything
// atomically; Remove deletes the table.
type KernelGuard struct {
	Table   string   // nftables table name (family netdev)
	Devices []string // interfaces lvsd reads from
	// NetNS, when not zero, is a file descriptor of the network namespace
	// to program (a test driving the guard from outside). Zero: the
	// namespace of the thread that first uses the guard.
	NetNS int

	mu   sync.Mutex
	conn *nftables.Conn
	// have is what the kernel holds, as installed by the last successful
	// Apply and Updates; nil before the first Apply.
	have map[GuardElem]bool
	// beforeFlush, when set (tests), runs before each transaction is sent.
	beforeFlush func()

	applied, failed atomic.Uint64 // transactions sent, for the metrics
}

func (g *KernelGuard) flush(c *nftables.Conn) error {
	if g.beforeFlush != nil {
		g.beforeFlush()
	}
	if err := c.Flush(); err != nil {
		g.failed.Add(1)
		return err
	}
	g.applied.Add(1)
	return nil
}

// updates returns how many transactions (Apply and Update) succeeded and
// failed.
func (g *KernelGuard) updates() (ok, failed uint64) { return g.applied.Load(), g.failed.Load() }

// GuardRule is what the guard drops for the kernel.
type GuardRule struct {
	// Owned addresses (VIPs, FULLNAT local addresses): every IPv4 packet to
	// them belongs to lvsd.
	Owned []netip.Addr
	// OwnedPorts are services on addresses the kernel also holds (the
	// director's own address): only the service's protocol and port belong
	// to lvsd, as only those are intercepted by the kernel's IPVS.
	OwnedPorts []ProtoAddrPort
	// NATReal are the (address, protocol, port) of NAT real servers: their
	// replies are translated by lvsd, never forwarded by the kernel.
	NATReal []ProtoAddrPort
	// Marks are lvsd's classifier rules: what they match is balanced by a
	// fwmark service, so the kernel must not see it either.
	Marks []MarkRule
	// Local are the namespace's own addresses (SetLocal).
	Local []netip.Addr
}

// ProtoAddrPort names one L4 endpoint.
type ProtoAddrPort struct {
	Proto uint8 // 6 TCP, 17 UDP
	netip.AddrPort
}

// GuardSet names one of the guard's nftables sets.
type GuardSet uint8

// The guard's sets. The rule of each is in guardChainRules.
const (
	SetOwned    GuardSet = iota // ipv4_addr: daddr dropped
	SetOwnedSvc                 // ipv4_addr . inet_proto . inet_service: daddr . l4proto . dport dropped
	SetNATReal                  // ipv4_addr . inet_proto . inet_service: saddr . l4proto . sport dropped
	SetNATRS                    // ipv4_addr: ICMP errors from saddr dropped
	// SetLocal are the namespace's own addresses: a packet from a NAT real
	// server to one of them is not a reply lvsd translates (those go to
	// clients) but the director's own connection, such as a health check
	// of lvskeepalived, so the nat_real and nat_rs rules let it through,
	// as ip_vs_out lets a packet without a connection pass.
	SetLocal // ipv4_addr: daddr exempt from the nat_real and nat_rs drops
	numGuardSets
)

var guardSetNames = [numGuardSets]string{"owned", "owned_svc", "nat_real", "nat_rs", "local"}

func (s GuardSet) String() string {
	if s < numGuardSets {
		return guardSetNames[s]
	}
	return fmt.Sprintf("set%d", s)
}

// GuardElem is one element of one set. Address sets use only the address
// of Key.
type GuardElem struct {
	Set GuardSet
	Key ProtoAddrPort
}

func (el GuardElem) String() string {
	switch el.Set {
	case SetOwned, SetNATRS, SetLocal:
		return fmt.Sprintf("%s %s", el.Set, el.Key.Addr())
	}
	return fmt.Sprintf("%s %s . %s . %d", el.Set, el.Key.Addr(), protoName(el.Key.Proto), el.Key.Port())
}

func addrElem(s GuardSet, a netip.Addr) GuardElem {
	return GuardElem{Set: s, Key: ProtoAddrPort{AddrPort: netip.AddrPortFrom(a, 0)}}
}

// Elems lists the set elements r wants, without duplicates.
func (r GuardRule) Elems() []GuardElem {
	seen := map[GuardElem]bool{}
	var out []GuardElem
	add := func(el GuardElem) {
		if !seen[el] && el.Key.Addr().Is4() {
			seen[el] = true
			out = append(out, el)
		}
	}
	for _, a := range r.Owned {
		add(addrElem(SetOwned, a))
	}
	for _, k := range r.OwnedPorts {
		add(GuardElem{Set: SetOwnedSvc, Key: k})
	}
	for _, k := range r.NATReal {
		add(GuardElem{Set: SetNATReal, Key: k})
		add(addrElem(SetNATRS, k.Addr()))
	}
	for _, a := range r.Local {
		add(addrElem(SetLocal, a))
	}
	return out
}

// The register layout nft itself uses for concatenations: NFT_REG_1 holds
// the first 4-byte field (it overlaps NFT_REG32_00), the next fields go to
// the following 32-bit registers.
const (
	reg1    = 1
	reg32_1 = 9
	reg32_2 = 10
)

// elemKey encodes an element as the kernel stores it: each field of a
// concatenation padded to 4 bytes, ports in network order.
func elemKey(el GuardElem) []byte {
	a := el.Key.Addr().As4()
	switch el.Set {
	case SetOwned, SetNATRS, SetLocal:
		return a[:]
	}
	k := make([]byte, 12)
	copy(k, a[:])
	k[4] = el.Key.Proto
	binary.BigEndian.PutUint16(k[8:], el.Key.Port())
	return k
}

func (g *KernelGuard) tableRef() *nftables.Table {
	return &nftables.Table{Name: g.Table, Family: nftables.TableFamilyNetdev}
}

func (g *KernelGuard) setRef(s GuardSet) *nftables.Set {
	set := &nftables.Set{Table: g.tableRef(), Name: s.String()}
	switch s {
	case SetOwned, SetNATRS, SetLocal:
		set.KeyType = nftables.TypeIPAddr
	default:
		set.KeyType = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
		set.Concatenation = true
	}
	return set
}

// connect opens the guard's netlink socket once; it stays bound to the
// namespace it was opened in.
func (g *KernelGuard) connect() (*nftables.Conn, error) {
	if g.conn != nil {
		return g.conn, nil
	}
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(bigSendBuffer)}
	if g.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(g.NetNS))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables netlink socket: %w", err)
	}
	g.conn = c
	return c, nil
}

// bigSendBuffer lets one transaction carry a large table: the kernel refuses
// a netlink batch larger than the socket's send buffer.
func bigSendBuffer(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 16<<20)
	})
	if err == nil && serr != nil {
		// Not root (tests only): the default buffer still takes thousands
		// of elements.
		return nil
	}
	return err
}

// Close releases the netlink socket; the table stays.
func (g *KernelGuard) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn == nil {
		return nil
	}
	err := g.conn.CloseLasting()
	g.conn = nil
	return err
}

// elemChunk bounds the elements of one netlink message.
const elemChunk = 512

// Apply installs exactly r, replacing whatever the table held, in one
// transaction.
func (g *KernelGuard) Apply(_ context.Context, r GuardRule) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.install(r); err != nil {
		return fmt.Errorf("install nftables guard %s on %s: %w", g.Table, strings.Join(g.Devices, ","), err)
	}
	return nil
}

func (g *KernelGuard) install(r GuardRule) error {
	c, err := g.connect()
	if err != nil {
		return err
	}
	g.have = nil // unknown until this transaction succeeds
	t := g.tableRef()
	// Add then delete: the delete succeeds whether or not the table exists,
	// and the whole batch is one transaction.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	elems := r.Elems()
	var sets [numGuardSets]*nftables.Set
	for s := range numGuardSets {
		sets[s] = g.setRef(s)
		if err := c.AddSet(sets[s], nil); err != nil {
			return fmt.Errorf("set %s: %w", s, err)
		}
	}
	icmp := &nftables.Set{Table: t, Name: "icmp_err", KeyType: nftables.TypeICMPType, Constant: true}
	if err := c.AddSet(icmp, []nftables.SetElement{{Key: []byte{3}}, {Key: []byte{11}}, {Key: []byte{12}}}); err != nil {
		return fmt.Errorf("set icmp_err: %w", err)
	}
	if err := g.queueElems(c, sets, elems, true); err != nil {
		return err
	}
	for _, dev := range g.Devices {
		ch := c.AddChain(&nftables.Chain{
			Name: "ingress_" + chainName(dev), Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookIngress, Priority: nftables.ChainPriorityRef(-500),
			Device: dev, Policy: ptr(nftables.ChainPolicyAccept),
		})
		for _, exprs := range guardChainRules(sets, icmp, r.Marks) {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
		}
	}
	if err := g.flush(c); err != nil {
		return err
	}
	g.have = make(map[GuardElem]bool, len(elems))
	for _, el := range elems {
		g.have[el] = true
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func (g *KernelGuard) queueElems(c *nftables.Conn, sets [numGuardSets]*nftables.Set, elems []GuardElem, add bool) error {
	var by [numGuardSets][]nftables.SetElement
	for _, el := range elems {
		by[el.Set] = append(by[el.Set], nftables.SetElement{Key: elemKey(el)})
	}
	for s, list := range by {
		for chunk := range slices.Chunk(list, elemChunk) {
			var err error
			if add {
				err = c.SetAddElements(sets[s], chunk)
			} else {
				err = c.SetDeleteElements(sets[s], chunk)
			}
			if err != nil {
				return fmt.Errorf("set %s: %w", GuardSet(s), err)
			}
		}
	}
	return nil
}

// Update adds and removes set elements in one transaction. It is what every
// rule change costs: one netlink round trip of a few elements. An element
// already present (add) or absent (del) is skipped.
func (g *KernelGuard) Update(_ context.Context, add, del []GuardElem) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.have == nil {
		return fmt.Errorf("update nftables guard %s: not installed", g.Table)
	}
	add = slices.DeleteFunc(slices.Clone(add), func(el GuardElem) bool { return g.have[el] || !el.Key.Addr().Is4() })
	del = slices.DeleteFunc(slices.Clone(del), func(el GuardElem) bool { return !g.have[el] })
	if len(add) == 0 && len(del) == 0 {
		return nil
	}
	c, err := g.connect()
	if err != nil {
		return err
	}
	var sets [numGuardSets]*nftables.Set
	for s := range numGuardSets {
		sets[s] = g.setRef(s)
	}
	err = errors.Join(g.queueElems(c, sets, del, false), g.queueElems(c, sets, add, true))
	if err == nil {
		err = g.flush(c)
	}
	if err != nil {
		return fmt.Errorf("update nftables guard %s: %w", g.Table, err)
	}
	for _, el := range del {
		delete(g.have, el)
	}
	for _, el := range add {
		g.have[el] = true
	}
	return nil
}

// Installed lists the elements the guard holds, sorted (for tests and
// diagnostics).
func (g *KernelGuard) Installed() []GuardElem {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]GuardElem, 0, len(g.have))
	for el := range g.have {
		out = append(out, el)
	}
	slices.SortFunc(out, compareElem)
	return out
}

// installedRule is what the kernel holds, as a GuardRule (for the metrics).
func (g *KernelGuard) installedRule() GuardRule {
	var r GuardRule
	for _, el := range g.Installed() {
		switch el.Set {
		case SetOwned:
			r.Owned = append(r.Owned, el.Key.Addr())
		case SetOwnedSvc:
			r.OwnedPorts = append(r.OwnedPorts, el.Key)
		case SetNATReal:
			r.NATReal = append(r.NATReal, el.Key)
		}
	}
	return r
}

func compareElem(a, b GuardElem) int {
	if a.Set != b.Set {
		return int(a.Set) - int(b.Set)
	}
	if c := a.Key.AddrPort.Compare(b.Key.AddrPort); c != 0 {
		return c
	}
	return int(a.Key.Proto) - int(b.Key.Proto)
}

// Remove deletes the guard's table; a missing table is not an error.
func (g *KernelGuard) Remove(_ context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, err := g.connect()
	if err == nil {
		t := g.tableRef()
		c.AddTable(t)
		c.DelTable(t)
		err = c.Flush()
	}
	g.have = nil
	if err != nil {
		return fmt.Errorf("remove nftables guard %s: %w", g.Table, err)
	}
	return nil
}

// guardChainRules are the rules of each ingress chain, in order.
func guardChainRules(sets [numGuardSets]*nftables.Set, icmp *nftables.Set, marks []MarkRule) [][]expr.Any {
	lookup := func(s *nftables.Set) expr.Any {
		return &expr.Lookup{SourceRegister: reg1, SetName: s.Name, SetID: s.ID}
	}
	drop := []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
	// ip daddr != @local
	notLocal := []expr.Any{ipField(16), &expr.Lookup{SourceRegister: reg1, SetName: sets[SetLocal].Name, SetID: sets[SetLocal].ID, Invert: true}}
	rule := func(parts ...expr.Any) []expr.Any {
		return slices.Concat(isIPv4(), parts, drop)
	}
	rules := [][]expr.Any{
		// ip daddr @owned
		rule(ipField(16), lookup(sets[SetOwned])),
		// ip daddr . meta l4proto . th dport @owned_svc
		rule(ipField(16), l4proto(reg32_1), thPort(2, reg32_2), lookup(sets[SetOwnedSvc])),
		// ip daddr != @local ip saddr . meta l4proto . th sport @nat_real
		rule(notLocal[0], notLocal[1], ipField(12), l4proto(reg32_1), thPort(0, reg32_2), lookup(sets[SetNATReal])),
		// ip saddr @nat_rs icmp type @icmp_err: ICMP errors from NAT real
		// servers quote the untranslated flow; lvsd translates them, the
		// kernel would forward them as they are.
		rule(notLocal[0], notLocal[1], ipField(12), lookup(sets[SetNATRS]),
			l4proto(reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{1}},
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			lookup(icmp)),
	}
	for i := range marks {
		rules = append(rules, rule(marks[i].exprs()...))
	}
	return rules
}

// isIPv4 is the "meta protocol ip" dependency nft adds to every ip match in
// the netdev family.
func isIPv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{0x08, 0x00}},
	}
}

func ipField(off uint32) expr.Any {
	return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4}
}

func l4proto(reg uint32) expr.Any { return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg} }

func thPort(off, reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
}

// exprs renders the rule as nftables expressions for the guard (what nft
// would compile "ip daddr P tcp dport N ether saddr != M" into).
func (r *MarkRule) exprs() []expr.Any {
	var out []expr.Any
	if r.Dst.IsValid() {
		bits := r.Dst.Bits()
		mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-bits))
		if bits == 0 {
			mask = []byte{0, 0, 0, 0}
		}
		a := r.Dst.Masked().Addr().As4()
		out = append(out, ipField(16))
		if bits < 32 {
			out = append(out, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}})
		}
		out = append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: a[:]})
	}
	if r.Proto != 0 {
		out = append(out, l4proto(reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{r.Proto}})
	}
	if r.DstPort != 0 {
		out = append(out, thPort(2, reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binary.BigEndian.AppendUint16(nil, r.DstPort)})
	}
	if r.HasSrcMAC {
		op := expr.CmpOpEq
		if r.SrcMACNot {
			op = expr.CmpOpNeq
		}
		out = append(out,
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
			&expr.Cmp{Op: op, Register: reg1, Data: slices.Clone(r.SrcMAC[:])})
	}
	return out
}

func chainName(dev string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, dev)
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	return fmt.Sprint(p)
}
