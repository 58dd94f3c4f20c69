package spec

import (
	"net/netip"
	"time"
)

// The scenario types. One YAML file is one Spec: topology (segments, nodes),
// what runs on the nodes (processes, built-in services, director and
// real-server setup), workload (traffic), a fault timeline, expectations,
// captures and reports.
//
// Struct tags drive both the YAML decoder (decode.go) and the JSON Schema
// generator (schema.go), so the two cannot drift apart:
//
//	yaml:"key"       the key in the file ("-": not read from the file)
//	lvs:"required"   the key must be present
//	lvs:"keyed"      a list written as a mapping: name -> element
//	lvs:"key"        the element field that receives that name
//	lvs:"value"      the element field that receives a scalar short form
//	lvs:"pair"       a list of exactly two items
//	doc:"..."        the description in the JSON Schema

// APIVersion is the current format version. It differs from
// APIVersionV1Alpha1 only in a default: traffic without jitter: is sent
// with Poisson arrivals (JitterPoisson) instead of at exact 1/rate steps,
// so a fault at: a round time does not land on a request start in every
// run. Files that say v1alpha1 (or nothing) keep their fixed steps and
// stay reproducible as they were written.
const APIVersion = "lvslab/v1alpha2"

// APIVersionV1Alpha1 is the first format version, still read.
const APIVersionV1Alpha1 = "lvslab/v1alpha1"

// Spec is one scenario.
type Spec struct {
	APIVersion  string            `yaml:"apiVersion" doc:"format version: lvslab/v1alpha2 (traffic jitter defaults to poisson) or lvslab/v1alpha1 (the default when absent; jitter defaults to none, requests at exact 1/rate steps)"`
	Kind        string            `yaml:"kind" doc:"document kind; Scenario if given"`
	Name        string            `yaml:"name" lvs:"required" doc:"scenario name: lower case letters, digits and '-'; names the lab's namespaces"`
	Description string            `yaml:"description" doc:"what the scenario shows, for lvslab list and the report"`
	Tags        []string          `yaml:"tags" doc:"free-form labels (dr, nat, arp, tour, ...)"`
	Source      *Source           `yaml:"source" doc:"the seed document and section this scenario reproduces"`
	Seed        int64             `yaml:"seed" doc:"random seed for traffic timing (jitter), payloads, loss patterns and target selection: the same seed gives the same request times and bytes on every run"`
	Requires    []Requirement     `yaml:"requires" doc:"kernel features and tools the scenario needs; a trailing ? marks an optional one"`
	Vars        map[string]string `yaml:"vars" doc:"values substituted for ${name} in every string of the file"`
	Duration    Duration          `yaml:"duration" doc:"how long traffic runs (time base of the timeline); default 10s"`
	Defaults    *Defaults         `yaml:"defaults" doc:"settings applied to every node and interface"`
	Segments    []Segment         `yaml:"segments" lvs:"required,keyed" doc:"L2 broadcast domains: name -> segment"`
	Nodes       []Node            `yaml:"nodes" lvs:"required,keyed" doc:"hosts, each in its own network namespace: name -> node; name[1..3] expands to name1..name3 with {{i}} substituted"`
	Traffic     []Traffic         `yaml:"traffic" doc:"traffic generators"`
	Timeline    []Event           `yaml:"timeline" doc:"faults and actions, at a time or on an event"`
	Expect      []Expectation     `yaml:"expect" doc:"what must hold for the scenario to pass"`
	Capture     *Capture          `yaml:"capture" doc:"packet captures"`
	Report      *Report           `yaml:"report" doc:"report contents"`

	// File is the path the spec was loaded from ("" for in-memory specs).
	File string `yaml:"-"`
	// pos maps a field path (see Spec.Pos) to where it was written.
	pos map[string]Pos
}

// Source names the seed document a scenario reproduces and how its public
// addresses were mapped into documentation ranges.
type Source struct {
	Document   string           `yaml:"document" lvs:"required" doc:"the seed file, e.g. seeds/000_b9ebab0dbc6c4d1c.txt"`
	Section    string           `yaml:"section" doc:"the part of the document reproduced"`
	AddressMap []AddressMapping `yaml:"address_map" doc:"public addresses of the seed and the documentation addresses used instead"`
	Notes      string           `yaml:"notes" doc:"deviations from the seed and why"`
}

// AddressMapping maps a public prefix of the seed to a documentation prefix
// (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) used in the lab.
type AddressMapping struct {
	Seed netip.Prefix `yaml:"seed" lvs:"required" doc:"the address or prefix as the seed writes it"`
	Lab  netip.Prefix `yaml:"lab" lvs:"required" doc:"the documentation-range address or prefix used in this file"`
}

// Defaults apply to every node and interface unless they say otherwise.
type Defaults struct {
	RoleDefaults *bool     `yaml:"role_defaults" doc:"apply role defaults (routes, sysctls, lvsd, lvsrs); default true"`
	MTU          int       `yaml:"mtu" doc:"MTU of every interface without its own"`
	Offloads     []Offload `yaml:"offloads" lvs:"keyed" doc:"ethtool features of every interface: feature -> on|off"`
	IPv6         bool      `yaml:"ipv6" doc:"keep IPv6 enabled (default: disabled, so captures hold no router solicitations or DAD)"`
}

