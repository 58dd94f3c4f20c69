package rewrite_test

import (
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

// Base frames of the fixtures.

// clientSYN is a Linux client's SYN to the virtual service.
func clientSYN() spec {
	return spec{
		srcMAC: macClient, dstMAC: macDirector, src: addrClient, dst: addrVIP,
		ttl: 64, id: 0x1c46, df: true, proto: layers.IPProtocolTCP,
		sport: portClient, dport: portVIP, seq: 0x5eed0001, flags: "S", win: 64240,
		tcpOpts: synOptions(1460),
	}
}

// clientData is the client's first data segment.
func clientData() spec {
	return spec{
		srcMAC: macClient, dstMAC: macDirector, src: addrClient, dst: addrVIP,
		ttl: 64, id: 0x1c47, df: true, proto: layers.IPProtocolTCP,
		sport: portClient, dport: portVIP, seq: 0x5eed0002, ack: 0x7a110001, flags: "PA", win: 502,
		payload: []byte("GET / HTTP/1.0\r\nHost: lvslab\r\n\r\n"),
	}
}

// rsSYNACK is the real server's SYN-ACK toward the client (NAT).
func rsSYNACK() spec {
	return spec{
		srcMAC: macRS, dstMAC: macDirector, src: addrRS, dst: addrClient,
		ttl: 64, df: true, proto: layers.IPProtocolTCP,
		sport: portRS, dport: portClient, seq: 0x7a110000, ack: 0x5eed0002, flags: "SA", win: 65160,
		tcpOpts: synOptions(1460),
	}
}

// clientUDP is a client datagram to the virtual service.
func clientUDP() spec {
	return spec{
		srcMAC: macClient, dstMAC: macDirector, src: addrClient, dst: addrVIP,
		ttl: 64, id: 0x0421, proto: layers.IPProtocolUDP,
		sport: portClient, dport: portVIP, payload: []byte("lvslab udp probe"),
	}
}

// fwd applies the L2 half of forwarding from the director to the RS or the
// client, and the TTL decrement.
func toRS(s spec) spec     { s.srcMAC, s.dstMAC, s.ttl = macDirector, macRS, s.ttl-1; return s }
func toClient(s spec) spec { s.srcMAC, s.dstMAC, s.ttl = macDirector, macClient, s.ttl-1; return s }

func mss(v uint16) []byte { b := make([]byte, 2); binary.BigEndian.PutUint16(b, v); return b }

func goldenCases() []goldenCase {
	var cs []goldenCase
	add := func(c goldenCase) { cs = append(cs, c) }

	// ---- DR ----
	add(goldenCase{
		name: "dr_tcp_syn",
		desc: "DR: a client SYN to VIP 192.0.2.10:80 goes to the real server's MAC; source MAC becomes the director's, TTL 64→63 with the IP checksum redone, addresses and TCP untouched (ip_vs_dr_xmit).",
		in:   func(tb testing.TB) []byte { return clientSYN().frame(tb) },
		want: func(tb testing.TB) []byte { return toRS(clientSYN()).frame(tb) },
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			return f, rewrite.DR(f, p, hwRS, hwDirector)
		},
	})
	add(goldenCase{
		name: "dr_vlan_udp",
		desc: "DR on VLAN 100: the 802.1Q tag stays, MACs change, TTL 64→63; the UDP checksum is untouched because nothing it covers changed.",
		in:   func(tb testing.TB) []byte { s := clientUDP(); s.vlan = 100; return s.frame(tb) },
		want: func(tb testing.TB) []byte { s := toRS(clientUDP()); s.vlan = 100; return s.frame(tb) },
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			return f, rewrite.DR(f, p, hwRS, hwDirector)
		},
	})
	add(goldenCase{
		name:    "dr_ttl_expired",
		desc:    "DR with TTL 1: not forwarded (decrement_ttl), the caller sends ICMP time exceeded; the frame is unchanged.",
		in:      func(tb testing.TB) []byte { s := clientSYN(); s.ttl = 1; return s.frame(tb) },
		want:    func(tb testing.TB) []byte { s := clientSYN(); s.ttl = 1; return s.frame(tb) },
		verdict: rewrite.ErrTTLExpired,
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			return f, rewrite.DR(f, p, hwRS, hwDirector)
		},
	})

	// ---- NAT ----
	natIn := func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
		if err := rewrite.NATIn(f, p, apRS); err != nil {
			return f, err
		}
		return f, rewrite.SetMACs(f, hwRS, hwDirector)
	}
	natOut := func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
		if err := rewrite.NATOut(f, p, apVIP); err != nil {
			return f, err
		}
		return f, rewrite.SetMACs(f, hwClient, hwDirector)
	}
	add(goldenCase{
		name: "nat_in_tcp_syn",
		desc: "NAT in: client SYN 203.0.113.7:40000 → 192.0.2.10:80 becomes → 172.16.0.2:8080 (tcp_dnat_handler); TCP checksum updated incrementally for address and port, TTL 64→63, IP checksum recomputed, MACs toward the RS.",
		in:   func(tb testing.TB) []byte { return clientSYN().frame(tb) },
		want: func(tb testing.TB) []byte {
			s := toRS(clientSYN())
			s.dst, s.dport = addrRS, portRS
			return s.frame(tb)
		},
		run: natIn,
	})
	add(goldenCase{
		name: "nat_out_tcp_synack",
		desc: "NAT out: the RS SYN-ACK 172.16.0.2:8080 → 203.0.113.7:40000 leaves as 192.0.2.10:80 → client (tcp_snat_handler); incremental TCP checksum, TTL 64→63, MACs toward the client.",
		in:   func(tb testing.TB) []byte { return rsSYNACK().frame(tb) },
		want: func(tb testing.TB) []byte {
			s := toClient(rsSYNACK())
			s.src, s.sport = addrVIP, portVIP
			return s.frame(tb)
		},
		run: natOut,
	})
	add(goldenCase{
		name: "nat_in_ip_options",
		desc: "NAT in of a data segment whose IPv4 header carries a Router Alert option (IHL 6): offsets follow IHL, the option is kept and covered by the recomputed header checksum.",
		in: func(tb testing.TB) []byte {
			s := clientData()
			s.ipOpts = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
			return s.frame(tb)
		},
		want: func(tb testing.TB) []byte {
			s := toRS(clientData())
			s.ipOpts = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
			s.dst, s.dport = addrRS, portRS
			return s.frame(tb)
		},
		run: natIn,
	})
	add(goldenCase{
		name: "nat_in_udp",
		desc: "NAT in of a UDP datagram with a checksum: destination to 172.16.0.2:8080, incremental UDP checksum (udp_fast_csum_update), TTL 64→63.",
		in:   func(tb testing.TB) []byte { return clientUDP().frame(tb) },
		want: func(tb testing.TB) []byte {
			s := toRS(clientUDP())
			s.dst, s.dport = addrRS, portRS
			return s.frame(tb)
		},
		run: natIn,
	})
	add(goldenCase{
		name:       "nat_in_udp_no_checksum",
		desc:       "NAT in of a UDP datagram sent without a checksum (0): IPVS does not leave it absent, it computes a full checksum over the rewritten datagram (udp_dnat_handler, check == 0 branch).",
		in:         func(tb testing.TB) []byte { return zeroUDPChecksum(tb, clientUDP().frame(tb)) },
		inNoUDPSum: true,
		want: func(tb testing.TB) []byte {
			s := toRS(clientUDP())
			s.dst, s.dport = addrRS, portRS
			return s.frame(tb)
		},
		run: natIn,
	})
	add(goldenCase{
		name: "nat_out_udp_checksum_0xffff",
		desc: "NAT out of a UDP reply whose rewritten checksum computes to 0x0000: it is sent as 0xFFFF (RFC 768, CSUM_MANGLED_0), since 0 would mean no checksum. The payload's first word is chosen to make that happen.",
		in: func(tb testing.TB) []byte {
			s := rsUDPReply(tb)
			return s.frame(tb)
		},
		want: func(tb testing.TB) []byte {
			s := toClient(rsUDPReply(tb))
			s.src, s.sport = addrVIP, portVIP
			f := s.frame(tb)
			if binary.BigEndian.Uint16(f[40:42]) != 0xffff {
				tb.Fatalf("fixture construction: expected UDP checksum 0xffff, gopacket made %#04x", binary.BigEndian.Uint16(f[40:42]))
			}
			return f
		},
		run: natOut,
	})
	add(goldenCase{
		name: "nat_in_tcp_partial",
		desc: "NAT in of a CHECKSUM_PARTIAL SYN (veth offload: the checksum field holds the pseudo-header sum, not complemented). Only the pseudo-header part is updated, for the new destination address; the port change is left to whoever completes the checksum (tcp_partial_csum_update).",
		in:   func(tb testing.TB) []byte { return setPartial(tb, clientSYN().frame(tb)) },
		want: func(tb testing.TB) []byte {
			s := toRS(clientSYN())
			s.dst, s.dport = addrRS, portRS
			return setPartial(tb, s.frame(tb))
		},
		inPartial: true,
		wantMode:  csumPartial,
		run:       natIn,
	})
	add(goldenCase{
		name:      "complete_partial_tcp",
		desc:      "Completing a CHECKSUM_PARTIAL data segment in software (skb_checksum_help): the full TCP checksum replaces the pseudo-header sum.",
		in:        func(tb testing.TB) []byte { return setPartial(tb, clientData().frame(tb)) },
		want:      func(tb testing.TB) []byte { return clientData().frame(tb) },
		inPartial: true,
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			return f, rewrite.CompletePartial(f, p)
		},
	})

	// ---- TUN ----
	tun := rewrite.IPIP{
		Src: apLocal.Addr(), Dst: apRS.Addr(), DstMAC: hwRS, SrcMAC: hwDirector, MTU: 1500, ID: 0x4242,
	}
	encap := func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
		out := make([]byte, 2048)
		t := tun
		n, err := rewrite.EncapIPIP(out, f, p, &t)
		if err != nil {
			return f, err
		}
		return out[:n], nil
	}
	add(goldenCase{
		name: "tun_ipip_df_ce",
		desc: "TUN: IP-in-IP to 172.16.0.2 from 172.16.0.1 (ip_vs_tunnel_xmit). Inner TTL 64→63 with its checksum redone; outer TTL 63, protocol 4, DF copied, ID 0 because DF is set, TOS 0xbb (EF, CE) becomes 0xba (CE encapsulated as ECT(0)); inner addresses untouched.",
		in:   func(tb testing.TB) []byte { s := clientSYN(); s.tos = 0xbb; return s.frame(tb) },
		want: func(tb testing.TB) []byte {
			inner := clientSYN()
			inner.tos, inner.ttl = 0xbb, 63
			outer := spec{src: addrLocal, dst: addrRS, ttl: 63, tos: 0xba, id: 0, df: true}
			return tunnelled(tb, spec{srcMAC: macDirector, dstMAC: macRS}, outer, inner)
		},
		run: encap,
	})
	add(goldenCase{
		name: "tun_ipip_no_df",
		desc: "TUN of a UDP datagram without DF: the outer header has no DF and takes the caller's ID 0x4242; TOS 0x01 (ECT(1)) is copied as is.",
		in:   func(tb testing.TB) []byte { s := clientUDP(); s.tos = 0x01; return s.frame(tb) },
		want: func(tb testing.TB) []byte {
			inner := clientUDP()
			inner.tos, inner.ttl = 0x01, 63
			outer := spec{src: addrLocal, dst: addrRS, ttl: 63, tos: 0x01, id: 0x4242}
			return tunnelled(tb, spec{srcMAC: macDirector, dstMAC: macRS}, outer, inner)
		},
		run: encap,
	})
	add(goldenCase{
		name:    "tun_frag_needed",
		desc:    "TUN of a 1481-byte DF packet with egress MTU 1500: it would exceed the MTU once encapsulated (1481 > 1500-20), so it is not encapsulated; the caller sends ICMP fragmentation needed with MTU 1480 to the client (ensure_mtu_is_adequate).",
		in:      func(tb testing.TB) []byte { return bigDF().frame(tb) },
		want:    func(tb testing.TB) []byte { return bigDF().frame(tb) },
		verdict: rewrite.ErrFragNeeded,
		run:     encap,
	})

	// ---- FULLNAT and TOA ----
	fnatIn := func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
		if err := rewrite.FULLNATIn(f, p, apLocal, apRS); err != nil {
			return f, err
		}
		return f, rewrite.SetMACs(f, hwRS, hwDirector)
	}
	add(goldenCase{
		name: "fullnat_in_tcp",
		desc: "FULLNAT in: client data 203.0.113.7:40000 → 192.0.2.10:80 becomes 172.16.0.1:5001 → 172.16.0.2:8080 (tcp_fnat_in_handler): both addresses and ports, incremental TCP checksum, TTL 64→63.",
		in:   func(tb testing.TB) []byte { return clientData().frame(tb) },
		want: func(tb testing.TB) []byte {
			s := toRS(clientData())
			s.src, s.sport, s.dst, s.dport = addrLocal, portLocal, addrRS, portRS
			return s.frame(tb)
		},
		run: fnatIn,
	})
	add(goldenCase{
		name: "fullnat_out_tcp",
		desc: "FULLNAT out: RS data 172.16.0.2:8080 → 172.16.0.1:5001 becomes 192.0.2.10:80 → 203.0.113.7:40000 (tcp_fnat_out_handler), TTL 64→63.",
		in:   func(tb testing.TB) []byte { return rsFNATData().frame(tb) },
		want: func(tb testing.TB) []byte {
			s := toClient(rsFNATData())
			s.src, s.sport, s.dst, s.dport = addrVIP, portVIP, addrClient, portClient
			return s.frame(tb)
		},
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			if err := rewrite.FULLNATOut(f, p, apVIP, apClient); err != nil {
				return f, err
			}
			return f, rewrite.SetMACs(f, hwClient, hwDirector)
		},
	})
	add(goldenCase{
		name: "fullnat_out_synack_mss",
		desc: "FULLNAT out of the RS SYN-ACK: translated back to VIP → client, and its MSS 1460 lowered by 8 to 1452 so client segments leave room for TOA (tcp_opt_adjust_mss).",
		in: func(tb testing.TB) []byte {
			s := rsSYNACK()
			s.dst, s.dport = addrLocal, portLocal
			return s.frame(tb)
		},
		want: func(tb testing.TB) []byte {
			s := toClient(rsSYNACK())
			s.src, s.sport = addrVIP, portVIP
			s.tcpOpts = synOptions(1452)
			return s.frame(tb)
		},
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			if err := rewrite.FULLNATOut(f, p, apVIP, apClient); err != nil {
				return f, err
			}
			if changed, err := rewrite.ReduceMSSForTOA(f, p); err != nil || !changed {
				return f, errOr(err, "MSS not changed")
			}
			return f, rewrite.SetMACs(f, hwClient, hwDirector)
		},
	})
	toa := func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
		return rewrite.InsertTOA(f, p, apClient, 1500)
	}
	add(goldenCase{
		name: "toa_insert_syn",
		desc: "TOA into a SYN with 20 bytes of options: kind 254 len 8 carrying port 40000 and 203.0.113.7 goes right after the fixed header, the other options move down, data offset 10→12, IP length +8, both checksums recomputed (tcp_opt_add_toa). Addresses and TTL are untouched.",
		in:   func(tb testing.TB) []byte { return clientSYN().frame(tb) },
		want: func(tb testing.TB) []byte {
			s := clientSYN()
			s.tcpOpts = withOptions([]layers.TCPOption{toaOption(portClient, addrClient)}, synOptions(1460))
			return s.frame(tb)
		},
		run: toa,
	})
	add(goldenCase{
		name: "toa_insert_data",
		desc: "TOA into the client's first data segment (no options): data offset 5→7, payload moved down 8 bytes.",
		in:   func(tb testing.TB) []byte { return clientData().frame(tb) },
		want: func(tb testing.TB) []byte {
			s := clientData()
			s.tcpOpts = []layers.TCPOption{toaOption(portClient, addrClient)}
			return s.frame(tb)
		},
		run: toa,
	})
	add(goldenCase{
		name: "toa_insert_partial",
		desc: "TOA into a CHECKSUM_PARTIAL data segment: the result carries a complete checksum, as the kernel turns the skb into CHECKSUM_COMPLETE after a full recomputation.",
		in:   func(tb testing.TB) []byte { return setPartial(tb, clientData().frame(tb)) },
		want: func(tb testing.TB) []byte {
			s := clientData()
			s.tcpOpts = []layers.TCPOption{toaOption(portClient, addrClient)}
			return s.frame(tb)
		},
		inPartial: true,
		run:       toa,
	})
	add(goldenCase{
		name:    "toa_no_option_space",
		desc:    "TOA into a SYN whose options already take 36 bytes (data offset 14): only 4 bytes of room, so nothing is inserted (FULLNAT_ADD_TOA_HEAD_FULL) and the frame is unchanged.",
		in:      func(tb testing.TB) []byte { return fullOptionsSYN().frame(tb) },
		want:    func(tb testing.TB) []byte { return fullOptionsSYN().frame(tb) },
		verdict: rewrite.ErrNoOptionSpace,
		run:     toa,
	})
	add(goldenCase{
		name: "fullnat_in_toa",
		desc: "The FULLNAT in pipeline for the first data segment: TOA inserted (client 203.0.113.7:40000), then the translation to 172.16.0.1:5001 → 172.16.0.2:8080 with TTL 64→63.",
		in:   func(tb testing.TB) []byte { return clientData().frame(tb) },
		want: func(tb testing.TB) []byte {
			s := toRS(clientData())
			s.src, s.sport, s.dst, s.dport = addrLocal, portLocal, addrRS, portRS
			s.tcpOpts = []layers.TCPOption{toaOption(portClient, addrClient)}
			return s.frame(tb)
		},
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			f, err := rewrite.InsertTOA(f, p, apClient, 1500)
			if err != nil {
				return f, err
			}
			return fnatIn(tb, f, p)
		},
	})
	add(goldenCase{
		name: "mss_clamp_odd_offset",
		desc: "MSS clamp of a SYN to 1400 where a NOP puts the MSS value at an odd offset (23) of the TCP header: the incremental checksum update must byte-swap the change.",
		in:   func(tb testing.TB) []byte { return oddMSSSYN(1460).frame(tb) },
		want: func(tb testing.TB) []byte { return oddMSSSYN(1400).frame(tb) },
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			if changed, err := rewrite.ClampMSS(f, p, 1400); err != nil || !changed {
				return f, errOr(err, "MSS not changed")
			}
			return f, nil
		},
	})

	// ---- ICMP errors about translated flows ----
	add(goldenCase{
		name: "icmp_nat_in_frag_needed",
		desc: "A router on the client side reports fragmentation needed (MTU 1400) about a reply 192.0.2.10:80 → client. For the NAT RS it becomes an error to 172.16.0.2 quoting 172.16.0.2:8080 → client: outer daddr, quoted saddr and quoted sport rewritten, quoted and outer IP checksums and the ICMP checksum recomputed, outer TTL 64→63 (ip_vs_nat_icmp, inout=0).",
		in: func(tb testing.TB) []byte {
			return icmpAbout(routerToVIP(), 3, 4, 1400, vipReply()).frame(tb)
		},
		want: func(tb testing.TB) []byte {
			outer := toRS(routerToVIP())
			outer.dst = addrRS
			q := vipReply()
			q.src, q.sport = addrRS, portRS
			return icmpAbout(outer, 3, 4, 1400, q).frame(tb)
		},
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			if err := rewrite.NATInICMP(f, p, apRS); err != nil {
				return f, err
			}
			return f, rewrite.SetMACs(f, hwRS, hwDirector)
		},
	})
	add(goldenCase{
		name: "icmp_nat_out_port_unreach",
		desc: "The NAT RS answers a client datagram with port unreachable. For the client it becomes an error from 192.0.2.10 quoting client → 192.0.2.10:80: outer saddr, quoted daddr and quoted dport rewritten; the quoted UDP checksum keeps its original value, as in the kernel (ip_vs_nat_icmp, inout=1).",
		in: func(tb testing.TB) []byte {
			return icmpAbout(rsToClient(), 3, 3, 0, clientUDPAtRS()).frame(tb)
		},
		want: func(tb testing.TB) []byte {
			outer := toClient(rsToClient())
			outer.src = addrVIP
			q := clientUDPAtRS()
			q.dst, q.dport = addrVIP, portVIP
			return icmpAboutKeepingL4Checksum(tb, outer, 3, 3, 0, q, clientUDPAtRS()).frame(tb)
		},
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			if err := rewrite.NATOutICMP(f, p, apVIP); err != nil {
				return f, err
			}
			return f, rewrite.SetMACs(f, hwClient, hwDirector)
		},
	})
	add(goldenCase{
		name: "icmp_fullnat_in_time_exceeded",
		desc: "FULLNAT: a client-side router reports time exceeded about a reply 192.0.2.10:80 → client. For the RS the outer packet becomes 172.16.0.1 → 172.16.0.2 and the quote 172.16.0.2:8080 → 172.16.0.1:5001 (alibaba/LVS ip_vs_nat_icmp, FULLNAT, inout=0).",
		in: func(tb testing.TB) []byte {
			return icmpAbout(routerToVIP(), 11, 0, 0, vipReply()).frame(tb)
		},
		want: func(tb testing.TB) []byte {
			outer := toRS(routerToVIP())
			outer.src, outer.dst = addrLocal, addrRS
			q := vipReply()
			q.src, q.sport, q.dst, q.dport = addrRS, portRS, addrLocal, portLocal
			return icmpAbout(outer, 11, 0, 0, q).frame(tb)
		},
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			if err := rewrite.FULLNATInICMP(f, p, apLocal, apRS); err != nil {
				return f, err
			}
			return f, rewrite.SetMACs(f, hwRS, hwDirector)
		},
	})
	add(goldenCase{
		name: "icmp_fullnat_out_frag_needed",
		desc: "FULLNAT: the RS side reports fragmentation needed (MTU 1450) about 172.16.0.1:5001 → 172.16.0.2:8080. For the client the outer packet becomes 192.0.2.10 → 203.0.113.7 and the quote client:40000 → 192.0.2.10:80 (FULLNAT, inout=1).",
		in: func(tb testing.TB) []byte {
			outer := rsToClient()
			outer.dst = addrLocal
			return icmpAbout(outer, 3, 4, 1450, localToRS()).frame(tb)
		},
		want: func(tb testing.TB) []byte {
			outer := toClient(rsToClient())
			outer.src, outer.dst = addrVIP, addrClient
			q := localToRS()
			q.src, q.sport, q.dst, q.dport = addrClient, portClient, addrVIP, portVIP
			return icmpAbout(outer, 3, 4, 1450, q).frame(tb)
		},
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			if err := rewrite.FULLNATOutICMP(f, p, apVIP, apClient); err != nil {
				return f, err
			}
			return f, rewrite.SetMACs(f, hwClient, hwDirector)
		},
	})

	cs = append(cs, builderCases()...)
	return cs
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return fixtureError(msg)
}

