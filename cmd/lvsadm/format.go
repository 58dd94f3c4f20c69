package main

// Output formatting: pure functions from the control-socket status types to
// text, byte for byte what ipvsadm 1.31 prints (reference/ipvs.md §6.3),
// trailing blanks included. A nil *config.Names means -n (numeric).

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"lvslab/config"
	"lvslab/ipvs/ctl"
)

// ipvsVersion is the IPVS version the banner reports; ipvsadm prints the
// kernel's, which has been 1.2.1 for two decades.
const ipvsVersion = "1.2.1"

// formatListAll is "ipvsadm -L": the banner, the column titles and every
// service.
func formatListAll(r ctl.Reply, o config.ListOptions, names *config.Names) string {
	var b strings.Builder
	fmt.Fprintf(&b, "IP Virtual Server version %s (size=%d)\n", ipvsVersion, r.ConnTabSize)
	b.WriteString(formatServices(r.Services, o, names))
	b.WriteString(ftpNote(r))
	b.WriteString(formatVRRP(r, time.Now()))
	return b.String()
}

// ftpNote says, under a listing with NAT or FULLNAT services on the FTP
// helper's ports, that the helper follows them: ipvsadm shows nothing for
// the kernel's ip_vs_ftp, whose effect an operator otherwise has to guess.
// Listings without such a service are exactly ipvsadm's.
func ftpNote(r ctl.Reply) string {
	var on []string
	fnat := false
	for _, s := range r.Services {
		if !slices.Contains(r.FTPPorts, s.Service.Port) || s.Service.Protocol != config.ProtoTCP {
			continue
		}
		followed := false
		for _, d := range s.Dests {
			switch d.Dest.Forward {
			case config.ForwardMasq:
				followed = true
			case config.ForwardFullNAT:
				followed, fnat = true, true
			}
		}
		if followed {
			on = append(on, fmt.Sprintf("%s:%d", s.Service.Addr, s.Service.Port))
		}
	}
	if len(on) == 0 {
		return ""
	}
	how := ""
	if fnat {
		how = "; FULLNAT ones from the control connection's local address, which PORT/EPRT commands are rewritten to"
	}
	return fmt.Sprintf("  (FTP helper, ports %s: PASV/EPSV replies and PORT/EPRT commands of %s are followed and data connections go to the control connection's real server%s)\n",
		joinPorts(r.FTPPorts), strings.Join(on, ", "), how)
}

func joinPorts(ps []uint16) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ",")
}

// formatServices is the column titles and the services, without the banner
// (ipvsadm -L with one service prints no banner).
func formatServices(svcs []ctl.ServiceStatus, o config.ListOptions, names *config.Names) string {
	var b strings.Builder
	b.WriteString(formatTitle(o))
	if !o.NoSort {
		svcs = slices.Clone(svcs)
		slices.SortStableFunc(svcs, func(a, b ctl.ServiceStatus) int { return config.CompareServices(a.Service, b.Service) })
	}
	for _, s := range svcs {
		b.WriteString(formatService(s, o, names))
	}
	return b.String()
}

func formatTitle(o config.ListOptions) string {
	const local, remote = "Prot LocalAddress:Port", "  -> RemoteAddress:Port\n"
	switch {
	case o.Stats:
		return fmt.Sprintf("%-33s %8s %8s %8s %8s %8s\n", local, "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes") + remote
	case o.Rate:
		return fmt.Sprintf("%-33s %8s %8s %8s %8s %8s\n", local, "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS") + remote
	case o.Thresholds:
		return fmt.Sprintf("%-33s %-10s %-10s %-10s %-10s\n", local, "Uthreshold", "Lthreshold", "ActiveConn", "InActConn") + remote
	case o.PersistentConn:
		return fmt.Sprintf("%-33s %-9s %-11s %-10s %-10s\n", local, "Weight", "PersistConn", "ActiveConn", "InActConn") + remote
	case o.TunInfo:
		return "Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
	}
	return "Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
}

// serviceName is ipvsadm's svc_name for listings: "%-4s %s" of protocol and
// address, cut at 33 bytes for IPv4; "FWM  %d" for fwmark services.
func serviceName(s config.Service, names *config.Names) string {
	if s.Protocol == config.ProtoFwmark {
		if s.FwmarkIPv6 {
			return fmt.Sprintf("FWM  %d IPv6", s.Fwmark)
		}
		return fmt.Sprintf("FWM  %d", s.Fwmark)
	}
	n := fmt.Sprintf("%-4s %s", s.Protocol.Name(), config.FormatAddrPort(s.Addr, s.Port, s.Protocol, names))
	if !s.Addr.Is6() && len(n) > 33 {
		n = n[:33]
	}
	return n
}

func destName(d config.Dest, p config.Protocol, names *config.Names) string {
	n := config.FormatAddrPort(d.Addr, d.Port, p, names)
	if !d.Addr.Is6() && len(n) > 28 {
		n = n[:28]
	}
	return n
}

