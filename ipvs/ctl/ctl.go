// Package ctl is the control-socket protocol between lvsd and lvsadm.
//
// lvsd listens on a unix stream socket, by default the abstract socket
// "@lvsd". Abstract names live in the network namespace, so
// "ip netns exec X lvsadm ..." reaches the lvsd of namespace X, and nothing is
// left in the file system.
//
// The protocol is newline-delimited JSON: the client writes one Request per
// line, the server answers each with one Reply line, in order, until the
// client closes. It can be driven by hand:
//
//	echo '{"command":{"op":"list"}}' | socat - ABSTRACT-CONNECT:lvsd
//
// Authorization follows ipvsadm, which needs CAP_NET_ADMIN for everything,
// listing included. The server reads the peer's credentials (SO_PEERCRED)
// when it accepts a connection; a peer is an administrator if its uid is 0 or
// its effective capabilities (/proc/PID/status CapEff) hold CAP_NET_ADMIN
// and it lives in lvsd's user namespace (capabilities of a namespace made
// with "unshare -Ur" do not count, as the kernel would not honour them).
// Anyone else is refused at once with ipvsadm's "Permission denied (you must
// be root)" (a Reply with Refused set), unless the server was started with
// Server.AllowUnprivilegedList (lvsd --unprivileged-list): then other local
// users may list and save, and commands that change state (config.Op.Mutates)
// are still refused.
//
// Limits: a local user must not be able to starve the socket. Connections of
// peers that are not administrators are capped per uid (Server.MaxPerUID)
// and in total (Server.MaxUnprivileged); administrators have a budget of
// their own (Server.MaxAdmin) that others cannot use up. A connection over
// its limit gets one refusing Reply and is closed. Every request must arrive
// complete within Server.IdleTimeout of the connection or of the previous
// reply, and a reply must be taken within Server.WriteTimeout: idle and
// slow peers are disconnected.
//
// A command is never applied for a client that has gone: the request must be
// complete and the peer must still be connected (a client that closes, as
// lvsadm does when its own timeout expires, cancels the request's context,
// and the handler checks it before it changes anything).
//
// Transactions: lvsadm -R sends the whole rules file as one request, Command
// op "restore" with Rules, which lvsd applies all or nothing.
package ctl

import (
	"net/netip"
	"strings"
	"time"

	"lvslab/config"
)

// DefaultSocket is lvsd's control socket name (the abstract "@lvsd").
const DefaultSocket = "lvsd"

// Request is one command for lvsd.
type Request struct {
	Command config.Command `json:"command"`
	// Rules are the commands of a restore (Command.Op config.OpRestore,
	// lvsadm -R), with the file and line each came from. They are one
	// transaction: all are applied, or none and the Reply's Error names the
	// line that was refused.
	Rules []config.Rule `json:"rules,omitempty"`
	// Own is the request of "own" and "release" (own.go).
	Own *OwnRequest `json:"own,omitempty"`
	// VRRP is the instances of a "vrrp-report".
	VRRP []VRRPStatus `json:"vrrp,omitempty"`
}

// Reply is lvsd's answer to one Request. What it fills depends on the
// command:
//
//   - list (-L): Services and ConnTabSize; exactly one service when
//     Command.HasService (or Error "No such service"); Conns instead with
//     List.Connections, Timeouts with List.Timeout, Daemons with List.Daemon,
//     Defense with List.Defense.
//     Services and their Dests may come in any order: lvsadm sorts them
//     unless --nosort, which shows them as given (lvsd should give the
//     engine's own order, newest real server first, as the kernel does).
//     Conns are printed as given, as ipvsadm prints the kernel's table.
//   - save (-S): Services.
//   - get-laddr (-G): Services (one with Command.HasService) with Laddrs.
//   - commands that change state: nothing but Error on failure.
//   - restore: nothing but Error, "file:line: message", on failure.
//
// Refused is set when the server refuses the connection itself, not one
// command: the peer may not use the socket (permission) or is over its
// connection limit. The server closes the connection after such a reply.
//
// Error is empty on success; otherwise it is the message lvsadm prints, in
// ipvsadm's words where ipvsadm has them (config.ErrNoService, ...).
type Reply struct {
	Error       string          `json:"error,omitempty"`
	Refused     bool            `json:"refused,omitempty"`
	ConnTabSize int             `json:"conn_tab_size,omitempty"`
	Services    []ServiceStatus `json:"services,omitempty"`
	Conns       []ConnStatus    `json:"conns,omitempty"`
	Timeouts    Timeouts        `json:"timeouts,omitzero"`
	Daemons     []DaemonStatus  `json:"daemons,omitempty"`
	// Defense answers -L --defense: lvsd's flood defence settings.
	Defense *config.Defense `json:"defense,omitempty"`
	// FTPPorts are the ports lvsd's FTP helper follows on NAT and FULLNAT services
	// (sent with service listings; empty: the helper is off).
	FTPPorts []uint16 `json:"ftp_ports,omitempty"`
	// Ownership answers "ownership", "own" and "release" (own.go); list
	// fills it too, with VRRP, for what lvsadm -L shows after the table.
	Ownership []VIPOwnership `json:"ownership,omitempty"`
	VRRP      *VRRPReport    `json:"vrrp,omitempty"`
}

