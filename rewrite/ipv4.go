package rewrite

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 sizes, flags and protocol numbers.
const (
	IPv4MinHeaderLen = 20
	IPv4MaxHeaderLen = 60

	ipv4FlagDF     = 0x4000
	ipv4FlagMF     = 0x2000
	ipv4OffsetMask = 0x1fff

	ProtoICMP = 1
	ProtoIPIP = 4
	ProtoTCP  = 6
	ProtoUDP  = 17
	ProtoSCTP = 132

	// ipv4MinMTU is the smallest MTU IPv4 allows (RFC 791), below which IPVS
	// refuses to tunnel.
	ipv4MinMTU = 68
)

// IPv4 is a view of an IPv4 packet: header, options and payload. Obtain one
// from ParseIPv4, which trims any link-layer padding.
type IPv4 []byte

// ParseIPv4 validates the header the way ip_rcv does (version, IHL, header
// checksum, total length) and returns the packet trimmed to its total length.
func ParseIPv4(b []byte) (IPv4, error) {
	if len(b) < IPv4MinHeaderLen {
		return nil, ErrTruncated
	}
	if b[0]>>4 != 4 {
		return nil, ErrBadVersion
	}
	hl := int(b[0]&0x0f) * 4
	if hl < IPv4MinHeaderLen {
		return nil, ErrBadIHL
	}
	if hl > len(b) {
		return nil, ErrTruncated
	}
	if headerSum(b[:hl]) != 0xffff {
		return nil, ErrBadIPChecksum
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total > len(b) {
		return nil, ErrTruncated
	}
	if total < hl {
		return nil, ErrBadTotalLength
	}
	return IPv4(b[:total]), nil
}

// headerSum is OnesSum(h, 0) of an IPv4 header, with the common 20-byte
// header summed without OnesSum's loops: five words, no branches.
func headerSum(h []byte) uint16 {
	if len(h) != IPv4MinHeaderLen {
		return OnesSum(h, 0)
	}
	_ = h[19]
	acc := uint64(binary.BigEndian.Uint32(h[0:4])) + uint64(binary.BigEndian.Uint32(h[4:8])) +
		uint64(binary.BigEndian.Uint32(h[8:12])) + uint64(binary.BigEndian.Uint32(h[12:16])) +
		uint64(binary.BigEndian.Uint32(h[16:20]))
	return fold64(acc)
}

// HeaderLen returns the header length in bytes (IHL × 4).
func (ip IPv4) HeaderLen() int { return int(ip[0]&0x0f) * 4 }

// TOS returns the DS field (DSCP and ECN).
func (ip IPv4) TOS() uint8 { return ip[1] }

// TotalLen returns the total length field.
func (ip IPv4) TotalLen() uint16 { return binary.BigEndian.Uint16(ip[2:4]) }

// ID returns the identification field.
func (ip IPv4) ID() uint16 { return binary.BigEndian.Uint16(ip[4:6]) }

// DF reports the don't-fragment flag.
func (ip IPv4) DF() bool { return binary.BigEndian.Uint16(ip[6:8])&ipv4FlagDF != 0 }

// MF reports the more-fragments flag.
func (ip IPv4) MF() bool { return binary.BigEndian.Uint16(ip[6:8])&ipv4FlagMF != 0 }

// FragOffset returns the fragment offset in bytes.
func (ip IPv4) FragOffset() int { return int(binary.BigEndian.Uint16(ip[6:8])&ipv4OffsetMask) * 8 }

// TTL returns the time to live.
func (ip IPv4) TTL() uint8 { return ip[8] }

// Protocol returns the payload protocol number.
func (ip IPv4) Protocol() uint8 { return ip[9] }

// Checksum returns the header checksum field.
func (ip IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(ip[10:12]) }

// Src returns the source address.
func (ip IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(ip[12:16])) }

// Dst returns the destination address.
func (ip IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(ip[16:20])) }

// Options returns the option bytes (empty when IHL is 5).
func (ip IPv4) Options() []byte { return ip[IPv4MinHeaderLen:ip.HeaderLen()] }

// Payload returns the bytes after the header, up to the total length.
func (ip IPv4) Payload() []byte { return ip[ip.HeaderLen():] }

// SetTOS sets the DS field (DSCP and ECN); the checksum is not updated.
func (ip IPv4) SetTOS(tos uint8) { ip[1] = tos }

// SetChecksum sets the header checksum field.
func (ip IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(ip[10:12], c) }

// DecTTL decrements the TTL, as forwarding does (the checksum is the
// caller's to update).
func (ip IPv4) DecTTL() { ip[8]-- }

// SetTTL sets the time to live; the checksum is not updated.
func (ip IPv4) SetTTL(ttl uint8) { ip[8] = ttl }

// SetSrc sets the source address; the checksum is not updated.
func (ip IPv4) SetSrc(a [4]byte) { copy(ip[12:16], a[:]) }

// SetDst sets the destination address; the checksum is not updated.
func (ip IPv4) SetDst(a [4]byte) { copy(ip[16:20], a[:]) }

// ChecksumValid reports whether the header checksum verifies.
func (ip IPv4) ChecksumValid() bool { return OnesSum(ip[:ip.HeaderLen()], 0) == 0xffff }

// UpdateChecksum recomputes the header checksum from scratch, as the kernel's
// ip_send_check does after every IPVS rewrite.
func (ip IPv4) UpdateChecksum() { setIPv4Checksum(ip) }

// forwarded updates the header checksum after forwarding changed the
// header: the TTL decremented by one, and the addresses set in place of
// oldSrc and oldDst (either may be unchanged); hc is the checksum before.
// It is RFC 1624's incremental update, and gives exactly what the full
// recomputation of ip_send_check gives for a header whose checksum
// verified before (Parse checks it), either zero (0 or 0xFFFF) included:
// the sum folded here is never 0 (the TTL term alone is 0xFEFF), so both
// are folds of non-zero sums that agree modulo 0xFFFF, which are equal.
func (ip IPv4) forwarded(hc uint16, oldSrc, oldDst uint32) {
	src, dst := binary.BigEndian.Uint32(ip[12:16]), binary.BigEndian.Uint32(ip[16:20])
	// ~0x0100: the TTL is the high byte of its word.
	acc := uint32(^hc) + 0xfeff
	if src != oldSrc {
		acc += uint32(^uint16(oldSrc>>16)) + uint32(^uint16(oldSrc)) + src>>16 + src&0xffff
	}
	if dst != oldDst {
		acc += uint32(^uint16(oldDst>>16)) + uint32(^uint16(oldDst)) + dst>>16 + dst&0xffff
	}
	ip.SetChecksum(^fold32(acc))
}

// setIPv4Checksum recomputes the checksum of the header at the start of h.
func setIPv4Checksum(h []byte) {
	hl := int(h[0]&0x0f) * 4
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:12], Checksum(h[:hl]))
}

// ecnEncapsulate returns the outer DS field for a tunnel: DSCP and ECN copied
// from the inner header, except that CE becomes ECT(0) (INET_ECN_encapsulate,
// RFC 6040 compatibility mode).
func ecnEncapsulate(inner uint8) uint8 {
	const ecnMask, ce, ect0 = 0x03, 0x03, 0x02
	if inner&ecnMask == ce {
		return inner&^ecnMask | ect0
	}
	return inner
}
