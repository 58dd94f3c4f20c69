package capture

import (
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Layout of a TPACKET_V2 receive ring slot (linux/if_packet.h): struct
// tpacket2_hdr, struct sockaddr_ll at TPACKET_ALIGN(sizeof hdr), the frame
// at tp_mac. Each slot has its own status word, and the kernel wakes the
// reader for each frame it fills: nothing waits for a block to fill or a
// timer to retire it, as in TPACKET_V3.
const (
	v2StatusOff   = 0
	v2LenOff      = 4
	v2SnaplenOff  = 8
	v2MacOff      = 12
	v2SecOff      = 16
	v2NsecOff     = 20
	v2VlanTCIOff  = 24
	v2VlanTPIDOff = 26
	v2HdrLen      = 32 // TPACKET_ALIGN(sizeof(struct tpacket2_hdr))

	v2SllIfindexOff = v2HdrLen + 4
	v2SllPkttypeOff = v2HdrLen + 10

	// The kernel puts an Ethernet frame at TPACKET_ALIGN(TPACKET2_HDRLEN +
	// 16) - 14 = 66 into its slot; a slot needs room for that much header.
	v2MacStart = 66

	// TP_STATUS_COPY: the frame did not fit its slot, which holds only its
	// head; the whole frame went to the socket's receive queue.
	statusCopy = 1 << 1
)

// minRXFrameSize is the smallest V2 slot: the header and a minimal frame.
const minRXFrameSize = 128

// rxCopyBufSize is the most a V2 port's copy buffers hold: a GSO
// super-frame is at most 64 KiB of IP packet plus the Ethernet header and
// a VLAN tag (the kernel's default gso_max_size; larger is truncated and
// counted).
const rxCopyBufSize = 64<<10 + 64

// rxCopyBufs is how many frames that overflowed their slot one lending
// read can hand out; the batch ends early when they are used up.
const rxCopyBufs = 8

// rxCopyQueue is the V2 socket's receive buffer, which holds the frames
// too big for a slot until they are read (the kernel truncates, with no
// copy, once it is full).
const rxCopyQueue = 4 << 20

// v2 state of an rxRing, used when the ring is TPACKET_V2.
type rxRingV2 struct {
	frameSize int
	slots     int
	// copyBufs receive, in lending reads, the frames that overflowed their
	// slot (TP_STATUS_COPY); copyUsed of them are lent in this call.
	copyBufs [][]byte
	copyUsed int
}

func (r *rxRing) slotStatus(slot int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[slot*r.v2.frameSize+v2StatusOff]))
}

// releaseV2 gives lent slots back to the kernel.
func (r *rxRing) releaseV2() {
	for ; r.held > 0; r.held-- {
		atomic.StoreUint32(r.slotStatus(r.heldFrom), statusKernel)
		r.heldFrom = (r.heldFrom + 1) % r.v2.slots
	}
}

// finishSlot moves past the current slot: back to the kernel when its
// frame was copied out, held until the next call when it was lent.
func (r *rxRing) finishSlot(lend bool) {
	if lend {
		if r.held == 0 {
			r.heldFrom = r.cur
		}
		r.held++
	} else {
		atomic.StoreUint32(r.slotStatus(r.cur), statusKernel)
	}
	r.cur = (r.cur + 1) % r.v2.slots
}

// readV2 is read for a TPACKET_V2 ring. fd is the receive socket, whose
// queue holds the frames too big for their slot.
func (r *rxRing) readV2(fd int, frames []Frame, lend bool, c *rxCounts) int {
	r.releaseV2()
	r.v2.copyUsed = 0
	n := 0
	// At most one lap per call, as read.
	for seen := 0; n < len(frames) && seen < r.v2.slots; seen++ {
		status := atomic.LoadUint32(r.slotStatus(r.cur))
		if status&statusUser == 0 {
			break
		}
		if status&statusCopy != 0 && lend && r.v2.copyUsed == len(r.v2.copyBufs) {
			// No buffer left to lend it from: the next call takes it.
			break
		}
		ok, deliver := r.fillV2(fd, &frames[n], status, lend, c)
		if !ok {
			c.errors++
		}
		r.finishSlot(lend)
		if deliver {
			n++
		}
	}
	return n
}

