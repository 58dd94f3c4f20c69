package synproxy

import (
	"encoding/binary"
	"net/netip"

	"lvslab/rewrite"
)

const (
	flagsMask   = rewrite.TCPFlagSYN | rewrite.TCPFlagACK | rewrite.TCPFlagRST | rewrite.TCPFlagFIN
	ipv4FlagDF  = 0x4000
	serverTTL   = 64 // the fork's SYN to the real server: sysctl_ip_default_ttl
	minFrameLen = 60 // Ethernet minimum without FCS, as rewrite pads
)

// segment returns the TCP segment p describes, after checking that p
// plausibly describes frame (Parse filled it for this frame), so that a
// stale Packet cannot make a transform index out of range.
func segment(frame []byte, p *rewrite.Packet) (rewrite.TCP, error) {
	if p.EtherType != rewrite.EtherTypeIPv4 || p.Protocol != rewrite.ProtoTCP || p.L3 < rewrite.EthernetHeaderLen ||
		p.L4 < p.L3+rewrite.IPv4MinHeaderLen || p.Payload < p.L4+rewrite.TCPMinHeaderLen || p.End < p.Payload ||
		p.End > len(frame) || int(frame[p.L3]&0x0f)*4 != p.L4-p.L3 ||
		int(binary.BigEndian.Uint16(frame[p.L3+2:])) != p.End-p.L3 || int(frame[p.L4+12]>>4)*4 != p.Payload-p.L4 {
		return nil, ErrNotTCP
	}
	return rewrite.TCP(frame[p.L4:p.End]), nil
}

// checkOptions walks every option once so that a transform can refuse a
// malformed header before its first write.
func checkOptions(seg rewrite.TCP) error {
	it := seg.OptionIter()
	for {
		if _, ok := it.Next(); !ok {
			return it.Err()
		}
	}
}

// nops blanks an option (kind, length and body) with NOPs.
func nops(seg rewrite.TCP, o rewrite.TCPOption) {
	for i := o.Offset; i < o.Offset+2+len(o.Data); i++ {
		seg[i] = rewrite.TCPOptNOP
	}
}

// tuple is the client's side of the handshake: the SYN's or ACK's source
// and destination.
func tuple(frame []byte, p *rewrite.Packet, seg rewrite.TCP) Tuple {
	return Tuple{
		Client: [4]byte(frame[p.L3+12 : p.L3+16]), Virtual: [4]byte(frame[p.L3+16 : p.L3+20]),
		ClientPort: seg.SrcPort(), VirtualPort: seg.DstPort(),
	}
}

// TSClock is the timestamp clock of the SYN/ACK: milliseconds of the
// caller's monotonic clock, as Linux's tcp_time_stamp.
func TSClock(now int64) uint32 { return uint32(max(now, 0) / 1_000_000) }

// SYNACK turns a client's SYN into the director's cookie SYN/ACK in place,
// as ip_vs_synproxy_syn_rcv reuses the SYN's buffer: options are rewritten
// where they stand (syn_proxy_parse_set_opts: MSS := min(client's,
// s.MSS); window scale := s.WScale, or blanked when 0; SACK-permitted kept
// iff s.SACK; timestamps answered iff s.Timestamp, TSecr := client's TSval,
// TSval := TSClock(now); any other option blanked, since we do not speak
// it), seq := cookie, ack := client ISN + 1, flags SYN|ACK, addresses,
// ports and MACs swapped, TTL s.TTL, TOS 0, DF, IP options and any payload
// dropped, both checksums computed afresh. The returned frame (a prefix of
// frame's buffer, padded to 60 bytes) is the answer, and p describes it.
// On error frame is unchanged.
func SYNACK(frame []byte, p *rewrite.Packet, s *Settings, sec *Secret, now int64) ([]byte, error) {
	seg, err := segment(frame, p)
	if err != nil {
		return frame, err
	}
	if seg.Flags()&flagsMask != rewrite.TCPFlagSYN {
		return frame, ErrNotPureSYN
	}
	if err := checkOptions(seg); err != nil {
		return frame, err
	}
	opts := Options{MSS: min(DefaultMSS, s.MSS)}
	it := seg.OptionIter()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		switch {
		case o.Kind == rewrite.TCPOptMSS && len(o.Data) == 2:
			mss := binary.BigEndian.Uint16(o.Data)
			opts.MSS = min(mss, s.MSS)
			binary.BigEndian.PutUint16(o.Data, opts.MSS)
		case o.Kind == rewrite.TCPOptWScale && len(o.Data) == 1 && s.WScale != 0:
			opts.WScaleOK, opts.WScale = true, min(o.Data[0], MaxWScale)
			o.Data[0] = s.WScale
		case o.Kind == rewrite.TCPOptSACKPerm && len(o.Data) == 0 && s.SACK:
			opts.SACK = true
		case o.Kind == rewrite.TCPOptTimestamp && len(o.Data) == 8 && s.Timestamp:
			opts.Timestamp = true
			copy(o.Data[4:8], o.Data[0:4])
			binary.BigEndian.PutUint32(o.Data[0:4], TSClock(now))
		default:
			nops(seg, o)
		}
	}
	t := tuple(frame, p, seg)
	clientISN := seg.Seq()
	cookie := sec.Cookie(&t, clientISN, Counter(now), EncodeData(opts))

	hl := seg.HeaderLen()
	l4 := p.L3 + rewrite.IPv4MinHeaderLen
	if l4 != p.L4 {
		copy(frame[l4:], frame[p.L4:p.L4+hl]) // drop IP options
	}
	end := l4 + hl
	eth := rewrite.Ethernet(frame)
	dstMAC, srcMAC := eth.Src(), eth.Dst()
	eth.SetDst(dstMAC)
	eth.SetSrc(srcMAC)

	ip := rewrite.IPv4(frame[p.L3:l4])
	id := ip.ID()
	putIPv4(ip, uint16(end-p.L3), id, s.TTL, t.Virtual, t.Client)

	tcp := rewrite.TCP(frame[l4:end])
	tcp.SetSrcPort(t.VirtualPort)
	tcp.SetDstPort(t.ClientPort)
	binary.BigEndian.PutUint32(tcp[4:8], cookie)
	binary.BigEndian.PutUint32(tcp[8:12], clientISN+1)
	tcp[13] = rewrite.TCPFlagSYN | rewrite.TCPFlagACK
	binary.BigEndian.PutUint16(tcp[18:20], 0) // urgent pointer
	tcpChecksum(tcp, t.Virtual, t.Client)

	out := pad(frame, end)
	*p = rewrite.Packet{}
	if err := rewrite.Parse(out, p); err != nil {
		return out, err // cannot happen: the frame was just built
	}
	return out, nil
}

