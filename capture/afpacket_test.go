package capture

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// (1) Frames a kernel socket sends across the veth arrive in the receive
// ring with their bytes and metadata.
func TestRXKernelUDP(t *testing.T) {
	l := newLab(t)
	port := openPort(t, l.b, Config{Interface: "vb"})
	vb := port.Link()
	if vb.MTU != 1500 || !bytes.Equal(vb.MAC[:], l.bMAC) {
		t.Fatalf("link %+v, want MTU 1500 MAC %s", vb, l.bMAC)
	}

	var conn *net.UDPConn
	if err := l.a.Do(func() (err error) {
		// Unconnected: B's port-unreachable answers must not fail the writes.
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: 40000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	const count = 5
	for i := range count {
		dst := netip.AddrPortFrom(l.bIP, 9999)
		if _, err := conn.WriteToUDPAddrPort(fmt.Appendf(nil, "datagram %d", i), dst); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, port, 3*time.Second, count, func(f *Frame) bool {
		udp, _ := decode(f.Data()).Layer(layers.LayerTypeUDP).(*layers.UDP)
		return udp != nil && udp.DstPort == 9999
	})
	if len(got) != count {
		t.Fatalf("received %d of %d datagrams", len(got), count)
	}
	for i, f := range got {
		pkt := decode(f.Data())
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		want := fmt.Sprintf("datagram %d", i)
		switch {
		case !bytes.Equal(eth.SrcMAC, l.aMAC) || !bytes.Equal(eth.DstMAC, l.bMAC):
			t.Errorf("frame %d: MACs %s→%s", i, eth.SrcMAC, eth.DstMAC)
		case !ip.SrcIP.Equal(net.ParseIP("192.0.2.1")) || !ip.DstIP.Equal(net.ParseIP("192.0.2.2")):
			t.Errorf("frame %d: IPs %s→%s", i, ip.SrcIP, ip.DstIP)
		case udp.SrcPort != 40000 || string(udp.Payload) != want:
			t.Errorf("frame %d: port %d payload %q, want %q", i, udp.SrcPort, udp.Payload, want)
		case f.N != 14+20+8+len(want) || f.Len != f.N || f.Truncated() || f.Oversized:
			t.Errorf("frame %d: N %d Len %d, want %d whole", i, f.N, f.Len, 14+20+8+len(want))
		case f.Ifindex != vb.Index || f.PktType != PacketHost:
			t.Errorf("frame %d: ifindex %d pkttype %d, want %d host", i, f.Ifindex, f.PktType, vb.Index)
		case f.TS < start.UnixNano() || f.TS > time.Now().UnixNano():
			t.Errorf("frame %d: timestamp %v not within the test", i, time.Unix(0, f.TS))
		}
		t.Logf("frame %d: %d bytes, csum-not-ready %v, csum-valid %v, gso %v", i, f.N, f.CsumNotReady, f.CsumValid, f.GSO)
	}
	st := port.Stats()
	if st.RxPackets < count || st.Kernel < count || st.Drops != 0 || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
}

// (2) Frames written through the transmit path reach the peer's kernel,
// which accepts them (right MAC, addresses and checksums) and hands their
// payload to a UDP socket, in both transmit modes and with the ring
// wrapping many times while the receiver holds the earlier frames.
func TestTXToKernelUDP(t *testing.T) {
	for _, mode := range []TXMode{TXSendmmsg, TXRing} {
		t.Run(mode.String(), func(t *testing.T) {
			l := newLab(t)
			port := openPort(t, l.a, Config{Interface: "va", NoRX: true, TXMode: mode, TXFrames: 16, Batch: 8})
			var conn *net.UDPConn
			if err := l.b.Do(func() (err error) {
				conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("192.0.2.2"), Port: 7777})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// Hold every datagram in the socket until all are sent.
			rc, _ := conn.SyscallConn()
			_ = rc.Control(func(fd uintptr) {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
			})

			const count = 200 // 12 laps of a 16-slot ring
			frames := make([]Frame, 0, count)
			for i := range count {
				payload := bytes.Repeat([]byte{byte(i)}, 100+i%50)
				copy(payload, fmt.Sprintf("seq %03d", i))
				b := udpFrame(t, l.aMAC, l.bMAC, l.aIP, l.bIP, uint16(20000+i%7), 7777, payload)
				frames = append(frames, Frame{Buf: b, N: len(b)})
			}
			for off := 0; off < count; off += 10 {
				n, err := port.WriteBatch(frames[off : off+10])
				if err != nil || n != 10 {
					t.Fatalf("write batch at %d: %d, %v", off, n, err)
				}
			}
			buf := make([]byte, 2048)
			for i := range count {
				_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("datagram %d: %v (stats %+v)", i, err, port.Stats())
				}
				want := bytes.Repeat([]byte{byte(i)}, 100+i%50)
				copy(want, fmt.Sprintf("seq %03d", i))
				if !bytes.Equal(buf[:n], want) || from != netip.AddrPortFrom(l.aIP, uint16(20000+i%7)) {
					t.Fatalf("datagram %d from %v: %q, want %q", i, from, buf[:min(n, 12)], want[:12])
				}
			}
			st := port.Stats()
			if st.TxPackets != count || st.TxDrops != 0 || st.Errors != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// tcpTransfer sends size bytes over a TCP connection from a (192.0.2.1) to a
// listener in b (192.0.2.2:8080) and waits until b has read them all.
func tcpTransfer(t *testing.T, l *lab, size int) {
	t.Helper()
	var ln net.Listener
	if err := l.b.Do(func() (err error) { ln, err = net.Listen("tcp4", "192.0.2.2:8080"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64<<10)
		total := 0
		for total < size {
			n, err := c.Read(buf)
			total += n
			if err != nil {
				done <- fmt.Errorf("after %d bytes: %w", total, err)
				return
			}
		}
		done <- nil
	}()
	var c net.Conn
	if err := l.a.Do(func() (err error) { c, err = net.DialTimeout("tcp4", "192.0.2.2:8080", 5*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("transfer: %v", err)
	}
}

func isTCPFrom(ip netip.Addr) func(*Frame) bool {
	return func(f *Frame) bool {
		d := f.Data()
		return len(d) >= 34 && d[12] == 0x08 && d[13] == 0x00 && d[23] == 6 && netip.AddrFrom4([4]byte(d[26:30])) == ip
	}
}

// tcpPayload is the TCP payload length the frame's IP header claims (the
// whole aggregate for a GSO frame).
func tcpPayload(f *Frame) int {
	d := f.Data()
	ihl := int(d[14]&0x0f) * 4
	if len(d) < 14+ihl+13 {
		return 0
	}
	tot := int(d[16])<<8 | int(d[17])
	return tot - ihl - int(d[14+ihl+12]>>4)*4
}

// (3) A TCP connection from the peer's kernel, default offloads: its frames
// arrive CHECKSUM_PARTIAL, reported as CsumNotReady.
func TestRXCsumNotReady(t *testing.T) {
	l := newLab(t)
	port := openPort(t, l.b, Config{Interface: "vb"})
	tcpTransfer(t, l, 20000)
	got := collect(t, port, 300*time.Millisecond, 1<<30, isTCPFrom(l.aIP))
	var data, notReady int
	for i := range got {
		if tcpPayload(&got[i]) > 0 {
			data++
			if got[i].CsumNotReady {
				notReady++
			}
		}
	}
	t.Logf("%d TCP frames from the peer, %d with data, %d of those CsumNotReady", len(got), data, notReady)
	if data == 0 || notReady != data {
		t.Fatalf("want every data frame CsumNotReady: %d of %d", notReady, data)
	}
}

// (4) With TSO/GSO on at the sender, a large write crosses the veth as
// super-frames: reported Oversized (Len > MTU+14), GSO, and counted. With
// tso and gso off there are none. With a snap length they are also
// truncated, never handed on as whole.
func TestRXOversized(t *testing.T) {
	const size = 2 << 20
	count := func(got []Frame) (over, gso, trunc int) {
		for i := range got {
			f := &got[i]
			if f.Oversized != (f.Len > 1514) {
				t.Errorf("frame of %d bytes: Oversized %v", f.Len, f.Oversized)
			}
			if f.Oversized {
				over++
			}
			if f.GSO {
				gso++
			}
			if f.Truncated() {
				trunc++
			}
		}
		return
	}
	t.Run("tso-on", func(t *testing.T) {
		l := newLab(t)
		port := openPort(t, l.b, Config{Interface: "vb"})
		tcpTransfer(t, l, size)
		got := collect(t, port, 300*time.Millisecond, 1<<30, isTCPFrom(l.aIP))
		over, gso, trunc := count(got)
		st := port.Stats()
		biggest := 0
		for i := range got {
			biggest = max(biggest, got[i].Len)
		}
		t.Logf("%d frames, %d oversized (largest %d bytes), %d GSO, %d truncated; stats %+v", len(got), over, biggest, gso, trunc, st)
		if over == 0 || st.Oversized < uint64(over) || trunc != 0 {
			t.Fatalf("want oversized frames, whole and counted")
		}
		for i := range got {
			if f := &got[i]; f.Oversized && f.N != tcpPayload(f)+14+20+32 && f.N != tcpPayload(f)+14+20+20 {
				t.Fatalf("oversized frame of %d bytes holds a %d-byte payload", f.N, tcpPayload(f))
			}
		}
	})
	t.Run("tso-on-snap", func(t *testing.T) {
		l := newLab(t)
		port := openPort(t, l.b, Config{Interface: "vb", Snap: 128})
		tcpTransfer(t, l, size)
		got := collect(t, port, 300*time.Millisecond, 1<<30, isTCPFrom(l.aIP))
		over, _, trunc := count(got)
		st := port.Stats()
		t.Logf("%d frames, %d oversized, %d truncated; stats %+v", len(got), over, trunc, st)
		if over == 0 || trunc < over || st.Truncated < uint64(trunc) {
			t.Fatalf("want oversized frames truncated to 128 bytes and counted")
		}
		for i := range got {
			if f := &got[i]; f.N > 128 || f.Oversized && f.N != 128 {
				t.Fatalf("frame N %d Len %d with snap 128", f.N, f.Len)
			}
		}
	})
	t.Run("tso-gso-off", func(t *testing.T) {
		l := newLab(t)
		l.a.Offload("va", "tso", "off", "gso", "off")
		port := openPort(t, l.b, Config{Interface: "vb"})
		tcpTransfer(t, l, size)
		got := collect(t, port, 300*time.Millisecond, 1<<30, isTCPFrom(l.aIP))
		over, gso, _ := count(got)
		st := port.Stats()
		t.Logf("%d frames, %d oversized, %d GSO; stats %+v", len(got), over, gso, st)
		if len(got) < size/1448 || over != 0 || gso != 0 || st.Oversized != 0 {
			t.Fatalf("want only MTU-sized frames")
		}
	})
}

// (5) Our own transmissions are not read back: with the qdisc path (where
// packet taps see outgoing frames) the kernel option keeps them out, and
// without it the userspace filter drops and counts them. OutgoingKeep shows
// what the two prevent.
func TestIgnoreOutgoing(t *testing.T) {
	const count = 20
	cases := []struct {
		name       string
		cfg        Config
		wantBack   bool
		wantKernel bool
	}{
		{"kernel", Config{Outgoing: OutgoingIgnore}, false, true},
		{"userspace-filter", Config{Outgoing: OutgoingFilter}, false, false},
		{"keep", Config{Outgoing: OutgoingKeep}, true, false},
		{"kernel-v2", Config{Outgoing: OutgoingIgnore, RXRing: RXRingV2}, false, true},
		{"userspace-filter-v2", Config{Outgoing: OutgoingFilter, RXRing: RXRingV2}, false, false},
		{"keep-v2", Config{Outgoing: OutgoingKeep, RXRing: RXRingV2}, true, false},
		// Bypassing the qdisc also bypasses the taps.
		{"qdisc-bypass", Config{Outgoing: OutgoingKeep, QdiscBypass: true}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			tc.cfg.Interface = "va"
			port := openPort(t, l.a, tc.cfg)
			if port.KernelIgnoresOutgoing() != tc.wantKernel {
				t.Fatalf("KernelIgnoresOutgoing %v", port.KernelIgnoresOutgoing())
			}
			// The peer sends too, so the ring is shown to work.
			peer := openPort(t, l.b, Config{Interface: "vb", NoRX: true})
			const marker, peerMarker = 0x6f757473, 0x70656572
			ours, theirs := make([]Frame, count), make([]Frame, count)
			for i := range count {
				b := rawFrame(l.aMAC, l.bMAC, marker, uint32(i), 60)
				ours[i] = Frame{Buf: b, N: len(b)}
				b = rawFrame(l.bMAC, l.aMAC, peerMarker, uint32(i), 60)
				theirs[i] = Frame{Buf: b, N: len(b)}
			}
			if _, err := port.WriteBatch(ours); err != nil {
				t.Fatal(err)
			}
			if _, err := peer.WriteBatch(theirs); err != nil {
				t.Fatal(err)
			}
			var back, fromPeer int
			collect(t, port, 200*time.Millisecond, 1<<30, func(f *Frame) bool {
				switch {
				case isRaw(f, marker):
					back++
					if f.PktType != PacketOutgoing {
						t.Errorf("own frame read back with pkttype %d", f.PktType)
					}
				case isRaw(f, peerMarker):
					fromPeer++
				}
				return false
			})
			st := port.Stats()
			t.Logf("read back %d of our %d frames, %d of the peer's; stats %+v", back, count, fromPeer, st)
			if fromPeer != count {
				t.Fatalf("received %d of the peer's %d frames", fromPeer, count)
			}
			if tc.wantBack && back != count || !tc.wantBack && back != 0 {
				t.Fatalf("read back %d own frames", back)
			}
			if tc.cfg.Outgoing == OutgoingFilter && st.Outgoing < count {
				t.Fatalf("userspace filter counted %d outgoing frames, want >= %d", st.Outgoing, count)
			}
		})
	}
}

// (6) Two ports in one hash fanout group share the load, each flow staying
// on one port.
func TestFanout(t *testing.T) {
	l := newLab(t)
	var ports []*AFPacket
	if err := l.b.Do(func() (err error) { ports, err = OpenFanout(Config{Interface: "vb", RxHash: true}, 2); return err }); err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		t.Cleanup(func() { p.Close() })
	}
	// The kernel numbers the groups it picks from 0.
	if ports[0].FanoutGroup() != ports[1].FanoutGroup() {
		t.Fatalf("fanout groups %d, %d", ports[0].FanoutGroup(), ports[1].FanoutGroup())
	}
	gen := openPort(t, l.a, Config{Interface: "va", NoRX: true})
	const flows, perFlow = 64, 8
	frames := make([]Frame, 0, flows*perFlow)
	for i := range flows * perFlow {
		b := udpFrame(t, l.aMAC, l.bMAC, l.aIP, l.bIP, uint16(30000+i%flows), 5555, []byte("fanout"))
		frames = append(frames, Frame{Buf: b, N: len(b)})
	}
	if n, err := gen.WriteBatch(frames); err != nil || n != len(frames) {
		t.Fatalf("write: %d, %v", n, err)
	}
	type result struct {
		flows map[uint16]int
		n     int
	}
	results := make(chan result, 2)
	for _, p := range ports {
		go func() {
			r := result{flows: map[uint16]int{}}
			for _, f := range collect(t, p, 500*time.Millisecond, 1<<30, func(f *Frame) bool {
				udp, _ := decode(f.Data()).Layer(layers.LayerTypeUDP).(*layers.UDP)
				return udp != nil && udp.DstPort == 5555
			}) {
				r.flows[uint16(decode(f.Buf).Layer(layers.LayerTypeUDP).(*layers.UDP).SrcPort)]++
				r.n++
			}
			results <- r
		}()
	}
	r0, r1 := <-results, <-results
	t.Logf("port shares: %d and %d frames, %d and %d flows", r0.n, r1.n, len(r0.flows), len(r1.flows))
	if r0.n+r1.n != flows*perFlow || r0.n == 0 || r1.n == 0 {
		t.Fatalf("want all %d frames, shared by both ports", flows*perFlow)
	}
	for fl, n := range r0.flows {
		if r1.flows[fl] != 0 || n != perFlow {
			t.Errorf("flow %d split: %d and %d frames", fl, n, r1.flows[fl])
		}
	}
}

// (7) The offload helper turns GRO off through the ethtool ioctl, says
// exactly what it changed, and restores it; ethtool(8) is the witness.
func TestOffloadHelper(t *testing.T) {
	l := newLab(t)
	l.a.Offload("va", "gro", "on")
	ethtoolSays := func(feature string) string {
		for _, line := range bytes.Split([]byte(l.a.Run("ethtool", "-k", "va")), []byte("\n")) {
			if k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte(": ")); ok && string(k) == feature {
				return string(v)
			}
		}
		t.Fatalf("ethtool -k va has no %s", feature)
		return ""
	}
	var ch, back, seg, segBack OffloadChanges
	var fs Features
	err := l.a.Do(func() (err error) {
		if fs, err = ReadFeatures("va"); err != nil {
			return err
		}
		if ch, err = DisableAggregation("va"); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := fs.Get("rx-gro"); !ok || !f.Active || !f.Changeable {
		t.Fatalf("before: rx-gro %+v", f)
	}
	if f, ok := fs.Get("rx-lro"); !ok || f.Active || f.Changeable {
		t.Fatalf("before: rx-lro %+v (veth has it fixed off)", f)
	}
	t.Logf("disable aggregation: %s", ch)
	if len(ch.Changes) != 1 || ch.Changes[0] != (FeatureChange{Name: "rx-gro", Was: true, Now: false}) {
		t.Fatalf("changes %+v, want only rx-gro on→off", ch.Changes)
	}
	if got := ethtoolSays("generic-receive-offload"); got != "off" {
		t.Fatalf("after disable: ethtool says GRO %q", got)
	}
	err = l.a.Do(func() (err error) {
		if back, err = ch.Restore(); err != nil {
			return err
		}
		if seg, err = DisableSegmentation("va"); err != nil {
			return err
		}
		segBack, err = seg.Restore()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restore: %s", back)
	t.Logf("disable segmentation: %s", seg)
	t.Logf("restore: %s", segBack)
	if got := ethtoolSays("generic-receive-offload"); got != "on" {
		t.Fatalf("after restore: ethtool says GRO %q", got)
	}
	if len(back.Changes) != 1 || back.Changes[0] != (FeatureChange{Name: "rx-gro", Was: false, Now: true}) {
		t.Fatalf("restore changes %+v", back.Changes)
	}
	if len(seg.Changes) < 2 || len(segBack.Changes) != len(seg.Changes) {
		t.Fatalf("segmentation changes %+v, restored %+v", seg.Changes, segBack.Changes)
	}
	if got := ethtoolSays("tcp-segmentation-offload"); got != "on" {
		t.Fatalf("after restore: ethtool says TSO %q", got)
	}
}

// Frames lent from the ring hold the right bytes and cannot grow into the
// next frame.
func TestRXZeroCopy(t *testing.T) {
	l := newLab(t)
	port := openPort(t, l.b, Config{Interface: "vb"})
	peer := openPort(t, l.a, Config{Interface: "va", NoRX: true})
	const marker = 0x7a65726f
	out := make([]Frame, 10)
	for i := range out {
		b := rawFrame(l.aMAC, l.bMAC, marker, uint32(i), 60+i)
		out[i] = Frame{Buf: b, N: len(b)}
	}
	if _, err := peer.WriteBatch(out); err != nil {
		t.Fatal(err)
	}
	frames := make([]Frame, 4)
	got := 0
	deadline := time.Now().Add(2 * time.Second)
	for got < len(out) && time.Now().Before(deadline) {
		_ = port.SetReadDeadline(deadline)
		n, err := port.ReadBatchZeroCopy(frames)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			f := &frames[i]
			if !isRaw(f, marker) {
				continue
			}
			if !bytes.Equal(f.Data(), out[got].Data()) || cap(f.Buf) != f.N || f.Len != f.N {
				t.Fatalf("frame %d: %d bytes, cap %d", got, f.N, cap(f.Buf))
			}
			got++
		}
	}
	if got != len(out) {
		t.Fatalf("got %d of %d frames", got, len(out))
	}
}

// Close wakes a reader waiting on an idle ring; a deadline ends a wait.
func TestCloseAndDeadline(t *testing.T) {
	for _, ring := range []RXRing{RXRingV3, RXRingV2} {
		t.Run(ring.String(), func(t *testing.T) {
			l := newLab(t)
			var port *AFPacket
			if err := l.b.Do(func() (err error) { port, err = Open(Config{Interface: "vb", RXRing: ring}); return err }); err != nil {
				t.Fatal(err)
			}
			frames := newFrames(4, 2048)
			// The kernel may send on a fresh link (IPv6 neighbour discovery): read
			// whatever comes until the deadline ends the wait.
			deadline := time.Now().Add(50 * time.Millisecond)
			_ = port.SetReadDeadline(deadline)
			var err error
			for err == nil && time.Since(deadline) < 2*time.Second {
				_, err = port.ReadBatch(frames)
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read past the deadline: %v", err)
			}
			_ = port.SetReadDeadline(time.Time{})
			done := make(chan error, 1)
			go func() {
				for {
					if _, err := port.ReadBatch(frames); err != nil {
						done <- err
						return
					}
				}
			}()
			time.Sleep(50 * time.Millisecond)
			if err := port.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("blocked read ended with %v", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not wake the reader")
			}
			if _, err := port.WriteBatch([]Frame{{Buf: make([]byte, 60), N: 60}}); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("write after close: %v", err)
			}
		})
	}
}

// A frame the link cannot carry is refused before it reaches the kernel,
// and the frames before it are sent.
func TestTXTooBig(t *testing.T) {
	for _, mode := range []TXMode{TXSendmmsg, TXRing} {
		t.Run(mode.String(), func(t *testing.T) {
			l := newLab(t)
			port := openPort(t, l.a, Config{Interface: "va", NoRX: true, TXMode: mode})
			ok := rawFrame(l.aMAC, l.bMAC, 1, 1, 1514)
			big := rawFrame(l.aMAC, l.bMAC, 1, 2, 1515)
			n, err := port.WriteBatch([]Frame{{Buf: ok, N: len(ok)}, {Buf: big, N: len(big)}, {Buf: ok, N: len(ok)}})
			if n != 1 || !errors.Is(err, ErrFrameTooBig) {
				t.Fatalf("wrote %d, %v", n, err)
			}
		})
	}
}

// Promiscuous mode lasts exactly as long as the port.
func TestPromisc(t *testing.T) {
	l := newLab(t)
	promiscuity := func() string {
		out := l.b.Run("ip", "-d", "link", "show", "vb")
		i := strings.Index(out, "promiscuity ")
		if i < 0 {
			t.Fatalf("ip -d link: %s", out)
		}
		return strings.Fields(out[i:])[1]
	}
	var port *AFPacket
	if err := l.b.Do(func() (err error) { port, err = Open(Config{Interface: "vb", Promisc: true}); return err }); err != nil {
		t.Fatal(err)
	}
	if got := promiscuity(); got != "1" {
		t.Fatalf("promiscuity %s with the port open", got)
	}
	port.Close()
	if got := promiscuity(); got != "0" {
		t.Fatalf("promiscuity %s after close", got)
	}
}
