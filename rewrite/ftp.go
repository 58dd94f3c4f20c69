package rewrite

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"strconv"
)

// The FTP control messages the kernel's ip_vs_ftp helper follows
// (net/netfilter/ipvs/ip_vs_ftp.c, ip_vs_ftp_get_addrport): a client's PASV
// or EPSV command announces a passive reply, the server's "227 Entering
// Passive Mode (h1,h2,h3,h4,p1,p2)" or "229 Entering Extended Passive Mode
// (|||port|)" carries the data port, and a client's "PORT h1,h2,h3,h4,p1,p2"
// or "EPRT |1|a.b.c.d|port|" names where the server must connect back. These
// functions find them at the start of a TCP payload, format the replacement
// text and splice it into the frame with the length change and incremental
// checksums; the caller keeps the per-connection sequence offset (SeqAdjust).
// Like the rest of the package they never allocate.

// FTPKind names an FTP control message with an address in it.
type FTPKind uint8

// FTP messages.
const (
	FTPNone FTPKind = iota
	// FTPPasv is the 227 reply to PASV: (h1,h2,h3,h4,p1,p2).
	FTPPasv
	// FTPEpsv is the 229 reply to EPSV: (|||port|), no address.
	FTPEpsv
	// FTPPort is the PORT command: h1,h2,h3,h4,p1,p2.
	FTPPort
	// FTPEprt is the EPRT command: |1|a.b.c.d|port| (RFC 2428, IPv4 only).
	FTPEprt
)

var ftpKindNames = [...]string{"none", "PASV", "EPSV", "PORT", "EPRT"}

func (k FTPKind) String() string {
	if int(k) < len(ftpKindNames) {
		return ftpKindNames[k]
	}
	return "FTPKind(" + strconv.Itoa(int(k)) + ")"
}

// FTPMaxAddressLen bounds the text FormatFTPAddress writes:
// "|1|255.255.255.255|65535|" is 25 bytes.
const FTPMaxAddressLen = 25

// FTPAddress is an address found in an FTP control message.
type FTPAddress struct {
	Kind FTPKind
	// Addr is the address in the text; invalid for EPSV, whose reply
	// names none (the control connection's peer is meant).
	Addr netip.Addr
	Port uint16
	// Start and End delimit, in the TCP payload, the text a rewrite
	// replaces: "h1,...,p2" for PASV and PORT, "|1|a.b.c.d|port|" for EPRT,
	// "|||port|" for EPSV.
	Start, End int
}

// AddrPort is the address and port as one value.
func (a FTPAddress) AddrPort() netip.AddrPort { return netip.AddrPortFrom(a.Addr, a.Port) }

// FTPPassiveRequest scans a client's payload for the PASV or EPSV command
// anywhere in it, as ip_vs_ftp_in does ("PASV\r\n", "EPSV\r\n" or "EPSV "
// followed by an argument, case-insensitive), and returns which reply to
// expect: FTPPasv, FTPEpsv, or FTPNone.
func FTPPassiveRequest(payload []byte) FTPKind {
	for i := 0; i+6 <= len(payload); i++ {
		c := payload[i] | 0x20
		if c != 'p' && c != 'e' {
			continue
		}
		w := payload[i : i+6]
		if hasPrefixFold(w, "PASV\r\n") {
			return FTPPasv
		}
		if hasPrefixFold(w, "EPSV\r\n") || hasPrefixFold(w, "EPSV ") {
			return FTPEpsv
		}
	}
	return FTPNone
}

// ParseFTPReply finds the reply of kind want (FTPPasv: "227 ", FTPEpsv:
// "229 ") at the start of a server's payload and returns the address in it.
// It reports false for anything else, including a reply cut short by the
// segment's end (the kernel's "partial match", which it also leaves alone).
func ParseFTPReply(payload []byte, want FTPKind) (FTPAddress, bool) {
	switch want {
	case FTPPasv:
		if !hasPrefixFold(payload, "227 ") {
			return FTPAddress{}, false
		}
		// "(" is optional: the address starts at the first digit or
		// after the first run of "(".
		s := 4
		for ; s < len(payload) && !isDigit(payload[s]) && payload[s] != '('; s++ {
		}
		for ; s < len(payload) && payload[s] == '('; s++ {
		}
		return parseHostPort(payload, s, FTPPasv)
	case FTPEpsv:
		if !hasPrefixFold(payload, "229 ") {
			return FTPAddress{}, false
		}
		s := 4
		for ; s < len(payload) && payload[s] != '('; s++ {
		}
		for ; s < len(payload) && payload[s] == '('; s++ {
		}
		return parseExtended(payload, s, FTPEpsv)
	}
	return FTPAddress{}, false
}

