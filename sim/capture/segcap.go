// Package segcap records the lab's segments while a scenario runs: one
// AF_PACKET ring (lvslab/capture) per segment bridge, written as pcapng
// into <run dir>/pcap/<segment>.pcapng, plus node:interface captures taken
// on the interface's bridge port (<run dir>/pcap/<node>_<iface>.pcapng). It
// also judges `pcap:` expectations by counting matches of a Wireshark
// display filter with tshark.
//
// Why the bridge: a promiscuous bridge device passes every frame it
// forwards up to its packet taps, so one socket sees the whole segment
// (scenario-runners.md §9.2). It also sees what a userspace director sends
// with PACKET_QDISC_BYPASS, which skips the taps of the director's own
// interface but not those of the receiving bridge port.
package segcap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/vishvananda/netlink"

	"lvslab/capture"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// Defaults when the spec has no capture section (or leaves a value out).
const (
	DefaultSnaplen = 262144
	DefaultRing    = 2 << 20
	// blockSize bounds the largest frame kept whole (a GSO super-frame on
	// a bridge can reach 64 KiB); the ring is spec.Capture.Ring bytes of
	// such blocks.
	blockSize    = 128 << 10
	blockTimeout = 10 * time.Millisecond
	bridgeName   = "br0"
	batch        = 64
)

// Dir is the report subdirectory holding the captures.
const Dir = "pcap"

// SegmentFile is where the capture of a segment is written.
func SegmentFile(runDir, segment string) string {
	return filepath.Join(runDir, Dir, segment+".pcapng")
}

// InterfaceFile is where the capture of node:iface is written. Node and
// segment names never contain '_', so the name cannot clash with a
// segment's file.
func InterfaceFile(runDir, ref string) string {
	node, iface, _ := spec.SplitIfaceRef(ref)
	return filepath.Join(runDir, Dir, node+"_"+iface+".pcapng")
}

// Plan is what a scenario asks to capture.
type Plan struct {
	Segments   []string
	Interfaces []string // node:iface
	Snaplen    int
	Ring       int
}

// Empty reports whether nothing is captured.
func (p Plan) Empty() bool { return len(p.Segments) == 0 && len(p.Interfaces) == 0 }

// PlanFor decides what to capture. With a capture section: its segments
// (resolved: every segment not marked capture: false) and interfaces.
// Without one: every segment not marked capture: false, as every run's
// report has a pcapng per segment, unless report.formats leaves pcapng
// out. Segments and interfaces that pcap expectations read, and every
// segment when a walk is asked for, are always added.
func PlanFor(s *spec.Spec) Plan {
	p := Plan{Snaplen: DefaultSnaplen, Ring: DefaultRing}
	addSeg := func(name string) {
		if name != "" && !slices.Contains(p.Segments, name) {
			p.Segments = append(p.Segments, name)
		}
	}
	addIf := func(ref string) {
		if ref != "" && !slices.Contains(p.Interfaces, ref) {
			p.Interfaces = append(p.Interfaces, ref)
		}
	}
	allSegs := func() {
		for _, sg := range s.Segments {
			if sg.Capture == nil || *sg.Capture {
				addSeg(sg.Name)
			}
		}
	}
	if c := s.Capture; c != nil {
		if c.Snaplen > 0 {
			p.Snaplen = c.Snaplen
		}
		if c.Ring > 0 {
			p.Ring = int(c.Ring)
		}
		if len(c.Segments) == 0 {
			allSegs()
		}
		for _, sg := range c.Segments {
			addSeg(sg)
		}
		for _, ref := range c.Interfaces {
			addIf(ref)
		}
	} else if s.Report == nil || len(s.Report.Formats) == 0 || slices.Contains(s.Report.Formats, "pcapng") {
		allSegs()
	}
	for _, e := range s.Expect {
		if e.Pcap != nil {
			addSeg(e.Pcap.Segment)
			addIf(e.Pcap.Interface)
		}
	}
	if s.Report != nil && s.Report.Walk != nil {
		// The walk follows a request across every segment it crosses.
		for _, sg := range s.Segments {
			addSeg(sg.Name)
		}
	}
	return p
}