// Stats are cumulative counters.
type Stats struct {
	Conns    uint64 `json:"conns"`
	InPkts   uint64 `json:"in_pkts"`
	OutPkts  uint64 `json:"out_pkts"`
	InBytes  uint64 `json:"in_bytes"`
	OutBytes uint64 `json:"out_bytes"`
}

// Rate are the estimator's per-second rates (the kernel's 2 s EWMA). BPS is
// bytes, not bits, per second.
type Rate struct {
	CPS    uint64 `json:"cps"`
	InPPS  uint64 `json:"in_pps"`
	OutPPS uint64 `json:"out_pps"`
	InBPS  uint64 `json:"in_bps"`
	OutBPS uint64 `json:"out_bps"`
}

// ServiceStatus is a virtual service with its counters and real servers.
type ServiceStatus struct {
	Service config.Service `json:"service"`
	Stats   Stats          `json:"stats"`
	Rate    Rate           `json:"rate"`
	Dests   []DestStatus   `json:"dests,omitempty"`
	// Laddrs are the FULLNAT local addresses, in the order added.
	Laddrs []LaddrStatus `json:"laddrs,omitempty"`
}

// LaddrStatus is a FULLNAT local address, as ipvsadm -G of the fork shows
// it.
type LaddrStatus struct {
	Addr netip.Addr `json:"addr"`
	// Conns are the connections holding one of its ports, over every
	// service that shares the address.
	Conns uint32 `json:"conns"`
}

// DestStatus is a real server with its connection counts and counters.
type DestStatus struct {
	Dest         config.Dest `json:"dest"`
	ActiveConns  uint32      `json:"active_conns"`
	InactConns   uint32      `json:"inact_conns"`
	PersistConns uint32      `json:"persist_conns"`
	Stats        Stats       `json:"stats"`
	Rate         Rate        `json:"rate"`
}

// ConnStatus is one connection-table entry, as /proc/net/ip_vs_conn shows it.
type ConnStatus struct {
	// Proto is TCP, UDP, SCTP, or IP for the templates of fwmark services.
	Proto string `json:"proto"`
	// State is the state name: ESTABLISHED, SYN_RECV, ..., UDP; NONE or
	// ASSURED for persistence templates.
	State string `json:"state"`
	// Expires is the time left before the entry expires.
	Expires time.Duration `json:"expires"`
	// Client, Virtual and Dest are the three addresses of the entry. A
	// template has client port 0; a fwmark template shows the mark as the
	// virtual address (mark 1 is 0.0.0.1) with port 0.
	Client  netip.AddrPort `json:"client"`
	Virtual netip.AddrPort `json:"virtual"`
	Dest    netip.AddrPort `json:"dest"`
	// PEName and PEData are the persistence engine's (--pe) name and data.
	PEName string `json:"pe_name,omitempty"`
	PEData string `json:"pe_data,omitempty"`
}

// Timeouts are the --set timeouts.
type Timeouts = config.Timeouts

// DaemonStatus describes a connection sync daemon (ipvsadm -L --daemon).
type DaemonStatus struct {
	State    string     `json:"state"` // master or backup
	McastIfn string     `json:"mcast_ifn"`
	SyncID   uint8      `json:"syncid"`
	MaxLen   uint32     `json:"maxlen,omitempty"`
	Group    netip.Addr `json:"group,omitzero"`
	Port     uint16     `json:"port,omitempty"`
	TTL      uint8      `json:"ttl,omitempty"`
}

// RemoteError is an error lvsd answered with (Reply.Error). Refused says
// lvsd refused the connection rather than the command (Reply.Refused).
type RemoteError struct {
	Msg     string
	Refused bool
}

func (e *RemoteError) Error() string { return e.Msg }

// SocketAddr turns a socket name into a unix socket address: a name with a
// slash is a file-system path, anything else an abstract name ("lvsd" and
// "@lvsd" are both the abstract @lvsd).
func SocketAddr(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return "@" + strings.TrimPrefix(name, "@")
}
