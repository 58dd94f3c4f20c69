package vrrp

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"lvslab/rewrite"
)

// Reason says why a packet was not built or not accepted. A uint8, so
// returning one never allocates and a caller can count drops per reason.
type Reason uint8

// Reasons. The receive ones follow vrrp_check_packet's order (reference
// §2.2); every one but ErrOtherVRID and ErrAHNextHeader is "bogus": logged
// with keepalived's text, and ignored without restarting the down timer.
const (
	OK Reason = iota
	ErrTruncated
	ErrVersion
	ErrAddrCount
	ErrAddress
	ErrAuth

	ErrIPHeader     // not a valid IPv4 header (length, IHL, checksum)
	ErrProtocol     // neither 112 nor 51
	ErrOtherVRID    // another virtual router: silently ignored
	ErrAHPresence   // AH present iff local auth_type AH
	ErrAHNextHeader // AH not followed by VRRP: silently dropped
	ErrAHICV        // HMAC-MD5-96 mismatch
	ErrAHSPI        // SPI is not the source address
	ErrAHSeq        // replayed sequence number
	ErrLength       // IP payload is not exactly the VRRP message
	ErrTTL          // multicast TTL not 255
	ErrWrongVersion // version differs from ours
	ErrAuthType     // v2 auth type differs from ours
	ErrPassword     // v2 PASS mismatch
	ErrAdvInt       // v2 advert interval differs
	ErrType         // not an ADVERTISEMENT
	ErrCount        // address count differs from our VIP count
	ErrChecksum     // VRRP checksum
	ErrCast         // multicast where unicast expected, or the reverse
	ErrVIPMissing   // one of our VIPs is not in the advert
	ErrPeer         // unicast source is not a configured peer
	numReasons
)

var reasonText = [numReasons]string{
	OK:              "vrrp: ok",
	ErrTruncated:    "vrrp: buffer too short",
	ErrVersion:      "vrrp: version must be 2 or 3",
	ErrAddrCount:    "vrrp: more than 255 addresses",
	ErrAddress:      "vrrp: address is not IPv4",
	ErrAuth:         "vrrp: AH auth without a key",
	ErrIPHeader:     "vrrp: bad IPv4 header",
	ErrProtocol:     "vrrp: not VRRP or AH",
	ErrOtherVRID:    "vrrp: other virtual router id",
	ErrAHPresence:   "vrrp: AH presence does not match auth_type",
	ErrAHNextHeader: "vrrp: AH next header is not VRRP",
	ErrAHICV:        "vrrp: invalid AH ICV",
	ErrAHSPI:        "vrrp: invalid AH SPI",
	ErrAHSeq:        "vrrp: AH sequence number replayed",
	ErrLength:       "vrrp: wrong length",
	ErrTTL:          "vrrp: TTL is not 255",
	ErrWrongVersion: "vrrp: wrong version",
	ErrAuthType:     "vrrp: auth type mismatch",
	ErrPassword:     "vrrp: password mismatch",
	ErrAdvInt:       "vrrp: advertisement interval mismatch",
	ErrType:         "vrrp: not an advertisement",
	ErrCount:        "vrrp: address count mismatch",
	ErrChecksum:     "vrrp: bad checksum",
	ErrCast:         "vrrp: unicast/multicast mismatch",
	ErrVIPMissing:   "vrrp: virtual address missing",
	ErrPeer:         "vrrp: source is not a unicast peer",
}

func (r Reason) Error() string {
	if r < numReasons {
		return reasonText[r]
	}
	return "vrrp: unknown reason"
}

// NumReasons sizes a per-reason counter array.
const NumReasons = int(numReasons)

// Bogus reports whether keepalived logs the reason (and we write the
// "bogus VRRP packet received" line operators grep for).
func (r Reason) Bogus() bool {
	return r != OK && r != ErrOtherVRID && r != ErrAHNextHeader && r >= ErrAHPresence
}

// Rules is what one instance accepts (reference §2.2).
type Rules struct {
	Name     string // instance name, as in keepalived's "(VI_1) ..." logs
	Version  uint8
	VRID     uint8
	AuthType uint8
	AuthPass [8]byte
	// AdvInt must match exactly for v2 (whole seconds).
	AdvInt time.Duration
	VIPs   []netip.Addr
	// Unicast: adverts must arrive unicast; multicast ones are rejected, and
	// the TTL is not checked.
	Unicast bool
	// Peers, when CheckPeers, are the only accepted unicast sources
	// (check_unicast_src).
	Peers      []netip.Addr
	CheckPeers bool
	// SkipAddrCheck is skip_check_adv_addr: the VIP list is not compared.
	SkipAddrCheck bool
}

// Received is an accepted advert.
type Received struct {
	Src      netip.Addr
	Dst      netip.Addr
	Priority uint8
	Interval time.Duration
	HasAH    bool
	Seq      uint32
	Msg      Advert
}

