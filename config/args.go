package config

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
)

// ArgError is a command-line error worded as ipvsadm words it.
type ArgError struct {
	Msg string
	// TryHelp is set where ipvsadm answers with its "Try `ipvsadm -h'" hint
	// (and exit status 255): no command first, or a bad first option.
	TryHelp bool
}

func (e *ArgError) Error() string { return e.Msg }

func argErrorf(format string, a ...any) error {
	return &ArgError{Msg: fmt.Sprintf(format, a...)}
}

// Parser parses ipvsadm command lines.
type Parser struct {
	// Names resolves host names in -t/-u/-r and service names in ports.
	// Nil accepts numeric addresses and ports only.
	Names *Names
}

// ParseArgs parses an ipvsadm command line (without the program name),
// resolving names from /etc/hosts and /etc/services only. See
// Parser.ParseArgs.
func ParseArgs(args []string) (Command, error) {
	return Parser{Names: SystemNames()}.ParseArgs(args)
}

// ParseArgs parses an ipvsadm 1.31 command line (without the program name).
// No arguments at all means "-L" (list everything, names resolved).
//
// As ipvsadm: long and short options, clustered short options (-Ln, -lnc,
// -At), option values attached (-p600, -t1.2.3.4:80, --weight=3) or in the
// next argument, -p with an optional value (taken from the next argument
// unless that starts with '-'), the command as the first option, the option
// legality table of ipvsadm (commands_v_options) and its error messages.
//
// Deliberate differences:
//   - A leading en or em dash stands for the option prefix it replaced in
//     copy-pasted text ("–A", "–set"), so the seed documents' commands work.
//   - Options are interpreted independently of their order where ipvsadm's
//     result depends on it by accident (-r before -t, -M before -t).
//   - -s and --pe names are checked here rather than by the kernel.
//   - -M also takes a prefix length (-M 24, -M /24); masks must be contiguous.
//   - "[1.2.3.4]:80" keeps its port (ipvsadm drops it).
//   - --fullnat selects the FULLNAT method (the alibaba/DPVS spelling), and
//     so does -b in a real-server command (-a -e -d), as in the FULLNAT
//     fork's ipvsadm; in a service command -b stays --sched-flags.
//   - The fork's local-address commands: -P/--add-laddr and
//     -Q/--del-laddr with -z/--laddr LADDR, and -G/--get-laddr.
func (p Parser) ParseArgs(args []string) (Command, error) {
	if len(args) == 0 {
		return Command{Op: OpList}, nil
	}
	st := argState{p: p, tk: tokenizer{args: args}}
	return st.parse()
}

type argKind uint8

const (
	argNone argKind = iota
	argRequired
	argOptional
)

// optID names each option ipvsadm knows.
type optID uint8

const (
	idCommand optID = iota
	idTCP
	idUDP
	idSCTP
	idFwmark
	idSched
	idPersist
	idNetmask
	idReal
	idMasq
	idIPIP
	idGate
	idFullNAT
	idWeight
	idUThresh
	idLThresh
	idNumeric
	idConn
	idMcastIf
	idSyncID
	idTimeout
	idDaemon
	idStats
	idRate
	idThresholds
	idPersistConn
	idNoSort
	idSort
	idExact
	idIPv6
	idOps
	idPE
	idSchedFlags
	idMcastGroup
	idMcastPort
	idMcastTTL
	idSyncMaxlen
	idTunInfo
	idTunType
	idTunPort
	idTunNoCsum
	idTunCsum
	idTunRemCsum
	idDefense
	idSynProxy
	idLaddr
)

// Columns of the legality table, in ipvsadm's OPTC_* order.
const (
	colNumeric = iota
	colConnection
	colService
	colScheduler
	colPersistent
	colNetmask
	colServer
	colForward
	colWeight
	colUThreshold
	colLThreshold
	colMcast
	colTimeout
	colDaemon
	colStats
	colRate
	colThresholds
	colPersistentConn
	colNoSort
	colSyncID
	colExact
	colOnePacket
	colPE
	colSchedFlags
	colMcastGroup
	colMcastPort
	colMcastTTL
	colSyncMaxlen
	colTunInfo
	colTunType
	colTunPort
	colTunNoCsum
	colTunCsum
	colTunRemCsum
	colDefense // lvsd's own: -L --defense
	colLaddr   // the FULLNAT fork's -z/--laddr
	numCols
	colNone = -1
)

