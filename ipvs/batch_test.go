package ipvs

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/config"
	"lvslab/ipvs/ctl"
)

// bigRules is a rules file of services × (one -A and dests -a) lines, the
// shape of issue 8's 10,000-line file (2000 services of 4 real servers).
func bigRules(services, dests int) string {
	var b strings.Builder
	for s := range services {
		vip := fmt.Sprintf("10.%d.%d.%d", 1+s/65536, s/256%256, s%256)
		fmt.Fprintf(&b, "-A -t %s:80 -s wlc\n", vip)
		for d := range dests {
			fmt.Fprintf(&b, "-a -t %s:80 -r 172.16.%d.%d:8080 -m -w %d\n", vip, d, 1+s%250, 1+d)
		}
	}
	return b.String()
}

func parseRules(tb testing.TB, text string) []config.Rule {
	tb.Helper()
	rules, err := config.Parser{}.ParseRuleLines(strings.NewReader(text), "<stdin>")
	require.NoError(tb, err)
	return rules
}

func newBareEngine(tb testing.TB) *Engine {
	tb.Helper()
	e, err := New(Config{Now: func() int64 { return int64(time.Hour) }})
	require.NoError(tb, err)
	return e
}

func TestApplyBatchAllOrNothing(t *testing.T) {
	e := newBareEngine(t)
	require.NoError(t, e.Apply(config.Command{Op: config.OpAddService,
		Service: config.Service{Protocol: config.ProtoTCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 443, Scheduler: "rr"}}))
	before := e.Table()

	// Issue 8: a duplicate -A at line 5001 of 10,000 (the four -a after
	// it then name a service that does not exist either).
	lines := strings.SplitAfter(bigRules(2000, 4), "\n")
	require.Len(t, lines, 10001)
	good := strings.Join(lines, "")
	lines[5000] = lines[0]
	err := e.ApplyBatch(context.Background(), parseRules(t, strings.Join(lines, "")))
	require.EqualError(t, err, "<stdin>:5001: Service already exists")
	assert.Equal(t, before, e.Table(), "nothing applied")
	assert.Len(t, e.services, 1)

	require.NoError(t, e.ApplyBatch(context.Background(), parseRules(t, good)))
	want, err := config.Parser{}.LoadRules(strings.NewReader("-A -t 192.0.2.1:443 -s rr\n"+good), "x")
	require.NoError(t, err)
	assert.Equal(t, *want, e.Table())
	require.Len(t, e.services, 2001)
	assert.Len(t, e.services[2000].dests, 4, "the running state has every real server")
}

func TestApplyBatchRuntimeRefusals(t *testing.T) {
	for _, tc := range []struct{ bad, err string }{
		{"-A -t [2001:db8::1]:80", "<stdin>:3: TCP [2001:db8::1]:80: IPv6 services are not supported by lvsd yet"},
		{"-a -t 10.0.0.1:80 -r 172.16.0.9 --fullnat", "<stdin>:3: forwarding method FullNat needs local addresses for TCP 10.0.0.1:80 first (-P -z LADDR)"},
		{"-P -t 10.0.0.1:80 -z 172.16.0.10\n-Q -t 10.0.0.1:80 -z 172.16.0.11", "<stdin>:4: No such Local address"},
		{"-a -t 10.0.0.9:80 -r 172.16.0.9", "<stdin>:3: Service not defined"},
		{"", "<stdin>:3: conntrack: --set tcp -1s: "},
	} {
		e := newBareEngine(t)
		tcp, fin, udp := e.conns.Timeouts()
		bad := tc.bad
		if bad == "" {
			bad = "-Z"
		}
		rules := parseRules(t, "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 172.16.0.2 -m\n"+bad+"\n--set 1 2 3\n")
		if tc.bad == "" {
			// What the parser cannot produce, but a hand-written
			// request can.
			rules[2].Command = config.Command{Op: config.OpSetTimeouts, Timeouts: config.Timeouts{TCP: -time.Second}}
		}
		err := e.ApplyBatch(context.Background(), rules)
		require.Error(t, err, tc.bad)
		assert.True(t, strings.HasPrefix(err.Error(), tc.err), "%q: got %q", tc.bad, err)
		assert.Empty(t, e.Table().Services, tc.bad)
		assert.Empty(t, e.services, tc.bad)
		t2, f2, u2 := e.conns.Timeouts()
		assert.Equal(t, [3]time.Duration{tcp, fin, udp}, [3]time.Duration{t2, f2, u2}, "timeouts unchanged: %s", tc.bad)
	}
}