type fixtureError string

func (e fixtureError) Error() string { return string(e) }

// rsUDPReply is a RS→client UDP reply whose first payload word makes the
// NAT-out checksum compute to zero. The word is solved with refSum over the
// translated datagram: with it the sum is 0xFFFF and the checksum 0.
func rsUDPReply(tb testing.TB) spec {
	s := spec{
		srcMAC: macRS, dstMAC: macDirector, src: addrRS, dst: addrClient,
		ttl: 64, id: 0x0777, proto: layers.IPProtocolUDP,
		sport: portRS, dport: portClient, payload: append([]byte{0, 0}, "reply!"...),
	}
	t := s
	t.src, t.sport = addrVIP, portVIP
	pkt := t.packet(tb)
	udp := append([]byte(nil), pkt[20:]...)
	udp[6], udp[7] = 0, 0
	sum := refSum(refPseudo(ip4(addrVIP), ip4(addrClient), 17, len(udp)), udp)
	binary.BigEndian.PutUint16(s.payload[0:2], ^sum)
	return s
}

// bigDF is a 1481-byte DF segment (1441 bytes of payload).
func bigDF() spec {
	s := clientData()
	s.payload = make([]byte, 1441)
	for i := range s.payload {
		s.payload[i] = byte(i)
	}
	return s
}

