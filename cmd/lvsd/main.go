// Command lvsd is the director daemon: an IPVS director in userspace that
// reads frames from AF_PACKET rings on its interfaces and forwards them by
// DR, NAT or IP-in-IP.
//
//	lvsd -i IF[,IF...] [-R rules] [--socket NAME] [--unprivileged-list] [--metrics ADDR] [--mark RULE]...
//	     [--max-conns N] [--drop-entry M] [--drop-packet M] [--secure-tcp M] [--amemthresh N]
//	     [--synproxy-mss N] [--synproxy-wscale N] [--synproxy-timestamp] [--synproxy-defer] ...
//	     [--rt-priority N] [--rx-ring v2|v3]
//
// The flood defences are the kernel's sysctls of the same names, with the
// kernel's defaults (off): a mode is 0 never, 1 automatic (on while fewer
// than --amemthresh connection slots of --max-conns are free), 2 automatic
// and on now, 3 always. Against a SYN flood, --drop-entry 1 is the one that
// keeps the table open to legitimate clients.
//
//	lvsd --cleanup [--state-dir DIR]
//
// One lvsd per network namespace. It is administered with lvsadm over the
// abstract unix socket @lvsd (per namespace). As the kernel's IPVS, it
// serves only root and processes with CAP_NET_ADMIN; --unprivileged-list
// lets other users list too, with their connections capped (see package
// ipvs/ctl for the limits and timeouts). lvsadm -R is applied all or
// nothing, as a reload is. SIGHUP reloads the rules file
// atomically; SIGTERM and SIGINT remove what lvsd installed (the nftables
// guard, offload changes) and exit.
//
// --rt-priority N runs lvsd's threads SCHED_RR at N (keepalived's
// vrrp_rt_priority): on a loaded machine an ordinary lvsd waits for a CPU
// behind whatever else runs, and forwarding stalls for as long; the
// kernel's IPVS, in softirq, never does (see sched.go).
//
// --rx-ring chooses the receive ring's TPACKET version (see openIface):
// v3, the default, packs frames into blocks and wakes lvsd once per block,
// but hands a block over only when it is full or its 1 ms retire timer
// fires, late on a loaded machine; v2 gives each frame a slot and a wakeup
// of its own, with no timer.
//
// --trace FILE writes a Go execution trace until lvsd exits: which
// goroutine ran, and which waited for a thread or a CPU, when forwarding
// stalled.
//
// --metrics ADDR serves Prometheus metrics at /metrics (text format, or
// OpenMetrics when asked): node_exporter's node_ipvs_* families with its
// labels and meanings, lvsd's own lvsd_* families (drops by class, the
// connection table, the neighbour cache, the nftables guard, interfaces,
// the control socket), and the Go runtime's. See ipvs/metrics.go.
//
// What lvsd changes is recorded, originals first, in a state file under
// /run/lvsd (one per network namespace). After a kill -9 the next lvsd
// undoes what the dead one left before starting, with the true originals;
// lvsd --cleanup does the same without starting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"lvslab/capture"
	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/ipvs"
	"lvslab/ipvs/ctl"
	"lvslab/ipvs/runstate"
	"lvslab/rewrite"
	"lvslab/synproxy"
)

