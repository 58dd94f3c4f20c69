package capture

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// Layout of a TPACKET_V3 receive ring (linux/if_packet.h). The ring is a
// sequence of blocks; the kernel fills a block with packets and hands it to
// us by setting TP_STATUS_USER in its descriptor; we give it back by writing
// TP_STATUS_KERNEL.
const (
	// struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1.
	blkStatusOff   = 8
	blkNumPktsOff  = 12
	blkFirstPktOff = 16
	blkLenOff      = 20
	blkHdrLen      = 48

	// struct tpacket3_hdr.
	pktNextOff    = 0
	pktSecOff     = 4
	pktNsecOff    = 8
	pktSnaplenOff = 12
	pktLenOff     = 16
	pktStatusOff  = 20
	pktMacOff     = 24
	pktRxhashOff  = 28
	pktVlanTCIOff = 32
	pktVlanTPOff  = 36
	pktHdrLen     = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr))

	// struct sockaddr_ll follows the header.
	sllIfindexOff = pktHdrLen + 4
	sllPkttypeOff = pktHdrLen + 10
	sllLen        = 20

	statusKernel       = 0
	statusUser         = 1 << 0
	statusCsumNotReady = 1 << 3
	statusVLANValid    = 1 << 4
	statusVLANTPID     = 1 << 6
	statusCsumValid    = 1 << 7
	statusGSOTCP       = 1 << 8
)

var ne = binary.NativeEndian

// rxRing walks a TPACKET_V3 ring, or a TPACKET_V2 one (rxring2.go). It is not safe for concurrent use: one
// reader owns it (the port serialises ReadBatch calls).
type rxRing struct {
	mem       []byte
	blockSize int
	blocks    int
	mtu       int
	// keepOutgoing hands on PACKET_OUTGOING frames instead of dropping them.
	keepOutgoing bool

	cur     int // block being read
	open    bool
	pktLeft int // packets of cur not yet read
	pktOff  int // offset in mem of the next packet header
	// Blocks (slots, in V2) fully read but lent to the caller (zero-copy):
	// released on the next call, starting at heldFrom.
	held, heldFrom int

	// isV2 selects the TPACKET_V2 walker (cur then counts slots), once
	// per call.
	isV2 bool
	v2   rxRingV2
}

// rxCounts are what one read call adds to the port's counters.
type rxCounts struct {
	packets, bytes, oversized, truncated, outgoing, errors uint64
}

func (r *rxRing) status(block int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[block*r.blockSize+blkStatusOff]))
}

// release gives lent blocks back to the kernel.
func (r *rxRing) release() {
	for ; r.held > 0; r.held-- {
		atomic.StoreUint32(r.status(r.heldFrom), statusKernel)
		r.heldFrom = (r.heldFrom + 1) % r.blocks
	}
}

// finishBlock moves past the current block: back to the kernel at once when
// frames were copied out of it, held until the next call when they were lent.
// Every block finished in a lending call is held, so the held blocks are
// always the contiguous run before cur.
func (r *rxRing) finishBlock(lend bool) {
	if lend {
		if r.held == 0 {
			r.heldFrom = r.cur
		}
		r.held++
	} else {
		atomic.StoreUint32(r.status(r.cur), statusKernel)
	}
	r.open = false
	r.cur = (r.cur + 1) % r.blocks
}

// read fills frames from ready blocks without waiting. With lend, Buf points
// into the ring; otherwise frames are copied into the caller's Buf.
func (r *rxRing) read(frames []Frame, lend bool, c *rxCounts) int {
	r.release()
	n := 0
	// At most one lap per call: blocks held for lending still read as ours,
	// and a stream of filtered frames must not keep us here.
	opened := 0
	if r.open {
		opened = 1
	}
	for n < len(frames) {
		if !r.open {
			base := r.cur * r.blockSize
			if opened == r.blocks || atomic.LoadUint32(r.status(r.cur))&statusUser == 0 {
				break
			}
			opened++
			num := int(ne.Uint32(r.mem[base+blkNumPktsOff:]))
			first := int(ne.Uint32(r.mem[base+blkFirstPktOff:]))
			if num == 0 || first < blkHdrLen || first+pktHdrLen+sllLen > r.blockSize {
				if num != 0 {
					c.errors++
				}
				r.finishBlock(lend)
				continue
			}
			r.open, r.pktLeft, r.pktOff = true, num, base+first
		}
		blockEnd := r.cur*r.blockSize + r.blockSize
		ok, deliver := r.fill(&frames[n], blockEnd, lend, c)
		if !ok {
			// A malformed entry: the rest of the block cannot be trusted.
			c.errors++
			r.finishBlock(lend)
			continue
		}
		r.pktLeft--
		next := int(ne.Uint32(r.mem[r.pktOff+pktNextOff:]))
		switch {
		case r.pktLeft == 0:
			r.finishBlock(lend)
		case next < pktHdrLen || r.pktOff+next+pktHdrLen+sllLen > blockEnd:
			c.errors++
			r.finishBlock(lend)
		default:
			r.pktOff += next
		}
		if deliver {
			n++
		}
	}
	return n
}

// fill describes the packet at r.pktOff in f. ok is false for an entry that
// does not fit its block; deliver is false for a frame filtered out.
func (r *rxRing) fill(f *Frame, blockEnd int, lend bool, c *rxCounts) (ok, deliver bool) {
	h := r.mem[r.pktOff : r.pktOff+pktHdrLen+sllLen]
	snap := int(ne.Uint32(h[pktSnaplenOff:]))
	wire := int(ne.Uint32(h[pktLenOff:]))
	mac := int(ne.Uint16(h[pktMacOff:]))
	start := r.pktOff + mac
	if mac < pktHdrLen+sllLen || start+snap > blockEnd {
		return false, false
	}
	pkttype := h[sllPkttypeOff]
	if pkttype == PacketOutgoing && !r.keepOutgoing {
		c.outgoing++
		return true, false
	}
	data := r.mem[start : start+snap : start+snap]
	if lend {
		f.Buf = data
		f.N = snap
	} else {
		f.N = copy(f.Buf, data)
	}
	f.Len = wire
	if wire < f.N {
		// Never claim fewer bytes on the wire than we hold.
		f.Len = f.N
	}
	status := ne.Uint32(h[pktStatusOff:])
	f.Ifindex = int(int32(ne.Uint32(h[sllIfindexOff:])))
	f.PktType = pkttype
	f.CsumNotReady = status&statusCsumNotReady != 0
	f.CsumValid = status&statusCsumValid != 0
	f.GSO = status&statusGSOTCP != 0
	f.VLANValid = status&statusVLANValid != 0
	f.VLANTCI, f.VLANTPID = 0, 0
	if f.VLANValid {
		f.VLANTCI = uint16(ne.Uint32(h[pktVlanTCIOff:]))
		if status&statusVLANTPID != 0 {
			f.VLANTPID = ne.Uint16(h[pktVlanTPOff:])
		}
	}
	f.RxHash = ne.Uint32(h[pktRxhashOff:])
	f.TS = int64(ne.Uint32(h[pktSecOff:]))*1e9 + int64(ne.Uint32(h[pktNsecOff:]))
	f.Oversized = r.mtu > 0 && f.Len > maxFrameLen(r.mtu, data)
	if f.Oversized {
		c.oversized++
	}
	if f.Len > f.N {
		c.truncated++
	}
	c.packets++
	c.bytes += uint64(f.N)
	return true, true
}
