// Command lvsadm administers lvsd the way ipvsadm(8) administers the kernel's
// IPVS: the same command line, the same output, byte for byte.
//
//	lvsadm -A -t 10.0.0.1:80 -s rr
//	lvsadm -a -t 10.0.0.1:80 -r 192.168.1.2 -g -w 1
//	lvsadm -L -n
//
// It talks to lvsd over lvsd's control socket (package ipvs/ctl): the
// abstract unix socket @lvsd, which is per network namespace, so
// "ip netns exec X lvsadm ..." administers the lvsd of namespace X. Another
// socket is chosen with the LVSD_SOCKET environment variable or a
// "--socket NAME" argument (a NAME with a slash is a file-system path).
//
// Host and service names (without -n) come from /etc/hosts and
// /etc/services only: lvsadm never queries DNS.
//
// As ipvsadm needs CAP_NET_ADMIN for everything, listing included, lvsd
// serves only root and processes with CAP_NET_ADMIN, unless it runs with
// --unprivileged-list: then other users may list and save (-L, -S) too.
//
// -R is one transaction: every line is parsed here, then lvsd checks every
// command against its configuration before it applies any; on a refused
// line nothing changes and the error names the line.
//
// Exit status: 0 on success; 2 for a bad command line or rules file, when
// no lvsd answers (ipvsadm's status when the kernel lacks IPVS), and when
// lvsd refuses the connection (no permission, too many connections); 255
// when no command comes first (ipvsadm's "Try `ipvsadm -h'" case); 1 when
// lvsd refuses or fails a command.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"lvslab/config"
	"lvslab/ipvs/ctl"
)

const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitTryHelp  = 255
	socketEnvVar = "LVSD_SOCKET"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// run is lvsadm with its environment passed in, for tests.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	socket, args, err := socketArg(args, getenv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	names := config.SystemNames()
	parser := config.Parser{Names: names}
	cmd, err := parser.ParseArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, err)
		var ae *config.ArgError
		if errors.As(err, &ae) && ae.TryHelp {
			fmt.Fprintf(stderr, "Try `%s -h' or '%s --help' for more information.\n", progName, progName)
			return exitTryHelp
		}
		return exitUsage
	}

	switch cmd.Op {
	case config.OpHelp:
		io.WriteString(stdout, usage())
		return exitOK
	case config.OpVersion:
		io.WriteString(stdout, version())
		return exitOK
	case config.OpRestore:
		// Every line is parsed before anything is sent: a bad rules file
		// changes nothing.
		rules, err := parser.ParseRuleLines(stdin, "<stdin>")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitUsage
		}
		if len(rules) == 0 {
			return exitOK
		}
		c, code := dial(socket, stderr)
		if c == nil {
			return code
		}
		defer c.Close()
		return restore(c, rules, stderr)
	}

	c, code := dial(socket, stderr)
	if c == nil {
		return code
	}
	defer c.Close()
	reply, err := c.Do(ctl.Request{Command: cmd})
	if err != nil {
		return failed(err, stderr)
	}
	if cmd.List.Numeric {
		names = nil
	}
	io.WriteString(stdout, output(cmd, reply, names))
	return exitOK
}

// output is what a command prints from lvsd's reply.
func output(cmd config.Command, r ctl.Reply, names *config.Names) string {
	switch cmd.Op {
	case config.OpSave:
		return config.FormatSave(saveServices(r.Services), names)
	case config.OpGetLaddr:
		return formatLaddrs(r.Services)
	case config.OpList:
		o := cmd.List
		switch {
		case o.Connections:
			return formatConns(r.Conns, o, names)
		case cmd.HasService:
			return formatServices(r.Services, o, names)
		case o.Timeout:
			return formatTimeouts(r.Timeouts)
		case o.Daemon:
			return formatDaemons(r.Daemons)
		case o.Defense:
			return formatDefense(r.Defense)
		}
		return formatListAll(r, o, names)
	}
	return ""
}

// restore sends the rules as one transaction: lvsd checks every one
// against its configuration before it applies any, so a refused line (a
// duplicate -A, a -a for a missing service) changes nothing. ipvsadm -R
// hands the kernel one line at a time; lvsadm keeps the promise of its help
// text instead, as lvsd's SIGHUP reload does.
func restore(c *ctl.Client, rules []config.Rule, stderr io.Writer) int {
	_, err := c.Do(ctl.Request{Command: config.Command{Op: config.OpRestore}, Rules: rules})
	if err != nil {
		return failed(err, stderr)
	}
	return exitOK
}

// failed reports an error of lvsd or of the connection. A refused
// connection (no permission, over the connection limit) is ipvsadm's
// "Can't initialize ipvs" case, exit status 2.
func failed(err error, stderr io.Writer) int {
	var re *ctl.RemoteError
	if errors.As(err, &re) && re.Refused {
		fmt.Fprintf(stderr, "Can't initialize ipvs: %s\n", re.Msg)
		return exitUsage
	}
	fmt.Fprintln(stderr, errorText(err))
	return exitFailed
}

func dial(socket string, stderr io.Writer) (*ctl.Client, int) {
	c, err := ctl.Dial(socket)
	if err != nil {
		// ipvsadm's words when the kernel has no IPVS, about lvsd instead.
		reason := err.Error()
		var errno syscall.Errno
		if errors.As(err, &errno) {
			reason = errno.Error()
		}
		fmt.Fprintf(stderr, "Can't initialize ipvs: %s (no lvsd on control socket %s)\n"+
			"Are you sure that lvsd is running in this network namespace?\n",
			reason, ctl.SocketAddr(socket))
		return nil, exitUsage
	}
	return c, exitOK
}

// errorText is what lvsadm prints for an error: lvsd's own words when it
// answered, else the transport error.
func errorText(err error) string {
	var re *ctl.RemoteError
	if errors.As(err, &re) {
		return re.Msg
	}
	return err.Error()
}

// socketArg picks the control socket: "--socket NAME" or "--socket=NAME"
// anywhere before "--" (and removed from the ipvsadm arguments), else
// $LVSD_SOCKET, else lvsd's default.
func socketArg(args []string, getenv func(string) string) (string, []string, error) {
	socket := getenv(socketEnvVar)
	if socket == "" {
		socket = ctl.DefaultSocket
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return socket, append(out, args[i:]...), nil
		case a == "--socket":
			if i+1 >= len(args) || args[i+1] == "" {
				return "", nil, errors.New("--socket: missing argument")
			}
			socket = args[i+1]
			i++
		case strings.HasPrefix(a, "--socket="):
			socket = strings.TrimPrefix(a, "--socket=")
			if socket == "" {
				return "", nil, errors.New("--socket: missing argument")
			}
		default:
			out = append(out, a)
		}
	}
	return socket, out, nil
}