// colNames are ipvsadm's optnames, used in its messages.
var colNames = [numCols]string{
	"numeric", "connection", "service-address", "scheduler", "persistent",
	"netmask", "real-server", "forwarding-method", "weight", "u-threshold",
	"l-threshold", "mcast-interface", "timeout", "daemon", "stats", "rate",
	"thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
	"sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen",
	"tun-info", "tun-type", "tun-port", "tun-nocsum", "tun-csum", "tun-remcsum",
	"defense", "local-address",
}

// legality is ipvsadm's commands_v_options, one row per Op (OpAddService
// first), one column per col*: '+' compulsory, 'x' illegal, '1' at most one
// of the '1' options, ' ' optional.
var legality = [...]string{
	OpAddService - 1:    "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx",
	OpEditService - 1:   "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx",
	OpDeleteService - 1: "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	OpClear - 1:         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	OpList - 1:          " 11xxxxxxxxx11       xxxxxxx xxxxx1x",
	OpAddDest - 1:       "xx+xxx+    xxxxxxxxxxxxxxxxxx     xx",
	OpDeleteDest - 1:    "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	OpEditDest - 1:      "xx+xxx+    xxxxxxxxxxxxxxxxxx     xx",
	OpSetTimeouts - 1:   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	OpStartDaemon - 1:   "xxxxxxxxxxx xxxxxxx xxxx    xxxxxxxx",
	OpStopDaemon - 1:    "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxxx",
	OpRestore - 1:       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	OpSave - 1:          " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	OpZero - 1:          "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	OpSetDefense - 1:    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	// The fork's ADDLADDR, DELLADDR, GETLADDR rows.
	OpAddLaddr - 1: "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+",
	OpDelLaddr - 1: "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+",
	OpGetLaddr - 1: "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
}

// tunLegality is ipvsadm's tunnel_types_v_options: per TunType, the columns
// tun-port, tun-nocsum, tun-csum, tun-remcsum.
var tunLegality = [...]string{
	TunIPIP: "xxxx",
	TunGUE:  "+111",
	TunGRE:  "x11x",
}

var tunCols = [4]int{colTunPort, colTunNoCsum, colTunCsum, colTunRemCsum}

type optDef struct {
	long  string
	short byte
	arg   argKind
	id    optID
	col   int
	cmd   Op // for idCommand
}

