package synproxy

import (
	"encoding/binary"
	"math/bits"

	"lvslab/rewrite"
)

// Conn is the translation state of one proxied connection, created from
// the Handshake when the client's ACK is accepted and completed by the real
// server's SYN/ACK (ServerSYNACK). It is a small value with no pointers;
// the engine keeps one per connection.
type Conn struct {
	// ISN is our ISN toward the client (syn_proxy_seq.init_seq).
	ISN uint32
	// ClientISN is the client's ISN, which the real server acknowledges.
	ClientISN uint32
	// Delta is ISN − the real server's ISN (syn_proxy_seq.delta): added to
	// every server sequence number, subtracted from every client ACK and
	// SACK edge.
	Delta uint32
	// TSDelta is the client-visible timestamp clock minus the real
	// server's: added to the server's TSval, subtracted from the client's
	// TSecr. Zero unless timestamps were negotiated.
	TSDelta uint32
	// TSOurs is the TSval the client echoed from our SYN/ACK.
	TSOurs uint32
	// WScaleVS is the window shift the client was offered (0: none), and
	// WScaleRS the real server's; outbound windows are rescaled from the
	// one to the other (DPVS commit 9bcd301c).
	WScaleVS, WScaleRS uint8
	// InShift scales the client's windows up for a real server that
	// declined the window scaling the client was offered (then the server
	// reads windows unscaled while the client sends them scaled).
	InShift uint8
	// Timestamps: both halves carry timestamps.
	Timestamps bool
	// Open: the real server answered; translation is in force.
	Open bool

	cshift           uint8 // the client's own window shift
	scaling          bool  // the SYN to the server offered window scaling
	lastSeq, lastAck uint32
	dupACKs          uint32
}

// NewConn starts the state of a connection whose client ACK proved h;
// offered is the window shift the SYN/ACK offered (Settings.WScale), which
// applies only if the client sent the option.
func NewConn(h *Handshake, offered uint8) Conn {
	c := Conn{ISN: h.ISN, ClientISN: h.ClientISN, Timestamps: h.Timestamp && h.HasTS, TSOurs: h.TSecr}
	if h.WScaleOK {
		c.WScaleVS, c.cshift, c.scaling = offered, h.WScale, true
	}
	return c
}

// ServerSYNACK completes the state from the real server's SYN/ACK
// (ip_vs_synproxy_synack_rcv): Delta = ISN − server ISN, the server's
// window shift and timestamp. It does not change the frame, which is not
// forwarded (the client got our SYN/ACK long ago).
func (c *Conn) ServerSYNACK(frame []byte, p *rewrite.Packet) error {
	seg, err := segment(frame, p)
	if err != nil {
		return err
	}
	if seg.Flags()&flagsMask != rewrite.TCPFlagSYN|rewrite.TCPFlagACK || seg.Ack() != c.ClientISN+1 {
		return ErrNotServerSYNACK
	}
	if err := checkOptions(seg); err != nil {
		return err
	}
	var ws uint8
	haveWS, haveTS := false, false
	var tsval uint32
	it := seg.OptionIter()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		switch {
		case o.Kind == rewrite.TCPOptWScale && len(o.Data) == 1:
			ws, haveWS = min(o.Data[0], MaxWScale), true
		case o.Kind == rewrite.TCPOptTimestamp && len(o.Data) == 8:
			tsval, haveTS = binary.BigEndian.Uint32(o.Data[0:4]), true
		}
	}
	c.Delta = c.ISN - seg.Seq()
	if !c.scaling {
		// A shift in answer to a SYN without one is void (RFC 7323 §2.2).
		ws, haveWS = 0, true
	}
	c.WScaleRS = ws
	c.InShift = 0
	if !haveWS {
		// RFC 7323: scaling is off for the server, which reads the
		// client's scaled windows as they are.
		c.InShift = c.cshift
	}
	c.Timestamps = c.Timestamps && haveTS
	if c.Timestamps {
		c.TSDelta = c.TSOurs - tsval
	}
	c.Open = true
	return nil
}

// AdjustIn translates a client→server packet of an open connection
// (ip_vs_synproxy_dnat_handler): ack −= Delta when ACK is set, every SACK
// edge −= Delta, TSecr −= TSDelta, the window scaled up by InShift. The
// TCP checksum is updated incrementally (not at all for p.Partial, whose
// field covers only the pseudo-header). Malformed options leave the frame
// unchanged.
func AdjustIn(frame []byte, p *rewrite.Packet, c *Conn) error {
	seg, err := segment(frame, p)
	if err != nil {
		return err
	}
	if err := checkOptions(seg); err != nil {
		return err
	}
	sum := seg.Checksum()
	if seg.Flags()&rewrite.TCPFlagACK != 0 {
		sum = put32(seg, 8, seg.Ack()-c.Delta, sum)
	}
	if c.InShift != 0 {
		w := uint16(min(uint32(seg.Window())<<c.InShift, 0xffff))
		sum = put16(seg, 14, w, sum)
	}
	it := seg.OptionIter()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		switch {
		case o.Kind == rewrite.TCPOptSACK && len(o.Data)%8 == 0:
			for off := o.Offset + 2; off < o.Offset+2+len(o.Data); off += 4 {
				sum = put32(seg, off, binary.BigEndian.Uint32(seg[off:])-c.Delta, sum)
			}
		case o.Kind == rewrite.TCPOptTimestamp && len(o.Data) == 8 && c.TSDelta != 0:
			off := o.Offset + 6
			sum = put32(seg, off, binary.BigEndian.Uint32(seg[off:])-c.TSDelta, sum)
		}
	}
	if !p.Partial {
		seg.SetChecksum(sum)
	}
	return nil
}

