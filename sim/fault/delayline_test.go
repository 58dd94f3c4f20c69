package fault

import (
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/capture"
	"lvslab/rewrite"
)

// The delay line between in-memory ports: node <-> [egress/ingress lanes]
// <-> bridge, as the wire runs it between P and P.dfw.
type testLine struct {
	node, bridge capture.Port // the test's ends
	line         *delayLine
}

func newTestLine(t *testing.T, egress, ingress laneConfig) *testLine {
	t.Helper()
	// Room for offload super-frames on the node side only: the memory
	// is allocated up front.
	node, wireNode := capture.NewMemPair(capture.MemConfig{FrameSize: 70000, Capacity: 64})
	wireBr, bridge := capture.NewMemPair(capture.MemConfig{Capacity: 512})
	egress.In, egress.Out, egress.Name = wireNode, wireBr, "egress"
	ingress.In, ingress.Out, ingress.Name = wireBr, wireNode, "ingress"
	for _, c := range []*laneConfig{&egress, &ingress} {
		if c.MTU == 0 {
			c.MTU = 1500
		}
	}
	tl := &testLine{node: node, bridge: bridge,
		line: startLine(slog.New(slog.DiscardHandler), []capture.Port{wireNode, wireBr}, egress, ingress)}
	t.Cleanup(func() {
		tl.line.close()
		node.Close()
		bridge.Close()
	})
	return tl
}

// testFrame is an Ethernet/IPv4/UDP frame with a 4-byte sequence number as
// payload (padded to size), checksums complete.
func testFrame(seq uint32, size int) []byte {
	payload := make([]byte, max(4, size-42))
	binary.BigEndian.PutUint32(payload, seq)
	return udpFrame(payload, false)
}

var (
	srcIP = netip.MustParseAddr("10.81.0.1")
	dstIP = netip.MustParseAddr("10.81.0.2")
)

