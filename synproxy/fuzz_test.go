package synproxy

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"lvslab/rewrite"
)

const (
	fuzzSlack   = 32
	fuzzPattern = 0xa5
)

// fixIPChecksum makes the IPv4 header checksum of an untagged frame valid,
// so the fuzzer gets past Parse (computed here, not by the package under
// test's helpers).
func fixIPChecksum(b []byte) {
	if len(b) < 34 || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
		return
	}
	ihl := int(b[14]&0x0f) * 4
	if ihl < 20 || 14+ihl > len(b) {
		return
	}
	b[24], b[25] = 0, 0
	var sum uint32
	for i := 14; i < 14+ihl; i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(b[24:], ^uint16(sum))
}

// FuzzCheckACK feeds arbitrary frames to the ACK validation and to every
// other per-packet function: none panics or writes past the frame; an
// error leaves the frame unchanged; an accepted ACK's handshake re-encodes
// to the very cookie it was recovered from; an adjusted frame whose
// checksum was valid stays valid.
func FuzzCheckACK(f *testing.F) {
	sec := fixedSecret(f, 1)
	s := DefaultSettings()
	s.WScale, s.Timestamp = 7, true
	syn := withRoom(linuxSYN(1460, 7).build(f))
	p := parse(f, syn)
	synack, err := SYNACK(syn, p, &s, sec, now)
	if err != nil {
		f.Fatal(err)
	}
	cookie := rewrite.TCP(synack[p.L4:p.End]).Seq()
	f.Add(seg{src: clientIP, dst: vipIP, sport: 40000, dport: 80, seq: clientISN + 1, ack: cookie + 1, flags: "A", ttl: 64,
		opts: []layers.TCPOption{nop(), nop(), tsOpt(1, TSClock(now))}, payload: []byte("GET / HTTP/1.0\r\n\r\n")}.build(f), uint8(0))
	f.Add(linuxSYN(1460, 7).build(f), uint8(1))
	f.Add(seg{src: rsIP, dst: clientIP, seq: 1, ack: clientISN + 1, flags: "SA", ttl: 64,
		opts: []layers.TCPOption{nop(), sackOpt(1, 2, 3, 4), nop(), nop(), nop(), tsOpt(5, 6)}}.build(f), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, age uint8) {
		buf := make([]byte, len(in)+fuzzSlack)
		copy(buf, in)
		for i := len(in); i < len(buf); i++ {
			buf[i] = fuzzPattern
		}
		frame := buf[:len(in)]
		fixIPChecksum(frame)
		var pk rewrite.Packet
		if rewrite.Parse(frame, &pk) != nil || pk.Protocol != rewrite.ProtoTCP {
			return
		}
		at := now + int64(age%8)*CounterPeriod
		orig := bytes.Clone(frame)
		h, err := CheckACK(frame, &pk, sec, at)
		if !bytes.Equal(frame, orig) {
			t.Fatal("CheckACK changed the frame")
		}
		if err == nil {
			if h.ISN != rewrite.TCP(frame[pk.L4:pk.End]).Ack()-1 {
				t.Fatal("handshake ISN is not the ACK's ack − 1")
			}
			issued := Counter(at) - uint32(age%8)
			ok := false
			for back := range uint32(CounterTries) {
				if sec.Cookie(&h.Tuple, h.ClientISN, Counter(at)-back, EncodeData(h.Options)) == h.ISN {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("accepted cookie %#x does not re-encode (issued %d)", h.ISN, issued)
			}
		}
		valid := tcpChecksumOK(frame, &pk)
		c := Conn{Delta: 0x01020304, TSDelta: 0x0a0b0c0d, WScaleRS: 9, WScaleVS: 7, InShift: 3}
		for _, adj := range []func([]byte, *rewrite.Packet, *Conn) error{AdjustIn, AdjustOut} {
			before := bytes.Clone(frame)
			q := pk
			if err := adj(frame, &q, &c); err != nil {
				if !bytes.Equal(frame, before) {
					t.Fatal("a failed adjustment changed the frame")
				}
				continue
			}
			if valid && !tcpChecksumOK(frame, &q) {
				t.Fatal("adjustment broke a valid checksum")
			}
		}
		_ = c.AckStorm(frame, &pk, 10)
		_ = c.ServerSYNACK(frame, &pk)
		q := pk
		before := bytes.Clone(frame)
		out, err := SYNACK(frame, &q, &s, sec, at)
		if err != nil && !bytes.Equal(frame, before) {
			t.Fatal("a refused SYN changed the frame")
		}
		if err == nil && !tcpChecksumOK(out, &q) {
			t.Fatal("SYN/ACK checksum invalid")
		}
		for i := len(in); i < len(buf); i++ {
			if buf[i] != fuzzPattern && i >= max(len(in), minFrameLen) {
				t.Fatalf("wrote past the frame at %d", i)
			}
		}
	})
}