// ParseFTPCommand finds a PORT or EPRT command at the start of a client's
// payload and returns the address in it.
func ParseFTPCommand(payload []byte) (FTPAddress, bool) {
	switch {
	case hasPrefixFold(payload, "PORT "):
		s := 5
		for ; s < len(payload) && payload[s] == ' '; s++ {
		}
		return parseHostPort(payload, s, FTPPort)
	case hasPrefixFold(payload, "EPRT "):
		s := 5
		for ; s < len(payload) && payload[s] == ' '; s++ {
		}
		return parseExtended(payload, s, FTPEprt)
	}
	return FTPAddress{}, false
}

// parseHostPort reads "h1,h2,h3,h4,p1,p2" at b[s:]: six decimal numbers of
// at most 255, ended by any other character (which must be there: a number
// running into the segment's end may continue in the next one).
func parseHostPort(b []byte, s int, kind FTPKind) (FTPAddress, bool) {
	var v [6]byte
	i := s
	for n := range 6 {
		val, next, ok := parseDecimal(b, i, 3, 255)
		if !ok {
			return FTPAddress{}, false
		}
		v[n], i = byte(val), next
		if n < 5 {
			if b[i] != ',' {
				return FTPAddress{}, false
			}
			i++
		}
	}
	return FTPAddress{
		Kind: kind, Addr: netip.AddrFrom4([4]byte{v[0], v[1], v[2], v[3]}),
		Port: uint16(v[4])<<8 | uint16(v[5]), Start: s, End: i,
	}, true
}

// parseDecimal reads a decimal number of at most digits digits and at most
// limit at b[i:], and returns it with the index of the character after it,
// which must be there (a number running into the segment's end may
// continue in the next one).
func parseDecimal(b []byte, i, digits, limit int) (val, next int, ok bool) {
	n := 0
	for ; i < len(b) && isDigit(b[i]); i++ {
		val = val*10 + int(b[i]-'0')
		if n++; n > digits || val > limit {
			return 0, i, false
		}
	}
	if n == 0 || i == len(b) {
		return 0, i, false
	}
	return val, i, true
}

// parseExtended reads RFC 2428's "<d>proto<d>address<d>port<d>" at b[s:],
// with any printable delimiter d: proto 1 and a dotted IPv4 address, or, in
// an EPSV reply only, both empty.
func parseExtended(b []byte, s int, kind FTPKind) (FTPAddress, bool) {
	if s >= len(b) || b[s] < 33 || b[s] > 126 {
		return FTPAddress{}, false
	}
	d := b[s]
	i := s + 1
	a := FTPAddress{Kind: kind, Start: s}
	if i < len(b) && b[i] == d {
		if kind != FTPEpsv || i+1 >= len(b) || b[i+1] != d {
			return FTPAddress{}, false
		}
		i += 2
	} else {
		if i+1 >= len(b) || b[i] != '1' || b[i+1] != d {
			return FTPAddress{}, false
		}
		i += 2
		var v [4]byte
		for n := range 4 {
			val, next, ok := parseDecimal(b, i, 3, 255)
			if !ok {
				return FTPAddress{}, false
			}
			v[n], i = byte(val), next
			want := byte('.')
			if n == 3 {
				want = d
			}
			if b[i] != want {
				return FTPAddress{}, false
			}
			i++
		}
		a.Addr = netip.AddrFrom4(v)
	}
	port, i, ok := parseDecimal(b, i, 5, 0xffff)
	if !ok || port == 0 || b[i] != d {
		return FTPAddress{}, false
	}
	a.Port = uint16(port)
	a.End = i + 1
	return a, true
}