var optDefs = []optDef{
	{"add-service", 'A', argNone, idCommand, colNone, OpAddService},
	{"edit-service", 'E', argNone, idCommand, colNone, OpEditService},
	{"delete-service", 'D', argNone, idCommand, colNone, OpDeleteService},
	{"clear", 'C', argNone, idCommand, colNone, OpClear},
	{"list", 'L', argNone, idCommand, colNone, OpList},
	{"", 'l', argNone, idCommand, colNone, OpList},
	{"zero", 'Z', argNone, idCommand, colNone, OpZero},
	{"add-server", 'a', argNone, idCommand, colNone, OpAddDest},
	{"edit-server", 'e', argNone, idCommand, colNone, OpEditDest},
	{"delete-server", 'd', argNone, idCommand, colNone, OpDeleteDest},
	{"set", 0, argNone, idCommand, colNone, OpSetTimeouts},
	{"set-defense", 0, argNone, idCommand, colNone, OpSetDefense},
	{"defense", 0, argNone, idDefense, colDefense, 0},
	{"help", 'h', argNone, idCommand, colNone, OpHelp},
	{"version", 'v', argNone, idCommand, colNone, OpVersion},
	{"restore", 'R', argNone, idCommand, colNone, OpRestore},
	{"add-laddr", 'P', argNone, idCommand, colNone, OpAddLaddr},
	{"del-laddr", 'Q', argNone, idCommand, colNone, OpDelLaddr},
	{"get-laddr", 'G', argNone, idCommand, colNone, OpGetLaddr},
	{"laddr", 'z', argRequired, idLaddr, colLaddr, 0},
	{"save", 'S', argNone, idCommand, colNone, OpSave},
	{"start-daemon", 0, argRequired, idCommand, colNone, OpStartDaemon},
	{"stop-daemon", 0, argRequired, idCommand, colNone, OpStopDaemon},
	{"tcp-service", 't', argRequired, idTCP, colService, 0},
	{"udp-service", 'u', argRequired, idUDP, colService, 0},
	{"sctp-service", 0, argRequired, idSCTP, colService, 0},
	{"fwmark-service", 'f', argRequired, idFwmark, colService, 0},
	{"scheduler", 's', argRequired, idSched, colScheduler, 0},
	{"persistent", 'p', argOptional, idPersist, colPersistent, 0},
	{"netmask", 'M', argRequired, idNetmask, colNetmask, 0},
	{"real-server", 'r', argRequired, idReal, colServer, 0},
	{"masquerading", 'm', argNone, idMasq, colForward, 0},
	{"ipip", 'i', argNone, idIPIP, colForward, 0},
	{"gatewaying", 'g', argNone, idGate, colForward, 0},
	{"fullnat", 0, argNone, idFullNAT, colForward, 0},
	{"weight", 'w', argRequired, idWeight, colWeight, 0},
	{"u-threshold", 'x', argRequired, idUThresh, colUThreshold, 0},
	{"l-threshold", 'y', argRequired, idLThresh, colLThreshold, 0},
	{"numeric", 'n', argNone, idNumeric, colNumeric, 0},
	{"connection", 'c', argNone, idConn, colConnection, 0},
	{"mcast-interface", 0, argRequired, idMcastIf, colMcast, 0},
	{"syncid", 0, argRequired, idSyncID, colSyncID, 0},
	{"timeout", 0, argNone, idTimeout, colTimeout, 0},
	{"daemon", 0, argNone, idDaemon, colDaemon, 0},
	{"stats", 0, argNone, idStats, colStats, 0},
	{"rate", 0, argNone, idRate, colRate, 0},
	{"thresholds", 0, argNone, idThresholds, colThresholds, 0},
	{"persistent-conn", 0, argNone, idPersistConn, colPersistentConn, 0},
	{"nosort", 0, argNone, idNoSort, colNoSort, 0},
	{"sort", 0, argNone, idSort, colNone, 0},
	{"exact", 'X', argNone, idExact, colExact, 0},
	{"ipv6", '6', argNone, idIPv6, colNone, 0},
	{"ops", 'o', argNone, idOps, colOnePacket, 0},
	// The FULLNAT fork's (DPVS's ipvsadm: -j enable|disable). It has no
	// column in ipvsadm's legality table; finish checks it instead.
	{"synproxy", 'j', argRequired, idSynProxy, colNone, 0},
	{"pe", 0, argRequired, idPE, colPE, 0},
	{"sched-flags", 'b', argRequired, idSchedFlags, colSchedFlags, 0},
	{"mcast-group", 0, argRequired, idMcastGroup, colMcastGroup, 0},
	{"mcast-port", 0, argRequired, idMcastPort, colMcastPort, 0},
	{"mcast-ttl", 0, argRequired, idMcastTTL, colMcastTTL, 0},
	{"sync-maxlen", 0, argRequired, idSyncMaxlen, colSyncMaxlen, 0},
	{"tun-info", 0, argNone, idTunInfo, colTunInfo, 0},
	{"tun-type", 0, argRequired, idTunType, colTunType, 0},
	{"tun-port", 0, argRequired, idTunPort, colTunPort, 0},
	{"tun-nocsum", 0, argNone, idTunNoCsum, colTunNoCsum, 0},
	{"tun-csum", 0, argNone, idTunCsum, colTunCsum, 0},
	{"tun-remcsum", 0, argNone, idTunRemCsum, colTunRemCsum, 0},
}

func longOpt(name string) *optDef {
	if name == "" {
		return nil
	}
	for i := range optDefs {
		if optDefs[i].long == name {
			return &optDefs[i]
		}
	}
	return nil
}

// fullnatB is the FULLNAT fork's -b: --fullnat, where ipvsadm 1.27 and
// later made -b --sched-flags. The command tells them apart: -b of a real
// server command (-a -e -d) is the fork's, of a service command the
// scheduler flags.
var fullnatB = optDef{"fullnat", 'b', argNone, idFullNAT, colForward, 0}

func shortOpt(c byte) *optDef {
	for i := range optDefs {
		if optDefs[i].short == c && c != 0 {
			return &optDefs[i]
		}
	}
	return nil
}

