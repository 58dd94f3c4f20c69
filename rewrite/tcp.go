package rewrite

import "encoding/binary"

// TCP sizes, flags and option kinds.
const (
	TCPMinHeaderLen = 20
	// TCPChecksumOffset is where the checksum sits in the TCP header.
	TCPChecksumOffset = 16
	TCPMaxHeaderLen   = 60

	TCPFlagFIN = 0x01
	TCPFlagSYN = 0x02
	TCPFlagRST = 0x04
	TCPFlagPSH = 0x08
	TCPFlagACK = 0x10
	TCPFlagURG = 0x20
	TCPFlagECE = 0x40
	TCPFlagCWR = 0x80

	TCPOptEOL       = 0
	TCPOptNOP       = 1
	TCPOptMSS       = 2
	TCPOptWScale    = 3
	TCPOptSACKPerm  = 4
	TCPOptSACK      = 5
	TCPOptTimestamp = 8
	// TCPOptTOA is the alibaba/LVS "TCP option address" (TCPOPT_ADDR) that
	// carries the client's port and IPv4 address to a FULLNAT real server.
	TCPOptTOA = 254

	tcpOptMSSLen = 4
	// TOALen is TCPOLEN_ADDR: kind, length, port (2), IPv4 address (4).
	TOALen = 8
)

// TCP is a view of a TCP segment: header, options and payload. Obtain one
// from ParseTCP.
type TCP []byte

// ParseTCP checks that b holds a whole TCP header with a sane data offset and
// returns the segment view.
func ParseTCP(b []byte) (TCP, error) {
	if len(b) < TCPMinHeaderLen {
		return nil, ErrTruncated
	}
	hl := int(b[12]>>4) * 4
	if hl < TCPMinHeaderLen || hl > len(b) {
		return nil, ErrBadDataOffset
	}
	return TCP(b), nil
}

// SrcPort returns the source port.
func (t TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(t[0:2]) }

// DstPort returns the destination port.
func (t TCP) DstPort() uint16 { return binary.BigEndian.Uint16(t[2:4]) }

// Seq returns the sequence number.
func (t TCP) Seq() uint32 { return binary.BigEndian.Uint32(t[4:8]) }

// Ack returns the acknowledgment number.
func (t TCP) Ack() uint32 { return binary.BigEndian.Uint32(t[8:12]) }

// HeaderLen returns the data offset in bytes.
func (t TCP) HeaderLen() int { return int(t[12]>>4) * 4 }

// Flags returns the flag byte (TCPFlagFIN ... TCPFlagCWR).
func (t TCP) Flags() uint8 { return t[13] }

// Window returns the window field.
func (t TCP) Window() uint16 { return binary.BigEndian.Uint16(t[14:16]) }

// Checksum returns the checksum field.
func (t TCP) Checksum() uint16 { return binary.BigEndian.Uint16(t[16:18]) }

// Urgent returns the urgent pointer.
func (t TCP) Urgent() uint16 { return binary.BigEndian.Uint16(t[18:20]) }

// Options returns the option bytes.
func (t TCP) Options() []byte { return t[TCPMinHeaderLen:t.HeaderLen()] }

// Payload returns the bytes after the header.
func (t TCP) Payload() []byte { return t[t.HeaderLen():] }

// OptionIter returns an iterator over the options.
func (t TCP) OptionIter() TCPOptionIter { return TCPOptionIter{opts: t.Options()} }

// TCPOption is one option as found in the header.
type TCPOption struct {
	Kind uint8
	// Offset is the option's offset from the start of the TCP header.
	Offset int
	// Data is the option body after kind and length (empty for EOL/NOP).
	Data []byte
}

// TCPOptionIter walks TCP options the way the kernel's tcp_parse_options
// does: NOPs are skipped, EOL ends the walk, and a length below 2 or past the
// header ends it with an error.
type TCPOptionIter struct {
	opts []byte
	off  int
	err  error
}

// Next returns the next option other than NOP, or false at the end or on a
// malformed option (then Err says which).
func (it *TCPOptionIter) Next() (TCPOption, bool) {
	for it.err == nil && it.off < len(it.opts) {
		kind := it.opts[it.off]
		switch kind {
		case TCPOptEOL:
			it.off = len(it.opts)
			return TCPOption{}, false
		case TCPOptNOP:
			it.off++
			continue
		}
		if it.off+1 >= len(it.opts) {
			it.err = ErrBadTCPOption
			return TCPOption{}, false
		}
		size := int(it.opts[it.off+1])
		if size < 2 || it.off+size > len(it.opts) {
			it.err = ErrBadTCPOption
			return TCPOption{}, false
		}
		o := TCPOption{Kind: kind, Offset: TCPMinHeaderLen + it.off, Data: it.opts[it.off+2 : it.off+size]}
		it.off += size
		return o, true
	}
	return TCPOption{}, false
}

// Err returns ErrBadTCPOption if the walk stopped at a malformed option.
func (it *TCPOptionIter) Err() error { return it.err }

// SetSrcPort sets the source port (the checksum is the caller's to update).
func (t TCP) SetSrcPort(v uint16) { binary.BigEndian.PutUint16(t[0:2], v) }

// SetDstPort sets the destination port (the checksum is the caller's).
func (t TCP) SetDstPort(v uint16) { binary.BigEndian.PutUint16(t[2:4], v) }

// SetChecksum sets the checksum field.
func (t TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(t[16:18], v) }
