package capture

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TXMode selects how an AFPacket port transmits.
type TXMode uint8

const (
	// TXRing copies frames into a TPACKET_V2 transmit ring and kicks the
	// kernel with one sendto(2) per batch; the kernel maps the ring's pages
	// into the skbs instead of copying them. The default: on veth it cost
	// 5–10 % less CPU per 64-byte frame than sendmmsg (BenchmarkVethTX,
	// cpu-ns/op).
	TXRing TXMode = iota
	// TXSendmmsg sends a batch with one sendmmsg(2) on a raw socket: the
	// kernel copies each frame into a fresh skb. Plain socket semantics,
	// no ring memory.
	TXSendmmsg
)

func (m TXMode) String() string {
	switch m {
	case TXSendmmsg:
		return "sendmmsg"
	case TXRing:
		return "ring"
	}
	return fmt.Sprintf("TXMode(%d)", uint8(m))
}

// OutgoingMode says what to do with frames the host itself sends on the
// interface (our own transmissions included), which a packet socket sees
// like any other.
type OutgoingMode uint8

const (
	// OutgoingIgnore asks the kernel not to deliver them
	// (PACKET_IGNORE_OUTGOING, or the fanout flag of the same name) and
	// filters sll_pkttype == PACKET_OUTGOING in userspace where the kernel
	// lacks the option.
	OutgoingIgnore OutgoingMode = iota
	// OutgoingFilter only filters in userspace: what OutgoingIgnore falls
	// back to, selectable to test that fallback.
	OutgoingFilter
	// OutgoingKeep hands outgoing frames on, with PktType PacketOutgoing
	// (a tap, not a forwarder).
	OutgoingKeep
)

// FanoutMode is the PACKET_FANOUT algorithm.
type FanoutMode uint16

const (
	FanoutHash     FanoutMode = unix.PACKET_FANOUT_HASH // by flow hash: a flow stays on one port
	FanoutLB       FanoutMode = unix.PACKET_FANOUT_LB   // round robin
	FanoutCPU      FanoutMode = unix.PACKET_FANOUT_CPU  // by receiving CPU
	FanoutRollover FanoutMode = unix.PACKET_FANOUT_ROLLOVER
	FanoutRandom   FanoutMode = unix.PACKET_FANOUT_RND
	FanoutQM       FanoutMode = unix.PACKET_FANOUT_QM // by NIC receive queue
)

// RXRing is the version of the receive ring.
type RXRing uint8

const (
	// RXRingV3 is a TPACKET_V3 ring: frames packed into blocks of any
	// size, one wakeup per block. A block is handed over when it is full
	// or when its retire timer (BlockTimeout, 1 ms at least) fires, so at
	// low rates frames wait up to a timeout in the ring, longer when the
	// timer runs late on a loaded machine. The default: the most frames per
	// byte of ring and the fewest wakeups at high rates.
	RXRingV3 RXRing = iota
	// RXRingV2 is a TPACKET_V2 ring: one fixed slot (RXFrameSize) per
	// frame, each with its own status word, and a wakeup per frame: no
	// block timer, a frame is readable as soon as the kernel wrote it. A
	// frame longer than its slot (a GSO super-frame from a TSO sender)
	// goes whole to the socket's receive queue (PACKET_COPY_THRESH) and
	// costs a recvfrom(2); when that queue is full too, the frame arrives
	// truncated (Len > N) and is counted in Stats.Truncated. No RxHash,
	// no Freezes count.
	RXRingV2
)

func (v RXRing) String() string {
	switch v {
	case RXRingV3:
		return "v3"
	case RXRingV2:
		return "v2"
	}
	return fmt.Sprintf("RXRing(%d)", uint8(v))
}

// ParseRXRing reads "v2" or "v3".
func ParseRXRing(s string) (RXRing, error) {
	switch s {
	case "v3", "V3":
		return RXRingV3, nil
	case "v2", "V2":
		return RXRingV2, nil
	}
	return 0, fmt.Errorf("receive ring %q: want v2 or v3", s)
}

// Fanout puts a port's receive socket into a PACKET_FANOUT group.
type Fanout struct {
	// Group is the fanout id, unique per network namespace. 0 lets the
	// kernel pick a free one (OpenFanout then uses it for every port).
	Group uint16
	Mode  FanoutMode
}

