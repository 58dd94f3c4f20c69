package observe

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"
)

// What the VRRP observer reads off a segment: VRRP adverts (IP protocol
// 112, or 51 when keepalived's auth_type AH wraps them) and ARP. Decoding
// is by offsets into the frame, as rewrite/ does; a frame that is too
// short or not what it says is skipped, never trusted.

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	protoVRRP     = 112
	protoAH       = 51
)

// advert is one decoded VRRP advertisement.
type advert struct {
	Version  int
	VRID     int
	Priority int
	Interval time.Duration // v2: seconds; v3: centiseconds
	Auth     string        // v2: none, pass, ah; v3: "" (v3 has no auth)
	Addrs    []netip.Addr
	Src      netip.Addr
	SrcMAC   net.HardwareAddr
	TTL      int
}

// arpFrame is one decoded ARP packet.
type arpFrame struct {
	Reply     bool
	SenderMAC net.HardwareAddr
	SenderIP  netip.Addr
	TargetMAC net.HardwareAddr
	TargetIP  netip.Addr
	EtherDst  net.HardwareAddr
}

// Gratuitous is an announcement of the sender's own address (sender and
// target IP the same), request or reply, as keepalived and arping -U send.
func (a arpFrame) Gratuitous() bool { return a.SenderIP.IsValid() && a.SenderIP == a.TargetIP }

// decodeFrame sorts an Ethernet frame into an advert, an ARP packet, or
// neither.
func decodeFrame(b []byte) (adv *advert, arp *arpFrame) {
	if len(b) < 14 {
		return nil, nil
	}
	switch binary.BigEndian.Uint16(b[12:14]) {
	case etherTypeARP:
		if a, ok := decodeARP(b[14:]); ok {
			a.EtherDst = net.HardwareAddr(b[0:6])
			return nil, &a
		}
	case etherTypeIPv4:
		if a, ok := decodeVRRP(b[14:]); ok {
			a.SrcMAC = net.HardwareAddr(b[6:12])
			return &a, nil
		}
	}
	return nil, nil
}

func decodeARP(b []byte) (arpFrame, bool) {
	// Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
	if len(b) < 28 || binary.BigEndian.Uint16(b[0:2]) != 1 || binary.BigEndian.Uint16(b[2:4]) != etherTypeIPv4 || b[4] != 6 || b[5] != 4 {
		return arpFrame{}, false
	}
	op := binary.BigEndian.Uint16(b[6:8])
	if op != 1 && op != 2 {
		return arpFrame{}, false
	}
	return arpFrame{
		Reply:     op == 2,
		SenderMAC: net.HardwareAddr(b[8:14]),
		SenderIP:  netip.AddrFrom4([4]byte(b[14:18])),
		TargetMAC: net.HardwareAddr(b[18:24]),
		TargetIP:  netip.AddrFrom4([4]byte(b[24:28])),
	}, true
}

// decodeVRRP reads an IPv4 packet carrying a VRRP advertisement, directly
// or inside AH.
func decodeVRRP(b []byte) (advert, bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return advert{}, false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl || total > len(b) {
		return advert{}, false
	}
	proto := b[9]
	src := netip.AddrFrom4([4]byte(b[12:16]))
	ttl := int(b[8])
	p := b[ihl:total]
	auth := ""
	if proto == protoAH {
		// AH: next header, payload length in 32-bit words minus 2, then
		// SPI, sequence number and the ICV (RFC 4302 §2).
		if len(p) < 12 || p[0] != protoVRRP {
			return advert{}, false
		}
		ahLen := (int(p[1]) + 2) * 4
		if ahLen > len(p) {
			return advert{}, false
		}
		p, proto, auth = p[ahLen:], protoVRRP, "ah"
	}
	if proto != protoVRRP || len(p) < 8 {
		return advert{}, false
	}
	version, typ := int(p[0]>>4), p[0]&0x0f
	if typ != 1 || (version != 2 && version != 3) {
		return advert{}, false
	}
	a := advert{Version: version, VRID: int(p[1]), Priority: int(p[2]), Src: src, TTL: ttl}
	count := int(p[3])
	if len(p) < 8+4*count {
		return advert{}, false
	}
	if version == 2 {
		a.Interval = time.Duration(p[5]) * time.Second
		if auth == "" {
			switch p[4] {
			case 0:
				auth = "none"
			case 1:
				auth = "pass"
			case 2:
				auth = "ah"
			default:
				auth = "unknown"
			}
		}
		a.Auth = auth
	} else {
		a.Interval = time.Duration(binary.BigEndian.Uint16(p[4:6])&0x0fff) * 10 * time.Millisecond
	}
	for i := range count {
		o := 8 + 4*i
		a.Addrs = append(a.Addrs, netip.AddrFrom4([4]byte(p[o:o+4])))
	}
	return a, true
}

// arpProbe builds an RFC 5227 ARP probe for ip from mac: sender IP
// 0.0.0.0, so no host that answers (or hears it) learns a neighbour
// entry from it; the holder answers to mac alone.
func arpProbe(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := make([]byte, 42)
	for i := range 6 {
		b[i] = 0xff
	}
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	a := b[14:]
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], 1)
	copy(a[8:14], mac)
	// sender IP 0.0.0.0 (a[14:18]), target MAC zero (a[18:24])
	t := ip.As4()
	copy(a[24:28], t[:])
	return b
}