// Options configure the capture stage.
type Options struct {
	// NetnsDir is where the lab pins its namespaces (topo.Options.NetnsDir;
	// default topo.DefaultNetnsDir): the segments' hidden namespaces are
	// reached through their pins there.
	NetnsDir string
	// Drain is how long Stop keeps reading what the rings still hold
	// (default 100ms: ten block timeouts).
	Drain  time.Duration
	Logger *slog.Logger
}

// Stage captures the planned segments and interfaces from Start to Stop.
// It implements runner.Stage; put it first among the stages so it starts
// before and stops after the traffic.
type Stage struct {
	opts Options

	mu   sync.Mutex // guards taps
	taps []*tap
}

// New returns a capture stage.
func New(opts Options) *Stage {
	if opts.NetnsDir == "" {
		opts.NetnsDir = topo.DefaultNetnsDir
	}
	if opts.Drain <= 0 {
		opts.Drain = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Stage{opts: opts}
}

// Name implements runner.Stage.
func (*Stage) Name() string { return "capture" }

// Claims implements runner.Stage: the capture section, whenever something
// is captured.
func (*Stage) Claims(s *spec.Spec) []string {
	if PlanFor(s).Empty() {
		return nil
	}
	return []string{"capture"}
}

// File describes one capture written by the stage.
type File struct {
	Name    string // segment, or node:iface
	Path    string
	Packets uint64 // frames written
	Dropped uint64 // frames the kernel dropped (ring full)
	Err     string `json:",omitempty"` // why the capture ended early
}

// Files lists the captures, with counts once Stop has run.
func (s *Stage) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]File, 0, len(s.taps))
	for _, t := range s.taps {
		out = append(out, t.file())
	}
	return out
}

