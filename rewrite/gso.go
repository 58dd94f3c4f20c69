package rewrite

import "encoding/binary"

// SegmentTCP cuts a TCP segmentation-offload super-frame — one IPv4/TCP
// packet longer than the link MTU, which veth hands over whole when the
// sender has TSO on — into packets of at most mtu bytes, as the kernel's
// tcp_gso_segment would before the wire: every segment carries the same
// Ethernet, IPv4 and TCP headers (options included), its share of the
// payload and a sequence number advanced by what came before; the IP ID
// counts up from the original's; CWR stays on the first segment only, FIN
// and PSH on the last only; total length and both checksums are computed in
// full (a CHECKSUM_PARTIAL super-frame comes out complete).
//
// For each segment, next returns a buffer of at least headroom+mtu+the L2
// header; the segment is written at buf[headroom:] and passed to emit. The
// frame is not changed. It returns the number of segments, or an error
// before emitting anything: ErrWrongProtocol for anything but TCP,
// ErrNoRoom when mtu leaves no room for payload or a buffer is short.
func SegmentTCP(frame []byte, p *Packet, mtu, headroom int, next func() []byte, emit func(seg []byte)) (int, error) {
	if err := p.check(frame, true); err != nil {
		return 0, err
	}
	if p.Protocol != ProtoTCP {
		return 0, ErrWrongProtocol
	}
	hdr := p.Payload // Ethernet + IPv4 + TCP headers
	mss := mtu - (p.Payload - p.L3)
	if mss <= 0 {
		return 0, ErrNoRoom
	}
	payload := frame[p.Payload:p.End]
	ip := frame[p.L3:p.L4]
	seq := binary.BigEndian.Uint32(frame[p.L4+4:])
	id := binary.BigEndian.Uint16(ip[4:6])
	flags := frame[p.L4+13]
	n := 0
	for off := 0; off < len(payload) || (off == 0 && len(payload) == 0); off += mss {
		chunk := payload[off:min(off+mss, len(payload))]
		buf := next()
		if len(buf) < headroom+hdr+len(chunk) {
			return n, ErrNoRoom
		}
		seg := buf[headroom : headroom+hdr+len(chunk)]
		copy(seg, frame[:hdr])
		copy(seg[hdr:], chunk)
		sip := seg[p.L3:p.L4]
		binary.BigEndian.PutUint16(sip[2:4], uint16(p.Payload-p.L3+len(chunk)))
		binary.BigEndian.PutUint16(sip[4:6], id+uint16(n))
		setIPv4Checksum(sip)
		tcp := seg[p.L4:]
		binary.BigEndian.PutUint32(tcp[4:8], seq+uint32(off))
		last := off+mss >= len(payload)
		f := flags
		if n > 0 {
			f &^= TCPFlagCWR
		}
		if !last {
			f &^= TCPFlagFIN | TCPFlagPSH
		}
		tcp[13] = f
		binary.BigEndian.PutUint16(tcp[16:18], 0)
		binary.BigEndian.PutUint16(tcp[16:18], l4Checksum(tcp, sip[12:16], sip[16:20], ProtoTCP))
		emit(seg)
		n++
		if len(payload) == 0 {
			break
		}
	}
	return n, nil
}
