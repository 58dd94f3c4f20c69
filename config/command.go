package config

import "net/netip"

// Op is the operation of an ipvsadm command.
type Op uint8

// The zero Op is invalid.
const (
	OpAddService    Op = iota + 1 // -A
	OpEditService                 // -E
	OpDeleteService               // -D
	OpClear                       // -C
	OpList                        // -L, -l (and no argument at all)
	OpAddDest                     // -a
	OpDeleteDest                  // -d
	OpEditDest                    // -e
	OpSetTimeouts                 // --set tcp tcpfin udp
	OpStartDaemon                 // --start-daemon master|backup
	OpStopDaemon                  // --stop-daemon master|backup
	OpRestore                     // -R: the caller reads rules from stdin
	OpSave                        // -S
	OpZero                        // -Z
	OpSetDefense                  // --set-defense name=value... (lvsd's flood defence sysctls)
	OpVersion                     // -v
	OpHelp                        // -h
	// VIP ownership and VRRP state (lvskeepalived; no ipvsadm flag).
	OpOwn        // take over VIPs: answer ARP and ping for them, send gratuitous ARPs
	OpRelease    // give VIPs up: silent for them, rules kept
	OpOwnership  // list which VIPs are owned
	OpVRRPReport // lvskeepalived's VRRP instance states
	// The FULLNAT fork's local-address commands (-P, -Q, -G).
	OpAddLaddr // -P/--add-laddr -z LADDR
	OpDelLaddr // -Q/--del-laddr -z LADDR
	OpGetLaddr // -G/--get-laddr: list the local addresses
)

// opText are ipvsadm's command names (its error messages use them, e.g.
// "Illegal 'weight' option with the 'flush' command").
var opText = [...]string{
	OpAddService:    "add-service",
	OpEditService:   "edit-service",
	OpDeleteService: "delete-service",
	OpClear:         "flush",
	OpList:          "list",
	OpAddDest:       "add-server",
	OpDeleteDest:    "delete-server",
	OpEditDest:      "edit-server",
	OpSetTimeouts:   "set",
	OpStartDaemon:   "start-daemon",
	OpStopDaemon:    "stop-daemon",
	OpRestore:       "restore",
	OpSave:          "save",
	OpZero:          "zero",
	OpSetDefense:    "set-defense",
	OpVersion:       "version",
	OpHelp:          "help",
	OpOwn:           "own",
	OpRelease:       "release",
	OpOwnership:     "ownership",
	OpVRRPReport:    "vrrp-report",
	OpAddLaddr:      "add-laddr",
	OpDelLaddr:      "del-laddr",
	OpGetLaddr:      "get-laddr",
}

func (o Op) String() string { return enumString(opText[:], int(o), "Op") }

// MarshalText makes the wire form readable.
func (o Op) MarshalText() ([]byte, error) { return enumMarshal(opText[:], int(o), "op") }

// UnmarshalText is the inverse of MarshalText.
func (o *Op) UnmarshalText(b []byte) error {
	v, err := enumUnmarshal(opText[:], b, "op")
	*o = Op(v)
	return err
}

// Mutates reports whether the operation changes the director's state (and so
// needs a privileged caller). Zeroing counters counts as a change.
func (o Op) Mutates() bool {
	switch o {
	case OpAddService, OpEditService, OpDeleteService, OpClear,
		OpAddDest, OpDeleteDest, OpEditDest, OpSetTimeouts,
		OpStartDaemon, OpStopDaemon, OpRestore, OpZero, OpSetDefense,
		OpOwn, OpRelease, OpVRRPReport,
		OpAddLaddr, OpDelLaddr:
		return true
	}
	return false
}

// Command is one parsed ipvsadm command line.
//
// Add and edit commands carry the complete new Service or Dest, options not
// given being at their defaults, exactly as ipvsadm sends them to the kernel:
// "-E -t VIP:80 -s rr" also turns persistence off.
type Command struct {
	Op Op `json:"op"`
	// Service is the virtual service the command names. For list and zero
	// it is meaningful only when HasService is set (one service rather than
	// all).
	Service    Service `json:"service,omitzero"`
	HasService bool    `json:"has_service,omitempty"`
	// Dest is the real server of -a, -e and -d.
	Dest Dest `json:"dest,omitzero"`
	// Laddr is the FULLNAT local address of -P and -Q (-z).
	Laddr netip.Addr `json:"laddr,omitzero"`
	// Timeouts are the values of --set; zero keeps a timeout unchanged.
	Timeouts Timeouts `json:"timeouts,omitzero"`
	// Defense are the settings --set-defense changes; the others stay.
	Defense DefenseChange `json:"defense,omitzero"`
	// List holds the listing modifiers of -L (and -n of -S).
	List ListOptions `json:"list,omitzero"`
	// Daemon is the sync daemon of --start-daemon and --stop-daemon (only
	// State for the latter).
	Daemon Daemon `json:"daemon,omitzero"`
}

// Daemon is a connection sync daemon's settings (ipvsadm's daemon options,
// struct ipvs_daemon_t), with ipvsadm's defaults filled in by the parser.
type Daemon struct {
	State    string     `json:"state"`     // "master" or "backup"
	McastIfn string     `json:"mcast_ifn"` // --mcast-interface, default eth0
	SyncID   uint8      `json:"syncid"`
	MaxLen   int        `json:"maxlen,omitempty"` // --sync-maxlen; 0: MTU - 28 as the kernel computes it
	Group    netip.Addr `json:"group,omitzero"`   // --mcast-group, default 224.0.0.81
	Port     uint16     `json:"port,omitempty"`   // --mcast-port, default 8848
	TTL      uint8      `json:"ttl,omitempty"`    // --mcast-ttl, default 1
}

// ListOptions are the modifiers of -L/-l. Connections, Timeout and Daemon
// select what is listed; the others shape the service table.
type ListOptions struct {
	Connections    bool `json:"connections,omitempty"`     // -c
	Timeout        bool `json:"timeout,omitempty"`         // --timeout
	Daemon         bool `json:"daemon,omitempty"`          // --daemon
	Defense        bool `json:"defense,omitempty"`         // --defense (lvsd's flood defences)
	Stats          bool `json:"stats,omitempty"`           // --stats
	Rate           bool `json:"rate,omitempty"`            // --rate
	Thresholds     bool `json:"thresholds,omitempty"`      // --thresholds
	PersistentConn bool `json:"persistent_conn,omitempty"` // --persistent-conn
	TunInfo        bool `json:"tun_info,omitempty"`        // --tun-info
	Exact          bool `json:"exact,omitempty"`           // --exact, -X
	Numeric        bool `json:"numeric,omitempty"`         // -n (also for -S)
	NoSort         bool `json:"nosort,omitempty"`          // --nosort
}
