package rewrite

import (
	"encoding/binary"
	"math/bits"
)

// ClampMSS lowers the MSS option of a SYN or SYN-ACK to limit when it is
// larger (what iptables TCPMSS --set-mss does; a segment without the option
// is left alone rather than given one). It reports whether it changed the
// segment. The checksum is updated incrementally, or not at all for a
// p.Partial frame, whose checksum does not cover options yet.
func ClampMSS(frame []byte, p *Packet, limit uint16) (bool, error) {
	return rewriteMSS(frame, p, TCPFlagSYN, limit, 0)
}

// ReduceMSSForTOA lowers the MSS option of a real server's SYN-ACK by
// TOALen, so that the client's segments leave room for the TOA option the
// director adds toward the server (alibaba/LVS tcp_opt_adjust_mss, called by
// tcp_fnat_out_handler for SYN+ACK). An MSS of TOALen or less is left alone
// rather than wrapped around as the original does.
func ReduceMSSForTOA(frame []byte, p *Packet) (bool, error) {
	return rewriteMSS(frame, p, TCPFlagSYN|TCPFlagACK, 0, TOALen)
}

// rewriteMSS finds the first well-formed MSS option of a segment carrying all
// of the flags in need and sets it to min(mss, limit) when limit != 0, or to
// mss-reduce when reduce != 0.
func rewriteMSS(frame []byte, p *Packet, need uint8, limit, reduce uint16) (bool, error) {
	if err := p.check(frame, true); err != nil {
		return false, err
	}
	if p.Protocol != ProtoTCP {
		return false, ErrWrongProtocol
	}
	seg := TCP(frame[p.L4:p.End])
	if seg.Flags()&need != need {
		return false, ErrNotSYN
	}
	it := seg.OptionIter()
	for {
		o, ok := it.Next()
		if !ok {
			return false, it.Err()
		}
		if o.Kind != TCPOptMSS || len(o.Data) != tcpOptMSSLen-2 {
			continue
		}
		old := binary.BigEndian.Uint16(o.Data)
		new := old
		switch {
		case limit != 0 && old > limit:
			new = limit
		case reduce != 0 && old > reduce:
			new = old - reduce
		}
		if new == old {
			return false, nil
		}
		binary.BigEndian.PutUint16(o.Data, new)
		if !p.Partial {
			// The value sits at Offset+2 from the header start; at an odd
			// offset it straddles two checksum words, so swap its bytes.
			o16, n16 := old, new
			if (o.Offset+2)&1 == 1 {
				o16, n16 = bits.ReverseBytes16(old), bits.ReverseBytes16(new)
			}
			binary.BigEndian.PutUint16(seg[16:18], UpdateChecksum16(seg.Checksum(), o16, n16))
		}
		return true, nil
	}
}
