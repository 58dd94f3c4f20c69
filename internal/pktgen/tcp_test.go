package pktgen

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/internal/nstest"
	"lvslab/rewrite"
)

// BuildTCP's frames are what gopacket builds from the same fields, and
// ParseTCP reads back what was written.
func TestBuildTCPMatchesGopacket(t *testing.T) {
	src, dst := netip.MustParseAddrPort("10.0.0.2:40000"), netip.MustParseAddrPort("10.0.0.100:9")
	for _, c := range []struct {
		name    string
		flags   uint8
		opts    []byte
		payload int
	}{
		{"SYN with MSS", rewrite.TCPFlagSYN, mssOption, 0},
		{"data", rewrite.TCPFlagACK | rewrite.TCPFlagPSH, nil, DefaultTCPPayload},
		{"RST", rewrite.TCPFlagRST, nil, 0},
	} {
		b := make([]byte, TCPHeadersLen+len(c.opts)+c.payload)
		BuildTCP(b, macA, macB, TCPHeader{Src: src, Dst: dst, Seq: 0x01020304, Ack: 0xa0b0c0d0, Flags: c.flags, Window: 65535, Options: c.opts})

		eth := &layers.Ethernet{SrcMAC: macA[:], DstMAC: macB[:], EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: 0x01020304, Ack: 0xa0b0c0d0,
			Window: 65535, SYN: c.flags&rewrite.TCPFlagSYN != 0, ACK: c.flags&rewrite.TCPFlagACK != 0,
			PSH: c.flags&rewrite.TCPFlagPSH != 0, RST: c.flags&rewrite.TCPFlagRST != 0}
		if len(c.opts) > 0 {
			tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}
		}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		buf := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp, gopacket.Payload(make([]byte, c.payload))); err != nil {
			t.Fatal(err)
		}
		// gopacket pads to Ethernet's 60-byte minimum; veth carries short
		// frames as they are.
		want := buf.Bytes()
		if len(want) > len(b) && bytes.Count(want[len(b):], []byte{0}) == len(want)-len(b) {
			want = want[:len(b)]
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s:\n got %x\nwant %x", c.name, b, want)
		}
		s, ok := ParseTCP(b)
		seg := Segment{SrcMAC: macA, DstMAC: macB, Src: src, Dst: dst, Seq: 0x01020304, Ack: 0xa0b0c0d0, Flags: c.flags, Payload: c.payload}
		if !ok || s != seg {
			t.Errorf("%s: ParseTCP = %+v, %v; want %+v", c.name, s, ok, seg)
		}
		if got := MatchTCPData(b, dst.Addr(), 9); got != (c.payload > 0) {
			t.Errorf("%s: MatchTCPData = %v", c.name, got)
		}
	}
	if len(make([]byte, TCPHeadersLen+DefaultTCPPayload)) != 64 {
		t.Error("the default data segment is not a 64-byte frame")
	}
}

