package ipvs

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/ipvs/ctl"
	"lvslab/rewrite"
)

// Metrics. The engine's counters are read when Prometheus scrapes, under the
// engine's lock, into a snapshot; the metrics are built from the snapshot
// after the lock is released. Nothing is added to the packet path: the
// counters the packets bump are the ones lvsadm --stats and the drop
// counters already had.
//
// Two sets of families:
//   - node_ipvs_*: the families, labels, help texts and meanings of
//     node_exporter's ipvs collector (collector/ipvs_linux.go), which reads
//     /proc/net/ip_vs_stats and /proc/net/ip_vs. Dashboards and alerts
//     written for kernel IPVS work on lvsd unchanged.
//   - lvsd_*: what kernel IPVS has no metric for (drops by class, parse
//     errors, the connection table, the neighbour cache, the nftables
//     guard, interfaces), and per-service and per-backend traffic counters
//     (lvsadm -L --stats) under the same labels as node_ipvs_backend_*.

// Label names of node_exporter's ipvs collector.
var (
	serviceLabels = []string{"local_address", "local_port", "proto", "local_mark"}
	backendLabels = []string{"local_address", "local_port", "remote_address", "remote_port", "proto", "local_mark"}
)

// reasonHelp explains the event counters; a reason without an entry gets a
// generic text, so a new reason needs no change here to be exported.
var reasonHelp = map[string]string{
	"rx_frames":                      "Frames received on lvsd's interfaces and examined by the engine.",
	"rx_not_ours":                    "Received frames left to the kernel: not for an address, NAT reply or classifier rule lvsd owns.",
	"rx_gso_segments":                "Segments cut from TCP segmentation-offload super-frames.",
	"rx_ip_options":                  "Packets carrying IPv4 options, forwarded like any other (as IPVS does).",
	"tx_arp_replies":                 "ARP replies sent for addresses lvsd owns.",
	"tx_echo_replies":                "ICMP echo replies sent for addresses lvsd owns.",
	"tx_resets":                      "TCP resets sent for ports of a VIP that no service uses.",
	"tx_icmp_unreachable":            "ICMP port unreachable messages sent (a VIP port without a service, or no real server left).",
	"tx_frames":                      "Frames transmitted on lvsd's interfaces.",
	"tx_errors":                      "Frames that could not be built or transmitted.",
	"tx_local_delivered":             "Packets handed to the director's own kernel for LOCALNODE real servers.",
	"defense_drop_entry_dropped":     "Connection table entries the drop_entry defence's once-a-second walk removed (SYN_RECV, SYNACK, idle ones).",
	"defense_drop_entry_reclaimed":   "Embryonic (SYN_RECV, SYNACK) entries the drop_entry defence replaced with a new connection in a full table.",
	"defense_drop_entry_recalled":    "Connections re-created on their real server when a packet completed a handshake the drop_entry defence had evicted.",
	"defense_secure_tcp_activations": "Times the secure_tcp defence switched to tcp_states_dos and its short timeouts.",
	"fullnat_add_toa_ok":             "FULLNAT segments to a real server given the TOA option (the client's address and port).",
	"fullnat_add_toa_fail_len":       "FULLNAT segments sent without TOA: with it they would exceed the path MTU.",
	"fullnat_add_toa_fail_head_full": "FULLNAT segments sent without TOA: their TCP options left no 8 bytes.",
	"fullnat_add_toa_fail_mem":       "FULLNAT segments sent without TOA: no buffer room to grow them.",
	"fullnat_timestamps_removed":     "Client SYNs of FULLNAT connections whose timestamp option was replaced by NOPs.",
	"fullnat_mss_reduced":            "Real servers' SYN/ACKs of FULLNAT connections whose MSS was lowered by 8 for the TOA.",
	"fullnat_conn_expire_rst":        "RSTs sent to a client or real server when an established FULLNAT connection expired.",
	"sync_conns_sent":                "Connection and template entries the master sync daemon put into messages.",
	"sync_messages_sent":             "Sync messages the master sync daemon sent to its multicast group.",
	"sync_send_errors":               "Sync messages the master sync daemon failed to send.",
	"sync_messages_received":         "Sync messages the backup sync daemon received.",
	"sync_messages_other_syncid":     "Sync messages the backup ignored because they carried another syncid.",
	"sync_conns_created":             "Connections and templates the backup sync daemon created from sync messages.",
	"sync_conns_updated":             "Connections and templates the backup sync daemon updated from sync messages.",
	"sync_entries_stale":             "Inactive sync entries about a connection the backup knows on another real server (ignored, as the kernel does).",
}

