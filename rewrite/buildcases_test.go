package rewrite_test

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

const macZero, macBcast = "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"

func builderCases() []goldenCase {
	var cs []goldenCase
	add := func(c goldenCase) { c.builder = true; cs = append(cs, c) }
	vip := apVIP.Addr()
	reply := rewrite.ReplyIP{Src: vip, TTL: 64, ID: 0x0bad}
	build := func(fn func(out, in []byte, p *rewrite.Packet) (int, error)) func(testing.TB, []byte, *rewrite.Packet) ([]byte, error) {
		return func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			out := make([]byte, 2048)
			n, err := fn(out, f, p)
			if err != nil {
				return f, err
			}
			return out[:n], nil
		}
	}
	arpWho := func(vlan uint16) spec { return spec{srcMAC: macClient, dstMAC: macBcast, vlan: vlan} }
	arpAns := func(vlan uint16) spec { return spec{srcMAC: macDirector, dstMAC: macClient, vlan: vlan} }

	add(goldenCase{
		name: "build_arp_reply",
		desc: "ARP: 192.0.2.254 asks who has 192.0.2.10; the director answers with its MAC, to the requester (arp_process). Padded to 60 bytes.",
		in: func(tb testing.TB) []byte {
			return arpFrame(tb, arpWho(0), 1, macClient, "192.0.2.254", macZero, addrVIP)
		},
		want: func(tb testing.TB) []byte {
			return arpFrame(tb, arpAns(0), 2, macDirector, addrVIP, macClient, "192.0.2.254")
		},
		run: build(func(out, in []byte, p *rewrite.Packet) (int, error) {
			return rewrite.BuildARPReply(out, in, p, hwDirector)
		}),
	})
	add(goldenCase{
		name: "build_arp_reply_vlan",
		desc: "ARP reply on VLAN 42: the answer keeps the request's 802.1Q tag.",
		in: func(tb testing.TB) []byte {
			return arpFrame(tb, arpWho(42), 1, macClient, "192.0.2.254", macZero, addrVIP)
		},
		want: func(tb testing.TB) []byte {
			return arpFrame(tb, arpAns(42), 2, macDirector, addrVIP, macClient, "192.0.2.254")
		},
		run: build(func(out, in []byte, p *rewrite.Packet) (int, error) {
			return rewrite.BuildARPReply(out, in, p, hwDirector)
		}),
	})
	add(goldenCase{
		name: "build_arp_request",
		desc: "ARP request from 172.16.0.1 for 172.16.0.2 (resolving a real server's MAC for DR): broadcast, target hardware address zero (arp_send).",
		in:   nil,
		want: func(tb testing.TB) []byte {
			return arpFrame(tb, spec{srcMAC: macDirector, dstMAC: macBcast}, 1, macDirector, addrLocal, macZero, addrRS)
		},
		run: build(func(out, _ []byte, _ *rewrite.Packet) (int, error) {
			return rewrite.BuildARPRequest(out, hwDirector, apLocal.Addr(), apRS.Addr(), 0)
		}),
	})
	add(goldenCase{
		name: "build_gratuitous_arp",
		desc: "Gratuitous ARP for VIP 192.0.2.10 as keepalived sends it on becoming master: broadcast request, sender and target IP the VIP, target MAC ff:ff:ff:ff:ff:ff.",
		in:   nil,
		want: func(tb testing.TB) []byte {
			return arpFrame(tb, spec{srcMAC: macDirector, dstMAC: macBcast}, 1, macDirector, addrVIP, macBcast, addrVIP)
		},
		run: build(func(out, _ []byte, _ *rewrite.Packet) (int, error) {
			return rewrite.BuildGratuitousARP(out, hwDirector, vip, 0)
		}),
	})
	add(goldenCase{
		name: "echo_reply",
		desc: "ICMP echo request to the VIP answered in place: MACs and addresses swapped, type 8→0, TTL set to 64, ID and payload kept, ICMP checksum updated incrementally.",
		in:   func(tb testing.TB) []byte { return echo(8, 51).frame(tb) },
		want: func(tb testing.TB) []byte {
			s := echo(0, 64)
			s.srcMAC, s.dstMAC, s.src, s.dst = macDirector, macClient, addrVIP, addrClient
			return s.frame(tb)
		},
		run: func(tb testing.TB, f []byte, p *rewrite.Packet) ([]byte, error) {
			return f, rewrite.EchoReply(f, p, 64)
		},
	})
	add(goldenCase{
		name: "build_port_unreachable",
		desc: "UDP to 192.0.2.10:9999 where no service listens: ICMP port unreachable from the VIP, TOS 0xc0, no DF, quoting the IP header and first 8 bytes (RFC 792).",
		in:   func(tb testing.TB) []byte { return udpTo9999().frame(tb) },
		want: func(tb testing.TB) []byte {
			return icmpAbout(icmpFrom(addrVIP, 0xc0), 3, 3, 0, udpTo9999()).frame(tb)
		},
		run: build(func(out, in []byte, p *rewrite.Packet) (int, error) {
			return rewrite.BuildPortUnreachable(out, in, p, reply)
		}),
	})
	add(goldenCase{
		name: "build_frag_needed",
		desc: "ICMP fragmentation needed with next-hop MTU 1480 for the 1481-byte DF segment a tunnel could not carry (RFC 1191: MTU in the low 16 bits of the second word).",
		in:   func(tb testing.TB) []byte { return bigDF().frame(tb) },
		want: func(tb testing.TB) []byte {
			return icmpAbout(icmpFrom(addrVIP, 0xc0), 3, 4, 1480, bigDF()).frame(tb)
		},
		run: build(func(out, in []byte, p *rewrite.Packet) (int, error) {
			return rewrite.BuildFragNeeded(out, in, p, 1480, reply)
		}),
	})
	add(goldenCase{
		name: "build_time_exceeded",
		desc: "ICMP time exceeded from the director's client-side address 192.0.2.1 for a SYN that arrived with TTL 1 and TOS 0x10: outer TOS 0xd0 (precedence 6 plus the TOS bits, as icmp_send).",
		in: func(tb testing.TB) []byte {
			s := clientSYN()
			s.ttl, s.tos = 1, 0x10
			return s.frame(tb)
		},
		want: func(tb testing.TB) []byte {
			s := clientSYN()
			s.ttl, s.tos = 1, 0x10
			return icmpAbout(icmpFrom(addrDirOut, 0xd0), 11, 0, 0, s).frame(tb)
		},
		run: build(func(out, in []byte, p *rewrite.Packet) (int, error) {
			r := reply
			r.Src = netip.MustParseAddr(addrDirOut)
			return rewrite.BuildTimeExceeded(out, in, p, r)
		}),
	})
	add(goldenCase{
		name: "build_icmp_about_icmp_error_refused",
		desc: "No ICMP error about an ICMP error (RFC 1122 3.2.2): nothing is built.",
		in: func(tb testing.TB) []byte {
			return icmpAbout(routerToVIP(), 3, 4, 1400, vipReply()).frame(tb)
		},
		want: func(tb testing.TB) []byte {
			return icmpAbout(routerToVIP(), 3, 4, 1400, vipReply()).frame(tb)
		},
		verdict: rewrite.ErrAboutICMPError,
		run: build(func(out, in []byte, p *rewrite.Packet) (int, error) {
			return rewrite.BuildPortUnreachable(out, in, p, reply)
		}),
	})
	add(goldenCase{
		name: "build_rst_for_syn",
		desc: "RST for a SYN to a closed port (no ACK in the segment): RST|ACK with seq 0 and ack = seq + 1 for the SYN (RFC 793, tcp_v4_send_reset); DF, ID 0, TTL 64, window 0.",
		in:   func(tb testing.TB) []byte { s := clientSYN(); s.dport = 81; return s.frame(tb) },
		want: func(tb testing.TB) []byte {
			s := rstTo()
			s.sport, s.ack, s.flags = 81, clientSYN().seq+1, "RA"
			return s.frame(tb)
		},
		run: build(func(out, in []byte, p *rewrite.Packet) (int, error) {
			return rewrite.BuildTCPReset(out, in, p, 64)
		}),
	})
	add(goldenCase{
		name: "build_rst_for_ack",
		desc: "RST for a data segment with ACK: seq = the segment's ack, flags RST only.",
		in:   func(tb testing.TB) []byte { return clientData().frame(tb) },
		want: func(tb testing.TB) []byte {
			s := rstTo()
			s.seq, s.flags = clientData().ack, "R"
			return s.frame(tb)
		},
		run: build(func(out, in []byte, p *rewrite.Packet) (int, error) {
			return rewrite.BuildTCPReset(out, in, p, 64)
		}),
	})
	add(goldenCase{
		name: "build_rst_for_fin_data",
		desc: "RST for a FIN carrying 33 bytes without ACK: ack = seq + 33 + 1 for the FIN.",
		in: func(tb testing.TB) []byte {
			s := clientData()
			s.flags, s.ack = "F", 0
			return s.frame(tb)
		},
		want: func(tb testing.TB) []byte {
			s := rstTo()
			s.ack, s.flags = clientData().seq+uint32(len(clientData().payload))+1, "RA"
			return s.frame(tb)
		},
		run: build(func(out, in []byte, p *rewrite.Packet) (int, error) {
			return rewrite.BuildTCPReset(out, in, p, 64)
		}),
	})
	add(goldenCase{
		name:    "build_rst_for_rst_refused",
		desc:    "A RST is never answered with a RST.",
		in:      func(tb testing.TB) []byte { s := clientData(); s.flags = "RA"; s.payload = nil; return s.frame(tb) },
		want:    func(tb testing.TB) []byte { s := clientData(); s.flags = "RA"; s.payload = nil; return s.frame(tb) },
		verdict: rewrite.ErrIsReset,
		run: build(func(out, in []byte, p *rewrite.Packet) (int, error) {
			return rewrite.BuildTCPReset(out, in, p, 64)
		}),
	})
	return cs
}

func echo(typ, ttl uint8) spec {
	payload := make([]byte, 56)
	for i := range payload {
		payload[i] = byte(0x10 + i)
	}
	return spec{
		srcMAC: macClient, dstMAC: macDirector, src: addrClient, dst: addrVIP, ttl: ttl, id: 0x3333, df: true,
		proto: layers.IPProtocolICMPv4, icmpType: typ, icmpID: 0x77, icmpSeq: 1, payload: payload,
	}
}

func udpTo9999() spec { s := clientUDP(); s.dport = 9999; return s }

func icmpFrom(src string, tos uint8) spec {
	return spec{srcMAC: macDirector, dstMAC: macClient, src: src, dst: addrClient, ttl: 64, tos: tos, id: 0x0bad}
}

// rstTo is the common part of a RST from the VIP back to the client.
func rstTo() spec {
	return spec{
		srcMAC: macDirector, dstMAC: macClient, src: addrVIP, dst: addrClient, ttl: 64, id: 0, df: true,
		proto: layers.IPProtocolTCP, sport: portVIP, dport: portClient,
	}
}