// Start implements runner.Stage: it opens every capture, each in the
// segment's namespace, and starts writing. On error nothing is left open.
func (s *Stage) Start(_ context.Context, lab *topo.Lab, _ time.Time) error {
	plan := PlanFor(lab.Spec)
	if plan.Empty() {
		return nil
	}
	dir := filepath.Join(lab.RunDir(), Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	var taps []*tap
	fail := func(err error) error {
		for _, t := range taps {
			t.abort()
		}
		return fmt.Errorf("capture: %w", err)
	}
	for _, seg := range plan.Segments {
		t, err := s.open(lab, plan, seg, "", SegmentFile(lab.RunDir(), seg))
		if err != nil {
			return fail(fmt.Errorf("segment %s: %w", seg, err))
		}
		taps = append(taps, t)
	}
	for _, ref := range plan.Interfaces {
		node, iface, ok := spec.SplitIfaceRef(ref)
		n := lab.Spec.Node(node)
		if !ok || n == nil || n.Interface(iface) == nil {
			return fail(fmt.Errorf("%s: no such node:interface", ref))
		}
		t, err := s.open(lab, plan, n.Interface(iface).Segment, ref, InterfaceFile(lab.RunDir(), ref))
		if err != nil {
			return fail(fmt.Errorf("interface %s: %w", ref, err))
		}
		taps = append(taps, t)
	}
	s.mu.Lock()
	s.taps = append(s.taps, taps...)
	s.mu.Unlock()
	for _, t := range taps {
		go t.run()
	}
	s.opts.Logger.Info("capturing", "segments", plan.Segments, "interfaces", plan.Interfaces, "snaplen", plan.Snaplen)
	return nil
}

// Stop implements runner.Stage: every capture drains its ring, then the
// files get their interface statistics and are flushed and closed.
func (s *Stage) Stop(ctx context.Context) error {
	s.mu.Lock()
	taps := slices.Clone(s.taps)
	s.mu.Unlock()
	deadline := time.Now().Add(s.opts.Drain)
	for _, t := range taps {
		t.drainUntil(deadline)
	}
	var errs []error
	for _, t := range taps {
		if err := t.finish(ctx); err != nil {
			errs = append(errs, err)
		}
		f := t.file()
		if f.Dropped > 0 {
			s.opts.Logger.Warn("capture dropped frames", "capture", f.Name, "dropped", f.Dropped)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("capture: %w", errors.Join(errs...))
	}
	return nil
}

// open starts one capture: on the bridge of segment seg, or, for ref
// (node:iface), on that interface's port of the bridge.
func (s *Stage) open(lab *topo.Lab, plan Plan, seg, ref, path string) (*tap, error) {
	cfg := capture.Config{
		BlockSize:    blockSize,
		Blocks:       max(2, plan.Ring/blockSize),
		BlockTimeout: blockTimeout,
		Outgoing:     capture.OutgoingKeep,
		NoTX:         true,
	}
	if plan.Snaplen < DefaultSnaplen {
		cfg.Snap = plan.Snaplen
	}
	var port *capture.AFPacket
	err := s.inSegment(lab, seg, func() error {
		if ref == "" {
			// Promiscuous: a bridge passes forwarded frames up only then.
			cfg.Interface, cfg.Promisc = bridgeName, true
		} else {
			idx, err := portIndex(ref)
			if err != nil {
				return err
			}
			cfg.Ifindex = idx
		}
		var err error
		port, err = capture.Open(cfg)
		return err
	})
	if err != nil {
		return nil, err
	}
	t := &tap{name: seg, path: path, port: port, done: make(chan struct{}), perPort: ref != ""}
	if ref != "" {
		t.name = ref
	}
	f, err := os.Create(path)
	if err != nil {
		port.Close()
		return nil, err
	}
	intf := pcapgo.NgInterface{
		Name:                t.name,
		LinkType:            layers.LinkTypeEthernet,
		SnapLength:          uint32(plan.Snaplen),
		TimestampResolution: 9,
		OS:                  "linux",
		Description:         fmt.Sprintf("lab %s: bridge %s of segment %s", lab.Name(), bridgeName, seg),
	}
	if ref != "" {
		intf.Description = fmt.Sprintf("lab %s: %s, taken on its port of segment %s; direction as seen by the node", lab.Name(), ref, seg)
	}
	// NgWriter's own buffer is 4 KiB: a larger one below it saves write
	// calls on a busy segment.
	t.buf = bufio.NewWriterSize(f, 256<<10)
	w, err := pcapgo.NewNgWriterInterface(t.buf, intf, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		OS: "linux", Application: "lvslab", Comment: "scenario " + lab.Spec.Name,
	}})
	if err != nil {
		f.Close()
		port.Close()
		return nil, fmt.Errorf("pcapng header of %s: %w", path, err)
	}
	t.f, t.w = f, w
	return t, nil
}

// inSegment runs fn on a thread inside the segment's namespace: through the
// lab if it offers that, else through the namespace's pin.
func (s *Stage) inSegment(lab *topo.Lab, seg string, fn func() error) error {
	if d, ok := any(lab).(interface {
		SegmentDo(string, func() error) error
	}); ok {
		return d.SegmentDo(seg, fn)
	}
	return doInPinned(filepath.Join(s.opts.NetnsDir, topo.NamespaceName(lab.Name(), seg)), fn)
}

// portIndex finds the bridge port of node:iface in the calling thread's
// namespace: the lab sets its alias to node:iface (its name may be p<N>).
func portIndex(ref string) (int, error) {
	links, err := netlink.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return 0, fmt.Errorf("list bridge ports: %w", err)
	}
	for _, l := range links {
		if l.Attrs().Alias == ref {
			return l.Attrs().Index, nil
		}
	}
	return 0, fmt.Errorf("no bridge port with alias %s", ref)
}