// Segment is an L2 broadcast domain: a bridge in a hidden namespace.
type Segment struct {
	Name              string         `yaml:"-" lvs:"key"`
	Description       string         `yaml:"description" doc:"what the segment stands for"`
	Subnets           []netip.Prefix `yaml:"subnets" doc:"IP subnets on this segment; every interface address must lie in one"`
	MTU               int            `yaml:"mtu" doc:"MTU of the bridge and of interfaces attached without their own"`
	MulticastSnooping *bool          `yaml:"multicast_snooping" doc:"bridge IGMP snooping (default off: VRRP multicast is flooded)"`
	Capture           *bool          `yaml:"capture" doc:"capture this segment (default: every segment when capture is configured)"`
}

// Role says what a node is; it selects the role defaults.
type Role string

// The roles.
const (
	RoleClient     Role = "client"
	RoleRouter     Role = "router"
	RoleDirector   Role = "director"
	RoleRealServer Role = "realserver"
	RoleHost       Role = "host"
)

func (Role) enumValues() []string {
	return []string{"client", "router", "director", "realserver", "host"}
}

// Node is one host in its own network namespace.
type Node struct {
	Name         string         `yaml:"-" lvs:"key"`
	Role         Role           `yaml:"role" lvs:"required" doc:"client, router, director, realserver or host (no defaults); a router gets ip_forward=1 and no rp_filter change: on an asymmetric DR/TUN path set net.ipv4.conf.all.rp_filter 0 or 2, since strict mode (1) drops the real servers' replies (source the VIP) arriving where the VIP is not routed (sim/README.md)"`
	Description  string         `yaml:"description" doc:"what the node stands for in the seed"`
	RoleDefaults *bool          `yaml:"role_defaults" doc:"apply this role's defaults (default: defaults.role_defaults)"`
	Interfaces   []Interface    `yaml:"interfaces" doc:"interfaces, each attached to a segment"`
	Loopback     []netip.Prefix `yaml:"loopback" doc:"extra addresses on lo (e.g. a VIP as /32)"`
	Routes       []Route        `yaml:"routes" doc:"static routes"`
	Neighbors    []Neighbor     `yaml:"neighbors" doc:"static neighbour (ARP) entries"`
	Sysctls      []Sysctl       `yaml:"sysctls" lvs:"keyed" doc:"net.* sysctls of the node: key -> value, applied before processes start"`
	Files        []File         `yaml:"files" lvs:"keyed" doc:"files written into the node's directory: path -> file; /etc/x means <node dir>/etc/x"`
	Processes    []Process      `yaml:"processes" doc:"processes started in the node"`
	Services     []Service      `yaml:"services" doc:"built-in services (http-echo, tcp-sink, udp-echo)"`
	Director     *Director      `yaml:"director" doc:"lvsd on this node (defaulted for role director)"`
	Keepalived   *Keepalived    `yaml:"keepalived" doc:"a keepalived daemon of this node, process keepalived, log nodes/NODE/keepalived.log: Debian's keepalived (VRRP only) or lvskeepalived (beside the node's lvsd)"`
	RealServer   *RealServer    `yaml:"realserver" doc:"lvsrs setup of this node (role realserver)"`
	FRR          *FRR           `yaml:"frr" doc:"FRR's zebra and ospfd on this node (processes zebra and ospfd): a router or a director announcing its VIPs by OSPF, seed 002's cluster mode"`
}

// FRR runs Debian's FRR routing daemons on a node: zebra (the node's
// routes into its kernel) and ospfd with the scenario's ospfd.conf, each
// with the namespace's own runtime directory (-N), as in
// reference/real-peers.md.
type FRR struct {
	OSPFD string `yaml:"ospfd" lvs:"required" doc:"ospfd.conf (relative to the scenario file), FRR's syntax: interface blocks, router ospf with network statements or per-interface areas"`
}

// Interface is one veth end in the node, its peer a port of the segment's
// bridge.
type Interface struct {
	Name      string         `yaml:"name" lvs:"required" doc:"interface name in the node, e.g. eth0"`
	Segment   string         `yaml:"segment" lvs:"required" doc:"the segment it is attached to"`
	Addresses []netip.Prefix `yaml:"addresses" doc:"addresses with prefix length, e.g. 10.0.0.2/24"`
	MAC       MAC            `yaml:"mac" doc:"hardware address (default: derived from lab, node and interface names)"`
	MTU       int            `yaml:"mtu" doc:"MTU (default: segment, then defaults.mtu, then 1500)"`
	Offloads  []Offload      `yaml:"offloads" lvs:"keyed" doc:"ethtool features: feature -> on|off (tso, gso, gro, lro, tx, rx, sg or kernel names)"`
	Down      bool           `yaml:"down" doc:"leave administratively down at start"`
}

// Offload is one ethtool feature setting.
type Offload struct {
	Feature string `yaml:"-" lvs:"key"`
	On      bool   `yaml:"on" lvs:"value" doc:"on or off"`
}

// Route is one static route.
type Route struct {
	Dst    RouteDst   `yaml:"dst" lvs:"required" doc:"default or a prefix"`
	Via    netip.Addr `yaml:"via" doc:"gateway; must be on a directly connected subnet"`
	Dev    string     `yaml:"dev" doc:"interface (required for on-link routes without via)"`
	Src    netip.Addr `yaml:"src" doc:"preferred source address"`
	Metric int        `yaml:"metric" doc:"route priority"`
	Type   RouteType  `yaml:"type" doc:"unicast (default), blackhole, unreachable or prohibit"`
}

