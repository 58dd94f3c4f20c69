// Package pktgen is the traffic side of the end-to-end packet-rate
// benchmark: a generator that sends prebuilt UDP frames through an AF_PACKET
// transmit port as fast as it can (or at a set rate), and a sink that counts
// the frames arriving on an interface through an AF_PACKET receive ring.
//
// Frames are built once, with complete checksums, so the generator's cost
// per frame is the copy into the transmit ring and nothing else; the source
// port (and address) varies across flows so that a NAT forwarder has many
// connections to track, not one.
package pktgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"lvslab/rewrite"
)

// Header lengths of the frames we build: Ethernet II without a VLAN tag,
// IPv4 without options, UDP.
const (
	ethLen  = 14
	ipv4Len = 20
	udpLen  = 8
	// HeadersLen is the bytes before the UDP payload.
	HeadersLen = ethLen + ipv4Len + udpLen
	// DefaultPayload makes a 64-byte frame (FCS not counted), the classic
	// small-packet benchmark size.
	DefaultPayload = 64 - HeadersLen
)

// Flows describes the set of UDP flows a generator cycles through: every
// combination of SrcAddrs consecutive source addresses and Ports
// consecutive source ports, all to one destination.
type Flows struct {
	SrcMAC, DstMAC [6]byte
	// Src is the first source address.
	Src netip.Addr
	// SrcAddrs is the number of consecutive source addresses (default 1).
	SrcAddrs int
	// SrcPort is the first source port (default 10000).
	SrcPort uint16
	// Ports is the number of source ports per address (default 1024).
	Ports int
	// Dst is where every frame goes (a VIP and its port).
	Dst netip.AddrPort
	// Payload is the UDP payload length; 0 means DefaultPayload.
	Payload int
}

func (f *Flows) normalize() error {
	if f.SrcAddrs <= 0 {
		f.SrcAddrs = 1
	}
	if f.SrcPort == 0 {
		f.SrcPort = 10000
	}
	if f.Ports <= 0 {
		f.Ports = 1024
	}
	if f.Payload == 0 {
		f.Payload = DefaultPayload
	}
	switch {
	case !f.Src.Is4() || !f.Dst.Addr().Is4():
		return fmt.Errorf("pktgen: flows %s -> %s: IPv4 addresses only", f.Src, f.Dst)
	case int(f.SrcPort)+f.Ports-1 > 0xffff:
		return fmt.Errorf("pktgen: %d ports from %d run past 65535", f.Ports, f.SrcPort)
	case f.Payload < 0 || HeadersLen+f.Payload > 1514:
		return fmt.Errorf("pktgen: payload of %d bytes does not fit a 1500-byte MTU", f.Payload)
	}
	last := f.Src
	for range f.SrcAddrs - 1 {
		last = last.Next()
	}
	if !last.Is4() {
		return fmt.Errorf("pktgen: %d source addresses from %s run out of IPv4", f.SrcAddrs, f.Src)
	}
	return nil
}

// Count is the number of flows (after defaults).
func (f Flows) Count() int {
	if err := f.normalize(); err != nil {
		return 0
	}
	return f.SrcAddrs * f.Ports
}

// FrameLen is the length of every frame (after defaults).
func (f Flows) FrameLen() int {
	if f.Payload == 0 {
		return HeadersLen + DefaultPayload
	}
	return HeadersLen + f.Payload
}

// Frames builds one frame per flow, ports varying fastest, so that
// consecutive frames belong to different flows. The frames share one
// backing array.
func (f Flows) Frames() ([][]byte, error) {
	if err := f.normalize(); err != nil {
		return nil, err
	}
	n, size := f.SrcAddrs*f.Ports, HeadersLen+f.Payload
	mem := make([]byte, n*size)
	frames := make([][]byte, 0, n)
	src := f.Src
	for range f.SrcAddrs {
		for p := range f.Ports {
			b := mem[len(frames)*size : (len(frames)+1)*size : (len(frames)+1)*size]
			BuildUDP(b, f.SrcMAC, f.DstMAC, netip.AddrPortFrom(src, f.SrcPort+uint16(p)), f.Dst)
			frames = append(frames, b)
		}
		src = src.Next()
	}
	return frames, nil
}

// BuildUDP writes an Ethernet/IPv4/UDP frame filling all of b (the payload
// is what b has room for after the headers, left as it is) with correct IP
// and UDP checksums: checksums complete, not partial, since the frames go
// out of a packet socket that the kernel will not checksum for us.
func BuildUDP(b []byte, srcMAC, dstMAC [6]byte, src, dst netip.AddrPort) {
	if len(b) < HeadersLen {
		panic(errors.New("pktgen: frame buffer shorter than the headers"))
	}
	ipHeader(b, srcMAC, dstMAC, src.Addr(), dst.Addr(), rewrite.ProtoUDP)

	udp := b[ethLen+ipv4Len:]
	binary.BigEndian.PutUint16(udp[0:2], src.Port())
	binary.BigEndian.PutUint16(udp[2:4], dst.Port())
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	udp[6], udp[7] = 0, 0
	sum := ^rewrite.OnesSum(udp, rewrite.PseudoHeaderSum(src.Addr(), dst.Addr(), rewrite.ProtoUDP, uint16(len(udp))))
	binary.BigEndian.PutUint16(udp[6:8], rewrite.UDPWireChecksum(sum))
}

// MatchUDP reports whether frame is an untagged IPv4/UDP frame (first
// fragment or unfragmented) to port dport and, if dst is valid, to address
// dst. It is the sink's filter: whatever else shows up on the wire (ARP,
// the forwarder's own chatter) is not counted as forwarded traffic.
func MatchUDP(frame []byte, dst netip.Addr, dport uint16) bool {
	if len(frame) < HeadersLen || binary.BigEndian.Uint16(frame[12:14]) != rewrite.EtherTypeIPv4 {
		return false
	}
	ip := frame[ethLen:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < ipv4Len || ip[9] != rewrite.ProtoUDP || len(ip) < ihl+udpLen {
		return false
	}
	if binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 {
		return false // a later fragment: no UDP header
	}
	if dst.IsValid() && (!dst.Is4() || [4]byte(ip[16:20]) != dst.As4()) {
		return false
	}
	return binary.BigEndian.Uint16(ip[ihl+2:ihl+4]) == dport
}
