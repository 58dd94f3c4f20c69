package observe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"lvslab/config"
	"lvslab/ipvs/ctl"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// StatsStageName is the lvsd statistics scraper's stage name.
const StatsStageName = "lvsd-stats"

// StatsFile is the scraper's output in the run directory.
const StatsFile = "lvsd-stats.jsonl"

// StatsOptions configure the scraper.
type StatsOptions struct {
	Logger *slog.Logger
	// Interval between samples (default 500ms).
	Interval time.Duration
}

// Sample is one line of lvsd-stats.jsonl: the counters of a virtual
// service (Dest empty) or of one of its real servers, as
// `lvsadm -L -n --stats --exact` and `lvsadm -L -n` show them.
type Sample struct {
	T           float64 `json:"t"` // seconds since T0
	Node        string  `json:"node"`
	Service     string  `json:"service"`        // "TCP 203.0.113.5:80", "FWM 1"
	Dest        string  `json:"dest,omitempty"` // "172.16.0.2:80"
	Conns       uint64  `json:"conns"`
	InPkts      uint64  `json:"inpkts"`
	OutPkts     uint64  `json:"outpkts"`
	InBytes     uint64  `json:"inbytes"`
	OutBytes    uint64  `json:"outbytes"`
	ActiveConns uint32  `json:"activeconns"`
	InactConns  uint32  `json:"inactconns"`
}

// StatsStage samples every director's lvsd during the run. It talks to
// lvsd's control socket (what lvsadm does) from a socket opened inside the
// node, so sampling costs no process.
type StatsStage struct {
	opts StatsOptions
	log  *slog.Logger
	dirs []director

	t0     time.Time
	path   string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	out    *os.File
	last   map[string][]Sample
	errs   map[string]string // last sampling error per node
	closed bool
}

type director struct {
	node   string
	socket string
}

// NewStats makes the scraper for the directors of a resolved spec (nodes
// that run lvsd). It claims nothing of the spec.
func NewStats(s *spec.Spec, opts StatsOptions) *StatsStage {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Interval <= 0 {
		opts.Interval = 500 * time.Millisecond
	}
	st := &StatsStage{opts: opts, log: opts.Logger.With("stage", StatsStageName),
		last: map[string][]Sample{}, errs: map[string]string{}}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if !s.RunsLVSD(n) || n.Director == nil {
			continue
		}
		sock := n.Director.Socket
		if sock == "" {
			sock = ctl.DefaultSocket
		}
		st.dirs = append(st.dirs, director{node: n.Name, socket: sock})
	}
	return st
}

// Name is "lvsd-stats".
func (st *StatsStage) Name() string { return StatsStageName }

// Claims is empty: the scraper carries out no part of the spec.
func (st *StatsStage) Claims(*spec.Spec) []string { return nil }

// Path is the lvsd-stats.jsonl being written ("" before Start or without
// directors).
func (st *StatsStage) Path() string { return st.path }

// Directors lists the nodes sampled.
func (st *StatsStage) Directors() []string {
	out := make([]string, len(st.dirs))
	for i, d := range st.dirs {
		out[i] = d.node
	}
	return out
}

// Start begins sampling every director.
func (st *StatsStage) Start(ctx context.Context, lab *topo.Lab, t0 time.Time) error {
	if st.cancel != nil {
		return errors.New("lvsd-stats stage started twice")
	}
	st.t0 = t0
	ctx, st.cancel = context.WithCancel(ctx)
	if len(st.dirs) == 0 {
		return nil
	}
	nodes := make([]*topo.Node, len(st.dirs))
	for i, d := range st.dirs {
		if nodes[i] = lab.Node(d.node); nodes[i] == nil {
			return fmt.Errorf("lvsd-stats: no node %s in the lab", d.node)
		}
	}
	st.path = filepath.Join(lab.RunDir(), StatsFile)
	f, err := os.Create(st.path)
	if err != nil {
		return fmt.Errorf("lvsd-stats: %w", err)
	}
	st.out = f
	for i, d := range st.dirs {
		s := &sampler{st: st, node: nodes[i], socket: d.socket}
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			s.run(ctx)
		}()
	}
	return nil
}

// Stop takes a last sample of every director and closes the file.
func (st *StatsStage) Stop(context.Context) error {
	if st.cancel == nil {
		return nil
	}
	st.cancel()
	st.wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	if st.out == nil {
		return nil
	}
	err := st.out.Close()
	st.out = nil
	return err
}