// RouteType is the kernel route type.
type RouteType string

func (RouteType) enumValues() []string {
	return []string{"unicast", "blackhole", "unreachable", "prohibit"}
}

// Neighbor is a static neighbour entry.
type Neighbor struct {
	IP    netip.Addr `yaml:"ip" lvs:"required" doc:"the neighbour's IP address"`
	MAC   MAC        `yaml:"mac" doc:"its hardware address"`
	MACOf string     `yaml:"mac_of" doc:"take the hardware address of node:interface"`
	Dev   string     `yaml:"dev" doc:"interface (default: the one whose subnet holds ip)"`
}

// Sysctl is one net.* sysctl setting.
type Sysctl struct {
	Key   string `yaml:"-" lvs:"key"`
	Value string `yaml:"value" lvs:"value" doc:"the value written"`
}

// File is a file written into a node's directory before processes start.
type File struct {
	Path    string   `yaml:"-" lvs:"key"`
	Content *string  `yaml:"content" doc:"the file's text"`
	From    string   `yaml:"from" doc:"copy this file (relative to the scenario file)"`
	Mode    FileMode `yaml:"mode" doc:"permissions in octal, default 0644"`
}

// Process is a command started inside a node.
type Process struct {
	Name        string            `yaml:"name" lvs:"required" doc:"name, unique in the node; faults and checks say node/name"`
	Cmd         []string          `yaml:"cmd" doc:"argv; ${node}, ${node_dir}, ${run_dir}, ${lab} and ${bin_dir} are filled in at start"`
	Shell       string            `yaml:"shell" doc:"a script for /bin/sh -c (instead of cmd)"`
	Env         map[string]string `yaml:"env" doc:"extra environment"`
	Oneshot     bool              `yaml:"oneshot" doc:"a setup command: wait for it to exit 0 before starting the next process"`
	Autostart   *bool             `yaml:"autostart" doc:"start with the lab (default true); false: only by a process.start fault"`
	After       []string          `yaml:"after" doc:"processes (name or node/name) that must be ready first"`
	Ready       *Ready            `yaml:"ready" doc:"how to tell the process is ready"`
	StopSignal  Signal            `yaml:"stop_signal" doc:"signal sent at teardown (default TERM)"`
	StopTimeout Duration          `yaml:"stop_timeout" doc:"wait this long after stop_signal before KILL (default 2s)"`
}

// Ready is a readiness check; exactly one kind is given.
type Ready struct {
	TCP      string   `yaml:"tcp" doc:"host:port accepting connections (from inside the node)"`
	Unix     string   `yaml:"unix" doc:"unix socket accepting connections; @name is abstract (per namespace)"`
	File     string   `yaml:"file" doc:"file that exists (relative to the node directory)"`
	Command  []string `yaml:"command" doc:"command run in the node that exits 0"`
	Log      Regexp   `yaml:"log" doc:"regular expression matched against the process output"`
	Timeout  Duration `yaml:"timeout" doc:"give up after (default 10s)"`
	Interval Duration `yaml:"interval" doc:"poll interval (default 50ms)"`
}

// ServiceKind names a built-in service.
type ServiceKind string

// The built-in services.
const (
	ServiceHTTPEcho ServiceKind = "http-echo"
	ServiceTCPSink  ServiceKind = "tcp-sink"
	ServiceUDPEcho  ServiceKind = "udp-echo"
	// ServiceHTTPSEcho is http-echo over TLS (a self-signed certificate
	// made at start), for keepalived's SSL_GET.
	ServiceHTTPSEcho ServiceKind = "https-echo"
	// ServiceSMTPBanner greets with "220 IDENTITY", answers HELO/EHLO with
	// 250 and QUIT with 221, for keepalived's SMTP_CHECK.
	ServiceSMTPBanner ServiceKind = "smtp-banner"
	// ServiceVsftpd runs the real vsftpd: anonymous downloads of
	// /SIZE.bin files, the identity in its 220 banner.
	ServiceVsftpd ServiceKind = "vsftpd"
	// ServiceDnsmasq runs the real dnsmasq: a TXT record whoami.lvslab
	// answered with the identity.
	ServiceDnsmasq ServiceKind = "dnsmasq"
)

func (ServiceKind) enumValues() []string {
	return []string{"http-echo", "tcp-sink", "udp-echo", "https-echo", "smtp-banner", "vsftpd", "dnsmasq"}
}

// NamesBackend says whether clients learn the service's identity from its
// answers (so shares: and backends: can count them).
func (k ServiceKind) NamesBackend() bool {
	switch k {
	case ServiceHTTPEcho, ServiceHTTPSEcho, ServiceUDPEcho, ServiceVsftpd, ServiceDnsmasq:
		return true
	}
	return false
}

