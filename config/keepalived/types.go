package keepalived

import (
	"net/netip"
	"time"

	"lvslab/config"
	"lvslab/sched"
)

// Config is a parsed keepalived.conf: everything the LVS side, the health
// checkers and the VRRP side need, with keepalived 2.2.7's defaults filled
// in, and every problem found on the way.
type Config struct {
	// Files are the files read, the main one first, then includes in the
	// order they were read.
	Files []string `json:"files"`

	Global              Global                `json:"global"`
	SSL                 *SSL                  `json:"ssl,omitempty"`
	VirtualServerGroups []*VirtualServerGroup `json:"virtual_server_groups,omitempty"`
	VirtualServers      []*VirtualServer      `json:"virtual_servers,omitempty"`
	LocalAddressGroups  []*LocalAddressGroup  `json:"local_address_groups,omitempty"`
	VRRP                VRRP                  `json:"vrrp"`
	TrackFiles          []*TrackFile          `json:"track_files,omitempty"`
	NetNamespace        string                `json:"net_namespace,omitempty"`

	Diags []Diag `json:"diags,omitempty"`
}

// Fatal reports whether the configuration must not be applied at all.
func (c *Config) Fatal() bool {
	for _, d := range c.Diags {
		if d.Severity == SevFatal {
			return true
		}
	}
	return false
}

// Global is global_defs (the keywords lvskeepalived interprets; the others
// are accepted and kept in Other).
type Global struct {
	RouterID              string        `json:"router_id,omitempty"`
	NotificationEmail     []string      `json:"notification_email,omitempty"`
	NotificationEmailFrom string        `json:"notification_email_from,omitempty"`
	SMTPServer            string        `json:"smtp_server,omitempty"` // host or IP, optional " PORT"
	SMTPConnectTimeout    time.Duration `json:"smtp_connect_timeout,omitempty"`
	SMTPHeloName          string        `json:"smtp_helo_name,omitempty"`
	SMTPAlert             bool          `json:"smtp_alert,omitempty"`
	EnableTraps           bool          `json:"enable_traps,omitempty"`
	// ScriptUser is script_user USER [GROUP]; empty means keepalived's
	// default (keepalived_script if that user exists, else root).
	ScriptUser  string `json:"script_user,omitempty"`
	ScriptGroup string `json:"script_group,omitempty"`
	// EnableScriptSecurity is enable_script_security.
	EnableScriptSecurity bool `json:"enable_script_security,omitempty"`
	// LVSTimeouts is lvs_timeouts (zero fields unset), as ipvsadm --set.
	LVSTimeouts config.Timeouts `json:"lvs_timeouts,omitzero"`
	LVSFlush    bool            `json:"lvs_flush,omitempty"`
	// LVSSyncDaemon is lvs_sync_daemon (nil if absent).
	LVSSyncDaemon *SyncDaemon `json:"lvs_sync_daemon,omitempty"`
	VRRPVersion   int         `json:"vrrp_version"` // 2 unless vrrp_version 3
	VRRPStrict    bool        `json:"vrrp_strict,omitempty"`
	// VRRPGarpMasterDelay / Repeat are the global defaults for instances.
	VRRPGarpMasterDelay  time.Duration `json:"vrrp_garp_master_delay"`
	VRRPGarpMasterRepeat int           `json:"vrrp_garp_master_repeat"`
	// Other holds the global_defs keywords accepted but not interpreted.
	Other []Statement `json:"other,omitempty"`
}

// SyncDaemon is global_defs' lvs_sync_daemon INTERFACE [[inst]
// VRRP_INSTANCE] [id SYNCID] [maxlen LEN] [port PORT] [ttl TTL] [group
// ADDR] (keepalived 2.2.7's set_lvs_sync_daemon). Zero fields are unset:
// the kernel's defaults apply; SyncID is -1 when no id was given
// (keepalived then uses the named instance's VRID, or 0).
type SyncDaemon struct {
	Pos       Pos        `json:"pos"`
	Interface string     `json:"interface"`
	Instance  string     `json:"instance,omitempty"`
	SyncID    int        `json:"syncid"`
	MaxLen    int        `json:"maxlen,omitempty"`
	Port      uint16     `json:"port,omitempty"`
	TTL       uint8      `json:"ttl,omitempty"`
	Group     netip.Addr `json:"group,omitzero"`
}

