package ipvs

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/rewrite"
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

// The FULLNAT FTP world: client 10.0.0.2 -> VIP 10.0.0.5:21, the real
// server 172.16.0.2:21 sees the local address 172.16.0.10 only. The
// control connection holds local port 5000; its data connection gets 5001.
const (
	ftpLIP       = "172.16.0.10"
	ftpCtlLport  = 5000
	ftpDataLport = 5001
	ftpClientISN = 100
	ftpServerISN = 900
)

// fnatFTPDelta is FULLNAT's remap of a client's sequence numbers toward the
// real server for a connection from local:lport to RS:rport whose client
// started at isn.
func fnatFTPDelta(lport, rport uint16, isn uint32) uint32 {
	return fnatISN(fxISNKey, netip.AddrPortFrom(netip.MustParseAddr(ftpLIP), lport),
		netip.AddrPortFrom(netip.MustParseAddr(fxRS), rport), int64(time.Hour)) - isn
}

// ftpTOA is the TOA option naming the client's port.
func ftpTOA(cport uint16) layers.TCPOption {
	return layers.TCPOption{OptionType: rewrite.TCPOptTOA, OptionLength: 8, OptionData: []byte{byte(cport >> 8), byte(cport), 10, 0, 0, 2}}
}

// fnatFTPFrames builds the four views of a FULLNAT FTP segment: as the
// client or the real server sends it, and as lvsd forwards it.
type fnatFTPFrames struct {
	tb  testing.TB
	vip string
}

func (f fnatFTPFrames) seg(src, dst rewrite.MAC, sip, dip string, ttl uint8, sport, dport uint16, seq, ack uint32, flags, payload string, opts ...layers.TCPOption) []byte {
	return pkt{src: src, dst: dst, sip: sip, dip: dip, ttl: ttl, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{spTCP(sport, dport, seq, ack, flags, 8192, opts...)}, payload: []byte(payload)}.build(f.tb)
}

// client: client -> VIP on the wire.
func (f fnatFTPFrames) client(cport, vport uint16, seq, ack uint32, flags, payload string) []byte {
	return f.seg(clientMAC, extMAC, fxClient, f.vip, 64, cport, vport, seq, ack, flags, payload)
}

// toRS: a client segment as the real server gets it, from the local address.
func (f fnatFTPFrames) toRS(lport, rport uint16, seq, ack uint32, flags, payload string, opts ...layers.TCPOption) []byte {
	return f.seg(intMAC, rsMAC, ftpLIP, fxRS, 63, lport, rport, seq, ack, flags, payload, opts...)
}

// rs: real server -> local address on the wire.
func (f fnatFTPFrames) rs(rport, lport uint16, seq, ack uint32, flags, payload string) []byte {
	return f.seg(rsMAC, intMAC, fxRS, ftpLIP, 64, rport, lport, seq, ack, flags, payload)
}

// toClient: a real server's segment as the client gets it, from the VIP.
func (f fnatFTPFrames) toClient(vport, cport uint16, seq, ack uint32, flags, payload string) []byte {
	return f.seg(extMAC, clientMAC, f.vip, fxClient, 63, vport, cport, seq, ack, flags, payload)
}