// Service is a built-in server run as a process of the node.
type Service struct {
	Kind     ServiceKind `yaml:"kind" lvs:"required" doc:"http-echo (answers with its identity), https-echo (the same over TLS), smtp-banner (220 greeting, HELO/QUIT), tcp-sink (checksums what it receives), udp-echo, vsftpd (the real FTP server: /4096.bin, /65536.bin, /1048576.bin, /10485760.bin; identity in the banner), dnsmasq (the real DNS server: TXT whoami.lvslab is the identity)"`
	Name     string      `yaml:"name" doc:"process name (default: the kind)"`
	Listen   Listen      `yaml:"listen" lvs:"required" doc:"address and port, e.g. :80 or 0.0.0.0:8080"`
	Identity string      `yaml:"identity" doc:"the name it answers with (default: the node name)"`
	Status   int         `yaml:"status" doc:"http-echo, https-echo: response status (default 200); smtp-banner: greeting code (default 220); a service.set fault changes it"`
	Delay    Duration    `yaml:"delay" doc:"http-echo, https-echo, smtp-banner: wait this long before answering (default 0); a service.set fault changes it"`
	Body     *string     `yaml:"body" doc:"http-echo, https-echo: response body (default: the identity and a newline); a service.set fault changes it"`
	TOA      bool        `yaml:"toa" doc:"http-echo: read the TOA option a FULLNAT director adds and report the client address in the X-Lvslab-Toa-Client header (as toa.ko would make getpeername() do)"`
}

// Director runs lvsd on a node.
type Director struct {
	Run        *bool    `yaml:"run" doc:"start lvsd (default true)"`
	Binary     string   `yaml:"binary" doc:"program (default lvsd from the bin directory)"`
	Interfaces []string `yaml:"interfaces" doc:"interfaces lvsd serves (default: all of the node's)"`
	Rules      []string `yaml:"rules" doc:"ipvsadm command lines (a leading ipvsadm or lvsadm is allowed)"`
	RulesFile  string   `yaml:"rules_file" doc:"ipvsadm -S format file (relative to the scenario file)"`
	Keepalived string   `yaml:"keepalived" doc:"keepalived.conf (relative to the scenario file): lvskeepalived runs beside lvsd with it (checked by lvskeepalived's parser)"`
	// KeepalivedArgs are appended to lvskeepalived's command line.
	KeepalivedArgs []string `yaml:"keepalived_args" doc:"extra lvskeepalived flags"`
	Flags          []string `yaml:"flags" doc:"extra lvsd flags"`
	Socket         string   `yaml:"socket" doc:"control socket name (default @lvsd)"`
	Forwarding     *bool    `yaml:"ip_forward" doc:"net.ipv4.ip_forward (default: on with NAT real servers, otherwise off)"`
}

// KeepalivedImpl names the program a node's keepalived: runs.
type KeepalivedImpl string

// The keepalived implementations.
const (
	// ImplKeepalived is Debian's keepalived 2.2.7, VRRP only (keepalived
	// -P: the lab's kernels have no ip_vs for its checkers).
	ImplKeepalived KeepalivedImpl = "keepalived"
	// ImplLVSKeepalived is lvskeepalived beside the node's lvsd, which it
	// programs over lvsd's control socket.
	ImplLVSKeepalived KeepalivedImpl = "lvskeepalived"
)

func (KeepalivedImpl) enumValues() []string { return []string{"keepalived", "lvskeepalived"} }

// Keepalived is the keepalived daemon of a node, run as keepalived runs in
// production: in the foreground of its process group, from its own
// keepalived.conf, logging to the console (the lab's process log). The
// process is named keepalived whichever implementation runs it, so faults
// (process.kill target: NODE/keepalived) and log triggers stay the same
// when a scenario swaps one implementation for the other.
type Keepalived struct {
	Implementation KeepalivedImpl `yaml:"implementation" doc:"keepalived (default: Debian's keepalived, VRRP only, keepalived -P -n -l -D -G) or lvskeepalived (beside the node's lvsd, a director)"`
	Config         string         `yaml:"config" lvs:"required" doc:"keepalived.conf (relative to the scenario file), checked at validation by lvskeepalived's parser with the node's interfaces"`
	Args           []string       `yaml:"args" doc:"extra command-line flags"`
	Editable       bool           `yaml:"editable" doc:"run from a copy in the node directory (nodes/N/keepalived.conf), so an exec fault can edit it before a reload (process.kill signal HUP); the file may include nothing"`
}

// Impl is the implementation, defaulted.
func (k *Keepalived) Impl() KeepalivedImpl {
	if k.Implementation == "" {
		return ImplKeepalived
	}
	return k.Implementation
}

// RSMode is the forwarding method a real server is prepared for.
type RSMode string

// The real-server modes (lvsrs --mode).
const (
	ModeDR  RSMode = "dr"
	ModeTUN RSMode = "tun"
	ModeNAT RSMode = "nat"
)

func (RSMode) enumValues() []string { return []string{"dr", "tun", "nat"} }

// RealServer prepares a node with lvsrs start.
type RealServer struct {
	Mode  RSMode       `yaml:"mode" lvs:"required" doc:"dr, tun or nat"`
	Run   *bool        `yaml:"run" doc:"run lvsrs start (default true)"`
	VIPs  []netip.Addr `yaml:"vips" doc:"virtual addresses (default: services of directors' rules naming this node)"`
	Iface string       `yaml:"iface" doc:"interface facing the director (default: the one holding the address the rules name)"`
	DIP   netip.Addr   `yaml:"dip" doc:"nat: director address used as default gateway (default: the director's address on the shared subnet)"`
	Label string       `yaml:"label" doc:"address label for the VIPs, e.g. lo:0"`
}

// TrafficKind names a traffic generator.
type TrafficKind string