type options struct {
	ifaces       []string
	rules        string
	keepalived   string
	socket       string
	unprivList   bool
	metrics      string
	maxConns     int
	marks        []ipvs.MarkRule
	keepOffloads bool
	guardTable   string
	pcapTX       string
	noARP        bool
	expireNodest bool
	activeES     bool
	reuseMode    int
	localDev     string
	logLevel     slog.Level
	defense      conntrack.Defense
	synProxy     synproxy.Settings
	cleanup      bool
	stateDir     string
	ftpPorts     []uint16
	rtPriority   int
	rxRing       capture.RXRing
	trace        string

	// --defence-tcp-drop, --defence-udp-drop
	defenceTCPDrop, defenceUDPDrop bool
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("lvsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var ifaces, level string
	var marks stringList
	fs.StringVar(&ifaces, "i", "", "interfaces to forward on, comma separated (required)")
	fs.StringVar(&o.rules, "R", "", "ipvsadm rules file to load (as `ipvsadm -S` writes it); SIGHUP reloads it")
	fs.StringVar(&o.keepalived, "f", "", "keepalived.conf (not supported yet)")
	fs.StringVar(&o.socket, "socket", ctl.DefaultSocket, "control socket name (abstract unless it contains a slash); "+
		"only root and CAP_NET_ADMIN peers may use it, as ipvsadm needs CAP_NET_ADMIN even to list")
	fs.BoolVar(&o.unprivList, "unprivileged-list", false, fmt.Sprintf("also let other local users list and save (lvsadm -L, -S) through the control socket, "+
		"at most %d connections per uid and %d in all (root keeps a budget of its own)", ctl.DefaultMaxPerUID, ctl.DefaultMaxUnprivileged))
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9108)")
	fs.IntVar(&o.maxConns, "max-conns", 0, "connection table limit (0: default)")
	fs.Var(&marks, "mark", "classifier rule feeding fwmark services, e.g. mark=1,proto=tcp,dst=10.0.0.10,dport=80,src-mac!=02:00:00:00:00:01 (repeatable)")
	fs.BoolVar(&o.keepOffloads, "keep-offloads", false, "do not turn GRO/LRO off on the interfaces")
	fs.StringVar(&o.guardTable, "guard-table", "lvsd", "nftables table (family netdev) lvsd owns")
	fs.StringVar(&o.pcapTX, "pcap-tx", "", "record every frame lvsd transmits into DIR/<iface>.pcap (for tshark)")
	fs.BoolVar(&o.expireNodest, "expire-nodest-conn", false, "sysctl expire_nodest_conn: packets of connections to a removed real server are rescheduled instead of dropped")
	fs.BoolVar(&o.activeES, "active-established-only", false, "count only ESTABLISHED TCP connections in ActiveConn, as kernels before 4.8 did (default: ESTABLISHED, SYN_SENT, SYN_RECV and SYNACK, tcp_state_active_table)")
	fs.IntVar(&o.reuseMode, "conn-reuse-mode", 1, "sysctl conn_reuse_mode: 1 reschedules a SYN that hits a TIME_WAIT/CLOSE entry; 3 also FIN_WAIT of DR/TUN")
	fs.BoolVar(&o.noARP, "no-arp", false, "start with every VIP released: no answer to ARP or ping for them (another director owns them, as a keepalived backup) until the control socket's \"own\" (lvskeepalived's VRRP) takes them over")
	fs.StringVar(&o.localDev, "local-dev", "lvsd-local", "TAP device created when a real server is one of this node's own addresses (LOCALNODE)")
	o.defense = conntrack.DefaultDefense()
	fs.IntVar(&o.defense.DropEntry, "drop-entry", 0, "sysctl drop_entry: 0 never, 1 automatic, 2 automatic and on now, 3 always; drops SYN_RECV entries (1/32 of the table a second) and lets a new connection take one's place in a full table")
	fs.IntVar(&o.defense.DropPacket, "drop-packet", 0, "sysctl drop_packet (modes as --drop-entry): drops 1 in amemthresh/(amemthresh-free) new connections, all of them when the table is full")
	fs.IntVar(&o.defense.SecureTCP, "secure-tcp", 0, "sysctl secure_tcp (modes as --drop-entry): tcp_states_dos and short timeouts (SYN_RECV 10 s)")
	fs.IntVar(&o.defense.AmemThresh, "amemthresh", conntrack.DefaultAmemThresh, "sysctl amemthresh, in connection slots: the automatic defences act while fewer than this many of --max-conns are free")
	fs.IntVar(&o.defense.AmDropRate, "am-droprate", conntrack.DefaultAmDropRate, "sysctl am_droprate: --drop-packet 3 drops 1 in this many new connections")
	synProxyDone := synProxyFlags(fs, &o.synProxy)
	fs.BoolVar(&o.defenceTCPDrop, "defence-tcp-drop", false, "the FULLNAT fork's defence_tcp_drop: TCP to a VIP that opens no connection (ACK/RST/FIN floods, ports without a service) is dropped, not reset")
	fs.BoolVar(&o.defenceUDPDrop, "defence-udp-drop", false, "the FULLNAT fork's defence_udp_drop: UDP to a VIP port without a service is dropped, not answered with port unreachable")
	fs.IntVar(&o.rtPriority, "rt-priority", 0, "run every thread of lvsd SCHED_RR at this priority (1..99), as keepalived's vrrp_rt_priority does for its process: forwarding then never waits behind ordinary tasks, as the kernel's IPVS, in softirq, does not (0: lvsd is an ordinary task)")
	fs.StringVar(&o.trace, "trace", "", "write a Go execution trace of lvsd to this file until it exits (SIGTERM or SIGINT), to see where forwarding waited: go tool trace -pprof=sched FILE")
	rxRing := fs.String("rx-ring", "v3", "receive ring per interface: v3 packs frames into 64 blocks of 128 KiB (8 MiB; about 50,000 small frames, 64 ms at a low rate) and wakes lvsd once per block, "+
		"but a block is handed over only when full or when its 1 ms retire timer fires, so at low rates frames wait 1 ms or more (the timer runs late on a loaded machine); "+
		"v2 has a 2 KiB slot per frame (4096 slots in the same 8 MiB) and wakes lvsd for each frame, no timer, at the cost of a wakeup per frame at high rates, "+
		"a recvfrom per GSO super-frame (they come through the socket's queue, up to 4 MiB more) and fewer frames held in a burst")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.cleanup, "cleanup", false, "undo what a dead lvsd of this network namespace left (nftables table, offloads, socket file) and exit")
	fs.StringVar(&o.stateDir, "state-dir", runstate.DefaultDir, "where lvsd records what it changed, per network namespace")
	ftpPorts := fs.String("ftp-ports", "21", "ports the FTP helper follows on NAT and FULLNAT services, comma separated, as ip_vs_ftp ports= (\"none\": helper off)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.rxRing, err = capture.ParseRXRing(*rxRing); err != nil {
		return o, fmt.Errorf("--rx-ring: %w", err)
	}
	if o.ftpPorts, err = ipvs.ParseFTPPorts(*ftpPorts); err != nil {
		return o, fmt.Errorf("--ftp-ports: %w", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, i := range strings.Split(ifaces, ",") {
		if i = strings.TrimSpace(i); i != "" {
			o.ifaces = append(o.ifaces, i)
		}
	}
	if len(o.ifaces) == 0 && !o.cleanup {
		return o, errors.New("-i: no interface given")
	}
	if o.keepalived != "" {
		return o, fmt.Errorf("-f %s: keepalived.conf is not supported by this lvsd yet; use -R with an ipvsadm rules file", o.keepalived)
	}
	for _, m := range marks {
		r, err := ipvs.ParseMarkRule(m)
		if err != nil {
			return o, fmt.Errorf("--mark: %w", err)
		}
		o.marks = append(o.marks, r)
	}
	for _, m := range []struct {
		flag string
		v    int
	}{{"--drop-entry", o.defense.DropEntry}, {"--drop-packet", o.defense.DropPacket}, {"--secure-tcp", o.defense.SecureTCP}} {
		if m.v < 0 || m.v > 3 {
			return o, fmt.Errorf("%s %d: a mode is 0, 1, 2 or 3", m.flag, m.v)
		}
	}
	if err := o.defense.Validate(); err != nil {
		return o, fmt.Errorf("--amemthresh/--am-droprate: %w", err)
	}
	if err := synProxyDone(); err != nil {
		return o, err
	}
	if o.rtPriority < 0 || o.rtPriority > 99 {
		return o, fmt.Errorf("--rt-priority %d: a SCHED_RR priority is 1..99 (0: none)", o.rtPriority)
	}
	if err := o.logLevel.UnmarshalText([]byte(level)); err != nil {
		return o, fmt.Errorf("--log-level: %w", err)
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "lvsd:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel}))
	if o.cleanup {
		if err := cleanup(o, log); err != nil {
			fmt.Fprintln(os.Stderr, "lvsd --cleanup:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o, log); err != nil {
		fmt.Fprintln(os.Stderr, "lvsd:", err)
		os.Exit(1)
	}
}

func run(o options, log *slog.Logger) error {
	if o.trace != "" {
		stop, err := startTrace(o.trace)
		if err != nil {
			return fmt.Errorf("--trace: %w", err)
		}
		defer stop()
	}
	if o.rtPriority > 0 {
		if err := setRTPriority(o.rtPriority); err != nil {
			return fmt.Errorf("--rt-priority: %w", err)
		}
		log.Info("real-time scheduling", "policy", "SCHED_RR", "priority", o.rtPriority)
	}
	// Load the rules before touching anything: bad configuration exits
	// non-zero with file:line and nothing applied.
	var rules *config.Table
	if o.rules != "" {
		t, err := config.LoadRulesFile(o.rules)
		if err != nil {
			return err
		}
		rules = t
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	nl, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer nl.Close()
	var local ipvs.LocalPort
	defer func() {
		if local != nil {
			_ = local.(*localDev).f.Close()
		}
	}()
	eng, err := ipvs.New(ipvs.Config{
		Logger: log, MaxConns: o.maxConns, NoARP: o.noARP,
		ExpireNodestConn: o.expireNodest, ConnReuseMode: reuseMode(o.reuseMode),
		Defense:               o.defense,
		DefenceTCPDrop:        o.defenceTCPDrop,
		DefenceUDPDrop:        o.defenceUDPDrop,
		ActiveEstablishedOnly: o.activeES,
		SynProxy:              o.synProxy,
		FTPPorts:              o.ftpPorts,
		OpenLocal: func() (ipvs.LocalPort, error) {
			var err error
			local, err = openLocal(o.localDev, nl)
			if err == nil {
				log.Info("LOCALNODE real server: delivering to this node's own stack", "device", o.localDev)
			}
			return local, err
		},
	})
	if err != nil {
		return err
	}
	if len(o.ftpPorts) > 0 {
		// ip_vs_ftp logs "ftp: loaded support on port[0] = 21".
		log.Info("FTP helper: following NAT and FULLNAT services on these ports", "ports", o.ftpPorts)
	}
	// Everything installed from here on is undone in reverse order.
	var undo []func()
	defer func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}()

	rec, err := startRecord(ctx, o, log)
	if err != nil {
		return err
	}
	undo = append(undo, rec.finish)

	for _, name := range o.ifaces {
		ifc, err := openIface(name, o.rxRing, nl)
		if err != nil {
			return err
		}
		if o.pcapTX != "" {
			if err := recordTX(ifc, o.pcapTX); err != nil {
				_ = ifc.Port.Close()
				return err
			}
		}
		undo = append(undo, func() { _ = ifc.Port.Close() })
		if !o.keepOffloads {
			// The originals go to the state file before anything changes:
			// a kill -9 at any point leaves what restores them.
			orig, err := rec.offloads(name)
			if err != nil {
				return err
			}
			ch, err := capture.DisableAggregation(name)
			if err != nil {
				log.Warn("could not turn off receive aggregation", "iface", name, "err", err)
			}
			if !ch.Empty() {
				log.Info("turned off receive aggregation, as an LVS director must (restored on exit)", "changes", ch.String())
			}
			undo = append(undo, func() {
				if _, err := capture.SetFeatures(name, orig); err != nil {
					log.Warn("restore offloads", "iface", name, "err", err)
				}
			})
		}
		eng.AddIface(ifc)
		log.Info("forwarding on interface", "iface", name, "mac", net.HardwareAddr(ifc.MAC[:]).String(), "mtu", ifc.MTU, "addrs", ifc.Addrs)
	}

	if err := loadNetState(eng, nl); err != nil {
		return err
	}

	guard := &ipvs.KernelGuard{Table: o.guardTable, Devices: o.ifaces}
	_ = guard.Remove(ctx) // a crashed predecessor's table
	eng.SetGuard(guard)
	undo = append(undo, func() {
		if err := guard.Remove(context.Background()); err != nil {
			log.Warn("remove nftables guard", "err", err)
		}
		_ = guard.Close()
	})
	if err := eng.SetMarks(o.marks); err != nil {
		return err
	}
	if rules != nil {
		if err := eng.Replace(*rules); err != nil {
			return fmt.Errorf("%s: %w", o.rules, err)
		}
		log.Info("loaded rules", "file", o.rules, "services", len(rules.Services))
		warnFTPForwarding(*rules, o.ftpPorts, log)
	}

	if path := ctl.SocketAddr(o.socket); !strings.HasPrefix(path, "@") {
		// A dead lvsd's socket file would block the listen.
		if err := runstate.ReclaimSocket(path); err != nil {
			return err
		}
	}
	ln, err := ctl.Listen(o.socket)
	if err != nil {
		return err
	}
	requests := newRequestCounter()
	ctlSrv := &ctl.Server{Handler: countRequests(eng, requests), AllowUnprivilegedList: o.unprivList, Logger: log}
	go func() {
		if err := ctlSrv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			log.Error("control socket", "err", err)
		}
	}()
	if o.metrics != "" {
		srv, err := serveMetrics(o.metrics, newRegistry(eng, requests), log)
		if err != nil {
			return err
		}
		undo = append(undo, func() { _ = srv.Close() })
	}

	go refreshRoutes(ctx, eng, nl, log)
	go reloadOnHUP(ctx, eng, o.rules, log)

	log.Info("lvsd running", "socket", ctl.SocketAddr(o.socket), "interfaces", o.ifaces)
	err = eng.Run(ctx)
	log.Info("lvsd stopping", eng.ExitSummary()...)
	return err
}

// The receive ring: TPACKET_V3 hands a block over when it is full or when
// its 1 ms retire timer fires, so at a low rate every block carries only
// the frames of one millisecond and the ring holds as many milliseconds as
// it has blocks, whatever their size. capture's default 16 blocks dropped
// frames whenever lvsd was descheduled for more than 16 ms (a 1 packet/ms
// stream lost 76 frames in one 58 ms stall on a loaded machine, where the
// kernel's own forwarding lost none); 64 blocks of 128 KiB (room for a
// 64 KiB GSO frame) hold 64 ms at a low rate and 8 MiB at a high one.
//
// --rx-ring v2 lays the same 8 MiB out as 4096 slots of 2 KiB (an MTU
// frame each), readable one by one as the kernel fills them: no timer
// between a frame and lvsd. GSO super-frames overflow their slot and come
// whole through the socket's receive queue (up to 4 MiB of them waiting);
// when it is full they arrive truncated and are dropped and counted, as
// oversized frames are.
const (
	ringBlocks      = 64
	ringBlockSize   = 128 << 10
	ringV2FrameSize = 2 << 10
)

func openIface(name string, ring capture.RXRing, nl *netlink.Handle) (*ipvs.Iface, error) {
	cfg := capture.Config{Interface: name, Blocks: ringBlocks, BlockSize: ringBlockSize, RXRing: ring}
	if ring == capture.RXRingV2 {
		cfg.RXFrameSize = ringV2FrameSize
	}
	port, err := capture.Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	l := port.Link()
	ifc := &ipvs.Iface{Name: name, Index: l.Index, MAC: rewrite.MAC(l.MAC), MTU: l.MTU, Port: port}
	link, err := nl.LinkByIndex(l.Index)
	if err != nil {
		port.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	addrs, err := nl.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		port.Close()
		return nil, fmt.Errorf("%s: addresses: %w", name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		ifc.Addrs = append(ifc.Addrs, netip.PrefixFrom(ip, ones))
	}
	return ifc, nil
}

// reuseMode maps the sysctl value to the engine's (0 there means default).
func reuseMode(v int) int {
	if v == 0 {
		return -1
	}
	return v
}

// loadNetState gives the engine the namespace's routes and own addresses.
func loadNetState(eng *ipvs.Engine, nl *netlink.Handle) error {
	routes, err := ipvs.LoadRoutes(nl)
	if err != nil {
		return err
	}
	addrs, err := localAddrs(nl)
	if err != nil {
		return err
	}
	return eng.SetNetState(routes, addrs)
}

// recordTX wraps the interface's port so every frame it sends is also
// written to DIR/<iface>.pcap.
func recordTX(ifc *ipvs.Iface, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--pcap-tx: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, ifc.Name+".pcap"))
	if err != nil {
		return fmt.Errorf("--pcap-tx: %w", err)
	}
	rec, err := capture.NewRecorder(ifc.Port, f, nil)
	if err != nil {
		f.Close()
		return fmt.Errorf("--pcap-tx: %w", err)
	}
	ifc.Port = &closeBoth{Recorder: rec, f: f}
	return nil
}

type closeBoth struct {
	*capture.Recorder
	f *os.File
}

func (c *closeBoth) Close() error { return errors.Join(c.Recorder.Close(), c.f.Close()) }

// refreshRoutes re-reads routes and addresses every second: real servers
// follow route changes without a restart.
func refreshRoutes(ctx context.Context, eng *ipvs.Engine, nl *netlink.Handle, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := loadNetState(eng, nl); err != nil {
			log.Warn("reading routes and addresses", "err", err)
		}
	}
}

func reloadOnHUP(ctx context.Context, eng *ipvs.Engine, rules string, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if rules == "" {
			log.Warn("SIGHUP: no rules file (-R) to reload")
			continue
		}
		t, err := config.LoadRulesFile(rules)
		if err == nil {
			err = eng.Replace(*t)
		}
		if err != nil {
			log.Error("reload refused; the running configuration is unchanged", "err", err)
			continue
		}
		log.Info("reloaded rules", "file", rules, "services", len(t.Services))
	}
}

// warnFTPForwarding warns when the FTP helper follows a NAT service while
// the kernel forwards: the data connections' replies come from ports the
// nftables guard does not know in advance (vsftpd's passive range, port
// 20), so the kernel would route them too, untranslated, beside lvsd's
// translated copies.
func warnFTPForwarding(t config.Table, ports []uint16, log *slog.Logger) {
	svcs := ipvs.FTPServices(t, ports)
	if len(svcs) == 0 {
		return
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil || strings.TrimSpace(string(b)) != "1" {
		return
	}
	log.Warn("FTP helper with ip_forward=1: the kernel also forwards the FTP data connections' replies untranslated; set net.ipv4.ip_forward=0 on this director",
		"services", len(svcs), "first", netip.AddrPortFrom(svcs[0].Addr, svcs[0].Port))
}
