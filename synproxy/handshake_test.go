package synproxy

import (
	"errors"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

const (
	clientISN = 0x11223344
	now       = int64(1000*CounterPeriod + 12_345_000_000) // minute 1000, 12.345 s in
)

// linuxSYN is a client SYN with Linux's option layout: MSS, SACK-permitted,
// timestamps, NOP, window scale.
func linuxSYN(mss uint16, ws byte) seg {
	return seg{srcMAC: clientMAC, dstMAC: dirMAC, src: clientIP, dst: vipIP, sport: 40000, dport: 80,
		seq: clientISN, flags: "S", window: 64240, ttl: 64, id: 0x1234, df: true,
		opts: []layers.TCPOption{mssOpt(mss), opt(layers.TCPOptionKindSACKPermitted), tsOpt(0xaabbccdd, 0),
			nop(), opt(layers.TCPOptionKindWindowScale, ws)}}
}

// The SYN/ACK for each setting, byte for byte against gopacket. The cookie
// data is written out by hand (MSS index << 12 | shift << 16 | bits), so
// the golden does not lean on EncodeData.
func TestSYNACKGolden(t *testing.T) {
	sec := fixedSecret(t, 1)
	tup := Tuple{Client: clientIP, Virtual: vipIP, ClientPort: 40000, VirtualPort: 80}
	tsNow := uint32(now / 1_000_000)
	cases := []struct {
		name string
		set  func(*Settings)
		in   seg
		data uint32
		opts []layers.TCPOption
	}{
		{
			name: "defaults: MSS clamped to 1452, SACK kept, timestamps and window scale blanked",
			in:   linuxSYN(1460, 7),
			data: 7<<12 | 1<<21,
			opts: []layers.TCPOption{mssOpt(1452), opt(layers.TCPOptionKindSACKPermitted),
				nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop()},
		},
		{
			name: "wscale 7 and timestamps on: TSecr echoes the client, TSval our clock",
			set:  func(s *Settings) { s.WScale, s.Timestamp = 9, true },
			in:   linuxSYN(1460, 7),
			data: 7<<12 | 7<<16 | 1<<20 | 1<<21 | 1<<22,
			opts: []layers.TCPOption{mssOpt(1452), opt(layers.TCPOptionKindSACKPermitted), tsOpt(tsNow, 0xaabbccdd),
				nop(), opt(layers.TCPOptionKindWindowScale, 9)},
		},
		{
			name: "client MSS below the clamp, shift 0 still counts as offered, SACK off",
			set:  func(s *Settings) { s.WScale, s.SACK = 7, false },
			in:   linuxSYN(1200, 0),
			data: 4<<12 | 1<<22,
			opts: []layers.TCPOption{mssOpt(1200), nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop(), nop(),
				nop(), opt(layers.TCPOptionKindWindowScale, 7)},
		},
		{
			name: "no options at all: the cookie assumes 536, window scale >14 capped",
			in: seg{srcMAC: clientMAC, dstMAC: dirMAC, src: clientIP, dst: vipIP, sport: 40000, dport: 80,
				seq: clientISN, flags: "S", window: 512, ttl: 64, df: true},
			data: 3 << 12,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := DefaultSettings()
			if c.set != nil {
				c.set(&s)
			}
			frame := withRoom(c.in.build(t))
			p := parse(t, frame)
			out, err := SYNACK(frame, p, &s, sec, now)
			if err != nil {
				t.Fatal(err)
			}
			cookie := sec.Cookie(&tup, clientISN, 1000, c.data)
			want := seg{srcMAC: dirMAC, dstMAC: clientMAC, src: vipIP, dst: clientIP, sport: 80, dport: 40000,
				seq: cookie, ack: clientISN + 1, flags: "SA", window: c.in.window, ttl: 63, id: c.in.id, df: true, opts: c.opts}
			sameFrame(t, "SYN/ACK", out, padded(want.build(t)))
			if p.Src != rewrite.IPv4(out[14:34]).Src() || p.SrcPort != 80 || p.TCPFlags != rewrite.TCPFlagSYN|rewrite.TCPFlagACK {
				t.Errorf("Packet does not describe the answer: %+v", p)
			}
		})
	}
}