// fnatFTPFixtures: the FTP helper on a FULLNAT service. Passive: the 227
// reply is rewritten to the VIP as for NAT (2 bytes shorter, so the real
// server's later sequence numbers and the client's acknowledgements move),
// the data connection is a FULLNAT connection of its own from the next
// local port. Active: the PORT command names the client, which the real
// server cannot reach; it is rewritten to the local address and the data
// connection's local port (3 bytes longer, so the client's later sequence
// numbers move toward the real server on top of FULLNAT's remap, and the
// real server's acknowledgements back), and the real server's connection
// from port 20 to that port leaves as VIP:20 to the client's port.
func fnatFTPFixtures(tb testing.TB) []fixture {
	f := fnatFTPFrames{tb: tb, vip: ftpVIP}
	rules := []string{"-A -t " + ftpVIP + ":21 -s rr", "laddr " + ftpLIP, "-a -t " + ftpVIP + ":21 -r 172.16.0.2:21 --fullnat"}
	fd := fnatFTPDelta(ftpCtlLport, 21, ftpClientISN)
	const c0, s0 = ftpClientISN + 1, ftpServerISN + 1 // the first data byte each way
	const banner = "220 lvslab\r\n"
	s1 := uint32(s0 + len(banner))
	in := func(name string, frame, toRS []byte) fxStep {
		return fxStep{name: name, frame: frame, int: [][]byte{toRS}}
	}
	out := func(name string, frame, toClient []byte) fxStep {
		return fxStep{name: name, fromInt: true, frame: frame, ext: [][]byte{toClient}}
	}
	// The handshake and the banner: TOA in the SYN and in the first ACK
	// (fxStep names say which packet).
	handshake := []fxStep{
		in("SYN", f.client(40000, 21, ftpClientISN, 0, "S", ""), f.toRS(ftpCtlLport, 21, ftpClientISN+fd, 0, "S", "", ftpTOA(40000))),
		out("SYN-ACK", f.rs(21, ftpCtlLport, ftpServerISN, c0+fd, "SA", ""), f.toClient(21, 40000, ftpServerISN, c0, "SA", "")),
		in("ACK", f.client(40000, 21, c0, s0, "A", ""), f.toRS(ftpCtlLport, 21, c0+fd, s0, "A", "", ftpTOA(40000))),
		out("banner", f.rs(21, ftpCtlLport, s0, c0+fd, "PA", banner), f.toClient(21, 40000, s0, c0, "PA", banner)),
	}

	const pasv = "PASV\r\n"
	const pasvReply = "227 Entering Passive Mode (172,16,0,2,117,49).\r\n" // 49 bytes
	const pasvOut = "227 Entering Passive Mode (10,0,0,5,117,49).\r\n"     // 47 bytes
	const next = "150 Here comes the data.\r\n"
	c1 := uint32(c0 + len(pasv))
	s2 := s1 + uint32(len(pasvReply))
	dfd := fnatFTPDelta(ftpDataLport, 30001, 7000)
	passive := append(slices.Clone(handshake),
		in("PASV", f.client(40000, 21, c0, s1, "PA", pasv), f.toRS(ftpCtlLport, 21, c0+fd, s1, "PA", pasv)),
		out("227", f.rs(21, ftpCtlLport, s1, c1+fd, "PA", pasvReply), f.toClient(21, 40000, s1, c1, "PA", pasvOut)),
		// The real server's next segment starts 2 bytes earlier for the
		// client; the client's acknowledgement of it moves back.
		out("150", f.rs(21, ftpCtlLport, s2, c1+fd, "PA", next), f.toClient(21, 40000, s2-2, c1, "PA", next)),
		in("ACK of 150", f.client(40000, 21, c1, s2-2+uint32(len(next)), "A", ""), f.toRS(ftpCtlLport, 21, c1+fd, s2+uint32(len(next)), "A", "")),
		// A retransmitted 227 is rewritten again and expects nothing new.
		out("227 again", f.rs(21, ftpCtlLport, s1, c1+fd, "PA", pasvReply), f.toClient(21, 40000, s1, c1, "PA", pasvOut)),
		// The data connection: the client's first packet fills its port;
		// it leaves from the next local port, remapped, with the TOA.
		in("data SYN", f.client(45000, 30001, 7000, 0, "S", ""), f.toRS(ftpDataLport, 30001, 7000+dfd, 0, "S", "", ftpTOA(45000))),
		out("data SYN-ACK", f.rs(30001, ftpDataLport, 8000, 7001+dfd, "SA", ""), f.toClient(30001, 45000, 8000, 7001, "SA", "")),
	)

	const port = "PORT 10,0,0,2,195,80\r\n"       // 22 bytes
	const portOut = "PORT 172,16,0,10,19,137\r\n" // 25 bytes: 172.16.0.10:5001
	const portOK = "200 PORT command successful.\r\n"
	const retr = "RETR 1048576.bin\r\n"
	c2 := uint32(c0 + len(port)) // the client's next byte; the server's is 3 later
	s3 := s1 + uint32(len(portOK))
	active := append(slices.Clone(handshake),
		in("PORT", f.client(40000, 21, c0, s1, "PA", port), f.toRS(ftpCtlLport, 21, c0+fd, s1, "PA", portOut)),
		// A retransmission names the same local port again.
		in("PORT again", f.client(40000, 21, c0, s1, "PA", port), f.toRS(ftpCtlLport, 21, c0+fd, s1, "PA", portOut)),
		out("200", f.rs(21, ftpCtlLport, s1, c2+3+fd, "PA", portOK), f.toClient(21, 40000, s1, c2, "PA", portOK)),
		in("RETR", f.client(40000, 21, c2, s3, "PA", retr), f.toRS(ftpCtlLport, 21, c2+3+fd, s3, "PA", retr)),
		// An acknowledgement of the PORT segment's start (a duplicate ACK
		// from before it) is in the old numbering on both sides.
		out("old ACK", f.rs(21, ftpCtlLport, s3, c0+fd, "A", ""), f.toClient(21, 40000, s3, c0, "A", "")),
		out("ACK of RETR", f.rs(21, ftpCtlLport, s3, c2+3+uint32(len(retr))+fd, "A", ""), f.toClient(21, 40000, s3, c2+uint32(len(retr)), "A", "")),
		// The real server connects from port 20 to the local port it was
		// told; the client sees VIP:20 connect to the port it named. This
		// connection was not opened by the client: no remap, no TOA.
		out("active SYN", f.rs(20, ftpDataLport, 3000, 0, "S", ""), f.toClient(20, 50000, 3000, 0, "S", "")),
		in("active SYN-ACK", f.client(50000, 20, 4000, 3001, "SA", ""), f.toRS(ftpDataLport, 20, 4000, 3001, "SA", "")),
		in("active ACK", f.client(50000, 20, 4001, 3001, "A", ""), f.toRS(ftpDataLport, 20, 4001, 3001, "A", "")),
	)
	return []fixture{{
		name: "FTP FULLNAT passive", rules: rules, steps: passive,
		counters: map[string]uint64{"rx_frames": 11, "tx_frames": 11, "conns": 2, "conns_created": 2,
			"ftp_data_expected": 1, "ftp_pasv_rewritten": 2, "fullnat_add_toa_ok": 3},
	}, {
		name: "FTP FULLNAT active", rules: rules, steps: active,
		counters: map[string]uint64{"rx_frames": 13, "tx_frames": 13, "conns": 2, "conns_created": 2,
			"ftp_data_expected": 1, "ftp_port_rewritten": 2, "fullnat_add_toa_ok": 2},
	}}
}

