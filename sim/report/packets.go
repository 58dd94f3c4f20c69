package report

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// IP protocol numbers the walk knows.
const (
	protoICMP = 1
	protoIPIP = 4
	protoTCP  = 6
	protoUDP  = 17
)

// ipHdr is what the walk shows of an IPv4 header.
type ipHdr struct {
	Src, Dst netip.Addr
	TTL      uint8
	ID       uint16
	Proto    uint8
	Len      uint16 // total length
}

// arpInfo is an ARP message.
type arpInfo struct {
	Op        uint16
	SenderMAC [6]byte
	SenderIP  netip.Addr
	TargetIP  netip.Addr
}

// pkt is one decoded frame of a segment capture.
type pkt struct {
	seg   string
	file  string // relative path of the capture
	frame int    // 1-based, as Wireshark numbers frames
	ts    time.Time
	wire  int

	src, dst [6]byte
	arp      *arpInfo

	hasIP bool
	outer *ipHdr // IP-in-IP: the encapsulating header
	ip    ipHdr  // the innermost IPv4 header

	sport, dport uint16 // TCP/UDP ports
	flags        uint8  // TCP flags (FIN SYN RST PSH ACK URG ECE CWR)
	seq, ack     uint32
	icmpType     uint8
	icmpCode     uint8
	icmpID       uint16
	icmpSeq      uint16
	plen         int // L4 payload length from the headers (not the snap)

	key pktKey
}

// pktKey identifies one packet across hops whatever its addresses became:
// LVS keeps TCP sequence numbers, payloads and ICMP ids while rewriting
// MACs (DR), addresses and ports (NAT, FULLNAT) or wrapping it (TUN).
type pktKey struct {
	proto uint8
	a, b  uint32
	flags uint8
	plen  int
	hash  uint64
}

// TCP flag bits, low byte of the TCP flags field.
const (
	tcpFIN = 1 << iota
	tcpSYN
	tcpRST
	tcpPSH
	tcpACK
	tcpURG
	tcpECE
	tcpCWR
)

func (p *pkt) syn() bool             { return p.ip.Proto == protoTCP && p.flags&tcpSYN != 0 && p.flags&tcpACK == 0 }
func (p *pkt) srcAP() netip.AddrPort { return netip.AddrPortFrom(p.ip.Src, p.sport) }
func (p *pkt) dstAP() netip.AddrPort { return netip.AddrPortFrom(p.ip.Dst, p.dport) }

// readCapture decodes every frame of a pcap or pcapng file.
func readCapture(path, seg, rel string) ([]*pkt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var src interface {
		ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if binary.BigEndian.Uint32(magic) == 0x0a0d0d0a {
		r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		src = r
	} else {
		r, err := pcapgo.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		src = r
	}
	var out []*pkt
	for n := 1; ; n++ {
		data, ci, err := src.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A file cut short (a crash mid-write) still shows what it has.
			if errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return out, fmt.Errorf("read %s frame %d: %w", path, n, err)
		}
		if p := decode(data); p != nil {
			p.seg, p.file, p.frame, p.ts, p.wire = seg, rel, n, ci.Timestamp, ci.Length
			out = append(out, p)
		}
	}
	return out, nil
}

