package rewrite

import (
	"encoding/binary"
	"fmt"
)

// Ethernet sizes and EtherTypes.
const (
	EthernetHeaderLen = 14
	VLANTagLen        = 4
	// EthernetMinFrameLen is ETH_ZLEN: the shortest frame on the wire without
	// the FCS. Built frames are zero-padded to it, as a NIC would.
	EthernetMinFrameLen = 60

	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100
)

// MAC is an Ethernet address as a value (net.HardwareAddr is a slice, which
// would put a pointer in every struct holding one).
type MAC [6]byte

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }

// String formats the address as 02:00:5e:10:00:01.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// Ethernet is a view of an Ethernet frame, optionally with one 802.1Q tag.
// Obtain one from ParseEthernet; accessors assume its checks passed.
type Ethernet []byte

// ParseEthernet checks that b holds an Ethernet header (and the whole tag
// when the outer EtherType is 802.1Q) and returns it as a view.
func ParseEthernet(b []byte) (Ethernet, error) {
	if len(b) < EthernetHeaderLen {
		return nil, ErrTruncated
	}
	if binary.BigEndian.Uint16(b[12:14]) == EtherTypeVLAN && len(b) < EthernetHeaderLen+VLANTagLen {
		return nil, ErrTruncated
	}
	return Ethernet(b), nil
}

// Dst returns the destination address.
func (e Ethernet) Dst() MAC { return MAC(e[0:6]) }

// Src returns the source address.
func (e Ethernet) Src() MAC { return MAC(e[6:12]) }

// SetDst sets the destination address.
func (e Ethernet) SetDst(m MAC) { copy(e[0:6], m[:]) }

// SetSrc sets the source address.
func (e Ethernet) SetSrc(m MAC) { copy(e[6:12], m[:]) }

// Tagged reports whether the frame carries an 802.1Q tag.
func (e Ethernet) Tagged() bool { return binary.BigEndian.Uint16(e[12:14]) == EtherTypeVLAN }

// TCI returns the 802.1Q tag control information (priority, DEI, VLAN ID),
// or 0 for an untagged frame.
func (e Ethernet) TCI() uint16 {
	if !e.Tagged() {
		return 0
	}
	return binary.BigEndian.Uint16(e[14:16])
}

// EtherType returns the type of the payload, after the tag if there is one.
func (e Ethernet) EtherType() uint16 {
	if e.Tagged() {
		return binary.BigEndian.Uint16(e[16:18])
	}
	return binary.BigEndian.Uint16(e[12:14])
}

// HeaderLen returns 14, or 18 with a tag.
func (e Ethernet) HeaderLen() int {
	if e.Tagged() {
		return EthernetHeaderLen + VLANTagLen
	}
	return EthernetHeaderLen
}

// putEthernet writes an Ethernet header (tagged when tci != 0) at the start
// of b and returns its length. b must hold 18 bytes.
func putEthernet(b []byte, dst, src MAC, tci, etherType uint16) int {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	if tci == 0 {
		binary.BigEndian.PutUint16(b[12:14], etherType)
		return EthernetHeaderLen
	}
	binary.BigEndian.PutUint16(b[12:14], EtherTypeVLAN)
	binary.BigEndian.PutUint16(b[14:16], tci)
	binary.BigEndian.PutUint16(b[16:18], etherType)
	return EthernetHeaderLen + VLANTagLen
}

// l2Len is the header length putEthernet writes.
func l2Len(tci uint16) int {
	if tci == 0 {
		return EthernetHeaderLen
	}
	return EthernetHeaderLen + VLANTagLen
}
