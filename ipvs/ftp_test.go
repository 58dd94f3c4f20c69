package ipvs

import (
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/config"
)

// The FTP helper's fixtures: one control connection through a NAT service
// on port 21, a passive download (227 rewritten to the VIP, a reply whose
// length changes, so the sequence offset shows on later segments both
// ways) and an active one (PORT: the real server connects back from port
// 20 and leaves as VIP:20). The VIP 10.0.0.5 is two characters shorter
// than the real server's 172.16.0.2 in a 227 reply.

const ftpVIP = "10.0.0.5"

// ftpSeg is one TCP segment of the fixture world.
type ftpSeg struct {
	fromRS       bool
	sip, dip     string
	sport, dport uint16
	seq, ack     uint32
	flags        string
	payload      string
}

func (s ftpSeg) tcp() *layers.TCP {
	t := tcp4(s.sport, s.dport, s.flags)
	t.Seq, t.Ack = s.seq, s.ack
	return t
}

// wire is the segment as its sender puts it on the link.
func (s ftpSeg) wire(tb testing.TB) []byte {
	src, dst := clientMAC, extMAC
	if s.fromRS {
		src, dst = rsMAC, intMAC
	}
	return pkt{src: src, dst: dst, sip: s.sip, dip: s.dip, ttl: 64, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{s.tcp()}, payload: []byte(s.payload)}.build(tb)
}

// forwarded is the segment as lvsd sends it on: to the real server (dst
// rewritten) or to the client (src rewritten), TTL decremented.
func (s ftpSeg) forwarded(tb testing.TB) []byte {
	src, dst := intMAC, rsMAC
	if s.fromRS {
		src, dst = extMAC, clientMAC
	}
	return pkt{src: src, dst: dst, sip: s.sip, dip: s.dip, ttl: 63, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{s.tcp()}, payload: []byte(s.payload)}.build(tb)
}

func ftpFixtures(tb testing.TB) []fixture {
	rules := []string{"-A -t " + ftpVIP + ":21 -s rr", "-a -t " + ftpVIP + ":21 -r 172.16.0.2:21 -m"}
	c := func(sport, dport uint16, seq, ack uint32, flags, payload string) ftpSeg {
		return ftpSeg{sip: fxClient, dip: ftpVIP, sport: sport, dport: dport, seq: seq, ack: ack, flags: flags, payload: payload}
	}
	r := func(sport, dport uint16, seq, ack uint32, flags, payload string) ftpSeg {
		return ftpSeg{fromRS: true, sip: fxRS, dip: fxClient, sport: sport, dport: dport, seq: seq, ack: ack, flags: flags, payload: payload}
	}
	// in: what the client sends and what reaches the real server.
	in := func(s ftpSeg, toRS ftpSeg) fxStep {
		return fxStep{name: s.flags + " " + s.payload, frame: s.wire(tb), int: [][]byte{toRS.forwarded(tb)}}
	}
	out := func(s ftpSeg, toClient ftpSeg) fxStep {
		return fxStep{name: s.flags + " " + s.payload, fromInt: true, frame: s.wire(tb), ext: [][]byte{toClient.forwarded(tb)}}
	}
	toRS := func(s ftpSeg) ftpSeg { s.dip = fxRS; return s }
	toClient := func(s ftpSeg) ftpSeg { s.sip = ftpVIP; return s }

	const pasvReply = "227 Entering Passive Mode (172,16,0,2,117,49).\r\n" // 49 bytes
	const pasvOut = "227 Entering Passive Mode (10,0,0,5,117,49).\r\n"     // 47 bytes
	handshake := func() []fxStep {
		syn := c(40000, 21, 100, 0, "S", "")
		synack := r(21, 40000, 900, 101, "SA", "")
		ack := c(40000, 21, 101, 901, "A", "")
		return []fxStep{in(syn, toRS(syn)), out(synack, toClient(synack)), in(ack, toRS(ack))}
	}
	pasv := c(40000, 21, 101, 901, "PA", "PASV\r\n")
	reply := r(21, 40000, 901, 107, "PA", pasvReply)
	replyOut := toClient(reply)
	replyOut.payload = pasvOut
	// The next server segment starts at 950; the client saw 2 bytes fewer.
	next := r(21, 40000, 950, 107, "PA", "150 Here comes the data.\r\n")
	nextOut := toClient(next)
	nextOut.seq = 948
	// The client acknowledges both in its own numbering; the server gets
	// its own back.
	ack := c(40000, 21, 107, 974, "A", "")
	ackIn := toRS(ack)
	ackIn.ack = 976
	// The retransmitted reply keeps its sequence number and is rewritten
	// again.
	dataSyn := c(45000, 30001, 7000, 0, "S", "")
	dataSynAck := r(30001, 45000, 8000, 7001, "SA", "")
	passive := append(handshake(),
		in(pasv, toRS(pasv)),
		out(reply, replyOut),
		out(next, nextOut),
		in(ack, ackIn),
		out(reply, replyOut),
		in(dataSyn, toRS(dataSyn)),
		out(dataSynAck, toClient(dataSynAck)),
	)

	port := c(40000, 21, 101, 901, "PA", "PORT 10,0,0,2,195,80\r\n")
	activeSyn := r(20, 50000, 3000, 0, "S", "")
	activeSynAck := c(50000, 20, 4000, 3001, "SA", "")
	activeIn := toRS(activeSynAck)
	active := append(handshake(),
		in(port, toRS(port)),
		out(activeSyn, toClient(activeSyn)),
		in(activeSynAck, activeIn),
	)

	// Helper off: the 227 reply leaves with the real server's address and
	// the client's data connection to the VIP finds nothing (a RST).
	off := append(handshake(),
		in(pasv, toRS(pasv)),
		out(reply, toClient(reply)),
		fxStep{name: "data SYN refused", frame: dataSyn.wire(tb), ext: [][]byte{pkt{src: extMAC, dst: clientMAC, sip: ftpVIP, dip: fxClient,
			ttl: 64, df: true, proto: layers.IPProtocolTCP, l4: []gopacket.SerializableLayer{&layers.TCP{SrcPort: 30001, DstPort: 45000,
				Ack: 7001, ACK: true, RST: true}}}.build(tb)}},
	)
	return []fixture{{
		name: "FTP passive", rules: rules, steps: passive,
		counters: map[string]uint64{"rx_frames": 10, "tx_frames": 10, "conns": 2, "conns_created": 2,
			"ftp_data_expected": 1, "ftp_pasv_rewritten": 2},
	}, {
		name: "FTP active", rules: rules, steps: active,
		counters: map[string]uint64{"rx_frames": 6, "tx_frames": 6, "conns": 2, "conns_created": 2, "ftp_data_expected": 1},
	}, {
		name: "FTP helper off", rules: rules, steps: off, ftpOff: true,
		counters: map[string]uint64{"rx_frames": 6, "tx_frames": 6, "conns": 1, "conns_created": 1,
			"drop_no_service": 1, "tx_resets": 1},
	}}
}

