package conntrack

import "time"

// IP protocol numbers the table knows. ProtoIP is only used by fwmark
// persistence templates, as in the kernel.
const (
	ProtoIP  uint8 = 0
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// State is a connection's protocol state: a TCP state (IP_VS_TCP_S_*), the
// UDP state, or a template state, depending on the connection.
type State uint8

// TCP states with the kernel's numeric values (§2.1).
const (
	StateNone        State = 0
	StateEstablished State = 1
	StateSynSent     State = 2
	StateSynRecv     State = 3
	StateFinWait     State = 4
	StateTimeWait    State = 5
	StateClose       State = 6
	StateCloseWait   State = 7
	StateLastAck     State = 8
	StateListen      State = 9
	StateSynAck      State = 10
	numTCPStates           = 11
)

// StateUDP is IP_VS_UDP_S_NORMAL, the only UDP state.
const StateUDP State = 0

// Template states (IP_VS_CTPL_S_*).
const (
	TemplateNone    State = 0
	TemplateAssured State = 1
)

// Short names keep the transition tables below readable and column-aligned
// like the kernel's.
const (
	sNO = StateNone
	sES = StateEstablished
	sSS = StateSynSent
	sSR = StateSynRecv
	sFW = StateFinWait
	sTW = StateTimeWait
	sCL = StateClose
	sCW = StateCloseWait
	sLA = StateLastAck
	sLI = StateListen
	sSA = StateSynAck
)

var tcpStateNames = [numTCPStates]string{
	"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK",
}

// tcpActive is tcp_state_active_table: states counted in ActiveConn.
var tcpActive = [numTCPStates]bool{
	sES: true, sSS: true, sSR: true, sSA: true,
}

// defaultTCPTimeouts is tcp_timeouts[] in milliseconds.
var defaultTCPTimeouts = [numTCPStates]uint32{
	sNO: 2_000,
	sES: 900_000,
	sSS: 120_000,
	sSR: 60_000,
	sFW: 120_000,
	sTW: 120_000,
	sCL: 10_000,
	sCW: 60_000,
	sLA: 30_000,
	sLI: 120_000,
	sSA: 120_000,
}

// dosTCPTimeouts is the TCP part of vs_timeout_table_dos, the timeouts
// secure_tcp switched to in the 2.4 kernels (net/ipv4/ipvs/ip_vs_conn.c);
// later kernels switch only the state table. SYN_RECV lives 10 s instead
// of 60 s.
var dosTCPTimeouts = [numTCPStates]uint32{
	sNO: 2_000, // IP_VS_S_NONE had 15 min there; the modern 2 s is shorter
	sES: 480_000,
	sSS: 60_000,
	sSR: 10_000,
	sFW: 60_000,
	sTW: 60_000,
	sCL: 10_000,
	sCW: 60_000,
	sLA: 30_000,
	sLI: 120_000,
	sSA: 100_000,
}

const (
	defaultUDPTimeout = 300_000 // udp_timeouts[IP_VS_UDP_S_NORMAL]
	newConnTimeout    = 3_000   // ip_vs_conn_new: cp->timeout = 3*HZ
	templateDeferral  = 60_000  // ip_vs_conn_expire: expire later by 60*HZ
)

// MaxTimeout bounds every timeout the table accepts: ipvsadm's persistence
// range (31 days), which also fits the millisecond fields comfortably.
const MaxTimeout = 2_678_400 * time.Second

// Table-row offsets (TCP_DIR_INPUT, TCP_DIR_OUTPUT, TCP_DIR_INPUT_ONLY / 4).
const (
	rowsInput = iota
	rowsOutput
	rowsInputOnly
)

// TCP events in the kernel's column order; the flag precedence that picks one
// is RST > SYN > FIN > ACK (tcp_state_idx).
const (
	evSYN = iota
	evFIN
	evACK
	evRST
)

// TCP header flag bits (byte 13 of the header).
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// tcpEvent maps TCP flags to an event, or -1 when none of the four is set.
func tcpEvent(flags uint8) int {
	switch {
	case flags&tcpRST != 0:
		return evRST
	case flags&tcpSYN != 0:
		return evSYN
	case flags&tcpFIN != 0:
		return evFIN
	case flags&tcpACK != 0:
		return evACK
	}
	return -1
}

type tcpTable [3][4][numTCPStates]State

// tcpStates is tcp_states[] laid out as in ip_vs_proto_tcp.c: one row per
// (direction, event), one column per current state.
var tcpStates = tcpTable{
	rowsInput: {
		//         sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA
		evSYN: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		evFIN: {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW},
		evACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		evRST: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR},
	},
	rowsOutput: {
		evSYN: {sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR},
		evFIN: {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
		evACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
		evRST: {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
	},
	rowsInputOnly: {
		evSYN: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		evFIN: {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW},
		evACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		evRST: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
	},
}

// tcpStatesDOS is tcp_states_dos[] (secure_tcp): the handshake must really
// complete before a connection counts as ESTABLISHED.
var tcpStatesDOS = tcpTable{
	rowsInput: {
		//         sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA
		evSYN: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSA},
		evFIN: {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sSA},
		evACK: {sES, sES, sSS, sSR, sFW, sTW, sCL, sCW, sCL, sLI, sSA},
		evRST: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
	},
	rowsOutput: {
		evSYN: {sSS, sES, sSS, sSA, sSS, sSS, sSS, sSS, sSS, sLI, sSA},
		evFIN: {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
		evACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
		evRST: {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
	},
	rowsInputOnly: {
		evSYN: {sSA, sES, sES, sSR, sSA, sSA, sSA, sSA, sSA, sSA, sSA},
		evFIN: {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW},
		evACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		evRST: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
	},
}

// StateName is the state column of ipvsadm -L -c (ip_vs_state_name) for a
// connection of protocol proto with flags f in state s.
func StateName(proto uint8, f Flags, s State) string {
	if f&FlagTemplate != 0 {
		switch s {
		case TemplateNone:
			return "NONE"
		case TemplateAssured:
			return "ASSURED"
		}
		return "ERR!"
	}
	switch proto {
	case ProtoTCP:
		if int(s) < numTCPStates {
			return tcpStateNames[s]
		}
		return "BUG!"
	case ProtoUDP:
		if s == StateUDP {
			return "UDP"
		}
		return "BUG!"
	case ProtoIP:
		return "NONE"
	}
	return "ERR!"
}

// ProtoName is the protocol column of ipvsadm -L -c (ip_vs_proto_name).
func ProtoName(proto uint8) string {
	switch proto {
	case ProtoIP:
		return "IP"
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	}
	return "ERR"
}
