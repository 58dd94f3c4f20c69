package rewrite_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"lvslab/rewrite"
)

// ftpSegment builds one TCP segment of an FTP control connection with
// gopacket: rs:21 -> client (a server reply) or the reverse.
type ftpSegment struct {
	src, dst     string
	sport, dport uint16
	seq, ack     uint32
	sack         [][2]uint32
	payload      string
}

func (s ftpSegment) build(tb testing.TB) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: mac("02:00:00:00:00:01"), DstMAC: mac("02:00:00:00:00:02"), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 7, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: ip4(s.src), DstIP: ip4(s.dst)}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport), Seq: s.seq, Ack: s.ack,
		ACK: true, PSH: s.payload != "", Window: 502}
	if len(s.sack) > 0 {
		data := make([]byte, 0, 8*len(s.sack))
		for _, e := range s.sack {
			data = fmt.Appendf(data, "%c%c%c%c%c%c%c%c", byte(e[0]>>24), byte(e[0]>>16), byte(e[0]>>8), byte(e[0]),
				byte(e[1]>>24), byte(e[1]>>16), byte(e[1]>>8), byte(e[1]))
		}
		// One NOP first: the SACK edges sit at odd offsets, the case
		// incremental checksums get wrong most easily.
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindSACK, OptionLength: uint8(2 + len(data)), OptionData: data}}
	}
	return serialize(tb, eth, ip, tcp, gopacket.Payload(s.payload))
}

// withSlack copies frame into a buffer with room to grow.
func withSlack(frame []byte) []byte {
	b := make([]byte, len(frame), len(frame)+slack)
	copy(b, frame)
	return b
}

func mustParse(tb testing.TB, frame []byte) *rewrite.Packet {
	tb.Helper()
	var p rewrite.Packet
	if err := rewrite.Parse(frame, &p); err != nil {
		tb.Fatalf("parse: %v", err)
	}
	return &p
}

func TestParseFTPMessages(t *testing.T) {
	type want struct {
		kind       rewrite.FTPKind
		addr       string // "" for none
		port       uint16
		start, end int
	}
	cases := []struct {
		name, payload string
		reply         rewrite.FTPKind // ParseFTPReply's want; FTPNone: a command
		ok            bool
		want          want
	}{
		{"vsftpd 227", "227 Entering Passive Mode (172,16,0,3,117,49).\r\n", rewrite.FTPPasv, true,
			want{rewrite.FTPPasv, "172.16.0.3", 30001, 27, 44}},
		{"227 without parenthesis", "227 =172,16,0,3,4,1\r\n", rewrite.FTPPasv, true,
			want{rewrite.FTPPasv, "172.16.0.3", 1025, 5, 19}},
		{"227 lower-case text", "227 entering passive mode (10,0,0,1,0,21)\r\n", rewrite.FTPPasv, true,
			want{rewrite.FTPPasv, "10.0.0.1", 21, 27, 40}},
		{"227 cut by the segment end", "227 Entering Passive Mode (172,16,0,3,117", rewrite.FTPPasv, false, want{}},
		{"227 octet over 255", "227 Entering Passive Mode (172,16,0,256,1,1)\r\n", rewrite.FTPPasv, false, want{}},
		{"227 five numbers", "227 Entering Passive Mode (172,16,0,3,1)\r\n", rewrite.FTPPasv, false, want{}},
		{"other reply", "226 Transfer complete.\r\n", rewrite.FTPPasv, false, want{}},
		{"229", "229 Entering Extended Passive Mode (|||30002|)\r\n", rewrite.FTPEpsv, true,
			want{rewrite.FTPEpsv, "", 30002, 36, 45}},
		{"229 with address", "229 ok (!1!172.16.0.3!30002!)\r\n", rewrite.FTPEpsv, true,
			want{rewrite.FTPEpsv, "172.16.0.3", 30002, 8, 28}},
		{"229 port 0", "229 Entering Extended Passive Mode (|||0|)\r\n", rewrite.FTPEpsv, false, want{}},
		{"229 port too big", "229 Entering Extended Passive Mode (|||65536|)\r\n", rewrite.FTPEpsv, false, want{}},
		{"PORT", "PORT 198,51,100,2,195,80\r\n", rewrite.FTPNone, true,
			want{rewrite.FTPPort, "198.51.100.2", 50000, 5, 24}},
		{"port lower case", "port 1,2,3,4,0,20\r\n", rewrite.FTPNone, true,
			want{rewrite.FTPPort, "1.2.3.4", 20, 5, 17}},
		{"EPRT", "EPRT |1|198.51.100.2|50001|\r\n", rewrite.FTPNone, true,
			want{rewrite.FTPEprt, "198.51.100.2", 50001, 5, 27}},
		{"EPRT IPv6", "EPRT |2|2001:db8::1|50001|\r\n", rewrite.FTPNone, false, want{}},
		{"EPRT empty address", "EPRT |||50001|\r\n", rewrite.FTPNone, false, want{}},
		{"RETR", "RETR file\r\n", rewrite.FTPNone, false, want{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var (
				got rewrite.FTPAddress
				ok  bool
			)
			if c.reply != rewrite.FTPNone {
				got, ok = rewrite.ParseFTPReply([]byte(c.payload), c.reply)
			} else {
				got, ok = rewrite.ParseFTPCommand([]byte(c.payload))
			}
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, c.ok, got)
			}
			if !ok {
				return
			}
			w := c.want
			var addr netip.Addr
			if w.addr != "" {
				addr = netip.MustParseAddr(w.addr)
			}
			if got.Kind != w.kind || got.Addr != addr || got.Port != w.port || got.Start != w.start || got.End != w.end {
				t.Fatalf("got %+v, want %+v", got, w)
			}
		})
	}
}

