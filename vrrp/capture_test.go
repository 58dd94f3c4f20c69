package vrrp

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// captureCases are the keepalived adverts kept as test data: every wire
// variant we interoperate with.
var captureCases = []struct {
	name string
	spec kaSpec
}{
	{"v2-pass", kaSpec{version: 2, prio: 255, state: "MASTER", auth: "PASS", pass: "secret12", advInt: "1"}},
	{"v2-none", kaSpec{version: 2, prio: 255, state: "MASTER", advInt: "1"}},
	{"v2-ah", kaSpec{version: 2, prio: 255, state: "MASTER", auth: "AH", pass: "secret12", advInt: "1"}},
	{"v2-ah-unicast", kaSpec{version: 2, prio: 255, state: "MASTER", auth: "AH", pass: "secret12", advInt: "1", peer: addrB}},
	{"v3", kaSpec{version: 3, prio: 255, state: "MASTER", advInt: "0.5"}},
	{"v3-unicast", kaSpec{version: 3, prio: 255, state: "MASTER", advInt: "1", peer: addrB}},
}

// TestCaptureKeepalived records keepalived's own adverts (two, then the
// priority-0 one SIGTERM sends) into testdata/keepalived/, where the golden
// and fuzz tests read them. Run with LVSLAB_VRRP_CAPTURE=1 to refresh.
func TestCaptureKeepalived(t *testing.T) {
	if os.Getenv("LVSLAB_VRRP_CAPTURE") == "" {
		t.Skip("set LVSLAB_VRRP_CAPTURE=1 to re-record testdata/keepalived")
	}
	for _, tc := range captureCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "cap")
			proto := ProtoVRRP
			if tc.spec.auth == "AH" {
				proto = ProtoAH
			}
			group := MulticastGroup
			if tc.spec.peer.IsValid() {
				group = netip.Addr{}
			}
			var conn *Conn
			if err := b.b.Do(func() (err error) { conn, err = Open("veth0", proto, group); return }); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ka := startKeepalived(t, b.a, b.dir, "ka", tc.spec)
			var pkts [][]byte
			read := func() []byte {
				buf := make([]byte, 4096)
				if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
					t.Fatal(err)
				}
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("read: %v\nkeepalived:\n%s", err, ka.log.String())
				}
				return buf[:n]
			}
			pkts = append(pkts, read(), read())
			ka.term(t)
			for {
				p := read()
				pkts = append(pkts, p)
				off, _, _ := VRRPOffset(p)
				if Advert(p[off:]).Priority() == 0 {
					break
				}
			}
			dir := filepath.Join("testdata", "keepalived")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, p := range pkts {
				f := filepath.Join(dir, fmt.Sprintf("%s-%d.hex", tc.name, i))
				if err := os.WriteFile(f, []byte(hex.EncodeToString(p)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%s: %d adverts", tc.name, len(pkts))
		})
	}
}
