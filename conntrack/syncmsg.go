package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The IPVS connection synchronisation messages, protocol version 1 on the
// wire (ip_vs_sync.c; reference/ipvs.md §5.2), so that a capture decodes as
// the kernel's would and a kernel backup could read what lvsd sends.
//
//	header (8):  u8 reserved=0 | u8 syncid | be16 size | u8 nr_conns | s8 version=1 | be16 spare=0
//	entry (36):  u8 type | u8 protocol | be16 ver_size | be32 flags | be16 state |
//	             be16 cport | be16 vport | be16 dport | be32 fwmark | be32 timeout (s) |
//	             be32 caddr | be32 vaddr | be32 daddr
//	options:     u8 type | u8 len | data, the entry padded to 4 bytes
//
// The kernel's options are SEQ_DATA (1: in_seq and out_seq, each init_seq,
// delta, previous_delta), PE_DATA (2) and PE_NAME (3). An option type with
// bit 0x40 (IPVS_OPT_F_PARAM) set is optional: a receiver that does not know
// it skips it, one without the bit it does not know drops the entry. lvsd's
// extensions use that bit, so a kernel backup ignores them:
//
//	0x50 LVSLAB_OPT_FULLNAT, len 6:   be32 laddr | be16 lport (the FULLNAT local address)
//	0x51 LVSLAB_OPT_SYNPROXY, len 4:  be32 the SYN proxy's sequence delta (real server ISN - cookie ISN)
//	0x52 LVSLAB_OPT_APPSEQ, len 24:   in_seq | out_seq as in SEQ_DATA: the FTP helper's offsets on a
//	                                  FULLNAT connection, whose SEQ_DATA holds the local address's remap
//
// Version 0 (the 2.6.x format, IPv4 only, no timeout and no fwmark) is
// accepted on receive, as the kernel accepts it; lvsd sends version 1 only.

const (
	syncHeaderLen  = 8
	syncEntryLen   = 36
	syncV0Header   = 4
	syncV0Entry    = 24
	syncV0SeqLen   = 24
	syncOptSeqLen  = 24
	syncOptParam   = 0x40
	syncVersion1   = 1
	syncMaxEntries = 255 // nr_conns is a u8

	SyncOptSeqData  = 1
	SyncOptPEData   = 2
	SyncOptPEName   = 3
	SyncOptFullNAT  = 0x50
	SyncOptSynproxy = 0x51
	SyncOptAppSeq   = 0x52

	// Kernel flag bits carried in sync messages beyond Flags' own.
	SyncFlagSync    = 0x0020 // IP_VS_CONN_F_SYNC: the entry came from a sync message
	SyncFlagOutSeq  = 0x0200 // IP_VS_CONN_F_OUT_SEQ
	SyncFlagInSeq   = 0x0400 // IP_VS_CONN_F_IN_SEQ
	SyncFlagSeqMask = 0x0600
	SyncFlagNoCPort = 0x0800 // IP_VS_CONN_F_NO_CPORT
	// SyncBackupMask is IP_VS_CONN_F_BACKUP_MASK: what a backup keeps of
	// the flags it receives.
	SyncBackupMask = uint32(FlagFwdMask) | uint32(FlagNoOutput) | uint32(FlagInactive) | SyncFlagSeqMask | SyncFlagNoCPort | uint32(FlagTemplate)
)

// DefaultSyncPort and DefaultSyncGroup are IP_VS_SYNC_PORT and
// IP_VS_SYNC_GROUP.
const (
	DefaultSyncPort  = 8848
	DefaultSyncGroup = "224.0.0.81"
)

// SeqData is struct ip_vs_seq: a sequence-number adjustment (FTP NAT).
type SeqData struct {
	InitSeq, Delta, PrevDelta uint32
}

// SyncConn is one connection (or template) of a sync message.
type SyncConn struct {
	Proto               uint8
	Flags               uint32 // IP_VS_CONN_F_*, HASHED cleared
	State               uint16
	CPort, VPort, DPort uint16
	Fwmark              uint32
	Timeout             uint32 // seconds; 0 in v0 messages
	CAddr, VAddr, DAddr [4]byte

	HasSeq        bool
	InSeq, OutSeq SeqData
	// HasLocal: the FULLNAT local address (lvsd's extension).
	HasLocal bool
	LAddr    [4]byte
	LPort    uint16
	// HasSynproxy: the SYN proxy's sequence delta (lvsd's extension).
	HasSynproxy   bool
	SynproxyDelta uint32
	// HasAppSeq: an application helper's offsets on a FULLNAT connection
	// (lvsd's extension; a NAT connection's travel in SEQ_DATA, as the
	// kernel's do).
	HasAppSeq     bool
	AppIn, AppOut SeqData
	// PE: the entry carried a persistence engine (sip), which lvsd has not.
	PE bool
}

