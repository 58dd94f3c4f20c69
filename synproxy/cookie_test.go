package synproxy

import (
	"crypto/md5"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// The compression function is MD5's: one block of the padded message "abc"
// from the standard initial state gives md5("abc").
func TestMD5CompressIsMD5(t *testing.T) {
	for _, msg := range []string{"", "abc", "the SYN proxy of alibaba/LVS, 55 bytes of message....."} {
		var blk [64]byte
		copy(blk[:], msg)
		blk[len(msg)] = 0x80
		binary.LittleEndian.PutUint64(blk[56:], uint64(len(msg))*8)
		var words [16]uint32
		for i := range words {
			words[i] = binary.LittleEndian.Uint32(blk[4*i:])
		}
		st := md5Compress([4]uint32{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}, &words)
		var got [16]byte
		for i, w := range st {
			binary.LittleEndian.PutUint32(got[4*i:], w)
		}
		if want := md5.Sum([]byte(msg)); got != want {
			t.Errorf("md5(%q) = %x, want %x", msg, got, want)
		}
	}
}

func TestMSSIndex(t *testing.T) {
	for _, c := range []struct {
		mss  uint16
		want int
	}{{0, 0}, {63, 0}, {64, 0}, {255, 0}, {256, 1}, {535, 2}, {536, 3}, {1452, 7}, {1459, 7}, {1460, 8}, {4311, 8}, {4312, 9}, {65535, 9}} {
		if got := MSSIndex(c.mss); got != c.want {
			t.Errorf("MSSIndex(%d) = %d, want %d", c.mss, got, c.want)
		}
	}
}

// Every MSS index, window shift and flag survives a round trip at every
// age inside the window, and no cookie is accepted at or past
// CounterTries minutes or before it was issued.
func TestCookieRoundTrip(t *testing.T) {
	sec := fixedSecret(t, 7)
	rng := rand.New(rand.NewPCG(1, 2))
	for idx, mss := range MSSTable {
		for ws := -1; ws <= MaxWScale; ws++ {
			for flags := range 4 {
				o := Options{MSS: mss, SACK: flags&1 != 0, Timestamp: flags&2 != 0}
				if ws >= 0 {
					o.WScaleOK, o.WScale = true, uint8(ws)
				}
				tup := Tuple{ClientPort: uint16(rng.Uint32()), VirtualPort: 80}
				binary.BigEndian.PutUint32(tup.Client[:], rng.Uint32())
				binary.BigEndian.PutUint32(tup.Virtual[:], rng.Uint32())
				isn := rng.Uint32()
				// Counters near the 8-bit wrap of the cookie's top byte too.
				for _, issued := range []uint32{0, 1, 254, 255, 256, rng.Uint32()} {
					cookie := sec.Cookie(&tup, isn, issued, EncodeData(o))
					for age := uint32(0); age < CounterTries+2; age++ {
						data, ok := sec.Check(&tup, cookie, isn, issued+age)
						if age >= CounterTries {
							if ok {
								t.Fatalf("mss %d ws %d: accepted at age %d", mss, ws, age)
							}
							continue
						}
						if !ok {
							t.Fatalf("mss %d ws %d flags %d issued %d: refused at age %d", mss, ws, flags, issued, age)
						}
						got, ok := DecodeData(data)
						if !ok || got != o || MSSIndex(got.MSS) != idx {
							t.Fatalf("round trip %+v -> %+v %v", o, got, ok)
						}
					}
					if _, ok := sec.Check(&tup, cookie, isn, issued-1); ok {
						t.Fatalf("accepted a cookie from the future")
					}
				}
			}
		}
	}
}

// Forged ACKs: a random ack number validates with the probability the data
// checks allow; over many tries, nearly none pass.
func TestCookieForgeryRate(t *testing.T) {
	sec := fixedSecret(t, 9)
	rng := rand.New(rand.NewPCG(3, 4))
	tup := Tuple{Client: [4]byte{192, 0, 2, 1}, Virtual: [4]byte{10, 0, 0, 100}, ClientPort: 4000, VirtualPort: 80}
	const tries = 200000
	pass := 0
	for range tries {
		if d, ok := sec.Check(&tup, rng.Uint32(), rng.Uint32(), 1000); ok {
			if _, valid := DecodeData(d); valid {
				pass++
			}
		}
	}
	// P(age ok) = 4/256, P(data ok) = 10/16 · 15/16 (shift) ... · 2^-13:
	// about 1e-6 per try.
	if pass > 5 {
		t.Fatalf("%d of %d random ACKs passed", pass, tries)
	}
}

func TestDecodeDataRefuses(t *testing.T) {
	for _, d := range []uint32{
		1,                                        // low bits
		0xa << dataMSSShift,                      // index 10
		1 << 23,                                  // unused bit
		1<<dataWScaleOKBit | 15<<dataWScaleShift, // shift 15
		3 << dataWScaleShift,                     // a shift without the option
		1 << 24,                                  // past 24 bits
	} {
		if o, ok := DecodeData(d); ok {
			t.Errorf("DecodeData(%#x) = %+v, want refused", d, o)
		}
	}
}

func TestCounter(t *testing.T) {
	if Counter(-5) != 0 || Counter(CounterPeriod-1) != 0 || Counter(CounterPeriod) != 1 || Counter(10*CounterPeriod+3) != 10 {
		t.Fatal("Counter is not minutes of the clock")
	}
}
