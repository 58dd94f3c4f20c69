package toa

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// segment is an IPv4 TCP SYN from 172.16.0.10:5000 to 172.16.0.2:80 with
// the given options (padded to a word by the caller).
func segment(opts ...byte) []byte {
	tcp := append([]byte{0x13, 0x88, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, byte((20 + len(opts)) / 4 << 4), 0x02, 0xff, 0xff, 0, 0, 0, 0}, opts...)
	ip := []byte{0x45, 0, 0, byte(20 + len(tcp)), 0, 0, 0x40, 0, 64, 6, 0, 0, 172, 16, 0, 10, 172, 16, 0, 2}
	return append(ip, tcp...)
}

func TestParse(t *testing.T) {
	key := Key{Local: netip.MustParseAddrPort("172.16.0.2:80"), Remote: netip.MustParseAddrPort("172.16.0.10:5000")}
	client := netip.MustParseAddrPort("10.0.0.2:40000")
	toa := []byte{254, 8, 0x9c, 0x40, 10, 0, 0, 2}
	for _, tc := range []struct {
		name string
		opts []byte
		ok   bool
	}{
		{"first", toa, true},
		{"after MSS and NOPs", append([]byte{2, 4, 5, 0xb4, 1, 1, 1, 1}, toa...), true},
		{"after EOL", append([]byte{0, 1, 1, 1}, toa...), false},
		{"wrong length", []byte{254, 6, 0x9c, 0x40, 10, 0, 1, 1}, false},
		{"truncated option", []byte{2, 40, 1, 1}, false},
		{"none", []byte{2, 4, 5, 0xb4}, false},
	} {
		k, c, ok := Parse(segment(tc.opts...))
		assert.Equal(t, tc.ok, ok, tc.name)
		if tc.ok {
			assert.Equal(t, key, k, tc.name)
			assert.Equal(t, client, c, tc.name)
		}
	}
	_, _, ok := Parse(segment()[:30])
	assert.False(t, ok, "short segment")
}

// A real kernel delivers the segment; the reader's packet socket and
// filter pick the TOA out of it and the receiver's connection finds it.
// scapy sends the SYN with the option, as a FULLNAT director would.
func TestReaderInNamespace(t *testing.T) {
	nstest.Require(t)
	testenv.RequireScapy(t)
	dir, rs := nstest.New(t, "dir"), nstest.New(t, "rs")
	nstest.Veth(t, dir, "lan", rs, "eth0", 0)
	dir.Addr("lan", "172.16.0.10/24")
	rs.Addr("eth0", "172.16.0.2/24")

	var r *Reader
	var ln net.Listener
	require.NoError(t, rs.Do(func() (err error) {
		if r, err = Open(); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", "172.16.0.2:80")
		return err
	}))
	t.Cleanup(func() { ln.Close(); r.Close() })

	// One segment with the option, one without (another connection).
	dir.Run("/usr/bin/python3", "-c", `
from scapy.all import IP, TCP, send
send(IP(src="172.16.0.10", dst="172.16.0.2")/TCP(sport=5000, dport=80, flags="S", seq=1,
     options=[(254, bytes([0x9c, 0x40, 10, 0, 0, 2])), ("NOP", None), ("NOP", None), ("MSS", 1452)]), verbose=0)
send(IP(src="172.16.0.10", dst="172.16.0.2")/TCP(sport=5001, dport=80, flags="S", seq=1, options=[("MSS", 1452)]), verbose=0)
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, ok := r.Lookup(ctx, Key{Local: netip.MustParseAddrPort("172.16.0.2:80"), Remote: netip.MustParseAddrPort("172.16.0.10:5000")})
	require.True(t, ok, "TOA of 172.16.0.10:5000 recorded")
	assert.Equal(t, netip.MustParseAddrPort("10.0.0.2:40000"), c)

	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	_, ok = r.Lookup(short, Key{Local: netip.MustParseAddrPort("172.16.0.2:80"), Remote: netip.MustParseAddrPort("172.16.0.10:5001")})
	assert.False(t, ok, "no TOA on the second connection")
	assert.Equal(t, uint64(1), r.Recorded())
}
