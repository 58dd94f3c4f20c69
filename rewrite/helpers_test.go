package rewrite_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// This file holds what the tests use instead of the package under test: a
// deliberately naive checksum, gopacket builders and gopacket-based decoding
// for descriptions and diffs.

// refSum is the RFC 1071 sum written the slow, obvious way: 16-bit words over
// the concatenation of the chunks, carries folded at the end.
func refSum(chunks ...[]byte) uint16 {
	var all []byte
	for _, c := range chunks {
		all = append(all, c...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// refPseudo is the IPv4 pseudo-header as bytes.
func refPseudo(src, dst []byte, proto uint8, length int) []byte {
	b := make([]byte, 12)
	copy(b[0:4], src)
	copy(b[4:8], dst)
	b[9] = proto
	binary.BigEndian.PutUint16(b[10:12], uint16(length))
	return b
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func ip4(s string) net.IP { return net.ParseIP(s).To4() }

// serialize builds a frame with gopacket, fixing lengths and computing
// checksums; each TCP/UDP layer takes the nearest IPv4 layer before it as its
// pseudo-header.
func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	var lastIP *layers.IPv4
	for _, l := range ls {
		switch v := l.(type) {
		case *layers.IPv4:
			lastIP = v
		case *layers.TCP:
			if err := v.SetNetworkLayerForChecksum(lastIP); err != nil {
				tb.Fatal(err)
			}
		case *layers.UDP:
			if err := v.SetNetworkLayerForChecksum(lastIP); err != nil {
				tb.Fatal(err)
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...)
	if err != nil {
		tb.Fatalf("gopacket serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// decode parses a frame with gopacket and fails on any decoding error.
func decode(tb testing.TB, frame []byte) gopacket.Packet {
	tb.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		tb.Fatalf("gopacket cannot decode frame: %v\n% x", el.Error(), frame)
	}
	return pkt
}

// quotedIPv4 decodes the IPv4 header an ICMP error quotes.
func quotedIPv4(icmp *layers.ICMPv4) *layers.IPv4 {
	if len(icmp.Payload) < 20 {
		return nil
	}
	var q layers.IPv4
	// The quote is cut after 8 bytes of L4: decode the header only.
	hl := int(icmp.Payload[0]&0x0f) * 4
	if hl < 20 || hl > len(icmp.Payload) {
		return nil
	}
	b := append([]byte(nil), icmp.Payload[:hl]...)
	binary.BigEndian.PutUint16(b[2:4], uint16(hl)) // decode as a bare header
	if err := q.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		return nil
	}
	q.Length = binary.BigEndian.Uint16(icmp.Payload[2:4])
	q.Checksum = binary.BigEndian.Uint16(icmp.Payload[10:12])
	return &q
}

// checksumMode says what the L4 checksum field of a frame must hold.
type checksumMode int

const (
	csumFull    checksumMode = iota // a complete checksum
	csumPartial                     // the non-complemented pseudo-header sum
	csumAbsent                      // UDP sent without a checksum (0)
)

// verifyChecksums decodes frame with gopacket and recomputes every checksum
// from scratch with refSum: each IPv4 header (and the header an ICMP error
// quotes), TCP and UDP against their pseudo-header, ICMP over the message.
func verifyChecksums(tb testing.TB, frame []byte, mode checksumMode) {
	tb.Helper()
	pkt := decode(tb, frame)
	var lastIP *layers.IPv4
	for _, l := range pkt.Layers() {
		switch v := l.(type) {
		case *layers.IPv4:
			if s := refSum(v.Contents); s != 0xffff {
				tb.Errorf("IPv4 %v→%v header checksum %#04x does not verify (sum %#04x)", v.SrcIP, v.DstIP, v.Checksum, s)
			}
			lastIP = v
		case *layers.TCP:
			verifyL4(tb, "TCP", lastIP, v.Checksum, v.Contents, v.Payload, layers.IPProtocolTCP, mode)
		case *layers.UDP:
			if mode == csumAbsent {
				if v.Checksum != 0 {
					tb.Errorf("UDP checksum %#04x, want 0 (absent)", v.Checksum)
				}
				continue
			}
			if v.Checksum == 0 {
				tb.Errorf("UDP checksum is 0 (absent); the case expects one")
				continue
			}
			verifyL4(tb, "UDP", lastIP, v.Checksum, v.Contents, v.Payload, layers.IPProtocolUDP, mode)
		case *layers.ICMPv4:
			if s := refSum(v.Contents, v.Payload); s != 0xffff {
				tb.Errorf("ICMP checksum %#04x does not verify (sum %#04x)", v.Checksum, s)
			}
			if isICMPError(v.TypeCode.Type()) {
				hl := int(v.Payload[0]&0x0f) * 4
				if s := refSum(v.Payload[:hl]); s != 0xffff {
					tb.Errorf("quoted IPv4 header checksum does not verify (sum %#04x)", s)
				}
			}
		}
	}
}

func verifyL4(tb testing.TB, name string, ip *layers.IPv4, field uint16, hdr, payload []byte, proto layers.IPProtocol, mode checksumMode) {
	tb.Helper()
	if ip == nil {
		tb.Errorf("%s without IPv4", name)
		return
	}
	pseudo := refPseudo(ip.SrcIP.To4(), ip.DstIP.To4(), uint8(proto), len(hdr)+len(payload))
	switch mode {
	case csumPartial:
		if want := refSum(pseudo); field != want {
			tb.Errorf("%s partial checksum field %#04x, want pseudo-header sum %#04x", name, field, want)
		}
	default:
		if s := refSum(pseudo, hdr, payload); s != 0xffff {
			tb.Errorf("%s checksum %#04x does not verify (sum %#04x)", name, field, s)
		}
	}
}

func isICMPError(t uint8) bool {
	switch t {
	case 3, 4, 5, 11, 12:
		return true
	}
	return false
}

// describe renders a frame as one line per layer, from gopacket's decoding.
func describe(frame []byte) []string {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	var out []string
	for _, l := range pkt.Layers() {
		switch v := l.(type) {
		case *layers.Ethernet:
			out = append(out, fmt.Sprintf("Ethernet %v → %v type %v, %d bytes", v.SrcMAC, v.DstMAC, v.EthernetType, len(frame)))
		case *layers.Dot1Q:
			out = append(out, fmt.Sprintf("802.1Q vlan %d prio %d", v.VLANIdentifier, v.Priority))
		case *layers.ARP:
			out = append(out, fmt.Sprintf("ARP op %d sender %v %v target %v %v", v.Operation,
				net.HardwareAddr(v.SourceHwAddress), net.IP(v.SourceProtAddress), net.HardwareAddr(v.DstHwAddress), net.IP(v.DstProtAddress)))
		case *layers.IPv4:
			out = append(out, fmt.Sprintf("IPv4 %v → %v proto %v ttl %d tos %#02x id %d flags %v len %d ihl %d csum %#04x",
				v.SrcIP, v.DstIP, v.Protocol, v.TTL, v.TOS, v.Id, v.Flags, v.Length, v.IHL, v.Checksum))
		case *layers.TCP:
			var opts []string
			for _, o := range v.Options {
				opts = append(opts, fmt.Sprintf("%d:% x", o.OptionType, o.OptionData))
			}
			out = append(out, fmt.Sprintf("TCP %d → %d [%s] seq %d ack %d win %d doff %d csum %#04x opts [%s] payload %d",
				v.SrcPort, v.DstPort, tcpFlags(v), v.Seq, v.Ack, v.Window, v.DataOffset, v.Checksum, strings.Join(opts, " "), len(v.Payload)))
		case *layers.UDP:
			out = append(out, fmt.Sprintf("UDP %d → %d len %d csum %#04x payload %d", v.SrcPort, v.DstPort, v.Length, v.Checksum, len(v.Payload)))
		case *layers.ICMPv4:
			out = append(out, fmt.Sprintf("ICMP %v id %d seq %d csum %#04x", v.TypeCode, v.Id, v.Seq, v.Checksum))
			if isICMPError(v.TypeCode.Type()) {
				if q := quotedIPv4(v); q != nil {
					hl := int(q.IHL) * 4
					ports := ""
					if len(v.Payload) >= hl+4 {
						ports = fmt.Sprintf(" ports %d → %d", binary.BigEndian.Uint16(v.Payload[hl:]), binary.BigEndian.Uint16(v.Payload[hl+2:]))
					}
					out = append(out, fmt.Sprintf("  quoted IPv4 %v → %v proto %v ttl %d csum %#04x%s", q.SrcIP, q.DstIP, q.Protocol, q.TTL, q.Checksum, ports))
				}
			}
		}
	}
	return out
}

func tcpFlags(t *layers.TCP) string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{t.SYN, "SYN"}, {t.ACK, "ACK"}, {t.FIN, "FIN"}, {t.RST, "RST"}, {t.PSH, "PSH"}, {t.URG, "URG"}, {t.ECE, "ECE"}, {t.CWR, "CWR"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return strings.Join(f, "|")
}

// frameDiff explains how got differs from want: field by field for every
// layer gopacket decodes (and the header an ICMP error quotes), then the
// differing byte offsets.
func frameDiff(got, want []byte) string {
	var sb strings.Builder
	if len(got) != len(want) {
		fmt.Fprintf(&sb, "length: got %d, want %d\n", len(got), len(want))
	}
	gl := diffLayers(got)
	wl := diffLayers(want)
	for i := 0; i < len(gl) || i < len(wl); i++ {
		switch {
		case i >= len(gl):
			fmt.Fprintf(&sb, "layer %d: missing, want %s\n", i, reflect.TypeOf(wl[i]).Elem().Name())
		case i >= len(wl):
			fmt.Fprintf(&sb, "layer %d: extra %s\n", i, reflect.TypeOf(gl[i]).Elem().Name())
		default:
			diffStruct(&sb, reflect.ValueOf(gl[i]).Elem(), reflect.ValueOf(wl[i]).Elem(), reflect.TypeOf(gl[i]).Elem().Name())
		}
	}
	var offs []string
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			offs = append(offs, fmt.Sprint(i))
		}
	}
	if len(offs) > 0 {
		fmt.Fprintf(&sb, "bytes differ at offsets %s\n", strings.Join(offs, ","))
	}
	return sb.String()
}

func diffLayers(frame []byte) []any {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	var out []any
	for _, l := range pkt.Layers() {
		out = append(out, l)
		if icmp, ok := l.(*layers.ICMPv4); ok && isICMPError(icmp.TypeCode.Type()) {
			if q := quotedIPv4(icmp); q != nil {
				out = append(out, q)
			}
		}
	}
	return out
}

func diffStruct(sb *strings.Builder, g, w reflect.Value, name string) {
	if g.Type() != w.Type() {
		fmt.Fprintf(sb, "%s: got layer %v, want %v\n", name, g.Type(), w.Type())
		return
	}
	for i := 0; i < g.NumField(); i++ {
		f := g.Type().Field(i)
		if !f.IsExported() || f.Name == "BaseLayer" || f.Name == "Contents" || f.Name == "Payload" {
			continue
		}
		gv, wv := g.Field(i).Interface(), w.Field(i).Interface()
		if !reflect.DeepEqual(gv, wv) {
			fmt.Fprintf(sb, "%s.%s: got %v, want %v\n", name, f.Name, gv, wv)
		}
	}
}