func ipv4Header(b []byte, proto uint8, total int) {
	b[0], b[8], b[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	copy(b[12:16], srcIP.AsSlice())
	copy(b[16:20], dstIP.AsSlice())
	binary.BigEndian.PutUint16(b[10:], rewrite.Checksum(b[:20]))
}

func ethHeader(b []byte, et uint16) {
	copy(b[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(b[6:12], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:], et)
}

// udpFrame builds the frame; partial leaves the pseudo-header sum in the
// checksum field, as a CHECKSUM_PARTIAL skb has it.
func udpFrame(payload []byte, partial bool) []byte {
	f := make([]byte, 42+len(payload))
	ethHeader(f, rewrite.EtherTypeIPv4)
	ipv4Header(f[14:], rewrite.ProtoUDP, 28+len(payload))
	u := f[34:]
	binary.BigEndian.PutUint16(u[0:], 4000)
	binary.BigEndian.PutUint16(u[2:], 5000)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	ph := rewrite.PseudoHeaderSum(srcIP, dstIP, rewrite.ProtoUDP, uint16(8+len(payload)))
	if partial {
		binary.BigEndian.PutUint16(u[6:], ph)
	} else {
		binary.BigEndian.PutUint16(u[6:], rewrite.UDPWireChecksum(^rewrite.OnesSum(u, ph)))
	}
	return f
}

// tcpFrame builds an Ethernet/IPv4/TCP frame with a partial checksum (a
// segmentation-offload super-frame when the payload is long).
func tcpFrame(payload []byte) []byte {
	f := make([]byte, 54+len(payload))
	ethHeader(f, rewrite.EtherTypeIPv4)
	ipv4Header(f[14:], rewrite.ProtoTCP, 40+len(payload))
	tc := f[34:]
	binary.BigEndian.PutUint16(tc[0:], 4000)
	binary.BigEndian.PutUint16(tc[2:], 80)
	binary.BigEndian.PutUint32(tc[4:], 1000)
	tc[12], tc[13] = 5<<4, rewrite.TCPFlagACK|rewrite.TCPFlagPSH
	binary.BigEndian.PutUint16(tc[14:], 65535)
	copy(tc[20:], payload)
	binary.BigEndian.PutUint16(tc[16:], rewrite.PseudoHeaderSum(srcIP, dstIP, rewrite.ProtoTCP, uint16(20+len(payload))))
	return f
}

// l4Valid verifies the TCP or UDP checksum of an untagged IPv4 frame.
func l4Valid(t *testing.T, f []byte) bool {
	t.Helper()
	var p rewrite.Packet
	require.NoError(t, rewrite.Parse(f, &p))
	ph := rewrite.PseudoHeaderSum(p.Src, p.Dst, p.Protocol, uint16(p.End-p.L4))
	return rewrite.OnesSum(f[p.L4:p.End], ph) == 0xffff
}

type got struct {
	data []byte
	at   time.Time
	f    capture.Frame
}

// readN reads n frames from p (or fails after within).
func readN(t *testing.T, p capture.Port, n int, within time.Duration) []got {
	t.Helper()
	require.NoError(t, p.SetReadDeadline(time.Now().Add(within)))
	defer p.SetReadDeadline(time.Time{})
	var out []got
	frames := make([]capture.Frame, 64)
	for i := range frames {
		frames[i].Buf = make([]byte, 2048)
	}
	for len(out) < n {
		k, err := p.ReadBatch(frames[:min(len(frames), n-len(out))])
		now := time.Now()
		for i := range k {
			f := frames[i]
			f.Buf = nil
			out = append(out, got{data: append([]byte(nil), frames[i].Data()...), at: now, f: f})
		}
		if err != nil {
			t.Fatalf("read %d of %d frames: %v", len(out), n, err)
		}
	}
	return out
}

// quiet checks that nothing arrives at p for d.
func quiet(t *testing.T, p capture.Port, d time.Duration) {
	t.Helper()
	require.NoError(t, p.SetReadDeadline(time.Now().Add(d)))
	defer p.SetReadDeadline(time.Time{})
	frames := []capture.Frame{{Buf: make([]byte, 2048)}}
	n, err := p.ReadBatch(frames)
	assert.Zero(t, n, "a frame arrived")
	assert.Error(t, err)
}

func write(t *testing.T, p capture.Port, frames ...capture.Frame) {
	t.Helper()
	n, err := p.WriteBatch(frames)
	require.NoError(t, err)
	require.Equal(t, len(frames), n)
}

func frame(b []byte) capture.Frame { return capture.Frame{Buf: b, N: len(b), Len: len(b)} }

func TestDelayLineHoldsOneDirection(t *testing.T) {
	tl := newTestLine(t, laneConfig{Delay: 80 * time.Millisecond}, laneConfig{})
	start := time.Now()
	f := testFrame(1, 100)
	write(t, tl.node, frame(f))
	write(t, tl.bridge, frame(testFrame(2, 100)))
	back := readN(t, tl.node, 1, time.Second)
	assert.Less(t, back[0].at.Sub(start), 40*time.Millisecond, "the other direction passes at once")
	out := readN(t, tl.bridge, 1, time.Second)
	took := out[0].at.Sub(start)
	assert.GreaterOrEqual(t, took, 80*time.Millisecond)
	assert.Less(t, took, 200*time.Millisecond)
	assert.Equal(t, f, out[0].data, "the frame is sent as it came")
}

// Dense frames keep their order: each waits for the one ahead when its
// own draw is shorter, so delays bunch towards delay+jitter.
func TestDelayLineJitterKeepsOrder(t *testing.T) {
	const n = 100
	tl := newTestLine(t, laneConfig{Delay: 30 * time.Millisecond, Jitter: 25 * time.Millisecond,
		Rand: rand.New(rand.NewPCG(1, 2))}, laneConfig{})
	sent := sendSpaced(tl.node, n, time.Millisecond)
	out := readN(t, tl.bridge, n, 5*time.Second)
	for i, g := range out {
		require.Equal(t, uint32(i), binary.BigEndian.Uint32(g.data[42:]), "frame %d out of order", i)
		d := g.at.Sub(sent[i])
		assert.GreaterOrEqual(t, d, 5*time.Millisecond, "frame %d", i)
		assert.Less(t, d, 150*time.Millisecond, "frame %d", i)
	}
}

// Frames further apart than the jitter's span each get their own draw.
func TestDelayLineJitterSpreads(t *testing.T) {
	const n = 15
	tl := newTestLine(t, laneConfig{Delay: 20 * time.Millisecond, Jitter: 15 * time.Millisecond,
		Rand: rand.New(rand.NewPCG(1, 2))}, laneConfig{})
	sent := sendSpaced(tl.node, n, 35*time.Millisecond)
	out := readN(t, tl.bridge, n, 5*time.Second)
	lo, hi := time.Hour, time.Duration(0)
	for i, g := range out {
		d := g.at.Sub(sent[i])
		lo, hi = min(lo, d), max(hi, d)
	}
	t.Logf("delays %s .. %s", lo, hi)
	assert.GreaterOrEqual(t, lo, 4*time.Millisecond)
	assert.Greater(t, hi-lo, 12*time.Millisecond, "jitter spreads the delays")
}

// sendSpaced writes n numbered frames, every gap, and returns when each
// was written (filled in as they go; read them after the frames arrived).
func sendSpaced(p capture.Port, n int, gap time.Duration) []time.Time {
	sent := make([]time.Time, n)
	go func() {
		for i := range n {
			sent[i] = time.Now()
			p.WriteBatch([]capture.Frame{frame(testFrame(uint32(i), 60))})
			time.Sleep(gap)
		}
	}()
	return sent
}

func TestDelayLineJitterIsSeeded(t *testing.T) {
	draw := func(seed uint64) []time.Duration {
		l := newLane(laneConfig{Delay: 50 * time.Millisecond, Jitter: 20 * time.Millisecond,
			Rand: rand.New(rand.NewPCG(seed, 7)), MTU: 1500}, slog.New(slog.DiscardHandler))
		var out []time.Duration
		for range 50 {
			d := l.delay()
			require.GreaterOrEqual(t, d, 30*time.Millisecond)
			require.LessOrEqual(t, d, 70*time.Millisecond)
			out = append(out, d)
		}
		return out
	}
	assert.Equal(t, draw(3), draw(3))
	assert.NotEqual(t, draw(3), draw(4))
	a, b := laneSeed(5, "slow", ifaceRef{"b", "eth0"}, "egress")
	c, d := laneSeed(5, "slow", ifaceRef{"b", "eth0"}, "ingress")
	assert.Equal(t, a, c)
	assert.NotEqual(t, b, d, "each lane draws its own sequence")
}

func TestDelayLineMakesFramesSendable(t *testing.T) {
	tl := newTestLine(t, laneConfig{Delay: 10 * time.Millisecond}, laneConfig{})

	// A CHECKSUM_PARTIAL UDP frame leaves with its checksum complete.
	part := udpFrame([]byte("hello through the wire"), true)
	f := frame(part)
	f.CsumNotReady = true
	write(t, tl.node, f)
	out := readN(t, tl.bridge, 1, time.Second)
	assert.True(t, l4Valid(t, out[0].data))
	assert.Equal(t, part[:40], out[0].data[:40])

	// A tag the kernel took out is put back.
	tagged := testFrame(9, 80)
	f = frame(tagged)
	f.VLANValid, f.VLANTCI = true, 100
	write(t, tl.bridge, f)
	out = readN(t, tl.node, 1, time.Second)
	require.Len(t, out[0].data, len(tagged)+4)
	assert.Equal(t, []byte{0x81, 0x00, 0x00, 100}, out[0].data[12:16])
	assert.Equal(t, tagged[12:], out[0].data[16:])

	// A TCP super-frame is cut into segments that fit the MTU.
	payload := make([]byte, 4000)
	for i := range payload {
		payload[i] = byte(i)
	}
	big := frame(tcpFrame(payload))
	big.CsumNotReady, big.GSO = true, true
	write(t, tl.node, big)
	segs := readN(t, tl.bridge, 3, time.Second)
	var joined []byte
	for i, s := range segs {
		assert.LessOrEqual(t, len(s.data), 1514)
		assert.True(t, l4Valid(t, s.data), "segment %d checksum", i)
		joined = append(joined, s.data[54:]...)
		assert.Equal(t, uint32(1000+i*1460), binary.BigEndian.Uint32(s.data[38:]), "sequence of segment %d", i)
	}
	assert.Equal(t, payload, joined)

	// What cannot be sent whole or cut is dropped and counted.
	tooBig := frame(udpFrame(make([]byte, 3000), false))
	write(t, tl.node, tooBig)
	quiet(t, tl.bridge, 50*time.Millisecond)
	assert.Equal(t, uint64(1), tl.line.lanes[0].stats().Unfit)
	assert.Equal(t, uint64(1), tl.line.lanes[0].stats().Segmented)
}

func TestDelayLineLimitAndStale(t *testing.T) {
	since := time.Now()
	tl := newTestLine(t, laneConfig{Delay: 100 * time.Millisecond, Limit: 10, Since: since.UnixNano()}, laneConfig{})
	old := frame(testFrame(0, 60))
	old.TS = since.Add(-time.Millisecond).UnixNano()
	write(t, tl.node, old)
	var frames []capture.Frame
	for i := range 30 {
		frames = append(frames, frame(testFrame(uint32(i+1), 60)))
	}
	write(t, tl.node, frames...)
	out := readN(t, tl.bridge, 10, time.Second)
	assert.Equal(t, uint32(1), binary.BigEndian.Uint32(out[0].data[42:]), "the frame from before the wire is not sent")
	quiet(t, tl.bridge, 150*time.Millisecond)
	st := tl.line.lanes[0].stats()
	assert.Equal(t, uint64(1), st.Stale)
	assert.Equal(t, uint64(20), st.Overflow)
	assert.Equal(t, uint64(10), st.MaxQueued)
	assert.Equal(t, uint64(10), st.Frames)
}

func TestDelayLineCloseDropsTheQueue(t *testing.T) {
	tl := newTestLine(t, laneConfig{Delay: time.Hour}, laneConfig{Delay: time.Hour})
	write(t, tl.node, frame(testFrame(1, 60)), frame(testFrame(2, 60)))
	write(t, tl.bridge, frame(testFrame(3, 60)))
	require.Eventually(t, func() bool {
		return tl.line.lanes[0].stats().MaxQueued == 2 && tl.line.lanes[1].stats().MaxQueued == 1
	}, time.Second, 5*time.Millisecond)
	done := make(chan error)
	go func() { done <- tl.line.close() }()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("close hangs")
	}
	assert.Equal(t, uint64(2), tl.line.lanes[0].stats().Unsent)
	assert.Equal(t, uint64(1), tl.line.lanes[1].stats().Unsent)
	_, err := tl.bridge.ReadBatch([]capture.Frame{{Buf: make([]byte, 100)}})
	assert.ErrorIs(t, err, io.EOF)
}

func TestCompleteIPv6Checksum(t *testing.T) {
	src, dst := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	payload := []byte("v6 payload")
	f := make([]byte, 14+40+8+len(payload))
	ethHeader(f, etherTypeIPv6)
	ip := f[14:]
	ip[0], ip[6], ip[7] = 0x60, rewrite.ProtoUDP, 64
	binary.BigEndian.PutUint16(ip[4:], uint16(8+len(payload)))
	copy(ip[8:24], src.AsSlice())
	copy(ip[24:40], dst.AsSlice())
	u := f[54:]
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	// Pseudo-header: addresses, length, next header.
	var ph [40]byte
	copy(ph[0:16], src.AsSlice())
	copy(ph[16:32], dst.AsSlice())
	binary.BigEndian.PutUint32(ph[32:], uint32(8+len(payload)))
	ph[39] = rewrite.ProtoUDP
	phs := rewrite.OnesSum(ph[:], 0)
	binary.BigEndian.PutUint16(u[6:], phs)
	var p rewrite.Packet
	require.NoError(t, completeChecksum(f, &p))
	assert.Equal(t, uint16(0xffff), rewrite.OnesSum(u, phs), "checksum verifies")
}
