package rewrite_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

// goldenFrames returns every frame stored in the fixtures.
func goldenFrames(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		g, err := readGolden(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		if len(g.input) > 0 {
			out[name+"/input"] = g.input
		}
		out[name+"/expected"] = g.expected
	}
	return out
}

func addrOf(ip net.IP) netip.Addr { a, _ := netip.AddrFromSlice(ip.To4()); return a }

// TestViewsMatchGopacket reads every fixture frame through the views and
// through Parse, and compares each field with gopacket's decoding.
func TestViewsMatchGopacket(t *testing.T) {
	for name, frame := range goldenFrames(t) {
		t.Run(name, func(t *testing.T) {
			pkt := decode(t, frame)
			var p rewrite.Packet
			perr := rewrite.Parse(frame, &p)
			e, err := rewrite.ParseEthernet(frame)
			if err != nil {
				t.Fatal(err)
			}
			ge := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			if e.Dst().String() != ge.DstMAC.String() || e.Src().String() != ge.SrcMAC.String() {
				t.Errorf("MACs %v %v, gopacket %v %v", e.Dst(), e.Src(), ge.DstMAC, ge.SrcMAC)
			}
			if q, ok := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok {
				if !e.Tagged() || e.TCI()&0x0fff != q.VLANIdentifier || e.EtherType() != uint16(q.Type) || e.HeaderLen() != 18 || p.TCI != e.TCI() || p.Flags&rewrite.FlagVLAN == 0 {
					t.Errorf("VLAN view: tagged %v tci %#x type %#x", e.Tagged(), e.TCI(), e.EtherType())
				}
			} else if e.Tagged() || e.TCI() != 0 || e.EtherType() != uint16(ge.EthernetType) || e.HeaderLen() != 14 {
				t.Errorf("untagged view: tagged %v type %#x", e.Tagged(), e.EtherType())
			}
			if p.L3 != e.HeaderLen() || p.EtherType != e.EtherType() {
				t.Errorf("Packet L3 %d type %#x", p.L3, p.EtherType)
			}
			if ga, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
				a, err := rewrite.ParseARP(frame[p.L3:])
				if err != nil || perr != nil {
					t.Fatal(err, perr)
				}
				if a.Op() != ga.Operation || a.SenderMAC().String() != net.HardwareAddr(ga.SourceHwAddress).String() || a.SenderIP() != addrOf(ga.SourceProtAddress) ||
					a.TargetMAC().String() != net.HardwareAddr(ga.DstHwAddress).String() || a.TargetIP() != addrOf(ga.DstProtAddress) {
					t.Errorf("ARP view differs from gopacket")
				}
				return
			}
			gip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			ip, err := rewrite.ParseIPv4(frame[p.L3:])
			if err != nil {
				t.Fatal(err)
			}
			if ip.HeaderLen() != int(gip.IHL)*4 || ip.TOS() != gip.TOS || ip.TotalLen() != gip.Length || ip.ID() != gip.Id ||
				ip.DF() != (gip.Flags&layers.IPv4DontFragment != 0) || ip.MF() != (gip.Flags&layers.IPv4MoreFragments != 0) ||
				ip.FragOffset() != int(gip.FragOffset)*8 || ip.TTL() != gip.TTL || ip.Protocol() != uint8(gip.Protocol) ||
				ip.Checksum() != gip.Checksum || ip.Src() != addrOf(gip.SrcIP) || ip.Dst() != addrOf(gip.DstIP) ||
				!bytes.Equal(ip.Options(), gip.Contents[20:]) || !bytes.Equal(ip.Payload(), gip.Payload) || !ip.ChecksumValid() {
				t.Errorf("IPv4 view differs from gopacket %+v", gip)
			}
			if p.Src != ip.Src() || p.Dst != ip.Dst() || p.Protocol != ip.Protocol() || p.L4 != p.L3+ip.HeaderLen() || p.End != p.L3+len(ip) {
				t.Errorf("Packet L3 fields %+v", p)
			}
			if gip.Protocol == layers.IPProtocolIPv4 {
				if !errors.Is(perr, rewrite.ErrUnknownProtocol) {
					t.Errorf("IPIP: Parse %v", perr)
				}
				return
			}
			if perr != nil {
				t.Fatalf("Parse: %v", perr)
			}
			switch gl := pkt.TransportLayer().(type) {
			case *layers.TCP:
				tcp, err := rewrite.ParseTCP(ip.Payload())
				if err != nil {
					t.Fatal(err)
				}
				if tcp.SrcPort() != uint16(gl.SrcPort) || tcp.DstPort() != uint16(gl.DstPort) || tcp.Seq() != gl.Seq || tcp.Ack() != gl.Ack ||
					tcp.HeaderLen() != int(gl.DataOffset)*4 || tcp.Window() != gl.Window || tcp.Checksum() != gl.Checksum ||
					tcp.Urgent() != gl.Urgent || !bytes.Equal(tcp.Payload(), gl.Payload) ||
					(tcp.Flags()&rewrite.TCPFlagSYN != 0) != gl.SYN || (tcp.Flags()&rewrite.TCPFlagACK != 0) != gl.ACK ||
					(tcp.Flags()&rewrite.TCPFlagFIN != 0) != gl.FIN || (tcp.Flags()&rewrite.TCPFlagRST != 0) != gl.RST {
					t.Errorf("TCP view differs from gopacket")
				}
				var want []layers.TCPOption
				for _, o := range gl.Options {
					if o.OptionType == layers.TCPOptionKindEndList {
						break
					}
					if o.OptionType != layers.TCPOptionKindNop {
						want = append(want, o)
					}
				}
				it := tcp.OptionIter()
				for i := 0; ; i++ {
					o, ok := it.Next()
					if !ok {
						if it.Err() != nil || i != len(want) {
							t.Errorf("options: %d of %d, err %v", i, len(want), it.Err())
						}
						break
					}
					if i >= len(want) || o.Kind != uint8(want[i].OptionType) || !bytes.Equal(o.Data, want[i].OptionData) || tcp[o.Offset] != o.Kind {
						t.Errorf("option %d: %+v, gopacket %v", i, o, want)
						break
					}
				}
				if p.SrcPort != tcp.SrcPort() || p.DstPort != tcp.DstPort() || p.TCPFlags != tcp.Flags() || p.Payload != p.L4+tcp.HeaderLen() {
					t.Errorf("Packet TCP fields %+v", p)
				}
			case *layers.UDP:
				u, err := rewrite.ParseUDP(ip.Payload())
				if err != nil {
					t.Fatal(err)
				}
				if u.SrcPort() != uint16(gl.SrcPort) || u.DstPort() != uint16(gl.DstPort) || u.Length() != gl.Length ||
					u.Checksum() != gl.Checksum || !bytes.Equal(u.Payload(), gl.Payload) || p.SrcPort != u.SrcPort() || p.DstPort != u.DstPort() {
					t.Errorf("UDP view differs from gopacket")
				}
			default:
				gi, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
				if !ok {
					t.Fatalf("unexpected frame %v", pkt)
				}
				m, err := rewrite.ParseICMP(ip.Payload())
				if err != nil {
					t.Fatal(err)
				}
				if m.Type() != gi.TypeCode.Type() || m.Code() != gi.TypeCode.Code() || m.Checksum() != gi.Checksum || m.ID() != gi.Id ||
					m.Seq() != gi.Seq || m.NextHopMTU() != gi.Seq || m.Rest() != uint32(gi.Id)<<16|uint32(gi.Seq) || !bytes.Equal(m.Payload(), gi.Payload) ||
					p.ICMPType != m.Type() || p.ICMPCode != m.Code() || rewrite.ICMPIsError(m.Type()) != isICMPError(m.Type()) {
					t.Errorf("ICMP view differs from gopacket")
				}
				if isICMPError(m.Type()) {
					q := quotedIPv4(gi)
					hl := int(q.IHL) * 4
					if p.Flags&rewrite.FlagICMPError == 0 || p.Quote.L3 != p.L4+8 || p.Quote.L4 != p.Quote.L3+hl ||
						p.Quote.Src != addrOf(q.SrcIP) || p.Quote.Dst != addrOf(q.DstIP) || p.Quote.Protocol != uint8(q.Protocol) ||
						p.Quote.SrcPort != binary.BigEndian.Uint16(gi.Payload[hl:]) || p.Quote.DstPort != binary.BigEndian.Uint16(gi.Payload[hl+2:]) {
						t.Errorf("Quote %+v, gopacket %v", p.Quote, q)
					}
				}
			}
		})
	}
}

