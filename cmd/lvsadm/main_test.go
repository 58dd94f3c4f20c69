package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/config"
	"lvslab/ipvs/ctl"
)

// fakeLVSD stands in for lvsd on a real abstract socket: it records the
// commands it receives and answers with the given status.
type fakeLVSD struct {
	name   string
	mu     sync.Mutex
	cmds   []config.Command
	status ctl.Reply
	// refuse makes every command that changes state fail with this text
	// (a restore: its first rule, with the rule's file and line).
	refuse string
	// refused makes lvsd refuse the connection with this text.
	refused string
	// lines are the rule lines of restores received.
	lines []int
}

func startFake(t *testing.T, status ctl.Reply) *fakeLVSD {
	t.Helper()
	f := &fakeLVSD{
		name:   fmt.Sprintf("lvslab-lvsadm-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")),
		status: status,
	}
	ln, err := ctl.Listen(f.name)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ctl.Serve(ctx, ln, ctl.HandlerFunc(func(_ context.Context, _ ctl.Peer, req ctl.Request) ctl.Reply {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.refused != "" {
				return ctl.Reply{Error: f.refused, Refused: true}
			}
			if req.Command.Op == config.OpRestore {
				// All or nothing, as lvsd.
				if f.refuse != "" {
					r := req.Rules[0]
					return ctl.Reply{Error: fmt.Sprintf("%s:%d: %s", r.File, r.Line, f.refuse)}
				}
				for _, r := range req.Rules {
					f.cmds = append(f.cmds, r.Command)
					f.lines = append(f.lines, r.Line)
				}
				return ctl.Reply{}
			}
			f.cmds = append(f.cmds, req.Command)
			if req.Command.Op.Mutates() {
				return ctl.Reply{Error: f.refuse}
			}
			return f.status
		}))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Error("fake lvsd did not stop")
		}
	})
	return f
}

func (f *fakeLVSD) received() []config.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]config.Command(nil), f.cmds...)
}

type result struct {
	code           int
	stdout, stderr string
}

func runWith(socket, stdin string, args ...string) result {
	var out, errb bytes.Buffer
	env := func(k string) string {
		if k == socketEnvVar {
			return socket
		}
		return ""
	}
	code := run(args, strings.NewReader(stdin), &out, &errb, env)
	return result{code, out.String(), errb.String()}
}

func TestRunList(t *testing.T) {
	f := startFake(t, sampleReply())
	r := runWith(f.name, "", "-L", "-n")
	assert.Equal(t, result{0, golden(t, "L-n"), ""}, r)
	r = runWith(f.name, "", "-Sn")
	assert.Equal(t, result{0, golden(t, "S-n"), ""}, r)
	r = runWith(f.name, "", "-ln", "--timeout")
	assert.Equal(t, 0, r.code)
	assert.Equal(t, "Timeout (tcp tcpfin udp): 0 0 0\n", r.stdout, "the fake has no timeouts")

	cmds := f.received()
	require.Len(t, cmds, 3)
	assert.Equal(t, config.Command{Op: config.OpList, List: config.ListOptions{Numeric: true}}, cmds[0])
	assert.Equal(t, config.Command{Op: config.OpSave, List: config.ListOptions{Numeric: true}}, cmds[1])
	assert.True(t, cmds[2].List.Timeout)
}

func TestRunCommands(t *testing.T) {
	f := startFake(t, ctl.Reply{})
	for _, args := range [][]string{
		{"-A", "-t", "207.175.44.110:80", "-s", "rr"},
		{"–a", "–t", "207.175.44.110:80", "–r", "192.168.10.8", "–m"},
		{"--set", "1200", "5", "60"},
		{"-C"},
	} {
		r := runWith(f.name, "", args...)
		assert.Equal(t, result{0, "", ""}, r, "%q", args)
	}
	cmds := f.received()
	require.Len(t, cmds, 4)
	assert.Equal(t, config.OpAddService, cmds[0].Op)
	assert.Equal(t, "rr", cmds[0].Service.Scheduler)
	assert.Equal(t, config.OpAddDest, cmds[1].Op)
	assert.Equal(t, config.ForwardMasq, cmds[1].Dest.Forward)
	assert.Equal(t, uint16(80), cmds[1].Dest.Port)
	assert.Equal(t, 1200*time.Second, cmds[2].Timeouts.TCP)
	assert.Equal(t, config.OpClear, cmds[3].Op)
}

func TestRunRefused(t *testing.T) {
	f := startFake(t, ctl.Reply{})
	f.refuse = "Service already exists"
	r := runWith(f.name, "", "-A", "-t", "207.175.44.110:80")
	assert.Equal(t, result{1, "", "Service already exists\n"}, r)
}