// Statement is a keyword kept as written.
type Statement struct {
	Pos   Pos      `json:"pos"`
	Words []string `json:"words"`
}

// SSL is the root SSL block (the client side of SSL_GET).
type SSL struct {
	Password, CA, Certificate, Key string
}

// Script is a command keepalived would run (notify_*, quorum_*,
// misc_path, vrrp_script): the words split as keepalived splits them
// (quotes and escapes), and who runs it.
type Script struct {
	Pos   Pos      `json:"pos"`
	Args  []string `json:"args"` // Args[0] is the program
	User  string   `json:"user,omitempty"`
	Group string   `json:"group,omitempty"`
}

// VirtualServerGroup is virtual_server_group NAME { ... }.
type VirtualServerGroup struct {
	Pos     Pos            `json:"pos"`
	Name    string         `json:"name"`
	Entries []VSGroupEntry `json:"entries,omitempty"`
}

// VSGroupEntry is one line of a virtual_server_group: an address range
// with a port, or a fwmark.
type VSGroupEntry struct {
	Pos   Pos        `json:"pos"`
	First netip.Addr `json:"first,omitzero"`
	Last  netip.Addr `json:"last,omitzero"` // == First for a single address
	Port  uint16     `json:"port,omitempty"`
	// Fwmark entries have no address.
	Fwmark     uint32 `json:"fwmark,omitempty"`
	FwmarkIPv6 bool   `json:"fwmark_ipv6,omitempty"`
}

// LocalAddressGroup is the FULLNAT fork's local_address_group NAME { IP|range ... }.
type LocalAddressGroup struct {
	Pos     Pos      `json:"pos"`
	EndLine int      `json:"end_line"`
	Name    string   `json:"name"`
	Entries []string `json:"entries,omitempty"`
	// Addrs are the entries' addresses, ranges expanded.
	Addrs []netip.Addr `json:"addrs,omitempty"`
}

// VirtualServer is one virtual_server block: an IPVS service with its
// real servers and the checker defaults they inherit.
type VirtualServer struct {
	Pos     Pos `json:"pos"`
	EndLine int `json:"end_line"`
	// Exactly one of Addr, Fwmark or Group says what it matches.
	Addr       netip.Addr      `json:"addr,omitzero"`
	Port       uint16          `json:"port,omitempty"`
	Fwmark     uint32          `json:"fwmark,omitempty"`
	Group      string          `json:"group,omitempty"`
	IPFamily   int             `json:"ip_family,omitempty"` // 4, 6 or 0 (from the addresses)
	Protocol   config.Protocol `json:"protocol"`            // keepalived: UDP when unset (with a warning)
	Scheduler  string          `json:"scheduler"`           // default wlc (with a warning)
	SchedFlags sched.Flags     `json:"sched_flags,omitempty"`
	OnePacket  bool            `json:"ops,omitempty"`
	Forward    config.Forward  `json:"forward"` // default NAT (with a warning)
	TunType    config.TunType  `json:"tun_type,omitempty"`
	TunPort    uint16          `json:"tun_port,omitempty"`
	TunCsum    config.TunCsum  `json:"tun_csum,omitempty"`
	// Persistence: PersistTimeout 0 means not persistent.
	PersistTimeout     time.Duration `json:"persistence_timeout,omitempty"`
	PersistGranularity netip.Addr    `json:"persistence_granularity,omitzero"`
	PersistEngine      string        `json:"persistence_engine,omitempty"`

	// Checker defaults for the real servers (zero: not set here).
	DelayLoop        time.Duration `json:"delay_loop"` // default 60 s
	ConnectTimeout   time.Duration `json:"connect_timeout,omitempty"`
	Retry            int           `json:"retry"` // -1 unset
	DelayBeforeRetry time.Duration `json:"delay_before_retry"`
	Warmup           time.Duration `json:"warmup"` // -1 unset: = delay_loop
	InhibitOnFailure bool          `json:"inhibit_on_failure,omitempty"`

	HASuspend   bool    `json:"ha_suspend,omitempty"`
	SMTPAlert   bool    `json:"smtp_alert,omitempty"`
	Virtualhost string  `json:"virtualhost,omitempty"`
	Alpha       bool    `json:"alpha,omitempty"`
	Omega       bool    `json:"omega,omitempty"`
	Quorum      uint32  `json:"quorum"` // default 1
	Hysteresis  uint32  `json:"hysteresis"`
	QuorumUp    *Script `json:"quorum_up,omitempty"`
	QuorumDown  *Script `json:"quorum_down,omitempty"`
	// Weight is the default weight of its real servers (default 1).
	Weight int `json:"weight"`

	SorryServer        *RealServer `json:"sorry_server,omitempty"`
	SorryServerInhibit bool        `json:"sorry_server_inhibit,omitempty"`

	RealServers []*RealServer `json:"real_servers,omitempty"`

	// The Alibaba fork's FULLNAT keywords, parsed and carried so nothing
	// is dropped silently.
	SynProxy   bool   `json:"syn_proxy,omitempty"`
	LaddrGroup string `json:"laddr_group_name,omitempty"`
	// Laddrs are the addresses of LaddrGroup for a FULLNAT virtual server
	// (resolved when the configuration is complete).
	Laddrs []netip.Addr `json:"laddrs,omitempty"`
	// Refused says why lvsd cannot have this service ("not yet supported by
	// lvsd: est_timeout"); a refused service is not in Table().
	Refused string `json:"refused,omitempty"`
}