func TestFTPPassiveRequest(t *testing.T) {
	for payload, want := range map[string]rewrite.FTPKind{
		"PASV\r\n":           rewrite.FTPPasv,
		"pasv\r\n":           rewrite.FTPPasv,
		"TYPE I\r\nPASV\r\n": rewrite.FTPPasv,
		"EPSV\r\n":           rewrite.FTPEpsv,
		"EPSV 1\r\n":         rewrite.FTPEpsv,
		"PASV":               rewrite.FTPNone, // no line end yet
		"RETR PASV.txt\r\n":  rewrite.FTPNone,
		"":                   rewrite.FTPNone,
	} {
		if got := rewrite.FTPPassiveRequest([]byte(payload)); got != want {
			t.Errorf("FTPPassiveRequest(%q) = %v, want %v", payload, got, want)
		}
	}
}

// TestRewriteFTPGolden rewrites the address text of each message to the VIP
// (or, for the commands, another address) and compares the frame byte for
// byte with the one gopacket builds from the expected text; every checksum
// is then verified from scratch.
func TestRewriteFTPGolden(t *testing.T) {
	vip := netip.MustParseAddr("203.0.113.5")
	cases := []struct {
		name, in, out string
		reply         rewrite.FTPKind
		to            netip.AddrPort
		delta         int
		fromClient    bool
	}{
		{"PASV grows by 1", "227 Entering Passive Mode (172,16,0,3,117,49).\r\n", "227 Entering Passive Mode (203,0,113,5,117,49).\r\n",
			rewrite.FTPPasv, netip.AddrPortFrom(vip, 30001), 1, false},
		{"PASV grows by 3", "227 Entering Passive Mode (10,0,0,3,117,49).\r\n", "227 Entering Passive Mode (203,0,113,5,117,49).\r\n",
			rewrite.FTPPasv, netip.AddrPortFrom(vip, 30001), 3, false},
		{"PASV shrinks by 7 (odd start)", "227 (172,16,100,200,117,49)\r\n", "227 (1,2,3,4,117,49)\r\n",
			rewrite.FTPPasv, netip.MustParseAddrPort("1.2.3.4:30001"), -7, false},
		{"EPSV", "229 Entering Extended Passive Mode (|||30002|)\r\n", "229 Entering Extended Passive Mode (|||30002|)\r\n",
			rewrite.FTPEpsv, netip.AddrPortFrom(vip, 30002), 0, false},
		{"PORT", "PORT 198,51,100,2,195,80\r\n", "PORT 10,0,0,9,195,81\r\n",
			rewrite.FTPNone, netip.MustParseAddrPort("10.0.0.9:50001"), -4, true},
		{"EPRT", "EPRT |1|198.51.100.2|50001|\r\n", "EPRT |1|10.0.0.9|50002|\r\n",
			rewrite.FTPNone, netip.MustParseAddrPort("10.0.0.9:50002"), -4, true},
	}
	var pcap [][]byte
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// One connection per case, so tshark sees no retransmissions.
			cport := uint16(40000 + i)
			seg := ftpSegment{src: "172.16.0.3", dst: "198.51.100.2", sport: 21, dport: cport, seq: 1000, ack: 5000, payload: c.in}
			if c.fromClient {
				seg = ftpSegment{src: "198.51.100.2", dst: "172.16.0.3", sport: cport, dport: 21, seq: 5000, ack: 1000, payload: c.in}
			}
			frame := withSlack(seg.build(t))
			p := mustParse(t, frame)
			var (
				a  rewrite.FTPAddress
				ok bool
			)
			if c.reply != rewrite.FTPNone {
				a, ok = rewrite.ParseFTPReply(frame[p.Payload:p.End], c.reply)
			} else {
				a, ok = rewrite.ParseFTPCommand(frame[p.Payload:p.End])
			}
			if !ok {
				t.Fatal("message not found")
			}
			got, delta, err := rewrite.RewriteFTP(frame, p, &a, c.to, 1500)
			if err != nil {
				t.Fatal(err)
			}
			if delta != c.delta {
				t.Errorf("delta %d, want %d", delta, c.delta)
			}
			seg.payload = c.out
			want := seg.build(t)
			if !bytes.Equal(got, want) {
				t.Fatalf("frame differs:\n%s", frameDiff(got, want))
			}
			verifyChecksums(t, got, csumFull)
			// The Packet describes the output.
			var q rewrite.Packet
			if err := rewrite.Parse(got, &q); err != nil || q != *p {
				t.Fatalf("packet %+v after rewrite, Parse gives %+v (%v)", *p, q, err)
			}
			pcap = append(pcap, got)
		})
	}
	tsharkFTP(t, pcap, []string{
		"227\t203.0.113.5\t30001\t\t\t\t",
		"227\t203.0.113.5\t30001\t\t\t\t",
		"227\t1.2.3.4\t30001\t\t\t\t",
		"229\t\t\t30002\t\t\t",
		"\t\t\t\t10.0.0.9\t50001\t",
		"\t\t\t\t\t\t10.0.0.9",
	})
}

