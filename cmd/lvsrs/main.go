// Command lvsrs prepares this host (its current network namespace) as an LVS
// real server, as the seeds' real-server scripts do, and reverts it exactly.
//
//	lvsrs start|stop|status --mode dr|tun|nat --vip A[,B] [--iface IF] [--dip ADDR]
//
// See usage below for the exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"lvslab/rs"
)

const usage = `usage: lvsrs start|stop|status --mode dr|tun|nat --vip A[,B] [--iface IF] [--dip ADDR]
             [--label lo:0] [--tun-dev NAME] [--userspace] [--state-dir DIR] [-v]

  start   dr:  VIPs as /32 on lo, arp_ignore=1 and arp_announce=2 (all, lo, IF),
               rp_filter=0 (all, IF).
          nat: default route via the director (--dip), previous default routes
               remembered; no VIP on the real server (--vip is only recorded).
          tun: VIPs as /32 on tunl0 (kernel ipip), or, where the kernel has no
               ipip (or with --userspace), on a TUN device fed by a userspace
               IP-in-IP decapsulator: then start stays in the foreground until
               SIGINT/SIGTERM, reverts everything and exits 0. arp as dr,
               rp_filter=0 on all, the tunnel device and IF.
          Starting the same configuration again changes nothing (exit 0); a
          different one is an error until stop.
  stop    reverts exactly what start changed (recorded in the state file of
          this network namespace); a foreground decapsulator is signalled and
          reverts itself. Nothing started: a message, exit 0.
  status  shows what is applied and checks it is still in place.

exit codes: 0 done / status intact; 1 failed / status: something is missing
or changed; 2 usage; 3 status: not started in this network namespace.
`

const (
	exitOK         = 0
	exitFail       = 1
	exitUsage      = 2
	exitNotStarted = 3
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd := args[0]
	fs := flag.NewFlagSet("lvsrs "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	mode := fs.String("mode", "", "dr, tun or nat")
	vip := fs.String("vip", "", "virtual IPv4 address(es), comma-separated")
	iface := fs.String("iface", "", "interface facing the director")
	dip := fs.String("dip", "", "director address on the real-server network (nat)")
	label := fs.String("label", "", "address label for the VIPs, e.g. lo:0")
	tunDev := fs.String("tun-dev", rs.DefaultTUNName, "TUN device name for userspace decapsulation")
	userspace := fs.Bool("userspace", false, "tun: decapsulate in userspace even if the kernel has ipip")
	stateDir := fs.String("state-dir", rs.DefaultStateDir, "directory of the per-namespace state files")
	verbose := fs.Bool("v", false, "log every change")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lvsrs: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	opts := rs.Options{StateDir: *stateDir, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}

	cfg, given, err := buildConfig(*mode, *vip, *iface, *dip, *label, *tunDev, *userspace)
	if err != nil {
		fmt.Fprintf(stderr, "lvsrs: %v\n", err)
		return exitUsage
	}
	switch cmd {
	case "start":
		if !given {
			fmt.Fprintln(stderr, "lvsrs: start needs --mode")
			return exitUsage
		}
		return start(cfg, opts, stdout, stderr)
	case "stop":
		return stop(cfg, given, opts, stdout, stderr)
	case "status":
		return status(cfg, given, opts, stdout, stderr)
	}
	fmt.Fprintf(stderr, "lvsrs: unknown command %q\n%s", cmd, usage)
	return exitUsage
}

// buildConfig turns the flags into a configuration; given is false when no
// --mode was passed (stop and status need none).
func buildConfig(mode, vip, iface, dip, label, tunDev string, userspace bool) (rs.Config, bool, error) {
	var cfg rs.Config
	if mode == "" {
		if vip != "" || dip != "" {
			return cfg, false, errors.New("--vip and --dip need --mode")
		}
		return cfg, false, nil
	}
	m, err := rs.ParseMode(mode)
	if err != nil {
		return cfg, false, err
	}
	vips, err := rs.ParseVIPs(vip)
	if err != nil {
		return cfg, false, err
	}
	cfg = rs.Config{Mode: m, VIPs: vips, Iface: iface, Label: label, Userspace: userspace}
	if m == rs.ModeTUN {
		cfg.TUNName = tunDev
	}
	if dip != "" {
		if cfg.DIP, err = netip.ParseAddr(dip); err != nil {
			return cfg, false, fmt.Errorf("--dip: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, err
	}
	return cfg, true, nil
}

func start(cfg rs.Config, opts rs.Options, stdout, stderr io.Writer) int {
	// Signals are caught from before the first change, and until the end:
	// one arriving during start or a second one during the revert must not
	// kill the process half way. A foreground setup reverts on the first.
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	setup, err := rs.Start(cfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "lvsrs: start: %v\n", err)
		return exitFail
	}
	st := setup.State()
	if setup.AlreadyApplied() {
		fmt.Fprintf(stdout, "already applied: %s (since %s)\n", st.Config, st.Started.Format(time.RFC3339))
		return exitOK
	}
	fmt.Fprintf(stdout, "applied: %s\n", st.Config)
	for _, it := range st.Items {
		fmt.Fprintf(stdout, "  %s\n", it)
	}
	if !setup.Foreground() {
		return exitOK
	}
	fmt.Fprintf(stdout, "decapsulating IP-in-IP in userspace onto %s (pid %d); SIGINT or SIGTERM reverts and exits\n", st.Config.TUNName, os.Getpid())
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}
	if err := setup.Serve(ctx); err != nil {
		fmt.Fprintf(stderr, "lvsrs: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "reverted (%s)\n", setup.Stats())
	return exitOK
}

func stop(cfg rs.Config, given bool, opts rs.Options, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := rs.Stop(ctx, opts)
	if errors.Is(err, rs.ErrNotStarted) {
		fmt.Fprintf(stderr, "lvsrs: nothing to stop: %v\n", err)
		return exitOK
	}
	if st != nil && given && !st.Config.Equal(cfg) {
		fmt.Fprintf(stderr, "lvsrs: note: the recorded setup was %s\n", st.Config)
	}
	if err != nil {
		fmt.Fprintf(stderr, "lvsrs: stop: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "reverted: %s\n", st.Config)
	return exitOK
}

func status(cfg rs.Config, given bool, opts rs.Options, stdout, stderr io.Writer) int {
	st, checks, err := rs.Status(opts)
	if errors.Is(err, rs.ErrNotStarted) {
		fmt.Fprintf(stdout, "not started: %v\n", err)
		return exitNotStarted
	}
	if err != nil {
		fmt.Fprintf(stderr, "lvsrs: status: %v\n", err)
		return exitFail
	}
	how := "kernel"
	if st.Userspace {
		how = "userspace decapsulation"
	}
	if st.Config.Mode != rs.ModeTUN {
		how = ""
	} else {
		how = " (" + how + ")"
	}
	fmt.Fprintf(stdout, "started: %s%s since %s, netns inode %d\n", st.Config, how, st.Started.Format(time.RFC3339), st.NetNS.Inode)
	code := exitOK
	if given && !st.Config.Equal(cfg) {
		fmt.Fprintf(stdout, "MISMATCH asked about %s\n", cfg)
		code = exitFail
	}
	for _, c := range checks {
		if c.OK {
			fmt.Fprintf(stdout, "  ok    %s\n", c.Item)
		} else {
			fmt.Fprintf(stdout, "  FAIL  %s: %s\n", c.Item, c.Problem)
			code = exitFail
		}
	}
	return code
}
