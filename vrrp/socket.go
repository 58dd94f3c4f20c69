package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Conn is a raw IPv4 socket for one protocol (112, or 51 for AH) bound to
// one interface: IP_HDRINCL (we write the header, TTL 255, TOS 0xc0, our IP
// ID, as keepalived does), joined to the multicast group unless unicast,
// multicast loop off so our own adverts do not come back. It is also what
// keeps the kernel from answering unicast adverts with ICMP protocol
// unreachable (reference §7.11).
type Conn struct {
	f       *os.File
	ifname  string
	ifindex int
	group   netip.Addr
}

// Open opens the socket on ifname. group is the multicast group to join
// (invalid: none, for unicast instances or send-only sockets).
func Open(ifname string, proto int, group netip.Addr) (*Conn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vrrp: interface %s: %w", ifname, err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, proto)
	if err != nil {
		return nil, fmt.Errorf("vrrp: raw socket proto %d: %w", proto, err)
	}
	fail := func(what string, err error) (*Conn, error) {
		syscall.Close(fd)
		return nil, fmt.Errorf("vrrp: %s on %s: %w", what, ifname, err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_HDRINCL, 1); err != nil {
		return fail("IP_HDRINCL", err)
	}
	if err := syscall.BindToDevice(fd, ifname); err != nil {
		return fail("SO_BINDTODEVICE", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_LOOP, 0); err != nil {
		return fail("IP_MULTICAST_LOOP", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, TTL); err != nil {
		return fail("IP_MULTICAST_TTL", err)
	}
	mreq := &syscall.IPMreqn{Ifindex: int32(ifi.Index)}
	if err := syscall.SetsockoptIPMreqn(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, mreq); err != nil {
		return fail("IP_MULTICAST_IF", err)
	}
	if group.IsValid() {
		mreq.Multiaddr = group.As4()
		if err := syscall.SetsockoptIPMreqn(fd, syscall.IPPROTO_IP, syscall.IP_ADD_MEMBERSHIP, mreq); err != nil {
			return fail("join "+group.String(), err)
		}
	}
	return &Conn{f: os.NewFile(uintptr(fd), "vrrp:"+ifname), ifname: ifname, ifindex: ifi.Index, group: group}, nil
}

// Read reads one IPv4 packet (header included) into b.
func (c *Conn) Read(b []byte) (int, error) { return c.f.Read(b) }

// SetReadDeadline bounds a blocked Read.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

// WriteTo sends one complete IPv4 packet to dst.
func (c *Conn) WriteTo(pkt []byte, dst netip.Addr) error {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	sa := &syscall.SockaddrInet4{Addr: dst.As4()}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = syscall.Sendto(int(fd), pkt, 0, sa)
		return !errors.Is(serr, syscall.EAGAIN)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("vrrp: send to %s on %s: %w", dst, c.ifname, err)
	}
	return nil
}

// Close closes the socket (and unblocks a Read).
func (c *Conn) Close() error { return c.f.Close() }

// GARP sends gratuitous ARPs on one interface through an AF_PACKET socket.
type GARP struct {
	fd      int
	ifindex int
	mac     [6]byte
	frame   [42]byte
}

// OpenGARP opens the sender for ifname; src is the MAC the frames carry
// (the interface's own, or the VMAC; keepalived uses the interface's,
// reference §2.3).
func OpenGARP(ifname string) (*GARP, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vrrp: garp interface %s: %w", ifname, err)
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vrrp: packet socket on %s: %w", ifname, err)
	}
	g := &GARP{fd: fd, ifindex: ifi.Index}
	copy(g.mac[:], ifi.HardwareAddr)
	return g, nil
}

// PutGARP writes keepalived's gratuitous ARP for vip from mac into b (42
// bytes): a broadcast ARP request, sender = target = vip, target hardware
// ff:ff:ff:ff:ff:ff.
func PutGARP(b []byte, mac [6]byte, vip netip.Addr) {
	bcast := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	copy(b[0:6], bcast[:])
	copy(b[6:12], mac[:])
	binary.BigEndian.PutUint16(b[12:14], 0x0806)
	a := b[14:]
	binary.BigEndian.PutUint16(a[0:2], 1)      // Ethernet
	binary.BigEndian.PutUint16(a[2:4], 0x0800) // IPv4
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], 1) // request
	ip := vip.As4()
	copy(a[8:14], mac[:])
	copy(a[14:18], ip[:])
	copy(a[18:24], bcast[:])
	copy(a[24:28], ip[:])
}

// Send sends one gratuitous ARP for vip.
func (g *GARP) Send(vip netip.Addr) error {
	PutGARP(g.frame[:], g.mac, vip)
	sa := &syscall.SockaddrLinklayer{Ifindex: g.ifindex, Protocol: 0x0608, Halen: 6}
	copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := syscall.Sendto(g.fd, g.frame[:], 0, sa); err != nil {
		return fmt.Errorf("vrrp: gratuitous ARP for %s: %w", vip, err)
	}
	return nil
}

// Close closes the sender.
func (g *GARP) Close() error { return syscall.Close(g.fd) }
