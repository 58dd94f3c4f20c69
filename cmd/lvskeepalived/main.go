// Command lvskeepalived is to lvsd what keepalived is to the kernel's IPVS:
// it reads keepalived.conf (config/keepalived), programs lvsd through its
// control socket (@lvsd, the protocol lvsadm uses; --lvsd-socket or
// LVSD_SOCKET choose another) and runs the health checkers (package check).
//
// Its command line is keepalived 2.2.7's (keepalived(8)):
//
//	lvskeepalived [-f FILE] [-n] [-l] [-D] [-G] [-g FILE] [-C|-P] [-p PID] [-c PID] [-r PID] [-I]
//	lvskeepalived -t [-f FILE] [-d]      check the configuration, print every problem with file:line (-d: the parsed configuration as JSON)
//	lvskeepalived -T -s IP -p PORT -u URL [-S] [-I] [-V VHOST] [-P 1.0|1.0c|1.1] [-t SECS] [-m MARK] [-v]
//
// The daemon. Without -n it detaches (the same command line with -n, in a
// new session). It writes the pid files (-p, default /run/keepalived.pid;
// -c /run/keepalived_checkers.pid; -r /run/keepalived_vrrp.pid; one
// process, so one pid) and refuses to start while the main one names a
// live process. It logs keepalived's texts ("TCP connection to
// [172.16.0.2]:tcp:80 success.", "Removing service [172.16.0.2]:tcp:80
// from VS [10.0.0.100]:tcp:80", "Lost quorum 1-0=1 > 0 for VS ...") to
// syslog unless -G, to stderr with -l, to a file with -g. At start it
// reads lvsd's tables (lvsadm -S) and sends only the commands that make
// them what the configuration and the checkers want; SIGHUP reloads the
// same way (an unchanged service or real server gets no command and keeps
// its connections; a configuration with a fatal error keeps the running
// one and says why); SIGTERM removes its services unless -I, as keepalived
// does. SIGKILL leaves lvsd forwarding with the tables it has, and a new
// lvskeepalived continues from them.
//
// The VRRP side (vrrpside.go) runs the vrrp_instance blocks: for a VIP one
// of the virtual servers uses, MASTER tells lvsd to own it (answer ARP and
// ping, send the gratuitous ARPs) and BACKUP or FAULT to release it; any
// other VIP is a kernel address, added and removed as keepalived does.
// lvskeepalived reports each instance's state to lvsd (lvsadm -L, metrics).
// SIGTERM sends priority 0 and releases (unless -V); SIGUSR1 writes
// keepalived's data dump to /tmp/keepalived.data ($TMPDIR). -P runs the
// VRRP side only, -C the checkers only.
//
// Exit codes of -t are keepalived's: 0 clean, 5 any problem reported
// (a lone warning included), 6 scripts that would run as root without
// enable_script_security, 2 a fatal error (a keyword missing its
// parameter; keepalived aborts there), 6 a main file that cannot be read.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"lvslab/check"
	"lvslab/config/keepalived"
)

const version = "lvskeepalived (keepalived 2.2.7 compatible configuration) v0.1"

// Exit codes (keepalived lib/scheduler.h).
const (
	exitOK         = 0
	exitFatal      = 1
	exitConfig     = 2 // KEEPALIVED_EXIT_CONFIG: bad option, or the parser aborted
	exitNoConfig   = 6 // KEEPALIVED_EXIT_NO_CONFIG
	exitTestFail   = 5 // KEEPALIVED_CHK_EXIT_CONFIG_TEST
	exitTestSecure = 6 // KEEPALIVED_CHK_EXIT_CONFIG_TEST_SECURITY
)

const defaultConf = "/etc/keepalived/keepalived.conf"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options is keepalived's command line.
type options struct {
	file                               string
	vrrpOnly, checkOnly, noBFD         bool
	logConsole, logDetail, noSyslog    bool
	logFile                            string
	logFacility                        string
	dontFork, dumpConf, dontRespawn    bool
	dontReleaseVRRP, dontReleaseIPVS   bool
	releaseVIPs, allConfig             bool
	pidFile, vrrpPid, checkPid, bfdPid string
	namespace, configID, umask         string
	snmp                               bool
	configTest                         bool
	configTestLog                      string
	genhash                            bool
	help, version                      bool
	// lvsdSocket is lvsd's control socket (lvskeepalived's own
	// --lvsd-socket; else LVSD_SOCKET as lvsadm reads it; else @lvsd).
	lvsdSocket string
}

