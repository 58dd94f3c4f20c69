package ipvs

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"lvslab/config"
	"lvslab/ipvs/ctl"
	"lvslab/rewrite"
)

// fxEchoRequest is a ping from the client to dst.
func fxEchoRequest(tb testing.TB, dst string) []byte {
	return pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: dst, ttl: 64, id: 7, proto: layers.IPProtocolICMPv4,
		l4:      []gopacket.SerializableLayer{&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1}},
		payload: []byte("ping")}.build(tb)
}

// answers feeds an ARP request and a ping for vip and says what came back.
func (fe *fxEngine) answers(tb testing.TB, vip string) (arp, echo bool) {
	tb.Helper()
	fe.feed(fe.ext, fxARP(tb, layers.ARPRequest, clientMAC, bcastMAC, clientMAC, rewrite.MAC{}, fxClient, vip), false)
	arp = len(fe.drain(tb, fe.extW)) == 1
	fe.feed(fe.ext, fxEchoRequest(tb, vip), false)
	echo = len(fe.drain(tb, fe.extW)) == 1
	return arp, echo
}

func ownReq(op config.Op, garp int, vips ...string) ctl.Request {
	r := ctl.Request{Command: config.Command{Op: op}, Own: &ctl.OwnRequest{Instance: "VI_1", GARP: garp}}
	for _, v := range vips {
		r.Own.VIPs = append(r.Own.VIPs, netip.MustParseAddr(v))
	}
	return r
}

