package sched

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// goldenRatio32 is GOLDEN_RATIO_32 from include/linux/hash.h.
const goldenRatio32 = 0x61C88647

// hash32 is the kernel's hash_32(val, bits): multiply by the golden ratio and
// keep the top bits (the high bits of the product are the well-mixed ones).
func hash32(val uint32, nbits uint) uint32 {
	return (val * goldenRatio32) >> (32 - nbits)
}

// addrFold is ntohl(addr_fold) as every IPVS hash scheduler computes it: the
// IPv4 address in host order, or the XOR of the four 32-bit words of an IPv6
// address. An IPv4 service passes 4-byte addresses; a 4in6 address is
// treated as IPv6, as the kernel would for an AF_INET6 service.
func addrFold(a netip.Addr) uint32 {
	if a.Is4() {
		b := a.As4()
		return binary.BigEndian.Uint32(b[:])
	}
	if !a.IsValid() {
		return 0
	}
	b := a.As16()
	return binary.BigEndian.Uint32(b[0:4]) ^ binary.BigEndian.Uint32(b[4:8]) ^
		binary.BigEndian.Uint32(b[8:12]) ^ binary.BigEndian.Uint32(b[12:16])
}

// sipKey is a siphash_key_t / hsiphash_key_t on a 64-bit kernel: two u64.
type sipKey struct{ k0, k1 uint64 }

// sipHash is SipHash-c-d over msg, laid out as lib/siphash.c does: 8-byte
// little-endian words, the length in the top byte of the last word. The
// kernel's SipHash-2-4 (siphash) and, on 64-bit kernels, hsiphash
// (SipHash-1-3, truncated to u32) are both this function, so validating it
// against the published 2-4 vectors validates the 1-3 path too.
func sipHash(cRounds, dRounds int, key sipKey, msg []byte) uint64 {
	v0 := uint64(0x736f6d6570736575) ^ key.k0
	v1 := uint64(0x646f72616e646f6d) ^ key.k1
	v2 := uint64(0x6c7967656e657261) ^ key.k0
	v3 := uint64(0x7465646279746573) ^ key.k1

	n := len(msg)
	for len(msg) >= 8 {
		m := binary.LittleEndian.Uint64(msg)
		v3 ^= m
		for range cRounds {
			v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		}
		v0 ^= m
		msg = msg[8:]
	}
	b := uint64(n) << 56
	for i, c := range msg {
		b |= uint64(c) << (8 * i)
	}
	v3 ^= b
	for range cRounds {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	v0 ^= b
	v2 ^= 0xff
	for range dRounds {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// sipRound is one SIPROUND.
func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// hsiphash32 is hsiphash(&v, sizeof(v), key) on a 64-bit little-endian
// kernel: SipHash-1-3 of the four bytes of v, truncated to u32.
func hsiphash32(v uint32, key sipKey) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return uint32(sipHash(1, 3, key, b[:]))
}