// FormatFTPAddress writes the text for ap in the form of kind into dst
// (at least FTPMaxAddressLen bytes) and returns its length: "h1,...,p2" for
// PASV and PORT, "|1|a.b.c.d|port|" for EPRT, "|||port|" for EPSV. It
// returns 0 when dst is short or the address is not IPv4.
func FormatFTPAddress(dst []byte, kind FTPKind, ap netip.AddrPort) int {
	if len(dst) < FTPMaxAddressLen {
		return 0
	}
	if kind != FTPEpsv && !ap.Addr().Is4() {
		return 0
	}
	a := ap.Addr().As4()
	b := dst[:0]
	switch kind {
	case FTPPasv, FTPPort:
		for _, x := range a {
			b = strconv.AppendUint(b, uint64(x), 10)
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(ap.Port()>>8), 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(ap.Port()&0xff), 10)
	case FTPEprt:
		b = append(b, "|1|"...)
		for i, x := range a {
			if i > 0 {
				b = append(b, '.')
			}
			b = strconv.AppendUint(b, uint64(x), 10)
		}
		b = append(b, '|')
		b = strconv.AppendUint(b, uint64(ap.Port()), 10)
		b = append(b, '|')
	case FTPEpsv:
		b = append(b, "|||"...)
		b = strconv.AppendUint(b, uint64(ap.Port()), 10)
		b = append(b, '|')
	default:
		return 0
	}
	return len(b)
}

// RewriteFTP replaces the address text a (found by ParseFTPReply or
// ParseFTPCommand in this frame's payload) with ap written in the same form,
// as ip_vs_ftp_out does with the VIP. The bytes after the text move, the IPv4
// total length and header checksum follow, and the TCP checksum is updated
// incrementally over the changed tail and the pseudo-header length (under
// CHECKSUM_PARTIAL only the length, the field holding just the
// pseudo-header). It returns the frame, grown or shrunk in place (Ethernet
// padding dropped when the length changes), and delta, the change in
// payload length the connection's sequence numbers must absorb (SeqAdjust).
// On error the frame is unchanged: ErrExceedsMTU when the packet would
// exceed mtu, ErrNoRoom when the frame's capacity is short, ErrBadPacket
// when a does not lie in the payload.
func RewriteFTP(frame []byte, p *Packet, a *FTPAddress, ap netip.AddrPort, mtu int) ([]byte, int, error) {
	if err := p.check(frame, true); err != nil {
		return frame, 0, err
	}
	if p.Protocol != ProtoTCP {
		return frame, 0, ErrWrongProtocol
	}
	var text [FTPMaxAddressLen]byte
	n := FormatFTPAddress(text[:], a.Kind, ap)
	if n == 0 {
		return frame, 0, ErrNotIPv4Addr
	}
	payloadLen := p.End - p.Payload
	if a.Start < 0 || a.Start > a.End || a.End > payloadLen {
		return frame, 0, ErrBadPacket
	}
	delta := n - (a.End - a.Start)
	ipLen := p.End - p.L3
	if delta > 0 && ipLen+delta > mtu {
		return frame, 0, ErrExceedsMTU
	}
	newEnd := p.End + delta
	if newEnd > cap(frame) {
		return frame, 0, ErrNoRoom
	}
	start := p.Payload + a.Start
	sumOff := p.L4 + TCPChecksumOffset
	sum := binary.BigEndian.Uint16(frame[sumOff:])
	oldL4Len := uint16(p.End - p.L4)
	newL4Len := uint16(newEnd - p.L4)
	if p.Partial {
		sum = UpdatePartial16(sum, oldL4Len, newL4Len)
	} else {
		// Take the old tail out of the sum and the pseudo-header length.
		acc := uint32(^sum) + uint32(^alignedSum(frame[start:p.End], start-p.L4)) + uint32(^oldL4Len) + uint32(newL4Len)
		sum = fold32(acc)
	}
	buf := frame
	if delta != 0 {
		buf = frame[:newEnd]
		copy(buf[start+n:newEnd], frame[a.End+p.Payload:p.End])
	}
	copy(buf[start:start+n], text[:n])
	if !p.Partial {
		sum = ^AddSums(sum, alignedSum(buf[start:newEnd], start-p.L4))
	}
	binary.BigEndian.PutUint16(buf[sumOff:], sum)
	if delta != 0 {
		ip := buf[p.L3:p.L4]
		binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen+delta))
		setIPv4Checksum(ip)
		p.End = newEnd
	}
	return buf, delta, nil
}

// alignedSum is the ones'-complement sum of b as it counts in a checksum
// over data in which b starts at offset off: at an odd offset every byte is
// in the other half of its word, which byte-swaps the sum (RFC 1071).
func alignedSum(b []byte, off int) uint16 {
	s := OnesSum(b, 0)
	if off&1 != 0 {
		s = bits.ReverseBytes16(s)
	}
	return s
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// hasPrefixFold reports whether b starts with the ASCII string s, ignoring
// case as strncasecmp does.
func hasPrefixFold(b []byte, s string) bool {
	if len(b) < len(s) {
		return false
	}
	for i := range len(s) {
		c, want := b[i], s[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != want {
			return false
		}
	}
	return true
}