// opt describes one option: short letter, long name, argument kind.
type opt struct {
	short byte
	long  string
	arg   int // 0 none, 1 required, 2 optional
	set   func(o *options, v string)
}

const (
	noArg = iota
	reqArg
	optArg
)

var table = []opt{
	{'f', "use-file", reqArg, func(o *options, v string) { o.file = v }},
	{'P', "vrrp", noArg, func(o *options, _ string) { o.vrrpOnly = true }},
	{'C', "check", noArg, func(o *options, _ string) { o.checkOnly = true }},
	{'B', "no_bfd", noArg, func(o *options, _ string) { o.noBFD = true }},
	{0, "all", noArg, func(o *options, _ string) {}},
	{'l', "log-console", noArg, func(o *options, _ string) { o.logConsole = true }},
	{'D', "log-detail", noArg, func(o *options, _ string) { o.logDetail = true }},
	{'S', "log-facility", reqArg, func(o *options, v string) { o.logFacility = v }},
	{'g', "log-file", optArg, func(o *options, v string) {
		if v == "" {
			v = "/tmp/keepalived.log"
		}
		o.logFile = v
	}},
	{'e', "all-config", noArg, func(o *options, _ string) { o.allConfig = true }},
	{0, "flush-log-file", noArg, func(o *options, _ string) {}},
	{'G', "no-syslog", noArg, func(o *options, _ string) { o.noSyslog = true }},
	{'u', "umask", reqArg, func(o *options, v string) { o.umask = v }},
	{'X', "release-vips", noArg, func(o *options, _ string) { o.releaseVIPs = true }},
	{'V', "dont-release-vrrp", noArg, func(o *options, _ string) { o.dontReleaseVRRP = true }},
	{'I', "dont-release-ipvs", noArg, func(o *options, _ string) { o.dontReleaseIPVS = true }},
	{'R', "dont-respawn", noArg, func(o *options, _ string) { o.dontRespawn = true }},
	{'n', "dont-fork", noArg, func(o *options, _ string) { o.dontFork = true }},
	{'d', "dump-conf", noArg, func(o *options, _ string) { o.dumpConf = true }},
	{'p', "pid", reqArg, func(o *options, v string) { o.pidFile = v }},
	{'r', "vrrp_pid", reqArg, func(o *options, v string) { o.vrrpPid = v }},
	{'c', "checkers_pid", reqArg, func(o *options, v string) { o.checkPid = v }},
	{'b', "bfd_pid", reqArg, func(o *options, v string) { o.bfdPid = v }},
	{'a', "address-monitoring", noArg, func(o *options, _ string) {}},
	{'x', "snmp", noArg, func(o *options, _ string) { o.snmp = true }},
	{'A', "snmp-agent-socket", reqArg, func(o *options, _ string) {}},
	{'m', "core-dump", noArg, func(o *options, _ string) {}},
	{'M', "core-dump-pattern", optArg, func(o *options, _ string) {}},
	{'L', "mem-check-log", noArg, func(o *options, _ string) {}},
	{'s', "namespace", reqArg, func(o *options, v string) { o.namespace = v }},
	{'i', "config-id", reqArg, func(o *options, v string) { o.configID = v }},
	{'t', "config-test", optArg, func(o *options, v string) { o.configTest, o.configTestLog = true, v }},
	{'T', "genhash", noArg, func(o *options, _ string) { o.genhash = true }},
	{'v', "version", noArg, func(o *options, _ string) { o.version = true }},
	{'h', "help", noArg, func(o *options, _ string) { o.help = true }},
	{0, "lvsd-socket", reqArg, func(o *options, v string) { o.lvsdSocket = v }},
}

