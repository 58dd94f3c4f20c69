package vrrp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"lvslab/internal/testenv"
)

type captured struct {
	file string
	name string // capture case
	spec kaSpec
	pkt  []byte
}

// keepalivedAdverts loads testdata/keepalived (recorded by
// TestCaptureKeepalived from Debian's keepalived 2.2.7).
func keepalivedAdverts(t testing.TB) []captured {
	t.Helper()
	var out []captured
	for _, tc := range captureCases {
		files, _ := filepath.Glob(filepath.Join("testdata", "keepalived", tc.name+"-[0-9].hex"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			pkt, err := hex.DecodeString(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, captured{file: f, name: tc.name, spec: tc.spec, pkt: pkt})
		}
	}
	if len(out) == 0 {
		t.Fatal("no testdata/keepalived adverts")
	}
	return out
}

// specFor is the AdvertSpec our sender would use for the instance that sent
// pkt, with the packet's own IP ID, sequence number and priority.
func specFor(t testing.TB, c captured) (AdvertSpec, Rules) {
	t.Helper()
	cfg := c.spec.config()
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	r := cfg.rules()
	off, ah, reason := VRRPOffset(c.pkt)
	if reason != OK {
		t.Fatalf("%s: %v", c.file, reason)
	}
	m := Advert(c.pkt[off:])
	s := AdvertSpec{Version: cfg.Version, VRID: cfg.VRID, Priority: m.Priority(), Interval: cfg.AdvInt,
		VIPs: r.VIPs, AuthType: cfg.AuthType, AuthPass: r.AuthPass, Src: addrA, Dst: MulticastGroup,
		TTL: TTL, ID: binary.BigEndian.Uint16(c.pkt[4:6])}
	if c.spec.peer.IsValid() {
		s.Dst, s.Unicast = c.spec.peer, true
	}
	if ah {
		s.AH, s.Seq = NewAHKey(r.AuthPass), AH(c.pkt[20:]).Seq()
	}
	return s, r
}

// TestGoldenKeepalived: for every advert keepalived sent, ours with the same
// parameters is byte-for-byte the same packet, and our receiver accepts
// keepalived's.
func TestGoldenKeepalived(t *testing.T) {
	buf := make([]byte, MaxPacketLen)
	for _, c := range keepalivedAdverts(t) {
		s, r := specFor(t, c)
		n, err := BuildAdvert(buf, &s)
		if err != nil {
			t.Fatalf("%s: build: %v", c.file, err)
		}
		if !bytes.Equal(buf[:n], c.pkt) {
			t.Errorf("%s: ours differs from keepalived's\n ours %x\n kad  %x", c.file, buf[:n], c.pkt)
		}
		chk := NewChecker(r)
		if _, reason := chk.Check(c.pkt); reason != OK {
			t.Errorf("%s: keepalived's advert rejected: %v: %s", c.file, reason, chk.LogLine(reason, c.pkt))
		}
	}
}

// TestGoldenTshark decodes our adverts with tshark: VRRP decoded, checksum
// good, no expert info; and the decode equals that of keepalived's.
func TestGoldenTshark(t *testing.T) {
	testenv.Tools(t, "tshark")
	dir := t.TempDir()
	buf := make([]byte, MaxPacketLen)
	var ourPkts, kaPkts [][]byte
	for _, c := range keepalivedAdverts(t) {
		s, _ := specFor(t, c)
		n, err := BuildAdvert(buf, &s)
		if err != nil {
			t.Fatal(err)
		}
		ourPkts = append(ourPkts, append([]byte(nil), buf[:n]...))
		kaPkts = append(kaPkts, c.pkt)
	}
	ours := tsharkDecode(t, filepath.Join(dir, "ours.pcap"), ourPkts)
	theirs := tsharkDecode(t, filepath.Join(dir, "keepalived.pcap"), kaPkts)
	for _, bad := range []string{"Expert Info", "incorrect", "Bad", "Malformed"} {
		if strings.Contains(ours, bad) {
			t.Errorf("tshark says %q about our adverts:\n%s", bad, ours)
		}
	}
	if got := strings.Count(ours, "[Checksum Status: Good]"); got < len(ourPkts) {
		t.Errorf("tshark found %d good VRRP checksums in %d adverts:\n%s", got, len(ourPkts), ours)
	}
	if ours != theirs {
		t.Errorf("tshark decodes ours and keepalived's differently:\n--- ours\n%s\n--- keepalived\n%s", ours, theirs)
	}
}

func tsharkDecode(t *testing.T, file string, pkts [][]byte) string {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(captureInfo(len(p)), p); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	out, err := exec.Command("tshark", "-r", file, "-V", "-o", "ip.check_checksum:TRUE", "-t", "e").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	// Drop the frame layer (file name, times): compare from IP down.
	var keep []string
	skip := false
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Frame ") {
			skip = true
		} else if l != "" && l[0] != ' ' {
			skip = false
		}
		if !skip {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