type token struct {
	def    *optDef
	val    string
	hasVal bool
	text   string // the argument it came from, for messages
}

// tokenizer splits argv the way popt does for ipvsadm's option table.
type tokenizer struct {
	args        []string
	i           int
	cluster     string // short options still to read from clusterText
	clusterText string
	noMore      bool     // after "--"
	rest        []string // non-option arguments, in order
	destCommand bool     // -b is --fullnat (see fullnatB)
}

func (t *tokenizer) short(c byte) *optDef {
	if c == 'b' && t.destCommand {
		return &fullnatB
	}
	return shortOpt(c)
}

// next returns the next option; ok is false at the end.
func (t *tokenizer) next() (tok token, ok bool, err error) {
	for {
		if t.cluster != "" {
			c := t.cluster[0]
			t.cluster = t.cluster[1:]
			def := t.short(c)
			if def == nil {
				return token{}, false, argErrorf("%s: unknown option", t.clusterText)
			}
			tok = token{def: def, text: t.clusterText}
			switch def.arg {
			case argRequired:
				switch {
				case t.cluster != "":
					tok.val, tok.hasVal, t.cluster = t.cluster, true, ""
				case t.i < len(t.args):
					tok.val, tok.hasVal = t.args[t.i], true
					t.i++
				default:
					return token{}, false, argErrorf("%s: missing argument", t.clusterText)
				}
			case argOptional:
				switch {
				case t.cluster != "":
					tok.val, tok.hasVal, t.cluster = t.cluster, true, ""
				case t.i < len(t.args) && !strings.HasPrefix(normalizeDash(t.args[t.i]), "-"):
					tok.val, tok.hasVal = t.args[t.i], true
					t.i++
				}
			}
			return tok, true, nil
		}
		if t.i >= len(t.args) {
			return token{}, false, nil
		}
		a := t.args[t.i]
		t.i++
		if t.noMore {
			t.rest = append(t.rest, a)
			continue
		}
		a = normalizeDash(a)
		switch {
		case a == "--":
			t.noMore = true
		case strings.HasPrefix(a, "--"):
			name, val, hasEq := strings.Cut(a[2:], "=")
			def := longOpt(name)
			if def == nil {
				return token{}, false, argErrorf("%s: unknown option", a)
			}
			tok = token{def: def, text: a, val: val, hasVal: hasEq}
			switch def.arg {
			case argNone:
				if hasEq {
					return token{}, false, argErrorf("%s: option does not take an argument", a)
				}
			case argRequired:
				if !hasEq {
					if t.i >= len(t.args) {
						return token{}, false, argErrorf("%s: missing argument", a)
					}
					tok.val, tok.hasVal = t.args[t.i], true
					t.i++
				}
			case argOptional:
				if !hasEq && t.i < len(t.args) && !strings.HasPrefix(normalizeDash(t.args[t.i]), "-") {
					tok.val, tok.hasVal = t.args[t.i], true
					t.i++
				}
			}
			return tok, true, nil
		case len(a) > 1 && a[0] == '-':
			t.cluster, t.clusterText = a[1:], a
		default:
			t.rest = append(t.rest, a)
		}
	}
}

// normalizeDash reads a leading en or em dash (what word processors make of
// "-" and "--") as the option prefix it replaced: a long option name gets
// "--", anything else "-".
func normalizeDash(a string) string {
	for _, d := range [...]string{"\u2013", "\u2014"} {
		if rest, ok := strings.CutPrefix(a, d); ok {
			name, _, _ := strings.Cut(rest, "=")
			if longOpt(name) != nil {
				return "--" + rest
			}
			return "-" + rest
		}
	}
	return a
}

// argState is one ParseArgs run: ipvsadm's ipvs_command_entry plus what
// must wait until every option has been read.
type argState struct {
	p    Parser
	tk   tokenizer
	cmd  Command
	seen uint64 // 1<<col of every option given

	// -r, -M and -b are read once the service is known.
	realArg, maskArg, schedFlagsArg string
	synProxyGiven                   bool
}