// parseArgs is getopt_long over table. -T stops parsing: the rest belongs
// to genhash (keepalived: "this should be the first option used").
func parseArgs(args []string) (options, []string, error) {
	var o options
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return o, nil, fmt.Errorf("unexpected argument %s", args[i+1])
			}
			break
		}
		if strings.HasPrefix(a, "--") {
			name, val, hasVal := strings.Cut(a[2:], "=")
			var hit *opt
			for j := range table {
				if table[j].long == name {
					hit = &table[j]
				}
			}
			if hit == nil {
				return o, nil, fmt.Errorf("unknown option %s", a)
			}
			switch hit.arg {
			case noArg:
				if hasVal {
					return o, nil, fmt.Errorf("option --%s takes no parameter", name)
				}
			case reqArg:
				if !hasVal {
					if i+1 >= len(args) {
						return o, nil, fmt.Errorf("missing parameter for option --%s", name)
					}
					i++
					val = args[i]
				}
			}
			hit.set(&o, val)
			if hit.short == 'T' {
				return o, args[i+1:], nil
			}
			continue
		}
		if len(a) < 2 || a[0] != '-' {
			return o, nil, fmt.Errorf("unexpected argument %s", a)
		}
		for k := 1; k < len(a); k++ {
			var hit *opt
			for j := range table {
				if table[j].short == a[k] {
					hit = &table[j]
				}
			}
			if hit == nil {
				return o, nil, fmt.Errorf("unknown option -%c", a[k])
			}
			val := ""
			switch hit.arg {
			case reqArg:
				if k+1 < len(a) {
					val = a[k+1:]
				} else if i+1 < len(args) {
					i++
					val = args[i]
				} else {
					return o, nil, fmt.Errorf("missing parameter for option -%c", a[k])
				}
				k = len(a)
			case optArg:
				val = a[k+1:]
				k = len(a)
			}
			hit.set(&o, val)
			if hit.short == 'T' {
				return o, args[i+1:], nil
			}
		}
	}
	return o, nil, nil
}

const usage = `Usage: lvskeepalived [OPTION...]
  -f, --use-file=FILE          Use the specified configuration file
  -P, --vrrp                   Only run with VRRP subsystem
  -C, --check                  Only run with Health-checker subsystem
  -B, --no_bfd                 Don't run BFD subsystem
  -l, --log-console            Log messages to local console
  -D, --log-detail             Detailed log messages
  -S, --log-facility=[0-7]     Set syslog facility to LOG_LOCAL[0-7]
  -g, --log-file=FILE          Also log to FILE (default /tmp/keepalived.log)
  -G, --no-syslog              Don't log via syslog
  -u, --umask=MASK             umask for file creation (in numeric form)
  -X, --release-vips           Drop VIP on transition from signal.
  -V, --dont-release-vrrp      Don't remove VRRP VIPs and VROUTEs on daemon stop
  -I, --dont-release-ipvs      Don't remove IPVS topology on daemon stop
  -R, --dont-respawn           Don't respawn child processes
  -n, --dont-fork              Don't fork the daemon process
  -d, --dump-conf              Dump the configuration data
  -p, --pid=FILE               Use specified pidfile for parent process
  -r, --vrrp_pid=FILE          Use specified pidfile for VRRP child process
  -c, --checkers_pid=FILE      Use specified pidfile for checkers child process
  -b, --bfd_pid=FILE           Use specified pidfile for BFD child process
  -s, --namespace=NAME         Run in network namespace NAME (overrides config)
  -i, --config-id id           Skip any configuration lines beginning '@' that don't match id
  -t, --config-test[=LOG_FILE] Check the configuration for obvious errors, output to
                                 stderr by default
  -T, --genhash                Enter into genhash utility mode (this should be the first option used).
  -v, --version                Display the version number
  -h, --help                   Display this help message
      --lvsd-socket=NAME       lvsd's control socket (default $LVSD_SOCKET, else @lvsd)
`