// TestRewriteFTPPartial: a CHECKSUM_PARTIAL frame keeps its field as the
// pseudo-header sum of the new length.
func TestRewriteFTPPartial(t *testing.T) {
	seg := ftpSegment{src: "172.16.0.3", dst: "198.51.100.2", sport: 21, dport: 40000, seq: 1, ack: 1,
		payload: "227 Entering Passive Mode (10,0,0,3,117,49).\r\n"}
	frame := withSlack(seg.build(t))
	p := mustParse(t, frame)
	p.Partial = true
	ipOff, l4 := p.L3, p.L4
	pseudo := func(b []byte, length int) uint16 {
		src, _ := netip.AddrFromSlice(b[ipOff+12 : ipOff+16])
		dst, _ := netip.AddrFromSlice(b[ipOff+16 : ipOff+20])
		return rewrite.PseudoHeaderSum(src, dst, rewrite.ProtoTCP, uint16(length))
	}
	frame[l4+16], frame[l4+17] = byte(pseudo(frame, p.End-l4)>>8), byte(pseudo(frame, p.End-l4))
	a, ok := rewrite.ParseFTPReply(frame[p.Payload:p.End], rewrite.FTPPasv)
	if !ok {
		t.Fatal("227 not found")
	}
	got, delta, err := rewrite.RewriteFTP(frame, p, &a, netip.MustParseAddrPort("203.0.113.5:30001"), 1500)
	if err != nil || delta != 3 {
		t.Fatalf("delta %d, err %v", delta, err)
	}
	if f, w := uint16(got[l4+16])<<8|uint16(got[l4+17]), pseudo(got, p.End-l4); f != w {
		t.Fatalf("partial field %#04x, want %#04x", f, w)
	}
}

