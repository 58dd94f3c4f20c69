package conntrack

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"lvslab/internal/testenv"
)

// One ESTABLISHED NAT connection, as ip_vs_sync_conn writes it (v1 header,
// one 36-byte IPv4 entry, no options), byte by byte from the layout of
// reference/ipvs.md §5.2.
func TestSyncGolden(t *testing.T) {
	c := SyncConn{
		Proto: ProtoTCP, Flags: uint32(FlagHashed) | uint32(FwdMasq), State: uint16(StateEstablished),
		CPort: 40000, VPort: 80, DPort: 8080, Timeout: 900,
		CAddr: [4]byte{198, 51, 100, 2}, VAddr: [4]byte{203, 0, 113, 5}, DAddr: [4]byte{172, 16, 0, 2},
	}
	var w SyncWriter
	buf := make([]byte, 1472)
	w.Reset(buf, 7, len(buf))
	if !w.Add(&c) {
		t.Fatal("Add refused the first entry")
	}
	want := "00" + "07" + "002c" + "01" + "01" + "0000" + // header: size 44, 1 conn, v1
		"00" + "06" + "0024" + "00000000" + "0001" + // type, TCP, ver_size 36, flags (HASHED cleared), ESTABLISHED
		"9c40" + "0050" + "1f90" + "00000000" + "00000384" + // ports, fwmark, timeout 900 s
		"c6336402" + "cb007105" + "ac100002"
	if got := hex.EncodeToString(w.Bytes()); got != want {
		t.Errorf("message\n got %s\nwant %s", got, want)
	}
}

func randSyncConn(r *rand.Rand) SyncConn {
	c := SyncConn{
		Proto: []uint8{ProtoTCP, ProtoUDP}[r.IntN(2)], Flags: r.Uint32() & SyncBackupMask &^ uint32(FlagTemplate),
		CPort: uint16(r.Uint32()), VPort: uint16(r.Uint32()), DPort: uint16(r.Uint32()), Fwmark: r.Uint32(), Timeout: r.Uint32(),
	}
	if c.Proto == ProtoTCP {
		c.State = uint16(r.IntN(numTCPStates))
	}
	for _, a := range []*[4]byte{&c.CAddr, &c.VAddr, &c.DAddr} {
		*a = [4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
	}
	if r.IntN(3) == 0 {
		c.HasSeq = true
		c.InSeq = SeqData{r.Uint32(), r.Uint32(), r.Uint32()}
		c.OutSeq = SeqData{r.Uint32(), r.Uint32(), r.Uint32()}
	}
	if r.IntN(2) == 0 {
		c.HasLocal = true
		c.LAddr = [4]byte{10, byte(r.Uint32()), byte(r.Uint32()), 1}
		c.LPort = uint16(r.Uint32())
	}
	if r.IntN(3) == 0 {
		c.HasSynproxy = true
		c.SynproxyDelta = r.Uint32()
	}
	if r.IntN(3) == 0 {
		c.HasAppSeq = true
		c.AppIn = SeqData{r.Uint32(), r.Uint32(), r.Uint32()}
		c.AppOut = SeqData{r.Uint32(), r.Uint32(), r.Uint32()}
	}
	return c
}

// Property: whatever entries are written, in messages of whatever maximum
// length, the parser hands back exactly those entries, in order, and every
// message fits its maximum.
func TestSyncRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 65535)
	for round := range 200 {
		maxLen := 128 + r.IntN(3000) // the largest entry, every option, is 110 bytes with the header
		var sent, got []SyncConn
		var w SyncWriter
		flush := func() {
			msg := w.Bytes()
			if msg == nil {
				return
			}
			if len(msg) > maxLen {
				t.Fatalf("round %d: message of %d bytes, max %d", round, len(msg), maxLen)
			}
			h, err := ParseSync(msg, new(SyncConn), func(c *SyncConn) { got = append(got, *c) }, func(why SyncSkip) { t.Errorf("skipped %d", why) })
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if h.SyncID != 9 || h.Version != 1 || int(h.Size) != len(msg) {
				t.Fatalf("round %d: header %+v for %d bytes", round, h, len(msg))
			}
			w.Reset(buf, 9, maxLen)
		}
		w.Reset(buf, 9, maxLen)
		for range 1 + r.IntN(400) {
			c := randSyncConn(r)
			if !w.Add(&c) {
				flush()
				if !w.Add(&c) {
					t.Fatalf("round %d: an entry of %d bytes does not fit an empty message of %d", round, c.entryLen(), maxLen)
				}
			}
			sent = append(sent, c)
		}
		flush()
		if len(got) != len(sent) {
			t.Fatalf("round %d: %d entries back, %d sent", round, len(got), len(sent))
		}
		for i := range sent {
			want := sent[i]
			want.Flags &^= uint32(FlagHashed)
			if got[i] != want {
				t.Fatalf("round %d entry %d:\n got %+v\nwant %+v", round, i, got[i], want)
			}
		}
	}
}

