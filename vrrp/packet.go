package vrrp

import (
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // keepalived's AH is HMAC-MD5-96 (RFC 2403); interop needs it.
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"net/netip"
	"time"

	"lvslab/rewrite"
)

// Wire constants (reference §1.1–1.3, §1.6.2).
const (
	ProtoVRRP = 112
	ProtoAH   = 51

	// TTL is what every advert carries and what multicast receivers demand.
	TTL = 255
	// TOS is keepalived's "network control" precedence.
	TOS = 0xc0

	HeaderLen   = 8  // VRRP fixed header (v2 and v3)
	AuthDataLen = 8  // v2 Authentication Data, whatever the auth type
	AHLen       = 24 // keepalived's AH: 12 bytes of header, 12 of ICV
	icvLen      = 12

	TypeAdvert = 1

	AuthNone = 0
	AuthPass = 1
	AuthAH   = 2

	// MaxAddrs is what the 8-bit count field allows.
	MaxAddrs = 255
	// MaxPacketLen bounds an IPv4 advert: a 60-byte IP header, AH, and a v2
	// message with 255 addresses.
	MaxPacketLen = 60 + AHLen + HeaderLen + 4*MaxAddrs + AuthDataLen
)

// MulticastGroup is the IPv4 VRRP multicast group (RFC 5798 §5.1.1.2).
var MulticastGroup = netip.AddrFrom4([4]byte{224, 0, 0, 18})

// Advert is a view of one VRRP message (v2 or v3), starting at the version
// byte. Accessors do not check the length: Check (or MessageLen) does.
type Advert []byte

// Version is 2 or 3 on valid adverts.
func (a Advert) Version() uint8 { return a[0] >> 4 }

// Type is 1 (ADVERTISEMENT) on valid adverts.
func (a Advert) Type() uint8 { return a[0] & 0x0f }

// VRID is the virtual router id.
func (a Advert) VRID() uint8 { return a[1] }

// Priority is the sender's priority; 0 means "master is stopping".
func (a Advert) Priority() uint8 { return a[2] }

// Count is the number of IPv4 addresses in the message.
func (a Advert) Count() int { return int(a[3]) }

// AuthType is the v2 auth type (0 none, 1 PASS, 2 AH); v3 has none.
func (a Advert) AuthType() uint8 { return a[4] }

// AdvIntV2 is the v2 advertisement interval in whole seconds.
func (a Advert) AdvIntV2() uint8 { return a[5] }

// AdvIntV3 is the v3 maximum advertisement interval in centiseconds
// (12 bits; keepalived masks the reserved bits away on receive).
func (a Advert) AdvIntV3() uint16 { return binary.BigEndian.Uint16(a[4:6]) & 0x0fff }

// Interval is the advertisement interval the message carries.
func (a Advert) Interval() time.Duration {
	if a.Version() == 3 {
		return time.Duration(a.AdvIntV3()) * 10 * time.Millisecond
	}
	return time.Duration(a.AdvIntV2()) * time.Second
}

// Checksum is the checksum field.
func (a Advert) Checksum() uint16 { return binary.BigEndian.Uint16(a[6:8]) }

// Addr returns the i-th address.
func (a Advert) Addr(i int) netip.Addr {
	o := HeaderLen + 4*i
	return netip.AddrFrom4([4]byte(a[o : o+4]))
}

// AuthData is the v2 message's 8 authentication bytes.
func (a Advert) AuthData() []byte {
	o := HeaderLen + 4*a.Count()
	return a[o : o+AuthDataLen]
}

// MessageLen is the length the header implies: 8 + 4n, plus 8 for v2.
func (a Advert) MessageLen() int {
	n := HeaderLen + 4*a.Count()
	if a.Version() == 2 {
		n += AuthDataLen
	}
	return n
}

// ChecksumV2Valid checks the v2 checksum (the message only, reference §1.2).
func (a Advert) ChecksumV2Valid() bool { return rewrite.OnesSum(a, 0) == 0xffff }