// RealServer is a real_server block (or the sorry server), with the
// checker settings it inherits resolved.
type RealServer struct {
	Pos        Pos            `json:"pos"`
	Addr       netip.Addr     `json:"addr"`
	Port       uint16         `json:"port,omitempty"`
	Weight     int            `json:"weight"`
	Forward    config.Forward `json:"forward"`
	TunType    config.TunType `json:"tun_type,omitempty"`
	TunPort    uint16         `json:"tun_port,omitempty"`
	TunCsum    config.TunCsum `json:"tun_csum,omitempty"`
	UThreshold uint32         `json:"uthreshold,omitempty"`
	LThreshold uint32         `json:"lthreshold,omitempty"`

	InhibitOnFailure bool    `json:"inhibit_on_failure,omitempty"`
	NotifyUp         *Script `json:"notify_up,omitempty"`
	NotifyDown       *Script `json:"notify_down,omitempty"`
	// Alpha: start with every checker failed (from the VS unless set here).
	Alpha       bool   `json:"alpha,omitempty"`
	SMTPAlert   bool   `json:"smtp_alert,omitempty"`
	Virtualhost string `json:"virtualhost,omitempty"`

	// Checkers all must pass for the real server to be up. Their timing
	// fields are resolved (checker <- real_server <- virtual_server <- default).
	Checkers []*Checker `json:"checkers,omitempty"`

	// set* record what was written here, for inheritance.
	setWeight, setForward, setInhibit, setAlpha         bool
	delayLoop, connectTimeout, delayBeforeRetry, warmup time.Duration
	retry                                               int
}

// CheckerKind is the checker block's keyword.
type CheckerKind uint8

const (
	CheckTCP CheckerKind = iota + 1
	CheckHTTP
	CheckSSL
	CheckMisc
	CheckSMTP
	CheckUDP
	CheckPing
	CheckDNS
	CheckFile
	CheckBFD
)

var checkerText = [...]string{CheckTCP: "TCP_CHECK", CheckHTTP: "HTTP_GET", CheckSSL: "SSL_GET", CheckMisc: "MISC_CHECK",
	CheckSMTP: "SMTP_CHECK", CheckUDP: "UDP_CHECK", CheckPing: "PING_CHECK", CheckDNS: "DNS_CHECK", CheckFile: "FILE_CHECK", CheckBFD: "BFD_CHECK"}

func (k CheckerKind) String() string { return enumName(checkerText[:], int(k), "CheckerKind") }

