package rewrite

// Reason says why a frame was not parsed, transformed or answered. It is an
// error; returning it never allocates (it is a one-byte value), and as a small
// integer it indexes drop counters directly:
//
//	var drops [rewrite.NumReasons]uint64
//	if r, ok := err.(rewrite.Reason); ok { drops[r]++ }
type Reason uint8

// Reasons. Parse returns the first group; the transforms and builders the rest.
const (
	_ Reason = iota

	// ErrTruncated: a header runs past the end of the frame, or the frame is
	// shorter than the IPv4 total length.
	ErrTruncated
	// ErrUnknownEtherType: neither IPv4 nor ARP after at most one 802.1Q tag.
	ErrUnknownEtherType
	// ErrBadARP: an ARP packet that is not Ethernet/IPv4.
	ErrBadARP
	// ErrBadVersion: the IP version field is not 4.
	ErrBadVersion
	// ErrBadIHL: IHL below 5.
	ErrBadIHL
	// ErrBadIPChecksum: the IPv4 header checksum does not verify (ip_rcv drops
	// these before IPVS sees them).
	ErrBadIPChecksum
	// ErrBadTotalLength: the IPv4 total length is shorter than the header.
	ErrBadTotalLength
	// ErrFragment: an IPv4 fragment (MF set or a non-zero offset). The Packet
	// is valid through L3; no L4 header was read.
	ErrFragment
	// ErrUnknownProtocol: not TCP, UDP or ICMP. The Packet is valid through L3.
	ErrUnknownProtocol
	// ErrBadDataOffset: a TCP data offset below 5 words or past the packet.
	ErrBadDataOffset
	// ErrBadUDPLength: the UDP length field disagrees with the IP payload length.
	ErrBadUDPLength
	// ErrBadICMPQuote: an ICMP error whose quoted packet is not an IPv4 header
	// plus 8 bytes of a first fragment.
	ErrBadICMPQuote
	// ErrBadTCPOption: malformed TCP options (a length below 2 or past the header).
	ErrBadTCPOption

	// ErrBadPacket: the Packet does not describe this frame (not filled by
	// Parse, or filled for another frame).
	ErrBadPacket
	// ErrNotIPv4Addr: an address argument is not an IPv4 address.
	ErrNotIPv4Addr
	// ErrWrongProtocol: the transform does not apply to this protocol (for
	// example NAT of an ICMP echo, or TOA on UDP).
	ErrWrongProtocol
	// ErrTTLExpired: TTL <= 1; the caller sends ICMP time exceeded instead of
	// forwarding (IPVS decrement_ttl).
	ErrTTLExpired
	// ErrFragNeeded: DF is set and the packet exceeds the MTU; the caller
	// sends ICMP fragmentation needed instead of forwarding.
	ErrFragNeeded
	// ErrMTUTooSmall: the tunnel MTU would fall below 68 (IPVS drops).
	ErrMTUTooSmall
	// ErrExceedsMTU: adding the option would exceed the MTU (FULLNAT
	// FULLNAT_ADD_TOA_FAIL_LEN); the packet is forwarded without it.
	ErrExceedsMTU
	// ErrNoOptionSpace: the TCP header has no room for the option
	// (FULLNAT_ADD_TOA_HEAD_FULL).
	ErrNoOptionSpace
	// ErrNoRoom: the caller's buffer is too small for the result.
	ErrNoRoom
	// ErrNotICMPError: the packet is not an ICMP error with a parsed quote.
	ErrNotICMPError
	// ErrNotSYN: MSS rewriting applies to SYN (or SYN-ACK) segments only.
	ErrNotSYN
	// ErrIsReset: a TCP RST is never answered with a RST (RFC 793).
	ErrIsReset
	// ErrAboutICMPError: no ICMP error is sent about an ICMP error (RFC 1122
	// 3.2.2).
	ErrAboutICMPError
	// ErrNotEchoRequest: the packet is not an ICMP echo request.
	ErrNotEchoRequest
	// ErrHasIPOptions: the request carries IP options, which an in-place reply
	// cannot echo correctly.
	ErrHasIPOptions
	// ErrNotARPRequest: the packet is not an ARP request.
	ErrNotARPRequest

	numReasons
)

// NumReasons is one more than the largest Reason, for counter arrays.
const NumReasons = int(numReasons)

// Error returns a short description.
func (r Reason) Error() string {
	switch r {
	case ErrTruncated:
		return "rewrite: truncated header"
	case ErrUnknownEtherType:
		return "rewrite: unknown EtherType"
	case ErrBadARP:
		return "rewrite: ARP is not Ethernet/IPv4"
	case ErrBadVersion:
		return "rewrite: IP version is not 4"
	case ErrBadIHL:
		return "rewrite: bad IPv4 header length"
	case ErrBadIPChecksum:
		return "rewrite: bad IPv4 header checksum"
	case ErrBadTotalLength:
		return "rewrite: bad IPv4 total length"
	case ErrFragment:
		return "rewrite: IPv4 fragment"
	case ErrUnknownProtocol:
		return "rewrite: unknown IP protocol"
	case ErrBadDataOffset:
		return "rewrite: bad TCP data offset"
	case ErrBadUDPLength:
		return "rewrite: bad UDP length"
	case ErrBadICMPQuote:
		return "rewrite: bad packet quoted in ICMP error"
	case ErrBadTCPOption:
		return "rewrite: malformed TCP options"
	case ErrBadPacket:
		return "rewrite: Packet does not describe this frame"
	case ErrNotIPv4Addr:
		return "rewrite: address is not IPv4"
	case ErrWrongProtocol:
		return "rewrite: transform does not apply to this protocol"
	case ErrTTLExpired:
		return "rewrite: TTL expired in transit"
	case ErrFragNeeded:
		return "rewrite: fragmentation needed and DF set"
	case ErrMTUTooSmall:
		return "rewrite: tunnel MTU below 68"
	case ErrExceedsMTU:
		return "rewrite: option would exceed the MTU"
	case ErrNoOptionSpace:
		return "rewrite: no TCP option space"
	case ErrNoRoom:
		return "rewrite: buffer too small"
	case ErrNotICMPError:
		return "rewrite: not an ICMP error"
	case ErrNotSYN:
		return "rewrite: not a SYN segment"
	case ErrIsReset:
		return "rewrite: segment is a RST"
	case ErrAboutICMPError:
		return "rewrite: packet is an ICMP error"
	case ErrNotEchoRequest:
		return "rewrite: not an ICMP echo request"
	case ErrHasIPOptions:
		return "rewrite: IP options present"
	case ErrNotARPRequest:
		return "rewrite: not an ARP request"
	}
	return "rewrite: unknown reason"
}

// String returns the same text as Error.
func (r Reason) String() string { return r.Error() }
