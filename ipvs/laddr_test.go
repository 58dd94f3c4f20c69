package ipvs

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/config"
	"lvslab/rewrite"
)

// TestLaddrOwnership: a FULLNAT local address is lvsd's like a VIP: it
// answers ARP and ping for it on the real-server side and the guard keeps
// the kernel out of it, for as long as one service uses it.
func TestLaddrOwnership(t *testing.T) {
	fe := newFxEngine(t, []string{
		"-A -t 10.0.0.100:80 -s rr", "-P -t 10.0.0.100:80 -z 172.16.0.10", "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 -b",
		"-A -t 10.0.0.100:443 -s rr", "-P -t 10.0.0.100:443 -z 172.16.0.10",
	}, nil, nil)
	lip := netip.MustParseAddr("172.16.0.10")
	arp := arpFrame(t, layers.ARPRequest, rsMAC, fxRS, "172.16.0.10", bcastMAC)
	ping := pkt{src: rsMAC, dst: intMAC, sip: fxRS, dip: "172.16.0.10", ttl: 64, proto: layers.IPProtocolICMPv4,
		l4: []gopacket.SerializableLayer{&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 1}}}.build(t)
	answered := func() (arpReply, echoReply bool) {
		fe.feed(fe.int, arp, false)
		for _, f := range fe.drain(t, fe.intW) {
			p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			if a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok && a.Operation == layers.ARPReply &&
				netip.AddrFrom4([4]byte(a.SourceProtAddress)) == lip && rewrite.MAC(a.SourceHwAddress) == intMAC {
				arpReply = true
			}
		}
		fe.feed(fe.int, ping, false)
		for _, f := range fe.drain(t, fe.intW) {
			p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if ok && ic.TypeCode.Type() == 0 && ip.SrcIP.String() == "172.16.0.10" && ip.DstIP.String() == fxRS {
				echoReply = true
			}
		}
		return
	}
	a, e := answered()
	assert.True(t, a, "ARP for the local address answered")
	assert.True(t, e, "ping to the local address answered")
	owned := addrElem(SetOwned, lip)
	assert.Equal(t, 2, fe.gref[owned], "one guard reference per service using the address")

	apply := func(line string) error {
		c, err := config.ParseArgs(strings.Fields(line))
		require.NoError(t, err)
		return fe.Apply(c)
	}
	require.NoError(t, apply("-Q -t 10.0.0.100:443 -z 172.16.0.10"))
	assert.Equal(t, 1, fe.gref[owned])
	a, e = answered()
	assert.True(t, a && e, "still used by :80")

	require.NoError(t, apply("-D -t 10.0.0.100:80"))
	assert.Zero(t, fe.gref[owned], "no guard element left")
	a, e = answered()
	assert.False(t, a, "ARP no longer answered")
	assert.False(t, e, "ping no longer answered")

	// A reload (SIGHUP's Replace) gives the address back.
	tab := fe.Table()
	tab.Services[0].Laddrs = []netip.Addr{lip}
	require.NoError(t, fe.Replace(tab))
	a, e = answered()
	assert.True(t, a && e, "owned again after the reload")
	assert.Equal(t, 1, fe.gref[owned])
	assert.Equal(t, []netip.Addr{lip}, fe.Table().Services[0].Laddrs)
}

// A FULLNAT real server and its local address can come in one batch (-R),
// in the order -S writes them.
func TestLaddrBatch(t *testing.T) {
	e := newBareEngine(t)
	rules := parseRules(t, "-A -t 10.0.0.1:80 -s rr\n-P -t 10.0.0.1:80 -z 172.16.0.10\n-a -t 10.0.0.1:80 -r 172.16.0.2 -b\n")
	require.NoError(t, e.ApplyBatch(t.Context(), rules))
	vs := e.Table().Services[0]
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("172.16.0.10")}, vs.Laddrs)
	assert.Equal(t, config.ForwardFullNAT, vs.Dests[0].Forward)
}

// The remapped ISN of one local→real pair grows with time (a reused local
// port's new SYN is above its TIME_WAIT), and pairs do not share one.
func TestFNATISN(t *testing.T) {
	l := netip.MustParseAddrPort("172.16.0.10:5000")
	r := netip.MustParseAddrPort("172.16.0.2:80")
	const second = int64(1e9)
	a, b := fnatISN(7, l, r, 10*second), fnatISN(7, l, r, 11*second)
	if d := b - a; d != uint32(second>>6) {
		t.Errorf("one second later the ISN moved by %d, want %d", d, second>>6)
	}
	seen := map[uint32]bool{}
	for port := range uint16(1000) {
		seen[fnatISN(7, netip.AddrPortFrom(l.Addr(), 5000+port), r, 10*second)] = true
	}
	assert.Greater(t, len(seen), 990, "distinct ISNs over 1000 local ports")
	assert.NotEqual(t, fnatISN(7, l, r, 0), fnatISN(8, l, r, 0), "the key matters")
}