// entryLen is the size of c's v1 entry with its options, before padding.
func (c *SyncConn) entryLen() int {
	n := syncEntryLen
	if c.HasSeq {
		n += 2 + syncOptSeqLen
	}
	if c.HasLocal {
		n += 2 + 6
	}
	if c.HasSynproxy {
		n += 2 + 4
	}
	if c.HasAppSeq {
		n += 2 + syncOptSeqLen
	}
	return n
}

func pad4(n int) int { return (n + 3) &^ 3 }

// SyncHeader is a message's header.
type SyncHeader struct {
	SyncID  uint8
	Size    uint16
	NConns  uint8
	Version int8 // 0 or 1
}

// Errors of ParseSync. Each comes wrapped with where in the message it was.
var (
	ErrSyncShort   = errors.New("sync message truncated")
	ErrSyncSize    = errors.New("sync message size field disagrees with its length")
	ErrSyncEntry   = errors.New("bad sync entry")
	ErrSyncVersion = errors.New("unknown sync entry version")
)

// SyncSkip says why ParseSync passed over an entry without handing it on:
// the kernel drops such entries one by one and keeps the rest.
type SyncSkip uint8

const (
	SkipNone          SyncSkip = iota
	SkipIPv6                   // an IPv6 entry: lvsd is IPv4 only
	SkipUnknownOpt             // a mandatory option lvsd does not know
	SkipBadState               // state beyond the protocol's states
	SkipPersistEngine          // a persistence-engine (sip) entry
)

// ParseSync reads one sync message (v1, or v0 as the kernel accepts it) and
// calls fn with each entry it can apply, decoded into c, the caller's
// scratch entry (copy what you keep); skip, if not nil, is told of each
// entry passed over. It allocates nothing. An error names the byte offset and the entry; the entries before
// it have been handed on, as the kernel applies them before it gives up.
func ParseSync(b []byte, c *SyncConn, fn func(*SyncConn), skip func(SyncSkip)) (SyncHeader, error) {
	var h SyncHeader
	if len(b) < syncV0Header {
		return h, fmt.Errorf("%d bytes: %w", len(b), ErrSyncShort)
	}
	if len(b) >= syncHeaderLen && b[0] == 0 && b[5] == syncVersion1 && binary.BigEndian.Uint16(b[6:]) == 0 {
		h = SyncHeader{SyncID: b[1], Size: binary.BigEndian.Uint16(b[2:]), NConns: b[4], Version: syncVersion1}
		if int(h.Size) != len(b) {
			return h, fmt.Errorf("size %d, %d bytes received: %w", h.Size, len(b), ErrSyncSize)
		}
		return h, parseV1(b, h, c, fn, skip)
	}
	h = SyncHeader{NConns: b[0], SyncID: b[1], Size: binary.BigEndian.Uint16(b[2:])}
	if int(h.Size) != len(b) {
		return h, fmt.Errorf("v0: size %d, %d bytes received: %w", h.Size, len(b), ErrSyncSize)
	}
	return h, parseV0(b, h, c, fn, skip)
}

func parseV1(b []byte, h SyncHeader, c *SyncConn, fn func(*SyncConn), skip func(SyncSkip)) error {
	off := syncHeaderLen
	for i := range int(h.NConns) {
		if len(b)-off < 4 {
			return fmt.Errorf("entry %d at byte %d: %d bytes left: %w", i, off, len(b)-off, ErrSyncShort)
		}
		vs := binary.BigEndian.Uint16(b[off+2:])
		size := int(vs & 0x0fff)
		if vs>>12 != 0 {
			return fmt.Errorf("entry %d at byte %d: version %d: %w", i, off, vs>>12, ErrSyncVersion)
		}
		if size > len(b)-off {
			return fmt.Errorf("entry %d at byte %d: size %d, %d bytes left: %w", i, off, size, len(b)-off, ErrSyncShort)
		}
		if size < 4 {
			// Shorter than its own type, protocol and size fields.
			return fmt.Errorf("entry %d at byte %d: size %d: %w", i, off, size, ErrSyncEntry)
		}
		e := b[off : off+size]
		next := off + pad4(size)
		if e[0]&1 != 0 { // STYPE_F_INET6
			report(skip, SkipIPv6)
			off = min(next, len(b))
			continue
		}
		if size < syncEntryLen {
			return fmt.Errorf("entry %d at byte %d: size %d below %d: %w", i, off, size, syncEntryLen, ErrSyncEntry)
		}
		*c = SyncConn{
			Proto: e[1], Flags: binary.BigEndian.Uint32(e[4:]), State: binary.BigEndian.Uint16(e[8:]),
			CPort: binary.BigEndian.Uint16(e[10:]), VPort: binary.BigEndian.Uint16(e[12:]), DPort: binary.BigEndian.Uint16(e[14:]),
			Fwmark: binary.BigEndian.Uint32(e[16:]), Timeout: binary.BigEndian.Uint32(e[20:]),
		}
		copy(c.CAddr[:], e[24:28])
		copy(c.VAddr[:], e[28:32])
		copy(c.DAddr[:], e[32:36])
		why, err := parseOptions(e[syncEntryLen:], c)
		if err != nil {
			return fmt.Errorf("entry %d at byte %d: %w", i, off, err)
		}
		if why == SkipNone {
			why = checkState(c)
		}
		if why != SkipNone {
			report(skip, why)
		} else {
			fn(c)
		}
		off = min(next, len(b))
	}
	return nil
}