func (s *argState) parse() (Command, error) {
	tok, ok, err := s.tk.next()
	if err != nil {
		return Command{}, &ArgError{Msg: err.Error(), TryHelp: true}
	}
	if !ok {
		return Command{}, &ArgError{Msg: "no command specified", TryHelp: true}
	}
	if tok.def.id != idCommand {
		return Command{}, &ArgError{
			Msg:     fmt.Sprintf("%s: the command (-A -E -D -C -R -S -a -e -d -L -l -Z -P -Q -G --set -h -v) must come first", tok.text),
			TryHelp: true,
		}
	}
	switch op := tok.def.cmd; op {
	case OpHelp, OpVersion:
		// ipvsadm answers these at once, whatever follows.
		return Command{Op: op}, nil
	case OpStartDaemon, OpStopDaemon:
		// ipvsadm: "illegal start-daemon parameter specified".
		if tok.val != "master" && tok.val != "backup" {
			return Command{}, argErrorf("illegal %s parameter specified", op)
		}
		s.cmd.Op = op
		s.cmd.Daemon = Daemon{State: tok.val, McastIfn: "eth0", Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1}
	default:
		s.cmd.Op = op
		s.tk.destCommand = op == OpAddDest || op == OpEditDest || op == OpDeleteDest
	}
	s.cmd.Dest = Dest{Weight: 1, Forward: ForwardRoute}

	for {
		tok, ok, err := s.tk.next()
		if err != nil {
			return Command{}, err
		}
		if !ok {
			break
		}
		if err := s.option(tok); err != nil {
			return Command{}, err
		}
	}
	if err := s.finish(); err != nil {
		return Command{}, err
	}
	return s.cmd, nil
}

func (s *argState) set(col int) error {
	if col == colNone {
		return nil
	}
	if s.seen&(1<<col) != 0 {
		return argErrorf("multiple '%s' options specified", colNames[col])
	}
	s.seen |= 1 << col
	return nil
}

func (s *argState) has(col int) bool { return s.seen&(1<<col) != 0 }

