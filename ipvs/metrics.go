package ipvs

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"lvslab/rewrite"
)

// WriteMetrics writes the engine's counters in the Prometheus text format.
func (e *Engine) WriteMetrics(w io.Writer) {
	events, _ := e.Counters()
	e.mu.Lock()
	defer e.mu.Unlock()
	names := make([]string, 0, len(events))
	for k := range events {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(w, "# TYPE lvsd_%s counter\nlvsd_%s %d\n", k, k, events[k])
	}
	fmt.Fprintln(w, "# HELP lvsd_parse_errors_total Frames Parse refused, by reason.")
	fmt.Fprintln(w, "# TYPE lvsd_parse_errors_total counter")
	for i := 1; i < rewrite.NumReasons; i++ {
		if v := e.parse[i]; v > 0 {
			fmt.Fprintf(w, "lvsd_parse_errors_total{reason=%q} %d\n", reasonLabel(rewrite.Reason(i)), v)
		}
	}
	fmt.Fprintln(w, "# TYPE lvsd_port_packets_total counter")
	for _, ifc := range e.ifaces {
		st := ifc.Port.Stats()
		for _, kv := range []struct {
			k string
			v uint64
		}{{"rx", st.RxPackets}, {"rx_kernel_drops", st.Drops}, {"rx_oversized", st.Oversized}, {"rx_truncated", st.Truncated},
			{"tx", st.TxPackets}, {"tx_drops", st.TxDrops}, {"errors", st.Errors}} {
			fmt.Fprintf(w, "lvsd_port_packets_total{iface=%q,kind=%q} %d\n", ifc.Name, kv.k, kv.v)
		}
	}
	fmt.Fprintln(w, "# TYPE lvsd_service_packets_total counter")
	fmt.Fprintln(w, "# TYPE lvsd_service_connections_total counter")
	for _, s := range e.services {
		sid := s.cfg.ID().String()
		fmt.Fprintf(w, "lvsd_service_connections_total{service=%q} %d\n", sid, s.stats.conns)
		fmt.Fprintf(w, "lvsd_service_packets_total{service=%q,dir=\"in\"} %d\n", sid, s.stats.inPkts)
		fmt.Fprintf(w, "lvsd_service_packets_total{service=%q,dir=\"out\"} %d\n", sid, s.stats.outPkts)
		for _, d := range s.dests {
			rs := d.cfg.ID().Addr.String()
			fmt.Fprintf(w, "lvsd_dest_connections_total{service=%q,dest=%q} %d\n", sid, rs, d.stats.conns)
			fmt.Fprintf(w, "lvsd_dest_active_connections{service=%q,dest=%q} %d\n", sid, rs, d.ActiveConns)
			fmt.Fprintf(w, "lvsd_dest_inactive_connections{service=%q,dest=%q} %d\n", sid, rs, d.InactConns)
		}
	}
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
