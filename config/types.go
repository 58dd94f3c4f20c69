// Package config holds the typed configuration of virtual services and real
// servers, and the ipvsadm(8) command language that edits it: the command line
// (ParseArgs), rule files as ipvsadm -R reads them (ParseRules), and the
// ipvsadm -S output that writes them back (FormatSave).
//
// The behaviour follows ipvsadm 1.31; deliberate differences are documented
// where they are made (see ParseArgs).
package config

import (
	"fmt"
	"net/netip"
	"time"

	"lvslab/sched"
)

// Protocol is the kind of a virtual service.
type Protocol uint8

// The zero Protocol is invalid: a Service must say what it matches.
const (
	ProtoTCP Protocol = iota + 1
	ProtoUDP
	ProtoSCTP // parsed (--sctp-service); the engine may refuse it
	// ProtoFwmark services match the packet's firewall mark (-f) instead of
	// an address, port and protocol.
	ProtoFwmark
)

var protoText = [...]string{ProtoTCP: "tcp", ProtoUDP: "udp", ProtoSCTP: "sctp", ProtoFwmark: "fwmark"}

// Name is the protocol as ipvsadm -L prints it: TCP, UDP, SCTP, FWM.
func (p Protocol) Name() string {
	switch p {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoSCTP:
		return "SCTP"
	case ProtoFwmark:
		return "FWM"
	}
	return "?"
}

// IPProto is the IP protocol number (6, 17, 132), 0 for fwmark services.
func (p Protocol) IPProto() uint8 {
	switch p {
	case ProtoTCP:
		return 6
	case ProtoUDP:
		return 17
	case ProtoSCTP:
		return 132
	}
	return 0
}

func (p Protocol) String() string { return enumString(protoText[:], int(p), "Protocol") }

// MarshalText makes the wire form (lvsd's control socket) readable.
func (p Protocol) MarshalText() ([]byte, error) { return enumMarshal(protoText[:], int(p), "protocol") }

// UnmarshalText is the inverse of MarshalText.
func (p *Protocol) UnmarshalText(b []byte) error {
	v, err := enumUnmarshal(protoText[:], b, "protocol")
	*p = Protocol(v)
	return err
}

// Forward is a real server's packet-forwarding method.
type Forward uint8

// The zero Forward is direct routing, ipvsadm's default (-g).
const (
	ForwardRoute  Forward = iota // -g, DR: rewrite the MAC only
	ForwardMasq                  // -m, NAT
	ForwardTunnel                // -i, IP-in-IP (or GUE/GRE)
	// ForwardLocal is the kernel's LOCALNODE; modern kernels never report
	// it and no option selects it. It exists so listings can show "Local".
	ForwardLocal
	// ForwardFullNAT is reserved for the FULLNAT data path (--fullnat, as the
	// alibaba/DPVS ipvsadm spells it); the engine may refuse it.
	ForwardFullNAT
)

var forwardText = [...]string{"route", "masq", "tunnel", "local", "fullnat"}

// Name is the Forward column of ipvsadm -L: Route, Masq, Tunnel, Local.
func (f Forward) Name() string {
	switch f {
	case ForwardRoute:
		return "Route"
	case ForwardMasq:
		return "Masq"
	case ForwardTunnel:
		return "Tunnel"
	case ForwardLocal:
		return "Local"
	case ForwardFullNAT:
		return "FullNat"
	}
	return "?"
}

// Switch is the ipvsadm option that selects the method (-g -m -i); LOCALNODE
// is saved as -g, as ipvsadm does.
func (f Forward) Switch() string {
	switch f {
	case ForwardMasq:
		return "-m"
	case ForwardTunnel:
		return "-i"
	case ForwardFullNAT:
		return "--fullnat"
	}
	return "-g"
}

func (f Forward) String() string { return enumString(forwardText[:], int(f), "Forward") }

// MarshalText makes the wire form readable.
func (f Forward) MarshalText() ([]byte, error) { return enumMarshal(forwardText[:], int(f), "forward") }

// UnmarshalText is the inverse of MarshalText.
func (f *Forward) UnmarshalText(b []byte) error {
	v, err := enumUnmarshal(forwardText[:], b, "forward")
	*f = Forward(v)
	return err
}

// TunType is the encapsulation of a tunnel (-i) real server (--tun-type).
type TunType uint8

