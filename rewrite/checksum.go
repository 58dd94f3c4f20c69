package rewrite

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// The Internet checksum (RFC 1071) is the ones'-complement of the
// ones'-complement sum of 16-bit big-endian words. Functions named *Sum return
// the sum, not complemented; Checksum returns the complemented value that goes
// on the wire. Sums are order-independent, which is what lets the transforms
// update them incrementally.

// OnesSum returns the ones'-complement sum of b added to initial. b is read
// as big-endian 16-bit words; an odd final byte counts as the high byte of a
// word whose low byte is zero.
func OnesSum(b []byte, initial uint16) uint16 {
	// Summing 64-bit words with end-around carry and folding at the end gives
	// the same result as summing 16-bit words, because 2^16-1 divides 2^64-1.
	acc := uint64(initial)
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint32(b[0:4])), carry)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b[0:2])), carry)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0])<<8, carry)
	}
	// Adding the last carry cannot carry again: an overflow leaves acc at 0.
	acc, carry = bits.Add64(acc, 0, carry)
	acc += carry
	return fold64(acc)
}

// fold64 reduces a 64-bit ones'-complement accumulator to 16 bits. A
// non-zero input never folds to zero, so 0 keeps meaning "all-zero data".
func fold64(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}

// fold32 reduces a 32-bit accumulator holding a sum of a few 16-bit words.
func fold32(acc uint32) uint16 {
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}

// Checksum returns the Internet checksum of b, as stored in a header whose
// checksum field was zero while summing.
func Checksum(b []byte) uint16 { return ^OnesSum(b, 0) }

// AddSums returns the ones'-complement sum of two sums.
func AddSums(a, b uint16) uint16 { return fold32(uint32(a) + uint32(b)) }

// PseudoHeaderSum returns the sum of the IPv4 pseudo-header TCP and UDP
// checksums cover (source, destination, protocol, L4 length). It returns 0
// when either address is not IPv4.
func PseudoHeaderSum(src, dst netip.Addr, protocol uint8, length uint16) uint16 {
	if !src.Is4() || !dst.Is4() {
		return 0
	}
	s, d := src.As4(), dst.As4()
	return pseudoSum(s[:], d[:], protocol, length)
}

// pseudoSum is PseudoHeaderSum over address bytes taken from a frame.
func pseudoSum(src, dst []byte, protocol uint8, length uint16) uint16 {
	_ = src[3]
	_ = dst[3]
	acc := uint32(binary.BigEndian.Uint16(src[0:2])) + uint32(binary.BigEndian.Uint16(src[2:4])) +
		uint32(binary.BigEndian.Uint16(dst[0:2])) + uint32(binary.BigEndian.Uint16(dst[2:4])) +
		uint32(protocol) + uint32(length)
	return fold32(acc)
}

// UpdateChecksum16 returns checksum after a 16-bit word of the covered data
// changed from old to new: RFC 1624 equation 3, HC' = ~(~HC + ~m + m'). A
// field at an odd offset from the start of the covered data must be passed
// byte-swapped (bits.ReverseBytes16), since it straddles two words.
func UpdateChecksum16(checksum, old, new uint16) uint16 {
	return ^fold32(uint32(^checksum) + uint32(^old) + uint32(new))
}

// UpdateChecksum32 is UpdateChecksum16 for a 32-bit field at an even offset
// (an IPv4 address, a sequence number).
func UpdateChecksum32(checksum uint16, old, new uint32) uint16 {
	return ^fold32(uint32(^checksum) + uint32(^uint16(old>>16)) + uint32(^uint16(old)) +
		uint32(uint16(new>>16)) + uint32(uint16(new)))
}

// UpdatePartial16 updates the field of a CHECKSUM_PARTIAL packet, which holds
// the pseudo-header sum not complemented, after a pseudo-header word changed
// (the L4 length). This is the kernel's ~csum_fold(diff2(old, new,
// csum_unfold(check))).
func UpdatePartial16(field, old, new uint16) uint16 {
	return fold32(uint32(field) + uint32(^old) + uint32(new))
}

// UpdatePartial32 is UpdatePartial16 for a pseudo-header address.
func UpdatePartial32(field uint16, old, new uint32) uint16 {
	return fold32(uint32(field) + uint32(^uint16(old>>16)) + uint32(^uint16(old)) +
		uint32(uint16(new>>16)) + uint32(uint16(new)))
}

// UDPWireChecksum maps a computed UDP checksum to what is sent: over IPv4 a
// transmitted 0 means "no checksum", so a computed 0 goes out as 0xFFFF, its
// ones'-complement equivalent (RFC 768, the kernel's CSUM_MANGLED_0).
func UDPWireChecksum(c uint16) uint16 {
	if c == 0 {
		return 0xffff
	}
	return c
}

// l4Checksum computes the TCP or UDP checksum of the segment seg (header and
// payload, with the checksum field zero or excluded by the caller) under the
// pseudo-header of src and dst.
func l4Checksum(seg, src, dst []byte, protocol uint8) uint16 {
	return ^OnesSum(seg, pseudoSum(src, dst, protocol, uint16(len(seg))))
}
