package capture

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/internal/nstest"
)

// lab is two namespaces joined by a veth pair: a (va, 192.0.2.1) and
// b (vb, 192.0.2.2).
type lab struct {
	a, b       *nstest.NS
	aMAC, bMAC net.HardwareAddr
	aIP, bIP   netip.Addr
}

func newLab(t testing.TB) *lab {
	t.Helper()
	nstest.Require(t)
	l := &lab{a: nstest.New(t, "cap-a"), b: nstest.New(t, "cap-b")}
	nstest.Veth(t, l.a, "va", l.b, "vb", 1500)
	l.a.Addr("va", "192.0.2.1/24")
	l.b.Addr("vb", "192.0.2.2/24")
	l.aMAC, l.bMAC = l.a.MAC("va"), l.b.MAC("vb")
	l.aIP, l.bIP = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	// Static neighbours: no ARP traffic to tell apart from test traffic.
	l.a.Run("ip", "neigh", "replace", "192.0.2.2", "lladdr", l.bMAC.String(), "dev", "va", "nud", "permanent")
	l.b.Run("ip", "neigh", "replace", "192.0.2.1", "lladdr", l.aMAC.String(), "dev", "vb", "nud", "permanent")
	return l
}

// openPort opens a port inside ns, closed when the test ends.
func openPort(t testing.TB, ns *nstest.NS, cfg Config) *AFPacket {
	t.Helper()
	var p *AFPacket
	if err := ns.Do(func() (err error) { p, err = Open(cfg); return err }); err != nil {
		t.Fatalf("open %s in %s: %v", cfg.Interface, ns.Name, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func newFrames(n, size int) []Frame {
	fs := make([]Frame, n)
	for i := range fs {
		fs[i].Buf = make([]byte, size)
	}
	return fs
}

// collect reads from p until want returns true for a frame count of n, or
// for d; keep selects the frames to count. It returns copies.
func collect(t testing.TB, p Port, d time.Duration, n int, keep func(*Frame) bool) []Frame {
	t.Helper()
	var got []Frame
	fs := newFrames(64, 65536)
	end := time.Now().Add(d)
	for len(got) < n && time.Now().Before(end) {
		if err := p.SetReadDeadline(end); err != nil {
			t.Fatal(err)
		}
		k, err := p.ReadBatch(fs)
		for i := range k {
			if keep(&fs[i]) {
				f := fs[i]
				f.Buf = append([]byte(nil), f.Data()...)
				got = append(got, f)
			}
		}
		if err != nil {
			break
		}
	}
	return got
}

// udpFrame builds an Ethernet/IPv4/UDP frame with correct checksums.
func udpFrame(t testing.TB, src, dst net.HardwareAddr, sip, dip netip.Addr, sport, dport uint16, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: sip.AsSlice(), DstIP: dip.AsSlice(), Flags: layers.IPv4DontFragment}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// rawFrame builds a frame of an experimental EtherType (0x88b5) that no
// stack answers, carrying marker and a sequence number.
func rawFrame(src, dst net.HardwareAddr, marker uint32, seq uint32, size int) []byte {
	b := make([]byte, max(size, 60))
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:], 0x88b5)
	binary.BigEndian.PutUint32(b[14:], marker)
	binary.BigEndian.PutUint32(b[18:], seq)
	return b
}

func isRaw(f *Frame, marker uint32) bool {
	d := f.Data()
	return len(d) >= 22 && binary.BigEndian.Uint16(d[12:]) == 0x88b5 && binary.BigEndian.Uint32(d[14:]) == marker
}

// decode is gopacket's independent reading of a frame.
func decode(b []byte) gopacket.Packet {
	return gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
