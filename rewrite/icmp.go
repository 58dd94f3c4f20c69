package rewrite

import "encoding/binary"

// ICMP sizes, types and codes used here.
const (
	ICMPHeaderLen = 8
	// ICMPQuoteL4Len is how much of the offending packet's payload an ICMP
	// error quotes after its IP header (RFC 792: 64 bits).
	ICMPQuoteL4Len = 8

	ICMPEchoReply        = 0
	ICMPDestUnreach      = 3
	ICMPSourceQuench     = 4
	ICMPRedirect         = 5
	ICMPEchoRequest      = 8
	ICMPTimeExceeded     = 11
	ICMPParamProblem     = 12
	ICMPCodeProtoUnreach = 2
	ICMPCodePortUnreach  = 3
	ICMPCodeFragNeeded   = 4
	ICMPCodeTTLExceeded  = 0
)

// ICMPIsError reports whether an ICMP type is an error message, one that
// quotes the packet it is about.
func ICMPIsError(typ uint8) bool {
	switch typ {
	case ICMPDestUnreach, ICMPSourceQuench, ICMPRedirect, ICMPTimeExceeded, ICMPParamProblem:
		return true
	}
	return false
}

// ICMP is a view of an ICMPv4 message. Obtain one from ParseICMP.
type ICMP []byte

// ParseICMP checks that b holds at least an ICMP header and returns the view.
func ParseICMP(b []byte) (ICMP, error) {
	if len(b) < ICMPHeaderLen {
		return nil, ErrTruncated
	}
	return ICMP(b), nil
}

// Type returns the message type.
func (m ICMP) Type() uint8 { return m[0] }

// Code returns the message code.
func (m ICMP) Code() uint8 { return m[1] }

// Checksum returns the checksum field.
func (m ICMP) Checksum() uint16 { return binary.BigEndian.Uint16(m[2:4]) }

// Rest returns the four type-specific header bytes as one word.
func (m ICMP) Rest() uint32 { return binary.BigEndian.Uint32(m[4:8]) }

// ID returns the echo identifier.
func (m ICMP) ID() uint16 { return binary.BigEndian.Uint16(m[4:6]) }

// Seq returns the echo sequence number.
func (m ICMP) Seq() uint16 { return binary.BigEndian.Uint16(m[6:8]) }

// NextHopMTU returns the MTU a "fragmentation needed" message carries
// (RFC 1191).
func (m ICMP) NextHopMTU() uint16 { return binary.BigEndian.Uint16(m[6:8]) }

// Payload returns the bytes after the header: the quoted packet of an error.
func (m ICMP) Payload() []byte { return m[ICMPHeaderLen:] }

// SetChecksum sets the checksum field.
func (m ICMP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(m[2:4], v) }
