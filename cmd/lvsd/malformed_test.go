package main

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"lvslab/capture"
	"lvslab/internal/e2e"
	"lvslab/internal/nstest"
)

// TestMalformedFrames sends lvsd every class of bad frame the director must
// survive: each is dropped (or, for IP options, forwarded as IPVS does) and
// counted in the metrics, and lvsd keeps answering.
func TestMalformedFrames(t *testing.T) {
	nstest.Require(t)
	cli := nstest.New(t, "mcli")
	dir := nstest.New(t, "mdir")
	rs := nstest.New(t, "mrs")
	nstest.Veth(t, cli, "eth0", dir, "ext", 1500)
	nstest.Veth(t, dir, "int", rs, "eth0", 1500)
	cli.Addr("eth0", "10.0.0.2/24")
	dir.Addr("ext", "10.0.0.1/24")
	dir.Addr("int", "172.16.0.1/24")
	rs.Addr("eth0", "172.16.0.2/24")
	e2e.StartLVSD(t, dir, "ext,int", "--metrics", "127.0.0.1:9108")
	e2e.LVSADM(t, dir, "-A -t 10.0.0.100:80 -s rr")
	e2e.LVSADM(t, dir, "-a -t 10.0.0.100:80 -r 172.16.0.2:80 -m")

	dstMAC := dir.MAC("ext")
	srcMAC := cli.MAC("eth0")
	vip := net.IPv4(10, 0, 0, 100).To4()
	cip := net.IPv4(10, 0, 0, 2).To4()
	syn := func(mod func(ip *layers.IPv4)) []byte {
		eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: cip, DstIP: vip, Id: 1}
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Seq: 1, Window: 1000}
		if mod != nil {
			mod(ip)
		}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	good := syn(nil)
	// Truncated: the IP header claims 200 bytes, the frame carries 40.
	truncated := syn(func(ip *layers.IPv4) {})
	truncated[14+2], truncated[14+3] = 0, 200
	fixIPChecksum(truncated[14:34])
	badIHL := append([]byte(nil), good...)
	badIHL[14] = 0x43
	options := syn(func(ip *layers.IPv4) {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	})
	fragment := syn(func(ip *layers.IPv4) { ip.Flags = layers.IPv4MoreFragments })
	ttl1 := syn(func(ip *layers.IPv4) { ip.TTL = 1 })
	badSum := append([]byte(nil), good...)
	badSum[14+10] ^= 0xff
	unknown := func() []byte {
		eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: 47, SrcIP: cip, DstIP: vip}
		buf := gopacket.NewSerializeBuffer()
		_ = gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, gopacket.Payload(make([]byte, 20)))
		return buf.Bytes()
	}()
	runtARP := append(append(append([]byte(nil), []byte(dstMAC)...), []byte(srcMAC)...), 0x08, 0x06, 0, 1, 8, 0)

	frames := [][]byte{truncated, badIHL, options, fragment, ttl1, badSum, unknown, runtARP}
	err := cli.Do(func() error {
		port, err := capture.Open(capture.Config{Interface: "eth0", NoRX: true})
		if err != nil {
			return err
		}
		defer port.Close()
		batch := make([]capture.Frame, 0, len(frames))
		for _, f := range frames {
			for len(f) < 60 {
				f = append(f, 0) // Ethernet minimum; lengths inside stay as crafted
			}
			batch = append(batch, capture.Frame{Buf: f, N: len(f), Len: len(f)})
		}
		for i := 0; i < 3; i++ {
			if _, err := port.WriteBatch(batch); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wants := []string{
		`lvsd_parse_errors_total{reason="truncated_header"}`,
		`lvsd_parse_errors_total{reason="bad_ipv4_header_length"}`,
		`lvsd_parse_errors_total{reason="bad_ipv4_header_checksum"}`,
		`lvsd_parse_errors_total{reason="arp_is_not_ethernet_ipv4"}`,
		`lvsd_drops_total{reason="fragment"}`,
		`lvsd_drops_total{reason="ttl_expired"}`,
		`lvsd_drops_total{reason="unknown_protocol"}`,
		"lvsd_rx_ip_options_total",
	}
	// lvsd counts the frames when it gets to them: poll the counters
	// until every one is there (or the deadline, and then say which not).
	var metrics string
	counted := func() bool {
		metrics = dir.Run("curl", "-s", "http://127.0.0.1:9108/metrics")
		for _, want := range wants {
			if metric(metrics, want) < 3 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for !counted() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range wants {
		if v := metric(metrics, want); v < 3 {
			t.Errorf("%s = %d, want at least 3 (one per frame sent)", want, v)
		}
	}
	if out := e2e.LVSADM(t, dir, "-L -n"); !strings.Contains(out, "10.0.0.100:80") {
		t.Errorf("lvsd no longer answers properly:\n%s", out)
	}
}

func fixIPChecksum(h []byte) {
	h[10], h[11] = 0, 0
	var sum uint32
	for i := 0; i < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	h[10], h[11] = byte(^sum>>8), byte(^sum)
}

// metric returns the value of the first sample whose name (and labels)
// start with name. Prometheus writes large values as floats (1.048576e+06).
func metric(text, name string) int {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\S* (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return int(v)
}