// Config describes an AFPacket port. Zero values take the defaults given.
type Config struct {
	// Interface names the interface to bind to; Ifindex, if set, wins.
	Interface string
	Ifindex   int

	// BlockSize is the receive ring's block size, a multiple of the page
	// size (default 256 KiB). A frame never spans blocks, so it bounds the
	// largest frame received whole.
	BlockSize int
	// Blocks is the number of blocks in the receive ring (default 16).
	Blocks int
	// FrameSize is the transmit ring's slot size, a multiple of 16
	// (default: room for the MTU plus a VLAN tag). A TPACKET_V3 receive
	// ring needs none: it packs frames of any size into its blocks (a V2
	// one has RXFrameSize).
	FrameSize int
	// RXRing is the receive ring's version (default TPACKET_V3).
	RXRing RXRing
	// RXFrameSize is a TPACKET_V2 receive ring's slot size, a multiple of
	// 16 dividing BlockSize (default: the power of two that holds the
	// MTU, a VLAN tag and the slot header, 2048 for MTU 1500). The ring
	// holds BlockSize/RXFrameSize*Blocks frames, whatever their size.
	RXFrameSize int
	// BlockTimeout hands a partly filled block to us after this long
	// (millisecond granularity, default 1 ms). TPACKET_V3 shows a block only
	// when it is full or timed out, so at low rates this is added latency.
	BlockTimeout time.Duration
	// Snap, if positive, truncates received frames to Snap bytes with a
	// one-instruction BPF filter; Frame.Len still tells the wire length.
	Snap int
	// RxHash asks the kernel to fill Frame.RxHash (costs a flow dissection
	// per frame unless something else needed the hash anyway).
	RxHash bool

	TXMode TXMode
	// TXFrames is the number of transmit ring slots (default 512) in
	// TXRing mode.
	TXFrames int
	// Batch is the most frames one sendmmsg call carries (default 64, at
	// most 1024); larger batches are sent in several calls.
	Batch int
	// QdiscBypass sets PACKET_QDISC_BYPASS: frames go straight to the
	// driver, skipping the qdisc and the packet taps — tcpdump on this
	// interface no longer sees what the port sends (capture on the peer),
	// and a busy driver drops instead of queueing. Off by default: on veth
	// it saved no CPU per frame (BenchmarkVethTX), and a lab wants to watch
	// the director's own interfaces.
	QdiscBypass bool

	Outgoing OutgoingMode
	// Promisc puts the interface in promiscuous mode while the port is open.
	Promisc bool
	// Fanout joins the receive socket to a fanout group.
	Fanout *Fanout

	// NoRX and NoTX leave out a direction (a traffic generator needs no
	// ring, a tap sends nothing).
	NoRX, NoTX bool
}

const (
	defaultBlockSize    = 256 << 10
	defaultBlocks       = 16
	defaultFrameSize    = 2048
	defaultBlockTimeout = time.Millisecond
	defaultTXFrames     = 512
	defaultBatch        = 64
	maxBatch            = 1024 // UIO_MAXIOV: sendmmsg's limit per call
	txSockBuf           = 4 << 20
)

// AFPacket is a Port on one interface, built on two packet sockets: one
// with a TPACKET_V3 (or V2, Config.RXRing) receive ring, bound to
// ETH_P_ALL, and one bound to protocol 0 for transmitting (so it receives
// nothing and costs the receive path nothing).
//
// ReadBatch calls are serialised, as are WriteBatch calls; a reader and a
// writer may run at the same time.
type AFPacket struct {
	link Link
	cfg  Config

	rxMu   sync.Mutex
	rx     *os.File
	rxConn syscall.RawConn
	ring   rxRing
	// kernelIgnoresOutgoing is true when the kernel accepted the
	// ignore-outgoing option, so the userspace filter is a safety net only.
	kernelIgnoresOutgoing bool
	fanoutGroup           uint16
	fanoutFlags           uint16

	txMu   sync.Mutex
	tx     *os.File
	txConn syscall.RawConn
	mmsg   *mmsgTX
	txRing *txRing

	// The RawConn callbacks and their arguments, set up once: a closure
	// per call would be an allocation per batch.
	readFn   func(uintptr) bool
	readArgs struct {
		frames []Frame
		lend   bool
		n      int
		c      rxCounts
	}
	writeFn   func(uintptr) bool
	writeArgs struct {
		frames []Frame
		res    txResult
	}
	stopFn        func() error
	writeDeadline atomic.Int64 // unix ns, 0 for none (TXRing waits itself)

	closed atomic.Bool

	c       counters
	statsMu sync.Mutex
	kstats  struct{ packets, drops, freezes uint64 }
}