// rsFNATData is RS data toward the FULLNAT local address.
func rsFNATData() spec {
	return spec{
		srcMAC: macRS, dstMAC: macDirector, src: addrRS, dst: addrLocal,
		ttl: 64, id: 0x3a3a, df: true, proto: layers.IPProtocolTCP,
		sport: portRS, dport: portLocal, seq: 0x7a110001, ack: 0x5eed0022, flags: "PA", win: 509,
		payload: []byte("HTTP/1.0 200 OK\r\n\r\nhello"),
	}
}

// fullOptionsSYN has 36 bytes of options.
func fullOptionsSYN() spec {
	s := clientSYN()
	nops := make([]layers.TCPOption, 16)
	for i := range nops {
		nops[i] = layers.TCPOption{OptionType: layers.TCPOptionKindNop}
	}
	s.tcpOpts = withOptions(synOptions(1460), nops)
	return s
}

// oddMSSSYN is a SYN whose MSS option follows a NOP.
func oddMSSSYN(v uint16) spec {
	s := clientSYN()
	s.tcpOpts = []layers.TCPOption{
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindMSS, OptionData: mss(v)},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionData: []byte{7}},
		{OptionType: layers.TCPOptionKindSACKPermitted},
	}
	return s
}

// ICMP error fixtures.