// The kernel's receive rules: a v0 message is read as v0; an unknown
// mandatory option drops its entry and an unknown optional one (bit 0x40) is
// skipped; IPv6 and impossible states are passed over; a message whose size
// field disagrees, or an entry that runs past the end, is an error naming
// where.
func TestSyncReceiveRules(t *testing.T) {
	// v0: 4-byte header, 24-byte entry, then 24 bytes of seq data because
	// the flags say IN_SEQ.
	v0, _ := hex.DecodeString("01" + "03" + "0034" +
		"00" + "06" + "9c40" + "0050" + "1f90" + "c6336402" + "cb007105" + "ac100002" + "0400" + "0001" +
		"00000001000000020000000300000004000000050000000600000000")
	v0 = v0[:0x34]
	var got []SyncConn
	h, err := ParseSync(v0, new(SyncConn), func(c *SyncConn) { got = append(got, *c) }, nil)
	if err != nil || h.Version != 0 || h.SyncID != 3 || len(got) != 1 {
		t.Fatalf("v0: %+v %v %d entries", h, err, len(got))
	}
	if c := got[0]; c.CPort != 40000 || c.DPort != 8080 || c.State != 1 || !c.HasSeq || c.InSeq != (SeqData{1, 2, 3}) || c.OutSeq != (SeqData{4, 5, 6}) {
		t.Errorf("v0 entry %+v", c)
	}

	base := SyncConn{Proto: ProtoTCP, State: 1, CPort: 1, VPort: 80, DPort: 80, Timeout: 60}
	msg := func(opts ...[]byte) []byte {
		var w SyncWriter
		b := make([]byte, 512)
		w.Reset(b, 0, len(b))
		w.Add(&base)
		m := append([]byte(nil), w.Bytes()...)
		extra := bytes.Join(opts, nil) // the last entry: no padding after it
		size := syncEntryLen + len(extra)
		m[syncHeaderLen+2], m[syncHeaderLen+3] = byte(size>>8), byte(size)
		m = append(m, extra...)
		m[2], m[3] = byte(len(m)>>8), byte(len(m))
		return m
	}
	for _, tc := range []struct {
		name  string
		m     []byte
		n     int
		skip  SyncSkip
		error error
	}{
		{"optional unknown option", msg([]byte{0x4f, 2, 0xaa, 0xbb}), 1, SkipNone, nil},
		{"mandatory unknown option", msg([]byte{0x0f, 2, 0xaa, 0xbb}), 0, SkipUnknownOpt, nil},
		{"persistence engine", msg([]byte{SyncOptPEName, 3, 's', 'i', 'p'}), 0, SkipPersistEngine, nil},
		{"option past the entry", msg([]byte{0x4f, 9, 0}), 0, SkipNone, ErrSyncEntry},
	} {
		n := 0
		var skipped SyncSkip
		_, err := ParseSync(tc.m, new(SyncConn), func(*SyncConn) { n++ }, func(why SyncSkip) { skipped = why })
		if !errors.Is(err, tc.error) || n != tc.n || skipped != tc.skip {
			t.Errorf("%s: %d entries, skip %d, err %v; want %d, %d, %v", tc.name, n, skipped, err, tc.n, tc.skip, tc.error)
		}
	}
	good := msg()
	bad := append([]byte(nil), good...)
	bad[2], bad[3] = 0, byte(len(good)+4)
	if _, err := ParseSync(bad, new(SyncConn), func(*SyncConn) {}, nil); !errors.Is(err, ErrSyncSize) {
		t.Errorf("size field off by 4: %v, want ErrSyncSize", err)
	}
	state := append([]byte(nil), good...)
	state[syncHeaderLen+9] = numTCPStates
	var why SyncSkip
	if _, err := ParseSync(state, new(SyncConn), func(*SyncConn) { t.Error("an entry in state 11 was handed on") }, func(w SyncSkip) { why = w }); err != nil || why != SkipBadState {
		t.Errorf("state 11: %v, skip %d", err, why)
	}
	long := append([]byte(nil), good...)
	long[4] = 2 // says two entries, has one
	if _, err := ParseSync(long, new(SyncConn), func(*SyncConn) {}, nil); !errors.Is(err, ErrSyncShort) || !strings.Contains(err.Error(), "entry 1 at byte 44") {
		t.Errorf("two entries announced, one present: %v", err)
	}
}