type counters struct {
	rxPackets, rxBytes, oversized, truncated, outgoing atomic.Uint64
	txPackets, txBytes, txDrops, errors                atomic.Uint64
}

// Open opens a port on the interface cfg names, in the network namespace of
// the calling thread.
func Open(cfg Config) (*AFPacket, error) {
	return open(cfg, nil)
}

// OpenFanout opens n ports on one interface whose receive sockets share a
// fanout group (cfg.Fanout, or hash fanout in a group the kernel picks), for
// n workers. Each port has its own transmit socket.
func OpenFanout(cfg Config, n int) ([]*AFPacket, error) {
	if n < 1 {
		return nil, fmt.Errorf("capture: fanout of %d ports", n)
	}
	if cfg.NoRX {
		return nil, errors.New("capture: fanout needs the receive direction")
	}
	f := Fanout{Mode: FanoutHash}
	if cfg.Fanout != nil {
		f = *cfg.Fanout
	}
	cfg.Fanout = &f
	ports := make([]*AFPacket, 0, n)
	var join *fanoutJoin
	for i := 0; i < n; i++ {
		p, err := open(cfg, join)
		if err != nil {
			for _, q := range ports {
				q.Close()
			}
			return nil, fmt.Errorf("capture: fanout port %d of %d: %w", i+1, n, err)
		}
		// Later members join the group the first one made, with the same
		// flags (the kernel insists).
		join = &fanoutJoin{group: p.fanoutGroup, flags: p.fanoutFlags}
		ports = append(ports, p)
	}
	return ports, nil
}

// fanoutJoin is a group the first port of OpenFanout settled.
type fanoutJoin struct{ group, flags uint16 }

func open(cfg Config, join *fanoutJoin) (*AFPacket, error) {
	if cfg.NoRX && cfg.NoTX {
		return nil, errors.New("capture: a port with neither direction")
	}
	var (
		link Link
		err  error
	)
	if cfg.Ifindex != 0 {
		link, err = LinkByIndex(cfg.Ifindex)
	} else {
		link, err = LookupLink(cfg.Interface)
	}
	if err != nil {
		return nil, err
	}
	cfg.Interface, cfg.Ifindex = link.Name, link.Index
	if err := normalize(&cfg, link); err != nil {
		return nil, err
	}
	p := &AFPacket{link: link, cfg: cfg}
	p.readFn, p.writeFn, p.stopFn = p.readRing, p.writeTX, p.txStop
	if !cfg.NoRX {
		if err := p.openRX(join); err != nil {
			p.Close()
			return nil, fmt.Errorf("capture: %s receive: %w", link.Name, err)
		}
	}
	if !cfg.NoTX {
		if err := p.openTX(); err != nil {
			p.Close()
			return nil, fmt.Errorf("capture: %s transmit: %w", link.Name, err)
		}
	}
	return p, nil
}