// fillV2 describes the frame in slot r.cur in f. ok is false for a slot
// whose header points outside it; deliver is false for a frame filtered
// out or malformed.
func (r *rxRing) fillV2(fd int, f *Frame, status uint32, lend bool, c *rxCounts) (ok, deliver bool) {
	base := r.cur * r.v2.frameSize
	h := r.mem[base : base+r.v2.frameSize : base+r.v2.frameSize]
	snap := int(ne.Uint32(h[v2SnaplenOff:]))
	wire := int(ne.Uint32(h[v2LenOff:]))
	mac := int(ne.Uint16(h[v2MacOff:]))
	if mac < v2HdrLen+sllLen || mac+snap > len(h) {
		if status&statusCopy != 0 {
			r.discardCopy(fd)
		}
		return false, false
	}
	pkttype := h[v2SllPkttypeOff]
	if pkttype == PacketOutgoing && !r.keepOutgoing {
		if status&statusCopy != 0 {
			r.discardCopy(fd)
		}
		c.outgoing++
		return true, false
	}
	data := h[mac : mac+snap : mac+snap]
	switch {
	case status&statusCopy != 0:
		// The slot holds the head; the socket queue the whole frame, in
		// the same order as the slots that say so.
		buf := f.Buf
		if lend {
			buf = r.v2.copyBufs[r.v2.copyUsed]
		}
		got, err := recvTrunc(fd, buf)
		if err != nil {
			// The kernel promised a copy it does not have: what the
			// slot holds is all there is.
			c.errors++
			if lend {
				f.Buf, f.N = data, snap
			} else {
				f.N = copy(f.Buf, data)
			}
			break
		}
		if lend {
			r.v2.copyUsed++
			f.N = min(got, len(buf))
			f.Buf = buf[:f.N:f.N]
		} else {
			f.N = min(got, len(buf))
		}
		wire = got
	case lend:
		f.Buf = data
		f.N = snap
	default:
		f.N = copy(f.Buf, data)
	}
	f.Len = wire
	if wire < f.N {
		f.Len = f.N
	}
	f.Ifindex = int(int32(ne.Uint32(h[v2SllIfindexOff:])))
	f.PktType = pkttype
	f.CsumNotReady = status&statusCsumNotReady != 0
	f.CsumValid = status&statusCsumValid != 0
	f.GSO = status&statusGSOTCP != 0
	f.VLANValid = status&statusVLANValid != 0
	f.VLANTCI, f.VLANTPID = 0, 0
	if f.VLANValid {
		f.VLANTCI = ne.Uint16(h[v2VlanTCIOff:])
		if status&statusVLANTPID != 0 {
			f.VLANTPID = ne.Uint16(h[v2VlanTPIDOff:])
		}
	}
	// TPACKET_V2 carries no flow hash.
	f.RxHash = 0
	f.TS = int64(ne.Uint32(h[v2SecOff:]))*1e9 + int64(ne.Uint32(h[v2NsecOff:]))
	f.Oversized = r.mtu > 0 && f.Len > maxFrameLen(r.mtu, f.Buf[:f.N])
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

// discardCopy drops the queued copy of a frame that is not handed on, so
// the queue stays in step with the slots.
func (r *rxRing) discardCopy(fd int) {
	_, _ = recvTrunc(fd, nil)
}

// recvTrunc receives one frame from the socket queue into buf without
// waiting, and returns its whole length (MSG_TRUNC), which may exceed
// len(buf). A raw syscall: unix.Recvfrom allocates the source address.
func recvTrunc(fd int, buf []byte) (int, error) {
	if fd < 0 {
		return 0, unix.EBADF
	}
	var p unsafe.Pointer
	if len(buf) > 0 {
		p = unsafe.Pointer(&buf[0])
	}
	n, _, errno := syscall.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(p), uintptr(len(buf)),
		unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