func TestFTPFixtures(t *testing.T) {
	for _, fx := range ftpFixtures(t) {
		t.Run(fx.name, fx.run)
	}
}

// TestFTPNoAllocs: packets of an FTP control connection (seq-adjusted
// both ways) and of its data connection allocate nothing.
func TestFTPNoAllocs(t *testing.T) {
	fx := ftpFixtures(t)[0]
	fe := newFxEngine(t, fx.rules, nil, nil)
	for _, s := range fx.steps {
		in := fe.ext
		if s.fromInt {
			in = fe.int
		}
		fe.feed(in, s.frame, false)
	}
	fe.drain(t, fe.extW)
	fe.drain(t, fe.intW)
	next := fx.steps[5].frame // a server segment after the resize
	ack := fx.steps[6].frame  // the client's adjusted ACK
	if n := testing.AllocsPerRun(100, func() {
		fe.feed(fe.int, next, false)
		fe.feed(fe.ext, ack, false)
	}); n != 0 {
		t.Fatalf("%v allocations per pair of control-connection packets", n)
	}
	if got := fe.drain(t, fe.extW); len(got) == 0 {
		t.Fatal("nothing forwarded")
	}
}

// TestActiveFTPDRPersistent: in DR the real server's active data
// connection goes straight to the client; the client's SYN-ACK to VIP:20
// is scheduled like a SYN (tcp_conn_schedule), so the port-0 persistence
// template takes it to the real server of the control connection.
func TestActiveFTPDRPersistent(t *testing.T) {
	// rr picks the newest destination first: 172.16.0.2, whose MAC the
	// fixture knows; without the template the SYN-ACK would go to
	// 172.16.0.3 (and wait for ARP).
	rules := []string{"-A -t 10.0.0.100:0 -s rr -p", "-a -t 10.0.0.100:0 -r 172.16.0.3 -g", "-a -t 10.0.0.100:0 -r 172.16.0.2 -g"}
	dr := func(s ftpSeg) fxStep {
		// DR: addresses kept, the real server's MAC, TTL decremented.
		return fxStep{name: s.flags, frame: s.wire(t), int: [][]byte{pkt{src: intMAC, dst: rsMAC, sip: s.sip, dip: s.dip, ttl: 63, df: true,
			proto: layers.IPProtocolTCP, l4: []gopacket.SerializableLayer{s.tcp()}, payload: []byte(s.payload)}.build(t)}}
	}
	ctl := ftpSeg{sip: fxClient, dip: fxVIP, sport: 40000, dport: 21, seq: 100, flags: "S"}
	synack := ftpSeg{sip: fxClient, dip: fxVIP, sport: 50000, dport: 20, seq: 4000, ack: 3001, flags: "SA"}
	fx := fixture{name: "DR port-0 active FTP", rules: rules, steps: []fxStep{dr(ctl), dr(synack)},
		counters: map[string]uint64{"rx_frames": 2, "tx_frames": 2, "conns": 2, "templates": 1, "conns_created": 3}}
	fx.run(t)
}

func TestFTPServices(t *testing.T) {
	var tab config.Table
	for _, line := range []string{"-A -t 10.0.0.5:21", "-a -t 10.0.0.5:21 -r 172.16.0.2:21 -m",
		"-A -t 10.0.0.6:21", "-a -t 10.0.0.6:21 -r 172.16.0.2 -g",
		"-A -t 10.0.0.5:80", "-a -t 10.0.0.5:80 -r 172.16.0.2:80 -m"} {
		c, err := config.ParseArgs(splitFields(line))
		if err != nil {
			t.Fatal(err)
		}
		if err := tab.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	got := FTPServices(tab, DefaultFTPPorts)
	if len(got) != 1 || got[0].Port != 21 || got[0].Addr.String() != "10.0.0.5" {
		t.Fatalf("FTPServices = %v, want only the NAT service 10.0.0.5:21", got)
	}
	if got := FTPServices(tab, nil); len(got) != 0 {
		t.Fatalf("helper off: %v", got)
	}
}
