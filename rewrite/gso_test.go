package rewrite

import (
	"bytes"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestSegmentTCP cuts a 10,000-byte TSO super-frame for MTU 1500 and checks
// every segment with gopacket: headers, sequence numbers, flags, lengths,
// checksums recomputed from scratch, and the payload reassembled.
func TestSegmentTCP(t *testing.T) {
	payload := make([]byte, 10000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: 100, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IPv4(10, 0, 0, 2), DstIP: net.IPv4(10, 0, 0, 100)}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Ack: 5, ACK: true, PSH: true, CWR: true, Window: 500,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	frame := buf.Bytes()
	orig := bytes.Clone(frame)
	var p Packet
	if err := Parse(frame, &p); err != nil {
		t.Fatal(err)
	}
	const headroom = 8
	var segs [][]byte
	n, err := SegmentTCP(frame, &p, 1500, headroom,
		func() []byte { return make([]byte, 2048) },
		func(s []byte) { segs = append(segs, bytes.Clone(s)) })
	if err != nil {
		t.Fatal(err)
	}
	// 1500 - 20 (IP) - 32 (TCP with timestamps) = 1448 per segment.
	if want := (len(payload) + 1447) / 1448; n != want || len(segs) != want {
		t.Fatalf("%d segments, want %d", n, want)
	}
	if !bytes.Equal(frame, orig) {
		t.Error("the super-frame was modified")
	}
	var got []byte
	for i, s := range segs {
		pkt := gopacket.NewPacket(s, layers.LayerTypeEthernet, gopacket.Default)
		sip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		st := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if int(sip.Length) > 1500 || sip.Id != uint16(100+i) || st.Seq != uint32(1000+len(got)) {
			t.Errorf("segment %d: len %d id %d seq %d", i, sip.Length, sip.Id, st.Seq)
		}
		last := i == len(segs)-1
		if st.PSH != last || st.CWR != (i == 0) || !st.ACK || len(st.Options) != 3 {
			t.Errorf("segment %d: PSH %v CWR %v ACK %v options %d", i, st.PSH, st.CWR, st.ACK, len(st.Options))
		}
		// Recompute both checksums with gopacket and compare.
		ipSum, tcpSum := sip.Checksum, st.Checksum
		b := gopacket.NewSerializeBuffer()
		_ = st.SetNetworkLayerForChecksum(sip)
		if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{ComputeChecksums: true}, sip, st, gopacket.Payload(st.Payload)); err != nil {
			t.Fatal(err)
		}
		re := gopacket.NewPacket(b.Bytes(), layers.LayerTypeIPv4, gopacket.Default)
		if re.Layer(layers.LayerTypeIPv4).(*layers.IPv4).Checksum != ipSum || re.Layer(layers.LayerTypeTCP).(*layers.TCP).Checksum != tcpSum {
			t.Errorf("segment %d: checksums do not verify", i)
		}
		got = append(got, st.Payload...)
	}
	if !bytes.Equal(got, payload) {
		t.Error("reassembled payload differs")
	}
}

// FuzzSegmentTCP: any frame, any MTU: no panic, no write past a buffer, and
// every emitted segment parses and fits the MTU.
func FuzzSegmentTCP(f *testing.F) {
	f.Add(make([]byte, 80), 1500)
	f.Fuzz(func(t *testing.T, frame []byte, mtu int) {
		if mtu < 0 || mtu > 9000 {
			return
		}
		var p Packet
		if Parse(frame, &p) != nil {
			return
		}
		_, _ = SegmentTCP(frame, &p, mtu, 4, func() []byte { return make([]byte, 4+mtu+18) }, func(seg []byte) {
			var q Packet
			if err := Parse(seg, &q); err != nil {
				t.Fatalf("segment does not parse: %v", err)
			}
			if q.End-q.L3 > mtu {
				t.Fatalf("segment of %d bytes for MTU %d", q.End-q.L3, mtu)
			}
		})
	})
}