// The traffic generators.
const (
	TrafficHTTP       TrafficKind = "http"
	TrafficTCPStream  TrafficKind = "tcp-stream"
	TrafficTCPConnect TrafficKind = "tcp-connect"
	TrafficUDP        TrafficKind = "udp"
	TrafficICMP       TrafficKind = "icmp"
	// TrafficFTP downloads from a vsftpd with curl, one control connection
	// per request.
	TrafficFTP TrafficKind = "ftp"
	// TrafficDNS asks a dnsmasq for TXT whoami.lvslab, one query per
	// request from a fresh socket.
	TrafficDNS TrafficKind = "dns"
)

func (TrafficKind) enumValues() []string {
	return []string{"http", "tcp-stream", "tcp-connect", "udp", "icmp", "ftp", "dns"}
}

// NamesBackend says whether the traffic's records name the backend that
// answered (so shares: and backends: apply).
func (k TrafficKind) NamesBackend() bool {
	switch k {
	case TrafficHTTP, TrafficUDP, TrafficFTP, TrafficDNS:
		return true
	}
	return false
}

// FTPMode is how ftp traffic opens its data connections.
type FTPMode string

// The FTP modes.
const (
	// FTPPassive: PASV, connecting where the 227 reply says (curl
	// --disable-epsv --no-ftp-skip-pasv-ip, as classic clients do).
	FTPPassive FTPMode = "passive"
	// FTPEPSV: EPSV, connecting to the control connection's address.
	FTPEPSV FTPMode = "epsv"
	// FTPActive: PORT, the server connects back (curl -P - --disable-eprt).
	FTPActive FTPMode = "active"
	// FTPEPRT: EPRT, the server connects back.
	FTPEPRT FTPMode = "eprt"
)

func (FTPMode) enumValues() []string { return []string{"passive", "epsv", "active", "eprt"} }

// Jitter is how a traffic generator spaces its requests.
type Jitter string

// The jitter kinds.
const (
	// JitterNone: exactly every 1/rate from start:, on the timeline's
	// clock (so a fault at 4s meets the request that starts at 4.000s).
	JitterNone Jitter = "none"
	// JitterUniform: one request at a uniformly random point of each
	// 1/rate slot: the rate is exact over any second, the phase is not.
	JitterUniform Jitter = "uniform"
	// JitterPoisson: exponentially distributed gaps with mean 1/rate
	// (independent arrivals, as many clients make).
	JitterPoisson Jitter = "poisson"
)

func (Jitter) enumValues() []string { return []string{"none", "uniform", "poisson"} }

// JitterFor is the jitter a traffic entry gets when it names none: poisson
// under APIVersion, none under v1alpha1.
func JitterFor(apiVersion string) Jitter {
	if apiVersion == APIVersion {
		return JitterPoisson
	}
	return JitterNone
}

// Traffic is one traffic generator running in a node.
type Traffic struct {
	Name          string      `yaml:"name" lvs:"required" doc:"name used by metrics (name.max_gap, ...)"`
	From          string      `yaml:"from" lvs:"required" doc:"node it runs in"`
	Kind          TrafficKind `yaml:"kind" lvs:"required" doc:"http (request/response, records the answering backend), tcp-stream (long-lived, payload integrity), tcp-connect, udp, icmp, ftp (curl downloads payload: bytes from a vsftpd, verify: checks them), dns (TXT queries to a dnsmasq)"`
	Target        string      `yaml:"target" lvs:"required" doc:"http: URL; tcp/udp: addr:port; icmp: addr"`
	Source        netip.Addr  `yaml:"source" doc:"source address to bind"`
	Rate          Rate        `yaml:"rate" doc:"requests, connections or datagrams per time unit, e.g. 50/s"`
	Jitter        Jitter      `yaml:"jitter" doc:"request spacing, random from seed: none (exact 1/rate steps), uniform (one request at a random point of each 1/rate slot) or poisson (exponential gaps, mean 1/rate); default poisson under apiVersion lvslab/v1alpha2, none under v1alpha1"`
	Concurrency   int         `yaml:"concurrency" doc:"requests in flight at most (default 1)"`
	Count         int         `yaml:"count" doc:"stop after this many requests (default: run until stop)"`
	Streams       int         `yaml:"streams" doc:"tcp-stream: parallel connections (default 1)"`
	Payload       Size        `yaml:"payload" doc:"bytes per request, datagram or stream chunk"`
	Verify        bool        `yaml:"verify" doc:"check payload integrity end to end (tcp-sink digest, udp echo)"`
	NewConnection *bool       `yaml:"new_connection" doc:"http: a new TCP connection per request (default true)"`
	FTPMode       FTPMode     `yaml:"ftp_mode" doc:"ftp: passive (PASV, to the 227 reply's address), epsv, active (PORT) or eprt (default passive)"`
	Timeout       Duration    `yaml:"timeout" doc:"per request (default 1s)"`
	Start         Duration    `yaml:"start" doc:"start offset from the beginning of traffic"`
	Stop          Duration    `yaml:"stop" doc:"stop offset (default: duration)"`
}

// FaultKind names a timeline action.
type FaultKind string