// Last returns the latest sample of every director: node -> rows.
func (st *StatsStage) Last() map[string][]Sample {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make(map[string][]Sample, len(st.last))
	for k, v := range st.last {
		out[k] = append([]Sample(nil), v...)
	}
	return out
}

// LastError returns, per director, why its latest sample failed (lvsd not
// running, ...); directors whose latest sample worked are absent.
func (st *StatsStage) LastError() map[string]string {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make(map[string]string, len(st.errs))
	for k, v := range st.errs {
		out[k] = v
	}
	return out
}

func (st *StatsStage) record(node string, rows []Sample, sampleErr error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
	}
	if sampleErr != nil {
		if st.errs[node] != sampleErr.Error() {
			st.log.Debug("sample failed", "node", node, "err", sampleErr)
		}
		st.errs[node] = sampleErr.Error()
		return
	}
	delete(st.errs, node)
	st.last[node] = rows
	if st.out == nil {
		return
	}
	var buf []byte
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			continue
		}
		buf = append(append(buf, b...), '\n')
	}
	if _, err := st.out.Write(buf); err != nil {
		st.log.Warn("write lvsd stats", "err", err)
	}
}

// sampler polls one director, keeping its connection between samples and
// dialing again when lvsd went away (a fault killed or restarted it).
type sampler struct {
	st     *StatsStage
	node   *topo.Node
	socket string
	client *ctl.Client
}

func (s *sampler) run(ctx context.Context) {
	defer func() {
		if s.client != nil {
			s.client.Close()
		}
	}()
	tick := time.NewTicker(s.st.opts.Interval)
	defer tick.Stop()
	for {
		s.sample()
		select {
		case <-tick.C:
		case <-ctx.Done():
			s.sample() // the state at the end of the run
			return
		}
	}
}

func (s *sampler) sample() {
	at := time.Since(s.st.t0)
	rows, err := s.query()
	if err != nil && s.client != nil {
		// The connection may be stale (lvsd restarted): try once anew.
		s.client.Close()
		s.client = nil
		rows, err = s.query()
	}
	for i := range rows {
		rows[i].T = float64(at.Microseconds()) / 1e6
	}
	s.st.record(s.node.Name, rows, err)
}

func (s *sampler) query() ([]Sample, error) {
	if s.client == nil {
		// Abstract unix sockets belong to the network namespace: dial
		// from inside the node; the socket keeps the namespace after.
		err := s.node.Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			c, err := ctl.DialContext(ctx, s.socket)
			if err != nil {
				return err
			}
			s.client = c
			return nil
		})
		if err != nil {
			return nil, err
		}
		s.client.Timeout = 2 * time.Second
	}
	reply, err := s.client.Do(ctl.Request{Command: config.Command{Op: config.OpList,
		List: config.ListOptions{Stats: true, Numeric: true, Exact: true}}})
	if err != nil {
		return nil, err
	}
	return samples(s.node.Name, reply), nil
}

// samples turns a listing into rows: one per service, one per real server.
func samples(node string, reply ctl.Reply) []Sample {
	var out []Sample
	for _, svc := range reply.Services {
		name := serviceName(svc.Service)
		row := Sample{Node: node, Service: name, Conns: svc.Stats.Conns, InPkts: svc.Stats.InPkts,
			OutPkts: svc.Stats.OutPkts, InBytes: svc.Stats.InBytes, OutBytes: svc.Stats.OutBytes}
		for _, d := range svc.Dests {
			row.ActiveConns += d.ActiveConns
			row.InactConns += d.InactConns
		}
		out = append(out, row)
		for _, d := range svc.Dests {
			out = append(out, Sample{Node: node, Service: name, Dest: addrPort(d.Dest.Addr, d.Dest.Port),
				Conns: d.Stats.Conns, InPkts: d.Stats.InPkts, OutPkts: d.Stats.OutPkts,
				InBytes: d.Stats.InBytes, OutBytes: d.Stats.OutBytes,
				ActiveConns: d.ActiveConns, InactConns: d.InactConns})
		}
	}
	return out
}

// serviceName is how lvsadm -L -n names a service: "TCP 203.0.113.5:80",
// "FWM 1".
func serviceName(s config.Service) string {
	if s.Protocol == config.ProtoFwmark {
		return "FWM " + strconv.FormatUint(uint64(s.Fwmark), 10)
	}
	return s.Protocol.Name() + " " + addrPort(s.Addr, s.Port)
}

func addrPort(a netip.Addr, port uint16) string {
	return netip.AddrPortFrom(a, port).String()
}