func TestParseTCPRejects(t *testing.T) {
	good := make([]byte, TCPHeadersLen+4)
	BuildTCP(good, macA, macB, TCPHeader{Src: netip.MustParseAddrPort("10.0.0.2:1"), Dst: netip.MustParseAddrPort("10.0.0.100:9"), Flags: rewrite.TCPFlagACK})
	udp := make([]byte, 64)
	BuildUDP(udp, macA, macB, netip.MustParseAddrPort("10.0.0.2:1"), netip.MustParseAddrPort("10.0.0.100:9"))
	mod := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	for name, b := range map[string][]byte{
		"udp":         udp,
		"short":       good[:TCPHeadersLen-1],
		"fragment":    mod(func(b []byte) { b[14+6] = 0x20 }), // MF
		"bad doff":    mod(func(b []byte) { b[34+12] = 0xf0 }),
		"total > len": mod(func(b []byte) { b[14+2], b[14+3] = 0x05, 0xdc }),
		"arp":         mod(func(b []byte) { b[12], b[13] = 0x08, 0x06 }),
	} {
		if _, ok := ParseTCP(b); ok {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, ok := ParseTCP(good); !ok {
		t.Error("good segment not parsed")
	}
}

// A handshaker's sources map to indexes and back.
func TestHandshakerSources(t *testing.T) {
	h := &Handshaker{cfg: HandshakeConfig{Clients: Flows{Src: netip.MustParseAddr("10.0.0.250"), SrcAddrs: 10, SrcPort: 1024, Ports: 100}}}
	for _, i := range []int{0, 1, 99, 100, 599, 999} {
		s := h.source(i)
		if got := h.index(s); got != i {
			t.Errorf("index(source(%d) = %s) = %d", i, s, got)
		}
	}
	if s := h.source(600); s != netip.MustParseAddrPort("10.0.1.0:1024") {
		t.Errorf("source(600) = %s, want 10.0.1.0:1024 (carry into the third octet)", s)
	}
	for _, s := range []string{"10.0.0.249:1024", "10.0.1.4:1024", "10.0.0.250:1023", "10.0.0.250:1124"} {
		if got := h.index(netip.MustParseAddrPort(s)); got != -1 {
			t.Errorf("index(%s) = %d, want -1", s, got)
		}
	}
}

// dropIngressIP keeps a namespace's kernel from answering the raw frames
// (packet sockets still see them: the drop runs after the taps).
func dropIngressIP(ns *nstest.NS, dev string) {
	ns.Run("nft", "add", "table", "netdev", "pgtcp")
	ns.Run("nft", "add", "chain", "netdev", "pgtcp", "in", "{ type filter hook ingress device "+dev+" priority 0; policy accept; }")
	ns.Run("nft", "add", "rule", "netdev", "pgtcp", "in", "meta protocol ip drop")
}

// Establish against a Responder over one veth: every flow's handshake
// completes, and each data frame acknowledges the responder's ISN.
func TestEstablishWithResponder(t *testing.T) {
	nstest.Require(t)
	a, z := nstest.New(t, "pg-a"), nstest.New(t, "pg-z")
	nstest.Veth(t, a, "ga", z, "gz", 1500)
	dropIngressIP(a, "ga")
	dropIngressIP(z, "gz")
	var r *Responder
	if err := z.Do(func() (err error) { r, err = OpenResponder("gz", 9); return err }); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	flows := Flows{SrcMAC: [6]byte(a.MAC("ga")), DstMAC: [6]byte(z.MAC("gz")), Src: netip.MustParseAddr("10.0.0.2"), SrcAddrs: 2,
		Ports: 64, Dst: netip.MustParseAddrPort("10.0.0.100:9")}
	var frames [][]byte
	err := a.Do(func() (err error) {
		frames, err = Establish(context.Background(), EstablishConfig{Interface: "ga", Flows: flows, WaitSYNACK: true})
		return err
	})
	cancel()
	if rerr := <-done; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 128 || r.Answered() != 128 {
		t.Fatalf("%d frames, %d answered; want 128 each", len(frames), r.Answered())
	}
	srcs, _ := flows.Sources()
	for i, b := range frames {
		s, ok := ParseTCP(b)
		isn := clientISN(i)*2246822519 ^ uint32(srcs[i].Port())<<16
		if !ok || len(b) != 64 || s.Src != srcs[i] || s.Seq != clientISN(i)+1 || s.Ack != isn+1 || s.Payload != DefaultTCPPayload {
			t.Fatalf("frame %d: %+v (%d bytes), want seq %d ack %d", i, s, len(b), clientISN(i)+1, isn+1)
		}
	}
}

// A Handshaker against a real kernel listener over one veth: connections
// complete (the greeting comes back) and none is refused.
func TestHandshakerAgainstKernel(t *testing.T) {
	nstest.Require(t)
	a, z := nstest.New(t, "pg-a"), nstest.New(t, "pg-z")
	nstest.Veth(t, a, "ga", z, "gz", 1500)
	a.Addr("ga", "10.0.0.16/24")
	a.Addr("ga", "10.0.0.17/24")
	z.Addr("gz", "10.0.0.100/24")
	dropIngressIP(a, "ga")
	var ln net.Listener
	if err := z.Do(func() (err error) { ln, err = net.Listen("tcp4", "10.0.0.100:9"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hi\n"))
			c.Close()
		}
	}()
	var h *Handshaker
	if err := a.Do(func() (err error) {
		h, err = OpenHandshaker(HandshakeConfig{Interface: "ga", InFlight: 64, Clients: Flows{SrcMAC: [6]byte(a.MAC("ga")),
			DstMAC: [6]byte(z.MAC("gz")), Src: netip.MustParseAddr("10.0.0.16"), SrcAddrs: 2, SrcPort: 2000, Ports: 4000,
			Dst: netip.MustParseAddrPort("10.0.0.100:9")}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	recv, send := make(chan error, 1), make(chan error, 1)
	go func() { recv <- h.RunReceiver(ctx) }()
	go func() { send <- h.RunSender(ctx) }()
	if err := errors.Join(<-send, <-recv); err != nil {
		t.Fatal(err)
	}
	c := h.Counts()
	t.Logf("%+v", c)
	if c.Completed < 200 || c.Refused != 0 || c.Completed > c.Started || c.SYNACKs > c.Started {
		t.Errorf("counts %+v: want at least 200 completed, none refused, no more answers than SYNs", c)
	}
}