// decode reads the headers the walk shows; nil for what it cannot follow.
func decode(data []byte) *pkt {
	var eth layers.Ethernet
	if eth.DecodeFromBytes(data, gopacket.NilDecodeFeedback) != nil || len(eth.SrcMAC) != 6 {
		return nil
	}
	p := &pkt{}
	copy(p.src[:], eth.SrcMAC)
	copy(p.dst[:], eth.DstMAC)
	switch eth.EthernetType {
	case layers.EthernetTypeARP:
		var a layers.ARP
		if a.DecodeFromBytes(eth.Payload, gopacket.NilDecodeFeedback) != nil || len(a.SourceHwAddress) != 6 {
			return nil
		}
		ai := &arpInfo{Op: a.Operation}
		copy(ai.SenderMAC[:], a.SourceHwAddress)
		ai.SenderIP, _ = netip.AddrFromSlice(a.SourceProtAddress)
		ai.TargetIP, _ = netip.AddrFromSlice(a.DstProtAddress)
		p.arp = ai
		return p
	case layers.EthernetTypeIPv4:
	default:
		return nil
	}
	var ip layers.IPv4
	if ip.DecodeFromBytes(eth.Payload, gopacket.NilDecodeFeedback) != nil {
		return nil
	}
	p.hasIP = true
	p.ip = hdrOf(&ip)
	payload := ip.Payload
	if ip.Protocol == protoIPIP {
		var inner layers.IPv4
		if inner.DecodeFromBytes(ip.Payload, gopacket.NilDecodeFeedback) == nil {
			outer := p.ip
			p.outer = &outer
			p.ip = hdrOf(&inner)
			payload = inner.Payload
		}
	}
	// The payload length the headers declare: a snap length cuts what we
	// hold, not what was sent.
	l4len := int(p.ip.Len) - ipHeaderLen(p, &ip)
	switch p.ip.Proto {
	case protoTCP:
		var t layers.TCP
		if t.DecodeFromBytes(payload, gopacket.NilDecodeFeedback) != nil {
			break
		}
		p.sport, p.dport = uint16(t.SrcPort), uint16(t.DstPort)
		p.seq, p.ack = t.Seq, t.Ack
		p.flags = tcpFlags(&t)
		p.plen = max(0, l4len-int(t.DataOffset)*4)
		p.key = pktKey{proto: protoTCP, a: t.Seq, b: t.Ack, flags: p.flags &^ (tcpECE | tcpCWR), plen: p.plen}
	case protoUDP:
		var u layers.UDP
		if u.DecodeFromBytes(payload, gopacket.NilDecodeFeedback) != nil {
			break
		}
		p.sport, p.dport = uint16(u.SrcPort), uint16(u.DstPort)
		p.plen = max(0, int(u.Length)-8)
		p.key = pktKey{proto: protoUDP, plen: p.plen, hash: prefixHash(u.Payload)}
	case protoICMP:
		var ic layers.ICMPv4
		if ic.DecodeFromBytes(payload, gopacket.NilDecodeFeedback) != nil {
			break
		}
		p.icmpType, p.icmpCode = ic.TypeCode.Type(), ic.TypeCode.Code()
		p.icmpID, p.icmpSeq = ic.Id, ic.Seq
		p.plen = max(0, l4len-8)
		p.key = pktKey{proto: protoICMP, a: uint32(ic.Id)<<16 | uint32(ic.Seq), b: uint32(ic.TypeCode), plen: p.plen, hash: prefixHash(ic.Payload)}
	default:
		p.key = pktKey{proto: p.ip.Proto, a: uint32(p.ip.ID), plen: l4len, hash: prefixHash(payload)}
	}
	return p
}

func hdrOf(ip *layers.IPv4) ipHdr {
	h := ipHdr{TTL: ip.TTL, ID: ip.Id, Proto: uint8(ip.Protocol), Len: ip.Length}
	h.Src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
	h.Dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
	return h
}

// ipHeaderLen is the innermost IPv4 header's length.
func ipHeaderLen(p *pkt, outer *layers.IPv4) int {
	if p.outer == nil {
		return int(outer.IHL) * 4
	}
	var inner layers.IPv4
	if inner.DecodeFromBytes(outer.Payload, gopacket.NilDecodeFeedback) == nil {
		return int(inner.IHL) * 4
	}
	return 20
}

func tcpFlags(t *layers.TCP) uint8 {
	var f uint8
	for _, b := range []struct {
		on  bool
		bit uint8
	}{{t.FIN, tcpFIN}, {t.SYN, tcpSYN}, {t.RST, tcpRST}, {t.PSH, tcpPSH}, {t.ACK, tcpACK}, {t.URG, tcpURG}, {t.ECE, tcpECE}, {t.CWR, tcpCWR}} {
		if b.on {
			f |= b.bit
		}
	}
	return f
}

// prefixHash hashes the first bytes of a payload: enough to tell datagrams
// apart, few enough that every hop's snap length still holds them.
func prefixHash(b []byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(b[:min(len(b), 48)])
	return h.Sum64()
}

// flagString prints TCP flags as Wireshark does: [SYN, ACK].
func flagString(f uint8) string {
	names := []struct {
		bit  uint8
		name string
	}{{tcpSYN, "SYN"}, {tcpFIN, "FIN"}, {tcpRST, "RST"}, {tcpPSH, "PSH"}, {tcpACK, "ACK"}, {tcpURG, "URG"}, {tcpECE, "ECE"}, {tcpCWR, "CWR"}}
	s := ""
	for _, n := range names {
		if f&n.bit != 0 {
			if s != "" {
				s += ", "
			}
			s += n.name
		}
	}
	return "[" + s + "]"
}

func macString(m [6]byte) string { return net.HardwareAddr(m[:]).String() }