// option handles one option in argument order, as ipvsadm's parse_options
// loop: value errors are reported here, in that order.
func (s *argState) option(tok token) error {
	if tok.def.id == idCommand {
		return argErrorf("invalid option `%s'", tok.text)
	}
	if err := s.set(tok.def.col); err != nil {
		return err
	}
	svc, dest, list := &s.cmd.Service, &s.cmd.Dest, &s.cmd.List
	v := tok.val
	switch tok.def.id {
	case idTCP, idUDP, idSCTP:
		svc.Protocol = ProtoTCP
		if tok.def.id == idUDP {
			svc.Protocol = ProtoUDP
		} else if tok.def.id == idSCTP {
			svc.Protocol = ProtoSCTP
		}
		addr, port, _, ok := s.p.parseHostPort(v, svc.Protocol)
		if !ok {
			return argErrorf("illegal virtual server address[:port] specified")
		}
		svc.Addr, svc.Port = addr, port
	case idFwmark:
		m, ok := parseCInt(v)
		if !ok || m <= 0 || m > math.MaxUint32 {
			return argErrorf("invalid fwmark value `%s' specified", v)
		}
		svc.Protocol, svc.Fwmark = ProtoFwmark, uint32(m)
	case idIPv6:
		if svc.Fwmark == 0 {
			return argErrorf("-6 used before -f")
		}
		svc.FwmarkIPv6 = true
	case idSched:
		svc.Scheduler = v
	case idPersist:
		svc.Persistent = true
		svc.PersistTimeout = DefaultPersistTimeout
		if tok.hasVal {
			t, ok := numberIn(v, 1, int64(MaxTimeout/time.Second))
			if !ok {
				return argErrorf("invalid timeout value `%s' specified", v)
			}
			svc.PersistTimeout = time.Duration(t) * time.Second
		}
	case idNetmask:
		s.maskArg = v
	case idLaddr:
		// The fork parses it as a service address and keeps the address.
		addr, _, _, ok := s.p.parseHostPort(v, ProtoTCP)
		if !ok {
			return argErrorf("illegal local address")
		}
		s.cmd.Laddr = addr
	case idReal:
		s.realArg = v
	case idMasq:
		dest.Forward = ForwardMasq
	case idIPIP:
		dest.Forward = ForwardTunnel
	case idGate:
		dest.Forward = ForwardRoute
	case idFullNAT:
		dest.Forward = ForwardFullNAT
	case idWeight:
		w, ok := numberIn(v, 0, 65535)
		if !ok {
			return argErrorf("illegal weight specified")
		}
		dest.Weight = int(w)
	case idUThresh:
		x, ok := numberIn(v, 0, math.MaxInt32)
		if !ok {
			return argErrorf("illegal u_threshold specified")
		}
		dest.UThreshold = uint32(x)
	case idLThresh:
		y, ok := numberIn(v, 0, math.MaxInt32)
		if !ok {
			return argErrorf("illegal l_threshold specified")
		}
		dest.LThreshold = uint32(y)
	case idNumeric:
		list.Numeric = true
	case idConn:
		list.Connections = true
	case idTimeout:
		list.Timeout = true
	case idDaemon:
		list.Daemon = true
	case idDefense:
		list.Defense = true
	case idStats:
		list.Stats = true
	case idRate:
		list.Rate = true
	case idThresholds:
		list.Thresholds = true
	case idPersistConn:
		list.PersistentConn = true
	case idNoSort:
		list.NoSort = true
	case idSort:
		// Sorting is the default; ipvsadm keeps --sort as a no-op.
	case idExact:
		list.Exact = true
	case idTunInfo:
		list.TunInfo = true
	case idOps:
		svc.OnePacket = true
	case idSynProxy:
		switch v {
		case "enable":
			svc.SynProxy = true
		case "disable":
			svc.SynProxy = false
		default:
			return argErrorf("synproxy switch must be enable or disable, not `%s'", v)
		}
		s.synProxyGiven = true
	case idPE:
		svc.PE = v
	case idSchedFlags:
		s.schedFlagsArg = v
	case idMcastIf:
		// Only legal with the daemon commands (the legality check below
		// reports the others); IFNAMSIZ as ipvsadm checks it.
		if len(v) >= 16 {
			return argErrorf("illegal mcast-interface specified")
		}
		s.cmd.Daemon.McastIfn = v
	case idSyncID:
		n, ok := numberIn(v, 0, 255)
		if !ok {
			return argErrorf("illegal syncid specified")
		}
		s.cmd.Daemon.SyncID = uint8(n)
	case idMcastGroup:
		a, err := netip.ParseAddr(v)
		if err != nil || !a.IsMulticast() || a.Zone() != "" {
			if strings.Contains(v, ":") {
				return argErrorf("invalid IPv6 mcast-group `%s'", v)
			}
			return argErrorf("invalid IPv4 mcast-group `%s'", v)
		}
		if !a.Is4() {
			return argErrorf("mcast-group %s: lvsd's sync daemon is IPv4 only", v)
		}
		s.cmd.Daemon.Group = a
	case idMcastPort:
		n, ok := numberIn(v, 1, 65535)
		if !ok {
			return argErrorf("illegal mcast-port specified")
		}
		s.cmd.Daemon.Port = uint16(n)
	case idMcastTTL:
		n, ok := numberIn(v, 1, 255)
		if !ok {
			return argErrorf("illegal mcast-ttl specified")
		}
		s.cmd.Daemon.TTL = uint8(n)
	case idSyncMaxlen:
		n, ok := numberIn(v, 1, 65535-20-8)
		if !ok {
			return argErrorf("illegal sync-maxlen specified")
		}
		s.cmd.Daemon.MaxLen = int(n)
	case idTunType:
		var t TunType
		if t.UnmarshalText([]byte(v)) != nil {
			return argErrorf("illegal tunnel type specified")
		}
		dest.TunType = t
	case idTunPort:
		port, ok := numberIn(v, 1, 65535)
		if !ok {
			return argErrorf("illegal tunnel port specified")
		}
		dest.TunPort = uint16(port)
	case idTunNoCsum:
		dest.TunCsum = TunNoCsum
	case idTunCsum:
		dest.TunCsum = TunCsumOn
	case idTunRemCsum:
		dest.TunCsum = TunRemCsum
	}
	return nil
}