// mutate returns a copy of a valid frame changed by fn, with the IPv4
// header checksum fixed afterwards when fix is set.
func mutate(frame []byte, fix bool, fn func(b []byte)) []byte {
	b := append([]byte(nil), frame...)
	fn(b)
	if fix {
		ihl := int(b[14]&0x0f) * 4
		if ihl >= 20 && 14+ihl <= len(b) {
			b[24], b[25] = 0, 0
			binary.BigEndian.PutUint16(b[24:], refChecksum(b[14:14+ihl]))
		}
	}
	return b
}

func TestParseErrors(t *testing.T) {
	syn := clientSYN().frame(t)
	udp := clientUDP().frame(t)
	arp := arpFrame(t, spec{srcMAC: macClient, dstMAC: macBcast}, 1, macClient, "192.0.2.254", macZero, addrVIP)
	icmpErr := icmpAbout(routerToVIP(), 3, 4, 1400, vipReply()).frame(t)
	cases := []struct {
		name    string
		frame   []byte
		want    error
		l3Valid bool
	}{
		{"short ethernet", syn[:13], rewrite.ErrTruncated, false},
		{"short vlan tag", mutate(syn[:16], false, func(b []byte) { b[12], b[13] = 0x81, 0 }), rewrite.ErrTruncated, false},
		{"ipv6 ethertype", mutate(syn, false, func(b []byte) { b[12], b[13] = 0x86, 0xdd }), rewrite.ErrUnknownEtherType, false},
		{"short arp", arp[:14+27], rewrite.ErrTruncated, false},
		{"arp not ethernet", mutate(arp, false, func(b []byte) { b[15] = 6 }), rewrite.ErrBadARP, false},
		{"short ipv4", syn[:14+19], rewrite.ErrTruncated, false},
		{"version 6", mutate(syn, true, func(b []byte) { b[14] = 0x65 }), rewrite.ErrBadVersion, false},
		{"ihl 4", mutate(syn, false, func(b []byte) { b[14] = 0x44 }), rewrite.ErrBadIHL, false},
		{"ihl past frame", mutate(syn[:14+40], false, func(b []byte) { b[14] = 0x4f }), rewrite.ErrTruncated, false},
		{"bad header checksum", mutate(syn, false, func(b []byte) { b[24] ^= 1 }), rewrite.ErrBadIPChecksum, false},
		{"total length past frame", mutate(syn, true, func(b []byte) { binary.BigEndian.PutUint16(b[16:], 200) }), rewrite.ErrTruncated, false},
		{"total length below header", mutate(syn, true, func(b []byte) { binary.BigEndian.PutUint16(b[16:], 19) }), rewrite.ErrBadTotalLength, false},
		{"more fragments", mutate(syn, true, func(b []byte) { b[20] |= 0x20 }), rewrite.ErrFragment, true},
		{"fragment offset", mutate(syn, true, func(b []byte) { b[21] = 1 }), rewrite.ErrFragment, true},
		{"gre", mutate(syn, true, func(b []byte) { b[23] = 47 }), rewrite.ErrUnknownProtocol, true},
		{"tcp data offset 4", mutate(syn, false, func(b []byte) { b[46] = 0x40 }), rewrite.ErrBadDataOffset, true},
		{"tcp data offset past packet", mutate(syn, false, func(b []byte) { b[46] = 0xf0 }), rewrite.ErrBadDataOffset, true},
		{"short tcp", mutate(syn[:14+20+19], true, func(b []byte) { binary.BigEndian.PutUint16(b[16:], 39) }), rewrite.ErrTruncated, true},
		{"udp length", mutate(udp, false, func(b []byte) { b[39]++ }), rewrite.ErrBadUDPLength, true},
		{"icmp quote too short", mutate(icmpErr[:14+20+8+20+7], true, func(b []byte) { binary.BigEndian.PutUint16(b[16:], 20+8+20+7) }), rewrite.ErrBadICMPQuote, true},
		{"icmp quote not ipv4", mutate(icmpErr, false, func(b []byte) { b[42] = 0x65 }), rewrite.ErrBadICMPQuote, true},
		{"icmp quote of a later fragment", mutate(icmpErr, false, func(b []byte) { b[49] = 1 }), rewrite.ErrBadICMPQuote, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p rewrite.Packet
			err := rewrite.Parse(c.frame, &p)
			if !errors.Is(err, c.want) {
				t.Fatalf("Parse: %v, want %v", err, c.want)
			}
			var r rewrite.Reason
			if !errors.As(err, &r) || int(r) >= rewrite.NumReasons {
				t.Fatalf("%v is not a countable Reason", err)
			}
			if c.l3Valid != (p.L4 != 0) || (c.l3Valid && (p.Src != apClient.Addr() && p.Src != netip.MustParseAddr(addrRouter))) {
				t.Fatalf("L3 validity %v, Packet %+v", c.l3Valid, p)
			}
		})
	}
}

