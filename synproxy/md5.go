package synproxy

import "math/bits"

// md5Compress is the MD5 compression function (RFC 1321 §3.4) applied to
// one 16-word block with state as the chaining value: the kernel's
// md5_transform(hash, in), which alibaba/LVS v3 uses as its cookie hash
// ("sha1 replaced by md5 in synproxy"). It returns the new state; only the
// first word is used for a cookie.
func md5Compress(state [4]uint32, block *[16]uint32) [4]uint32 {
	a, b, c, d := state[0], state[1], state[2], state[3]
	for i := range 64 {
		var f uint32
		var g int
		switch i / 16 {
		case 0:
			f = (b & c) | (^b & d)
			g = i
		case 1:
			f = (d & b) | (^d & c)
			g = (5*i + 1) % 16
		case 2:
			f = b ^ c ^ d
			g = (3*i + 5) % 16
		default:
			f = c ^ (b | ^d)
			g = (7 * i) % 16
		}
		f += a + md5K[i] + block[g]
		a, d, c = d, c, b
		b += bits.RotateLeft32(f, int(md5S[i]))
	}
	return [4]uint32{state[0] + a, state[1] + b, state[2] + c, state[3] + d}
}

// md5S are the per-round rotation amounts, md5K the sine-derived constants.
var md5S = [64]uint8{
	7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
	5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
	4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
	6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
}

// md5K[i] is floor(abs(sin(i+1)) · 2^32) (RFC 1321 §3.4).
var md5K = [64]uint32{
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
	0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
	0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
	0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
	0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
}
