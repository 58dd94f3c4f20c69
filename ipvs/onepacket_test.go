package ipvs

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

// TestOnePacketUDP: with -o (IP_VS_SVC_F_ONEPACKET) every datagram of a
// UDP service is scheduled on its own, even from one client port, and no
// connection entry is left (reference/ipvs.md §4.4); without it the
// datagrams of one client port follow their entry to one real server.
func TestOnePacketUDP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		flags  string
		wantTo []rewrite.MAC
		// live entries at the end, and entries ever created
		conns, created uint64
	}{
		{"ops", " -o", []rewrite.MAC{rsMAC, rs2MAC, rsMAC, rs2MAC}, 0, 4},
		{"no ops", "", []rewrite.MAC{rsMAC, rsMAC, rsMAC, rsMAC}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// rr starts with the newest destination, 172.16.0.2.
			fe := newFxEngine(t, []string{"-A -u 10.0.0.100:53 -s rr" + tc.flags,
				"-a -u 10.0.0.100:53 -r 172.16.0.3 -g", "-a -u 10.0.0.100:53 -r 172.16.0.2 -g"}, nil, nil)
			fe.neigh.learn(netip.MustParseAddr("172.16.0.3"), rs2MAC, fe.int, fe.clock, true)
			q := pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, proto: layers.IPProtocolUDP,
				l4: []gopacket.SerializableLayer{udp4(40000, 53)}, payload: []byte("query")}.build(t)
			for i, want := range tc.wantTo {
				fe.feed(fe.ext, q, false)
				out := fe.drain(t, fe.intW)
				if len(out) != 1 || rewrite.MAC(out[0][0:6]) != want {
					t.Fatalf("datagram %d: %d frames, want one to %v", i, len(out), want)
				}
			}
			events, _ := fe.Counters()
			if events["conns"] != tc.conns || events["conns_created"] != tc.created {
				t.Fatalf("conns %d created %d, want %d and %d", events["conns"], events["conns_created"], tc.conns, tc.created)
			}
		})
	}
}
