package capture

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// txResult is what one WriteBatch achieved: n frames dealt with (sent or
// dropped by the kernel), and err about frames[n] if not nil.
type txResult struct {
	n, drops int
	bytes    uint64
	err      error
}

// checkTX rejects what the kernel would refuse anyway, before it can stall
// a batch: a frame without an Ethernet header or longer than the MTU allows.
func checkTX(f *Frame, mtu, slot int) error {
	if f.N < 14 || f.N > len(f.Buf) {
		return fmt.Errorf("frame of %d bytes (buffer %d): %w", f.N, len(f.Buf), unix.EINVAL)
	}
	if limit := min(maxFrameLen(mtu, f.Buf[:f.N]), slot); f.N > limit {
		return fmt.Errorf("%d bytes, at most %d: %w", f.N, limit, ErrFrameTooBig)
	}
	return nil
}

// transient reports errors after which the frame was dropped by a busy
// device (qdisc bypass gives no queue to wait in) and sending may go on.
func transient(err error) bool {
	return errors.Is(err, unix.ENOBUFS)
}

// mmsgTX sends batches with sendmmsg(2). The headers and iovecs are reused
// from call to call: no allocation per frame.
type mmsgTX struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

func newMmsgTX(batch int) *mmsgTX {
	t := &mmsgTX{hdrs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch)}
	for i := range t.hdrs {
		t.hdrs[i].Hdr.Iov = &t.iovs[i]
		t.hdrs[i].Hdr.SetIovlen(1)
	}
	return t
}

// write runs inside RawConn.Write: false means "wait until writable".
func (t *mmsgTX) write(fd int, frames []Frame, mtu int, res *txResult) bool {
	for res.n < len(frames) {
		rest := frames[res.n:]
		k := 0
		for k < len(rest) && k < len(t.hdrs) {
			f := &rest[k]
			if err := checkTX(f, mtu, f.N); err != nil {
				if k == 0 {
					res.err = err
					return true
				}
				break
			}
			t.iovs[k].Base = &f.Buf[0]
			t.iovs[k].SetLen(f.N)
			k++
		}
		sent, err := sendmmsg(fd, t.hdrs[:k])
		// Drop our references to the caller's buffers.
		for i := range k {
			t.iovs[i].Base = nil
		}
		switch {
		case err == unix.EAGAIN:
			return false
		case err != nil && transient(err):
			// The first frame was refused; count it and go on.
			res.drops++
			res.n++
			continue
		case err == unix.EMSGSIZE:
			// The MTU shrank since the port opened.
			res.err = fmt.Errorf("%w: %w", ErrFrameTooBig, err)
			return true
		case err != nil:
			res.err = err
			return true
		}
		for i := range sent {
			res.bytes += uint64(rest[i].N)
		}
		res.n += sent
	}
	return true
}

// sendmmsg is the system call, which x/sys/unix does not wrap.
func sendmmsg(fd int, hdrs []unix.Mmsghdr) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// TPACKET_V2 transmit ring layout: struct tpacket2_hdr, then the frame at
// TPACKET2_HDRLEN - sizeof(struct sockaddr_ll), which is where the kernel
// looks when tp_mac is not used.
const (
	tx2StatusOff  = 0
	tx2LenOff     = 4
	tx2DataOff    = 32
	txAvailable   = 0
	txSendRequest = 1
	txWrongFormat = 4
)

// txSlotSize is the transmit ring's slot size: the configured frame size,
// or room for the MTU, a VLAN tag and the header, rounded to 16.
func txSlotSize(cfg *Config, link Link) int {
	if cfg.FrameSize != 0 {
		return cfg.FrameSize
	}
	return max(defaultFrameSize, (tx2DataOff+link.MTU+18+15)&^15)
}

// txRing is a TPACKET_V2 transmit ring. One writer owns it.
type txRing struct {
	mem   []byte
	slot  int
	slots int
	next  int
	pfd   [1]unix.PollFd
}

func newTXRing(fd, slot, slots int) (*txRing, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION V2: %w", err)
	}
	// A malformed frame is skipped instead of stopping the ring with
	// TP_STATUS_WRONG_FORMAT.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1); err != nil {
		return nil, fmt.Errorf("PACKET_LOSS: %w", err)
	}
	// A block holds whole slots and whole pages.
	page := os.Getpagesize()
	block := slot
	for block%page != 0 {
		block += slot
	}
	perBlock := block / slot
	blocks := (slots + perBlock - 1) / perBlock
	slots = blocks * perBlock
	req := unix.TpacketReq{Block_size: uint32(block), Block_nr: uint32(blocks), Frame_size: uint32(slot), Frame_nr: uint32(slots)}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
		return nil, fmt.Errorf("PACKET_TX_RING %d×%d: %w", slots, slot, err)
	}
	mem, err := unix.Mmap(fd, 0, block*blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap transmit ring: %w", err)
	}
	return &txRing{mem: mem, slot: slot, slots: slots}, nil
}

func (r *txRing) status(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[i*r.slot+tx2StatusOff]))
}

// write runs inside RawConn.Write and returns true: it waits for free slots
// itself, with poll(2), because the netpoller cannot be trusted to wake us
// when slots the kernel could not take yet (socket buffer full, device busy)
// block the ring: packet_poll then never reports POLLOUT. stop says when to
// give up waiting (closed port, deadline).
func (r *txRing) write(fd int, frames []Frame, mtu int, res *txResult, stop func() error) bool {
	queued := 0
	kick := func() error {
		queued = 0
		// One sendto(NULL, 0) sends every slot marked SEND_REQUEST. On a
		// non-blocking socket the kernel does not wait for completions.
		err := unix.Sendto(fd, nil, 0, nil)
		if err == nil || err == unix.EAGAIN || transient(err) {
			// Slots the kernel could not take stay SEND_REQUEST and go
			// with the next kick.
			return nil
		}
		return err
	}
	for res.n < len(frames) {
		f := &frames[res.n]
		if err := checkTX(f, mtu, r.slot-tx2DataOff); err != nil {
			res.err = err
			break
		}
		st := r.status(r.next)
		switch atomic.LoadUint32(st) {
		case txAvailable:
		case txWrongFormat:
			// Not with PACKET_LOSS set; recover the slot anyway.
			atomic.StoreUint32(st, txAvailable)
		default:
			// Full: hand the kernel what is queued (or left behind), then
			// wait for our slot.
			if err := kick(); err != nil {
				res.err = err
				return true
			}
			if atomic.LoadUint32(st) != txAvailable {
				if err := stop(); err != nil {
					res.err = err
					return true
				}
				r.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
				_, _ = unix.Poll(r.pfd[:], 1)
			}
			continue
		}
		off := r.next*r.slot + tx2DataOff
		copy(r.mem[off:off+f.N], f.Buf[:f.N])
		ne.PutUint32(r.mem[r.next*r.slot+tx2LenOff:], uint32(f.N))
		atomic.StoreUint32(st, txSendRequest)
		r.next = (r.next + 1) % r.slots
		queued++
		res.n++
		res.bytes += uint64(f.N)
	}
	if queued > 0 {
		if err := kick(); err != nil && res.err == nil {
			res.err = err
		}
	}
	return true
}

func (r *txRing) close() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	if err != nil {
		return fmt.Errorf("unmap transmit ring: %w", err)
	}
	return nil
}