// Values are the kernel's IP_VS_CONN_F_TUNNEL_TYPE_*.
const (
	TunIPIP TunType = iota
	TunGUE
	TunGRE
)

var tunTypeText = [...]string{"ipip", "gue", "gre"}

func (t TunType) String() string { return enumString(tunTypeText[:], int(t), "TunType") }

// MarshalText makes the wire form readable.
func (t TunType) MarshalText() ([]byte, error) {
	return enumMarshal(tunTypeText[:], int(t), "tunnel type")
}

// UnmarshalText is the inverse of MarshalText.
func (t *TunType) UnmarshalText(b []byte) error {
	v, err := enumUnmarshal(tunTypeText[:], b, "tunnel type")
	*t = TunType(v)
	return err
}

// TunCsum is the outer checksum mode of a GUE/GRE tunnel.
type TunCsum uint8

// Values are the kernel's IP_VS_TUNNEL_ENCAP_FLAG_*.
const (
	TunNoCsum  TunCsum = iota // --tun-nocsum (default)
	TunCsumOn                 // --tun-csum
	TunRemCsum                // --tun-remcsum (GUE only)
)

var tunCsumText = [...]string{"nocsum", "csum", "remcsum"}

// Short is the TunnelInfo suffix of ipvsadm -L --tun-info: -c, +c, r+c.
func (c TunCsum) Short() string {
	switch c {
	case TunCsumOn:
		return "+c"
	case TunRemCsum:
		return "r+c"
	}
	return "-c"
}

func (c TunCsum) String() string { return enumString(tunCsumText[:], int(c), "TunCsum") }

// MarshalText makes the wire form readable.
func (c TunCsum) MarshalText() ([]byte, error) {
	return enumMarshal(tunCsumText[:], int(c), "tunnel csum")
}

// UnmarshalText is the inverse of MarshalText.
func (c *TunCsum) UnmarshalText(b []byte) error {
	v, err := enumUnmarshal(tunCsumText[:], b, "tunnel csum")
	*c = TunCsum(v)
	return err
}

// DefaultScheduler is used when -A/-E name none.
const DefaultScheduler = "wlc"

// DefaultPersistTimeout is what -p without a value means: ipvsadm's
// IPVS_SVC_PERSISTENT_TIMEOUT (the man page's 300 s is wrong; the code wins).
const DefaultPersistTimeout = 360 * time.Second

// MaxTimeout bounds -p and --set values: 31 days, as ipvsadm.
const MaxTimeout = 31 * 24 * time.Hour

// Service is one virtual service: what it matches and how it schedules.
type Service struct {
	Protocol Protocol `json:"protocol"`
	// Addr and Port are the VIP of a TCP/UDP/SCTP service. Port 0 is a
	// port-zero ("all ports") service, valid only when persistent.
	Addr netip.Addr `json:"addr,omitzero"`
	Port uint16     `json:"port,omitempty"`
	// Fwmark and FwmarkIPv6 identify a fwmark service (-f N [-6]).
	Fwmark     uint32 `json:"fwmark,omitempty"`
	FwmarkIPv6 bool   `json:"fwmark_ipv6,omitempty"`

	Scheduler string `json:"scheduler,omitempty"`
	// Flags holds only the scheduler flags (-b): sched.Flag1..Flag3. The
	// kernel's PERSISTENT and ONEPACKET bits are the fields below.
	Flags sched.Flags `json:"sched_flags,omitempty"`

	Persistent     bool          `json:"persistent,omitempty"`
	PersistTimeout time.Duration `json:"persist_timeout,omitempty"`
	// Netmask is the persistence granularity (-M) as a mask address
	// (255.255.255.0, or ffff:ffff:ffff:ffff:: for an IPv6 /64). The zero
	// Addr means a full-length mask, ipvsadm's default; parsers store a
	// full-length mask as the zero Addr so equal configurations compare equal.
	Netmask netip.Addr `json:"netmask,omitzero"`
	// PE is the persistence engine (--pe), "" for none.
	PE string `json:"pe,omitempty"`
	// OnePacket is one-packet scheduling (-o), UDP only.
	OnePacket bool `json:"ops,omitempty"`
	// SynProxy is the FULLNAT fork's IP_VS_SVC_F_SYNPROXY (-j enable,
	// keepalived's syn_proxy): the director answers SYNs with cookies.
	// TCP only.
	SynProxy bool `json:"synproxy,omitempty"`
}