// dropPrefix marks the reasons that are drops: they share one family,
// labelled by what follows the prefix.
const dropPrefix = "drop_"

// MetricsCollector exports an Engine to Prometheus. Make it with
// Engine.Collector and register it on a prometheus.Registry.
type MetricsCollector struct {
	e *Engine

	// node_exporter's ipvs collector.
	ipvsConns, ipvsInPkts, ipvsOutPkts, ipvsInBytes, ipvsOutBytes *prometheus.Desc
	backendActive, backendInact, backendWeight                    *prometheus.Desc

	svcConns, svcInPkts, svcOutPkts, svcInBytes, svcOutBytes  *prometheus.Desc
	destConns, destInPkts, destOutPkts, destInBytes, destOutB *prometheus.Desc
	destPersist                                               *prometheus.Desc
	services                                                  *prometheus.Desc

	reasons [numReasons]*prometheus.Desc
	drops   *prometheus.Desc
	parse   *prometheus.Desc

	ctEntries, ctLimit, ctCreated, ctExpired, ctRefused *prometheus.Desc
	neighEntries, neighQueued                           *prometheus.Desc
	guardEnabled, guardOwned, guardNAT, guardMarks      *prometheus.Desc
	guardUpdates                                        *prometheus.Desc
	ifRxPkts, ifRxBytes, ifTxPkts, ifTxBytes            *prometheus.Desc
	ifDrops, ifErrors                                   *prometheus.Desc
}

