package rewrite

import "encoding/binary"

// UDPHeaderLen is the size of a UDP header.
const (
	UDPHeaderLen = 8
	// UDPChecksumOffset is where the checksum sits in the UDP header.
	UDPChecksumOffset = 6
)

// UDP is a view of a UDP datagram. Obtain one from ParseUDP.
type UDP []byte

// ParseUDP checks that b holds a UDP datagram whose length field matches
// len(b) (b being the IP payload) and returns the view.
func ParseUDP(b []byte) (UDP, error) {
	if len(b) < UDPHeaderLen {
		return nil, ErrTruncated
	}
	if int(binary.BigEndian.Uint16(b[4:6])) != len(b) {
		return nil, ErrBadUDPLength
	}
	return UDP(b), nil
}

// SrcPort returns the source port.
func (u UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(u[0:2]) }

// DstPort returns the destination port.
func (u UDP) DstPort() uint16 { return binary.BigEndian.Uint16(u[2:4]) }

// Length returns the length field.
func (u UDP) Length() uint16 { return binary.BigEndian.Uint16(u[4:6]) }

// Checksum returns the checksum field; 0 means the sender sent none.
func (u UDP) Checksum() uint16 { return binary.BigEndian.Uint16(u[6:8]) }

// Payload returns the bytes after the header.
func (u UDP) Payload() []byte { return u[UDPHeaderLen:] }