// Is6 reports whether the service is an IPv6 one.
func (s Service) Is6() bool {
	if s.Protocol == ProtoFwmark {
		return s.FwmarkIPv6
	}
	return s.Addr.Is6()
}

// MaskBits is the persistence granularity as a prefix length.
func (s Service) MaskBits() int {
	full := 32
	if s.Is6() {
		full = 128
	}
	if !s.Netmask.IsValid() {
		return full
	}
	bits, _ := maskBits(s.Netmask)
	return bits
}

// ID is the key that names the service in commands.
func (s Service) ID() ServiceID {
	if s.Protocol == ProtoFwmark {
		return ServiceID{Protocol: ProtoFwmark, Fwmark: s.Fwmark, FwmarkIPv6: s.FwmarkIPv6}
	}
	return ServiceID{Protocol: s.Protocol, Addr: s.Addr, Port: s.Port}
}

// ServiceID identifies a virtual service, as the kernel's service lookup does.
type ServiceID struct {
	Protocol   Protocol
	Addr       netip.Addr
	Port       uint16
	Fwmark     uint32
	FwmarkIPv6 bool
}

// String is for messages: "TCP 10.0.0.1:80", "FWM 1", "FWM 1 IPv6".
func (id ServiceID) String() string {
	if id.Protocol == ProtoFwmark {
		if id.FwmarkIPv6 {
			return fmt.Sprintf("FWM %d IPv6", id.Fwmark)
		}
		return fmt.Sprintf("FWM %d", id.Fwmark)
	}
	return id.Protocol.Name() + " " + netip.AddrPortFrom(id.Addr, id.Port).String()
}

// Dest is one real server of a virtual service.
type Dest struct {
	Addr netip.Addr `json:"addr"`
	// Port is the real server's port. ParseArgs forces it to the service
	// port for DR and tunnel real servers of non-fwmark services.
	Port    uint16  `json:"port,omitempty"`
	Forward Forward `json:"forward"`
	// Weight is 0..65535; 0 quiesces the server. ParseArgs defaults it to 1.
	Weight int `json:"weight"`
	// UThreshold and LThreshold are the connection thresholds (-x, -y);
	// 0 means unset.
	UThreshold uint32 `json:"u_threshold,omitempty"`
	LThreshold uint32 `json:"l_threshold,omitempty"`
	// TunType, TunPort and TunCsum describe the encapsulation of a tunnel
	// real server; they are zero for other methods.
	TunType TunType `json:"tun_type,omitempty"`
	TunPort uint16  `json:"tun_port,omitempty"`
	TunCsum TunCsum `json:"tun_csum,omitempty"`
}

// ID is the key that names the real server within its service.
func (d Dest) ID() DestID { return DestID{Addr: d.Addr, Port: d.Port} }

// DestID identifies a real server within a service.
type DestID struct {
	Addr netip.Addr
	Port uint16
}

// Validate applies the kernel's checks on a real server (ip_vs_add_dest,
// ip_vs_edit_dest) that no single ipvsadm option can express.
func (d Dest) Validate() error {
	if !d.Addr.IsValid() {
		return fmt.Errorf("real server without an address")
	}
	if d.Weight < 0 || d.Weight > 65535 {
		return fmt.Errorf("illegal weight %d (0..65535)", d.Weight)
	}
	if d.LThreshold > d.UThreshold {
		// The kernel answers ERANGE; say why.
		return fmt.Errorf("numerical result out of range: lower threshold %d is higher than upper threshold %d",
			d.LThreshold, d.UThreshold)
	}
	if d.Forward == ForwardTunnel && d.TunType == TunGUE && d.TunPort == 0 {
		return fmt.Errorf("gue tunnel needs a --tun-port")
	}
	return nil
}