func run(args []string, stdout, stderr io.Writer) int {
	o, rest, err := parseArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprint(stderr, usage)
		return exitConfig
	}
	switch {
	case o.genhash:
		return genhash(rest, stdout, stderr)
	case o.help:
		fmt.Fprint(stderr, usage)
		return exitOK
	case o.version:
		fmt.Fprintln(stderr, version) // keepalived prints its version on stderr
		return exitOK
	}
	if o.vrrpOnly && o.checkOnly {
		// keepalived runs both then; say so rather than guess.
		fmt.Fprintln(stderr, "-P and -C together: both subsystems run, as keepalived does")
	}
	if o.file == "" {
		o.file = defaultConf
	}
	if o.configTest {
		out := stderr
		if o.configTestLog != "" {
			f, err := os.Create(o.configTestLog)
			if err != nil {
				fmt.Fprintf(stderr, "config-test log %s: %v\n", o.configTestLog, err)
				return exitFatal
			}
			defer f.Close()
			out = f
		}
		return configTest(o.file, out, dumpTo(o, stdout))
	}
	cfg := keepalived.Load(o.file)
	if w := dumpTo(o, stdout); w != nil {
		dump(cfg, w)
	}
	if cfg.Fatal() {
		for _, d := range cfg.Diags {
			fmt.Fprintln(stderr, d)
		}
		return exitConfig
	}
	if !o.dontFork {
		return daemonize(args, stderr)
	}
	return serve(o)
}

// daemonize is keepalived's fork without -n: the same command line with
// -n, in a new session, detached; the parent exits 0.
func daemonize(args []string, stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFatal
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFatal
	}
	defer devnull.Close()
	p, err := os.StartProcess(self, append([]string{self, "-n"}, args...), &os.ProcAttr{
		Files: []*os.File{devnull, devnull, devnull},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFatal
	}
	_ = p.Release()
	return exitOK
}

// configTest is -t: every problem with file:line and a hint, and
// keepalived's exit code.
func configTest(file string, out, dumpOut io.Writer) int {
	cfg := keepalived.LoadOptions(keepalived.OSFS{}, file, keepalived.Options{InterfaceExists: interfaceExists})
	if dumpOut != nil {
		dump(cfg, dumpOut)
	}
	code := report(cfg, out)
	if cfg.Fatal() {
		return code
	}
	// What the VRRP side would refuse or ignore, with file:line too.
	s, err := convertVRRP(cfg)
	if err != nil {
		fmt.Fprintln(out, err)
	} else {
		for _, w := range s.Warnings {
			fmt.Fprintln(out, w)
		}
	}
	if (err != nil || len(s.Warnings) > 0) && code == exitOK {
		code = exitTestFail
	}
	return code
}

// dumpTo is where -d/--dump-conf writes the parsed configuration.
func dumpTo(o options, stdout io.Writer) io.Writer {
	if o.dumpConf {
		return stdout
	}
	return nil
}

// dump writes the typed configuration (and the IPVS table it asks for) as
// JSON: keepalived's -d prints its internal data; this is ours.
func dump(cfg *keepalived.Config, w io.Writer) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(struct {
		Config *keepalived.Config `json:"config"`
		Table  any                `json:"ipvs_table"`
	}{cfg, cfg.Table()})
}

func report(cfg *keepalived.Config, out io.Writer) int {
	worst := keepalived.Severity(0)
	for _, d := range cfg.Diags {
		fmt.Fprintln(out, d)
		if d.Severity > worst {
			worst = d.Severity
		}
	}
	switch worst {
	case 0:
		return exitOK
	case keepalived.SevFatal:
		for _, d := range cfg.Diags {
			if d.Severity == keepalived.SevFatal && d.Class == keepalived.ClassFileNotFound {
				return exitNoConfig
			}
		}
		return exitConfig
	case keepalived.SevSecurity:
		return exitTestSecure
	}
	return exitTestFail
}

func interfaceExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

const genhashUsage = `Usage: lvskeepalived -T COMMAND [OPTIONS]
Commands:
   -s server-address -p port -u url
   -S -s server-address -p port -u url
   -h
Options:
Either long or short options are allowed.
   --use-ssl         -S       Use SSL connection to remote server.
   --use-sni         -I       Use SNI during SSL handshake (uses virtualhost setting; see -V).
   --server          -s       Use the specified remote server address.
   --port            -p       Use the specified remote server port.
   --url             -u       Use the specified remote server url.
   --use-virtualhost -V       Use the specified virtualhost in GET query.
   --verbose         -v       Use verbose mode output.
   --help            -h       Display this short inlined help screen.
   --fwmark          -m       Use the specified FW mark.
   --protocol        -P       Use the specified HTTP protocol - '1.0', 1.0c', '1.1'.
                                1.0c means 1.0 with 'Connection: close'
   --timeout         -t       Timeout in seconds
`