// A SYN with payload (TCP Fast Open data) and IP options: the answer
// carries neither.
func TestSYNACKDropsPayloadAndIPOptions(t *testing.T) {
	sec := fixedSecret(t, 1)
	s := DefaultSettings()
	in := linuxSYN(1460, 7)
	in.payload = []byte("early data the director must not echo")
	frame := in.build(t)
	// Insert a 4-byte IP option (NOP NOP NOP EOL) by hand.
	withOpt := append(append([]byte{}, frame[:34]...), 1, 1, 1, 0)
	withOpt = append(withOpt, frame[34:]...)
	withOpt[14] = 0x46
	withOpt[16], withOpt[17] = byte((len(withOpt)-14)>>8), byte(len(withOpt)-14)
	rewrite.IPv4(withOpt[14:38]).UpdateChecksum()
	buf := withRoom(withOpt)
	p := parse(t, buf)
	out, err := SYNACK(buf, p, &s, sec, now)
	if err != nil {
		t.Fatal(err)
	}
	if p.L4-p.L3 != 20 || p.End != p.Payload || !tcpChecksumOK(out, p) {
		t.Fatalf("answer keeps options or payload: %+v", p)
	}
}

func TestSYNACKRefuses(t *testing.T) {
	sec := fixedSecret(t, 1)
	s := DefaultSettings()
	for _, c := range []struct {
		name string
		in   seg
		err  error
	}{
		{"SYN+ACK", seg{src: clientIP, dst: vipIP, flags: "SA", ttl: 64}, ErrNotPureSYN},
		{"SYN+RST", seg{src: clientIP, dst: vipIP, flags: "SR", ttl: 64}, ErrNotPureSYN},
		{"bad option length", seg{src: clientIP, dst: vipIP, flags: "S", ttl: 64, opts: []layers.TCPOption{mssOpt(1460)}}, rewrite.ErrBadTCPOption},
	} {
		frame := withRoom(c.in.build(t))
		if c.err == rewrite.ErrBadTCPOption {
			frame[14+20+20+1] = 9 // the MSS option's length runs past the header
		}
		orig := append([]byte{}, frame...)
		p := parse(t, frame)
		if _, err := SYNACK(frame, p, &s, sec, now); !errors.Is(err, c.err) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.err)
		}
		sameFrame(t, c.name+" (unchanged)", frame, orig)
	}
}

