package report_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/internal/testenv"
	segcap "lvslab/sim/capture"
	"lvslab/sim/report"
	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// The seed 003 lab for real: lvsd in DR mode, two real servers prepared by
// lvsrs, curl as the client. The walk of a request must show what the
// seed's frames ①②③ show.
const liveDR = `
name: %s
duration: 1s
segments: {lan: {subnets: 10.84.0.0/24}}
nodes:
  client:
    role: client
    interfaces: [{name: eth0, segment: lan, addresses: 10.84.0.10/24}]
  director:
    role: director
    interfaces: [{name: eth0, segment: lan, addresses: 10.84.0.2/24}]
    director:
      rules:
        - -A -t 10.84.0.100:80 -s rr
        - -a -t 10.84.0.100:80 -r 10.84.0.11:80 -g
        - -a -t 10.84.0.100:80 -r 10.84.0.12:80 -g
  rs[1..2]:
    role: realserver
    interfaces: [{name: eth0, segment: lan, addresses: "10.84.0.1{{i}}/24"}]
    realserver: {mode: dr}
    services: [{kind: http-echo, listen: ":80"}]
traffic:
  - {name: web, from: client, kind: http, target: "http://10.84.0.100/", count: 3}
report: {walk: {traffic: web, request: 2}}
`

// buildBinaries builds what the lab runs (lvsd, lvsrs, lvsadm, and lvslab for the
// built-in services) into a temporary directory.
func buildBinaries(t *testing.T) string {
	t.Helper()
	testenv.Go(t)
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	mod, err := exec.Command(goBin, "env", "GOMOD").Output()
	require.NoError(t, err)
	dir := t.TempDir()
	cmd := exec.Command(goBin, "build", "-o", dir+"/", "./cmd/lvsd", "./cmd/lvsrs", "./cmd/lvsadm", "./cmd/lvslab")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(mod)))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return dir
}

// curlStage fetches the VIP with curl, one request after the other, and
// records each as the traffic generators do (socket addresses, backend).
type curlStage struct {
	url, traffic string
	count        int
	done         chan struct{}
	mu           sync.Mutex
	reqs         []runner.Request
}

func (c *curlStage) Name() string                 { return "curl" }
func (c *curlStage) Claims(s *spec.Spec) []string { return []string{"traffic " + c.traffic} }
func (c *curlStage) Traffic() []string            { return []string{c.traffic} }

func (c *curlStage) Requests(string) []runner.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]runner.Request(nil), c.reqs...)
}

func (c *curlStage) Start(ctx context.Context, lab *topo.Lab, t0 time.Time) error {
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		for i := 1; i <= c.count; i++ {
			start := time.Now()
			r := runner.Request{Seq: i, At: start.Sub(t0)}
			cmd, err := lab.Command(ctx, "client", "curl", "-sS", "-m", "10", "-w", "\n%{local_ip} %{local_port} %{remote_ip} %{remote_port}\n", c.url)
			if err == nil {
				var out []byte
				out, err = cmd.Output()
				r.Latency = time.Since(start)
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				if err == nil && len(lines) >= 2 {
					r.Backend = strings.TrimSpace(lines[0])
					var la, ra string
					var lp, rp uint16
					if _, serr := fmt.Sscan(lines[len(lines)-1], &la, &lp, &ra, &rp); serr == nil {
						r.Local = netip.AddrPortFrom(netip.MustParseAddr(la), lp)
						r.Remote = netip.AddrPortFrom(netip.MustParseAddr(ra), rp)
					}
				}
			}
			if err != nil {
				r.Err = err.Error()
			}
			c.mu.Lock()
			c.reqs = append(c.reqs, r)
			c.mu.Unlock()
		}
	}()
	return nil
}

func (c *curlStage) Stop(context.Context) error {
	<-c.done
	return nil
}

// TestLiveDRWalk runs lvsd in DR mode between curl and two real servers
// with the capture stage and the reporter: the walk of request 2, read
// from the real captures, shows the director rewriting only the MACs and
// the reply going from the real server straight to the client.
func TestLiveDRWalk(t *testing.T) {
	testenv.Netns(t)
	testenv.Tools(t, "curl")
	bin := buildBinaries(t)
	name := fmt.Sprintf("t%d-livedr", os.Getpid())
	s, err := spec.Parse(fmt.Appendf(nil, liveDR, name), "live-dr.yaml", spec.Options{})
	require.NoError(t, err)
	out := t.TempDir()
	curl := &curlStage{url: "http://10.84.0.100/", traffic: "web", count: 3}
	res := runner.Execute(context.Background(), s, runner.Options{
		Topo:      topo.Options{StateDir: t.TempDir(), BinDir: bin, Self: filepath.Join(bin, "lvslab")},
		OutDir:    out,
		Duration:  time.Second,
		Stages:    []runner.Stage{segcap.New(segcap.Options{}), curl},
		Judges:    []runner.Judge{segcap.Judge{}},
		Reporters: []runner.Reporter{report.New(report.Options{NoPNG: true})},
	})
	require.NoError(t, res.Err(), res.Error)
	reqs := curl.Requests("web")
	require.Len(t, reqs, 3)
	for _, r := range reqs {
		require.Empty(t, r.Err, "request %d", r.Seq)
	}

	// The walk the reporter wrote, and the same through the library.
	md, err := os.ReadFile(filepath.Join(out, report.WalkFile))
	require.NoError(t, err)
	t.Log("\n" + string(md))
	recs, err := report.LoadRecords(out, "web")
	require.NoError(t, err)
	q, err := report.QueryFor(s, "web", 2, recs)
	require.NoError(t, err)
	w, err := report.Trace(out, s, q)
	require.NoError(t, err)
	assert.Equal(t, "DR", w.Mode)
	require.Len(t, w.Request, 2)
	require.NotEmpty(t, w.Reply)
	backend := reqs[1].Backend
	assert.Equal(t, "client:eth0", w.Request[0].SrcName)
	assert.Equal(t, "director:eth0", w.Request[0].DstName)
	assert.Equal(t, "director:eth0", w.Request[1].SrcName)
	assert.Equal(t, backend+":eth0", w.Request[1].DstName)
	assert.Equal(t, "10.84.0.100", w.Request[1].IP.Dst.String())
	assert.Equal(t, backend+":eth0", w.Reply[0].SrcName)
	assert.Equal(t, "client:eth0", w.Reply[0].DstName)
	for _, f := range w.Findings {
		assert.True(t, f.OK, f.Text)
	}
	var text bytes.Buffer
	require.NoError(t, w.WriteText(&text))
	assert.Contains(t, text.String(), "✔ the reply bypassed the director")

	// Every frame the director sent is on the bridge, whatever the
	// director's socket options: count its SYNs to the real servers.
	sc := bufio.NewScanner(bytes.NewReader(md))
	hops := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), "segment lan  (frame") {
			hops++
		}
	}
	assert.Equal(t, 3, hops, "①②③")
}