// The fault kinds.
const (
	FaultProcessKill    FaultKind = "process.kill"
	FaultProcessStop    FaultKind = "process.stop"
	FaultProcessCont    FaultKind = "process.cont"
	FaultProcessStart   FaultKind = "process.start"
	FaultProcessRestart FaultKind = "process.restart"
	FaultLinkDown       FaultKind = "link.down"
	FaultLinkUp         FaultKind = "link.up"
	FaultBlackhole      FaultKind = "blackhole"
	FaultPartition      FaultKind = "partition"
	FaultLoss           FaultKind = "loss"
	FaultRate           FaultKind = "rate"
	FaultDelay          FaultKind = "delay"
	FaultSysctl         FaultKind = "sysctl"
	FaultARPFlush       FaultKind = "arp.flush"
	FaultNeighWrong     FaultKind = "neigh.wrong"
	FaultExec           FaultKind = "exec"
	// FaultServiceSet changes a built-in service's answers (status, delay,
	// body) while it runs: a real server made slow or failing without
	// killing it (seed 000's disk-I/O case).
	FaultServiceSet FaultKind = "service.set"
	// FaultNodeKill signals every process of a node at once (the whole
	// director: lvsd and its keepalived); for: starts them again.
	FaultNodeKill FaultKind = "node.kill"
)

func (FaultKind) enumValues() []string {
	return []string{
		"process.kill", "process.stop", "process.cont", "process.start", "process.restart",
		"link.down", "link.up", "blackhole", "partition", "loss", "rate", "delay",
		"sysctl", "arp.flush", "neigh.wrong", "exec", "service.set", "node.kill",
	}
}

// Direction says which way an impairment applies, seen from the target
// interface.
type Direction string

func (Direction) enumValues() []string { return []string{"ingress", "egress", "both"} }

// Event is one entry of the fault timeline: at a time or when something
// happens, do one thing, optionally undone after For.
type Event struct {
	Name      string     `yaml:"name" lvs:"required" doc:"name; expectations refer to name and name.end"`
	At        *Duration  `yaml:"at" doc:"time after traffic starts"`
	When      *Trigger   `yaml:"when" doc:"fire on an event instead of at a time"`
	Fault     FaultKind  `yaml:"fault" lvs:"required" doc:"what to do"`
	Target    string     `yaml:"target" doc:"node, node:interface or node/process, depending on the fault"`
	Segment   string     `yaml:"segment" doc:"blackhole, loss: every node interface on this segment (instead of target)"`
	For       Duration   `yaml:"for" doc:"undo after this long (emits name.end)"`
	Signal    Signal     `yaml:"signal" doc:"process.kill, node.kill: signal (default KILL)"`
	Between   []string   `yaml:"between" lvs:"pair" doc:"partition: the two sides (node or node:interface)"`
	Proto     string     `yaml:"proto" doc:"partition, blackhole, loss: only this protocol (tcp, udp, icmp, vrrp (IP protocols 112 and 51, VRRP and keepalived's AH), arp or a number)"`
	Direction Direction  `yaml:"direction" doc:"loss, rate, delay, blackhole: ingress, egress or both (default both)"`
	Loss      Percent    `yaml:"loss" doc:"loss: probability a packet is dropped"`
	Rate      Bandwidth  `yaml:"rate" doc:"rate: bandwidth limit"`
	Burst     Size       `yaml:"burst" doc:"rate: bucket size (default 32KiB)"`
	Delay     Duration   `yaml:"delay" doc:"delay: added latency; service.set: wait before answering"`
	Jitter    Duration   `yaml:"jitter" doc:"delay: latency variation"`
	Set       []Sysctl   `yaml:"set" lvs:"keyed" doc:"sysctl: key -> value"`
	IP        netip.Addr `yaml:"ip" doc:"arp.flush: only this entry; neigh.wrong: the neighbour's address"`
	MAC       MAC        `yaml:"mac" doc:"neigh.wrong: the wrong hardware address"`
	MACOf     string     `yaml:"mac_of" doc:"neigh.wrong: use the hardware address of node:interface"`
	Dev       string     `yaml:"dev" doc:"arp.flush, neigh.wrong: interface"`
	Cmd       []string   `yaml:"cmd" doc:"exec: argv run in the target node"`
	Shell     string     `yaml:"shell" doc:"exec: script for /bin/sh -c"`
	Status    int        `yaml:"status" doc:"service.set: HTTP status (smtp-banner: greeting code)"`
	Body      *string    `yaml:"body" doc:"service.set: HTTP response body"`
}

// Trigger fires an event when something is observed.
type Trigger struct {
	Event   string      `yaml:"event" doc:"another event's name, or name.end"`
	Log     *LogMatch   `yaml:"log" doc:"a line of a process's output"`
	State   *StateCheck `yaml:"state" doc:"a state becoming true"`
	Since   string      `yaml:"since" doc:"log, state: watch only from this event on (name or name.end): a state already true then fires at once, and only log lines written after it count"`
	After   Duration    `yaml:"after" doc:"wait this long after the trigger"`
	Timeout Duration    `yaml:"timeout" doc:"give up (the event never fires) after this long"`
}

// LogMatch is a regular expression over one process's output.
type LogMatch struct {
	Process string `yaml:"process" lvs:"required" doc:"node/process"`
	Match   Regexp `yaml:"match" lvs:"required" doc:"regular expression"`
}

// Severity says whether a failed expectation fails the run.
type Severity string

func (Severity) enumValues() []string { return []string{"fail", "warn"} }

