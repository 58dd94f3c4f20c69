package fault

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// chainSpec is one base chain of a netdev table: a hook of one device with
// its rules.
type chainSpec struct {
	Device string
	Hook   string // ingress or egress
	Rules  []string
}

// tableName is the nftables table of a timeline entry (event names are
// lower case letters, digits and '-'; nft identifiers take '_').
func tableName(event string) string {
	return "lvslab_" + strings.ReplaceAll(event, "-", "_")
}

// nftTable is an `nft -f` script creating a netdev table with one base
// chain per chainSpec. Priority -500 runs before anything else hooked on
// the device.
func nftTable(table string, chains []chainSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table netdev %s {\n", table)
	for i, c := range chains {
		fmt.Fprintf(&b, "\tchain c%d_%s {\n", i, c.Hook)
		fmt.Fprintf(&b, "\t\ttype filter hook %s device %s priority -500; policy accept;\n", c.Hook, strconv.Quote(c.Device))
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", r)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// lossRule drops pct percent of the packets, with a resolution of 0.01%.
func lossRule(pct float64) string {
	n := int(math.Round(pct * 100))
	if n >= 10000 {
		return "drop"
	}
	return fmt.Sprintf("numgen random mod 10000 < %d drop", n)
}

// protoMatch is the nft match of a partition's proto: (match on IP
// packets, arp only).
func protoMatch(proto string) (string, bool, error) {
	switch proto {
	case "":
		return "", false, nil
	case "arp":
		return "", true, nil
	case "tcp":
		return "meta l4proto 6", false, nil
	case "udp":
		return "meta l4proto 17", false, nil
	case "icmp":
		return "meta l4proto { 1, 58 }", false, nil
	case "vrrp":
		// VRRP itself, and keepalived's auth_type AH, where the IP
		// protocol is AH (51) carrying the VRRP header.
		return "meta l4proto { 51, 112 }", false, nil
	}
	n, err := strconv.Atoi(proto)
	if err != nil || n < 0 || n > 255 {
		return "", false, fmt.Errorf("unknown protocol %q", proto)
	}
	return fmt.Sprintf("meta l4proto %d", n), false, nil
}

// protoOnly is the match a blackhole or loss puts before its verdict:
// nothing (every frame), one IP protocol, or ARP.
func protoOnly(proto string) (string, error) {
	match, arpOnly, err := protoMatch(proto)
	if arpOnly {
		return "ether type arp", err
	}
	return match, err
}

// partitionRules drop, at the ports of one side, what comes from the
// other side: frames from its hardware addresses (same segment) and IP
// packets from its addresses (through routers).
func partitionRules(other sideIdentity, proto string) ([]string, error) {
	match, arpOnly, err := protoMatch(proto)
	if err != nil {
		return nil, err
	}
	var v4, v6 []string
	for _, a := range other.Addrs {
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	var rules []string
	join := func(parts ...string) string {
		var out []string
		for _, p := range parts {
			if p != "" {
				out = append(out, p)
			}
		}
		return strings.Join(out, " ")
	}
	if len(other.MACs) > 0 {
		m := "ether saddr " + set(other.MACs)
		if arpOnly {
			rules = append(rules, join("ether type arp", m, "drop"))
		} else {
			rules = append(rules, join(m, match, "drop"))
		}
	}
	if arpOnly {
		if len(v4) > 0 {
			rules = append(rules, join("arp saddr ip", set(v4), "drop"))
		}
		return rules, nil
	}
	if len(v4) > 0 {
		rules = append(rules, join("ip saddr", set(v4), match, "drop"))
	}
	if len(v6) > 0 {
		rules = append(rules, join("ip6 saddr", set(v6), match, "drop"))
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("the other side has neither hardware nor IP addresses to match")
	}
	return rules, nil
}

func set(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return "{ " + strings.Join(items, ", ") + " }"
}
