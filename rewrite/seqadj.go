package rewrite

import "encoding/binary"

// SeqAdjust is one direction's sequence-number offset after an application
// helper changed the length of that direction's data: the kernel's struct
// ip_vs_seq and the vs_fix_seq / vs_fix_ack_seq / vs_seq_update rules of
// ip_vs_app.c. Segments that start after InitSeq (the sequence number of the
// last resized segment) move by Delta; earlier ones, retransmissions of
// what came before the resize, by PreviousDelta. Acknowledgments of that
// data, travelling the other way, move back by the same amounts.
type SeqAdjust struct {
	InitSeq       uint32
	Delta         int32
	PreviousDelta int32
	// Set is the kernel's IP_VS_CONN_F_IN_SEQ / OUT_SEQ flag: InitSeq is
	// meaningful.
	Set bool
}

// Active reports whether the adjustment moves anything.
func (s *SeqAdjust) Active() bool { return s.Delta != 0 || s.PreviousDelta != 0 }

// Seq maps a sequence number of the resized direction (vs_fix_seq).
func (s *SeqAdjust) Seq(seq uint32) uint32 {
	if seqAfter(seq, s.InitSeq) {
		return seq + uint32(s.Delta)
	}
	return seq + uint32(s.PreviousDelta)
}

// Ack maps an acknowledgment (or a SACK edge) of the resized direction's
// data back to what its sender counted. An acknowledgement after the start
// of the resized segment, as its receiver numbers it (InitSeq +
// PreviousDelta), moves by Delta, as netfilter's nf_ct_seq_adjust compares
// it. The kernel's vs_fix_ack_seq compares with InitSeq+Delta instead,
// which for a segment that shrank takes an acknowledgement of exactly its
// start (a duplicate ACK sent before it arrived) for one of its first
// bytes: the sender would never resend them if the segment were lost.
func (s *SeqAdjust) Ack(ack uint32) uint32 {
	if seqAfter(ack-uint32(s.PreviousDelta), s.InitSeq) {
		return ack - uint32(s.Delta)
	}
	return ack - uint32(s.PreviousDelta)
}

// Update records that the segment starting at seq (as its sender numbered
// it) changed length by diff (vs_seq_update). A retransmission of an
// earlier segment resized again does not move the offsets twice.
func (s *SeqAdjust) Update(seq uint32, diff int) {
	if !s.Set || seqAfter(seq, s.InitSeq) {
		s.PreviousDelta = s.Delta
		s.Delta += int32(diff)
		s.InitSeq = seq
		s.Set = true
	}
}

// seqAfter is the kernel's after(a, b): a comes later than b in sequence
// space.
func seqAfter(a, b uint32) bool { return int32(b-a) < 0 }

// AdjustSeqAck applies a connection's offsets to a TCP segment: seq is the
// offset of this segment's own direction (its sequence number moves), ack
// the offset of the other direction (its acknowledgment number and the
// edges of its SACK blocks move back). Either may be nil. The TCP checksum
// is updated incrementally (a CHECKSUM_PARTIAL field is left alone: it sums
// only the pseudo-header). The kernel's ip_vs_app leaves SACK blocks as they
// are; netfilter's seqadj, which current kernels use for FTP, moves them, and
// so does this: a SACK edge left in the wrong space makes the peer discard
// data it then waits for. Malformed options are left unchanged.
func AdjustSeqAck(frame []byte, p *Packet, seq, ack *SeqAdjust) error {
	if err := p.check(frame, true); err != nil {
		return err
	}
	if p.Protocol != ProtoTCP {
		return ErrWrongProtocol
	}
	if (seq == nil || !seq.Active()) && (ack == nil || !ack.Active()) {
		return nil
	}
	t := TCP(frame[p.L4:p.Payload])
	sum := t.Checksum()
	if seq != nil && seq.Active() {
		old := t.Seq()
		v := seq.Seq(old)
		binary.BigEndian.PutUint32(t[4:8], v)
		sum = UpdateChecksum32(sum, old, v)
	}
	if ack != nil && ack.Active() {
		if t.Flags()&TCPFlagACK != 0 {
			old := t.Ack()
			v := ack.Ack(old)
			binary.BigEndian.PutUint32(t[8:12], v)
			sum = UpdateChecksum32(sum, old, v)
		}
		it := t.OptionIter()
		for o, ok := it.Next(); ok; o, ok = it.Next() {
			if o.Kind != TCPOptSACK || len(o.Data)%8 != 0 {
				continue
			}
			edges := t[o.Offset+2 : o.Offset+2+len(o.Data)]
			// An option starts at any offset: an edge at an odd one
			// straddles words, which UpdateChecksum32 takes byte-swapped
			// by summing the two halves at their own alignment.
			for e := 0; e+4 <= len(edges); e += 4 {
				old := binary.BigEndian.Uint32(edges[e:])
				v := ack.Ack(old)
				binary.BigEndian.PutUint32(edges[e:], v)
				sum = updateChecksumAt(sum, old, v, o.Offset+2+e)
			}
		}
	}
	if !p.Partial {
		t.SetChecksum(sum)
	}
	return nil
}

// updateChecksumAt is UpdateChecksum32 for a 32-bit field at offset off
// (odd offsets byte-swap the words it contributes).
func updateChecksumAt(sum uint16, old, new uint32, off int) uint16 {
	if off&1 == 0 {
		return UpdateChecksum32(sum, old, new)
	}
	// At an odd offset the field's bytes b0 b1 b2 b3 sit in words
	// (x b0) (b1 b2) (b3 y): the sum of its contribution is the byte-swapped
	// sum of (b0 b1) (b2 b3), which is the same value rotated by 8 bits.
	rot := func(v uint32) uint32 { return v<<8 | v>>24 }
	o, n := rot(old), rot(new)
	return ^fold32(uint32(^sum) + uint32(^uint16(o>>16)) + uint32(^uint16(o)) + uint32(uint16(n>>16)) + uint32(uint16(n)))
}