func TestRewriteFTPRefusals(t *testing.T) {
	seg := ftpSegment{src: "172.16.0.3", dst: "198.51.100.2", sport: 21, dport: 40000, seq: 1, ack: 1,
		payload: "227 Entering Passive Mode (10,0,0,3,117,49).\r\n"}
	in := seg.build(t)
	to := netip.MustParseAddrPort("203.0.113.5:30001")
	for name, tc := range map[string]struct {
		frame []byte
		mtu   int
		want  error
	}{
		"no room":      {in[:len(in):len(in)], 1500, rewrite.ErrNoRoom}, // no capacity beyond the frame
		"exceeds mtu":  {withSlack(in), len(in) - 14, rewrite.ErrExceedsMTU},
		"address v6":   {withSlack(in), 1500, rewrite.ErrNotIPv4Addr},
		"bad position": {withSlack(in), 1500, rewrite.ErrBadPacket},
	} {
		t.Run(name, func(t *testing.T) {
			frame := tc.frame
			p := mustParse(t, frame)
			a, _ := rewrite.ParseFTPReply(frame[p.Payload:p.End], rewrite.FTPPasv)
			dst := to
			switch name {
			case "address v6":
				dst = netip.MustParseAddrPort("[2001:db8::1]:21")
			case "bad position":
				a.End = p.End
			}
			before := bytes.Clone(frame)
			got, _, err := rewrite.RewriteFTP(frame, p, &a, dst, tc.mtu)
			if err != tc.want {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if !bytes.Equal(got, before) || !bytes.Equal(frame, before) {
				t.Fatal("frame changed on error")
			}
		})
	}
}

// TestSeqAdjustAcrossSegments: a 227 reply grows by 3 bytes; every later
// server segment moves up by 3, a retransmission of the reply itself keeps
// the previous offset, the client's ACKs and SACK edges move back, and a
// second resize stacks on the first.
func TestSeqAdjustAcrossSegments(t *testing.T) {
	const (
		server = "172.16.0.3"
		client = "198.51.100.2"
	)
	var out, in rewrite.SeqAdjust // server->client (resized), client->server (never resized)
	reply := "227 Entering Passive Mode (10,0,0,3,117,49).\r\n"
	const replySeq = 1000
	out.Update(replySeq, 3)
	steps := []struct {
		name       string
		seg        ftpSegment
		fromClient bool
		wantSeq    uint32
		wantAck    uint32
		wantSACK   [][2]uint32
	}{
		{"reply itself retransmitted", ftpSegment{src: server, dst: client, sport: 21, dport: 40000, seq: replySeq, ack: 5000, payload: reply}, false, replySeq, 5000, nil},
		{"next server segment", ftpSegment{src: server, dst: client, sport: 21, dport: 40000, seq: replySeq + 47, ack: 5006, payload: "150 Here comes the data.\r\n"}, false, replySeq + 50, 5006, nil},
		{"client acks the reply", ftpSegment{src: client, dst: server, sport: 40000, dport: 21, seq: 5006, ack: replySeq + 50}, true, 5006, replySeq + 47, nil},
		{"client acks before the reply", ftpSegment{src: client, dst: server, sport: 40000, dport: 21, seq: 5006, ack: replySeq}, true, 5006, replySeq, nil},
		{"client SACKs a later block", ftpSegment{src: client, dst: server, sport: 40000, dport: 21, seq: 5006, ack: replySeq + 50,
			sack: [][2]uint32{{replySeq + 76, replySeq + 100}}}, true, 5006, replySeq + 47, [][2]uint32{{replySeq + 73, replySeq + 97}}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			frame := s.seg.build(t)
			p := mustParse(t, frame)
			var err error
			if s.fromClient {
				err = rewrite.AdjustSeqAck(frame, p, &in, &out)
			} else {
				err = rewrite.AdjustSeqAck(frame, p, &out, &in)
			}
			if err != nil {
				t.Fatal(err)
			}
			want := s.seg
			want.seq, want.ack, want.sack = s.wantSeq, s.wantAck, s.wantSACK
			if want.sack == nil {
				want.sack = s.seg.sack
			}
			if w := want.build(t); !bytes.Equal(frame, w) {
				t.Fatalf("frame differs:\n%s", frameDiff(frame, w))
			}
			verifyChecksums(t, frame, csumFull)
		})
	}
	// A second resize after the first: later segments carry both.
	out.Update(replySeq+200, -2)
	if got := out.Seq(replySeq + 300); got != replySeq+301 {
		t.Errorf("after two resizes seq %d, want %d", got, replySeq+301)
	}
	if got := out.Seq(replySeq + 100); got != replySeq+103 {
		t.Errorf("between the resizes seq %d, want %d (previous delta)", got, replySeq+103)
	}
	// A retransmitted first resize does not count twice.
	out.Update(replySeq, 3)
	if out.Delta != 1 || out.PreviousDelta != 3 {
		t.Errorf("delta %d previous %d after a retransmitted resize, want 1 and 3", out.Delta, out.PreviousDelta)
	}
}

// TestSeqAdjustAckAtResizedStart: an acknowledgement of exactly the start
// of a resized segment acknowledges none of it, whether it grew or shrank
// (the kernel's vs_fix_ack_seq maps it 2 bytes into a reply that shrank by
// 2); one of its end acknowledges all of it; one from before it moves by
// the previous offset.
func TestSeqAdjustAckAtResizedStart(t *testing.T) {
	for _, diff := range []int{-2, 3} {
		const l = 49 // the segment's length as its sender sent it
		var a rewrite.SeqAdjust
		a.Update(990, 1) // an earlier resize: 1 is the previous offset below
		a.Update(999, diff)
		// The receiver numbers the segment from 1000, its end 1000+l+diff.
		for _, c := range []struct{ ack, want uint32 }{
			{1000, 999}, {uint32(1000 + l + diff), 999 + l}, {995, 994},
		} {
			if got := a.Ack(c.ack); got != c.want {
				t.Errorf("resize %+d: ack %d -> %d, want %d", diff, c.ack, got, c.want)
			}
		}
	}
}