// Expectation is one check. Exactly one of metric, shares, state, pcap,
// process is given; metric and pcap take one comparison (eq, ne, lt, le, gt,
// ge).
type Expectation struct {
	Name        string         `yaml:"name" lvs:"required" doc:"name in the report"`
	Description string         `yaml:"description" doc:"what it shows"`
	During      []Duration     `yaml:"during" lvs:"pair" doc:"window [from, to] relative to traffic start"`
	After       string         `yaml:"after" doc:"window starts at this event (name or name.end)"`
	Within      Duration       `yaml:"within" doc:"window length after the event; for state checks: must become true within"`
	Severity    Severity       `yaml:"severity" doc:"fail (default) or warn"`
	XFail       string         `yaml:"xfail" doc:"expected to fail, with the reason (a demonstration of a documented failure)"`
	Metric      string         `yaml:"metric" doc:"traffic.metric or traffic.metric[backend]: requests, errors, error_ratio, max_gap, latency_p50, latency_p99, latency_max, share, backends (distinct backends that answered), max_share (the largest backend's share), broken_streams, bytes"`
	Shares      *Shares        `yaml:"shares" doc:"distribution of requests over backends"`
	Backends    *BackendsCheck `yaml:"backends" doc:"which backends answered: only some (failover), or one per client (persistence)"`
	AllowEmpty  bool           `yaml:"allow_empty" doc:"pass an errors, broken_streams or backends check that judged no records (no request in the window, no stream ever connected); without it such a check fails"`
	State       *StateCheck    `yaml:"state" doc:"addresses, neighbours or routes of a node"`
	Pcap        *PcapCheck     `yaml:"pcap" doc:"count packets in a capture"`
	Process     *ProcessCheck  `yaml:"process" doc:"state of a process at the end"`
	VRRP        *VRRPCheck     `yaml:"vrrp" doc:"who was MASTER of a VRID on a segment, as its adverts on the wire show (masters, master), sampled every 200ms"`
	VIP         *VIPCheck      `yaml:"vip" doc:"who holds a virtual address: ARP-probed from its segment every 200ms (holders, holder), or the gratuitous ARPs seen for it (garps, with eq/ge/...)"`
	Eq          *Quantity      `yaml:"eq" doc:"equal to"`
	Ne          *Quantity      `yaml:"ne" doc:"not equal to"`
	Lt          *Quantity      `yaml:"lt" doc:"less than"`
	Le          *Quantity      `yaml:"le" doc:"at most"`
	Gt          *Quantity      `yaml:"gt" doc:"greater than"`
	Ge          *Quantity      `yaml:"ge" doc:"at least"`
}

// Shares checks how requests spread over backends.
type Shares struct {
	Traffic   string   `yaml:"traffic" lvs:"required" doc:"http or udp traffic name"`
	Weights   []Weight `yaml:"weights" lvs:"keyed" doc:"backend identity -> relative weight (1 and 2 mean 33% and 67%)"`
	Even      bool     `yaml:"even" doc:"every backend of the traffic gets the same share"`
	Tolerance Percent  `yaml:"tolerance" doc:"allowed deviation in percentage points (default 10%)"`
}

// BackendsCheck says which backends answered the requests of one or more
// traffic entries in the window.
type BackendsCheck struct {
	Traffic   []string `yaml:"traffic" lvs:"required" doc:"http or udp traffic names (one per client node, or one)"`
	Only      []string `yaml:"only" doc:"no backend but these answered in the window (e.g. the survivors after a real server was killed)"`
	PerClient bool     `yaml:"per_client" doc:"all successful requests of each client (source address) went to one backend (persistence)"`
}

// Weight is one backend's expected relative share.
type Weight struct {
	Backend string  `yaml:"-" lvs:"key"`
	Weight  float64 `yaml:"weight" lvs:"value" doc:"relative weight"`
}

// StateCheck is a check of state in a node; exactly one kind.
type StateCheck struct {
	Addr     *AddrCheck    `yaml:"addr" doc:"an address is (or is not) on a node"`
	Neighbor *NeighCheck   `yaml:"neighbor" doc:"a neighbour entry points at a hardware address"`
	Route    *RouteCheck   `yaml:"route" doc:"a route is (or is not) present"`
	Command  *CommandCheck `yaml:"command" doc:"a command's output or exit status (lvsadm -L --timeout, ...)"`
}

// CommandCheck runs a command in a node and checks what it says.
type CommandCheck struct {
	Node     string   `yaml:"node" lvs:"required" doc:"node the command runs in"`
	Cmd      []string `yaml:"cmd" doc:"argv"`
	Shell    string   `yaml:"shell" doc:"script for /bin/sh -c (instead of cmd)"`
	Match    Regexp   `yaml:"match" doc:"regular expression (Go RE2) the output must match somewhere; ^ and $ anchor the whole output (stdout and stderr together), start the expression with (?m) to anchor each line"`
	NoMatch  Regexp   `yaml:"no_match" doc:"regular expression the output must not match anywhere; ^ and $ as for match"`
	ExitCode *int     `yaml:"exit_code" doc:"expected exit status (default 0)"`
}

// AddrCheck checks an address on a node.
type AddrCheck struct {
	Node  string     `yaml:"node" lvs:"required" doc:"node"`
	Dev   string     `yaml:"dev" doc:"interface (default: any)"`
	Has   netip.Addr `yaml:"has" doc:"the node holds this address"`
	Lacks netip.Addr `yaml:"lacks" doc:"the node does not hold this address"`
}

// NeighCheck checks a neighbour entry.
type NeighCheck struct {
	Node   string     `yaml:"node" lvs:"required" doc:"node whose table is read"`
	IP     netip.Addr `yaml:"ip" lvs:"required" doc:"the neighbour's address"`
	MAC    MAC        `yaml:"mac" doc:"expected hardware address"`
	MACOf  []string   `yaml:"mac_of" doc:"expected: the hardware address of one of these node:interface"`
	Absent bool       `yaml:"absent" doc:"there is no usable entry"`
}