func formatService(st ctl.ServiceStatus, o config.ListOptions, names *config.Names) string {
	var b strings.Builder
	s := st.Service
	name := serviceName(s, names)
	switch {
	case o.Stats:
		fmt.Fprintf(&b, "%-33s", name)
		writeNums(&b, o.Exact, st.Stats.Conns, st.Stats.InPkts, st.Stats.OutPkts, st.Stats.InBytes, st.Stats.OutBytes)
	case o.Rate:
		fmt.Fprintf(&b, "%-33s", name)
		writeNums(&b, o.Exact, st.Rate.CPS, st.Rate.InPPS, st.Rate.OutPPS, st.Rate.InBPS, st.Rate.OutBPS)
	default:
		fmt.Fprintf(&b, "%s %s", name, s.Scheduler)
		if s.Flags != 0 {
			fmt.Fprintf(&b, " (%s)", config.SchedFlagsString(s.Scheduler, s.Flags))
		}
		if s.Persistent {
			fmt.Fprintf(&b, " persistent %d", int64(s.PersistTimeout/time.Second))
			if bits := s.MaskBits(); s.Is6() && bits != 128 {
				fmt.Fprintf(&b, " mask %d", bits)
			} else if !s.Is6() && bits != 32 {
				fmt.Fprintf(&b, " mask %s", s.Netmask)
			}
			if s.PE != "" {
				fmt.Fprintf(&b, " pe %s", s.PE)
			}
		}
		if s.OnePacket {
			b.WriteString(" ops")
		}
		if s.SynProxy {
			b.WriteString(" synproxy")
		}
	}
	b.WriteByte('\n')

	dests := st.Dests
	if !o.NoSort {
		dests = slices.Clone(dests)
		slices.SortStableFunc(dests, func(a, b ctl.DestStatus) int { return config.CompareDests(a.Dest, b.Dest) })
	}
	for _, d := range dests {
		dn := destName(d.Dest, s.Protocol, names)
		switch {
		case o.Stats:
			fmt.Fprintf(&b, "  -> %-28s", dn)
			writeNums(&b, o.Exact, d.Stats.Conns, d.Stats.InPkts, d.Stats.OutPkts, d.Stats.InBytes, d.Stats.OutBytes)
			b.WriteByte('\n')
		case o.Rate:
			// ipvsadm prints the dest's cps and pps unabridged.
			fmt.Fprintf(&b, "  -> %-28s %8d %8d %8d", dn, d.Rate.CPS, d.Rate.InPPS, d.Rate.OutPPS)
			writeNums(&b, o.Exact, d.Rate.InBPS, d.Rate.OutBPS)
			b.WriteByte('\n')
		case o.Thresholds:
			fmt.Fprintf(&b, "  -> %-28s %-10d %-10d %-10d %-10d\n", dn,
				d.Dest.UThreshold, d.Dest.LThreshold, d.ActiveConns, d.InactConns)
		case o.PersistentConn:
			fmt.Fprintf(&b, "  -> %-28s %-9d %-11d %-10d %-10d\n", dn,
				d.Dest.Weight, d.PersistConns, d.ActiveConns, d.InactConns)
		case o.TunInfo:
			fmt.Fprintf(&b, "  -> %-28s %-7s %-13s %-6d %-10d %-10d\n", dn,
				d.Dest.Forward.Name(), tunInfo(d.Dest), d.Dest.Weight, d.ActiveConns, d.InactConns)
		default:
			fmt.Fprintf(&b, "  -> %-28s %-7s %-6d %-10d %-10d\n", dn,
				d.Dest.Forward.Name(), d.Dest.Weight, d.ActiveConns, d.InactConns)
		}
	}
	return b.String()
}

// tunInfo is the TunnelInfo column: ipip, gue:PORT:{-c|+c|r+c}, gre:{-c|+c},
// n/a for other methods.
func tunInfo(d config.Dest) string {
	if d.Forward != config.ForwardTunnel {
		return "n/a"
	}
	switch d.TunType {
	case config.TunGUE:
		return fmt.Sprintf("gue:%d:%s", d.TunPort, d.TunCsum.Short())
	case config.TunGRE:
		return "gre:" + d.TunCsum.Short()
	}
	return "ipip"
}

func writeNums(b *strings.Builder, exact bool, vs ...uint64) {
	for _, v := range vs {
		b.WriteString(largenum(v, exact))
	}
}

// largenum is ipvsadm's print_largenum: nine columns, abbreviated with
// K/M/G/T (powers of 1000) from 10^8 on; --exact prints the number in full,
// still nine wide or one blank before a longer number.
func largenum(v uint64, exact bool) string {
	if exact {
		s := fmt.Sprint(v)
		if len(s) <= 8 {
			return fmt.Sprintf("%9s", s)
		}
		return " " + s
	}
	switch {
	case v < 100_000_000:
		return fmt.Sprintf("%9d", v)
	case v < 1_000_000_000:
		return fmt.Sprintf("%8dK", v/1_000)
	case v < 100_000_000_000:
		return fmt.Sprintf("%8dM", v/1_000_000)
	case v < 100_000_000_000_000:
		return fmt.Sprintf("%8dG", v/1_000_000_000)
	}
	return fmt.Sprintf("%8dT", v/1_000_000_000_000)
}