// AdjustOut translates a server→client packet of an open connection
// (ip_vs_synproxy_snat_handler): seq += Delta, TSval += TSDelta, and the
// window rescaled from the server's shift to the one the client was
// offered (capped at 65535). Checksums as in AdjustIn.
func AdjustOut(frame []byte, p *rewrite.Packet, c *Conn) error {
	seg, err := segment(frame, p)
	if err != nil {
		return err
	}
	if err := checkOptions(seg); err != nil {
		return err
	}
	sum := put32(seg, 4, seg.Seq()+c.Delta, seg.Checksum())
	if c.WScaleRS != c.WScaleVS && seg.Flags()&rewrite.TCPFlagSYN == 0 {
		w := uint32(seg.Window()) << c.WScaleRS >> c.WScaleVS
		sum = put16(seg, 14, uint16(min(w, 0xffff)), sum)
	}
	if c.TSDelta != 0 {
		it := seg.OptionIter()
		for o, ok := it.Next(); ok; o, ok = it.Next() {
			if o.Kind == rewrite.TCPOptTimestamp && len(o.Data) == 8 {
				off := o.Offset + 2
				sum = put32(seg, off, binary.BigEndian.Uint32(seg[off:])+c.TSDelta, sum)
			}
		}
	}
	if !p.Partial {
		seg.SetChecksum(sum)
	}
	return nil
}

// AckStorm is syn_proxy_is_ack_storm for a server→client packet: it
// reports whether the packet repeats the previous one's (seq, ack) for the
// threshold'th time or more, and should be dropped (SYNPROXY_ACK_STORM).
// Any other packet resets the count. threshold 0 disables the check.
func (c *Conn) AckStorm(frame []byte, p *rewrite.Packet, threshold int) bool {
	seg, err := segment(frame, p)
	if err != nil || threshold <= 0 || seg.Flags()&rewrite.TCPFlagACK == 0 {
		return false
	}
	if seg.Seq() == c.lastSeq && seg.Ack() == c.lastAck {
		if c.dupACKs >= uint32(threshold) {
			return true
		}
		c.dupACKs++
		return c.dupACKs >= uint32(threshold)
	}
	c.lastSeq, c.lastAck, c.dupACKs = seg.Seq(), seg.Ack(), 0
	return false
}

// put32 writes v at seg[off:off+4] and returns the checksum updated for
// it. A field at an odd offset straddles three checksum words; its
// contribution is that of its byte-swapped halves (RFC 1071's byte-order
// independence), so those are what the update is given.
func put32(seg rewrite.TCP, off int, v uint32, sum uint16) uint16 {
	old := binary.BigEndian.Uint32(seg[off:])
	binary.BigEndian.PutUint32(seg[off:], v)
	if off&1 == 1 {
		old, v = swapHalves(old), swapHalves(v)
	}
	return rewrite.UpdateChecksum32(sum, old, v)
}

// put16 writes v at an even offset and returns the updated checksum.
func put16(seg rewrite.TCP, off int, v uint16, sum uint16) uint16 {
	old := binary.BigEndian.Uint16(seg[off:])
	binary.BigEndian.PutUint16(seg[off:], v)
	return rewrite.UpdateChecksum16(sum, old, v)
}

func swapHalves(x uint32) uint32 {
	return uint32(bits.ReverseBytes16(uint16(x>>16)))<<16 | uint32(bits.ReverseBytes16(uint16(x)))
}

// ServerRST prepares the real server's refusal of our SYN for the client,
// as the fork does in SYN_SENT: the RST's sequence becomes ISN + 1, where
// the client's window starts, so the client accepts it and learns the
// connection failed. The checksum is updated as in AdjustIn.
func (c *Conn) ServerRST(frame []byte, p *rewrite.Packet) error {
	seg, err := segment(frame, p)
	if err != nil {
		return err
	}
	if seg.Flags()&rewrite.TCPFlagRST == 0 {
		return ErrNotServerSYNACK
	}
	sum := put32(seg, 4, c.ISN+1, seg.Checksum())
	if !p.Partial {
		seg.SetChecksum(sum)
	}
	return nil
}