// RouteCheck checks a route.
type RouteCheck struct {
	Node   string     `yaml:"node" lvs:"required" doc:"node"`
	Dst    RouteDst   `yaml:"dst" lvs:"required" doc:"default or a prefix"`
	Via    netip.Addr `yaml:"via" doc:"expected gateway"`
	Dev    string     `yaml:"dev" doc:"expected interface"`
	Absent bool       `yaml:"absent" doc:"the route is not there"`
}

// PcapCheck counts captured packets matching a filter.
type PcapCheck struct {
	Segment   string `yaml:"segment" doc:"segment capture to read"`
	Interface string `yaml:"interface" doc:"or a node:interface"`
	Filter    string `yaml:"filter" lvs:"required" doc:"Wireshark display filter (tshark -Y)"`
}

// VIPCheck is about one virtual address on its segment. The lab probes it
// from the segment itself (its bridge) every VIPProbeInterval with an ARP
// probe (RFC 5227: sender IP 0.0.0.0, so no node's neighbour table learns
// anything from the probe or its answer) and counts the hardware addresses
// that answer; the VRRP observer also sees every gratuitous ARP. Exactly
// one of holders, holder and garps.
type VIPCheck struct {
	Address netip.Addr `yaml:"address" lvs:"required" doc:"the virtual address"`
	Segment string     `yaml:"segment" doc:"the segment it lives on (default: the one whose subnet holds address)"`
	Holders *int       `yaml:"holders" doc:"every probe of the window was answered by exactly this many hardware addresses (1: no split brain, no outage)"`
	Holder  string     `yaml:"holder" doc:"this node answers the probes alone by the end of the window and from then on to its end (which node answered ARP for the VIP)"`
	GARPs   bool       `yaml:"garps" doc:"count the gratuitous ARPs for address in the window, compared with eq, ge, ..."`
	From    string     `yaml:"from" doc:"garps: only those sent by this node"`
}

// VRRPCheck is about one VRID on one segment, from the adverts the VRRP
// observer reads off the wire: a sender is MASTER from its first advert to
// its last plus one advert interval (a priority-0 advert ends that at
// once). Exactly one of masters, master and routers.
type VRRPCheck struct {
	Segment string   `yaml:"segment" lvs:"required" doc:"the segment"`
	VRID    int      `yaml:"vrid" lvs:"required" doc:"virtual_router_id, 1..255"`
	Masters *int     `yaml:"masters" doc:"every 200ms of the window exactly this many senders advertised the VRID (1: no split brain, and no two routers sharing the VRID)"`
	Master  string   `yaml:"master" doc:"this node advertises the VRID alone by the end of the window and from then on to its end"`
	Routers []string `yaml:"routers" doc:"no node but these sent adverts of the VRID in the window (one VRID, one virtual router: another pair using it is a configuration mistake)"`
}

// VIPProbeInterval is how often a vip: expectation's address is ARP-probed.
const VIPProbeInterval = 200 * time.Millisecond

// ProcState is a process's state at the end of a run.
type ProcState string

func (ProcState) enumValues() []string { return []string{"running", "exited", "signaled"} }

// ProcessCheck checks one process at the end of the run.
type ProcessCheck struct {
	Target   string    `yaml:"target" lvs:"required" doc:"node/process"`
	State    ProcState `yaml:"state" lvs:"required" doc:"running, exited or signaled"`
	ExitCode *int      `yaml:"exit_code" doc:"exited: with this code"`
}

// Capture configures packet captures.
type Capture struct {
	Segments   []string `yaml:"segments" doc:"segments to capture (default: all not marked capture: false)"`
	Interfaces []string `yaml:"interfaces" doc:"node:interface captures in addition"`
	Snaplen    int      `yaml:"snaplen" doc:"bytes kept per packet (default 262144)"`
	Ring       Size     `yaml:"ring" doc:"capture buffer per socket (default 2MiB)"`
}

// ReportFormat names a report artefact.
type ReportFormat string

func (ReportFormat) enumValues() []string {
	return []string{"json", "junit", "markdown", "pcapng", "timeline", "logs", "resolved-spec"}
}

// Report configures the report directory.
type Report struct {
	Formats  []ReportFormat  `yaml:"formats" doc:"artefacts to write (default: all)"`
	Walk     *Walk           `yaml:"walk" doc:"hop-by-hop view of one request"`
	Timeline *TimelineReport `yaml:"timeline" doc:"how timeline.svg splits the requests"`
}

// TimelineReport tunes the timeline picture.
type TimelineReport struct {
	Split TimelineSplit `yaml:"split" doc:"backend (default: one band per backend) or client (one band per traffic entry and backend, for persistence scenarios)"`
}

// TimelineSplit is what the timeline's bands stand for.
type TimelineSplit string

// The timeline splits.
const (
	SplitBackend TimelineSplit = "backend"
	SplitClient  TimelineSplit = "client"
)

func (TimelineSplit) enumValues() []string { return []string{"backend", "client"} }

// Walk selects the request shown hop by hop.
type Walk struct {
	Traffic string `yaml:"traffic" lvs:"required" doc:"traffic name"`
	Request int    `yaml:"request" doc:"which request (1-based, default 1)"`
}