// Committing replays the commands in order, with their own meaning.
func TestApplyBatchOrder(t *testing.T) {
	e := newBareEngine(t)
	require.NoError(t, e.ApplyBatch(context.Background(), parseRules(t, "-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80\n")))
	old := e.services[0]
	old.stats.conns = 7
	require.NoError(t, e.ApplyBatch(context.Background(), parseRules(t,
		"-C\n-A -t 10.0.0.2:80 -s sh\n-a -t 10.0.0.2:80 -r 172.16.0.2 -i\n-e -t 10.0.0.2:80 -r 172.16.0.2 -i -w 5\n--set 0 30 0\n--set 10 0 0\n-Z\n")))
	tb := e.Table()
	require.Len(t, tb.Services, 1)
	assert.Equal(t, "sh", tb.Services[0].Service.Scheduler)
	assert.Equal(t, 5, tb.Services[0].Dests[0].Weight)
	require.Len(t, e.services, 1)
	assert.NotSame(t, old, e.services[0], "-C then -A starts the service afresh")
	assert.Equal(t, uint32(5), uint32(e.services[0].dests[0].cfg.Weight))
	tcp, fin, _ := e.conns.Timeouts()
	assert.Equal(t, 10*time.Second, tcp)
	assert.Equal(t, 30*time.Second, fin)
}

// A command whose client has gone (its context cancelled with
// ctl.ErrClientGone while it waited for the engine) is not applied.
func TestHandleClientGone(t *testing.T) {
	e := newBareEngine(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ctl.ErrClientGone)
	add := config.Command{Op: config.OpAddService, Service: config.Service{Protocol: config.ProtoTCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, Scheduler: "rr"}}
	r := e.Handle(ctx, ctl.Peer{Admin: true}, ctl.Request{Command: add})
	assert.Equal(t, "not applied: "+ctl.ErrClientGone.Error(), r.Error)
	r = e.Handle(ctx, ctl.Peer{Admin: true}, ctl.Request{Command: config.Command{Op: config.OpRestore},
		Rules: []config.Rule{{File: "f", Line: 1, Command: add}}})
	assert.Equal(t, "not applied: "+ctl.ErrClientGone.Error(), r.Error)
	assert.Empty(t, e.Table().Services)
	// Listing still answers.
	r = e.Handle(ctx, ctl.Peer{}, ctl.Request{Command: config.Command{Op: config.OpList}})
	assert.Empty(t, r.Error)

	r = e.Handle(context.Background(), ctl.Peer{Admin: true}, ctl.Request{Command: config.Command{Op: config.OpRestore},
		Rules: []config.Rule{{File: "f", Line: 1, Command: add}, {File: "f", Line: 2, Command: add}}})
	assert.Equal(t, "f:2: Service already exists", r.Error)
	assert.Empty(t, e.Table().Services)
}

// BenchmarkApplyBatch10k is the engine's side of lvsadm -R of 10,000 lines
// (2000 services × 4 real servers), without the nftables guard.
func BenchmarkApplyBatch10k(b *testing.B) {
	rules := parseRules(b, bigRules(2000, 4))
	clear := []config.Rule{{Command: config.Command{Op: config.OpClear}}}
	e := newBareEngine(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := e.ApplyBatch(context.Background(), rules); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := e.ApplyBatch(context.Background(), clear); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