func report(skip func(SyncSkip), why SyncSkip) {
	if skip != nil {
		skip(why)
	}
}

// checkState is the kernel's check that a state exists for the protocol.
func checkState(c *SyncConn) SyncSkip {
	limit := uint16(numTCPStates)
	switch {
	case c.Flags&uint32(FlagTemplate) != 0:
		limit = uint16(TemplateAssured) + 1
	case c.Proto == ProtoUDP:
		limit = 1
	case c.Proto != ProtoTCP:
		limit = 1
	}
	if c.State >= limit {
		return SkipBadState
	}
	return SkipNone
}

func parseOptions(o []byte, c *SyncConn) (SyncSkip, error) {
	why := SkipNone
	for len(o) > 0 {
		if len(o) < 2 {
			return why, fmt.Errorf("option header cut short: %w", ErrSyncEntry)
		}
		typ, n := o[0], int(o[1])
		if 2+n > len(o) {
			return why, fmt.Errorf("option %d: length %d, %d bytes left: %w", typ, n, len(o)-2, ErrSyncEntry)
		}
		d := o[2 : 2+n]
		switch typ {
		case SyncOptSeqData:
			if n != syncOptSeqLen {
				return why, fmt.Errorf("SEQ_DATA length %d, want %d: %w", n, syncOptSeqLen, ErrSyncEntry)
			}
			c.HasSeq = true
			c.InSeq = readSeq(d)
			c.OutSeq = readSeq(d[12:])
		case SyncOptPEData, SyncOptPEName:
			c.PE = true
			why = SkipPersistEngine
		case SyncOptFullNAT:
			if n != 6 {
				return why, fmt.Errorf("FULLNAT option length %d, want 6: %w", n, ErrSyncEntry)
			}
			c.HasLocal = true
			copy(c.LAddr[:], d)
			c.LPort = binary.BigEndian.Uint16(d[4:])
		case SyncOptSynproxy:
			if n != 4 {
				return why, fmt.Errorf("SYNPROXY option length %d, want 4: %w", n, ErrSyncEntry)
			}
			c.HasSynproxy = true
			c.SynproxyDelta = binary.BigEndian.Uint32(d)
		case SyncOptAppSeq:
			if n != syncOptSeqLen {
				return why, fmt.Errorf("APPSEQ option length %d, want %d: %w", n, syncOptSeqLen, ErrSyncEntry)
			}
			c.HasAppSeq = true
			c.AppIn = readSeq(d)
			c.AppOut = readSeq(d[12:])
		default:
			if typ&syncOptParam == 0 && why == SkipNone {
				why = SkipUnknownOpt
			}
		}
		o = o[2+n:]
	}
	return why, nil
}

func readSeq(d []byte) SeqData {
	return SeqData{InitSeq: binary.BigEndian.Uint32(d), Delta: binary.BigEndian.Uint32(d[4:]), PrevDelta: binary.BigEndian.Uint32(d[8:])}
}