// finish runs ipvsadm's checks that follow the option loop, in its order.
func (s *argState) finish() error {
	c := &s.cmd
	svc, dest := &c.Service, &c.Dest
	rest := s.tk.rest
	if c.Op == OpSetTimeouts {
		if len(rest) < 3 {
			return argErrorf("--set option requires 3 timeout values")
		}
		var t [3]time.Duration
		for i, a := range rest[:3] {
			v, ok := numberIn(a, 0, int64(MaxTimeout/time.Second))
			if !ok {
				return argErrorf("invalid timeout value `%s' specified", a)
			}
			t[i] = time.Duration(v) * time.Second
		}
		c.Timeouts = Timeouts{TCP: t[0], TCPFin: t[1], UDP: t[2]}
		rest = rest[3:]
	}
	if c.Op == OpSetDefense {
		d, err := parseDefense(rest)
		if err != nil {
			return err
		}
		c.Defense = d
		rest = nil
	}
	if len(rest) > 0 {
		return argErrorf("unexpected argument %s", rest[0])
	}
	if s.schedFlagsArg != "" {
		f, err := parseSchedFlags(svc.Scheduler, s.schedFlagsArg)
		if err != nil {
			return err
		}
		svc.Flags = f
	}
	if s.has(colNetmask) {
		if err := s.netmask(); err != nil {
			return err
		}
	}
	if s.has(colServer) {
		addr, port, hasPort, ok := s.p.parseHostPort(s.realArg, svc.Protocol)
		if !ok {
			return argErrorf("illegal real server address[:port] specified")
		}
		if !hasPort {
			port = svc.Port
		}
		dest.Addr, dest.Port = addr, port
	}

	if err := s.checkLegality(); err != nil {
		return err
	}
	if s.synProxyGiven && c.Op != OpAddService && c.Op != OpEditService {
		return argErrorf("Illegal 'synproxy' option with the '%s' command", c.Op.String())
	}

	switch c.Op {
	case OpAddService, OpEditService:
		if svc.Protocol != ProtoFwmark && svc.Port == 0 && !svc.Persistent {
			return argErrorf("Zero port specified for non-persistent service")
		}
		if svc.OnePacket && svc.Protocol != ProtoFwmark && svc.Protocol != ProtoUDP {
			return argErrorf("One-Packet Scheduling is only for UDP virtual services")
		}
		if svc.SynProxy && svc.Protocol != ProtoTCP {
			return argErrorf("SYN proxy (-j) is only for TCP virtual services")
		}
		if svc.Scheduler == "" {
			svc.Scheduler = DefaultScheduler
		}
		if !knownScheduler(svc.Scheduler) {
			return argErrorf("unknown scheduler `%s' (one of %s)", svc.Scheduler, strings.Join(schedulers, "|"))
		}
		if svc.PE != "" && svc.PE != "sip" {
			return argErrorf("unknown persistence engine `%s' (sip is the only one)", svc.PE)
		}
	case OpAddDest, OpEditDest:
		// DR and tunnels cannot change the port: the packet keeps it.
		if svc.Protocol != ProtoFwmark && (dest.Forward == ForwardTunnel || dest.Forward == ForwardRoute) {
			dest.Port = svc.Port
		}
		if dest.Addr.Is6() != svc.Is6() && dest.Forward != ForwardTunnel {
			return argErrorf("Different address family is allowed only for tunneling servers")
		}
		tunOpts := s.has(colTunType) || s.has(colTunPort) || s.has(colTunNoCsum) || s.has(colTunCsum) || s.has(colTunRemCsum)
		if tunOpts && dest.Forward != ForwardTunnel {
			return argErrorf("Tunnel options conflict with forward method")
		}
		if err := s.checkTunnel(); err != nil {
			return err
		}
	case OpList:
		l := c.List
		if (l.Connections || l.Timeout || l.Daemon || l.Defense) && (l.Stats || l.Rate || l.Thresholds) ||
			(l.Timeout || l.Daemon || l.Defense) && l.PersistentConn {
			return argErrorf("options conflicts in the list command")
		}
	}
	if c.Op == OpList || c.Op == OpZero || c.Op == OpGetLaddr {
		c.HasService = s.has(colService)
	}
	switch c.Op {
	case OpAddDest, OpEditDest, OpDeleteDest:
	default:
		c.Dest = Dest{}
	}
	return nil
}

