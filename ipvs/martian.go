package ipvs

import (
	"net/netip"

	"lvslab/rewrite"
)

// Martians: addresses no packet may come from, as the kernel's input path
// judges them before IPVS sees a packet (ip_route_input_slow and
// fib_validate_source) and as arp_process judges an ARP sender. lvsd reads
// frames before the kernel does, so it must apply the same rules itself.

// martianAddr reports an address that is never a unicast source: 0.0.0.0/8
// ("this network"), 127.0.0.0/8 (loopback, route_localnet being off),
// 224.0.0.0/4 (multicast) and 255.255.255.255 (limited broadcast).
func martianAddr(a [4]byte) bool {
	return a[0] == 0 || a[0] == 127 || a[0]&0xf0 == 0xe0 || a == [4]byte{255, 255, 255, 255}
}

// ownAddr reports an address of this director: a VIP, an address a mark
// rule claims, one of the namespace's own addresses, or the directed
// broadcast of a subnet lvsd forwards on (the kernel's local table holds it
// as a broadcast route, which fib_validate_source refuses as a source).
func (e *Engine) ownAddr(a [4]byte) bool {
	if e.owned[a] > 0 || e.markAddrs[a] || e.localAddrs[a] {
		return true
	}
	for _, ifc := range e.ifaces {
		for _, p := range ifc.Addrs {
			if !p.Addr().Is4() {
				continue
			}
			if p.Addr().As4() == a {
				return true
			}
			if p.Bits() <= 30 && directedBroadcast(p) == a {
				return true
			}
		}
	}
	return false
}

// directedBroadcast is the last address of p's subnet.
func directedBroadcast(p netip.Prefix) [4]byte {
	a := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// martianSource reports a packet lvsd must drop for its source address:
// martianAddr, or one of the director's own addresses, the VIP included (a
// LAND attack has source and destination both the VIP). Called only for
// packets that belong to no connection, so it costs nothing on established
// flows.
func (e *Engine) martianSource(p *rewrite.Packet) bool {
	a := p.Src.As4()
	return martianAddr(a) || e.ownAddr(a)
}

// badHardwareAddr reports an ARP sender hardware address no host has: a
// group (multicast or broadcast) address, or all zeros. Learning one black-
// holes whoever the ARP names.
func badHardwareAddr(m rewrite.MAC) bool {
	return m[0]&1 != 0 || m == rewrite.MAC{}
}

// onLink reports whether addr is a neighbour on ifc: the namespace's route
// to addr leaves by ifc without a gateway (the interface's subnet holds
// it). Without a route, the interface's own prefixes decide.
func (e *Engine) onLink(ifc *Iface, addr netip.Addr) bool {
	if r, _, ok := e.routes.Lookup(addr); ok {
		return r.Ifindex == ifc.Index && !r.Gw.IsValid()
	}
	for _, p := range ifc.Addrs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
