package synproxy

// Reason says why a frame was not answered, accepted or adjusted. Like
// rewrite.Reason it is a one-byte error that never allocates and indexes
// counters; functions here return either kind (rewrite's for frames that do
// not parse as the TCP segment they should be).
type Reason uint8

const (
	_ Reason = iota
	// ErrNotPureSYN: SYNACK wants a SYN without ACK, RST or FIN.
	ErrNotPureSYN
	// ErrNotPureACK: CheckACK wants an ACK without SYN, RST or FIN.
	ErrNotPureACK
	// ErrCookieStale: the cookie is CounterTries minutes old or more (or
	// from the future): SYNPROXY_BAD_ACK in the fork.
	ErrCookieStale
	// ErrBadCookie: the cookie's data bits are not ones we issue: a forged
	// or corrupted ACK (SYNPROXY_BAD_ACK).
	ErrBadCookie
	// ErrNotServerSYNACK: not a SYN+ACK acknowledging our SYN.
	ErrNotServerSYNACK
	// ErrNotTCP: the packet is not a parsed TCP segment.
	ErrNotTCP

	numReasons
)

// NumReasons is one more than the largest Reason.
const NumReasons = int(numReasons)

// Error returns a short description.
func (r Reason) Error() string {
	switch r {
	case ErrNotPureSYN:
		return "synproxy: not a pure SYN"
	case ErrNotPureACK:
		return "synproxy: not a pure ACK"
	case ErrCookieStale:
		return "synproxy: cookie too old"
	case ErrBadCookie:
		return "synproxy: bad cookie"
	case ErrNotServerSYNACK:
		return "synproxy: not the real server's SYN+ACK to our SYN"
	case ErrNotTCP:
		return "synproxy: not a TCP segment"
	}
	return "synproxy: unknown reason"
}