func routerToVIP() spec {
	return spec{srcMAC: macClient, dstMAC: macDirector, src: addrRouter, dst: addrVIP, ttl: 64, id: 0x0101, proto: layers.IPProtocolICMPv4}
}

func rsToClient() spec {
	return spec{srcMAC: macRS, dstMAC: macDirector, src: addrRS, dst: addrClient, ttl: 64, id: 0x0202, proto: layers.IPProtocolICMPv4}
}

// vipReply is a reply the client side saw: VIP:80 → client.
func vipReply() spec {
	return spec{src: addrVIP, dst: addrClient, ttl: 57, id: 0x5151, df: true, proto: layers.IPProtocolTCP,
		sport: portVIP, dport: portClient, seq: 0x7a110001, ack: 0x5eed0022, flags: "A", win: 509, payload: make([]byte, 1448)}
}

// clientUDPAtRS is the client datagram as the NAT RS received it.
func clientUDPAtRS() spec {
	s := clientUDP()
	s.dst, s.dport, s.ttl = addrRS, portRS, 63
	return s
}

// localToRS is a FULLNAT packet as the RS side saw it.
func localToRS() spec {
	return spec{src: addrLocal, dst: addrRS, ttl: 63, id: 0x6161, df: true, proto: layers.IPProtocolTCP,
		sport: portLocal, dport: portRS, seq: 0x5eed0002, ack: 0x7a110001, flags: "PA", win: 502, payload: make([]byte, 1460)}
}