// The whole handshake: SYN → SYN/ACK → the client's ACK validates into the
// handshake the SYN offered, at every age of the window, and not after.
func TestCheckACK(t *testing.T) {
	sec := fixedSecret(t, 1)
	s := DefaultSettings()
	s.WScale, s.Timestamp = 7, true
	frame := withRoom(linuxSYN(1460, 8).build(t))
	p := parse(t, frame)
	synack, err := SYNACK(frame, p, &s, sec, now)
	if err != nil {
		t.Fatal(err)
	}
	cookie := rewrite.TCP(synack[p.L4:p.End]).Seq()
	ack := seg{srcMAC: clientMAC, dstMAC: dirMAC, src: clientIP, dst: vipIP, sport: 40000, dport: 80,
		seq: clientISN + 1, ack: cookie + 1, flags: "A", window: 502, ttl: 64, tos: 0x10, df: true,
		opts: []layers.TCPOption{nop(), nop(), tsOpt(0xaabbcd00, uint32(now/1_000_000))}}
	for age := range int64(CounterTries + 1) {
		af := ack.build(t)
		ap := parse(t, af)
		h, err := CheckACK(af, ap, sec, now+age*CounterPeriod)
		if age == CounterTries {
			if !errors.Is(err, ErrCookieStale) {
				t.Fatalf("age %d: err %v, want stale", age, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("age %d: %v", age, err)
		}
		want := Handshake{Tuple: Tuple{Client: clientIP, Virtual: vipIP, ClientPort: 40000, VirtualPort: 80},
			ClientISN: clientISN, ISN: cookie,
			Options: Options{MSS: 1452, WScaleOK: true, WScale: 8, SACK: true, Timestamp: true},
			TSval:   0xaabbcd00, TSecr: uint32(now / 1_000_000), HasTS: true, Window: 0xffff, TOS: 0x10}
		if h != want {
			t.Fatalf("age %d:\n got %+v\nwant %+v", age, h, want)
		}
	}
	for _, bad := range []struct {
		name string
		edit func(*seg)
		err  error
	}{
		{"ack off by one", func(s *seg) { s.ack++ }, nil},
		{"seq off by one", func(s *seg) { s.seq++ }, nil},
		{"other port", func(s *seg) { s.sport++ }, nil},
		{"FIN", func(s *seg) { s.flags = "FA" }, ErrNotPureACK},
		{"SYN", func(s *seg) { s.flags = "S" }, ErrNotPureACK},
	} {
		b := ack
		bad.edit(&b)
		af := b.build(t)
		_, err := CheckACK(af, parse(t, af), sec, now)
		if err == nil || bad.err != nil && !errors.Is(err, bad.err) {
			t.Errorf("%s: err %v, want %v", bad.name, err, bad.err)
		}
	}
}

func TestServerSYNGolden(t *testing.T) {
	base := Handshake{Tuple: Tuple{Client: clientIP, Virtual: vipIP, ClientPort: 40000, VirtualPort: 80},
		ClientISN: clientISN, ISN: 0x99, Window: 29200, TOS: 0x10, TSval: 0x01020304}
	zero := rewrite.MAC{}
	for _, c := range []struct {
		name string
		o    Options
		opts []layers.TCPOption
	}{
		{"everything", Options{MSS: 1452, WScaleOK: true, WScale: 7, SACK: true, Timestamp: true},
			[]layers.TCPOption{mssOpt(1452), opt(layers.TCPOptionKindSACKPermitted), tsOpt(0x01020304, 0), nop(), opt(layers.TCPOptionKindWindowScale, 7)}},
		{"timestamps without SACK", Options{MSS: 536, Timestamp: true},
			[]layers.TCPOption{mssOpt(536), nop(), nop(), tsOpt(0x01020304, 0)}},
		{"SACK only", Options{MSS: 1460, SACK: true},
			[]layers.TCPOption{mssOpt(1460), nop(), nop(), opt(layers.TCPOptionKindSACKPermitted)}},
		{"MSS only, shift 0 offered", Options{MSS: 64, WScaleOK: true},
			[]layers.TCPOption{mssOpt(64), nop(), opt(layers.TCPOptionKindWindowScale, 0)}},
	} {
		h := base
		h.Options = c.o
		out := make([]byte, ServerSYNLen)
		n, err := ServerSYN(out, &h, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := seg{srcMAC: zero, dstMAC: zero, src: clientIP, dst: vipIP, sport: 40000, dport: 80, seq: clientISN,
			flags: "S", window: 29200, ttl: 64, tos: 0x10, df: true, opts: c.opts}
		sameFrame(t, c.name, out[:n], padded(want.build(t)))
	}
	h := base
	if _, err := ServerSYN(make([]byte, 40), &h, 0); !errors.Is(err, rewrite.ErrNoRoom) {
		t.Errorf("short buffer: %v", err)
	}
	n, err := ServerSYN(make([]byte, ServerSYNLen), &h, 0x0064)
	if err != nil || n != 62 {
		t.Errorf("tagged: %d %v", n, err)
	}
}
