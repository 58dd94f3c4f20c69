package ipvs

import "lvslab/ipvs/ctl"

// counters are a service's or real server's cumulative statistics.
type counters struct {
	conns, inPkts, outPkts, inBytes, outBytes uint64
}

func (c *counters) in(n int) {
	c.inPkts++
	c.inBytes += uint64(n)
}

func (c *counters) out(n int) {
	c.outPkts++
	c.outBytes += uint64(n)
}

func (c counters) status() ctl.Stats {
	return ctl.Stats{Conns: c.conns, InPkts: c.inPkts, OutPkts: c.outPkts, InBytes: c.inBytes, OutBytes: c.outBytes}
}

// estimator is the kernel's rate estimator (ip_vs_est.c): every 2 seconds
// avg += (rate - avg) / 4, connection and packet rates kept scaled by 2^10,
// byte rates by 2^5, so ipvsadm --rate reads the same smoothed figures.
type estimator struct {
	last                             counters
	cps, inpps, outpps, inbps, outbs int64
}

// tick folds in the 2-second interval ending now.
func (e *estimator) tick(c counters) {
	// Per-second rates over the 2 s interval, scaled as the kernel scales.
	rate := func(now, last uint64, shift uint) int64 {
		return int64(now-last) << shift / 2
	}
	step := func(avg *int64, r int64) { *avg += (r - *avg) >> 2 }
	step(&e.cps, rate(c.conns, e.last.conns, 10))
	step(&e.inpps, rate(c.inPkts, e.last.inPkts, 10))
	step(&e.outpps, rate(c.outPkts, e.last.outPkts, 10))
	step(&e.inbps, rate(c.inBytes, e.last.inBytes, 5))
	step(&e.outbs, rate(c.outBytes, e.last.outBytes, 5))
	e.last = c
}

func (e *estimator) status() ctl.Rate {
	pos := func(v int64) uint64 {
		if v < 0 {
			return 0
		}
		return uint64(v)
	}
	return ctl.Rate{
		CPS:    pos(e.cps+0x1FF) >> 10,
		InPPS:  pos(e.inpps+0x1FF) >> 10,
		OutPPS: pos(e.outpps+0x1FF) >> 10,
		InBPS:  pos(e.inbps+0xF) >> 5,
		OutBPS: pos(e.outbs+0xF) >> 5,
	}
}

// Drop and event reasons lvsd counts; each has a metric name.
type reason uint8

const (
	rxFrames reason = iota
	rxIgnored
	rxOversized
	rxSegments
	rxMalformed
	rxFragment
	rxIPOptions
	rxUnknownProto
	rxTTLExpired
	rxNoService
	rxNotSyn
	rxNoDest
	rxTableFull
	rxDestGone
	rxNeighFail
	rxNeighQueueFull
	rxFragNeeded
	rxARPReplies
	rxEchoReplies
	rxResets
	rxPortUnreach
	txFrames
	txErrors
	txLocal
	defPacketDropped
	defEntriesDropped
	defEntriesReclaimed
	defEntriesRecalled
	defSecureTCPOn
	rxARPBadSenderMAC
	rxARPBadSenderIP
	rxARPWrongIface
	rxARPUnsolicited
	rxNeighTableFull
	rxMartian
	rxNoLocalPort
	syncConnsSent
	syncMessagesSent
	syncSendErrors
	syncDropped
	syncMessagesReceived
	syncOtherSyncID
	syncMalformed
	syncEntriesSkipped
	syncNoDest
	syncApplyFailed
	syncConnsCreated
	syncConnsUpdated
	syncStale
	spSYN
	spOKACK
	spBadACK
	spNullACK
	spNoDest
	spSynsentQlen
	spRSError
	spAckStorm
	ftpDataExpected
	ftpRewritten
	ftpRewriteFailed
	ftpIgnored
	ftpPortRewritten
	fnatTOAOK
	fnatTOAFailLen
	fnatTOAFailHeadFull
	fnatTOAFailMem
	fnatTimestampsRemoved
	fnatMSSReduced
	fnatExpireRST
	defTCPDrop
	defUDPDrop
	numReasons
)