// icmpAbout sets outer up as an ICMP error of type/code quoting about.
func icmpAbout(outer spec, typ, code uint8, mtu uint16, about spec) icmpFixture {
	return icmpFixture{outer: outer, typ: typ, code: code, mtu: mtu, about: about}
}

type icmpFixture struct {
	outer          spec
	typ, code      uint8
	mtu            uint16
	about          spec
	keepL4Checksum *spec // quote the L4 checksum of this packet instead
}

func (f icmpFixture) frame(tb testing.TB) []byte {
	tb.Helper()
	q := f.about.quote(tb)
	if f.keepL4Checksum != nil {
		orig := f.keepL4Checksum.quote(tb)
		hl := int(q[0]&0x0f) * 4
		copy(q[hl+6:hl+8], orig[hl+6:hl+8])
	}
	s := f.outer
	s.proto = layers.IPProtocolICMPv4
	s.icmpType, s.icmpCode, s.icmpSeq = f.typ, f.code, f.mtu
	s.payload = q
	return s.frame(tb)
}

// icmpAboutKeepingL4Checksum quotes about, but with the UDP checksum of orig
// (the kernel rewrites ports in a quote without touching its L4 checksum).
func icmpAboutKeepingL4Checksum(tb testing.TB, outer spec, typ, code uint8, mtu uint16, about, orig spec) icmpFixture {
	f := icmpAbout(outer, typ, code, mtu, about)
	f.keepL4Checksum = &orig
	return f
}
