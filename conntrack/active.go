package conntrack

// Which TCP states count in a destination's ActiveConn, and so in the 256×
// weight lc/wlc give active connections.
//
// tcpActive (state.go) is tcp_state_active_table of
// net/netfilter/ipvs/ip_vs_proto_tcp.c, added by "ipvs: count
// pre-established TCP states as active" (Linux 4.8, 2016): ESTABLISHED,
// SYN_SENT, SYN_RECV and SYNACK are active. Before it, set_tcp_state
// tested new_state == IP_VS_TCP_S_ESTABLISHED, so a connection that had
// only seen a SYN stayed in InActConn. That older rule is offered for
// reproducing a director on such a kernel; today's is the default.
var tcpActivePre48 = [numTCPStates]bool{sES: true}

func activeTable(establishedOnly bool) *[numTCPStates]bool {
	if establishedOnly {
		return &tcpActivePre48
	}
	return &tcpActive
}