// netmask parses -M for the service's family: a contiguous IPv4 mask in
// inet_aton form or a prefix length (IPv4 0..32, IPv6 1..128 as ipvsadm).
func (s *argState) netmask() error {
	svc := &s.cmd.Service
	v := strings.TrimPrefix(s.maskArg, "/")
	if svc.Is6() {
		bits, ok := numberIn(v, 1, 128)
		if !ok {
			return argErrorf("illegal ipv6 netmask specified")
		}
		svc.Netmask = maskFromBits(int(bits), true)
	} else {
		var m netip.Addr
		if allDigits(v) && len(v) <= 2 {
			bits, ok := numberIn(v, 0, 32)
			if !ok {
				return argErrorf("illegal virtual server persistent mask specified")
			}
			m = maskFromBits(int(bits), false)
		} else {
			a, ok := parseInetAton(s.maskArg)
			if _, contiguous := maskBits(a); !ok || !contiguous {
				return argErrorf("illegal virtual server persistent mask specified")
			}
			m = a
		}
		svc.Netmask = m
	}
	// The default mask is stored as "unset" so equal configurations compare
	// equal however they were written.
	if bits, _ := maskBits(svc.Netmask); bits == svc.Netmask.BitLen() {
		svc.Netmask = netip.Addr{}
	}
	return nil
}

// checkLegality is ipvsadm's generic_opt_check.
func (s *argState) checkLegality() error {
	cols := make([]int, numCols)
	for j := range cols {
		cols[j] = j
	}
	return s.checkOptions(legality[s.cmd.Op-1], cols, "command", s.cmd.Op.String())
}

// checkTunnel is ipvsadm's tunnel_opt_check.
func (s *argState) checkTunnel() error {
	tt := s.cmd.Dest.TunType
	return s.checkOptions(tunLegality[tt], tunCols[:], "tunnel type", tt.String())
}

// checkOptions applies one row of an ipvsadm legality table to the options
// at cols: '+' must be given, 'x' must not, '1' marks options of which at
// most one may be given. kind and name ("command", "add-service") word the
// messages as ipvsadm does.
func (s *argState) checkOptions(row string, cols []int, kind, name string) error {
	last := -1
	for j, col := range cols {
		given := s.has(col)
		switch row[j] {
		case '+':
			if !given {
				return argErrorf("You need to supply the '%s' option for the '%s' %s", colNames[col], name, kind)
			}
		case 'x':
			if given {
				return argErrorf("Illegal '%s' option with the '%s' %s", colNames[col], name, kind)
			}
		case '1':
			if given {
				if last >= 0 {
					return argErrorf("The option '%s' conflicts with the '%s' option in the '%s' %s",
						colNames[col], colNames[last], name, kind)
				}
				last = col
			}
		}
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseHostPort is ipvsadm's parse_service: "host[:port]", "[v6]:port" or a
// bare IPv6 address; hosts by inet_aton or hosts(5), ports by number or
// services(5) for the protocol.
func (p Parser) parseHostPort(buf string, proto Protocol) (addr netip.Addr, port uint16, hasPort, ok bool) {
	if allDigits(buf) {
		// A bare number is a mistake (a fwmark given to -t), not 0.0.0.N.
		return netip.Addr{}, 0, false, false
	}
	host, portStr := buf, ""
	bracketed := strings.HasPrefix(buf, "[")
	if bracketed {
		end := strings.IndexByte(buf, ']')
		if end < 0 || !strings.HasPrefix(buf[end+1:], ":") {
			return netip.Addr{}, 0, false, false
		}
		host, portStr, hasPort = buf[1:end], buf[end+2:], true
	} else if a, err := netip.ParseAddr(buf); err == nil && a.Is6() {
		host = buf
	} else if i := strings.LastIndexByte(buf, ':'); i >= 0 {
		host, portStr, hasPort = buf[:i], buf[i+1:], true
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		if a.Zone() != "" {
			return netip.Addr{}, 0, false, false
		}
		addr = a
	} else if a, ok := parseInetAton(host); ok {
		addr = a
	} else if a, ok := p.Names.LookupHost(host); ok && !bracketed {
		addr = a
	} else if a, ok := p.Names.LookupHost6(host); ok && bracketed {
		addr = a
	} else {
		return netip.Addr{}, 0, false, false
	}
	if hasPort {
		if n, ok := numberIn(portStr, 0, 65535); ok {
			port = uint16(n)
		} else if n, ok := p.Names.LookupPort(portStr, proto); ok && portStr != "" {
			port = n
		} else {
			return netip.Addr{}, 0, false, false
		}
	}
	return addr, port, hasPort, true
}
