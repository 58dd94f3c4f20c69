package capture

import (
	"fmt"
	"net"
)

// Link is what a port needs to know about its interface.
type Link struct {
	Index int
	Name  string
	MTU   int
	MAC   [6]byte
}

// HardwareAddr returns the MAC in net's form, for printing.
func (l Link) HardwareAddr() net.HardwareAddr { return net.HardwareAddr(l.MAC[:]) }

// LookupLink returns the interface called name in the network namespace of
// the calling thread.
func LookupLink(name string) (Link, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return Link{}, fmt.Errorf("capture: interface %q: %w", name, err)
	}
	return linkFrom(ifi)
}

// LinkByIndex returns the interface with this index in the network namespace
// of the calling thread.
func LinkByIndex(index int) (Link, error) {
	ifi, err := net.InterfaceByIndex(index)
	if err != nil {
		return Link{}, fmt.Errorf("capture: interface #%d: %w", index, err)
	}
	return linkFrom(ifi)
}

func linkFrom(ifi *net.Interface) (Link, error) {
	l := Link{Index: ifi.Index, Name: ifi.Name, MTU: ifi.MTU}
	if len(ifi.HardwareAddr) != 6 {
		// lvsd rewrites Ethernet headers; an interface without a 6-byte
		// address (lo has none, tun has none) cannot carry them.
		return l, fmt.Errorf("capture: interface %s has no Ethernet address (%d bytes)", ifi.Name, len(ifi.HardwareAddr))
	}
	copy(l.MAC[:], ifi.HardwareAddr)
	return l, nil
}