func normalize(cfg *Config, link Link) error {
	page := os.Getpagesize()
	if cfg.BlockSize == 0 {
		cfg.BlockSize = defaultBlockSize
	}
	if cfg.Blocks == 0 {
		cfg.Blocks = defaultBlocks
	}
	if cfg.BlockTimeout == 0 {
		cfg.BlockTimeout = defaultBlockTimeout
	}
	if cfg.TXFrames == 0 {
		cfg.TXFrames = defaultTXFrames
	}
	if cfg.Batch == 0 {
		cfg.Batch = defaultBatch
	}
	if cfg.Batch > maxBatch {
		cfg.Batch = maxBatch
	}
	switch {
	case cfg.BlockSize%page != 0:
		return fmt.Errorf("capture: block size %d is not a multiple of the page size %d", cfg.BlockSize, page)
	case cfg.Blocks < 2:
		return fmt.Errorf("capture: %d blocks: the ring needs at least 2", cfg.Blocks)
	case cfg.FrameSize%16 != 0:
		return fmt.Errorf("capture: frame size %d is not a multiple of 16 (TPACKET_ALIGNMENT)", cfg.FrameSize)
	case cfg.Snap < 0, cfg.TXFrames < 1, cfg.Batch < 1:
		return fmt.Errorf("capture: invalid snap %d, tx frames %d or batch %d", cfg.Snap, cfg.TXFrames, cfg.Batch)
	case cfg.RXRing != RXRingV3 && cfg.RXRing != RXRingV2:
		return fmt.Errorf("capture: unknown receive ring version %d", cfg.RXRing)
	}
	if cfg.RXRing != RXRingV2 {
		return nil
	}
	if cfg.RXFrameSize == 0 {
		cfg.RXFrameSize = 2048
		for cfg.RXFrameSize < v2MacStart+link.MTU+18 {
			cfg.RXFrameSize *= 2
		}
		if cfg.BlockSize%cfg.RXFrameSize != 0 {
			cfg.BlockSize = (cfg.BlockSize + cfg.RXFrameSize - 1) / cfg.RXFrameSize * cfg.RXFrameSize
		}
	}
	switch {
	case cfg.RXFrameSize%16 != 0 || cfg.RXFrameSize < minRXFrameSize:
		return fmt.Errorf("capture: receive frame size %d: want a multiple of 16 (TPACKET_ALIGNMENT), at least %d", cfg.RXFrameSize, minRXFrameSize)
	case cfg.BlockSize%cfg.RXFrameSize != 0:
		return fmt.Errorf("capture: receive frame size %d does not divide the block size %d", cfg.RXFrameSize, cfg.BlockSize)
	case cfg.RxHash:
		return errors.New("capture: RxHash needs a TPACKET_V3 receive ring (TPACKET_V2 has no hash field)")
	}
	return nil
}

func (p *AFPacket) openRX(join *fanoutJoin) error {
	cfg := &p.cfg
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	// From here the file owns fd; closing it closes fd.
	p.rx = os.NewFile(uintptr(fd), "packet-rx:"+p.link.Name)
	if p.rxConn, err = p.rx.SyscallConn(); err != nil {
		return fmt.Errorf("raw conn: %w", err)
	}
	version := unix.TPACKET_V3
	if cfg.RXRing == RXRingV2 {
		version = unix.TPACKET_V2
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, version); err != nil {
		return fmt.Errorf("PACKET_VERSION %s: %w", cfg.RXRing, err)
	}
	if cfg.Outgoing == OutgoingIgnore && cfg.Fanout == nil {
		// Since Linux 4.20; without it the userspace filter does the job.
		err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
		p.kernelIgnoresOutgoing = err == nil
	}
	if cfg.Snap > 0 {
		// "ret #snap": accept every frame, keep at most snap bytes.
		prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: uint32(cfg.Snap)}}
		fprog := unix.SockFprog{Len: 1, Filter: &prog[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
			return fmt.Errorf("snap filter: %w", err)
		}
	}
	if cfg.RXRing == RXRingV2 {
		return p.openRXV2(fd, join)
	}
	// The kernel checks the geometry against a nominal frame size, which
	// for TPACKET_V3 bounds nothing.
	const frameSize = defaultFrameSize
	req := unix.TpacketReq3{
		Block_size:     uint32(cfg.BlockSize),
		Block_nr:       uint32(cfg.Blocks),
		Frame_size:     uint32(frameSize),
		Frame_nr:       uint32(cfg.BlockSize / frameSize * cfg.Blocks),
		Retire_blk_tov: uint32(max(1, cfg.BlockTimeout.Milliseconds())),
	}
	if cfg.RxHash {
		req.Feature_req_word = 1 // TP_FT_REQ_FILL_RXHASH
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("PACKET_RX_RING %d×%d: %w", cfg.Blocks, cfg.BlockSize, err)
	}
	mem, err := unix.Mmap(fd, 0, cfg.BlockSize*cfg.Blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap receive ring: %w", err)
	}
	p.ring = rxRing{
		mem:          mem,
		blockSize:    cfg.BlockSize,
		blocks:       cfg.Blocks,
		mtu:          p.link.MTU,
		keepOutgoing: cfg.Outgoing == OutgoingKeep,
	}
	return p.bindRX(fd, join)
}