func TestTCPOptionIterMalformed(t *testing.T) {
	hdr := func(opts ...byte) rewrite.TCP {
		b := make([]byte, 20+len(opts))
		b[12] = byte((20+len(opts))/4) << 4
		copy(b[20:], opts)
		return rewrite.TCP(b)
	}
	for name, tc := range map[string]struct {
		t       rewrite.TCP
		kinds   []uint8
		wantErr bool
	}{
		"eol stops":          {hdr(2, 4, 5, 0xb4, 0, 8, 10, 0), []uint8{2}, false},
		"nops skipped":       {hdr(1, 1, 1, 1, 3, 3, 7, 1), []uint8{3}, false},
		"length 1":           {hdr(2, 1, 0, 0), nil, true},
		"length past header": {hdr(1, 8, 10, 0), nil, true},
		"kind without size":  {hdr(1, 1, 1, 8), nil, true},
	} {
		it := tc.t.OptionIter()
		var kinds []uint8
		for {
			o, ok := it.Next()
			if !ok {
				break
			}
			kinds = append(kinds, o.Kind)
		}
		if !bytes.Equal(kinds, tc.kinds) || (it.Err() != nil) != tc.wantErr {
			t.Errorf("%s: kinds %v err %v", name, kinds, it.Err())
		}
	}
}