var reasonNames = [numReasons]string{
	rxFrames:         "rx_frames",
	rxIgnored:        "rx_not_ours",
	rxOversized:      "drop_oversized",
	rxSegments:       "rx_gso_segments",
	rxMalformed:      "drop_malformed",
	rxFragment:       "drop_fragment",
	rxIPOptions:      "rx_ip_options",
	rxUnknownProto:   "drop_unknown_protocol",
	rxTTLExpired:     "drop_ttl_expired",
	rxNoService:      "drop_no_service",
	rxNotSyn:         "drop_not_syn",
	rxNoDest:         "drop_no_destination",
	rxTableFull:      "drop_conn_table_full",
	rxDestGone:       "drop_destination_removed",
	rxNeighFail:      "drop_neighbour_unresolved",
	rxNeighQueueFull: "drop_neighbour_queue_full",
	rxFragNeeded:     "drop_frag_needed",
	rxARPReplies:     "tx_arp_replies",
	rxEchoReplies:    "tx_echo_replies",
	rxResets:         "tx_resets",
	rxPortUnreach:    "tx_icmp_unreachable",
	txFrames:         "tx_frames",
	txErrors:         "tx_errors",
	txLocal:          "tx_local_delivered",
	// The flood defences (conntrack/defense.go): new connections dropped by
	// drop_packet, entries dropped by drop_entry's walk and taken over by
	// a new connection in a full table, secure_tcp switched on.
	defPacketDropped:    "drop_defense_drop_packet",
	defEntriesDropped:   "defense_drop_entry_dropped",
	defEntriesReclaimed: "defense_drop_entry_reclaimed",
	defEntriesRecalled:  "defense_drop_entry_recalled",
	defSecureTCPOn:      "defense_secure_tcp_activations",
	// ARP that taught lvsd nothing (issue 8, defects 1-3). A request for a
	// VIP from a sender on the wrong link or not asked about is still
	// answered; one from a bad sender is not.
	rxARPBadSenderMAC: "drop_arp_bad_sender_mac",
	rxARPBadSenderIP:  "drop_arp_bad_sender_ip",
	rxARPWrongIface:   "drop_arp_wrong_interface",
	rxARPUnsolicited:  "drop_arp_unsolicited",
	rxNeighTableFull:  "drop_neighbour_table_full",
	rxMartian:         "drop_martian_source",
	// A FULLNAT service whose local addresses have no free port (or that
	// has none): the new connection is dropped.
	rxNoLocalPort: "drop_fullnat_no_local_port",
	// The sync daemon (sync.go).
	syncConnsSent:        "sync_conns_sent",
	syncMessagesSent:     "sync_messages_sent",
	syncSendErrors:       "sync_send_errors",
	syncDropped:          "drop_sync_queue_full",
	syncMessagesReceived: "sync_messages_received",
	syncOtherSyncID:      "sync_messages_other_syncid",
	syncMalformed:        "drop_sync_malformed",
	syncEntriesSkipped:   "drop_sync_entry_unsupported",
	syncNoDest:           "drop_sync_no_destination",
	syncApplyFailed:      "drop_sync_apply_failed",
	syncConnsCreated:     "sync_conns_created",
	syncConnsUpdated:     "sync_conns_updated",
	syncStale:            "sync_entries_stale",
	// The SYN proxy (synproxy.go), with the fork's ip_vs_ext_stats names:
	// cookie SYN/ACKs sent, ACKs whose cookie checked or did not, pure
	// ACKs refused by synproxy_defer, SYNs to a service without weight,
	// client packets dropped while the real server handshakes, SYNs
	// re-sent to (or given up on) a silent real server, ACK-storm drops.
	spSYN:         "synproxy_syn_cnt",
	spOKACK:       "synproxy_ok_ack",
	spBadACK:      "synproxy_bad_ack",
	spNullACK:     "synproxy_null_ack",
	spNoDest:      "synproxy_no_dest",
	spSynsentQlen: "synproxy_synsent_qlen",
	spRSError:     "synproxy_rs_error",
	spAckStorm:    "synproxy_ack_storm",
	// The FTP helper (ftp.go): data connections it created, 227 replies it
	// rewrote to the VIP, replies and commands it could not rewrite
	// (dropped, as the kernel drops a packet it fails to mangle), messages
	// it left alone (an address other than the control connection's
	// peers), and FULLNAT PORT/EPRT commands rewritten to the local
	// address.
	ftpDataExpected:  "ftp_data_expected",
	ftpRewritten:     "ftp_pasv_rewritten",
	ftpRewriteFailed: "drop_ftp_rewrite_failed",
	ftpIgnored:       "ftp_foreign_address",
	ftpPortRewritten: "ftp_port_rewritten",
	// TOA toward FULLNAT real servers, as the fork's ip_vs_ext_stats
	// count it: added, or not (the packet then goes without it) because
	// the packet would exceed the MTU, the TCP header has no room, or the
	// buffer is short.
	fnatTOAOK:             "fullnat_add_toa_ok",
	fnatTOAFailLen:        "fullnat_add_toa_fail_len",
	fnatTOAFailHeadFull:   "fullnat_add_toa_fail_head_full",
	fnatTOAFailMem:        "fullnat_add_toa_fail_mem",
	fnatTimestampsRemoved: "fullnat_timestamps_removed",
	fnatMSSReduced:        "fullnat_mss_reduced",
	// RSTs sent to a client and a real server whose established FULLNAT
	// connection timed out (conn_expire_tcp_rst).
	fnatExpireRST: "fullnat_conn_expire_rst",
	// Sessionless packets to a VIP dropped in silence (the fork's
	// defence_tcp_drop and defence_udp_drop, ip_vs_ext_stats' names).
	defTCPDrop: "drop_defence_tcp",
	defUDPDrop: "drop_defence_udp",
}

// ExitSummary is what lvsd logs when it stops, as slog key/value pairs:
// every event counter that is not zero, by its metric name and in a stable
// order, and each interface's ring and transmit drops. A lab report's
// lvsd.log thereby says where a lost packet went (a neighbour that did not
// answer, a full ring, a refused transmit) without a metrics scrape.
func (e *Engine) ExitSummary() []any {
	e.mu.Lock()
	ctr := e.ctr
	ifaces := append([]*Iface(nil), e.ifaces...)
	e.mu.Unlock()
	var kv []any
	for i, v := range ctr {
		if v != 0 {
			kv = append(kv, reasonNames[i], v)
		}
	}
	// Port statistics outside the lock, as the metrics read them.
	for _, ifc := range ifaces {
		st := ifc.Port.Stats()
		kv = append(kv, ifc.Name+"_ring_drops", st.Drops, ifc.Name+"_tx_drops", st.TxDrops, ifc.Name+"_errors", st.Errors)
	}
	return kv
}