func TestFTPFullNATFixtures(t *testing.T) {
	for _, fx := range fnatFTPFixtures(t) {
		t.Run(fx.name, fx.run)
	}
}

// TestFTPFullNATSynProxy: the helper on a FULLNAT service with the SYN
// proxy, so three translations compose on the control connection. The
// client's numbering reaches the real server through the PORT rewrite's
// offset (+3) and then FULLNAT's remap (fd); the real server's reaches the
// client through the 227 rewrite's offset (-2) and then the proxy's delta
// (into the cookie's numbering). Each acknowledgement goes back through
// the same steps in the opposite order.
func TestFTPFullNATSynProxy(t *testing.T) {
	fe := newSynProxyEngine(t, "-A -t "+ftpVIP+":21 -s rr -j enable", "laddr "+ftpLIP, "-a -t "+ftpVIP+":21 -r 172.16.0.2:21 --fullnat")
	w := newSPWorldAt(t, fe.sp.secret, ftpVIP, 21, ftpLIP, ftpCtlLport, 21)
	f := fnatFTPFrames{tb: t, vip: ftpVIP}
	fd := fnatFTPDelta(ftpCtlLport, 21, spClientISN)
	toa := ftpTOA(40000)
	const (
		banner    = "220 lvslab\r\n"
		port      = "PORT 10,0,0,2,195,80\r\n"
		portOut   = "PORT 172,16,0,10,19,137\r\n"
		portOK    = "200 PORT command successful.\r\n"
		pasv      = "PASV\r\n"
		pasvReply = "227 Entering Passive Mode (172,16,0,2,117,49).\r\n"
		pasvOut   = "227 Entering Passive Mode (10,0,0,5,117,49).\r\n"
		next      = "150 Here comes the data.\r\n"
	)
	// Client numbering c*, real server numbering s*; the client sees the
	// real server's s as s+w.delta (minus what the 227 took away).
	c1 := uint32(spClientISN + 1)
	c2 := c1 + uint32(len(port)) // the real server counts 3 more from here
	c3 := c2 + uint32(len(pasv))
	s1 := uint32(spServerISN + 1)
	s2 := s1 + uint32(len(banner))
	s3 := s2 + uint32(len(portOK))
	s4 := s3 + uint32(len(pasvReply)) // the client counts 2 fewer from here
	serverSYN := pkt{src: intMAC, dst: rsMAC, sip: ftpLIP, dip: fxRS, ttl: 63, df: true, proto: layers.IPProtocolTCP,
		l4: []gopacket.SerializableLayer{spTCP(ftpCtlLport, 21, spClientISN+fd, 0, "S", 502, toa, spMSS(1452), spNOP, spNOP, spSACKPerm)}}.build(t)
	dfd := fnatFTPDelta(ftpDataLport+1, 30001, 7000) // the PORT's data connection took 5001
	fe.runSteps(t, []spStep{
		{name: "SYN", frame: w.synFrame, ext: [][]byte{w.synack}},
		{name: "cookie ACK", frame: w.fromClient(c1, w.cookie+1, "A", ""), int: [][]byte{serverSYN}},
		{name: "server SYN/ACK releases the ACK", fromInt: true, frame: w.fromServer(spServerISN, c1+fd, "SA", ""),
			int: [][]byte{w.toServer(c1+fd, s1, "A", 502, "", toa)}},
		{name: "banner", fromInt: true, frame: w.fromServer(s1, c1+fd, "PA", banner),
			ext: [][]byte{w.toClient(s1+w.delta, c1, "PA", banner)}},
		{name: "PORT rewritten to the local address", frame: w.fromClient(c1, s2+w.delta, "PA", port),
			int: [][]byte{w.toServer(c1+fd, s2, "PA", 502, portOut)}},
		{name: "200: the PORT's offset, then the remap, taken off the ack", fromInt: true, frame: w.fromServer(s2, c2+3+fd, "PA", portOK),
			ext: [][]byte{w.toClient(s2+w.delta, c2, "PA", portOK)}},
		{name: "PASV: the client's seq moved by the offset and the remap", frame: w.fromClient(c2, s3+w.delta, "PA", pasv),
			int: [][]byte{w.toServer(c2+3+fd, s3, "PA", 502, pasv)}},
		{name: "227 rewritten to the VIP", fromInt: true, frame: w.fromServer(s3, c3+3+fd, "PA", pasvReply),
			ext: [][]byte{w.toClient(s3+w.delta, c3, "PA", pasvOut)}},
		{name: "150: the 227's offset, then the proxy's delta", fromInt: true, frame: w.fromServer(s4, c3+3+fd, "PA", next),
			ext: [][]byte{w.toClient(s4-2+w.delta, c3, "PA", next)}},
		{name: "ACK of 150: the proxy's delta, then the 227's offset, taken off", frame: w.fromClient(c3, s4-2+uint32(len(next))+w.delta, "A", ""),
			int: [][]byte{w.toServer(c3+3+fd, s4+uint32(len(next)), "A", 502, "")}},
		// Acknowledgements from before each rewrite keep the old numbering
		// (with the other translations' deltas, which are large, either
		// one of these or the one before them would go wrong if the
		// helper worked in another translation's numbering).
		{name: "client's old ACK, from before the 227", frame: w.fromClient(c3, s3+w.delta, "A", ""),
			int: [][]byte{w.toServer(c3+3+fd, s3, "A", 502, "")}},
		{name: "real server's old ACK, from before the PORT", fromInt: true, frame: w.fromServer(s4+uint32(len(next)), c1+fd, "A", ""),
			ext: [][]byte{w.toClient(s4-2+uint32(len(next))+w.delta, c1, "A", "")}},
		// The passive data connection is the helper's, not the proxy's:
		// the client's SYN goes straight through, from the next local port.
		{name: "data SYN", frame: f.client(45000, 30001, 7000, 0, "S", ""),
			int: [][]byte{f.toRS(ftpDataLport+1, 30001, 7000+dfd, 0, "S", "", ftpTOA(45000))}},
	})
	fe.checkCounters(t, map[string]uint64{"rx_frames": 13, "tx_frames": 13, "synproxy_syn_cnt": 1, "synproxy_ok_ack": 1,
		"conns": 3, "conns_created": 3, "ftp_data_expected": 2, "ftp_port_rewritten": 1, "ftp_pasv_rewritten": 1,
		"fullnat_add_toa_ok": 3})
}

