package ipvs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"lvslab/internal/testenv"
)

// TestFTPFullNATTshark reads the FULLNAT FTP fixtures as captures on the
// two segments would hold them (what each end sends, what lvsd forwards
// to it) with tshark's FTP dissector and TCP analysis: the PORT command
// reaches the real server naming the local address and the data
// connection's local port, the 227 reaches the client naming the VIP, and
// neither conversation has a segment acknowledged that was never sent or
// a gap in the sequence space, which a wrong composition of the offsets
// with FULLNAT's remap would show.
func TestFTPFullNATTshark(t *testing.T) {
	testenv.Tools(t, "tshark")
	for _, fx := range fnatFTPFixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			fe := newFxEngine(t, fx.rules, nil, nil)
			var ext, int [][]byte
			for _, s := range fx.steps {
				in := fe.ext
				if s.fromInt {
					in, int = fe.int, append(int, s.frame)
				} else {
					ext = append(ext, s.frame)
				}
				fe.feed(in, s.frame, false)
				ext = append(ext, fe.drain(t, fe.extW)...)
				int = append(int, fe.drain(t, fe.intW)...)
			}
			// The fixtures retransmit a 227 and a PORT on purpose (tshark
			// dissects only the first copy as FTP).
			const analysis = "tcp.analysis.flags && !tcp.analysis.retransmission && !tcp.analysis.duplicate_ack"
			fields := []string{"-e", "ftp.passive.ip", "-e", "ftp.passive.port", "-e", "ftp.active.cip", "-e", "ftp.active.port"}
			intFTP := tsharkRead(t, int, "ftp.request.command == \"PORT\"", fields...)
			extFTP := tsharkRead(t, ext, "ftp.response.code == 227", fields...)
			if strings.Contains(fx.name, "active") {
				if want := "\t\t172.16.0.10\t5001"; len(intFTP) != 1 || intFTP[0] != want {
					t.Errorf("PORT toward the real server, as tshark reads it: %q, want %q", intFTP, want)
				}
			} else if want := "10.0.0.5\t30001\t\t"; len(extFTP) != 1 || extFTP[0] != want {
				t.Errorf("227 toward the client, as tshark reads it: %q, want %q", extFTP, want)
			}
			for side, frames := range map[string][][]byte{"client side": ext, "real-server side": int} {
				if bad := tsharkRead(t, frames, analysis, "-e", "frame.number", "-e", "_ws.expert.message"); len(bad) != 0 {
					t.Errorf("%s: tshark's TCP analysis flags %q", side, bad)
				}
			}
		})
	}
}

// tsharkRead writes frames to a pcap and returns tshark's fields of the
// frames that match filter, one line each.
func tsharkRead(t *testing.T, frames [][]byte, filter string, fields ...string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.pcap")
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
	args := append([]string{"-n", "-r", path, "-o", "tcp.relative_sequence_numbers:FALSE", "-Y", filter, "-T", "fields"}, fields...)
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	s := strings.TrimRight(string(out), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