// putIPv4 rewrites an IPv4 header as an option-less one from src to dst.
func putIPv4(ip rewrite.IPv4, total, id uint16, ttl uint8, src, dst [4]byte) {
	ip[0] = 0x45
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:4], total)
	binary.BigEndian.PutUint16(ip[4:6], id)
	binary.BigEndian.PutUint16(ip[6:8], ipv4FlagDF)
	ip[8] = ttl
	ip[9] = rewrite.ProtoTCP
	ip.SetSrc(src)
	ip.SetDst(dst)
	ip.UpdateChecksum()
}

// tcpChecksum computes a segment's checksum from scratch.
func tcpChecksum(tcp rewrite.TCP, src, dst [4]byte) {
	tcp.SetChecksum(0)
	ph := rewrite.PseudoHeaderSum(netip.AddrFrom4(src), netip.AddrFrom4(dst), rewrite.ProtoTCP, uint16(len(tcp)))
	tcp.SetChecksum(^rewrite.OnesSum(tcp, ph))
}

// pad zero-pads frame[:n] to the Ethernet minimum when the buffer allows.
func pad(frame []byte, n int) []byte {
	if n >= minFrameLen || cap(frame) < minFrameLen {
		return frame[:n]
	}
	out := frame[:minFrameLen]
	clear(out[n:])
	return out
}

// Handshake is what a valid cookie ACK tells about a connection: everything
// the director needs to open the real server's side and translate the
// connection afterwards, recovered without any state kept for the SYN.
type Handshake struct {
	Tuple
	// ClientISN is the client's initial sequence number (the ACK's seq − 1).
	ClientISN uint32
	// ISN is ours toward the client: the cookie (the ACK's ack − 1).
	ISN uint32
	// Options are what the cookie carried.
	Options
	// TSval and TSecr are the ACK's timestamp option, when it has one: the
	// client's clock and the echo of the SYN/ACK's TSval.
	TSval, TSecr uint32
	HasTS        bool
	// Window is the ACK's window, unscaled (times 2^WScale, capped at
	// 65535): what the SYN to the real server offers.
	Window uint16
	// TOS is the ACK's DS field, kept on the SYN to the real server.
	TOS uint8
}