// TestEncapIPIPHeadroom encapsulates a frame read 20 bytes into its buffer
// into the same buffer: the inner packet must not move, and the result must
// equal the golden TUN output.
func TestEncapIPIPHeadroom(t *testing.T) {
	g, err := readGolden(filepath.Join("testdata", "golden", "tun_ipip_df_ce.txt"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, rewrite.IPIPOverhead+len(g.input))
	frame := buf[rewrite.IPIPOverhead:]
	copy(frame, g.input)
	var p rewrite.Packet
	if err := rewrite.Parse(frame, &p); err != nil {
		t.Fatal(err)
	}
	innerAt := &frame[p.L3]
	tun := rewrite.IPIP{Src: apLocal.Addr(), Dst: apRS.Addr(), DstMAC: hwRS, SrcMAC: hwDirector, MTU: 1500, ID: 0x4242}
	n, err := rewrite.EncapIPIP(buf, frame, &p, &tun)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], g.expected) {
		t.Fatalf("headroom encapsulation differs:\n%s", frameDiff(buf[:n], g.expected))
	}
	if &buf[p.L4] != innerAt {
		t.Fatal("the inner packet moved although it was already in place")
	}
	if tun.FragNeededMTU() != 1480 {
		t.Fatalf("FragNeededMTU %d", tun.FragNeededMTU())
	}
	// Too small an output buffer, and a tunnel MTU under 68.
	if _, err := rewrite.EncapIPIP(make([]byte, 40), g.input, &rewrite.Packet{}, &tun); err == nil {
		t.Fatal("EncapIPIP with a zero Packet succeeded")
	}
	var q rewrite.Packet
	in := append([]byte(nil), g.input...)
	if err := rewrite.Parse(in, &q); err != nil {
		t.Fatal(err)
	}
	if _, err := rewrite.EncapIPIP(make([]byte, 40), in, &q, &tun); !errors.Is(err, rewrite.ErrNoRoom) {
		t.Fatalf("short out: %v", err)
	}
	small := tun
	small.MTU = 87
	if _, err := rewrite.EncapIPIP(make([]byte, 200), in, &q, &small); !errors.Is(err, rewrite.ErrMTUTooSmall) {
		t.Fatalf("MTU 87: %v", err)
	}
	// pmtu_disc=0: no DF outside, no MTU test, the caller's ID.
	nodf := tun
	nodf.NoPMTUDisc, nodf.MTU = true, 100
	out := make([]byte, 200)
	n, err = rewrite.EncapIPIP(out, in, &q, &nodf)
	if err != nil {
		t.Fatal(err)
	}
	gip := decode(t, out[:n]).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if gip.Flags&layers.IPv4DontFragment != 0 || gip.Id != 0x4242 {
		t.Fatalf("pmtu_disc=0 outer header: flags %v id %#x", gip.Flags, gip.Id)
	}
}

