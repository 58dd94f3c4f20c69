package ipvs

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/ipvs/ctl"
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

// An established FULLNAT connection that times out is reset at both ends
// with the sequence numbers each expects (conn_expire_tcp_rst); one that
// never got established is not.
func TestFullNATExpiryResets(t *testing.T) {
	fe := newFxEngine(t, []string{"-A -t 10.0.0.100:80 -s rr", "-P -t 10.0.0.100:80 -z 172.16.0.10", "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 -b"}, nil, nil)
	syn := tcp4(40000, 80, "S")
	fe.feed(fe.ext, pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{syn}}.build(t), false)
	toRS := fe.drain(t, fe.intW)
	require.Len(t, toRS, 1)
	rsISN := decodeTCP(t, toRS[0]).Seq // the remapped ISN
	sa := tcp4(8080, 5000, "SA")
	sa.Seq, sa.Ack = 7000, rsISN+1
	fe.feed(fe.int, pkt{src: rsMAC, dst: intMAC, sip: fxRS, dip: "172.16.0.10", ttl: 64, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{sa}}.build(t), false)
	ack := tcp4(40000, 80, "PA")
	ack.Seq, ack.Ack = 1001, 7001
	fe.feed(fe.ext, pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{ack}, payload: []byte("GET /")}.build(t), false)
	// The real server acknowledges the 5 bytes and sends 3 of its own.
	data := tcp4(8080, 5000, "PA")
	data.Seq, data.Ack = 7001, rsISN+1+5
	fe.feed(fe.int, pkt{src: rsMAC, dst: intMAC, sip: fxRS, dip: "172.16.0.10", ttl: 64, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{data}, payload: []byte("200")}.build(t), false)
	fe.drain(t, fe.extW)
	fe.drain(t, fe.intW)

	fe.clock += int64(901 * time.Second) // past the established timeout
	// Both neighbours answered ARP meanwhile.
	fe.neigh.learn(netip.MustParseAddr(fxClient), clientMAC, fe.ext, fe.clock, true)
	fe.neigh.learn(netip.MustParseAddr(fxRS), rsMAC, fe.int, fe.clock, true)
	fe.expireConns(fe.w, fe.clock)
	fe.flush(fe.w)
	toClient, toServer := fe.drain(t, fe.extW), fe.drain(t, fe.intW)
	require.Len(t, toClient, 1)
	require.Len(t, toServer, 1)
	verify := func(name string, f []byte, sip, dip string, sport, dport uint16, seq, ack uint32) {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tc := decodeTCP(t, f)
		assert.True(t, tc.RST && tc.ACK, name)
		assert.Equal(t, [2]string{sip, dip}, [2]string{ip.SrcIP.String(), ip.DstIP.String()}, name)
		assert.Equal(t, [2]uint16{sport, dport}, [2]uint16{uint16(tc.SrcPort), uint16(tc.DstPort)}, name)
		assert.Equal(t, [2]uint32{seq, ack}, [2]uint32{tc.Seq, tc.Ack}, name)
		assert.Nil(t, p.ErrorLayer(), name)
	}
	verify("to the client", toClient[0], fxVIP, fxClient, 80, 40000, 7004, 1006)
	verify("to the real server", toServer[0], "172.16.0.10", fxRS, 5000, 8080, rsISN+1+5, 7004)
	// Byte for byte (checksums included) as gopacket builds them.
	rst := func(src, dst rewrite.MAC, sip, dip string, sport, dport uint16, seq, ack uint32) [][]byte {
		return [][]byte{pkt{src: src, dst: dst, sip: sip, dip: dip, ttl: 64, df: true, proto: layers.IPProtocolTCP,
			l4: []gopacket.SerializableLayer{&layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport),
				Seq: seq, Ack: ack, RST: true, ACK: true}}}.build(t)}
	}
	fxCompare(t, "RST to the client", "ext", toClient, rst(extMAC, clientMAC, fxVIP, fxClient, 80, 40000, 7004, 1006))
	fxCompare(t, "RST to the real server", "int", toServer, rst(intMAC, rsMAC, "172.16.0.10", fxRS, 5000, 8080, rsISN+1+5, 7004))
	ev, _ := fe.Counters()
	assert.Equal(t, uint64(2), ev["fullnat_conn_expire_rst"])

	// A handshake that expires (SYN_RECV) is not reset.
	fe.feed(fe.ext, pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{tcp4(40001, 80, "S")}}.build(t), false)
	fe.drain(t, fe.intW)
	fe.clock += int64(901 * time.Second)
	fe.neigh.learn(netip.MustParseAddr(fxClient), clientMAC, fe.ext, fe.clock, true)
	fe.neigh.learn(netip.MustParseAddr(fxRS), rsMAC, fe.int, fe.clock, true)
	fe.expireConns(fe.w, fe.clock)
	fe.flush(fe.w)
	assert.Empty(t, fe.drain(t, fe.extW))
	assert.Empty(t, fe.drain(t, fe.intW))
}

