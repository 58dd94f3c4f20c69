// Command lvslab builds network-namespace labs from scenario files and runs
// them.
//
//	lvslab run [SCENARIO...]       build, run for the scenario's duration, judge, tear down
//	lvslab list                    scenarios under ./scenarios
//	lvslab validate FILE...        check scenario files
//	lvslab up FILE                 build a lab and leave it running
//	lvslab down [NAME]             remove a lab that is up
//	lvslab exec NODE -- CMD...     run a command in a node of the lab that is up
//	lvslab status                  labs that are up and their processes
//	lvslab clean [NAME...]         remove labs, also after a crash
//	lvslab schema                  the JSON Schema of scenario files
//
// Exit codes: 0 pass, 1 an expectation failed (or the lab did not come up),
// 2 invalid spec or environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"lvslab/sim/service"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

const usage = `usage: lvslab [global flags] COMMAND [ARGS]

commands:
  run [flags] [SCENARIO...]   build each scenario's lab, run it for its duration, judge
                              its expectations, tear it down; no SCENARIO: every one
                              under ./scenarios tagged "tour" (all of them if none is)
      --duration D            run for D instead of the scenario's duration
      --out DIR               report directory (one scenario) or parent directory
      --var NAME=VALUE        override a vars: entry (repeatable)
      --name NAME             lab name instead of the scenario's (one SCENARIO)
  list                        scenarios under ./scenarios, with name and description
  validate FILE...            check scenario files; errors as file:line:column
      --resolved              print the resolved spec (role defaults filled in)
  up [flags] FILE             build the lab and leave it running
      --foreground            stay until SIGINT/SIGTERM, then tear it down
      --var, --name           as for run
  down [NAME]                 remove the lab that is up (the only one, or NAME)
  exec [--lab NAME] NODE -- CMD [ARGS...]
                              run a command in a node of a lab that is up
  status                      labs and their processes
  clean [--force] [NAME...]   remove the named labs, or every lab and leftover lvsl-
                              namespace; --force also labs owned by a running lvslab
  schema                      print the JSON Schema of scenario files
` + explainUsage + `  service KIND --listen ADDR --identity NAME
                              a built-in service (http-echo, https-echo, smtp-banner, tcp-sink, udp-echo); the lab
                              starts these in nodes

global flags:
  --state-dir DIR             registry of labs (default /run/lvslab)
  --bin-dir DIR               where lvsd, lvsadm, lvsrs are (default: this binary's directory)
  --scenarios DIR             scenario directory (default ./scenarios)
  -v                          log progress to stderr

exit codes: 0 pass, 1 expectation failed, 2 invalid spec or environment
`

const (
	exitPass    = 0
	exitFail    = 1
	exitInvalid = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// env is what every command gets.
type env struct {
	stdout, stderr io.Writer
	stateDir       string
	binDir         string
	scenarios      string
	log            *slog.Logger
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lvslab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	e := &env{stdout: stdout, stderr: stderr}
	fs.StringVar(&e.stateDir, "state-dir", topo.DefaultStateDir, "")
	fs.StringVar(&e.binDir, "bin-dir", "", "")
	fs.StringVar(&e.scenarios, "scenarios", "scenarios", "")
	verbose := fs.Bool("v", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitPass
		}
		return exitInvalid
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	e.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if e.binDir == "" {
		e.binDir = defaultBinDir()
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return exitInvalid
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cmd, cargs := rest[0], rest[1:]
	if cmd != "help" && wantsHelp(cargs) && commandUsage(cmd) != "" {
		printCommandHelp(stdout, cmd)
		return exitPass
	}
	switch cmd {
	case "run":
		return e.cmdRun(ctx, cargs)
	case "list":
		return e.cmdList(cargs)
	case "validate":
		return e.cmdValidate(cargs)
	case "up":
		return e.cmdUp(ctx, cargs)
	case "down":
		return e.cmdDown(ctx, cargs)
	case "exec":
		return e.cmdExec(ctx, cargs)
	case "status":
		return e.cmdStatus(cargs)
	case "clean":
		return e.cmdClean(ctx, cargs)
	case "schema":
		b, err := spec.Schema()
		if err != nil {
			fmt.Fprintf(stderr, "lvslab: %v\n", err)
			return exitInvalid
		}
		_, _ = stdout.Write(b)
		return exitPass
	case "service":
		return e.cmdService(ctx, cargs)
	case "explain":
		return e.cmdExplainAny(ctx, cargs)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitPass
	}
	fmt.Fprintf(stderr, "lvslab: unknown command %q\n%s", cmd, usage)
	return exitInvalid
}

// defaultBinDir is the directory of this binary (bin/ after make build);
// LVSLAB_BIN_DIR overrides it.
func defaultBinDir() string {
	if d := os.Getenv("LVSLAB_BIN_DIR"); d != "" {
		return d
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Dir(exe)
}

func (e *env) topoOptions() topo.Options {
	return topo.Options{StateDir: e.stateDir, BinDir: e.binDir, Logger: e.log}
}

func (e *env) errorf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "lvslab: "+format+"\n", args...)
}

// varsFlag collects --var NAME=VALUE.
type varsFlag map[string]string

func (v varsFlag) String() string { return "" }

func (v varsFlag) Set(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("--var wants NAME=VALUE, got %q", s)
	}
	v[k] = val
	return nil
}

// exitFor maps an error to the exit code: the lab's processes failing is a
// failed scenario (1); everything else that stops a build is the spec's or
// the machine's (2).
func exitFor(err error) int {
	var pe *topo.ProcessError
	if errors.As(err, &pe) {
		return exitFail
	}
	return exitInvalid
}

func (e *env) cmdService(ctx context.Context, args []string) int {
	if len(args) == 0 {
		e.errorf("service needs a kind: %s", strings.Join(service.Kinds(), ", "))
		return exitInvalid
	}
	fs := flag.NewFlagSet("lvslab service", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	listen := fs.String("listen", "", "address:port")
	identity := fs.String("identity", "", "name to answer with")
	control := fs.String("control", "", "control file (status, delay, body), re-read on every answer")
	readTOA := fs.Bool("toa", false, "http-echo: read the TOA option of FULLNAT connections and report the client in X-Lvslab-Toa-Client")
	if err := fs.Parse(args[1:]); err != nil {
		return exitInvalid
	}
	if *listen == "" {
		e.errorf("service needs --listen")
		return exitInvalid
	}
	if err := service.Run(ctx, service.Config{Kind: args[0], Listen: *listen, Identity: *identity, Control: *control, Out: e.stdout, TOA: *readTOA}); err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	return exitPass
}
