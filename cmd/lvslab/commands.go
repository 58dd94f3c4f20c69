package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"lvslab/sim/capture"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// scenarioFiles lists the scenario files of a directory, sorted.
func scenarioFiles(dir string) ([]string, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	return files, nil
}

// printErrors prints a load error, one problem per line.
func (e *env) printErrors(err error) {
	var list spec.ErrorList
	if errors.As(err, &list) {
		for _, le := range list {
			fmt.Fprintln(e.stderr, le.Error())
		}
		return
	}
	e.errorf("%v", err)
}

func (e *env) cmdList(args []string) int {
	if len(args) > 0 {
		e.errorf("list takes no arguments (use --scenarios DIR)")
		return exitInvalid
	}
	files, err := scenarioFiles(e.scenarios)
	if err != nil {
		e.errorf("%v", err)
		return exitInvalid
	}
	if len(files) == 0 {
		fmt.Fprintf(e.stdout, "no scenarios in %s\n", e.scenarios)
		return exitPass
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFILE\tDESCRIPTION")
	invalid := false
	for _, f := range files {
		s, err := spec.Load(f)
		if err != nil {
			invalid = true
			first := err.Error()
			if i := strings.IndexByte(first, '\n'); i >= 0 {
				first = first[:i] + " (and more)"
			}
			fmt.Fprintf(tw, "?\t%s\tINVALID: %s\n", f, first)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, f, oneLine(s.Description))
	}
	tw.Flush()
	if invalid {
		return exitInvalid
	}
	return exitPass
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func (e *env) cmdValidate(args []string) int {
	fs := flag.NewFlagSet("lvslab validate", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	resolved := fs.Bool("resolved", false, "print the resolved spec")
	vars := varsFlag{}
	fs.Var(vars, "var", "NAME=VALUE")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if fs.NArg() == 0 {
		e.errorf("validate needs at least one FILE")
		return exitInvalid
	}
	code := exitPass
	for _, f := range fs.Args() {
		s, err := spec.LoadWith(f, spec.Options{Vars: vars})
		if err == nil {
			err = segcap.CheckFilters(context.Background(), "", s)
		}
		if err != nil {
			e.printErrors(err)
			code = exitInvalid
			continue
		}
		if *resolved {
			b, err := spec.Marshal(s)
			if err != nil {
				e.errorf("%s: %v", f, err)
				code = exitInvalid
				continue
			}
			fmt.Fprintf(e.stdout, "# %s (resolved)\n%s", f, b)
			continue
		}
		fmt.Fprintf(e.stdout, "%s: ok (%s: %d segments, %d nodes, %d traffic, %d events, %d expectations)\n",
			f, s.Name, len(s.Segments), len(s.Nodes), len(s.Traffic), len(s.Timeline), len(s.Expect))
	}
	return code
}

// resolveScenario finds a scenario by path, file stem or name.
func (e *env) resolveScenario(arg string) (string, error) {
	if st, err := os.Stat(arg); err == nil && !st.IsDir() {
		return arg, nil
	}
	files, _ := scenarioFiles(e.scenarios)
	for _, f := range files {
		stem := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".yaml"), ".yml")
		if stem == arg {
			return f, nil
		}
	}
	for _, f := range files {
		if s, err := spec.LoadWith(f, spec.Options{NoDefaults: true}); err == nil && s.Name == arg {
			return f, nil
		}
	}
	return "", fmt.Errorf("no scenario %q (not a file, nor a name under %s)", arg, e.scenarios)
}

// tour is every scenario tagged "tour", or every scenario when none is.
func (e *env) tour() ([]string, error) {
	files, err := scenarioFiles(e.scenarios)
	if err != nil {
		return nil, err
	}
	var tagged []string
	for _, f := range files {
		if s, err := spec.LoadWith(f, spec.Options{NoDefaults: true}); err == nil && slices.Contains(s.Tags, "tour") {
			tagged = append(tagged, f)
		}
	}
	if len(tagged) > 0 {
		return tagged, nil
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no scenarios in %s", e.scenarios)
	}
	return files, nil
}

func (e *env) cmdRun(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("lvslab run", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	dur := fs.Duration("duration", 0, "override the scenario duration")
	out := fs.String("out", "", "report directory")
	name := fs.String("name", "", "lab name instead of the scenario's")
	vars := varsFlag{}
	fs.Var(vars, "var", "NAME=VALUE")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if *name != "" && fs.NArg() != 1 {
		e.errorf("--name needs exactly one SCENARIO")
		return exitInvalid
	}
	var files []string
	if fs.NArg() == 0 {
		t, err := e.tour()
		if err != nil {
			e.errorf("%v", err)
			return exitInvalid
		}
		files = t
	}
	for _, a := range fs.Args() {
		f, err := e.resolveScenario(a)
		if err != nil {
			e.errorf("%v", err)
			return exitInvalid
		}
		files = append(files, f)
	}
	worst := exitPass
	for _, f := range files {
		code := e.runOne(ctx, f, spec.Options{Vars: vars, Name: *name}, *dur, *out, len(files) > 1)
		worst = max(worst, code)
		if ctx.Err() != nil {
			break
		}
	}
	if len(files) > 1 {
		fmt.Fprintf(e.stdout, "\n%d scenarios, exit %d\n", len(files), worst)
	}
	return worst
}

func (e *env) runOne(ctx context.Context, file string, lopts spec.Options, dur time.Duration, out string, many bool) int {
	s, err := spec.LoadWith(file, lopts)
	if err == nil {
		err = segcap.CheckFilters(ctx, "", s)
	}
	if err != nil {
		e.printErrors(err)
		return exitInvalid
	}
	dir := out
	if dir != "" && many {
		dir = filepath.Join(out, s.Name)
	}
	fmt.Fprintf(e.stdout, "== %s (%s)\n", s.Name, file)
	opts := e.runOptions(s)
	opts.OutDir, opts.Duration = dir, dur
	res := runner.Execute(ctx, s, opts)
	e.printResult(res)
	return res.Verdict.ExitCode()
}

func (e *env) printResult(res *runner.Result) {
	w := e.stdout
	for _, x := range res.MissingOptional {
		fmt.Fprintf(w, "   note: %s (the scenario works around it)\n", x)
	}
	if res.Error != "" {
		fmt.Fprintf(w, "   error: %s\n", strings.ReplaceAll(res.Error, "\n", "\n          "))
	}
	for _, x := range res.NotExecuted {
		fmt.Fprintf(w, "   not executed: %s (no stage for it in this lvslab)\n", x)
	}
	for _, x := range res.Expectations {
		mark := strings.ToUpper(string(x.Status))
		line := fmt.Sprintf("   %-13s %s", mark, x.Name)
		if x.Detail != "" {
			line += ": " + x.Detail
		}
		if x.XFail != "" {
			line += " [xfail: " + x.XFail + "]"
		}
		fmt.Fprintln(w, line)
	}
	for _, p := range res.Processes {
		if p.State != topo.ProcRunning && p.State != topo.ProcNotStarted && !(p.State == topo.ProcExited && p.ExitCode == 0) {
			fmt.Fprintf(w, "   process %s (log %s)\n", p, p.Log)
		}
	}
	fmt.Fprintf(w, "   verdict: %s (exit %d); build %s, ran %s; report in %s\n",
		res.Verdict, res.Verdict.ExitCode(), time.Duration(res.BuildTime).Round(time.Millisecond),
		time.Duration(res.RunTime).Round(time.Millisecond), res.Dir)
}

func (e *env) cmdUp(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("lvslab up", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fg := fs.Bool("foreground", false, "stay until signalled, then tear down")
	name := fs.String("name", "", "lab name instead of the scenario's")
	vars := varsFlag{}
	fs.Var(vars, "var", "NAME=VALUE")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if fs.NArg() != 1 {
		e.errorf("up needs one FILE")
		return exitInvalid
	}
	f, err := e.resolveScenario(fs.Arg(0))
	if err != nil {
		e.errorf("%v", err)
		return exitInvalid
	}
	s, err := spec.LoadWith(f, spec.Options{Vars: vars, Name: *name})
	if err != nil {
		e.printErrors(err)
		return exitInvalid
	}
	feats := runner.DetectFeatures(e.binDir)
	if required, _ := feats.Missing(s); len(required) > 0 {
		e.errorf("environment: %s", strings.Join(required, "; "))
		return exitInvalid
	}
	opts := e.topoOptions()
	opts.Mode = topo.ModeUp
	if *fg {
		opts.Mode = topo.ModeRun
	}
	lab, err := topo.Build(ctx, s, opts)
	if err != nil {
		e.errorf("%v", err)
		return exitFor(err)
	}
	e.printLab(lab)
	if !*fg {
		if err := lab.Detach(); err != nil {
			e.errorf("%v", err)
			return exitInvalid
		}
		fmt.Fprintf(e.stdout, "remove it with:  lvslab down %s\n", s.Name)
		return exitPass
	}
	fmt.Fprintln(e.stdout, "lab is up; SIGINT or SIGTERM tears it down")
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := lab.Close(cctx); err != nil {
		e.errorf("%v", err)
		return exitInvalid
	}
	fmt.Fprintln(e.stdout, "lab removed")
	return exitPass
}

// printLab says what is up and how to reach it.
func (e *env) printLab(lab *topo.Lab) {
	s := lab.Spec
	fmt.Fprintf(e.stdout, "lab %s is up: %d segments, %d nodes; files and logs in %s\n", s.Name, len(s.Segments), len(s.Nodes), lab.RunDir())
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tADDRESSES\tPROCESSES\tNAMESPACE")
	procs := map[string][]string{}
	for _, p := range lab.Processes() {
		st := p.Status()
		if st.State == topo.ProcRunning {
			procs[p.Node] = append(procs[p.Node], p.Name)
		}
	}
	for _, n := range s.Nodes {
		var addrs []string
		for _, ifc := range n.Interfaces {
			for _, a := range ifc.Addresses {
				addrs = append(addrs, ifc.Name+" "+a.String())
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.Role, strings.Join(addrs, ", "), strings.Join(procs[n.Name], " "), topo.NamespaceName(s.Name, n.Name))
	}
	tw.Flush()
	first := "NODE"
	if len(s.Nodes) > 0 {
		first = s.Nodes[0].Name
	}
	fmt.Fprintf(e.stdout, "reach a node:    lvslab exec %s -- ip -br addr\n", first)
	fmt.Fprintf(e.stdout, "             or  ip netns exec %s bash\n", topo.NamespaceName(s.Name, first))
}

func (e *env) cmdDown(ctx context.Context, args []string) int {
	if len(args) > 1 {
		e.errorf("down takes at most one lab name")
		return exitInvalid
	}
	name := ""
	if len(args) == 1 {
		name = args[0]
	}
	if err := topo.Down(ctx, e.topoOptions(), name); err != nil {
		e.errorf("%v", err)
		return exitInvalid
	}
	fmt.Fprintln(e.stdout, "lab removed")
	return exitPass
}

func (e *env) cmdExec(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("lvslab exec", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	labName := fs.String("lab", "", "lab name (default: the only lab up)")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	rest := fs.Args()
	if len(rest) < 2 {
		e.errorf("usage: lvslab exec [--lab NAME] NODE -- CMD [ARGS...]")
		return exitInvalid
	}
	node, argv := rest[0], rest[1:]
	if argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		e.errorf("exec needs a command after --")
		return exitInvalid
	}
	rec, err := topo.FindLab(e.topoOptions(), *labName)
	if err != nil {
		e.errorf("%v", err)
		return exitInvalid
	}
	ns, ok := rec.Namespace(node)
	if !ok {
		e.errorf("lab %s has no node %q (nodes: %s)", rec.Lab, node, strings.Join(rec.Nodes(), ", "))
		return exitInvalid
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	path := os.Getenv("PATH")
	if rec.BinDir != "" {
		path = rec.BinDir + ":" + path
	}
	cmd.Env = append(os.Environ(), "PATH="+path, "LVSLAB_LAB="+rec.Lab, "LVSLAB_NODE="+node)
	if dir := filepath.Join(rec.RunDir, "nodes", node); rec.RunDir != "" {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			cmd.Dir = dir
		}
	}
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		e.errorf("%v", err)
		return exitInvalid
	}
	return exitPass
}

func (e *env) cmdStatus(args []string) int {
	if len(args) > 0 {
		e.errorf("status takes no arguments")
		return exitInvalid
	}
	labs, err := topo.Labs(e.topoOptions())
	if err != nil {
		e.errorf("%v", err)
		return exitInvalid
	}
	if len(labs) == 0 {
		fmt.Fprintln(e.stdout, "no labs")
		return exitPass
	}
	for _, l := range labs {
		state := l.State
		if !l.Live {
			state += ", owner gone (lvslab clean removes it)"
		}
		fmt.Fprintf(e.stdout, "%s (%s, %s) from %s, since %s; files in %s\n", l.Lab, l.Mode, state, l.Spec, l.Created.Format(time.DateTime), l.RunDir)
		for _, p := range l.Processes {
			state := "running"
			if !p.Running() {
				state = "exited"
			}
			fmt.Fprintf(e.stdout, "  %s/%s pid %d %s\n", p.Node, p.Name, p.PID, state)
		}
	}
	return exitPass
}

func (e *env) cmdClean(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("lvslab clean", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	force := fs.Bool("force", false, "also labs owned by a running lvslab")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	rep, err := topo.Clean(ctx, e.topoOptions(), *force, fs.Args()...)
	for _, l := range rep.Labs {
		fmt.Fprintf(e.stdout, "removed lab %s\n", l)
	}
	if rep.Killed > 0 {
		fmt.Fprintf(e.stdout, "killed %d processes\n", rep.Killed)
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(e.stdout, "left alone: %s (clean --force removes it)\n", s)
	}
	if err != nil {
		e.errorf("%v", err)
		return exitInvalid
	}
	left, err := topo.Leftovers(e.topoOptions(), fs.Args()...)
	if err == nil && len(left) > 0 && len(rep.Skipped) == 0 {
		e.errorf("still there: %s", strings.Join(left, ", "))
		return exitInvalid
	}
	if len(rep.Labs) == 0 && len(rep.Skipped) == 0 {
		fmt.Fprintln(e.stdout, "nothing to clean")
	}
	return exitPass
}