func parseV0(b []byte, h SyncHeader, c *SyncConn, fn func(*SyncConn), skip func(SyncSkip)) error {
	off := syncV0Header
	for i := range int(h.NConns) {
		if len(b)-off < syncV0Entry {
			return fmt.Errorf("v0 entry %d at byte %d: %d bytes left: %w", i, off, len(b)-off, ErrSyncShort)
		}
		e := b[off:]
		*c = SyncConn{
			Proto: e[1], CPort: binary.BigEndian.Uint16(e[2:]), VPort: binary.BigEndian.Uint16(e[4:]), DPort: binary.BigEndian.Uint16(e[6:]),
			Flags: uint32(binary.BigEndian.Uint16(e[20:])), State: binary.BigEndian.Uint16(e[22:]),
		}
		copy(c.CAddr[:], e[8:12])
		copy(c.VAddr[:], e[12:16])
		copy(c.DAddr[:], e[16:20])
		off += syncV0Entry
		if c.Flags&SyncFlagSeqMask != 0 {
			if len(b)-off < syncV0SeqLen {
				return fmt.Errorf("v0 entry %d at byte %d: sequence data cut short: %w", i, off, ErrSyncShort)
			}
			c.HasSeq = true
			c.InSeq = readSeq(b[off:])
			c.OutSeq = readSeq(b[off+12:])
			off += syncV0SeqLen
		}
		if why := checkState(c); why != SkipNone {
			report(skip, why)
			continue
		}
		fn(c)
	}
	return nil
}

// SyncWriter builds v1 messages into a caller's buffer: Reset, Add until it
// reports full, Bytes. It allocates nothing.
type SyncWriter struct {
	buf []byte
	n   int
	max int
}

// Reset starts a message for syncid in buf, at most maxLen bytes long (the
// kernel's sync_maxlen: 1472 by default, an Ethernet MTU less IP and UDP).
func (w *SyncWriter) Reset(buf []byte, syncid uint8, maxLen int) {
	maxLen = min(maxLen, len(buf), 0xffff)
	w.buf, w.max, w.n = buf, maxLen, syncHeaderLen
	if maxLen < syncHeaderLen {
		w.max = 0
		return
	}
	clear(buf[:syncHeaderLen])
	buf[1] = syncid
	buf[5] = syncVersion1
}

// Len is the number of entries so far.
func (w *SyncWriter) Len() int {
	if w.max == 0 {
		return 0
	}
	return int(w.buf[4])
}

// Add appends c; false when it does not fit (send, Reset, Add again).
func (w *SyncWriter) Add(c *SyncConn) bool {
	// As ip_vs_sync_conn: the padding that aligns an entry goes before
	// it, so the message ends with the last entry's last byte and each
	// entry's size field is its unpadded length.
	size := c.entryLen()
	pad := pad4(w.n) - w.n
	if w.max == 0 || w.n+pad+size > w.max || w.buf[4] == syncMaxEntries {
		return false
	}
	clear(w.buf[w.n : w.n+pad])
	w.n += pad
	e := w.buf[w.n : w.n+size]
	clear(e)
	e[1] = c.Proto
	binary.BigEndian.PutUint16(e[2:], uint16(size))
	binary.BigEndian.PutUint32(e[4:], c.Flags&^uint32(FlagHashed))
	binary.BigEndian.PutUint16(e[8:], c.State)
	binary.BigEndian.PutUint16(e[10:], c.CPort)
	binary.BigEndian.PutUint16(e[12:], c.VPort)
	binary.BigEndian.PutUint16(e[14:], c.DPort)
	binary.BigEndian.PutUint32(e[16:], c.Fwmark)
	binary.BigEndian.PutUint32(e[20:], c.Timeout)
	copy(e[24:], c.CAddr[:])
	copy(e[28:], c.VAddr[:])
	copy(e[32:], c.DAddr[:])
	o := e[syncEntryLen:]
	if c.HasSeq {
		o[0], o[1] = SyncOptSeqData, syncOptSeqLen
		putSeq(o[2:], c.InSeq)
		putSeq(o[14:], c.OutSeq)
		o = o[2+syncOptSeqLen:]
	}
	if c.HasLocal {
		o[0], o[1] = SyncOptFullNAT, 6
		copy(o[2:], c.LAddr[:])
		binary.BigEndian.PutUint16(o[6:], c.LPort)
		o = o[8:]
	}
	if c.HasSynproxy {
		o[0], o[1] = SyncOptSynproxy, 4
		binary.BigEndian.PutUint32(o[2:], c.SynproxyDelta)
		o = o[6:]
	}
	if c.HasAppSeq {
		o[0], o[1] = SyncOptAppSeq, syncOptSeqLen
		putSeq(o[2:], c.AppIn)
		putSeq(o[14:], c.AppOut)
	}
	w.n += size
	w.buf[4]++
	binary.BigEndian.PutUint16(w.buf[2:], uint16(w.n))
	return true
}

func putSeq(d []byte, s SeqData) {
	binary.BigEndian.PutUint32(d, s.InitSeq)
	binary.BigEndian.PutUint32(d[4:], s.Delta)
	binary.BigEndian.PutUint32(d[8:], s.PrevDelta)
}

// Bytes is the message so far (nil when empty).
func (w *SyncWriter) Bytes() []byte {
	if w.Len() == 0 {
		return nil
	}
	return w.buf[:w.n]
}
