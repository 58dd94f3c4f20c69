package config

import (
	"bytes"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Names resolves host and service names from hosts(5) and services(5) files
// only. lvsadm never asks DNS: a lab must not leak lookups, and a listing
// must not hang on a resolver.
//
// The zero Names knows no names. A Names is safe for concurrent use.
type Names struct {
	load  func() (hosts, services []byte)
	once  sync.Once
	hosts []hostEntry
	servs []servEntry
}

type hostEntry struct {
	addr  netip.Addr
	names []string // canonical name first
}

type servEntry struct {
	name    string
	aliases []string
	port    uint16
	proto   string
}

// SystemNames returns a Names that reads /etc/hosts and /etc/services the
// first time a name is needed. A missing file means no names, as in libc.
func SystemNames() *Names {
	return NewNames(func() ([]byte, []byte) {
		h, _ := os.ReadFile("/etc/hosts")
		s, _ := os.ReadFile("/etc/services")
		return h, s
	})
}

// NamesFrom returns a Names holding the given hosts(5) and services(5) text.
func NamesFrom(hosts, services string) *Names {
	return NewNames(func() ([]byte, []byte) { return []byte(hosts), []byte(services) })
}

// NewNames returns a Names that calls load once, when a name is first needed.
func NewNames(load func() (hosts, services []byte)) *Names {
	return &Names{load: load}
}

func (n *Names) init() {
	if n == nil || n.load == nil {
		return
	}
	n.once.Do(func() {
		h, s := n.load()
		n.hosts = parseHosts(h)
		n.servs = parseServices(s)
	})
}

// LookupHost returns the first IPv4 address hosts(5) gives for name, as
// gethostbyname does for ipvsadm.
func (n *Names) LookupHost(name string) (netip.Addr, bool) { return n.lookupHost(name, false) }

// LookupHost6 is LookupHost for IPv6 addresses. ipvsadm resolves no IPv6
// names; lvsadm does inside brackets ("[name]:port"), so that what -S prints
// without -n loads back.
func (n *Names) LookupHost6(name string) (netip.Addr, bool) { return n.lookupHost(name, true) }

func (n *Names) lookupHost(name string, v6 bool) (netip.Addr, bool) {
	if n == nil {
		return netip.Addr{}, false
	}
	n.init()
	for _, h := range n.hosts {
		if h.addr.Is6() != v6 {
			continue
		}
		for _, hn := range h.names {
			if strings.EqualFold(hn, name) {
				return h.addr, true
			}
		}
	}
	return netip.Addr{}, false
}

// HostName returns the canonical name of the first hosts(5) line holding
// addr, as gethostbyaddr does with "files".
func (n *Names) HostName(addr netip.Addr) (string, bool) {
	if n == nil {
		return "", false
	}
	n.init()
	addr = addr.WithZone("")
	for _, h := range n.hosts {
		if h.addr == addr {
			return h.names[0], true
		}
	}
	return "", false
}

// LookupPort returns the port services(5) gives to name for the protocol.
// Fwmark services resolve as TCP: ipvsadm gives them protocol TCP.
func (n *Names) LookupPort(name string, p Protocol) (uint16, bool) {
	if n == nil {
		return 0, false
	}
	n.init()
	proto := servProto(p)
	for _, s := range n.servs {
		if s.proto != proto {
			continue
		}
		if s.name == name {
			return s.port, true
		}
		for _, a := range s.aliases {
			if a == name {
				return s.port, true
			}
		}
	}
	return 0, false
}

// PortName returns the official services(5) name of port for the protocol.
func (n *Names) PortName(port uint16, p Protocol) (string, bool) {
	if n == nil {
		return "", false
	}
	n.init()
	proto := servProto(p)
	if proto == "" {
		return "", false
	}
	for _, s := range n.servs {
		if s.proto == proto && s.port == port {
			return s.name, true
		}
	}
	return "", false
}

func servProto(p Protocol) string {
	switch p {
	case ProtoTCP, ProtoFwmark:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoSCTP:
		return "sctp"
	}
	return ""
}

func stripComment(line []byte) []byte {
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		return line[:i]
	}
	return line
}

func parseHosts(b []byte) []hostEntry {
	var out []hostEntry
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(stripComment(line)))
		if len(f) < 2 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		out = append(out, hostEntry{addr: a.WithZone(""), names: f[1:]})
	}
	return out
}

func parseServices(b []byte) []servEntry {
	var out []servEntry
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(stripComment(line)))
		if len(f) < 2 {
			continue
		}
		num, proto, ok := strings.Cut(f[1], "/")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(num, 10, 16)
		if err != nil {
			continue
		}
		out = append(out, servEntry{name: f[0], aliases: f[2:], port: uint16(port), proto: proto})
	}
	return out
}

// FormatAddrPort is ipvsadm's addrport_to_anyname: "addr:port", IPv6 in
// brackets; with names, the host and port are replaced by their names where
// hosts(5) and services(5) have them. A nil names means numeric (-n).
func FormatAddrPort(addr netip.Addr, port uint16, p Protocol, names *Names) string {
	host := addr.WithZone("").String()
	ps := strconv.Itoa(int(port))
	if names != nil {
		if h, ok := names.HostName(addr); ok {
			host = h
		}
		if s, ok := names.PortName(port, p); ok {
			ps = s
		}
	}
	if addr.Is4() {
		return host + ":" + ps
	}
	return "[" + host + "]:" + ps
}

// parseInetAton accepts what inet_aton(3) accepts, which is what ipvsadm
// uses for IPv4 addresses and masks: one to four parts, each decimal, octal
// (leading 0) or hex (0x), the last part filling the remaining bytes
// ("10.1" is 10.0.0.1).
func parseInetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, ok := parseCNumber(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	last := vals[len(vals)-1]
	var out uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		out |= v << (24 - 8*i)
	}
	if last >= 1<<(8*(4-len(vals)+1)) {
		return netip.Addr{}, false
	}
	out |= last
	return netip.AddrFrom4([4]byte{byte(out >> 24), byte(out >> 16), byte(out >> 8), byte(out)}), true
}

// parseCNumber parses an unsigned C integer constant (decimal, 0 octal, 0x
// hex), as inet_aton's parts.
func parseCNumber(s string) (uint64, bool) {
	base := 10
	switch {
	case len(s) > 1 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
		if s == "" {
			// "0x" alone is 0 to inet_aton.
			return 0, true
		}
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" {
		return 0, false
	}
	for _, c := range s {
		if c == '+' || c == '-' || c == '_' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, base, 32)
	return v, err == nil
}

// parseCInt is strtol(s, &end, 10) accepted only when it consumed the whole
// string, as ipvsadm's string_to_number: leading blanks and a sign allowed.
func parseCInt(s string) (int64, bool) {
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	if t == "" {
		return 0, false
	}
	neg := false
	switch t[0] {
	case '+':
		t = t[1:]
	case '-':
		neg, t = true, t[1:]
	}
	if t == "" {
		return 0, false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// numberIn is string_to_number(s, min, max).
func numberIn(s string, lo, hi int64) (int64, bool) {
	v, ok := parseCInt(s)
	if !ok || v < lo || v > hi {
		return 0, false
	}
	return v, true
}