// Collector returns the engine's Prometheus collector.
func (e *Engine) Collector() *MetricsCollector {
	d := prometheus.NewDesc
	c := &MetricsCollector{
		e: e,
		// Names, help texts and labels as node_exporter has them.
		ipvsConns:     d("node_ipvs_connections_total", "The total number of connections made.", nil, nil),
		ipvsInPkts:    d("node_ipvs_incoming_packets_total", "The total number of incoming packets.", nil, nil),
		ipvsOutPkts:   d("node_ipvs_outgoing_packets_total", "The total number of outgoing packets.", nil, nil),
		ipvsInBytes:   d("node_ipvs_incoming_bytes_total", "The total amount of incoming data.", nil, nil),
		ipvsOutBytes:  d("node_ipvs_outgoing_bytes_total", "The total amount of outgoing data.", nil, nil),
		backendActive: d("node_ipvs_backend_connections_active", "The current active connections by local and remote address.", backendLabels, nil),
		backendInact:  d("node_ipvs_backend_connections_inactive", "The current inactive connections by local and remote address.", backendLabels, nil),
		backendWeight: d("node_ipvs_backend_weight", "The current backend weight by local and remote address.", backendLabels, nil),

		svcConns:    d("lvsd_service_connections_total", "Connections scheduled by the virtual service (lvsadm -L --stats Conns).", serviceLabels, nil),
		svcInPkts:   d("lvsd_service_incoming_packets_total", "Packets from clients to the virtual service (InPkts).", serviceLabels, nil),
		svcOutPkts:  d("lvsd_service_outgoing_packets_total", "Packets from real servers back to clients (OutPkts; 0 for DR and TUN, which the replies bypass).", serviceLabels, nil),
		svcInBytes:  d("lvsd_service_incoming_bytes_total", "Bytes from clients to the virtual service (InBytes).", serviceLabels, nil),
		svcOutBytes: d("lvsd_service_outgoing_bytes_total", "Bytes from real servers back to clients (OutBytes).", serviceLabels, nil),
		destConns:   d("lvsd_backend_connections_total", "Connections scheduled to the real server.", backendLabels, nil),
		destInPkts:  d("lvsd_backend_incoming_packets_total", "Packets forwarded to the real server.", backendLabels, nil),
		destOutPkts: d("lvsd_backend_outgoing_packets_total", "Packets from the real server forwarded to clients.", backendLabels, nil),
		destInBytes: d("lvsd_backend_incoming_bytes_total", "Bytes forwarded to the real server.", backendLabels, nil),
		destOutB:    d("lvsd_backend_outgoing_bytes_total", "Bytes from the real server forwarded to clients.", backendLabels, nil),
		destPersist: d("lvsd_backend_connections_persistent", "The current persistence templates bound to the real server (lvsadm --persistent-conn).", backendLabels, nil),
		services:    d("lvsd_services", "Virtual services configured.", nil, nil),

		drops: d("lvsd_drops_total", "Packets lvsd dropped, by class.", []string{"reason"}, nil),
		parse: d("lvsd_parse_errors_total", "Frames the header parser refused, by reason (also counted as drops of class malformed).", []string{"reason"}, nil),

		ctEntries: d("lvsd_conn_table_entries", "Entries in the connection table, by kind (connection or persistence template).", []string{"kind"}, nil),
		ctLimit:   d("lvsd_conn_table_limit", "The most entries (connections plus templates) the connection table holds (--max-conns).", nil, nil),
		ctCreated: d("lvsd_conn_table_created_total", "Connection table entries created (connections and templates).", nil, nil),
		ctExpired: d("lvsd_conn_table_expired_total", "Connection table entries removed (connections and templates).", nil, nil),
		ctRefused: d("lvsd_conn_table_refused_total", "New entries refused because the connection table was full.", nil, nil),

		neighEntries: d("lvsd_neighbour_entries", "Entries in lvsd's ARP cache, by state (reachable, stale: being revalidated, incomplete: being resolved).", []string{"state"}, nil),
		neighQueued:  d("lvsd_neighbour_queued_frames", "Frames held until their next hop answers ARP.", nil, nil),

		guardEnabled: d("lvsd_guard_enabled", "1 if lvsd keeps the kernel out of the flows it owns with its nftables table.", nil, nil),
		guardOwned:   d("lvsd_guard_owned_addresses", "Addresses the nftables guard hides from the kernel (VIPs).", nil, nil),
		guardNAT:     d("lvsd_guard_nat_endpoints", "NAT real-server endpoints whose replies the guard hides from the kernel.", nil, nil),
		guardMarks:   d("lvsd_guard_mark_rules", "Classifier (--mark) rules whose matches the guard hides from the kernel.", nil, nil),
		guardUpdates: d("lvsd_guard_updates_total", "nftables transactions installing the guard, by result (ok, error).", []string{"result"}, nil),

		ifRxPkts:  d("lvsd_interface_rx_packets_total", "Frames received from the interface's ring.", []string{"iface"}, nil),
		ifRxBytes: d("lvsd_interface_rx_bytes_total", "Bytes received from the interface's ring.", []string{"iface"}, nil),
		ifTxPkts:  d("lvsd_interface_tx_packets_total", "Frames the kernel accepted for transmission.", []string{"iface"}, nil),
		ifTxBytes: d("lvsd_interface_tx_bytes_total", "Bytes the kernel accepted for transmission.", []string{"iface"}, nil),
		ifDrops:   d("lvsd_interface_drops_total", "Frames lost at the interface, by reason (ring_full: the kernel dropped them, oversized, truncated, tx_no_room).", []string{"iface", "reason"}, nil),
		ifErrors:  d("lvsd_interface_errors_total", "Malformed ring entries and failed system calls.", []string{"iface"}, nil),
	}
	for i, name := range reasonNames {
		if strings.HasPrefix(name, dropPrefix) {
			continue
		}
		help := reasonHelp[name]
		if help == "" {
			help = "Packets counted as " + name + " by the engine."
		}
		c.reasons[i] = d("lvsd_"+name+"_total", help, nil, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *MetricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.ipvsConns, c.ipvsInPkts, c.ipvsOutPkts, c.ipvsInBytes, c.ipvsOutBytes,
		c.backendActive, c.backendInact, c.backendWeight,
		c.svcConns, c.svcInPkts, c.svcOutPkts, c.svcInBytes, c.svcOutBytes,
		c.destConns, c.destInPkts, c.destOutPkts, c.destInBytes, c.destOutB, c.destPersist, c.services,
		c.drops, c.parse,
		c.ctEntries, c.ctLimit, c.ctCreated, c.ctExpired, c.ctRefused,
		c.neighEntries, c.neighQueued,
		c.guardEnabled, c.guardOwned, c.guardNAT, c.guardMarks, c.guardUpdates,
		c.ifRxPkts, c.ifRxBytes, c.ifTxPkts, c.ifTxBytes, c.ifDrops, c.ifErrors,
	} {
		ch <- d
	}
	for _, d := range c.reasons {
		if d != nil {
			ch <- d
		}
	}
}

// metricsSnapshot is everything a scrape reports, copied under the lock.
type metricsSnapshot struct {
	services []ctl.ServiceStatus // what lvsadm -L shows
	total    counters            // /proc/net/ip_vs_stats
	ctr      [numReasons]uint64
	parse    [rewrite.NumReasons]uint64
	conns    conntrack.Stats
	maxConns int
	neigh    map[string]int // by state
	queued   int
	guard    *GuardRule // nil without a guard
	guardOK  uint64
	guardErr uint64
	ifaces   []*Iface
}

func (e *Engine) metricsSnapshot() metricsSnapshot {
	// The guard is read first, outside the data-path lock: its own lock
	// may be held for a netlink transaction.
	e.ctlMu.Lock()
	g := e.guard
	e.ctlMu.Unlock()
	var guard *GuardRule
	var guardOK, guardErr uint64
	if g != nil {
		r := g.installedRule()
		guard = &r
		guardOK, guardErr = g.updates()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if guard != nil {
		guard.Marks = e.marks
	}
	s := metricsSnapshot{
		guard: guard, guardOK: guardOK, guardErr: guardErr,
		total:    e.gone,
		ctr:      e.ctr,
		parse:    e.parse,
		conns:    e.conns.Stats(),
		maxConns: e.cfg.MaxConns,
		neigh:    map[string]int{"reachable": 0, "stale": 0, "incomplete": 0},
		ifaces:   append([]*Iface(nil), e.ifaces...),
	}
	if s.maxConns == 0 {
		s.maxConns = conntrack.DefaultMaxConns
	}
	for _, svc := range e.services {
		s.services = append(s.services, svc.status())
		s.total.add(svc.stats)
	}
	now := e.now()
	for _, n := range e.neigh.m {
		s.queued += len(n.queue)
		switch age := now - n.learned; {
		case !n.valid || age > int64(neighLifetime):
			s.neigh["incomplete"]++
		case age > int64(neighReachable):
			s.neigh["stale"]++
		default:
			s.neigh["reachable"]++
		}
	}
	return s
}

// retire keeps a service's counters in the totals when the service goes
// away or is zeroed on its own: the kernel's /proc/net/ip_vs_stats counts
// since start, and only zeroing everything (ipvsadm -Z) resets it.
func (e *Engine) retire(s *Service) { e.gone.add(s.stats) }

func (c *counters) add(o counters) {
	c.conns += o.conns
	c.inPkts += o.inPkts
	c.outPkts += o.outPkts
	c.inBytes += o.inBytes
	c.outBytes += o.outBytes
}

// serviceLabelValues are node_exporter's labels for a service: a fwmark
// service has no address (local_address "", local_port "0", proto "FWM")
// and its mark as /proc/net/ip_vs prints it (%08X).
func serviceLabelValues(s config.Service) (addr, port, proto, mark string) {
	if s.Protocol == config.ProtoFwmark {
		return "", "0", s.Protocol.Name(), fmt.Sprintf("%08X", s.Fwmark)
	}
	return s.Addr.String(), strconv.Itoa(int(s.Port)), s.Protocol.Name(), ""
}

// series sums metrics that share label values, as node_exporter does for
// its backend gauges, so a scrape never holds a duplicate series.
type series struct {
	order []string
	vals  map[string][]float64
	lbls  map[string][]string
}

func newSeries() *series {
	return &series{vals: map[string][]float64{}, lbls: map[string][]string{}}
}

func (s *series) add(labels []string, v ...float64) {
	k := strings.Join(labels, "\x00")
	cur, ok := s.vals[k]
	if !ok {
		s.order = append(s.order, k)
		s.lbls[k] = labels
		cur = make([]float64, len(v))
		s.vals[k] = cur
	}
	for i := range v {
		cur[i] += v[i]
	}
}

func (s *series) emit(ch chan<- prometheus.Metric, descs []*prometheus.Desc, types []prometheus.ValueType) {
	for _, k := range s.order {
		for i, d := range descs {
			ch <- prometheus.MustNewConstMetric(d, types[i], s.vals[k][i], s.lbls[k]...)
		}
	}
}

// Collect implements prometheus.Collector.
func (c *MetricsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.metricsSnapshot()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	counter(c.ipvsConns, s.total.conns)
	counter(c.ipvsInPkts, s.total.inPkts)
	counter(c.ipvsOutPkts, s.total.outPkts)
	counter(c.ipvsInBytes, s.total.inBytes)
	counter(c.ipvsOutBytes, s.total.outBytes)

	svcs, dests := newSeries(), newSeries()
	for _, st := range s.services {
		addr, port, proto, mark := serviceLabelValues(st.Service)
		svcs.add([]string{addr, port, proto, mark},
			float64(st.Stats.Conns), float64(st.Stats.InPkts), float64(st.Stats.OutPkts), float64(st.Stats.InBytes), float64(st.Stats.OutBytes))
		for _, d := range st.Dests {
			dests.add([]string{addr, port, d.Dest.Addr.String(), strconv.Itoa(int(d.Dest.Port)), proto, mark},
				float64(d.ActiveConns), float64(d.InactConns), float64(d.Dest.Weight), float64(d.PersistConns),
				float64(d.Stats.Conns), float64(d.Stats.InPkts), float64(d.Stats.OutPkts), float64(d.Stats.InBytes), float64(d.Stats.OutBytes))
		}
	}
	cv, gv := prometheus.CounterValue, prometheus.GaugeValue
	svcs.emit(ch, []*prometheus.Desc{c.svcConns, c.svcInPkts, c.svcOutPkts, c.svcInBytes, c.svcOutBytes},
		[]prometheus.ValueType{cv, cv, cv, cv, cv})
	dests.emit(ch, []*prometheus.Desc{c.backendActive, c.backendInact, c.backendWeight, c.destPersist,
		c.destConns, c.destInPkts, c.destOutPkts, c.destInBytes, c.destOutB},
		[]prometheus.ValueType{gv, gv, gv, gv, cv, cv, cv, cv, cv})
	gauge(c.services, float64(len(s.services)))

	// Every reason is a series from the start, zero or not, so rate() and
	// alerts see it before the first drop.
	for i, name := range reasonNames {
		if d := c.reasons[i]; d != nil {
			counter(d, s.ctr[i])
			continue
		}
		counter(c.drops, s.ctr[i], strings.TrimPrefix(name, dropPrefix))
	}
	for i := 1; i < rewrite.NumReasons; i++ {
		counter(c.parse, s.parse[i], reasonLabel(rewrite.Reason(i)))
	}

	gauge(c.ctEntries, float64(s.conns.Conns), "connection")
	gauge(c.ctEntries, float64(s.conns.Templates), "template")
	gauge(c.ctLimit, float64(s.maxConns))
	counter(c.ctCreated, s.conns.Created)
	counter(c.ctExpired, s.conns.Expired)
	counter(c.ctRefused, s.conns.Refused)

	for _, state := range []string{"reachable", "stale", "incomplete"} {
		gauge(c.neighEntries, float64(s.neigh[state]), state)
	}
	gauge(c.neighQueued, float64(s.queued))

	if s.guard != nil {
		gauge(c.guardEnabled, 1)
		gauge(c.guardOwned, float64(countOwned(s.guard.Owned)))
		gauge(c.guardNAT, float64(countNAT(s.guard.NATReal)))
		gauge(c.guardMarks, float64(len(s.guard.Marks)))
	} else {
		gauge(c.guardEnabled, 0)
		gauge(c.guardOwned, 0)
		gauge(c.guardNAT, 0)
		gauge(c.guardMarks, 0)
	}
	counter(c.guardUpdates, s.guardOK, "ok")
	counter(c.guardUpdates, s.guardErr, "error")

	// Port statistics are read outside the engine's lock: an AF_PACKET
	// port asks the kernel (getsockopt) for them.
	for _, ifc := range s.ifaces {
		st := ifc.Port.Stats()
		counter(c.ifRxPkts, st.RxPackets, ifc.Name)
		counter(c.ifRxBytes, st.RxBytes, ifc.Name)
		counter(c.ifTxPkts, st.TxPackets, ifc.Name)
		counter(c.ifTxBytes, st.TxBytes, ifc.Name)
		counter(c.ifDrops, st.Drops, ifc.Name, "ring_full")
		counter(c.ifDrops, st.Oversized, ifc.Name, "oversized")
		counter(c.ifDrops, st.Truncated, ifc.Name, "truncated")
		counter(c.ifDrops, st.TxDrops, ifc.Name, "tx_no_room")
		counter(c.ifErrors, st.Errors, ifc.Name)
	}
}

// countOwned and countNAT count distinct entries, as the nftables sets hold them.
func countOwned(a []netip.Addr) int {
	seen := map[netip.Addr]bool{}
	for _, x := range a {
		seen[x] = true
	}
	return len(seen)
}

func countNAT(a []ProtoAddrPort) int {
	seen := map[ProtoAddrPort]bool{}
	for _, x := range a {
		seen[x] = true
	}
	return len(seen)
}

// reasonLabel turns "rewrite: bad IPv4 header checksum" into
// "bad_ipv4_header_checksum".
func reasonLabel(r rewrite.Reason) string {
	s := strings.TrimPrefix(r.Error(), "rewrite: ")
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			return c
		case c >= 'A' && c <= 'Z':
			return c + 'a' - 'A'
		}
		return '_'
	}, s)
}
