package main

import (
	"net/netip"
	"strings"
	"testing"

	"lvslab/config"
)

const syncInstance = `
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 100
  virtual_ipaddress {
    192.0.2.100/24
  }
}
`

// TestConvertSync: lvs_sync_daemon's syncid defaults to the named
// instance's VRID; the deprecated per-instance keyword names its
// instance; an unknown instance is an error with the line.
func TestConvertSync(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       *syncSetup
		err        string
	}{
		{"instance's VRID", "global_defs {\n  lvs_sync_daemon eth1 VI_1\n}\n" + syncInstance,
			&syncSetup{Instance: "VI_1", Daemon: config.Daemon{McastIfn: "eth1", SyncID: 51}}, ""},
		{"id given", "global_defs {\n  lvs_sync_daemon eth1 VI_1 id 4 port 9000 ttl 3\n}\n" + syncInstance,
			&syncSetup{Instance: "VI_1", Daemon: config.Daemon{McastIfn: "eth1", SyncID: 4, Port: 9000, TTL: 3}}, ""},
		{"no instance", "global_defs {\n  lvs_sync_daemon eth1\n}\n" + syncInstance,
			&syncSetup{Daemon: config.Daemon{McastIfn: "eth1"}}, ""},
		{"deprecated", strings.Replace(syncInstance, "  priority 100\n", "  priority 100\n  lvs_sync_daemon_interface eth2\n", 1),
			&syncSetup{Instance: "VI_1", Daemon: config.Daemon{McastIfn: "eth2", SyncID: 51}}, ""},
		{"none", syncInstance, nil, ""},
		{"unknown instance", "global_defs {\n  lvs_sync_daemon eth1 VI_9\n}\n" + syncInstance, nil,
			"keepalived.conf:2: error: lvs_sync_daemon: vrrp instance VI_9 not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := convertVRRP(loadConf(t, tc.conf))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (s.Sync == nil) != (tc.want == nil) || (s.Sync != nil && *s.Sync != *tc.want) {
				t.Fatalf("sync %+v, want %+v", s.Sync, tc.want)
			}
		})
	}
}

// TestServedLocalAddresses: a local_address_group's addresses are lvsd's
// to answer for, so a VIP of an instance that is one is owned through
// lvsd (it moves with the master) instead of being added to the kernel.
func TestServedLocalAddresses(t *testing.T) {
	s, err := convertVRRP(loadConf(t, syncInstance+`
local_address_group laddr_g1 {
  172.16.0.50-51
}
virtual_server 192.0.2.100 80 {
  lb_kind FNAT
  protocol TCP
  laddr_group_name laddr_g1
  real_server 172.16.0.20 80 {
  }
}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"192.0.2.100", "172.16.0.50", "172.16.0.51"} {
		if !s.Served[netip.MustParseAddr(a)] {
			t.Errorf("%s not served by lvsd: %v", a, s.Served)
		}
	}
}
