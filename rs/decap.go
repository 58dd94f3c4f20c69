package rs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"lvslab/rewrite"
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
	DropInnerHeaderLength                // inner header shorter than 20 bytes, IHL < 5 or beyond the payload
	DropInnerTotalLength                 // inner total length beyond the payload or below its header
	DropNotVIP                           // inner destination is none of the VIPs
	DropECN                              // outer CE over a not-ECT inner packet (RFC 6040, as the kernel's ipip)
	DropOuterChecksum                    // outer header checksum does not verify
	DropInnerChecksum                    // inner header checksum does not verify (ip_rcv would drop it after the TUN)
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
	case DropOuterChecksum:
		return "outer-checksum"
	case DropInnerChecksum:
		return "inner-checksum"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

const (
	ecnMask = 0x03
	ecnCE   = 0x03
)

// Decapsulate validates an IPv4 packet carrying IP-in-IP (outer header
// included, as a raw socket delivers it) and returns the inner packet, a
// subslice of pkt. Both headers are checked as ip_rcv checks them
// (rewrite.ParseIPv4: version, IHL, header checksum, total length). The
// inner checksums are left as they are: they were right when the director
// encapsulated. The one change is the kernel's ECN decapsulation (RFC
// 6040): outer CE marks an ECN-capable inner packet CE, with the header
// checksum adjusted incrementally (RFC 1624).
func Decapsulate(pkt []byte, vips []netip.Addr) ([]byte, Verdict) {
	outer, err := rewrite.ParseIPv4(pkt)
	if err != nil {
		return nil, parseVerdict(pkt, err, &outerVerdicts)
	}
	if outer.Protocol() != rewrite.ProtoIPIP {
		return nil, DropOuterProtocol
	}
	if outer.MF() || outer.FragOffset() != 0 {
		return nil, DropOuterFragment
	}
	payload := outer.Payload()
	in, err := rewrite.ParseIPv4(payload)
	if err != nil {
		return nil, parseVerdict(payload, err, &innerVerdicts)
	}
	if !slices.Contains(vips, in.Dst()) {
		return nil, DropNotVIP
	}
	if outer.TOS()&ecnMask == ecnCE {
		switch tos := in.TOS(); tos & ecnMask {
		case 0: // not-ECT: CE cannot be passed on, the kernel drops it
			return nil, DropECN
		case ecnCE:
		default:
			// TOS is the low byte of the header's first 16-bit word.
			in.SetTOS(tos | ecnCE)
			in.SetChecksum(rewrite.UpdateChecksum16(in.Checksum(), uint16(tos), uint16(tos|ecnCE)))
		}
	}
	return in, Deliver
}

// headerVerdicts are the drops of one IPv4 header, outer or inner.
type headerVerdicts struct {
	short, version, headerLength, checksum, totalLength Verdict
}

var (
	outerVerdicts = headerVerdicts{DropShort, DropOuterVersion, DropOuterHeaderLength, DropOuterChecksum, DropOuterTotalLength}
	innerVerdicts = headerVerdicts{DropInnerHeaderLength, DropInnerVersion, DropInnerHeaderLength, DropInnerChecksum, DropInnerTotalLength}
)

// parseVerdict maps rewrite.ParseIPv4's reason for b to a counter.
// ErrTruncated covers three cases the counters tell apart: fewer bytes than
// a minimal header, an IHL beyond them, a total length beyond them.
func parseVerdict(b []byte, err error, v *headerVerdicts) Verdict {
	r, _ := err.(rewrite.Reason)
	switch r {
	case rewrite.ErrTruncated:
		switch {
		case len(b) < rewrite.IPv4MinHeaderLen:
			return v.short
		case rewrite.IPv4(b).HeaderLen() > len(b):
			return v.headerLength
		}
		return v.totalLength
	case rewrite.ErrBadVersion:
		return v.version
	case rewrite.ErrBadIHL:
		return v.headerLength
	case rewrite.ErrBadIPChecksum:
		return v.checksum
	}
	return v.totalLength // rewrite.ErrBadTotalLength
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