// openRXV2 sets up a TPACKET_V2 ring on fd.
func (p *AFPacket) openRXV2(fd int, join *fanoutJoin) error {
	cfg := &p.cfg
	// Frames longer than a slot go whole to the receive queue, which
	// must hold a few 64 KiB super-frames while the reader is away.
	// Forcing it needs CAP_NET_ADMIN; the ordinary limit only means that
	// more of them arrive truncated.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_COPY_THRESH, 1); err != nil {
		return fmt.Errorf("PACKET_COPY_THRESH: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rxCopyQueue) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rxCopyQueue)
	}
	slots := cfg.BlockSize / cfg.RXFrameSize * cfg.Blocks
	req := unix.TpacketReq{
		Block_size: uint32(cfg.BlockSize),
		Block_nr:   uint32(cfg.Blocks),
		Frame_size: uint32(cfg.RXFrameSize),
		Frame_nr:   uint32(slots),
	}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("PACKET_RX_RING V2 %d×%d, %d-byte frames: %w", cfg.Blocks, cfg.BlockSize, cfg.RXFrameSize, err)
	}
	mem, err := unix.Mmap(fd, 0, cfg.BlockSize*cfg.Blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap receive ring: %w", err)
	}
	bufs := make([][]byte, rxCopyBufs)
	all := make([]byte, rxCopyBufs*rxCopyBufSize)
	for i := range bufs {
		bufs[i] = all[i*rxCopyBufSize : (i+1)*rxCopyBufSize : (i+1)*rxCopyBufSize]
	}
	p.ring = rxRing{
		mem:          mem,
		blockSize:    cfg.BlockSize,
		blocks:       cfg.Blocks,
		mtu:          p.link.MTU,
		keepOutgoing: cfg.Outgoing == OutgoingKeep,
		isV2:         true,
		v2:           rxRingV2{frameSize: cfg.RXFrameSize, slots: slots, copyBufs: bufs},
	}
	return p.bindRX(fd, join)
}

// bindRX binds the receive socket, ring in place, and joins what it
// should.
func (p *AFPacket) bindRX(fd int, join *fanoutJoin) error {
	cfg := &p.cfg
	// Bound only now, ring in place: the socket was opened for protocol 0,
	// so it received nothing from any interface until here.
	sll := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: p.link.Index}
	if err := unix.Bind(fd, &sll); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if cfg.Promisc {
		// Tied to the socket: the kernel drops it when the socket closes,
		// even if we crash.
		mreq := unix.PacketMreq{Ifindex: int32(p.link.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fmt.Errorf("promiscuous mode: %w", err)
		}
	}
	if cfg.Fanout != nil {
		if err := p.joinFanout(fd, join); err != nil {
			return err
		}
	}
	return nil
}

// joinFanout adds the receive socket to cfg.Fanout's group, or to the one
// join describes. A group's members share one receive hook, so the
// per-socket ignore-outgoing option does nothing there: the group's flag
// does it.
func (p *AFPacket) joinFanout(fd int, join *fanoutJoin) error {
	mode := p.cfg.Fanout.Mode
	if join != nil {
		if err := setFanout(fd, join.group, mode, join.flags); err != nil {
			return fmt.Errorf("join PACKET_FANOUT group %d: %w", join.group, err)
		}
		p.fanoutGroup, p.fanoutFlags = join.group, join.flags
		p.kernelIgnoresOutgoing = join.flags&unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING != 0
		return nil
	}
	group := p.cfg.Fanout.Group
	var flags uint16
	if p.cfg.Outgoing == OutgoingIgnore {
		flags |= unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
	}
	if group == 0 {
		flags |= unix.PACKET_FANOUT_FLAG_UNIQUEID
	}
	err := setFanout(fd, group, mode, flags)
	if errors.Is(err, unix.EINVAL) && flags&unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING != 0 {
		// A kernel without the flag: the userspace filter does the job.
		flags &^= unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
		err = setFanout(fd, group, mode, flags)
	}
	if err != nil {
		return fmt.Errorf("PACKET_FANOUT group %d mode %d flags %#x: %w", group, mode, flags, err)
	}
	if flags&unix.PACKET_FANOUT_FLAG_UNIQUEID != 0 {
		v, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
		if err != nil {
			return fmt.Errorf("read back fanout id: %w", err)
		}
		group = uint16(v)
		flags &^= unix.PACKET_FANOUT_FLAG_UNIQUEID // only the creator asks for one
	}
	p.fanoutGroup, p.fanoutFlags = group, flags
	p.kernelIgnoresOutgoing = flags&unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING != 0
	return nil
}

func setFanout(fd int, group uint16, mode FanoutMode, flags uint16) error {
	return unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(group)|int(uint16(mode)|flags)<<16)
}