// genhash is keepalived's genhash (check_genhash.c): the MD5 digest of a
// URL's body, printed as the 32 hex digits a digest keyword takes.
func genhash(args []string, stdout, stderr io.Writer) int {
	q := check.HTTPRequest{Protocol: "1.0", Timeout: 5 * time.Second}
	var server string
	var port uint16
	verbose, haveURL := false, false
	bad := len(args) == 0
	long := map[string]byte{"help": 'h', "verbose": 'v', "use-ssl": 'S', "use-sni": 'I', "server": 's', "use-virtualhost": 'V',
		"port": 'p', "url": 'u', "fwmark": 'm', "protocol": 'P', "timeout": 't'}
	needs := "sVpumPt"
	for i := 0; i < len(args) && !bad; i++ {
		a := args[i]
		var c byte
		val, hasVal := "", false
		switch {
		case strings.HasPrefix(a, "--"):
			name, v, ok := strings.Cut(a[2:], "=")
			if c = long[name]; c == 0 {
				fmt.Fprintf(stderr, "Unknown option %s\n", a)
				bad = true
				continue
			}
			val, hasVal = v, ok
		case len(a) >= 2 && a[0] == '-':
			c = a[1]
			if len(a) > 2 {
				val, hasVal = a[2:], true
			}
		default:
			fmt.Fprintf(stderr, "Unknown option %s\n", a)
			bad = true
			continue
		}
		if strings.IndexByte(needs, c) >= 0 && !hasVal {
			if i+1 >= len(args) {
				fmt.Fprintf(stderr, "Missing parameter for option -%c\n", c)
				bad = true
				continue
			}
			i++
			val = args[i]
		}
		switch c {
		case 'h':
			bad = true
		case 'v':
			verbose = true
		case 'S':
			q.TLS = true
		case 'I':
			q.SNI = true
		case 's':
			server = val
		case 'V':
			q.Virtualhost = val
		case 'p':
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 || n > 65535 {
				fmt.Fprintf(stderr, "invalid port number '%s'\n", val)
				return exitFatal
			}
			port = uint16(n)
		case 'u':
			q.Path, haveURL = val, true
		case 'm':
			if _, err := strconv.ParseUint(val, 10, 32); err != nil {
				fmt.Fprintf(stderr, "invalid fwmark '%s'\n", val)
				return exitFatal
			}
			fmt.Fprintln(stderr, "lvskeepalived: -m (fwmark) is accepted and not applied to the socket")
		case 'P':
			switch val {
			case "1.0", "1.1":
				q.Protocol = val
			case "1.0c", "1.0C":
				q.Protocol = "1.0C"
			default:
				fmt.Fprintf(stderr, "invalid HTTP protocol version '%s'\n", val)
				return exitFatal
			}
		case 't':
			n, err := strconv.ParseUint(strings.TrimLeft(val, " \t"), 10, 32)
			if err != nil {
				fmt.Fprintf(stderr, "invalid timeout '%s'\n", val)
				return exitFatal
			}
			q.Timeout = time.Duration(n) * time.Second
		default:
			fmt.Fprintf(stderr, "Unknown option -%c\n", c)
			bad = true
		}
	}
	addr, err := netip.ParseAddr(server)
	if !bad && server != "" && err != nil {
		fmt.Fprintf(stderr, "server should be an IP, not %s\n", server)
		return exitFatal
	}
	if bad || server == "" || port == 0 || !haveURL {
		fmt.Fprint(stderr, genhashUsage)
		return exitFatal
	}
	q.Addr = netip.AddrPortFrom(addr, port)
	start := time.Now()
	res, err := check.Fetch(context.Background(), q)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(stderr, "Timeout connecting to server %s\n", q.Addr)
		} else {
			fmt.Fprintln(stderr, err)
		}
		return exitFatal
	}
	if verbose {
		fmt.Fprintf(stdout, "-----------------------[ HTTP Header Ascii Buffer ]-----------------------\n%s\n", res.Header)
		fmt.Fprintf(stdout, "-----------------------[    HTML hash resulting    ]-----------------------\n")
	}
	fmt.Fprintln(stdout, res.DigestHex())
	if verbose {
		fmt.Fprintf(stdout, "\nGlobal response time for [%s] = %d usecs\n", q.Path, time.Since(start).Microseconds())
	}
	return exitOK
}
