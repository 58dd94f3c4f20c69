package spec

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// MAC is a 48-bit hardware address in canonical form (lower case, colons).
type MAC string

// HardwareAddr is the address as net.HardwareAddr (nil for the zero MAC).
func (m MAC) HardwareAddr() net.HardwareAddr {
	if m == "" {
		return nil
	}
	hw, err := net.ParseMAC(string(m))
	if err != nil {
		return nil
	}
	return hw
}

// MarshalText prints the canonical form.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m), nil }

// UnmarshalText accepts 02:00:5e:10:00:01 and the other forms net.ParseMAC
// knows, as long as they are 6 bytes.
func (m *MAC) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("invalid MAC address %q (want e.g. 02:00:00:00:00:01)", s)
	}
	*m = MAC(hw.String())
	return nil
}

func (MAC) jsonSchema() map[string]any {
	return map[string]any{
		"type":        "string",
		"pattern":     `^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$`,
		"description": "hardware address, e.g. 02:00:00:00:00:01",
	}
}

// RouteDst is a route destination: a prefix, or "default" (0.0.0.0/0).
type RouteDst struct {
	Prefix netip.Prefix
}

// IsDefault reports whether this is the IPv4 or IPv6 default route.
func (r RouteDst) IsDefault() bool { return r.Prefix.IsValid() && r.Prefix.Bits() == 0 }

func (r RouteDst) String() string {
	if r.IsDefault() && r.Prefix.Addr().Is4() {
		return "default"
	}
	return r.Prefix.String()
}

// MarshalText prints "default" or the prefix.
func (r RouteDst) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText accepts "default", a prefix, or a bare address (a host route).
func (r *RouteDst) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "default" {
		r.Prefix = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		return nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Masked() != p {
			return fmt.Errorf("route destination %q has host bits set (did you mean %s?)", s, p.Masked())
		}
		r.Prefix = p
		return nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		r.Prefix = netip.PrefixFrom(a, a.BitLen())
		return nil
	}
	return fmt.Errorf("invalid route destination %q (want default, a prefix or an address)", s)
}

func (RouteDst) jsonSchema() map[string]any {
	return map[string]any{"type": "string", "description": "default, a prefix (10.0.0.0/24) or an address (a host route)"}
}

// FileMode is a permission mode written in octal ("0755").
type FileMode uint32

// MarshalText prints four octal digits.
func (m FileMode) MarshalText() ([]byte, error) { return fmt.Appendf(nil, "%04o", uint32(m)), nil }

// UnmarshalText parses octal digits.
func (m *FileMode) UnmarshalText(b []byte) error {
	s := strings.TrimPrefix(strings.TrimSpace(string(b)), "0o")
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("invalid file mode %q (want octal, e.g. \"0755\")", string(b))
	}
	*m = FileMode(v)
	return nil
}

func (FileMode) jsonSchema() map[string]any {
	return map[string]any{"type": "string", "pattern": "^(0o)?[0-7]{1,4}$", "description": "octal permissions, e.g. \"0755\""}
}

// Regexp is a regular expression (Go RE2 syntax).
type Regexp struct {
	*regexp.Regexp
}

// MarshalText prints the expression.
func (r Regexp) MarshalText() ([]byte, error) {
	if r.Regexp == nil {
		return nil, nil
	}
	return []byte(r.String()), nil
}

// UnmarshalText compiles the expression.
func (r *Regexp) UnmarshalText(b []byte) error {
	re, err := regexp.Compile(string(b))
	if err != nil {
		return fmt.Errorf("invalid regular expression: %w", err)
	}
	r.Regexp = re
	return nil
}

// IsZero lets the zero Regexp be omitted.
func (r Regexp) IsZero() bool { return r.Regexp == nil }

func (Regexp) jsonSchema() map[string]any {
	return map[string]any{"type": "string", "description": "regular expression (RE2 syntax)"}
}

// Signal is a signal name without the SIG prefix: TERM, KILL, STOP, CONT,
// HUP, INT, USR1, USR2, QUIT.
type Signal string

var signalNames = []string{"TERM", "KILL", "STOP", "CONT", "HUP", "INT", "USR1", "USR2", "QUIT"}

// MarshalText prints the name.
func (s Signal) MarshalText() ([]byte, error) { return []byte(s), nil }

// UnmarshalText accepts TERM, SIGTERM, term.
func (s *Signal) UnmarshalText(b []byte) error {
	v := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(string(b))), "SIG")
	for _, n := range signalNames {
		if v == n {
			*s = Signal(n)
			return nil
		}
	}
	return fmt.Errorf("unknown signal %q%s", string(b), suggest(v, signalNames))
}

func (Signal) jsonSchema() map[string]any {
	alts := make([]string, 0, 2*len(signalNames))
	for _, n := range signalNames {
		alts = append(alts, n, "SIG"+n)
	}
	return map[string]any{"type": "string", "enum": alts, "description": "signal name"}
}

// Listen is a listening address: ":80", "0.0.0.0:80", "[::]:80",
// "10.0.0.2:8080". A missing host means every address.
type Listen struct {
	Addr netip.Addr // invalid: any
	Port uint16
}

func (l Listen) String() string {
	if !l.Addr.IsValid() {
		return ":" + strconv.Itoa(int(l.Port))
	}
	return netip.AddrPortFrom(l.Addr, l.Port).String()
}

// MarshalText prints the address.
func (l Listen) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText parses host:port with an optional host.
func (l *Listen) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("invalid listen address %q (want :port or addr:port)", s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return fmt.Errorf("invalid port in listen address %q", s)
	}
	var a netip.Addr
	if host != "" {
		if a, err = netip.ParseAddr(host); err != nil {
			return fmt.Errorf("invalid address in listen address %q", s)
		}
	}
	*l = Listen{Addr: a, Port: uint16(p)}
	return nil
}

func (Listen) jsonSchema() map[string]any {
	return map[string]any{"type": "string", "description": "listening address: :80, 0.0.0.0:8080, [::]:80"}
}

// Features a scenario can require.
var knownFeatures = []string{
	"veth", "bridge", "tun", "macvlan", "nftables", "tbf", "netem", "ipip", "ip_vs",
	"socat", "tshark", "ethtool", "nft", "tc", "hping3", "curl", "ping", "vsftpd", "dnsmasq",
	"lvsd", "lvsadm", "lvsrs", "lvskeepalived", "keepalived",
}

// KnownFeatures lists what requires: may name.
func KnownFeatures() []string { return append([]string(nil), knownFeatures...) }

// Requirement is a kernel feature or tool a scenario needs: "ipip", or
// "netem?" for an optional one (the scenario adapts when it is missing).
type Requirement struct {
	Feature  string
	Optional bool
}

func (r Requirement) String() string {
	if r.Optional {
		return r.Feature + "?"
	}
	return r.Feature
}

// MarshalText prints "feature" or "feature?".
func (r Requirement) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses a known feature name with an optional "?".
func (r *Requirement) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	name, opt := strings.CutSuffix(s, "?")
	for _, f := range knownFeatures {
		if f == name {
			*r = Requirement{Feature: name, Optional: opt}
			return nil
		}
	}
	return fmt.Errorf("unknown feature %q%s", name, suggest(name, knownFeatures))
}

func (Requirement) jsonSchema() map[string]any {
	return map[string]any{
		"type":        "string",
		"pattern":     "^(" + strings.Join(knownFeatures, "|") + `)\??$`,
		"description": "feature name, with ? when optional",
	}
}