func TestSyncNoAllocs(t *testing.T) {
	buf := make([]byte, 1472)
	c := randSyncConn(rand.New(rand.NewPCG(3, 4)))
	var w SyncWriter
	var scratch SyncConn
	n := 0
	count := func(*SyncConn) { n++ }
	if a := testing.AllocsPerRun(100, func() {
		w.Reset(buf, 1, len(buf))
		for w.Add(&c) {
		}
		_, _ = ParseSync(w.Bytes(), &scratch, count, nil)
	}); a != 0 {
		t.Errorf("%.1f allocations per message written and read", a)
	}
}

func FuzzParseSync(f *testing.F) {
	buf := make([]byte, 1472)
	var w SyncWriter
	r := rand.New(rand.NewPCG(5, 6))
	for range 4 {
		w.Reset(buf, 1, len(buf))
		for range 3 {
			c := randSyncConn(r)
			w.Add(&c)
		}
		f.Add(append([]byte(nil), w.Bytes()...))
	}
	f.Add([]byte{1, 0, 0, 28, 0, 6, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseSync(b, new(SyncConn), func(c *SyncConn) {
			if c.Proto == ProtoTCP && c.Flags&uint32(FlagTemplate) == 0 && c.State >= numTCPStates {
				t.Fatalf("state %d handed on", c.State)
			}
		}, nil)
	})
}

// tshark's IPVS dissector reads lvsd's messages as the kernel's: the fields
// of every entry, version 1, and no malformed-packet or expert warning.
func TestSyncTsharkDecodes(t *testing.T) {
	testenv.Tools(t, "tshark")
	r := rand.New(rand.NewPCG(7, 8))
	buf := make([]byte, 1472)
	var w SyncWriter
	w.Reset(buf, 4, len(buf))
	var sent []SyncConn
	for range 3 {
		// Without options: Wireshark 4.0's dissector reads the 36-byte
		// fixed part of each entry and does not follow the size field
		// past options, so it misreads any entry that has some (the
		// kernel's own SEQ_DATA for FTP connections as much as lvsd's
		// FULLNAT and SYN proxy extensions).
		c := randSyncConn(r)
		c.HasSeq, c.HasLocal, c.HasSynproxy, c.HasAppSeq = false, false, false, false
		w.Add(&c)
		sent = append(sent, c)
	}
	payload := w.Bytes()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 0x51}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 1, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{224, 0, 0, 81}}
	udp := &layers.UDP{SrcPort: 8848, DstPort: DefaultSyncPort}
	_ = udp.SetNetworkLayerForChecksum(ip)
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sync.pcap")
	if p := os.Getenv("SYNC_PCAP"); p != "" {
		path = p
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	pw := pcapgo.NewWriter(f)
	_ = pw.WriteFileHeader(65535, layers.LinkTypeEthernet)
	_ = pw.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(sb.Bytes()), Length: len(sb.Bytes())}, sb.Bytes())
	_ = f.Close()
	out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-E", "separator=,", "-e", "ipvs.version", "-e", "ipvs.syncid",
		"-e", "ipvs.conncount", "-e", "ipvs.caddr", "-e", "ipvs.dport", "-e", "ipvs.timeout").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	line := strings.TrimSpace(string(out))
	for _, c := range sent {
		if !strings.Contains(line, net.IP(c.CAddr[:]).String()) {
			t.Errorf("tshark did not decode client %v: %s", net.IP(c.CAddr[:]), line)
		}
	}
	for _, c := range sent {
		if !strings.Contains(line, strconv.FormatUint(uint64(c.Timeout), 10)) {
			t.Errorf("tshark did not decode timeout %d: %s", c.Timeout, line)
		}
	}
	if !strings.HasPrefix(line, "1,4,3,") {
		t.Errorf("tshark fields %q, want version 1, syncid 4, 3 conns first", line)
	}
	v, err := exec.Command("tshark", "-r", path, "-V", "-z", "expert,warn").Output()
	if err != nil {
		t.Fatalf("tshark -V: %v\n%s", err, v)
	}
	if s := string(v); strings.Contains(s, "Malformed") || strings.Contains(s, "Warnings (") || strings.Contains(s, "Errors (") {
		t.Errorf("tshark reports a problem with lvsd's sync message:\n%s", s)
	}
}