func (p *AFPacket) openTX() error {
	cfg := &p.cfg
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	p.tx = os.NewFile(uintptr(fd), "packet-tx:"+p.link.Name)
	if p.txConn, err = p.tx.SyscallConn(); err != nil {
		return fmt.Errorf("raw conn: %w", err)
	}
	// Protocol 0: bound to the interface for sending, no receive hook.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: p.link.Index}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if cfg.QdiscBypass {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
		}
	}
	// Room for a burst in flight (a NIC frees skbs only on completion).
	// SO_SNDBUFFORCE needs CAP_NET_ADMIN; without it the kernel's limit
	// applies, which only means waiting sooner.
	sndbuf := txSockBuf
	if cfg.TXMode == TXRing {
		sndbuf = max(sndbuf, 2*cfg.TXFrames*txSlotSize(cfg, p.link))
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndbuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf)
	}
	switch cfg.TXMode {
	case TXSendmmsg:
		p.mmsg = newMmsgTX(cfg.Batch)
	case TXRing:
		r, err := newTXRing(fd, txSlotSize(cfg, p.link), cfg.TXFrames)
		if err != nil {
			return err
		}
		p.txRing = r
	default:
		return fmt.Errorf("unknown transmit mode %d", cfg.TXMode)
	}
	return nil
}

// Link returns the interface the port is bound to, as it was when opened.
func (p *AFPacket) Link() Link { return p.link }

// KernelIgnoresOutgoing reports whether the kernel keeps our own (and all
// other outgoing) frames from the receive ring; when false, the port drops
// them in userspace and counts them in Stats.Outgoing.
func (p *AFPacket) KernelIgnoresOutgoing() bool { return p.kernelIgnoresOutgoing }

// FanoutGroup returns the fanout id the receive socket joined (0 without
// fanout).
func (p *AFPacket) FanoutGroup() uint16 { return p.fanoutGroup }

// ReadBatch implements Port.
func (p *AFPacket) ReadBatch(frames []Frame) (int, error) { return p.read(frames, false) }

// ReadBatchZeroCopy implements ZeroCopyReader.
func (p *AFPacket) ReadBatchZeroCopy(frames []Frame) (int, error) { return p.read(frames, true) }

func (p *AFPacket) read(frames []Frame, lend bool) (int, error) {
	if p.rx == nil {
		return 0, fmt.Errorf("capture: %s: read from a transmit-only port", p.link.Name)
	}
	if len(frames) == 0 {
		return 0, nil
	}
	p.rxMu.Lock()
	defer p.rxMu.Unlock()
	if p.closed.Load() {
		return 0, p.closedErr("read")
	}
	a := &p.readArgs
	a.frames, a.lend, a.n, a.c = frames, lend, 0, rxCounts{}
	err := p.rxConn.Read(p.readFn)
	n, c := a.n, a.c
	a.frames = nil
	p.c.rxPackets.Add(c.packets)
	p.c.rxBytes.Add(c.bytes)
	if c.oversized != 0 {
		p.c.oversized.Add(c.oversized)
	}
	if c.truncated != 0 {
		p.c.truncated.Add(c.truncated)
	}
	if c.outgoing != 0 {
		p.c.outgoing.Add(c.outgoing)
	}
	if c.errors != 0 {
		p.c.errors.Add(c.errors)
	}
	if err != nil {
		if p.closed.Load() {
			return n, p.closedErr("read")
		}
		return n, fmt.Errorf("capture: %s: read: %w", p.link.Name, err)
	}
	return n, nil
}

// readRing runs under RawConn.Read, which holds the file's reference: Close
// cannot unmap the ring while it runs.
func (p *AFPacket) readRing(fd uintptr) bool {
	a := &p.readArgs
	if p.ring.isV2 {
		a.n = p.ring.readV2(int(fd), a.frames, a.lend, &a.c)
	} else {
		a.n = p.ring.read(a.frames, a.lend, &a.c)
	}
	return a.n > 0
}

// writeTX runs under RawConn.Write.
func (p *AFPacket) writeTX(fd uintptr) bool {
	a := &p.writeArgs
	if p.mmsg != nil {
		return p.mmsg.write(int(fd), a.frames, p.link.MTU, &a.res)
	}
	return p.txRing.write(int(fd), a.frames, p.link.MTU, &a.res, p.stopFn)
}