func decodeTCP(t *testing.T, f []byte) *layers.TCP {
	t.Helper()
	tc, ok := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
	require.True(t, ok, "a TCP segment")
	return tc
}

// defence_tcp_drop and defence_udp_drop: sessionless packets to a VIP are
// dropped in silence (counted) instead of answered; set at run time by
// --set-defense, read back by -L --defense.
func TestDefenceDrops(t *testing.T) {
	fe := newFxEngine(t, []string{"-A -t 10.0.0.100:80 -s rr", "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 -m"}, nil, nil)
	ack := pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{tcp4(40009, 80, "A")}}.build(t)
	otherPort := pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{tcp4(40009, 23, "S")}}.build(t)
	udp := pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, proto: layers.IPProtocolUDP,
		l4: []gopacket.SerializableLayer{udp4(40009, 53)}, payload: []byte("q")}.build(t)
	answers := func() int {
		n := 0
		for _, f := range [][]byte{ack, otherPort, udp} {
			fe.feed(fe.ext, f, false)
			n += len(fe.drain(t, fe.extW))
		}
		return n
	}
	assert.Equal(t, 3, answers(), "off: RST, RST, port unreachable")

	c, err := config.ParseArgs([]string{"--set-defense", "defence_tcp_drop=1", "defence_udp_drop=1"})
	require.NoError(t, err)
	require.NoError(t, fe.Apply(c))
	assert.Equal(t, 0, answers(), "on: nothing answered")
	ev, _ := fe.Counters()
	assert.Equal(t, uint64(2), ev["drop_defence_tcp"])
	assert.Equal(t, uint64(1), ev["drop_defence_udp"])
	assert.Equal(t, uint64(1), ev["drop_not_syn"], "counted once, as the refusal it was before")

	r := fe.Handle(t.Context(), ctl.Peer{Admin: true}, ctl.Request{Command: config.Command{Op: config.OpList, List: config.ListOptions{Defense: true}}})
	require.NotNil(t, r.Defense)
	assert.Equal(t, [2]int{1, 1}, [2]int{r.Defense.TCPDrop, r.Defense.UDPDrop})

	// A SYN still opens its connection.
	fe.feed(fe.ext, pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{tcp4(40010, 80, "S")}}.build(t), false)
	assert.Len(t, fe.drain(t, fe.intW), 1)
	_, err = config.ParseArgs([]string{"--set-defense", "defence_tcp_drop=2"})
	assert.EqualError(t, err, "invalid defence_tcp_drop value `2' (0..1)")
}

// A backup that takes a FULLNAT connection over by sync keeps remapping the
// client's sequence numbers as the master did: the delta travels in the
// entry's SEQ_DATA option.
func TestFullNATSyncKeepsRemap(t *testing.T) {
	rules := []string{"-A -t 10.0.0.100:80 -s rr", "-P -t 10.0.0.100:80 -z 172.16.0.10", "-a -t 10.0.0.100:80 -r 172.16.0.2:8080 -b"}
	master, backup := newFxEngine(t, rules, nil, nil), newFxEngine(t, rules, nil, nil)
	backup.isnKey = 99 // another director: another key
	frames := fnatFrames(t)
	master.feed(master.ext, frames.syn, false)
	master.drain(t, master.intW)
	id, _ := master.conns.Lookup(conntrack.Tuple{Proto: 6, Src: [4]byte{10, 0, 0, 2}, SrcPort: 40000, Dst: [4]byte{10, 0, 0, 100}, DstPort: 80})
	require.NotZero(t, id)

	var sc conntrack.SyncConn
	master.conns.SyncEntry(id, &sc)
	master.fnatSyncOut(id, &sc)
	var w conntrack.SyncWriter
	buf := make([]byte, 1500)
	w.Reset(buf, 1, 1472)
	require.True(t, w.Add(&sc))
	var got conntrack.SyncConn
	_, err := conntrack.ParseSync(w.Bytes(), &got, func(c *conntrack.SyncConn) { backup.applySyncEntry(c, backup.clock) }, nil)
	require.NoError(t, err)

	// The client's data, through each director, reaches the real server
	// with the same sequence number.
	seqVia := func(fe *fxEngine) uint32 {
		fe.feed(fe.ext, frames.data, false)
		out := fe.drain(t, fe.intW)
		require.Len(t, out, 1)
		return decodeTCP(t, out[0]).Seq
	}
	assert.Equal(t, seqVia(master), seqVia(backup))
	assert.NotEqual(t, uint32(1000), seqVia(backup), "remapped, not passed through")
}
