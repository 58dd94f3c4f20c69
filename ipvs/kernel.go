package ipvs

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// KernelGuard keeps the namespace's own kernel stack out of the flows lvsd
// owns. AF_PACKET taps see a frame before tc and netfilter ingress do, so an
// nftables netdev-ingress drop hides the frame from the kernel while lvsd
// still reads it. Without the guard the kernel would answer a SYN to a VIP it
// does not listen on with a RST, or (ip_forward=1) route a NAT reply to the
// client un-translated.
//
// The guard owns one nftables table; every change rewrites it in a single
// atomic transaction, and Remove deletes it.
type KernelGuard struct {
	Table   string   // nftables table name (family netdev)
	Devices []string // interfaces lvsd reads from

	applied, failed atomic.Uint64 // Apply results, for the metrics
}

// GuardRule is what the guard drops for the kernel.
type GuardRule struct {
	// Owned addresses (VIPs, FULLNAT local addresses): every IPv4 packet to
	// them belongs to lvsd.
	Owned []netip.Addr
	// NATReal are the (address, protocol, port) of NAT real servers: their
	// replies are translated by lvsd, never forwarded by the kernel.
	NATReal []ProtoAddrPort
	// Marks are lvsd's classifier rules: what they match is balanced by a
	// fwmark service, so the kernel must not see it either.
	Marks []MarkRule
}

// ProtoAddrPort names one L4 endpoint.
type ProtoAddrPort struct {
	Proto uint8 // 6 TCP, 17 UDP
	netip.AddrPort
}

// Script renders the nftables transaction that installs exactly r.
func (g *KernelGuard) Script(r GuardRule) string {
	var b strings.Builder
	// "add then delete" makes the delete succeed whether or not the table
	// exists; nft applies the whole file as one transaction.
	fmt.Fprintf(&b, "add table netdev %s\ndelete table netdev %s\n", g.Table, g.Table)
	fmt.Fprintf(&b, "table netdev %s {\n", g.Table)
	b.WriteString("\tset owned { type ipv4_addr; }\n")
	b.WriteString("\tset nat_real { type ipv4_addr . inet_proto . inet_service; }\n")
	b.WriteString("\tset nat_rs { type ipv4_addr; }\n")
	for _, dev := range g.Devices {
		fmt.Fprintf(&b, "\tchain ingress_%s {\n", chainName(dev))
		fmt.Fprintf(&b, "\t\ttype filter hook ingress device %q priority -500; policy accept;\n", dev)
		b.WriteString("\t\tip daddr @owned counter drop\n")
		b.WriteString("\t\tip saddr . meta l4proto . th sport @nat_real counter drop\n")
		// ICMP errors from NAT real servers quote the untranslated flow;
		// lvsd translates them, the kernel would forward them as they are.
		b.WriteString("\t\tip saddr @nat_rs icmp type { destination-unreachable, time-exceeded, parameter-problem } counter drop\n")
		for i := range r.Marks {
			fmt.Fprintf(&b, "\t\t%s counter drop\n", r.Marks[i].nft())
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	owned := slices.Clone(r.Owned)
	slices.SortFunc(owned, netip.Addr.Compare)
	owned = slices.Compact(owned)
	if len(owned) > 0 {
		parts := make([]string, len(owned))
		for i, a := range owned {
			parts[i] = a.String()
		}
		fmt.Fprintf(&b, "add element netdev %s owned { %s }\n", g.Table, strings.Join(parts, ", "))
	}
	if len(r.NATReal) > 0 {
		seen := map[ProtoAddrPort]bool{}
		var parts []string
		for _, e := range r.NATReal {
			if seen[e] {
				continue
			}
			seen[e] = true
			parts = append(parts, fmt.Sprintf("%s . %s . %d", e.Addr(), protoName(e.Proto), e.Port()))
		}
		slices.Sort(parts)
		fmt.Fprintf(&b, "add element netdev %s nat_real { %s }\n", g.Table, strings.Join(parts, ", "))
		addrs := map[string]bool{}
		var rs []string
		for _, e := range r.NATReal {
			if a := e.Addr().String(); !addrs[a] {
				addrs[a] = true
				rs = append(rs, a)
			}
		}
		slices.Sort(rs)
		fmt.Fprintf(&b, "add element netdev %s nat_rs { %s }\n", g.Table, strings.Join(rs, ", "))
	}
	return b.String()
}

// Apply installs r, replacing whatever the guard installed before.
func (g *KernelGuard) Apply(ctx context.Context, r GuardRule) error {
	if err := nft(ctx, g.Script(r)); err != nil {
		g.failed.Add(1)
		return fmt.Errorf("install nftables guard %s on %s: %w", g.Table, strings.Join(g.Devices, ","), err)
	}
	g.applied.Add(1)
	return nil
}

// updates returns how many Apply calls succeeded and failed.
func (g *KernelGuard) updates() (ok, failed uint64) { return g.applied.Load(), g.failed.Load() }

// Remove deletes the guard's table; a missing table is not an error.
func (g *KernelGuard) Remove(ctx context.Context) error {
	script := fmt.Sprintf("add table netdev %s\ndelete table netdev %s\n", g.Table, g.Table)
	if err := nft(ctx, script); err != nil {
		return fmt.Errorf("remove nftables guard %s: %w", g.Table, err)
	}
	return nil
}

func nft(ctx context.Context, script string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
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