// MarshalText makes JSON readable.
func (k CheckerKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Checker is one health checker of a real server.
type Checker struct {
	Kind CheckerKind `json:"kind"`
	Pos  Pos         `json:"pos"`

	// Where to connect: zero values mean the real server's address and port.
	ConnectIP   netip.Addr `json:"connect_ip,omitzero"`
	ConnectPort uint16     `json:"connect_port,omitempty"`
	BindTo      netip.Addr `json:"bindto,omitzero"`
	BindPort    uint16     `json:"bind_port,omitempty"`
	BindIf      string     `json:"bind_if,omitempty"`
	Fwmark      uint32     `json:"fwmark,omitempty"`

	// Resolved timing (keepalived 2.2.7 defaults: connect_timeout 5 s,
	// delay_loop 60 s, warmup = delay_loop, retry 1 (MISC 0, DNS 3),
	// delay_before_retry 1 s (HTTP/SSL 3 s, DNS = delay_loop)).
	ConnectTimeout   time.Duration `json:"connect_timeout"`
	DelayLoop        time.Duration `json:"delay_loop"`
	Warmup           time.Duration `json:"warmup"`
	Retry            int           `json:"retry"`
	DelayBeforeRetry time.Duration `json:"delay_before_retry"`
	Alpha            bool          `json:"alpha,omitempty"`
	LogAllFailures   bool          `json:"log_all_failures,omitempty"`

	HTTP *HTTPCheck `json:"http,omitempty"` // HTTP_GET and SSL_GET
	Misc *MiscCheck `json:"misc,omitempty"`
	SMTP *SMTPCheck `json:"smtp,omitempty"`
	UDP  *UDPCheck  `json:"udp,omitempty"`
	DNS  *DNSCheck  `json:"dns,omitempty"`
	// Name is FILE_CHECK's track_file or BFD_CHECK's name.
	Name string `json:"name,omitempty"`
	// File is FILE_CHECK's tracking: the track_file and the weight its
	// value is multiplied by.
	File *FileCheck `json:"file,omitempty"`

	// written here (-1 / false: inherit)
	retry                                               int
	delayLoop, connectTimeout, delayBeforeRetry, warmup time.Duration
	alphaSet                                            bool
}

// HTTPCheck is HTTP_GET / SSL_GET.
type HTTPCheck struct {
	URLs         []URL  `json:"urls"`
	Virtualhost  string `json:"virtualhost,omitempty"` // checker's, else the RS's, else the VS's
	Protocol     string `json:"http_protocol"`         // 1.0 (default), 1.0C, 1.1
	FastRecovery bool   `json:"fast_recovery,omitempty"`
	EnableSNI    bool   `json:"enable_sni,omitempty"`
}

// URL is one url { } block.
type URL struct {
	Pos  Pos    `json:"pos"`
	Path string `json:"path"`
	// Digest is the MD5 of the body as 32 lower-case hex digits, "" for none.
	Digest string `json:"digest,omitempty"`
	// StatusCodes are inclusive ranges; empty means 200-299.
	StatusCodes  []StatusRange `json:"status_code,omitempty"`
	Virtualhost  string        `json:"virtualhost,omitempty"`
	Regex        string        `json:"regex,omitempty"`
	RegexNoMatch bool          `json:"regex_no_match,omitempty"`
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ From, To int }

// Accepts reports whether code is in one of the ranges (200-299 if none).
func (u URL) Accepts(code int) bool {
	if len(u.StatusCodes) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range u.StatusCodes {
		if code >= r.From && code <= r.To {
			return true
		}
	}
	return false
}

// MiscCheck is MISC_CHECK.
type MiscCheck struct {
	Path *Script `json:"misc_path"`
	// Timeout defaults to the checker's delay_loop.
	Timeout time.Duration `json:"misc_timeout"`
	// Dynamic: exit codes 2..255 set the weight to code-2.
	Dynamic bool `json:"misc_dynamic,omitempty"`
}

// SMTPCheck is SMTP_CHECK: the real server itself unless Hosts lists others.
type SMTPCheck struct {
	HeloName string     `json:"helo_name"`
	Hosts    []SMTPHost `json:"hosts,omitempty"`
}

// SMTPHost is a host { } block of SMTP_CHECK.
type SMTPHost struct {
	ConnectIP   netip.Addr `json:"connect_ip,omitzero"`
	ConnectPort uint16     `json:"connect_port,omitempty"`
	BindTo      netip.Addr `json:"bindto,omitzero"`
}

// UDPCheck is UDP_CHECK.
type UDPCheck struct {
	Payload      []byte `json:"payload,omitempty"`
	RequireReply bool   `json:"require_reply,omitempty"`
	Reply        []byte `json:"reply,omitempty"`
	MinReplyLen  int    `json:"min_reply_length,omitempty"`
	MaxReplyLen  int    `json:"max_reply_length,omitempty"`
}

// FileCheck is FILE_CHECK { track_file NAME; weight W [reverse] }: the
// file's number × W (× −1 with reverse) is added to the real server's
// weight; with W 0 a non-zero number (zero with reverse) takes the
// checker down.
type FileCheck struct {
	Track   *TrackFile `json:"-"`
	Weight  int        `json:"weight"` // default the track_file's
	Reverse bool       `json:"reverse,omitempty"`

	weightSet bool
}

// TrackFile is a root track_file NAME { file PATH; weight W [reverse];
// init_file [VALUE] [overwrite] } (vrrp_track_file is its deprecated
// name).
type TrackFile struct {
	Pos     Pos    `json:"pos"`
	Name    string `json:"name"`
	File    string `json:"file"`
	Weight  int    `json:"weight"` // -254..254, default 1
	Reverse bool   `json:"reverse,omitempty"`
	// Init: init_file, write InitValue at start if the file does not
	// exist (always, with overwrite; never at a reload).
	Init          bool `json:"init_file,omitempty"`
	InitValue     int  `json:"init_value,omitempty"`
	InitOverwrite bool `json:"init_overwrite,omitempty"`
}

// DNSCheck is DNS_CHECK.
type DNSCheck struct {
	Type string `json:"type"` // default SOA
	Name string `json:"name"` // default "."
}

// VRRP is everything the VRRP side needs.
type VRRP struct {
	Scripts         []*VRRPScript   `json:"scripts,omitempty"`
	SyncGroups      []*SyncGroup    `json:"sync_groups,omitempty"`
	Instances       []*VRRPInstance `json:"instances,omitempty"`
	StaticAddresses []IPAddress     `json:"static_ipaddress,omitempty"`
	StaticRoutes    []Statement     `json:"static_routes,omitempty"`
	StaticRules     []Statement     `json:"static_rules,omitempty"`
	// Other root blocks of the VRRP side kept as written
	// (vrrp_track_process, garp_group, ...).
	Other []Statement `json:"other,omitempty"`
}

// VRRPScript is vrrp_script NAME { }.
type VRRPScript struct {
	Pos      Pos           `json:"pos"`
	Name     string        `json:"name"`
	Script   *Script       `json:"script"`
	Interval time.Duration `json:"interval"` // default 1 s
	Timeout  time.Duration `json:"timeout"`  // default = interval
	Weight   int           `json:"weight"`   // -253..253
	Reverse  bool          `json:"reverse,omitempty"`
	Rise     int           `json:"rise"` // default 1
	Fall     int           `json:"fall"` // default 1
	InitFail bool          `json:"init_fail,omitempty"`
}

// SyncGroup is vrrp_sync_group NAME { }.
type SyncGroup struct {
	Pos             Pos            `json:"pos"`
	Name            string         `json:"name"`
	Members         []string       `json:"group"`
	NotifyMaster    *Script        `json:"notify_master,omitempty"`
	NotifyBackup    *Script        `json:"notify_backup,omitempty"`
	NotifyFault     *Script        `json:"notify_fault,omitempty"`
	NotifyStop      *Script        `json:"notify_stop,omitempty"`
	Notify          *Script        `json:"notify,omitempty"`
	SMTPAlert       bool           `json:"smtp_alert,omitempty"`
	TrackInterfaces []Track        `json:"track_interface,omitempty"`
	TrackScripts    []Track        `json:"track_script,omitempty"`
	TrackFiles      []TrackFileUse `json:"track_file,omitempty"`
	Other           []Statement    `json:"other,omitempty"`
}

// TrackFileUse is one line of a vrrp_instance's (or sync group's)
// track_file { NAME [weight W [reverse|noreverse]] } block: the weight
// defaults to the track_file's.
type TrackFileUse struct {
	Pos     Pos        `json:"pos"`
	File    *TrackFile `json:"-"`
	Name    string     `json:"name"`
	Weight  int        `json:"weight"`
	Reverse bool       `json:"reverse,omitempty"`
}

// Track is one entry of a track_interface/track_script block.
type Track struct {
	Name      string `json:"name"`
	Weight    int    `json:"weight,omitempty"`
	Reverse   bool   `json:"reverse,omitempty"`
	HasWeight bool   `json:"has_weight,omitempty"`
}

// IPAddress is one virtual_ipaddress (or static_ipaddress) line:
// IP[/MASK] [brd IP] [dev IF] [scope S] [label L] ...
type IPAddress struct {
	Pos    Pos          `json:"pos"`
	Prefix netip.Prefix `json:"prefix"` // /32 or /128 unless written
	Brd    netip.Addr   `json:"brd,omitzero"`
	Dev    string       `json:"dev,omitempty"` // "" = the instance's interface
	Scope  string       `json:"scope,omitempty"`
	Label  string       `json:"label,omitempty"`
	Words  []string     `json:"words,omitempty"` // the rest, as written
}

// VRRPInstance is vrrp_instance NAME { }.
type VRRPInstance struct {
	Pos  Pos    `json:"pos"`
	Name string `json:"name"`
	// WantMaster is state MASTER (keepalived: priority 255 when no priority
	// is given; BACKUP otherwise, the default).
	WantMaster             bool           `json:"want_master,omitempty"`
	Interface              string         `json:"interface,omitempty"`
	VRID                   int            `json:"virtual_router_id"`   // 1..255; 0 = not set (instance refused)
	Priority               int            `json:"priority"`            // default 100
	AdvertInt              time.Duration  `json:"advert_int"`          // default 1 s
	Version                int            `json:"version"`             // default the global vrrp_version (2)
	AuthType               string         `json:"auth_type,omitempty"` // PASS or AH
	AuthPass               string         `json:"auth_pass,omitempty"` // at most 8 bytes
	VIPs                   []IPAddress    `json:"virtual_ipaddress,omitempty"`
	ExcludedVIPs           []IPAddress    `json:"virtual_ipaddress_excluded,omitempty"`
	VirtualRoutes          []Statement    `json:"virtual_routes,omitempty"`
	VirtualRules           []Statement    `json:"virtual_rules,omitempty"`
	TrackInterfaces        []Track        `json:"track_interface,omitempty"`
	TrackScripts           []Track        `json:"track_script,omitempty"`
	TrackFiles             []TrackFileUse `json:"track_file,omitempty"`
	DontTrackPrimary       bool           `json:"dont_track_primary,omitempty"`
	MCastSrcIP             netip.Addr     `json:"mcast_src_ip,omitzero"`
	UnicastSrcIP           netip.Addr     `json:"unicast_src_ip,omitzero"`
	UnicastPeers           []netip.Addr   `json:"unicast_peer,omitempty"`
	UseVMAC                bool           `json:"use_vmac,omitempty"`
	VMACName               string         `json:"vmac_name,omitempty"`
	VMACXmitBase           bool           `json:"vmac_xmit_base,omitempty"`
	Nopreempt              bool           `json:"nopreempt,omitempty"`
	PreemptDelay           time.Duration  `json:"preempt_delay,omitempty"`
	GarpMasterDelay        time.Duration  `json:"garp_master_delay"`
	GarpMasterRepeat       int            `json:"garp_master_repeat"`
	GarpMasterRefresh      time.Duration  `json:"garp_master_refresh,omitempty"`
	NotifyMaster           *Script        `json:"notify_master,omitempty"`
	NotifyBackup           *Script        `json:"notify_backup,omitempty"`
	NotifyFault            *Script        `json:"notify_fault,omitempty"`
	NotifyStop             *Script        `json:"notify_stop,omitempty"`
	Notify                 *Script        `json:"notify,omitempty"`
	SMTPAlert              bool           `json:"smtp_alert,omitempty"`
	LVSSyncDaemonInterface string         `json:"lvs_sync_daemon_interface,omitempty"`
	Debug                  int            `json:"debug,omitempty"`
	// Other keywords accepted but not interpreted, as written.
	Other []Statement `json:"other,omitempty"`

	prioritySet, stateSet bool
}

func enumName(names []string, v int, typ string) string {
	if v >= 0 && v < len(names) && names[v] != "" {
		return names[v]
	}
	return typ + "(?)"
}