// tap is one running capture.
type tap struct {
	name    string
	path    string
	perPort bool
	port    *capture.AFPacket
	f       *os.File
	buf     *bufio.Writer
	w       *pcapgo.NgWriter
	done    chan struct{}
	stopAt  atomic.Int64 // Unix ns after which the reader stops; 0: run on

	// Written by the reader goroutine, read after done is closed.
	packets uint64
	err     error

	mu       sync.Mutex // guards finished and the counts below
	finished bool
	dropped  uint64
	errText  string
}

// run copies frames from the ring into the file until drained or closed.
func (t *tap) run() {
	defer close(t.done)
	frames := make([]capture.Frame, batch)
	for {
		// Zero copy: the frames go straight from the ring into the
		// writer's buffer, so a 256 KiB snap length costs no buffers.
		n, err := t.port.ReadBatchZeroCopy(frames)
		for i := range n {
			if werr := t.write(&frames[i]); werr != nil {
				t.err = fmt.Errorf("write %s: %w", t.path, werr)
				return
			}
		}
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
				t.err = err
			}
			return
		}
		if d := t.stopAt.Load(); d != 0 && time.Now().UnixNano() >= d {
			return
		}
	}
}

func (t *tap) write(f *capture.Frame) error {
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, f.TS), CaptureLength: f.N, Length: f.Len}
	t.packets++
	if !t.perPort {
		return t.w.WritePacket(ci, f.Data())
	}
	// On a bridge port, outgoing means towards the node.
	dir := pcapgo.NgEpbFlagDirectionOutbound
	if f.PktType == capture.PacketOutgoing {
		dir = pcapgo.NgEpbFlagDirectionInbound
	}
	return t.w.WritePacketWithOptions(ci, f.Data(), pcapgo.NgPacketOptions{Flags: &pcapgo.NgEpbFlags{Direction: dir}})
}

// drainUntil lets the reader empty the ring (partly filled blocks retire
// after blockTimeout) and stop at the deadline, even under steady traffic.
func (t *tap) drainUntil(deadline time.Time) {
	t.stopAt.Store(deadline.UnixNano())
	_ = t.port.SetReadDeadline(deadline)
}

// finish waits for the reader, then closes the port and the file.
func (t *tap) finish(ctx context.Context) error {
	select {
	case <-t.done:
	case <-ctx.Done():
		// Closing the port wakes the reader.
		_ = t.port.Close()
		<-t.done
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished {
		return nil
	}
	t.finished = true
	st := t.port.Stats() // before Close: the kernel's counters need the socket
	t.dropped = st.Drops
	var errs []error
	if t.err != nil {
		errs = append(errs, t.err)
	}
	if err := t.port.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := t.w.WriteInterfaceStats(0, pcapgo.NgInterfaceStatistics{
		LastUpdate:      time.Now(),
		PacketsReceived: t.packets + st.Drops,
		PacketsDropped:  st.Drops,
	}); err != nil {
		errs = append(errs, fmt.Errorf("statistics of %s: %w", t.path, err))
	}
	if err := t.w.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("flush %s: %w", t.path, err))
	} else if err := t.buf.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("flush %s: %w", t.path, err))
	}
	if err := t.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", t.path, err))
	}
	if len(errs) > 0 {
		err := fmt.Errorf("%s: %w", t.name, errors.Join(errs...))
		t.errText = err.Error()
		return err
	}
	return nil
}

// abort closes a capture that never ran (Start failed after opening it).
func (t *tap) abort() {
	close(t.done)
	_ = t.finish(context.Background())
}

func (t *tap) file() File {
	f := File{Name: t.name, Path: t.path}
	select {
	case <-t.done:
		f.Packets = t.packets
	default:
	}
	t.mu.Lock()
	f.Dropped, f.Err = t.dropped, t.errText
	t.mu.Unlock()
	return f
}

// String names the capture for logs.
func (f File) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d packets in %s", f.Name, f.Packets, f.Path)
	if f.Dropped > 0 {
		fmt.Fprintf(&b, " (%d dropped)", f.Dropped)
	}
	return b.String()
}