// ChecksumV3Valid checks the v3 checksum with the IPv4 pseudo-header built
// from src and dst (reference §1.3).
func (a Advert) ChecksumV3Valid(src, dst netip.Addr) bool {
	ph := rewrite.PseudoHeaderSum(src, dst, ProtoVRRP, uint16(len(a)))
	return rewrite.OnesSum(a, ph) == 0xffff
}

// ChecksumV3NoPseudoValid accepts RFC 9568 / vendor v3 adverts whose IPv4
// checksum has no pseudo-header (reference §1.3).
func (a Advert) ChecksumV3NoPseudoValid() bool { return rewrite.OnesSum(a, 0) == 0xffff }

// setChecksum computes and stores the checksum; dst matters only for v3.
func (a Advert) setChecksum(src, dst netip.Addr) {
	a[6], a[7] = 0, 0
	var init uint16
	if a.Version() == 3 {
		init = rewrite.PseudoHeaderSum(src, dst, ProtoVRRP, uint16(len(a)))
	}
	binary.BigEndian.PutUint16(a[6:8], ^rewrite.OnesSum(a, init))
}

// AH is a view of keepalived's 24-byte IPSEC-AH header (reference §1.6.2).
type AH []byte

// NextHeader is 112 on VRRP adverts.
func (h AH) NextHeader() uint8 { return h[0] }

// PayloadLen is 4 (in 32-bit words minus 2) for keepalived's AH.
func (h AH) PayloadLen() uint8 { return h[1] }

// SPI is the sender's IPv4 address on keepalived adverts.
func (h AH) SPI() uint32 { return binary.BigEndian.Uint32(h[4:8]) }

// Seq is the anti-replay sequence number.
func (h AH) Seq() uint32 { return binary.BigEndian.Uint32(h[8:12]) }

// ICV is the 12-byte truncated HMAC-MD5.
func (h AH) ICV() []byte { return h[12:24] }

// AHKey computes keepalived's HMAC-MD5-96 ICVs with one reusable HMAC, so
// per-advert signing and checking do not allocate. Not safe for concurrent
// use: one per Instance.
type AHKey struct {
	mac hash.Hash
	sum [md5.Size]byte
	// hdr holds the mutable-fields-zeroed headers: a field, not a local,
	// because a slice passed to hash.Hash.Write escapes.
	hdr [rewrite.IPv4MaxHeaderLen + AHLen]byte
}

// NewAHKey keys the HMAC with auth_pass (truncated to 8 bytes, zero-padded:
// HMAC pads to 64 bytes anyway).
func NewAHKey(pass [8]byte) *AHKey {
	return &AHKey{mac: hmac.New(md5.New, pass[:])}
}

// icv computes the ICV of an IPv4 packet carrying AH: the IP header with
// TOS, flags/fragment and checksum zeroed (and TTL zeroed for unicast), the
// AH with its ICV zeroed, and the VRRP message.
func (k *AHKey) icv(pkt []byte, unicast bool) []byte {
	hl := int(pkt[0]&0x0f) * 4
	hdr := k.hdr[:]
	n := copy(hdr, pkt[:hl+AHLen])
	hdr[1] = 0
	hdr[6], hdr[7] = 0, 0
	hdr[10], hdr[11] = 0, 0
	if unicast {
		hdr[8] = 0
	}
	clear(hdr[hl+12 : hl+AHLen])
	k.mac.Reset()
	k.mac.Write(hdr[:n])
	k.mac.Write(pkt[hl+AHLen:])
	return k.mac.Sum(k.sum[:0])[:icvLen]
}

// verify reports whether the packet's ICV is right, in constant time.
func (k *AHKey) verify(pkt []byte, unicast bool) bool {
	hl := int(pkt[0]&0x0f) * 4
	got := pkt[hl+12 : hl+AHLen]
	return subtle.ConstantTimeCompare(k.icv(pkt, unicast), got) == 1
}

