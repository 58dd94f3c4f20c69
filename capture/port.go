// Package capture moves Ethernet frames between the director and the wire:
// an AF_PACKET port (TPACKET_V3 or V2 receive ring, batched transmit, fanout,
// qdisc bypass, ignore-outgoing), an in-memory pipe for tests, and pcap
// replay and recording. It knows nothing of IPVS: a frame is bytes plus the
// metadata the kernel reports with it.
//
// I/O is batched, wireguard-go style: one ReadBatch or WriteBatch call moves
// many frames, the buffers belong to the caller, and nothing is allocated per
// frame.
package capture

import (
	"errors"
	"time"
)

// Frame is one Ethernet frame and what the kernel said about it.
type Frame struct {
	// Buf holds the frame. For ReadBatch the caller owns it and its length is
	// the room offered; after the read Buf[:N] is the frame. For WriteBatch
	// Buf[:N] is sent. ReadBatchZeroCopy replaces Buf with a slice of the
	// receive ring.
	Buf []byte
	// N is the number of valid bytes in Buf.
	N int
	// Len is the frame's length on the wire. Len > N means the frame was
	// truncated (snap length or a short buffer): never forward it as whole.
	Len int
	// Ifindex is the interface the frame arrived on.
	Ifindex int
	// PktType is sll_pkttype: PacketHost, PacketBroadcast, PacketMulticast,
	// PacketOtherHost or PacketOutgoing.
	PktType uint8
	// CsumNotReady is TP_STATUS_CSUMNOTREADY: the frame is CHECKSUM_PARTIAL,
	// its L4 checksum field holds only the pseudo-header sum. Whoever sends it
	// on must complete the checksum.
	CsumNotReady bool
	// CsumValid is TP_STATUS_CSUM_VALID: the kernel (or the NIC) verified the
	// L4 checksum.
	CsumValid bool
	// GSO is TP_STATUS_GSO_TCP: the frame is a TCP segmentation-offload
	// super-frame, which the kernel would cut into MTU-sized segments.
	GSO bool
	// Oversized reports a frame longer on the wire than the interface MTU
	// allows (a GSO/GRO/LRO aggregate): it cannot be sent as it is.
	Oversized bool
	// VLANValid says VLANTCI (and VLANTPID, if non-zero) hold a tag the
	// kernel took out of the frame (VLAN acceleration): Buf has no tag.
	VLANValid bool
	VLANTCI   uint16
	VLANTPID  uint16
	// RxHash is the kernel's flow hash (the one hash fanout uses), 0 if none.
	RxHash uint32
	// TS is the receive time in nanoseconds since the Unix epoch.
	TS int64
}

// Data returns the valid bytes, Buf[:N].
func (f *Frame) Data() []byte { return f.Buf[:f.N] }

// Truncated reports whether bytes of the frame are missing from Buf.
func (f *Frame) Truncated() bool { return f.Len > f.N }

// Packet types (sll_pkttype), as the kernel numbers them.
const (
	PacketHost      = 0 // to us
	PacketBroadcast = 1
	PacketMulticast = 2
	PacketOtherHost = 3 // to someone else, seen because the link delivers it
	PacketOutgoing  = 4 // sent from this host (by us or by the kernel)
)

// Port is a source and sink of frames, used once per batch.
type Port interface {
	// ReadBatch waits until at least one frame is available, then fills
	// frames[:n] with as many as are ready, without waiting again. Each
	// frame is copied into frames[i].Buf.
	ReadBatch(frames []Frame) (n int, err error)
	// WriteBatch sends frames[i].Buf[:N] in order. frames[:n] were handed
	// on (a busy link may still drop some, counted in Stats.TxDrops); if
	// err is not nil it is about frames[n] (ErrFrameTooBig, say) or about
	// the port as a whole (closed, link down).
	WriteBatch(frames []Frame) (n int, err error)
	// SetReadDeadline makes a waiting or future ReadBatch return an error
	// wrapping os.ErrDeadlineExceeded at t; the zero time waits forever.
	SetReadDeadline(t time.Time) error
	// Stats returns the counters since the port was opened.
	Stats() Stats
	// Close releases the port. A ReadBatch or WriteBatch waiting on another
	// goroutine returns an error wrapping net.ErrClosed.
	Close() error
}

// ZeroCopyReader is implemented by ports that can lend frames from their
// receive ring instead of copying them.
type ZeroCopyReader interface {
	// ReadBatchZeroCopy is ReadBatch with frames[i].Buf pointing into the
	// ring. The slices stay valid until the next ReadBatch,
	// ReadBatchZeroCopy or Close; their capacity is their length, so a
	// rewrite that grows a frame must copy it first.
	ReadBatchZeroCopy(frames []Frame) (n int, err error)
}

// Stats are a port's counters. Kernel figures (Drops, Freezes, Kernel) are
// collected when Stats is called.
type Stats struct {
	RxPackets uint64 // frames handed to the caller
	RxBytes   uint64 // bytes handed to the caller (N, not Len)
	Kernel    uint64 // frames the kernel offered the socket, dropped ones included
	Drops     uint64 // frames the kernel dropped: ring full (tp_drops)
	Freezes   uint64 // times the receive ring was full (tp_freeze_q_cnt)
	Oversized uint64 // frames longer than the MTU allows (aggregates)
	Truncated uint64 // frames handed on with Len > N
	Outgoing  uint64 // outgoing frames filtered out in userspace
	TxPackets uint64 // frames accepted by the kernel (or the peer)
	TxBytes   uint64
	TxDrops   uint64 // frames the kernel or the peer refused for lack of room
	Errors    uint64 // malformed ring entries and failed system calls
}

// Add returns the sum of two sets of counters (for ports of one fanout group).
func (s Stats) Add(o Stats) Stats {
	return Stats{
		RxPackets: s.RxPackets + o.RxPackets,
		RxBytes:   s.RxBytes + o.RxBytes,
		Kernel:    s.Kernel + o.Kernel,
		Drops:     s.Drops + o.Drops,
		Freezes:   s.Freezes + o.Freezes,
		Oversized: s.Oversized + o.Oversized,
		Truncated: s.Truncated + o.Truncated,
		Outgoing:  s.Outgoing + o.Outgoing,
		TxPackets: s.TxPackets + o.TxPackets,
		TxBytes:   s.TxBytes + o.TxBytes,
		TxDrops:   s.TxDrops + o.TxDrops,
		Errors:    s.Errors + o.Errors,
	}
}

// ErrFrameTooBig is returned by WriteBatch for a frame the port cannot send
// in one piece (longer than its transmit slot or the link's MTU).
var ErrFrameTooBig = errors.New("frame too big to send")

// maxFrameLen is the longest frame an interface with this MTU sends or
// receives without aggregation: MTU plus the Ethernet header, plus a VLAN tag
// when the frame carries one inline.
func maxFrameLen(mtu int, frame []byte) int {
	n := mtu + 14
	if len(frame) >= 14 {
		if et := uint16(frame[12])<<8 | uint16(frame[13]); et == 0x8100 || et == 0x88a8 {
			n += 4
		}
	}
	return n
}
