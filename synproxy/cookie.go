package synproxy

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Cookie layout (alibaba/LVS ip_vs_synproxy.h, §2.4 of the reference).
const (
	// CookieBits is COOKIEBITS: the low 24 bits of the hashed part carry
	// data, the top 8 the minute counter.
	CookieBits = 24
	cookieMask = 1<<CookieBits - 1
	// CounterTries is COUNTER_TRIES: a cookie is accepted while the minute
	// counter has advanced by less than this since it was issued.
	CounterTries = 4
	// CounterPeriod is the counter's tick in the caller's nanoseconds: the
	// fork's jiffies / (60·HZ).
	CounterPeriod = 60_000_000_000

	dataMSSShift    = 12 // IP_VS_SYNPROXY_MSS_BITS
	dataWScaleShift = 16 // IP_VS_SYNPROXY_SND_WSCALE_BITS
	dataTSBit       = 20 // IP_VS_SYNPROXY_TSOK_BIT
	dataSACKBit     = 21 // IP_VS_SYNPROXY_SACKOK_BIT
	// dataWScaleOKBit is ours, in a bit the fork leaves unused: the client
	// sent the window-scale option and was offered ours. The fork infers it
	// from a non-zero shift, which mistakes a client that sent shift 0 for
	// one that sent none, and then the two ends disagree about scaling.
	dataWScaleOKBit = 22
	// dataOtherMask is IP_VS_SYNPROXY_OTHER_MASK (bits 11-0, must be zero)
	// plus bit 23, which the fork leaves unchecked; requiring it zero makes
	// a forged ACK twice less likely to pass.
	dataOtherMask = 1<<dataMSSShift - 1 | 1<<23

	// MaxWScale is the largest window shift TCP allows (RFC 7323 §2.3),
	// IP_VS_SYNPROXY_WSCALE_MAX.
	MaxWScale = 14
	// DefaultMSS is what a SYN without the MSS option is assumed to allow
	// (RFC 1122 4.2.2.6, the fork's 536).
	DefaultMSS = 536
)

// MSSTable is the fork's msstab: the cookie carries the index of the
// largest entry not above the client's (clamped) MSS.
var MSSTable = [...]uint16{64, 256, 512, 536, 1024, 1280, 1440, 1452, 1460, 4312}

// MSSIndex returns the index into MSSTable for mss: the largest entry <=
// mss, or 0 when mss is below every entry.
func MSSIndex(mss uint16) int {
	i := 0
	for i+1 < len(MSSTable) && MSSTable[i+1] <= mss {
		i++
	}
	return i
}

// Secret keys the cookie hash: net_secret[2][16], two MD5 blocks, one for
// the counter-free part H(0,0) and one for H(1,count).
type Secret struct {
	key [2][16]uint32
}

// NewSecret reads a random key from r (crypto/rand.Reader in production,
// a fixed source in tests).
func NewSecret(r io.Reader) (*Secret, error) {
	var b [2 * 16 * 4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, fmt.Errorf("synproxy: reading the cookie secret: %w", err)
	}
	s := &Secret{}
	for c := range s.key {
		for i := range s.key[c] {
			s.key[c][i] = binary.BigEndian.Uint32(b[(c*16+i)*4:])
		}
	}
	return s, nil
}

// Tuple is the client's side of a handshake as the client sends it: client
// address and port to VIP and port. Addresses are read as big-endian words.
type Tuple struct {
	Client, Virtual         [4]byte
	ClientPort, VirtualPort uint16
}

// hash is cookie_hash(saddr, daddr, sport, dport, count, c): the first word
// of md5_transform({saddr, daddr, (sport<<16)+dport, count}, net_secret[c]).
func (s *Secret) hash(t *Tuple, count uint32, c int) uint32 {
	st := [4]uint32{
		binary.BigEndian.Uint32(t.Client[:]),
		binary.BigEndian.Uint32(t.Virtual[:]),
		uint32(t.ClientPort)<<16 + uint32(t.VirtualPort),
		count,
	}
	return md5Compress(st, &s.key[c])[0]
}

// Counter returns the minute counter at now (the caller's monotonic clock in
// nanoseconds).
func Counter(now int64) uint32 { return uint32(max(now, 0) / CounterPeriod) }

// Cookie returns the ISN the director answers clientISN with
// (secure_tcp_syn_cookie): data must fit in 24 bits.
func (s *Secret) Cookie(t *Tuple, clientISN, count, data uint32) uint32 {
	return s.hash(t, 0, 0) + clientISN + count<<CookieBits + (s.hash(t, count, 1)+data)&cookieMask
}

// Check recovers the data of cookie (our ISN, the client's ACK − 1) for a
// client whose ISN was clientISN (its ACK's sequence − 1), at counter count
// (check_tcp_syn_cookie). It fails when the cookie is CounterTries or more
// minutes old, or from the future; the data bits are the caller's to
// validate (DecodeData).
func (s *Secret) Check(t *Tuple, cookie, clientISN, count uint32) (uint32, bool) {
	cookie -= s.hash(t, 0, 0) + clientISN
	diff := (count - cookie>>CookieBits) & (0xffffffff >> CookieBits)
	if diff >= CounterTries {
		return 0, false
	}
	return (cookie - s.hash(t, count-diff, 1)) & cookieMask, true
}

// Options are the TCP options of a handshake that the cookie carries.
type Options struct {
	// MSS is the client's MSS clamped to the director's limit; the cookie
	// keeps it as MSSTable[MSSIndex(MSS)].
	MSS uint16
	// WScaleOK: the client sent the window-scale option and was offered
	// ours; WScale is its shift (0..14).
	WScaleOK bool
	WScale   uint8
	// SACK: SACK-permitted was offered by the client and by us.
	SACK bool
	// Timestamp: timestamps were offered by the client and by us.
	Timestamp bool
}

// EncodeData packs o into the cookie's 24 data bits.
func EncodeData(o Options) uint32 {
	d := uint32(MSSIndex(o.MSS)) << dataMSSShift
	if o.WScaleOK {
		d |= 1<<dataWScaleOKBit | uint32(min(o.WScale, MaxWScale))<<dataWScaleShift
	}
	if o.Timestamp {
		d |= 1 << dataTSBit
	}
	if o.SACK {
		d |= 1 << dataSACKBit
	}
	return d
}

// DecodeData unpacks cookie data, refusing what EncodeData never produces:
// an MSS index past the table, a window shift above 14, any other bit set.
func DecodeData(d uint32) (Options, bool) {
	idx := int(d >> dataMSSShift & 0xf)
	ws := uint8(d >> dataWScaleShift & 0xf)
	ok := d&(1<<dataWScaleOKBit) != 0
	if d&dataOtherMask != 0 || d > cookieMask || idx >= len(MSSTable) || ws > MaxWScale || !ok && ws != 0 {
		return Options{}, false
	}
	return Options{
		MSS:       MSSTable[idx],
		WScaleOK:  ok,
		WScale:    ws,
		Timestamp: d&(1<<dataTSBit) != 0,
		SACK:      d&(1<<dataSACKBit) != 0,
	}, true
}