// AdvertSpec is what BuildAdvert writes.
type AdvertSpec struct {
	Version  uint8
	VRID     uint8
	Priority uint8
	// Interval is rounded down to whole seconds (v2) or centiseconds (v3).
	Interval time.Duration
	VIPs     []netip.Addr
	AuthType uint8
	AuthPass [8]byte
	// AH signs the packet when AuthType is AuthAH; Seq is its sequence number.
	AH  *AHKey
	Seq uint32
	Src netip.Addr
	Dst netip.Addr
	// Unicast selects the AH TTL rule (reference §1.6.2).
	Unicast bool
	TTL     uint8
	// ID is the IP identification; keepalived counts from 1 and never sends
	// 0, so the kernel does not rewrite it after AH signed it.
	ID uint16
}

// PacketLen is the IPv4 length of the advert s describes.
func (s *AdvertSpec) PacketLen() int {
	n := rewrite.IPv4MinHeaderLen + HeaderLen + 4*len(s.VIPs)
	if s.Version == 2 {
		n += AuthDataLen
		if s.AuthType == AuthAH {
			n += AHLen
		}
	}
	return n
}

// BuildAdvert writes the complete IPv4 packet (for an IP_HDRINCL socket) into
// buf and returns its length. It fails only on a spec it cannot encode.
func BuildAdvert(buf []byte, s *AdvertSpec) (int, error) {
	if s.Version != 2 && s.Version != 3 {
		return 0, ErrVersion
	}
	if len(s.VIPs) > MaxAddrs {
		return 0, ErrAddrCount
	}
	if !s.Src.Is4() || !s.Dst.Is4() {
		return 0, ErrAddress
	}
	n := s.PacketLen()
	if len(buf) < n {
		return 0, ErrTruncated
	}
	b := buf[:n]
	clear(b)
	ah := s.Version == 2 && s.AuthType == AuthAH
	if ah && s.AH == nil {
		return 0, ErrAuth
	}
	// IPv4 header.
	b[0] = 0x45
	b[1] = TOS
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	binary.BigEndian.PutUint16(b[4:6], s.ID)
	b[8] = s.TTL
	b[9] = ProtoVRRP
	src, dst := s.Src.As4(), s.Dst.As4()
	copy(b[12:16], src[:])
	copy(b[16:20], dst[:])
	off := rewrite.IPv4MinHeaderLen
	if ah {
		b[9] = ProtoAH
		h := b[off : off+AHLen]
		h[0] = ProtoVRRP
		h[1] = 4
		copy(h[4:8], src[:])
		binary.BigEndian.PutUint32(h[8:12], s.Seq)
		off += AHLen
	}
	m := Advert(b[off:])
	m[0] = s.Version<<4 | TypeAdvert
	m[1] = s.VRID
	m[2] = s.Priority
	m[3] = uint8(len(s.VIPs))
	if s.Version == 2 {
		m[4] = s.AuthType
		secs := s.Interval / time.Second
		m[5] = uint8(min(max(secs, 1), 255))
	} else {
		cs := s.Interval / (10 * time.Millisecond)
		binary.BigEndian.PutUint16(m[4:6], uint16(min(max(cs, 1), 4095)))
	}
	for i, v := range s.VIPs {
		if !v.Is4() {
			return 0, ErrAddress
		}
		a := v.As4()
		copy(m[HeaderLen+4*i:], a[:])
	}
	if s.Version == 2 && s.AuthType == AuthPass {
		copy(m.AuthData(), s.AuthPass[:])
	}
	m.setChecksum(s.Src, s.Dst)
	if ah {
		copy(b[rewrite.IPv4MinHeaderLen+12:], s.AH.icv(b, s.Unicast))
	}
	// The header checksum last: AH's ICV covers the header with it zeroed.
	rewrite.IPv4(b).UpdateChecksum()
	return n, nil
}