// tsharkFTP writes frames to a pcap and has tshark's FTP dissector read
// the addresses back: code, passive ip, passive port, epsv port, active ip,
// active port, eprt ip, one line per frame.
func tsharkFTP(t *testing.T, frames [][]byte, want []string) {
	t.Helper()
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Log("tshark not installed: FTP dissector cross-check skipped")
		return
	}
	path := filepath.Join(t.TempDir(), "ftp.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, fr := range frames {
		if err := w.WritePacket(gopacket.CaptureInfo{CaptureLength: len(fr), Length: len(fr)}, fr); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	out, err := exec.Command(tshark, "-n", "-r", path, "-T", "fields", "-e", "ftp.response.code", "-e", "ftp.passive.ip",
		"-e", "ftp.passive.port", "-e", "ftp.epsv.port", "-e", "ftp.active.cip", "-e", "ftp.active.port", "-e", "ftp.eprt.ip").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	got := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("tshark read %d frames, want %d:\n%s", len(got), len(want), out)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("frame %d: tshark says %q, want %q", i, got[i], want[i])
		}
	}
}

// FuzzFTPParse: the parsers never panic, what they find lies in the
// payload, and a rewrite of it keeps every checksum right.
func FuzzFTPParse(f *testing.F) {
	for _, s := range []string{
		"227 Entering Passive Mode (172,16,0,3,117,49).\r\n", "229 Entering Extended Passive Mode (|||30002|)\r\n",
		"PORT 198,51,100,2,195,80\r\n", "EPRT |1|198.51.100.2|50001|\r\n", "PASV\r\n", "EPSV\r\n", "227 (", "EPRT |", "229 (|||",
	} {
		f.Add([]byte(s))
	}
	base := ftpSegment{src: "172.16.0.3", dst: "198.51.100.2", sport: 21, dport: 40000, seq: 1, ack: 1}
	f.Fuzz(func(t *testing.T, payload []byte) {
		rewrite.FTPPassiveRequest(payload)
		for _, kind := range []rewrite.FTPKind{rewrite.FTPPasv, rewrite.FTPEpsv, rewrite.FTPNone} {
			var (
				a  rewrite.FTPAddress
				ok bool
			)
			if kind == rewrite.FTPNone {
				a, ok = rewrite.ParseFTPCommand(payload)
			} else {
				a, ok = rewrite.ParseFTPReply(payload, kind)
			}
			if !ok {
				continue
			}
			if a.Start < 0 || a.Start > a.End || a.End > len(payload) {
				t.Fatalf("%v found at [%d:%d] of %d bytes", a.Kind, a.Start, a.End, len(payload))
			}
			if len(payload) > 1400 {
				continue
			}
			seg := base
			seg.payload = string(payload)
			frame := withSlack(seg.build(t))
			p := mustParse(t, frame)
			got, _, err := rewrite.RewriteFTP(frame, p, &a, netip.MustParseAddrPort("255.255.255.255:65535"), 1500)
			if err != nil {
				continue
			}
			verifyChecksums(t, got, csumFull)
		}
	})
}

func TestFTPNoAllocs(t *testing.T) {
	seg := ftpSegment{src: "172.16.0.3", dst: "198.51.100.2", sport: 21, dport: 40000, seq: 1, ack: 1,
		payload: "227 Entering Passive Mode (10,0,0,3,117,49).\r\n"}
	in := seg.build(t)
	frame := withSlack(in)
	to := netip.MustParseAddrPort("203.0.113.5:30001")
	var adj rewrite.SeqAdjust
	adj.Update(1, 3)
	var p rewrite.Packet
	allocs := testing.AllocsPerRun(100, func() {
		frame = frame[:copy(frame[:len(in)], in)]
		if rewrite.Parse(frame, &p) != nil {
			t.Fatal("parse")
		}
		rewrite.FTPPassiveRequest(frame[p.Payload:p.End])
		a, ok := rewrite.ParseFTPReply(frame[p.Payload:p.End], rewrite.FTPPasv)
		if !ok {
			t.Fatal("227 not found")
		}
		out, _, err := rewrite.RewriteFTP(frame, &p, &a, to, 1500)
		if err != nil {
			t.Fatal(err)
		}
		if rewrite.AdjustSeqAck(out, &p, &adj, nil) != nil {
			t.Fatal("adjust")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet", allocs)
	}
}
