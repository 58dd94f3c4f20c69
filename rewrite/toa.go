package rewrite

import (
	"encoding/binary"
	"net/netip"
)

// InsertTOA adds the TOA option (kind 254, length 8, client port, client
// IPv4 address) to a TCP segment, as alibaba/LVS tcp_opt_add_toa does before
// FULLNAT hands a client's SYN or first ACK to the real server: the option
// goes right after the fixed 20-byte header, options and payload move down 8
// bytes, the data offset grows by 2 words, the IP total length by 8, and both
// checksums are recomputed from scratch. A CHECKSUM_PARTIAL frame comes out
// complete (the kernel switches it to CHECKSUM_COMPLETE), so p.Partial is
// cleared.
//
// The frame grows in place into the capacity of frame beyond its length; the
// returned slice is the new frame (it ends at the new IP end, dropping any
// Ethernet padding). When it returns an error the frame is unchanged and
// should be forwarded without the option: ErrExceedsMTU when the packet would
// exceed mtu (FULLNAT_ADD_TOA_FAIL_LEN), ErrNoOptionSpace when the TCP header
// is already longer than 52 bytes (FAIL_HEAD_FULL), ErrNoRoom when the
// buffer's capacity is short (FAIL_MEM).
func InsertTOA(frame []byte, p *Packet, client netip.AddrPort, mtu int) ([]byte, error) {
	if err := p.check(frame, true); err != nil {
		return frame, err
	}
	if p.Protocol != ProtoTCP {
		return frame, ErrWrongProtocol
	}
	if !client.Addr().Is4() {
		return frame, ErrNotIPv4Addr
	}
	ipLen := p.End - p.L3
	if ipLen > mtu-TOALen {
		return frame, ErrExceedsMTU
	}
	if TCPMaxHeaderLen-(p.Payload-p.L4) < TOALen {
		return frame, ErrNoOptionSpace
	}
	newEnd := p.End + TOALen
	if newEnd > cap(frame) || ipLen+TOALen > 0xffff {
		return frame, ErrNoRoom
	}
	buf := frame[:newEnd]
	opt := p.L4 + TCPMinHeaderLen
	copy(buf[opt+TOALen:newEnd], buf[opt:p.End])
	buf[opt] = TCPOptTOA
	buf[opt+1] = TOALen
	binary.BigEndian.PutUint16(buf[opt+2:opt+4], client.Port())
	a := client.Addr().As4()
	copy(buf[opt+4:opt+8], a[:])
	buf[p.L4+12] += (TOALen / 4) << 4 // data offset, in words, is the high nibble

	ip := buf[p.L3:p.L4]
	binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen+TOALen))
	setIPv4Checksum(ip)
	seg := buf[p.L4:newEnd]
	binary.BigEndian.PutUint16(seg[16:18], 0)
	binary.BigEndian.PutUint16(seg[16:18], l4Checksum(seg, ip[12:16], ip[16:20], ProtoTCP))

	p.End = newEnd
	p.Payload += TOALen
	p.Partial = false
	return buf, nil
}
