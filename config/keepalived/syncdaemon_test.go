package keepalived

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lvs_sync_daemon's forms as keepalived 2.2.7 reads them; a bad option
// leaves it unset with an error naming the line.
func TestLVSSyncDaemonKeyword(t *testing.T) {
	for _, tc := range []struct {
		line string
		want *SyncDaemon
		diag string // a diagnostic that must appear
	}{
		{"lvs_sync_daemon eth1 VI_1", &SyncDaemon{Interface: "eth1", Instance: "VI_1", SyncID: -1}, ""},
		{"lvs_sync_daemon eth1", &SyncDaemon{Interface: "eth1", SyncID: -1}, ""},
		{"lvs_sync_daemon eth1 inst VI_1 id 7 maxlen 1400 port 8849 ttl 2 group 239.1.1.1",
			&SyncDaemon{Interface: "eth1", Instance: "VI_1", SyncID: 7, MaxLen: 1400, Port: 8849, TTL: 2, Group: netip.MustParseAddr("239.1.1.1")}, ""},
		{"lvs_sync_daemon eth1 id 3", &SyncDaemon{Interface: "eth1", SyncID: 3}, ""},
		{"lvs_sync_daemon eth1 VI_1 9", &SyncDaemon{Interface: "eth1", Instance: "VI_1", SyncID: 9}, `keyword "id"`},
		{"lvs_sync_daemon eth1 VI_1 id 300", nil, "outside range"},
		{"lvs_sync_daemon eth1 VI_1 group 10.0.0.1", nil, "not a multicast address"},
		{"lvs_sync_daemon eth1 VI_1 port", nil, "port needs a value"},
		{"lvs_sync_daemon eth1 VI_1 id 1 colour red", nil, "Unknown option colour"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			cfg := loadMap(t, MapFS{"/k/keepalived.conf": "global_defs {\n  " + tc.line + "\n}\n"})
			got := cfg.Global.LVSSyncDaemon
			if tc.want == nil {
				assert.Nil(t, got)
			} else {
				require.NotNil(t, got, diagStrings(cfg))
				assert.Equal(t, 2, got.Pos.Line)
				got.Pos = Pos{}
				assert.Equal(t, tc.want, got)
			}
			if tc.diag != "" {
				found := false
				for _, d := range cfg.Diags {
					if strings.Contains(d.String(), tc.diag) {
						found = true
						assert.Contains(t, d.String(), "keepalived.conf:2")
					}
				}
				assert.True(t, found, "no diagnostic %q in %v", tc.diag, diagStrings(cfg))
			}
		})
	}
}
