package main

import (
	"fmt"
	"net/netip"
	"os"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lvslab/internal/netns"
	"lvslab/ipvs"
	"lvslab/rewrite"
)

// localDev is the TAP device through which packets for LOCALNODE real
// servers reach this namespace's own kernel: a frame written to a TAP is
// received by the stack as if it had arrived on that device. The device is
// not persistent, so it disappears with lvsd, even after a crash.
type localDev struct {
	f   *os.File
	mac rewrite.MAC
}

func (d *localDev) Write(b []byte) (int, error) { return d.f.Write(b) }
func (d *localDev) MAC() rewrite.MAC            { return d.mac }

// openLocal creates and brings up the TAP device name, with reverse-path
// filtering off on it (the client's address is not reachable through it).
func openLocal(name string, nl *netlink.Handle) (ipvs.LocalPort, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], name)
	req.flags = unix.IFF_TAP | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("create TAP %s: %w", name, errno)
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	link, err := nl.LinkByName(name)
	if err == nil {
		err = nl.LinkSetUp(link)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("TAP %s up: %w", name, err)
	}
	if err := netns.WriteSysctl("net/ipv4/conf/"+name+"/rp_filter", "0"); err != nil {
		f.Close()
		return nil, fmt.Errorf("TAP %s: %w", name, err)
	}
	return &localDev{f: f, mac: rewrite.MAC(link.Attrs().HardwareAddr)}, nil
}

// localAddrs lists every IPv4 address of the namespace, except on the
// local-delivery device itself.
func localAddrs(nl *netlink.Handle) ([]netip.Addr, error) {
	list, err := nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && !ip.IsLoopback() {
			out = append(out, ip)
		}
	}
	return out, nil
}