// txStop tells the transmit ring's wait loop to give up.
func (p *AFPacket) txStop() error {
	if p.closed.Load() {
		return net.ErrClosed
	}
	if d := p.writeDeadline.Load(); d != 0 && time.Now().UnixNano() >= d {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// WriteBatch implements Port.
func (p *AFPacket) WriteBatch(frames []Frame) (int, error) {
	if p.tx == nil {
		return 0, fmt.Errorf("capture: %s: write to a receive-only port", p.link.Name)
	}
	if len(frames) == 0 {
		return 0, nil
	}
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if p.closed.Load() {
		return 0, p.closedErr("write")
	}
	a := &p.writeArgs
	a.frames, a.res = frames, txResult{}
	err := p.txConn.Write(p.writeFn)
	res := a.res
	a.frames = nil
	p.c.txPackets.Add(uint64(res.n - res.drops))
	p.c.txBytes.Add(res.bytes)
	if res.drops != 0 {
		p.c.txDrops.Add(uint64(res.drops))
	}
	if err == nil {
		err = res.err
	}
	if err != nil {
		p.c.errors.Add(1)
		if p.closed.Load() {
			return res.n, p.closedErr("write")
		}
		return res.n, fmt.Errorf("capture: %s: write frame %d of %d: %w", p.link.Name, res.n, len(frames), err)
	}
	return res.n, nil
}

// SetReadDeadline implements Port.
func (p *AFPacket) SetReadDeadline(t time.Time) error {
	if p.rx == nil {
		return nil
	}
	if err := p.rx.SetReadDeadline(t); err != nil {
		return fmt.Errorf("capture: %s: %w", p.link.Name, err)
	}
	return nil
}

// SetWriteDeadline bounds how long WriteBatch waits for room to send.
func (p *AFPacket) SetWriteDeadline(t time.Time) error {
	if p.tx == nil {
		return nil
	}
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
	}
	p.writeDeadline.Store(d)
	if err := p.tx.SetWriteDeadline(t); err != nil {
		return fmt.Errorf("capture: %s: %w", p.link.Name, err)
	}
	return nil
}

// Stats implements Port. It reads (and so resets) the kernel's
// PACKET_STATISTICS and adds them to the totals.
func (p *AFPacket) Stats() Stats {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	if p.rx != nil && !p.closed.Load() {
		var st *unix.TpacketStatsV3
		var err error
		cerr := p.rxConn.Control(func(fd uintptr) {
			st, err = unix.GetsockoptTpacketStatsV3(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
		})
		if cerr == nil && err == nil {
			p.kstats.packets += uint64(st.Packets)
			p.kstats.drops += uint64(st.Drops)
			p.kstats.freezes += uint64(st.Freeze_q_cnt)
		}
	}
	return Stats{
		RxPackets: p.c.rxPackets.Load(),
		RxBytes:   p.c.rxBytes.Load(),
		Kernel:    p.kstats.packets,
		Drops:     p.kstats.drops,
		Freezes:   p.kstats.freezes,
		Oversized: p.c.oversized.Load(),
		Truncated: p.c.truncated.Load(),
		Outgoing:  p.c.outgoing.Load(),
		TxPackets: p.c.txPackets.Load(),
		TxBytes:   p.c.txBytes.Load(),
		TxDrops:   p.c.txDrops.Load(),
		Errors:    p.c.errors.Load(),
	}
}

// Close implements Port. Frames lent by ReadBatchZeroCopy are invalid after
// it.
func (p *AFPacket) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	var errs []error
	if p.rx != nil {
		// Closing the file wakes a waiting reader and waits until no
		// callback runs; the mutex then keeps out readers that came late.
		if err := p.rx.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close receive socket: %w", err))
		}
		p.rxMu.Lock()
		if p.ring.mem != nil {
			if err := unix.Munmap(p.ring.mem); err != nil {
				errs = append(errs, fmt.Errorf("unmap receive ring: %w", err))
			}
			p.ring.mem = nil
		}
		p.rxMu.Unlock()
	}
	if p.tx != nil {
		if err := p.tx.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close transmit socket: %w", err))
		}
		p.txMu.Lock()
		if p.txRing != nil {
			if err := p.txRing.close(); err != nil {
				errs = append(errs, err)
			}
		}
		p.txMu.Unlock()
	}
	if len(errs) > 0 {
		return fmt.Errorf("capture: %s: %w", p.link.Name, errors.Join(errs...))
	}
	return nil
}

func (p *AFPacket) closedErr(op string) error {
	return fmt.Errorf("capture: %s: %s: %w", p.link.Name, op, net.ErrClosed)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
