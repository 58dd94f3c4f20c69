package ipvs

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"lvslab/rewrite"
)

// MarkRule is lvsd's stand-in for an iptables mangle MARK rule: there is no
// netfilter mark in userspace, so fwmark services are fed by rules lvsd owns.
// A zero field matches anything. Seed 003's fix for two directors that are
// also each other's real servers needs exactly these matches: destination,
// port, protocol, and "not from the other director's MAC".
type MarkRule struct {
	Mark    uint32
	Proto   uint8        // 6, 17, or 0 for both
	Dst     netip.Prefix // invalid: any
	DstPort uint16
	// SrcMAC, when set, must (or with SrcMACNot must not) be the frame's
	// source MAC.
	SrcMAC    rewrite.MAC
	HasSrcMAC bool
	SrcMACNot bool
}

// ParseMarkRule reads "mark=1,proto=tcp,dst=192.0.2.10,dport=80,src-mac!=02:00:00:00:00:01".
func ParseMarkRule(s string) (MarkRule, error) {
	var r MarkRule
	for _, field := range strings.Split(s, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		key, val, ok := strings.Cut(field, "=")
		if !ok {
			return r, fmt.Errorf("mark rule %q: %q is not key=value", s, field)
		}
		not := strings.HasSuffix(key, "!")
		key = strings.TrimSuffix(key, "!")
		if not && key != "src-mac" {
			return r, fmt.Errorf("mark rule %q: only src-mac can be negated", s)
		}
		switch key {
		case "mark":
			v, err := strconv.ParseUint(val, 0, 32)
			if err != nil || v == 0 {
				return r, fmt.Errorf("mark rule %q: mark %q must be a number from 1 to 2^32-1", s, val)
			}
			r.Mark = uint32(v)
		case "proto":
			switch val {
			case "tcp":
				r.Proto = 6
			case "udp":
				r.Proto = 17
			default:
				return r, fmt.Errorf("mark rule %q: proto %q is not tcp or udp", s, val)
			}
		case "dst":
			if !strings.Contains(val, "/") {
				val += "/32"
			}
			p, err := netip.ParsePrefix(val)
			if err != nil || !p.Addr().Is4() {
				return r, fmt.Errorf("mark rule %q: dst %q is not an IPv4 address or prefix", s, val)
			}
			r.Dst = p.Masked()
		case "dport":
			v, err := strconv.ParseUint(val, 10, 16)
			if err != nil || v == 0 {
				return r, fmt.Errorf("mark rule %q: dport %q is not a port", s, val)
			}
			r.DstPort = uint16(v)
		case "src-mac":
			hw, err := net.ParseMAC(val)
			if err != nil || len(hw) != 6 {
				return r, fmt.Errorf("mark rule %q: src-mac %q is not an Ethernet address", s, val)
			}
			r.SrcMAC, r.HasSrcMAC, r.SrcMACNot = rewrite.MAC(hw), true, not
		default:
			return r, fmt.Errorf("mark rule %q: unknown key %q (mark, proto, dst, dport, src-mac)", s, key)
		}
	}
	if r.Mark == 0 {
		return r, fmt.Errorf("mark rule %q: no mark=", s)
	}
	if !r.Dst.IsValid() {
		return r, fmt.Errorf("mark rule %q: no dst= (lvsd must know which addresses the rule claims)", s)
	}
	return r, nil
}

func (r *MarkRule) match(frame []byte, p *rewrite.Packet) bool {
	if r.Proto != 0 && r.Proto != p.Protocol {
		return false
	}
	if r.Dst.IsValid() && !r.Dst.Contains(p.Dst) {
		return false
	}
	if r.DstPort != 0 && r.DstPort != p.DstPort {
		return false
	}
	if r.HasSrcMAC && (rewrite.MAC(frame[6:12]) == r.SrcMAC) == r.SrcMACNot {
		return false
	}
	return true
}

// classify returns the mark of the first matching rule, 0 for none.
func (e *Engine) classify(frame []byte, p *rewrite.Packet) uint32 {
	for i := range e.marks {
		if e.marks[i].match(frame, p) {
			return e.marks[i].Mark
		}
	}
	return 0
}