// Validate checks a service for add/edit as ipvsadm and the kernel do.
func (s Service) Validate() error {
	switch s.Protocol {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		if !s.Addr.IsValid() {
			return fmt.Errorf("%s service without an address", s.Protocol.Name())
		}
		if s.Port == 0 && !s.Persistent {
			return fmt.Errorf("zero port specified for non-persistent service")
		}
		if s.OnePacket && s.Protocol != ProtoUDP {
			return fmt.Errorf("one-packet scheduling is only for UDP virtual services")
		}
		if s.SynProxy && s.Protocol != ProtoTCP {
			return fmt.Errorf("SYN proxy is only for TCP virtual services")
		}
	case ProtoFwmark:
		if s.Fwmark == 0 {
			return fmt.Errorf("invalid fwmark value `0' specified")
		}
	default:
		return fmt.Errorf("service has no protocol")
	}
	if !knownScheduler(s.Scheduler) {
		return fmt.Errorf("unknown scheduler `%s'", s.Scheduler)
	}
	if s.Flags&^(sched.Flag1|sched.Flag2|sched.Flag3) != 0 {
		return fmt.Errorf("invalid scheduler flags %#x", uint32(s.Flags))
	}
	if s.Persistent && (s.PersistTimeout < time.Second || s.PersistTimeout > MaxTimeout) {
		return fmt.Errorf("invalid timeout value `%d' specified", int64(s.PersistTimeout/time.Second))
	}
	if s.Netmask.IsValid() {
		if s.Netmask.Is6() != s.Is6() {
			return fmt.Errorf("persistence netmask %s does not match the service's address family", s.Netmask)
		}
		if _, ok := maskBits(s.Netmask); !ok {
			return fmt.Errorf("persistence netmask %s is not contiguous", s.Netmask)
		}
	}
	if s.PE != "" && s.PE != "sip" {
		return fmt.Errorf("unknown persistence engine `%s'", s.PE)
	}
	return nil
}

// VirtualService is a service with its real servers: the unit ipvsadm -S
// writes and a rule file builds.
type VirtualService struct {
	Service Service `json:"service"`
	Dests   []Dest  `json:"dests,omitempty"`
	// Laddrs are the FULLNAT local addresses (-P -z), in the order added.
	Laddrs []netip.Addr `json:"laddrs,omitempty"`
}

// Timeouts are the three timeouts ipvsadm --set changes (§2.6). A zero value
// in a --set command means "leave unchanged".
type Timeouts struct {
	TCP    time.Duration `json:"tcp"`     // ESTABLISHED, default 900 s
	TCPFin time.Duration `json:"tcp_fin"` // FIN_WAIT, default 120 s
	UDP    time.Duration `json:"udp"`     // default 300 s
}

// DefaultTimeouts are the kernel's defaults.
func DefaultTimeouts() Timeouts {
	return Timeouts{TCP: 900 * time.Second, TCPFin: 120 * time.Second, UDP: 300 * time.Second}
}

// maskBits returns the prefix length of a contiguous mask.
func maskBits(m netip.Addr) (int, bool) {
	b := m.AsSlice()
	n := 0
	for i, x := range b {
		if x == 0xff {
			n += 8
			continue
		}
		ones := 0
		for x&0x80 != 0 {
			ones++
			x <<= 1
		}
		if x != 0 {
			return 0, false
		}
		n += ones
		for _, y := range b[i+1:] {
			if y != 0 {
				return 0, false
			}
		}
		return n, true
	}
	return n, true
}

// maskFromBits builds the mask address for a prefix length.
func maskFromBits(bits int, v6 bool) netip.Addr {
	size := 4
	if v6 {
		size = 16
	}
	b := make([]byte, size)
	for i := range b {
		switch {
		case bits >= 8:
			b[i] = 0xff
			bits -= 8
		case bits > 0:
			b[i] = byte(0xff << (8 - bits))
			bits = 0
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func enumString(names []string, v int, typ string) string {
	if v >= 0 && v < len(names) && names[v] != "" {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, v)
}

// enumMarshal writes the zero value of enums whose zero is invalid as "",
// so a command that leaves, say, its Service unset still encodes.
func enumMarshal(names []string, v int, what string) ([]byte, error) {
	if v == 0 && names[0] == "" {
		return nil, nil
	}
	if v >= 0 && v < len(names) && names[v] != "" {
		return []byte(names[v]), nil
	}
	return nil, fmt.Errorf("invalid %s %d", what, v)
}

func enumUnmarshal(names []string, b []byte, what string) (int, error) {
	if len(b) == 0 && names[0] == "" {
		return 0, nil
	}
	for i, n := range names {
		if n != "" && n == string(b) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("invalid %s %q", what, b)
}
