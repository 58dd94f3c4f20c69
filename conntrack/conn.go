package conntrack

import (
	"net/netip"
	"time"
)

// ConnID addresses a connection record in the table's slab. 0 is no
// connection.
type ConnID uint32

// Dir is a packet's direction relative to its connection.
type Dir uint8

const (
	// DirIn is client to real server (ip_vs_in).
	DirIn Dir = iota
	// DirOut is real server to client (ip_vs_out), seen only when the
	// director is on the return path (NAT, FULLNAT).
	DirOut
)

// Fwd is the forwarding method, IP_VS_CONN_F_FWD_MASK of the flags.
type Fwd uint8

// Forwarding methods with the kernel's values; FullNAT is Alibaba's 0x5.
const (
	FwdMasq    Fwd = 0
	FwdLocal   Fwd = 1
	FwdTunnel  Fwd = 2
	FwdRoute   Fwd = 3
	FwdBypass  Fwd = 4
	FwdFullNAT Fwd = 5
)

// String is ipvsadm's Forward column (FullNat as the Alibaba ipvsadm prints it).
func (f Fwd) String() string {
	switch f {
	case FwdMasq:
		return "Masq"
	case FwdLocal:
		return "Local"
	case FwdTunnel:
		return "Tunnel"
	case FwdRoute:
		return "Route"
	case FwdBypass:
		return "Bypass"
	case FwdFullNAT:
		return "FullNat"
	}
	return "?"
}

// Flags are a connection's IP_VS_CONN_F_* flags, with the kernel's values.
type Flags uint16

const (
	FlagFwdMask   Flags = 0x0007
	FlagHashed    Flags = 0x0040 // in the lookup index
	FlagNoOutput  Flags = 0x0080 // director does not see replies (DR, TUN)
	FlagInactive  Flags = 0x0100 // counted in the dest's InactConns
	FlagTemplate  Flags = 0x1000 // persistence template
	FlagOnePacket Flags = 0x2000 // UDP one-packet scheduling: never hashed

	// flagLive marks an allocated slab slot. The kernel has no such flag;
	// 0x8000 is unused by IPVS.
	flagLive Flags = 0x8000
)

// Conn is one tracked connection or persistence template. It is 88 bytes and
// holds no Go pointers, so the slab of them is never scanned by the garbage
// collector; the destination is a handle into the table's destination list.
type Conn struct {
	deadline          uint64 // timer wheel tick (ms) at which the timer fires
	inBytes, outBytes uint64

	caddr, vaddr, daddr, laddr [4]byte // laddr is caddr unless FULLNAT
	cport, vport, dport, lport uint16

	inPkts, outPkts uint32
	timeout         uint32 // ms, cp->timeout: re-armed with this value
	control         ConnID // controlling template (cp->control)
	nControl        uint32 // connections this one controls (cp->n_control)
	dest            uint32 // handle in Table.dests, 0 for none
	wnext, wprev    ConnID // timer wheel list links; wnext is the free-list link when free

	flags Flags
	wslot uint16 // level*64+slot in the timer wheel, noSlot when not filed
	proto uint8
	state State
}

// Proto is the IP protocol (ProtoIP only for fwmark templates).
func (c *Conn) Proto() uint8 { return c.proto }

// State is the protocol or template state.
func (c *Conn) State() State { return c.state }

// Flags are the IP_VS_CONN_F_* flags.
func (c *Conn) Flags() Flags { return c.flags &^ flagLive }

// Fwd is the forwarding method.
func (c *Conn) Fwd() Fwd { return Fwd(c.flags & FlagFwdMask) }

// Template reports whether this is a persistence template.
func (c *Conn) Template() bool { return c.flags&FlagTemplate != 0 }

// Client is caddr:cport (for a template: the masked client address, port 0).
func (c *Conn) Client() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(c.caddr), c.cport)
}

// Virtual is vaddr:vport (for a fwmark template the mark as an address).
func (c *Conn) Virtual() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(c.vaddr), c.vport)
}

// Real is daddr:dport, the real server the connection is forwarded to.
func (c *Conn) Real() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(c.daddr), c.dport)
}

// Local is FULLNAT's laddr:lport; the zero AddrPort for other methods.
func (c *Conn) Local() netip.AddrPort {
	if c.Fwd() != FwdFullNAT {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.AddrFrom4(c.laddr), c.lport)
}

// Timeout is cp->timeout: what the timer is re-armed with on the next packet
// (for a template, on the next controlled connection).
func (c *Conn) Timeout() time.Duration { return time.Duration(c.timeout) * time.Millisecond }

// Control is the controlling template, 0 for none.
func (c *Conn) Control() ConnID { return c.control }

// NControl is the number of connections this one controls.
func (c *Conn) NControl() uint32 { return c.nControl }

// Counters are the packets and bytes seen in each direction.
func (c *Conn) Counters() (inPkts, outPkts uint32, inBytes, outBytes uint64) {
	return c.inPkts, c.outPkts, c.inBytes, c.outBytes
}
