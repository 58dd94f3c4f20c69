package rewrite

import "encoding/binary"

// The TCP half of FULLNAT (alibaba/LVS tcp_fnat_in_handler and
// tcp_fnat_out_handler) beyond the address translation: timestamps taken
// off the client's SYN, and the sequence remap that makes the real server
// see a fresh initial sequence number for every connection on a reused
// local address and port. Checksums are updated incrementally over the
// changed words (RFC 1624); a p.Partial frame's checksum field holds only
// the pseudo-header sum, which none of these fields are part of, so it is
// left alone.

// RemoveTimestamps overwrites the timestamp option of a SYN with NOPs
// (fullnat_timestamp_remove_entry): many clients reach a real server from
// one local address, and their unrelated timestamp clocks would make the
// server's PAWS check (and tcp_tw_recycle) drop new connections. It
// reports whether the segment had one.
func RemoveTimestamps(frame []byte, p *Packet) (bool, error) {
	if err := p.check(frame, true); err != nil {
		return false, err
	}
	if p.Protocol != ProtoTCP {
		return false, ErrWrongProtocol
	}
	seg := TCP(frame[p.L4:p.End])
	if seg.Flags()&TCPFlagSYN == 0 {
		return false, ErrNotSYN
	}
	it := seg.OptionIter()
	for {
		o, ok := it.Next()
		if !ok {
			return false, it.Err()
		}
		if o.Kind != TCPOptTimestamp {
			continue
		}
		end := o.Offset + 2 + len(o.Data)
		updateRegion(seg, o.Offset, end, p.Partial, func(b []byte) {
			for i := range b {
				b[i] = TCPOptNOP
			}
		})
		return true, nil
	}
}

// FULLNATSeqIn adds delta to the sequence number of a client's segment on
// its way to the real server (fnat_seq.delta: the remapped initial
// sequence number minus the client's). The client's acknowledgement and
// SACK blocks are in the real server's numbering, which FULLNAT keeps.
func FULLNATSeqIn(frame []byte, p *Packet, delta uint32) error {
	if err := p.check(frame, true); err != nil {
		return err
	}
	if p.Protocol != ProtoTCP {
		return ErrWrongProtocol
	}
	if delta == 0 {
		return nil
	}
	seg := TCP(frame[p.L4:p.End])
	old := seg.Seq()
	binary.BigEndian.PutUint32(seg[4:8], old+delta)
	if !p.Partial {
		seg.SetChecksum(UpdateChecksum32(seg.Checksum(), old, old+delta))
	}
	return nil
}

// FULLNATSeqOut takes delta off the acknowledgement number and every SACK
// block edge of a real server's segment on its way to the client: they
// count the client's bytes in the remapped numbering. Malformed options
// are left as they are (the kernel's tcp_fnat_out_handler stops at them
// too), after the acknowledgement is fixed.
func FULLNATSeqOut(frame []byte, p *Packet, delta uint32) error {
	if err := p.check(frame, true); err != nil {
		return err
	}
	if p.Protocol != ProtoTCP {
		return ErrWrongProtocol
	}
	if delta == 0 {
		return nil
	}
	seg := TCP(frame[p.L4:p.End])
	if seg.Flags()&TCPFlagACK != 0 {
		old := seg.Ack()
		binary.BigEndian.PutUint32(seg[8:12], old-delta)
		if !p.Partial {
			seg.SetChecksum(UpdateChecksum32(seg.Checksum(), old, old-delta))
		}
	}
	it := seg.OptionIter()
	for {
		o, ok := it.Next()
		if !ok {
			return nil
		}
		if o.Kind != TCPOptSACK || len(o.Data)%8 != 0 {
			continue
		}
		start := o.Offset + 2
		updateRegion(seg, start, start+len(o.Data), p.Partial, func(b []byte) {
			for i := 0; i+4 <= len(b); i += 4 {
				binary.BigEndian.PutUint32(b[i:i+4], binary.BigEndian.Uint32(b[i:i+4])-delta)
			}
		})
	}
}

// updateRegion runs write on seg[from:to] and updates the checksum
// incrementally over the 16-bit words the region touches (at any offset,
// odd ones included), unless partial.
func updateRegion(seg TCP, from, to int, partial bool, write func([]byte)) {
	if partial {
		write(seg[from:to])
		return
	}
	lo, hi := from&^1, (to+1)&^1
	if hi > len(seg) {
		// The region ends in the segment's last, odd byte: sum it as a
		// word padded with zero, as the checksum does.
		hi = len(seg)
	}
	before := OnesSum(seg[lo:hi], 0)
	write(seg[from:to])
	after := OnesSum(seg[lo:hi], 0)
	// HC' = ~(~HC + ~m + m') over the region's words (RFC 1624 eqn. 3).
	seg.SetChecksum(^AddSums(AddSums(^seg.Checksum(), ^before), after))
}