func TestRunRestore(t *testing.T) {
	f := startFake(t, ctl.Reply{})
	rules := "# rules\n" + golden(t, "S-n")
	r := runWith(f.name, rules, "-R")
	assert.Equal(t, result{0, "", ""}, r)
	cmds := f.received()
	require.Len(t, cmds, 11, "one command per rule line, in order, in one request")
	assert.Equal(t, config.OpAddService, cmds[0].Op)
	assert.Equal(t, config.OpAddDest, cmds[10].Op)
	assert.Equal(t, uint32(1), cmds[10].Service.Fwmark)
	f.mu.Lock()
	assert.Equal(t, 2, f.lines[0], "lines are numbered as in the file, comments included")
	f.mu.Unlock()

	// A bad line anywhere: nothing is sent.
	bad := rules + "-a -f 1 -r 192.168.10.6 -w lots\n"
	r = runWith(f.name, bad, "-R")
	assert.Equal(t, result{2, "", "<stdin>:13: illegal weight specified\n"}, r)
	assert.Len(t, f.received(), 11)

	// A line lvsd refuses: lvsd's error names it, and nothing is applied.
	f.refuse = "Service already exists"
	r = runWith(f.name, "\n-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80\n", "--restore")
	assert.Equal(t, result{1, "", "<stdin>:2: Service already exists\n"}, r)
	assert.Len(t, f.received(), 11)
}

func TestRunRefusedConnection(t *testing.T) {
	f := startFake(t, sampleReply())
	f.refused = "Permission denied (you must be root)"
	for _, args := range [][]string{{"-L", "-n"}, {"-A", "-t", "10.0.0.1:80"}} {
		r := runWith(f.name, "", args...)
		assert.Equal(t, result{2, "", "Can't initialize ipvs: Permission denied (you must be root)\n"}, r, "%q", args)
	}
	r := runWith(f.name, "-C\n", "-R")
	assert.Equal(t, result{2, "", "Can't initialize ipvs: Permission denied (you must be root)\n"}, r)
}

func TestRunNoLVSD(t *testing.T) {
	name := fmt.Sprintf("lvslab-lvsadm-test-%d-nobody-home", os.Getpid())
	r := runWith(name, "", "-L", "-n")
	assert.Equal(t, 2, r.code)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "Can't initialize ipvs: connection refused (no lvsd on control socket @"+name+")\n"+
		"Are you sure that lvsd is running in this network namespace?\n", r.stderr)
}

func TestRunSocketOption(t *testing.T) {
	f := startFake(t, sampleReply())
	// --socket wins over $LVSD_SOCKET and is not an ipvsadm argument.
	r := runWith("lvslab-no-such-socket", "", "-L", "--socket", f.name, "-n")
	assert.Equal(t, result{0, golden(t, "L-n"), ""}, r)
	r = runWith("lvslab-no-such-socket", "", "--socket="+f.name, "-Ln")
	assert.Equal(t, 0, r.code)
	r = runWith("", "", "-L", "--socket")
	assert.Equal(t, result{2, "", "--socket: missing argument\n"}, r)
}

func TestRunUsageErrors(t *testing.T) {
	// No lvsd is needed to reject a command line.
	r := runWith("lvslab-no-such-socket", "", "-n", "-L")
	assert.Equal(t, 255, r.code)
	assert.Equal(t, "-n: the command (-A -E -D -C -R -S -a -e -d -L -l -Z -P -Q -G --set -h -v) must come first\n"+
		"Try `lvsadm -h' or 'lvsadm --help' for more information.\n", r.stderr)
	r = runWith("lvslab-no-such-socket", "", "-a", "-t", "1.2.3.4:80")
	assert.Equal(t, result{2, "", "You need to supply the 'real-server' option for the 'add-server' command\n"}, r)
}

func TestRunHelpVersion(t *testing.T) {
	r := runWith("lvslab-no-such-socket", "", "-v")
	assert.Equal(t, result{0, "lvsadm v1.31 2019/12/24 (ipvsadm-compatible; lvslab; IPVS v1.2.1)\n", ""}, r)
	assert.Equal(t, "v1.31", strings.Fields(r.stdout)[1], "ipvsadm's version is the second word")
	r = runWith("lvslab-no-such-socket", "", "--help")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "\nUsage:\n  lvsadm -A|E virtual-service")
	assert.Contains(t, r.stdout, "rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh|twos")
	assert.Contains(t, r.stdout, "LVSD_SOCKET")
	assert.Contains(t, r.stdout, "one transaction, every line\n")
	assert.Contains(t, r.stdout, "needs root or CAP_NET_ADMIN, even to list")
}