func TestCheckMTU(t *testing.T) {
	big := bigDF().frame(t) // 1481-byte IP packet with DF
	var p rewrite.Packet
	if err := rewrite.Parse(big, &p); err != nil {
		t.Fatal(err)
	}
	if err := rewrite.CheckMTU(big, &p, 1481); err != nil {
		t.Fatalf("at the MTU: %v", err)
	}
	if err := rewrite.CheckMTU(big, &p, 1480); !errors.Is(err, rewrite.ErrFragNeeded) {
		t.Fatalf("over the MTU: %v", err)
	}
	s := bigDF()
	s.df = false
	nodf := s.frame(t)
	if err := rewrite.Parse(nodf, &p); err != nil {
		t.Fatal(err)
	}
	if err := rewrite.CheckMTU(nodf, &p, 576); err != nil {
		t.Fatalf("no DF: %v", err)
	}
}

func TestChecksumHelpers(t *testing.T) {
	src, dst := netip.MustParseAddr(addrClient), netip.MustParseAddr(addrVIP)
	if got, want := rewrite.PseudoHeaderSum(src, dst, 6, 40), refSum(refPseudo(ip4(addrClient), ip4(addrVIP), 6, 40)); got != want {
		t.Fatalf("PseudoHeaderSum %#04x, want %#04x", got, want)
	}
	if rewrite.PseudoHeaderSum(netip.MustParseAddr("::1"), dst, 6, 40) != 0 {
		t.Fatal("PseudoHeaderSum of IPv6 should be 0")
	}
	a, b := []byte{0x12, 0x34, 0xff}, []byte{0xfe, 0xdc, 0x01, 0x02}
	if got, want := rewrite.AddSums(refSum(a[:2]), refSum(b)), refSum(a[:2], b); got != want {
		t.Fatalf("AddSums %#04x, want %#04x", got, want)
	}
	if rewrite.UDPWireChecksum(0) != 0xffff || rewrite.UDPWireChecksum(0x1234) != 0x1234 {
		t.Fatal("UDPWireChecksum")
	}
	ip := rewrite.IPv4(clientSYN().packet(t))
	ip.SetTTL(9)
	if ip.ChecksumValid() {
		t.Fatal("checksum still valid after a change")
	}
	ip.UpdateChecksum()
	if !ip.ChecksumValid() || refSum(ip[:20]) != 0xffff {
		t.Fatal("UpdateChecksum")
	}
}

func TestReasons(t *testing.T) {
	seen := map[string]bool{}
	for r := rewrite.Reason(1); int(r) < rewrite.NumReasons; r++ {
		s := r.Error()
		if s == "" || seen[s] || s == rewrite.Reason(255).Error() || r.String() != s {
			t.Errorf("reason %d: %q", r, s)
		}
		seen[s] = true
	}
}