// Checker validates received packets for one instance. It holds the AH
// sequence counter, which keepalived shares between sending and receiving
// (reference §1.6.2). Not safe for concurrent use.
type Checker struct {
	R   Rules
	ah  *AHKey
	Seq uint32 // last AH sequence number accepted or sent
}

// NewChecker returns a checker for r.
func NewChecker(r Rules) *Checker {
	c := &Checker{R: r}
	if r.AuthType == AuthAH {
		c.ah = NewAHKey(r.AuthPass)
	}
	return c
}

// VRRPOffset returns where the VRRP message starts in an IPv4 packet and
// whether an AH header precedes it, or a reason the packet is not VRRP.
func VRRPOffset(pkt []byte) (off int, ah bool, r Reason) {
	ip, err := rewrite.ParseIPv4(pkt)
	if err != nil || ip.FragOffset() != 0 || ip.MF() {
		return 0, false, ErrIPHeader
	}
	off = ip.HeaderLen()
	switch ip.Protocol() {
	case ProtoVRRP:
	case ProtoAH:
		off += AHLen
		ah = true
	default:
		return 0, false, ErrProtocol
	}
	if len(ip) < off+HeaderLen {
		return 0, false, ErrLength
	}
	return off, ah, OK
}

// Check validates one received IPv4 packet (the whole packet, as a raw
// socket returns it) in keepalived's order. On success the AH counter
// advances to the packet's sequence number.
func (c *Checker) Check(pkt []byte) (Received, Reason) {
	var rx Received
	off, hasAH, r := VRRPOffset(pkt)
	if r != OK {
		return rx, r
	}
	ip := rewrite.IPv4(pkt[:binary.BigEndian.Uint16(pkt[2:4])])
	m := Advert(ip[off:])
	if m.VRID() != c.R.VRID {
		return rx, ErrOtherVRID
	}
	rx = Received{Src: ip.Src(), Dst: ip.Dst(), Priority: m.Priority(), HasAH: hasAH, Msg: m}
	// 1. AH presence matches.
	if hasAH != (c.R.AuthType == AuthAH && c.R.Version == 2) {
		return rx, ErrAHPresence
	}
	// 2. Exact length for our expectations.
	want := off + HeaderLen + 4*m.Count()
	if m.Version() == 2 {
		want += AuthDataLen
	}
	if want != len(ip) {
		return rx, ErrLength
	}
	multicast := ip.Dst().IsMulticast()
	// 3. TTL, multicast only.
	if multicast && ip.TTL() != TTL {
		return rx, ErrTTL
	}
	// 4. Version.
	if m.Version() != c.R.Version {
		return rx, ErrWrongVersion
	}
	if m.Version() == 2 {
		// 5. Auth type, then the PASS or AH check, then the interval.
		if m.AuthType() > AuthAH || m.AuthType() != c.R.AuthType {
			return rx, ErrAuthType
		}
		switch c.R.AuthType {
		case AuthPass:
			if subtle.ConstantTimeCompare(m.AuthData(), c.R.AuthPass[:]) != 1 {
				return rx, ErrPassword
			}
		case AuthAH:
			h := AH(ip[ip.HeaderLen():])
			if h.NextHeader() != ProtoVRRP {
				return rx, ErrAHNextHeader
			}
			if !c.ah.verify(ip, !multicast) {
				return rx, ErrAHICV
			}
			src := ip.Src().As4()
			if h.SPI() != binary.BigEndian.Uint32(src[:]) {
				return rx, ErrAHSPI
			}
			if h.Seq() <= c.Seq {
				return rx, ErrAHSeq
			}
			rx.Seq = h.Seq()
		}
		if time.Duration(m.AdvIntV2())*time.Second != c.R.AdvInt.Truncate(time.Second) {
			return rx, ErrAdvInt
		}
	}
	// 6. Type.
	if m.Type() != TypeAdvert {
		return rx, ErrType
	}
	// 7. Address count.
	if !c.R.SkipAddrCheck && m.Count() != len(c.R.VIPs) {
		return rx, ErrCount
	}
	// 9. Checksum (8, tot_len, was ParseIPv4's). v3 also accepts the
	// pre-1.3.6 unicast form (224.0.0.18 in the pseudo-header) and RFC 9568's
	// no-pseudo-header form, as a tolerant receiver (reference §1.3, §7.3).
	if m.Version() == 2 {
		if !m.ChecksumV2Valid() {
			return rx, ErrChecksum
		}
	} else if !m.ChecksumV3Valid(ip.Src(), ip.Dst()) &&
		!m.ChecksumV3Valid(ip.Src(), MulticastGroup) && !m.ChecksumV3NoPseudoValid() {
		return rx, ErrChecksum
	}
	// 10. Multicast or unicast as configured.
	if multicast == c.R.Unicast {
		return rx, ErrCast
	}
	// 11. Every VIP present.
	if !c.R.SkipAddrCheck {
		for _, v := range c.R.VIPs {
			if !m.hasAddr(v) {
				return rx, ErrVIPMissing
			}
		}
	}
	// 12. Unicast source.
	if c.R.Unicast && c.R.CheckPeers && !slices.Contains(c.R.Peers, ip.Src()) {
		return rx, ErrPeer
	}
	rx.Interval = m.Interval()
	if hasAH {
		c.Seq = rx.Seq
	}
	return rx, OK
}