// CheckACK validates the client's third handshake packet against the
// cookie (ip_vs_synproxy_ack_rcv's syn_proxy_v4_cookie_check) and returns
// the handshake it proves. The frame is not changed. An ACK carrying data
// is valid too; whether a pure ACK opens the connection is the caller's
// (Settings.Defer).
func CheckACK(frame []byte, p *rewrite.Packet, sec *Secret, now int64) (Handshake, error) {
	seg, err := segment(frame, p)
	if err != nil {
		return Handshake{}, err
	}
	if seg.Flags()&flagsMask != rewrite.TCPFlagACK {
		return Handshake{}, ErrNotPureACK
	}
	h := Handshake{Tuple: tuple(frame, p, seg), ClientISN: seg.Seq() - 1, ISN: seg.Ack() - 1, TOS: frame[p.L3+1]}
	data, ok := sec.Check(&h.Tuple, h.ISN, h.ClientISN, Counter(now))
	if !ok {
		return Handshake{}, ErrCookieStale
	}
	if h.Options, ok = DecodeData(data); !ok {
		return Handshake{}, ErrBadCookie
	}
	if h.Timestamp {
		it := seg.OptionIter()
		for o, ok := it.Next(); ok; o, ok = it.Next() {
			if o.Kind == rewrite.TCPOptTimestamp && len(o.Data) == 8 {
				h.TSval, h.TSecr, h.HasTS = binary.BigEndian.Uint32(o.Data[0:4]), binary.BigEndian.Uint32(o.Data[4:8]), true
				break
			}
		}
	}
	h.Window = uint16(min(uint32(seg.Window())<<h.WScale, 0xffff))
	return h, nil
}

// ServerSYNLen is the largest frame ServerSYN builds (VLAN-tagged, every
// option).
const ServerSYNLen = rewrite.EthernetHeaderLen + rewrite.VLANTagLen + rewrite.IPv4MinHeaderLen + rewrite.TCPMinHeaderLen + 20

// ServerSYN builds the SYN that opens the real server's side of h
// (syn_proxy_send_rs_syn) into out, from the client to the VIP as the
// client's own SYN was (the caller's transmit stage then applies NAT or
// FULLNAT, as for any client packet), on the VLAN tci (0: untagged), MACs
// zero (the caller's transmit stage sets them). seq is the client's ISN,
// so the client's sequence space needs no translation; options: MSS from
// the cookie, SACK-permitted and timestamps (TSval the client's own, TSecr
// 0) when negotiated, and the client's window shift. The window is the
// client's (the fork sends a fixed 5000, marked FIXME). It returns the
// frame's length.
func ServerSYN(out []byte, h *Handshake, tci uint16) (int, error) {
	l2 := rewrite.EthernetHeaderLen
	if tci != 0 {
		l2 += rewrite.VLANTagLen
	}
	var opt [20]byte
	n := copy(opt[:], []byte{rewrite.TCPOptMSS, 4, byte(h.MSS >> 8), byte(h.MSS)})
	switch {
	case h.Timestamp:
		if h.SACK {
			n += copy(opt[n:], []byte{rewrite.TCPOptSACKPerm, 2})
		} else {
			n += copy(opt[n:], []byte{rewrite.TCPOptNOP, rewrite.TCPOptNOP})
		}
		opt[n], opt[n+1] = rewrite.TCPOptTimestamp, 10
		binary.BigEndian.PutUint32(opt[n+2:], h.TSval)
		binary.BigEndian.PutUint32(opt[n+6:], 0)
		n += 10
	case h.SACK:
		n += copy(opt[n:], []byte{rewrite.TCPOptNOP, rewrite.TCPOptNOP, rewrite.TCPOptSACKPerm, 2})
	}
	if h.WScaleOK {
		n += copy(opt[n:], []byte{rewrite.TCPOptNOP, rewrite.TCPOptWScale, 3, h.WScale})
	}
	hl := rewrite.TCPMinHeaderLen + n
	end := l2 + rewrite.IPv4MinHeaderLen + hl
	if len(out) < max(end, minFrameLen) {
		return 0, rewrite.ErrNoRoom
	}
	clear(out[:12])
	if tci != 0 {
		binary.BigEndian.PutUint16(out[12:14], rewrite.EtherTypeVLAN)
		binary.BigEndian.PutUint16(out[14:16], tci)
	}
	binary.BigEndian.PutUint16(out[l2-2:l2], rewrite.EtherTypeIPv4)
	ip := rewrite.IPv4(out[l2 : l2+rewrite.IPv4MinHeaderLen])
	putIPv4(ip, uint16(end-l2), 0, serverTTL, h.Client, h.Virtual)
	ip.SetTOS(h.TOS)
	ip.UpdateChecksum()
	tcp := rewrite.TCP(out[l2+rewrite.IPv4MinHeaderLen : end])
	tcp.SetSrcPort(h.ClientPort)
	tcp.SetDstPort(h.VirtualPort)
	binary.BigEndian.PutUint32(tcp[4:8], h.ClientISN)
	binary.BigEndian.PutUint32(tcp[8:12], 0)
	tcp[12] = byte(hl/4) << 4
	tcp[13] = rewrite.TCPFlagSYN
	binary.BigEndian.PutUint16(tcp[14:16], h.Window)
	binary.BigEndian.PutUint16(tcp[18:20], 0)
	copy(tcp[rewrite.TCPMinHeaderLen:], opt[:n])
	tcpChecksum(tcp, h.Client, h.Virtual)
	if end < minFrameLen {
		clear(out[end:minFrameLen])
		end = minFrameLen
	}
	return end, nil
}