// TestFTPFullNATExpiryReset: when an established FULLNAT control
// connection times out, the RST to the real server carries the sequence
// number it expects next, which counts the 3 bytes the PORT rewrite added;
// the client's RST is in the client's own numbering.
func TestFTPFullNATExpiryReset(t *testing.T) {
	fx := fnatFTPFixtures(t)[1]
	fe := newFxEngine(t, fx.rules, nil, nil)
	for _, s := range fx.steps[:10] { // through the real server's ACK of RETR
		in := fe.ext
		if s.fromInt {
			in = fe.int
		}
		fe.feed(in, s.frame, false)
	}
	fe.drain(t, fe.extW)
	fe.drain(t, fe.intW)
	ctl, _ := fe.conns.Lookup(conntrack.Tuple{Proto: 6, Src: [4]byte{10, 0, 0, 2}, SrcPort: 40000, Dst: [4]byte{10, 0, 0, 5}, DstPort: 21})
	if ctl == 0 {
		t.Fatal("no control connection")
	}
	fe.expiryW, fe.expiryNow = fe.w, fe.clock
	fe.expiring(ctl, fe.conns.Conn(ctl))
	fe.expiryW = nil
	fe.flush(fe.w)
	fd := fnatFTPDelta(ftpCtlLport, 21, ftpClientISN)
	clientNext := uint32(ftpClientISN + 1 + len("PORT 10,0,0,2,195,80\r\n") + len("RETR 1048576.bin\r\n"))
	serverNext := uint32(ftpServerISN + 1 + len("220 lvslab\r\n") + len("200 PORT command successful.\r\n"))
	check := func(where string, frames [][]byte, src, dst string, seq, ack uint32) {
		t.Helper()
		if len(frames) != 1 {
			t.Fatalf("%d frames to %s, want one RST", len(frames), where)
		}
		p := gopacket.NewPacket(frames[0], layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tc, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tc == nil || !tc.RST || ip.SrcIP.String() != src || ip.DstIP.String() != dst || tc.Seq != seq || tc.Ack != ack {
			t.Errorf("RST to %s: %v", where, p)
			t.Errorf("want %s -> %s seq %d ack %d", src, dst, seq, ack)
		}
	}
	check("the real server", fe.drain(t, fe.intW), ftpLIP, fxRS, clientNext+3+fd, serverNext)
	check("the client", fe.drain(t, fe.extW), ftpVIP, fxClient, serverNext, clientNext)
}

// TestFTPFullNATNoAllocs: a FULLNAT control connection's packets after a
// PORT rewrite (both offsets and the remap at work) allocate nothing.
func TestFTPFullNATNoAllocs(t *testing.T) {
	fx := fnatFTPFixtures(t)[1]
	fe := newFxEngine(t, fx.rules, nil, nil)
	for _, s := range fx.steps {
		in := fe.ext
		if s.fromInt {
			in = fe.int
		}
		fe.feed(in, s.frame, false)
	}
	fe.int.Port, fe.ext.Port = &nullPort{}, &nullPort{}
	retr, ack := fx.steps[7].frame, fx.steps[9].frame
	if n := testing.AllocsPerRun(100, func() {
		fe.feedRaw(fe.ext, retr)
		fe.feedRaw(fe.int, ack)
	}); n != 0 {
		t.Fatalf("%v allocations per pair of control-connection packets", n)
	}
}

// TestFTPFullNATClientPortReused: the client's next session listens on
// the client port of an earlier, finished active data connection (curl's
// ephemeral ports come round). The stale entry goes, without its control
// connection, and the new PORT gets a data connection of its own from a
// new local port.
func TestFTPFullNATClientPortReused(t *testing.T) {
	fx := fnatFTPFixtures(t)[1]
	f := fnatFTPFrames{tb: t, vip: ftpVIP}
	in := func(name string, frame, toRS []byte) fxStep {
		return fxStep{name: name, frame: frame, int: [][]byte{toRS}}
	}
	out := func(name string, frame, toClient []byte) fxStep {
		return fxStep{name: name, fromInt: true, frame: frame, ext: [][]byte{toClient}}
	}
	// The first data connection ends, the real server closing first.
	steps := append(slices.Clone(fx.steps),
		out("data FIN", f.rs(20, ftpDataLport, 3001, 4001, "FA", ""), f.toClient(20, 50000, 3001, 4001, "FA", "")),
		in("data FIN-ACK", f.client(50000, 20, 4001, 3002, "FA", ""), f.toRS(ftpDataLport, 20, 4001, 3002, "FA", "")),
		out("data last ACK", f.rs(20, ftpDataLport, 3002, 4002, "A", ""), f.toClient(20, 50000, 3002, 4002, "A", "")),
	)
	// A second session from port 40001 (local port 5002), PORT naming
	// client port 50000 again: rewritten to local port 5003.
	const isn2, s0 = 200, ftpServerISN + 1
	fd2 := fnatFTPDelta(5002, 21, isn2)
	steps = append(steps,
		in("SYN 2", f.client(40001, 21, isn2, 0, "S", ""), f.toRS(5002, 21, isn2+fd2, 0, "S", "", ftpTOA(40001))),
		out("SYN-ACK 2", f.rs(21, 5002, ftpServerISN, isn2+1+fd2, "SA", ""), f.toClient(21, 40001, ftpServerISN, isn2+1, "SA", "")),
		in("PORT 2", f.client(40001, 21, isn2+1, s0, "PA", "PORT 10,0,0,2,195,80\r\n"),
			f.toRS(5002, 21, isn2+1+fd2, s0, "PA", "PORT 172,16,0,10,19,139\r\n", ftpTOA(40001))),
		out("active SYN 2", f.rs(20, 5003, 6000, 0, "S", ""), f.toClient(20, 50000, 6000, 0, "S", "")),
	)
	fx.name, fx.steps = "FTP FULLNAT client port reused", steps
	fx.counters = map[string]uint64{"rx_frames": 20, "tx_frames": 20, "conns": 3, "conns_created": 4, "conns_expired": 1,
		"ftp_data_expected": 2, "ftp_port_rewritten": 3, "fullnat_add_toa_ok": 4}
	fx.run(t)
}

// syncedEntry is control connection id's sync entry as the master sends it
// (syncAdd's hooks), through the wire format and back.
func syncedEntry(t *testing.T, master *fxEngine, id conntrack.ConnID) conntrack.SyncConn {
	t.Helper()
	var sc conntrack.SyncConn
	master.conns.SyncEntry(id, &sc)
	master.synProxySyncOut(id, &sc)
	master.fnatSyncOut(id, &sc)
	master.ftpSyncOut(id, &sc)
	var w conntrack.SyncWriter
	buf := make([]byte, 1472)
	w.Reset(buf, 1, len(buf))
	if !w.Add(&sc) {
		t.Fatal("sync entry does not fit")
	}
	var got conntrack.SyncConn
	n := 0
	if _, err := conntrack.ParseSync(w.Bytes(), new(conntrack.SyncConn), func(c *conntrack.SyncConn) { got = *c; n++ }, nil); err != nil || n != 1 {
		t.Fatalf("sync message: %v, %d entries", err, n)
	}
	return got
}

// TestFTPSync: a backup that takes over a control connection whose length
// changed keeps translating it: the master's offsets travel in the sync
// entry (NAT: SEQ_DATA, as the kernel syncs ip_vs_ftp's; FULLNAT: lvsd's
// APPSEQ option beside the remap in SEQ_DATA).
func TestFTPSync(t *testing.T) {
	t.Run("NAT", func(t *testing.T) {
		fx := ftpFixtures(t)[0]
		master := newFxEngine(t, fx.rules, nil, nil)
		for _, s := range fx.steps[:5] { // through the 227 reply, 2 bytes shorter
			in := master.ext
			if s.fromInt {
				in = master.int
			}
			master.feed(in, s.frame, false)
		}
		id, _ := master.conns.Lookup(conntrack.Tuple{Proto: 6, Src: [4]byte{10, 0, 0, 2}, SrcPort: 40000, Dst: [4]byte{10, 0, 0, 5}, DstPort: 21})
		sc := syncedEntry(t, master, id)
		if !sc.HasSeq || sc.HasAppSeq || sc.Flags&conntrack.SyncFlagOutSeq == 0 || int32(sc.OutSeq.Delta) != -2 {
			t.Fatalf("sync entry %+v: want SEQ_DATA with out_seq delta -2 and OUT_SEQ", sc)
		}
		backup := newFxEngine(t, fx.rules, nil, nil)
		backup.applySyncEntry(&sc, backup.clock)
		fx.steps = fx.steps[5:7] // the next server segment and the client's ACK
		fx.runOn(t, backup)
	})
	t.Run("FULLNAT", func(t *testing.T) {
		fx := fnatFTPFixtures(t)[1]
		master := newFxEngine(t, fx.rules, nil, nil)
		for _, s := range fx.steps[:7] { // through the 200 after a PORT 3 bytes longer
			in := master.ext
			if s.fromInt {
				in = master.int
			}
			master.feed(in, s.frame, false)
		}
		id, _ := master.conns.Lookup(conntrack.Tuple{Proto: 6, Src: [4]byte{10, 0, 0, 2}, SrcPort: 40000, Dst: [4]byte{10, 0, 0, 5}, DstPort: 21})
		sc := syncedEntry(t, master, id)
		if !sc.HasSeq || !sc.HasLocal || !sc.HasAppSeq || int32(sc.AppIn.Delta) != 3 || sc.AppOut != (conntrack.SeqData{}) {
			t.Fatalf("sync entry %+v: want the remap, the local address and APPSEQ with in_seq delta 3", sc)
		}
		backup := newFxEngine(t, fx.rules, nil, nil)
		backup.applySyncEntry(&sc, backup.clock)
		fx.steps = fx.steps[7:10] // RETR, an old ACK and the ACK of RETR
		fx.runOn(t, backup)
	})
}

// runOn feeds fx's steps to fe and compares what leaves (no counters:
// the engine may have seen other packets before).
func (fx *fixture) runOn(t *testing.T, fe *fxEngine) {
	t.Helper()
	for _, s := range fx.steps {
		in := fe.ext
		if s.fromInt {
			in = fe.int
		}
		fe.feed(in, s.frame, false)
		fxCompare(t, s.name, "ext", fe.drain(t, fe.extW), s.ext)
		fxCompare(t, s.name, "int", fe.drain(t, fe.intW), s.int)
	}
}

// TestFTPNATSynProxy: a SYN-proxied NAT control connection is followed
// too (before, the proxy's path skipped the helper): the 227 reply is
// rewritten to the VIP and its offset composes with the proxy's delta.
func TestFTPNATSynProxy(t *testing.T) {
	fe := newSynProxyEngine(t, "-A -t "+ftpVIP+":21 -s rr -j enable", "-a -t "+ftpVIP+":21 -r 172.16.0.2:21 -m")
	w := newSPWorldAt(t, fe.sp.secret, ftpVIP, 21, fxClient, 40000, 21)
	const (
		banner    = "220 lvslab\r\n"
		pasv      = "PASV\r\n"
		pasvReply = "227 Entering Passive Mode (172,16,0,2,117,49).\r\n"
		pasvOut   = "227 Entering Passive Mode (10,0,0,5,117,49).\r\n"
		next      = "150 Here comes the data.\r\n"
	)
	c1 := uint32(spClientISN + 1)
	c2 := c1 + uint32(len(pasv))
	s1 := uint32(spServerISN + 1)
	s2 := s1 + uint32(len(banner))
	s3 := s2 + uint32(len(pasvReply))
	f := fnatFTPFrames{tb: t, vip: ftpVIP}
	fe.runSteps(t, []spStep{
		{name: "SYN", frame: w.synFrame, ext: [][]byte{w.synack}},
		{name: "cookie ACK", frame: w.fromClient(c1, w.cookie+1, "A", ""), int: [][]byte{w.serverSYN()}},
		{name: "server SYN/ACK releases the ACK", fromInt: true, frame: w.fromServer(spServerISN, c1, "SA", ""),
			int: [][]byte{w.toServer(c1, s1, "A", 502, "")}},
		{name: "banner", fromInt: true, frame: w.fromServer(s1, c1, "PA", banner), ext: [][]byte{w.toClient(s1+w.delta, c1, "PA", banner)}},
		{name: "PASV", frame: w.fromClient(c1, s2+w.delta, "PA", pasv), int: [][]byte{w.toServer(c1, s2, "PA", 502, pasv)}},
		{name: "227 rewritten to the VIP", fromInt: true, frame: w.fromServer(s2, c2, "PA", pasvReply),
			ext: [][]byte{w.toClient(s2+w.delta, c2, "PA", pasvOut)}},
		{name: "150", fromInt: true, frame: w.fromServer(s3, c2, "PA", next), ext: [][]byte{w.toClient(s3-2+w.delta, c2, "PA", next)}},
		{name: "ACK of 150", frame: w.fromClient(c2, s3-2+uint32(len(next))+w.delta, "A", ""),
			int: [][]byte{w.toServer(c2, s3+uint32(len(next)), "A", 502, "")}},
		{name: "client's old ACK, from before the 227", frame: w.fromClient(c2, s2+w.delta, "A", ""),
			int: [][]byte{w.toServer(c2, s2, "A", 502, "")}},
		// NAT: the data connection reaches the real server with the
		// client's own address.
		{name: "data SYN", frame: f.client(45000, 30001, 7000, 0, "S", ""),
			int: [][]byte{f.seg(intMAC, rsMAC, fxClient, fxRS, 63, 45000, 30001, 7000, 0, "S", "")}},
	})
	fe.checkCounters(t, map[string]uint64{"rx_frames": 10, "tx_frames": 10, "synproxy_syn_cnt": 1, "synproxy_ok_ack": 1,
		"conns": 2, "conns_created": 2, "ftp_data_expected": 1, "ftp_pasv_rewritten": 1})
}