// formatConns is "ipvsadm -L -c", in the order given (ipvsadm does not sort
// connections either).
func formatConns(conns []ctl.ConnStatus, o config.ListOptions, names *config.Names) string {
	var b strings.Builder
	b.WriteString("IPVS connection entries\n")
	if o.PersistentConn {
		fmt.Fprintf(&b, "pro expire %-11s %-18s %-18s %-18s %-16s %s\n",
			"state", "source", "virtual", "destination", "pe name", "pe_data")
	} else {
		fmt.Fprintf(&b, "pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination")
	}
	for _, c := range conns {
		p := connProto(c.Proto)
		cn := config.FormatAddrPort(c.Client.Addr(), c.Client.Port(), p, names)
		vn := config.FormatAddrPort(c.Virtual.Addr(), c.Virtual.Port(), p, names)
		dn := config.FormatAddrPort(c.Dest.Addr(), c.Dest.Port(), p, names)
		secs := max(int64(c.Expires/time.Second), 0)
		expire := fmt.Sprintf("%02d:%02d", secs/60, secs%60)
		if o.PersistentConn && c.PEName != "" && c.PEData != "" {
			fmt.Fprintf(&b, "%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s\n",
				c.Proto, expire, c.State, cn, vn, dn, c.PEName, c.PEData)
		} else {
			fmt.Fprintf(&b, "%-3s %-6s %-11s %-18s %-18s %s\n", c.Proto, expire, c.State, cn, vn, dn)
		}
	}
	return b.String()
}

// connProto maps the Proto column to a protocol for port names; templates
// of fwmark services ("IP") get none, so their ports stay numeric.
func connProto(s string) config.Protocol {
	switch s {
	case "TCP":
		return config.ProtoTCP
	case "UDP":
		return config.ProtoUDP
	case "SCTP":
		return config.ProtoSCTP
	}
	return 0
}

// formatDefense is lvsadm -L --defense, in the shape of -L --timeout.
func formatDefense(d *config.Defense) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf("Defense (%s): %d %d %d %d %d %d %d\n", strings.Join(config.DefenseNames[:], " "),
		d.DropEntry, d.DropPacket, d.SecureTCP, d.AmemThresh, d.AmDropRate, d.TCPDrop, d.UDPDrop)
}

// formatTimeouts is "ipvsadm -L --timeout".
func formatTimeouts(t ctl.Timeouts) string {
	return fmt.Sprintf("Timeout (tcp tcpfin udp): %d %d %d\n",
		int64(t.TCP/time.Second), int64(t.TCPFin/time.Second), int64(t.UDP/time.Second))
}

// formatDaemons is "ipvsadm -L --daemon".
func formatDaemons(ds []ctl.DaemonStatus) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s sync daemon (mcast=%s, syncid=%d", d.State, d.McastIfn, d.SyncID)
		if d.MaxLen != 0 {
			fmt.Fprintf(&b, ", maxlen=%d", d.MaxLen)
		}
		if d.Group.IsValid() {
			fmt.Fprintf(&b, ", group=%s", d.Group)
		}
		if d.Port != 0 {
			fmt.Fprintf(&b, ", port=%d", d.Port)
		}
		if d.TTL != 0 {
			fmt.Fprintf(&b, ", ttl=%d", d.TTL)
		}
		b.WriteString(")\n")
	}
	return b.String()
}

// saveServices turns a listing into the configuration ipvsadm -S writes.
func saveServices(svcs []ctl.ServiceStatus) []config.VirtualService {
	out := make([]config.VirtualService, len(svcs))
	for i, s := range svcs {
		out[i].Service = s.Service
		for _, d := range s.Dests {
			out[i].Dests = append(out[i].Dests, d.Dest)
		}
		for _, l := range s.Laddrs {
			out[i].Laddrs = append(out[i].Laddrs, l.Addr)
		}
	}
	return out
}

// formatLaddrs is the FULLNAT fork's ipvsadm -G, byte for byte: a title,
// then every service with its number of local addresses (a trailing blank
// included) and one line per local address with its port conflicts and
// connections. Services come in lvsd's order, as the fork lists the
// kernel's unsorted. CONFLICTS counts the fork's trial loop meeting a port
// in use; lvsd's free-port pools never probe, so it is always 0.
func formatLaddrs(svcs []ctl.ServiceStatus) string {
	if len(svcs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-20s %-8s %-20s %-10s %-10s\n", "VIP:VPORT", "TOTAL", "LADDR", "CONFLICTS", "CONNS")
	for _, st := range svcs {
		s := st.Service
		vname := "0.0.0.0:0" // a fwmark service has no address
		if s.Protocol != config.ProtoFwmark {
			vname = config.FormatAddrPort(s.Addr, s.Port, s.Protocol, nil)
		}
		fmt.Fprintf(&b, "%-20s %-8d \n", vname, len(st.Laddrs))
		for _, l := range st.Laddrs {
			fmt.Fprintf(&b, "%-20s %-8s %-20s %-10d %-10d\n", "", "", l.Addr, 0, l.Conns)
		}
	}
	return b.String()
}