// TestOwnRelease: a released VIP is silent for ARP and ping and keeps its
// rules (a SYN to it is still forwarded, as a kernel IPVS backup does);
// owning it again answers, and sends exactly the gratuitous ARPs asked
// for, on the interface the VIP lives on, byte for byte what keepalived
// sends.
func TestOwnRelease(t *testing.T) {
	fe := newFxEngine(t, []string{"-A -t 10.0.0.100:80 -s rr", "-a -t 10.0.0.100:80 -r 172.16.0.2:80 -g"}, nil, nil)
	ctx := context.Background()
	if a, e := fe.answers(t, fxVIP); !a || !e {
		t.Fatalf("at start (owned): ARP %v ping %v", a, e)
	}
	r := fe.Handle(ctx, ctl.Peer{}, ownReq(config.OpRelease, 0, fxVIP))
	if r.Error != "" || len(r.Ownership) != 1 || r.Ownership[0].Owned || !r.Ownership[0].Served || r.Ownership[0].Iface != "ext" {
		t.Fatalf("release: %+v", r)
	}
	if a, e := fe.answers(t, fxVIP); a || e {
		t.Fatalf("released: ARP %v ping %v", a, e)
	}
	if got := fe.drain(t, fe.extW); len(got) != 0 {
		t.Fatalf("release sent %d frames", len(got))
	}
	// The rules stay: a new connection to the released VIP is forwarded.
	syn := pkt{src: clientMAC, dst: extMAC, sip: fxClient, dip: fxVIP, ttl: 64, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{tcp4(40000, 80, "S")}}.build(t)
	fe.feed(fe.ext, syn, false)
	if got := fe.drain(t, fe.intW); len(got) != 1 {
		t.Fatalf("SYN to a released VIP: %d frames forwarded, want 1", len(got))
	}
	if n := len(fe.Table().Services); n != 1 {
		t.Fatalf("services after release: %d", n)
	}

	r = fe.Handle(ctx, ctl.Peer{}, ownReq(config.OpOwn, 3, fxVIP))
	if r.Error != "" || !r.Ownership[0].Owned || r.Ownership[0].GARPs != 3 {
		t.Fatalf("own: %+v", r)
	}
	garps := fe.drain(t, fe.extW)
	if len(garps) != 3 {
		t.Fatalf("own sent %d frames on ext, want 3 gratuitous ARPs", len(garps))
	}
	if got := fe.drain(t, fe.intW); len(got) != 0 {
		t.Fatalf("own sent %d frames on int", len(got))
	}
	// keepalived's (vrrp_arp.c): a broadcast request, sender and target the VIP.
	want := fxSerialize(t, &layers.Ethernet{SrcMAC: net.HardwareAddr(extMAC[:]), DstMAC: net.HardwareAddr(bcastMAC[:]), EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: extMAC[:], SourceProtAddress: net.ParseIP(fxVIP).To4(),
			DstHwAddress: bcastMAC[:], DstProtAddress: net.ParseIP(fxVIP).To4()})
	for i, g := range garps {
		if !bytes.Equal(g[:len(want)], want) {
			t.Errorf("GARP %d:\n got %x\nwant %x", i, g, want)
		}
	}
	if a, e := fe.answers(t, fxVIP); !a || !e {
		t.Fatalf("owned again: ARP %v ping %v", a, e)
	}
	// An own that does not change anything still sends what it asks (a
	// garp_master_refresh); one that asks for none sends none.
	fe.Handle(ctx, ctl.Peer{}, ownReq(config.OpOwn, 1, fxVIP))
	fe.Handle(ctx, ctl.Peer{}, ownReq(config.OpOwn, 0, fxVIP))
	if got := fe.drain(t, fe.extW); len(got) != 1 {
		t.Fatalf("refresh: %d frames, want 1", len(got))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(fe.OwnershipCollector())
	exp := `
# HELP lvsd_gratuitous_arps_total Gratuitous ARPs lvsd sent for all VIPs.
# TYPE lvsd_gratuitous_arps_total counter
lvsd_gratuitous_arps_total 4
# HELP lvsd_vip_owned 1 if lvsd answers ARP and ping for the VIP (owned), 0 if it has released it (another director owns it).
# TYPE lvsd_vip_owned gauge
lvsd_vip_owned{vip="10.0.0.100"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "lvsd_gratuitous_arps_total", "lvsd_vip_owned"); err != nil {
		t.Error(err)
	}
}

// TestOwnNoARP: --no-arp starts with every VIP released, including VIPs
// of services added later; own takes one over, the others stay silent.
func TestOwnNoARP(t *testing.T) {
	fe := newFxEngine(t, nil, nil, nil)
	fe.cfg.NoARP = true
	for _, line := range []string{"-A -t 10.0.0.100:80 -s rr", "-A -t 10.0.0.101:80 -s rr"} {
		c, err := config.ParseArgs(splitFields(line))
		if err != nil {
			t.Fatal(err)
		}
		if err := fe.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"10.0.0.100", "10.0.0.101"} {
		if a, e := fe.answers(t, v); a || e {
			t.Fatalf("%s with NoARP: ARP %v ping %v", v, a, e)
		}
	}
	if r := fe.Handle(context.Background(), ctl.Peer{}, ownReq(config.OpOwn, 1, "10.0.0.100")); r.Error != "" {
		t.Fatal(r.Error)
	}
	if len(fe.drain(t, fe.extW)) != 1 {
		t.Fatal("no GARP")
	}
	if a, e := fe.answers(t, "10.0.0.100"); !a || !e {
		t.Errorf("owned: ARP %v ping %v", a, e)
	}
	if a, e := fe.answers(t, "10.0.0.101"); a || e {
		t.Errorf("never owned: ARP %v ping %v", a, e)
	}
	list := fe.Handle(context.Background(), ctl.Peer{}, ctl.Request{Command: config.Command{Op: config.OpOwnership}}).Ownership
	if len(list) != 2 || !list[0].Owned || list[0].Instance != "VI_1" || list[1].Owned {
		t.Errorf("ownership: %+v", list)
	}
	// A master's announcement heard while released is not a bad sender.
	before := fe.ctr[rxARPBadSenderIP]
	fe.feed(fe.ext, fxARP(t, layers.ARPRequest, routerMAC, bcastMAC, routerMAC, bcastMAC, "10.0.0.101", "10.0.0.101"), false)
	if fe.ctr[rxARPBadSenderIP] != before {
		t.Error("the owner's GARP counted as a bad sender")
	}
}

// TestOwnErrors: bad requests are refused whole, naming what is wrong, and
// change nothing; a request whose client has gone is not applied.
func TestOwnErrors(t *testing.T) {
	fe := newFxEngine(t, []string{"-A -t 10.0.0.100:80 -s rr"}, nil, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		req  ctl.Request
		want string
	}{
		{ctl.Request{Command: config.Command{Op: config.OpOwn}}, `own: no VIPs (request field "own")`},
		{ownReq(config.OpOwn, 0), "own: no VIP given"},
		{ownReq(config.OpRelease, 0, fxVIP, "2001:db8::1"), "release: VIP 2001:db8::1: want an IPv4 unicast address"},
		{ownReq(config.OpOwn, ctl.MaxGARP+1, fxVIP), "own: garp 65: want 0-64"},
		{ctl.Request{Command: config.Command{Op: config.OpVRRPReport}, VRRP: []ctl.VRRPStatus{{Instance: "VI_1", State: "PRIMARY"}}},
			`vrrp-report: instance VI_1: state "PRIMARY": want one of [INIT BACKUP MASTER FAULT STOP]`},
	} {
		if r := fe.Handle(ctx, ctl.Peer{}, tc.req); r.Error != tc.want {
			t.Errorf("error %q, want %q", r.Error, tc.want)
		}
	}
	if a, _ := fe.answers(t, fxVIP); !a {
		t.Error("a refused release changed the VIP")
	}
	gone, cancel := context.WithCancelCause(ctx)
	cancel(ctl.ErrClientGone)
	if r := fe.Handle(gone, ctl.Peer{}, ownReq(config.OpRelease, 0, fxVIP)); r.Error == "" {
		t.Error("applied for a client that has gone")
	}
	if a, _ := fe.answers(t, fxVIP); !a {
		t.Error("released for a client that has gone")
	}
}

// TestVRRPReport: the latest report is listed with the table and exported.
func TestVRRPReport(t *testing.T) {
	fe := newFxEngine(t, []string{"-A -t 10.0.0.100:80 -s rr"}, nil, nil)
	ctx := context.Background()
	rep := ctl.Request{Command: config.Command{Op: config.OpVRRPReport}, VRRP: []ctl.VRRPStatus{
		{Instance: "VI_2", VRID: 52, State: "BACKUP", Priority: 90},
		{Instance: "VI_1", VRID: 51, State: "MASTER", Priority: 150, VIPs: []netip.Addr{netip.MustParseAddr(fxVIP)}},
	}}
	if r := fe.Handle(ctx, ctl.Peer{PID: 42}, rep); r.Error != "" {
		t.Fatal(r.Error)
	}
	l := fe.Handle(ctx, ctl.Peer{}, ctl.Request{Command: config.Command{Op: config.OpList}})
	if l.VRRP == nil || len(l.VRRP.Instances) != 2 || l.VRRP.Instances[0].Instance != "VI_1" || l.VRRP.PID != 42 || len(l.Ownership) != 1 {
		t.Fatalf("list: %+v", l)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(fe.OwnershipCollector())
	exp := `
# HELP lvsd_vrrp_priority The VRRP instance's effective priority, as lvskeepalived last reported it.
# TYPE lvsd_vrrp_priority gauge
lvsd_vrrp_priority{instance="VI_1",vrid="51"} 150
lvsd_vrrp_priority{instance="VI_2",vrid="52"} 90
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "lvsd_vrrp_priority"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(reg, "lvsd_vrrp_state")
	if err != nil || n != 10 {
		t.Errorf("lvsd_vrrp_state series: %d %v", n, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "lvsd_vrrp_state" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			want := (labels["instance"] == "VI_1" && labels["state"] == "MASTER") || (labels["instance"] == "VI_2" && labels["state"] == "BACKUP")
			if (m.GetGauge().GetValue() == 1) != want {
				t.Errorf("lvsd_vrrp_state%v = %v", labels, m.GetGauge().GetValue())
			}
		}
	}
}
