package rs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Verdict is what decapsulation decided for one packet.
type Verdict uint8

// Verdicts, one counter each.
const (
	Deliver               Verdict = iota // inner packet written to the TUN device
	DropShort                            // shorter than an IPv4 header
	DropOuterVersion                     // outer header is not IPv4
	DropOuterHeaderLength                // outer IHL < 5 or beyond the packet
	DropOuterTotalLength                 // outer total length disagrees with the packet
	DropOuterProtocol                    // outer protocol is not 4 (IP-in-IP)
	DropOuterFragment                    // outer fragment (the kernel reassembles before raw sockets)
	DropInnerVersion                     // inner packet is not IPv4
	DropInnerHeaderLength                // inner IHL < 5 or beyond the payload
	DropInnerTotalLength                 // inner total length beyond the payload or below its header
	DropNotVIP                           // inner destination is none of the VIPs
	DropECN                              // outer CE over a not-ECT inner packet (RFC 6040, as the kernel's ipip)
	numVerdicts
)

func (v Verdict) String() string {
	switch v {
	case Deliver:
		return "deliver"
	case DropShort:
		return "short"
	case DropOuterVersion:
		return "outer-version"
	case DropOuterHeaderLength:
		return "outer-header-length"
	case DropOuterTotalLength:
		return "outer-total-length"
	case DropOuterProtocol:
		return "outer-protocol"
	case DropOuterFragment:
		return "outer-fragment"
	case DropInnerVersion:
		return "inner-version"
	case DropInnerHeaderLength:
		return "inner-header-length"
	case DropInnerTotalLength:
		return "inner-total-length"
	case DropNotVIP:
		return "not-vip"
	case DropECN:
		return "ecn"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

const (
	ipv4MinHeader = 20
	protoIPIP     = 4
	ecnMask       = 0x03
	ecnCE         = 0x03
)

// Decapsulate validates an IPv4 packet carrying IP-in-IP (outer header
// included, as a raw socket delivers it) and returns the inner packet, a
// subslice of pkt. The inner checksums are left as they are: they were
// right when the director encapsulated. The one change is the kernel's
// ECN decapsulation (RFC 6040): outer CE marks an ECN-capable inner packet
// CE, with the header checksum adjusted incrementally.
func Decapsulate(pkt []byte, vips []netip.Addr) ([]byte, Verdict) {
	if len(pkt) < ipv4MinHeader {
		return nil, DropShort
	}
	if pkt[0]>>4 != 4 {
		return nil, DropOuterVersion
	}
	ohl := int(pkt[0]&0x0f) * 4
	if ohl < ipv4MinHeader || ohl > len(pkt) {
		return nil, DropOuterHeaderLength
	}
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if total < ohl || total > len(pkt) {
		return nil, DropOuterTotalLength
	}
	if pkt[9] != protoIPIP {
		return nil, DropOuterProtocol
	}
	if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 { // MF or an offset
		return nil, DropOuterFragment
	}
	outerTOS := pkt[1]
	in := pkt[ohl:total]
	if len(in) < 1 || in[0]>>4 != 4 {
		return nil, DropInnerVersion
	}
	ihl := int(in[0]&0x0f) * 4
	if ihl < ipv4MinHeader || ihl > len(in) {
		return nil, DropInnerHeaderLength
	}
	itotal := int(binary.BigEndian.Uint16(in[2:4]))
	if itotal < ihl || itotal > len(in) {
		return nil, DropInnerTotalLength
	}
	in = in[:itotal]
	dst := netip.AddrFrom4([4]byte(in[16:20]))
	found := false
	for _, v := range vips {
		if v == dst {
			found = true
			break
		}
	}
	if !found {
		return nil, DropNotVIP
	}
	if outerTOS&ecnMask == ecnCE {
		switch in[1] & ecnMask {
		case 0: // not-ECT: CE cannot be passed on, the kernel drops it
			return nil, DropECN
		case ecnCE:
		default:
			setTOS(in, in[1]|ecnCE)
		}
	}
	return in, Deliver
}

// setTOS rewrites the TOS byte of an IPv4 header and updates the header
// checksum incrementally (RFC 1624, eqn. 3).
func setTOS(h []byte, tos byte) {
	old := binary.BigEndian.Uint16(h[0:2])
	h[1] = tos
	nw := binary.BigEndian.Uint16(h[0:2])
	sum := uint32(^binary.BigEndian.Uint16(h[10:12])) + uint32(^old) + uint32(nw)
	sum = (sum & 0xffff) + (sum >> 16)
	sum = (sum & 0xffff) + (sum >> 16)
	binary.BigEndian.PutUint16(h[10:12], ^uint16(sum))
}

// DecapStats counts packets by verdict.
type DecapStats struct {
	Received    uint64
	Verdicts    [numVerdicts]uint64
	WriteErrors uint64
}

// Delivered is the number of inner packets handed to the TUN device.
func (s DecapStats) Delivered() uint64 { return s.Verdicts[Deliver] - s.WriteErrors }

// Dropped is the number of packets dropped as malformed or not ours.
func (s DecapStats) Dropped() uint64 {
	var n uint64
	for v := DropShort; v < numVerdicts; v++ {
		n += s.Verdicts[v]
	}
	return n
}

func (s DecapStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "received=%d delivered=%d", s.Received, s.Delivered())
	for v := DropShort; v < numVerdicts; v++ {
		if s.Verdicts[v] != 0 {
			fmt.Fprintf(&b, " drop-%s=%d", v, s.Verdicts[v])
		}
	}
	if s.WriteErrors != 0 {
		fmt.Fprintf(&b, " write-errors=%d", s.WriteErrors)
	}
	return b.String()
}

// Decapsulator moves IP-in-IP packets from a raw socket to a TUN device,
// stripping the outer header. One goroutine, one reused buffer: nothing is
// allocated per packet.
type Decapsulator struct {
	in, out  *os.File
	vips     []netip.Addr
	buf      []byte
	received atomic.Uint64
	verdicts [numVerdicts]atomic.Uint64
	writeErr atomic.Uint64
}

// NewDecapsulator reads packets (outer IPv4 header included) from in and
// writes the inner packets for the VIPs to out. Both should be non-blocking
// files, so that Run can be cancelled.
func NewDecapsulator(in, out *os.File, vips []netip.Addr) *Decapsulator {
	return &Decapsulator{in: in, out: out, vips: vips, buf: make([]byte, 1<<16)}
}

// Stats returns the counters so far.
func (d *Decapsulator) Stats() DecapStats {
	var s DecapStats
	s.Received = d.received.Load()
	for i := range s.Verdicts {
		s.Verdicts[i] = d.verdicts[i].Load()
	}
	s.WriteErrors = d.writeErr.Load()
	return s
}

// errTUNGone means the TUN device was removed under us.
var errTUNGone = errors.New("TUN device is gone")

// Run decapsulates until ctx is done (then it returns nil) or reading fails
// or the TUN device disappears.
func (d *Decapsulator) Run(ctx context.Context) error {
	// Cancellation interrupts the blocked read through its deadline.
	stop := context.AfterFunc(ctx, func() { _ = d.in.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		err := d.step()
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}

// step handles one packet.
func (d *Decapsulator) step() error {
	n, err := d.in.Read(d.buf)
	if err != nil {
		return fmt.Errorf("read IP-in-IP: %w", err)
	}
	d.received.Add(1)
	inner, v := Decapsulate(d.buf[:n], d.vips)
	d.verdicts[v].Add(1)
	if v != Deliver {
		return nil
	}
	if _, err := d.out.Write(inner); err != nil {
		d.writeErr.Add(1)
		// EBADFD/EIO: the device was deleted; nothing will work again.
		if errors.Is(err, syscall.EBADFD) || errors.Is(err, syscall.EIO) || errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("write inner packet: %w: %w", errTUNGone, err)
		}
	}
	return nil
}