func TestMACAndSetMACs(t *testing.T) {
	if hwClient.String() != macClient || !(rewrite.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}).IsBroadcast() || hwClient.IsBroadcast() {
		t.Fatal("MAC helpers")
	}
	if err := rewrite.SetMACs(make([]byte, 13), hwRS, hwDirector); !errors.Is(err, rewrite.ErrTruncated) {
		t.Fatal(err)
	}
	if _, err := rewrite.ParseEthernet(make([]byte, 13)); !errors.Is(err, rewrite.ErrTruncated) {
		t.Fatal(err)
	}
}

// TestNoAllocations checks every per-packet function allocates nothing (the
// benchmarks report the same with -benchmem).
func TestNoAllocations(t *testing.T) {
	syn := clientSYN().frame(t)
	data := clientData().frame(t)
	udpNoSum := zeroUDPChecksum(t, clientUDP().frame(t))
	icmpErr := icmpAbout(routerToVIP(), 3, 4, 1400, vipReply()).frame(t)
	work := make([]byte, 2048)
	out := make([]byte, 2048)
	var p rewrite.Packet
	tun := rewrite.IPIP{Src: apLocal.Addr(), Dst: apRS.Addr(), DstMAC: hwRS, SrcMAC: hwDirector, MTU: 1500}
	reply := rewrite.ReplyIP{Src: apVIP.Addr(), TTL: 64}
	run := func(name string, in []byte, fn func(f []byte) error) {
		t.Helper()
		allocs := testing.AllocsPerRun(100, func() {
			f := work[:len(in)]
			copy(f, in)
			if err := rewrite.Parse(f, &p); err != nil {
				t.Fatalf("%s: Parse: %v", name, err)
			}
			if err := fn(f); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per packet", name, allocs)
		}
	}
	run("DR", syn, func(f []byte) error { return rewrite.DR(f, &p, hwRS, hwDirector) })
	run("NATIn", syn, func(f []byte) error { return rewrite.NATIn(f, &p, apRS) })
	run("NATIn UDP no checksum", udpNoSum, func(f []byte) error { return rewrite.NATIn(f, &p, apRS) })
	run("NATOut", syn, func(f []byte) error { return rewrite.NATOut(f, &p, apVIP) })
	run("FULLNATIn", data, func(f []byte) error { return rewrite.FULLNATIn(f, &p, apLocal, apRS) })
	run("FULLNATOut", data, func(f []byte) error { return rewrite.FULLNATOut(f, &p, apVIP, apClient) })
	run("InsertTOA", data, func(f []byte) error { _, err := rewrite.InsertTOA(f, &p, apClient, 1500); return err })
	run("ClampMSS", syn, func(f []byte) error { _, err := rewrite.ClampMSS(f, &p, 1400); return err })
	run("EncapIPIP", syn, func(f []byte) error { _, err := rewrite.EncapIPIP(out, f, &p, &tun); return err })
	run("NATInICMP", icmpErr, func(f []byte) error { return rewrite.NATInICMP(f, &p, apRS) })
	run("FULLNATOutICMP", icmpErr, func(f []byte) error { return rewrite.FULLNATOutICMP(f, &p, apVIP, apClient) })
	run("BuildTCPReset", syn, func(f []byte) error { _, err := rewrite.BuildTCPReset(out, f, &p, 64); return err })
	run("BuildTimeExceeded", syn, func(f []byte) error { _, err := rewrite.BuildTimeExceeded(out, f, &p, reply); return err })
	run("DR error path", syn, func(f []byte) error {
		f[p.L3+8] = 1
		if err := rewrite.DR(f, &p, hwRS, hwDirector); !errors.Is(err, rewrite.ErrTTLExpired) {
			return err
		}
		return nil
	})
	run("CompletePartial", setPartial(t, data), func(f []byte) error {
		p.Partial = true
		return rewrite.CompletePartial(f, &p)
	})
}
