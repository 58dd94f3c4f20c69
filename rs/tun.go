package rs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"
)

// KernelIPIP reports whether this kernel decapsulates IP-in-IP itself: the
// ipip module is loaded or built in, or `modprobe -q ipip` loads it.
func KernelIPIP() bool {
	if haveIPIPModule() {
		return true
	}
	if path, err := exec.LookPath("modprobe"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = exec.CommandContext(ctx, path, "-q", "ipip").Run() // failure just means no
	}
	return haveIPIPModule()
}

func haveIPIPModule() bool {
	// Built-in ipip shows here too: it has module parameters.
	_, err := os.Stat("/sys/module/ipip")
	return err == nil
}

// openTUN creates a TUN device (layer 3, no packet-information header) in
// the calling thread's network namespace. It is not persistent: it goes
// away, with its addresses and sysctls, when the returned file is closed,
// also when the process dies.
func openTUN(name string) (*os.File, string, error) {
	// The device is created in the namespace of the thread that opens
	// /dev/net/tun.
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("TUN name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("create TUN device %s: %w", name, err)
	}
	// Non-blocking, so the runtime poller owns it and writes never pin a
	// thread.
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+ifr.Name()), ifr.Name(), nil
}

// openIPIPSocket opens the raw socket that receives IP-in-IP packets
// addressed to this host (with their outer header). While it is open the
// kernel does not answer them with ICMP protocol-unreachable.
func openIPIPSocket() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP)
	if err != nil {
		return nil, fmt.Errorf("raw IPPROTO_IPIP socket: %w", err)
	}
	// Bursts arrive faster than one goroutine wakes up: give them room.
	// Best effort: the default still works.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	return os.NewFile(uintptr(fd), "raw:ipip"), nil
}
