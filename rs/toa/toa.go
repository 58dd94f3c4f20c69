// Package toa is a TOA reader for FULLNAT real servers: what the fork's
// toa.ko does inside the kernel (it keeps the TCP option address of a new
// connection's first packets and answers getpeername() with it), done from
// userspace for a machine without the module. A packet socket watches the
// TCP segments that arrive with options, and every TOA option (kind 254,
// length 8: client port and IPv4 address, as alibaba/LVS and DPVS write
// it) is recorded for the connection it came on: the real server's own
// address and port, and the peer, which under FULLNAT is the director's
// local address and port. An application looks up its accepted
// connection's addresses and learns the client's.
//
// The director puts the option in the SYN and in the first ACK or data
// segment, both of which arrive before the application can accept the
// connection, so Lookup waits (briefly) only for the reader to catch up
// with packets already queued on its socket.
package toa

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Option kind and length of TOA for IPv4 (TCPOPT_ADDR, TCPOLEN_ADDR).
const (
	OptKind = 254
	OptLen  = 8
)

// Key names a connection as the real server sees it.
type Key struct {
	Local  netip.AddrPort // the real server's address and port
	Remote netip.AddrPort // the peer: the director's local address and port
}

type entry struct {
	client netip.AddrPort
	seen   time.Time
}

// maxEntries bounds the table; older entries go first when it is full.
const maxEntries = 1 << 16

// Reader records the TOA options of incoming TCP segments. Make one with
// Open; it reads until Close.
type Reader struct {
	f    *os.File
	done chan struct{}

	mu      sync.Mutex
	m       map[Key]entry
	changed chan struct{} // closed and replaced on every new record
	err     error         // why reading stopped
	packets uint64        // segments with TOA recorded
}

// Open starts a reader on every interface of the calling thread's network
// namespace (it needs CAP_NET_RAW there).
func Open() (*Reader, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return nil, fmt.Errorf("toa: packet socket: %w", err)
	}
	prog := filter()
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("toa: attach filter: %w", err)
	}
	r := &Reader{f: os.NewFile(uintptr(fd), "toa"), done: make(chan struct{}), m: map[Key]entry{}, changed: make(chan struct{})}
	go r.loop()
	return r, nil
}

// filter keeps incoming, unfragmented IPv4 TCP segments that carry options
// (a data offset above 5): everything else of the host's traffic stays in
// the kernel.
func filter() []unix.SockFilter {
	const (
		ld  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		ldh = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
		ldb = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
		ldx = unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH
		ldi = unix.BPF_LD | unix.BPF_B | unix.BPF_IND
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jgt = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
		jst = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		and = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
		ret = unix.BPF_RET | unix.BPF_K
	)
	return []unix.SockFilter{
		{Code: ld, K: skfAdOff + skfAdPktType},
		{Code: jeq, K: unix.PACKET_OUTGOING, Jt: 9}, // to the last: drop
		{Code: ldb, K: 9},                           // IP protocol
		{Code: jeq, K: unix.IPPROTO_TCP, Jf: 7},
		{Code: ldh, K: 6}, // fragment offset
		{Code: jst, K: 0x1fff, Jt: 5},
		{Code: ldx, K: 0},  // X = IP header length
		{Code: ldi, K: 12}, // TCP data offset
		{Code: and, K: 0xf0},
		{Code: jgt, K: 0x50, Jf: 1},
		{Code: ret, K: 0xffff},
		{Code: ret, K: 0},
	}
}

// The ancillary load of the packet type (linux/filter.h SKF_AD_OFF +
// SKF_AD_PKTTYPE), which x/sys/unix does not define.
const (
	skfAdOff     = 0xfffff000 // -0x1000
	skfAdPktType = 4
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (r *Reader) loop() {
	defer close(r.done)
	buf := make([]byte, 2048)
	rc, err := r.f.SyscallConn()
	if err != nil {
		r.stop(err)
		return
	}
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				err = nil
			}
			r.stop(err)
			return
		}
		if k, client, ok := Parse(buf[:min(n, len(buf))]); ok {
			r.record(k, client, time.Now())
		}
	}
}

func (r *Reader) stop(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		err = errors.New("toa: reader closed")
	}
	r.err = err
	close(r.changed)
}

// Parse finds the TOA option of an IPv4 TCP segment and returns the
// connection it belongs to, as its receiver names it, and the client's
// address it carries.
func Parse(ip []byte) (Key, netip.AddrPort, bool) {
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != unix.IPPROTO_TCP {
		return Key{}, netip.AddrPort{}, false
	}
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl+20 {
		return Key{}, netip.AddrPort{}, false
	}
	tcp := ip[ihl:]
	doff := int(tcp[12]>>4) * 4
	if doff < 20 || len(tcp) < doff {
		return Key{}, netip.AddrPort{}, false
	}
	opts := tcp[20:doff]
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0: // end of options
			return Key{}, netip.AddrPort{}, false
		case 1: // NOP
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return Key{}, netip.AddrPort{}, false
		}
		if opts[i] == OptKind && opts[i+1] == OptLen {
			o := opts[i : i+OptLen]
			client := netip.AddrPortFrom(netip.AddrFrom4([4]byte(o[4:8])), binary.BigEndian.Uint16(o[2:4]))
			k := Key{
				Local:  netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(tcp[2:4])),
				Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(tcp[0:2])),
			}
			return k, client, true
		}
		i += int(opts[i+1])
	}
	return Key{}, netip.AddrPort{}, false
}

func (r *Reader) record(k Key, client netip.AddrPort, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[k]; !ok && len(r.m) >= maxEntries {
		r.prune(now)
	}
	// A reused local port of the director is a new connection: the latest
	// option wins, as toa.ko's per-socket copy does.
	r.m[k] = entry{client: client, seen: now}
	r.packets++
	close(r.changed)
	r.changed = make(chan struct{})
}

// prune drops entries older than a minute, or, if none is, the oldest
// quarter of them.
func (r *Reader) prune(now time.Time) {
	for k, e := range r.m {
		if now.Sub(e.seen) > time.Minute {
			delete(r.m, k)
		}
	}
	if len(r.m) < maxEntries {
		return
	}
	var oldest time.Time
	for _, e := range r.m {
		if oldest.IsZero() || e.seen.Before(oldest) {
			oldest = e.seen
		}
	}
	cut := oldest.Add(now.Sub(oldest) / 4)
	for k, e := range r.m {
		if !e.seen.After(cut) {
			delete(r.m, k)
		}
	}
}

// Lookup returns the client address recorded for connection k, waiting
// until ctx ends for the reader to record it (its packets are already
// queued when the application accepts the connection). False when the
// connection carried no TOA (it did not come through a FULLNAT director).
func (r *Reader) Lookup(ctx context.Context, k Key) (netip.AddrPort, bool) {
	for {
		r.mu.Lock()
		e, ok := r.m[k]
		ch, stopped := r.changed, r.err != nil
		r.mu.Unlock()
		if ok {
			return e.client, true
		}
		if stopped {
			return netip.AddrPort{}, false
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return netip.AddrPort{}, false
		}
	}
}

// Recorded is how many segments with a TOA option the reader has seen.
func (r *Reader) Recorded() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packets
}

// Close stops the reader.
func (r *Reader) Close() error {
	err := r.f.Close()
	<-r.done
	return err
}