func (a Advert) hasAddr(v netip.Addr) bool {
	for i := range a.Count() {
		if a.Addr(i) == v {
			return true
		}
	}
	return false
}

// LogLine is keepalived 2.2.7's message for a rejected packet (reference
// §2.2, §1.6), prefixed with the instance name as keepalived does. It
// allocates: it runs only for bogus packets.
func (c *Checker) LogLine(r Reason, pkt []byte) string {
	n := c.R.Name
	off, _, _ := VRRPOffset(pkt)
	var m Advert
	var ip rewrite.IPv4
	if off > 0 && len(pkt) >= off+HeaderLen {
		ip = rewrite.IPv4(pkt)
		m = Advert(pkt[off:])
	}
	switch {
	case m == nil:
		return fmt.Sprintf("(%s) %s", n, r.Error())
	case r == ErrAHPresence && c.R.AuthType == AuthAH:
		return fmt.Sprintf("(%s) Expected AH header but auth type is AH", n)
	case r == ErrAHPresence:
		return fmt.Sprintf("(%s) Received AH header but auth type not AH", n)
	case r == ErrLength:
		return fmt.Sprintf("(%s) ip payload too short or too long. Received %d", n, len(pkt))
	case r == ErrTTL:
		return fmt.Sprintf("(%s) invalid TTL/HL. Received %d and expect %d", n, ip.TTL(), TTL)
	case r == ErrWrongVersion:
		return fmt.Sprintf("(%s) wrong version. Received %d and expect %d", n, m.Version(), c.R.Version)
	case r == ErrAuthType:
		return fmt.Sprintf("(%s) received a %d auth, expecting %d!", n, m.AuthType(), c.R.AuthType)
	case r == ErrPassword:
		return fmt.Sprintf("(%s) received an invalid passwd!", n)
	case r == ErrAHICV:
		return fmt.Sprintf("(%s) IPSEC-AH : invalid IPSEC HMAC-MD5 value. Due to fields mutation or bad password !", n)
	case r == ErrAHSPI:
		return fmt.Sprintf("(%s) IPSEC-AH : invalid IPSEC SPI value. %d and expect %d", n, AH(pkt[ip.HeaderLen():]).SPI(), binary.BigEndian.Uint32(ip[12:16]))
	case r == ErrAHSeq:
		return fmt.Sprintf("(%s) IPSEC-AH : sequence number %d already processed. Packet dropped. Local(%d)", n, AH(pkt[ip.HeaderLen():]).Seq(), c.Seq)
	case r == ErrAdvInt:
		return fmt.Sprintf("(%s) advertisement interval mismatch mine=%d sec rcv'd=%d sec", n, int(c.R.AdvInt/time.Second), m.AdvIntV2())
	case r == ErrType:
		return fmt.Sprintf("(%s) Invalid type received. %d and expect %d", n, m.Type(), TypeAdvert)
	case r == ErrCount:
		return fmt.Sprintf("(%s) received an unexpected ip number count %d, expected %d!", n, m.Count(), len(c.R.VIPs))
	case r == ErrChecksum:
		return fmt.Sprintf("(%s) Invalid VRRPv%d checksum", n, m.Version())
	case r == ErrCast && c.R.Unicast:
		return fmt.Sprintf("(%s) Expected unicast packet but received multicast packet", n)
	case r == ErrCast:
		return fmt.Sprintf("(%s) Expected multicast packet but received unicast packet", n)
	case r == ErrVIPMissing:
		for _, v := range c.R.VIPs {
			if !m.hasAddr(v) {
				return fmt.Sprintf("(%s) ip address associated with VRID %d not present in MASTER advert : %s", n, c.R.VRID, v)
			}
		}
	case r == ErrPeer:
		return fmt.Sprintf("(%s) unicast source address %s not a unicast peer", n, ip.Src())
	}
	return fmt.Sprintf("(%s) %s", n, r.Error())
}

// BogusLine is the line keepalived 1.x wrote after every rejected advert;
// operators (and seed 000) grep for it, so it follows the specific reason.
func BogusLine(ifname string) string {
	return fmt.Sprintf("bogus VRRP packet received on %s !!!", ifname)
}
