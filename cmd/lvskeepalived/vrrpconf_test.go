package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lvslab/config/keepalived"
	"lvslab/vrrp"
)

func loadConf(t *testing.T, text string) *keepalived.Config {
	t.Helper()
	cfg := keepalived.LoadFS(keepalived.MapFS{"/k/keepalived.conf": text}, "/k/keepalived.conf")
	if cfg.Fatal() {
		t.Fatalf("fatal: %v", cfg.Diags)
	}
	return cfg
}

// TestConvertVRRP: every keyword the VRRP side implements reaches
// vrrp.Config, with keepalived's defaults and overrides.
func TestConvertVRRP(t *testing.T) {
	cfg := loadConf(t, `
global_defs {
  vrrp_garp_master_refresh 30
  vrrp_down_timer_adverts 4
}
static_ipaddress {
  198.51.100.1/24 dev eth1 scope link
}
static_routes {
  203.0.113.0/25 via 192.0.2.2 dev eth0 metric 5
}
vrrp_script chk_nginx {
  script "/usr/bin/pgrep -x 'nginx master'"
  interval 2
  weight -20
  fall 3
}
vrrp_sync_group VG1 {
  group {
    VI_1
    VI_2
  }
  notify_master "/etc/keepalived/master.sh VG1"
}
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 51
  priority 150
  advert_int 1
  nopreempt
  authentication {
    auth_type AH
    auth_pass secret12
  }
  virtual_ipaddress {
    192.0.2.100/24 dev eth0 label eth0:1
    192.0.2.101
  }
  virtual_ipaddress_excluded {
    192.0.2.200
  }
  virtual_routes {
    src 192.0.2.100 10.9.0.0/16 via 192.0.2.254 dev eth0
  }
  track_interface {
    eth1 weight -30
  }
  track_script {
    chk_nginx weight -40
  }
  garp_master_delay 0
  unicast_ttl 10
  notify "/etc/keepalived/notify.sh"
}
vrrp_instance VI_2 {
  interface eth1
  virtual_router_id 52
  version 3
  advert_int 0.1
  unicast_peer {
    192.0.2.2
  }
  virtual_ipaddress {
    10.0.0.100
  }
}
virtual_server 192.0.2.100 80 {
  lb_kind DR
  protocol TCP
  real_server 10.0.0.1 80 {
  }
}
`)
	s, err := convertVRRP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Instances) != 2 || len(s.Groups) != 1 {
		t.Fatalf("instances %d groups %d", len(s.Instances), len(s.Groups))
	}
	c := s.Instances[0]
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	check("state", c.InitialState, vrrp.Backup) // AH clears state MASTER, as keepalived does
	check("vrid", c.VRID, uint8(51))
	check("priority", c.Priority, uint8(150))
	check("auth", c.AuthType, uint8(vrrp.AuthAH))
	check("pass", c.AuthPass, "secret12")
	check("vips", len(c.VirtualIPAddress), 2)
	check("vip label", c.VirtualIPAddress[0].Label, "eth0:1")
	check("vip /32", c.VirtualIPAddress[1].Prefix, netip.MustParsePrefix("192.0.2.101/32"))
	check("evip", c.VirtualIPAddressExcluded[0].Prefix.Addr(), netip.MustParseAddr("192.0.2.200"))
	check("route", c.VirtualRoutes[0], vrrp.Route{Dst: netip.MustParsePrefix("10.9.0.0/16"), Src: netip.MustParseAddr("192.0.2.100"),
		Via: netip.MustParseAddr("192.0.2.254"), Dev: "eth0"})
	check("track if", c.TrackInterface[0], vrrp.TrackInterface{Name: "eth1", Weight: -30})
	check("track script", c.TrackScript[0], vrrp.TrackScript{Name: "chk_nginx", Script: "/usr/bin/pgrep -x 'nginx master'",
		Interval: 2 * time.Second, Timeout: 2 * time.Second, Weight: -40, Rise: 1, Fall: 3})
	check("garp delay 0", c.GarpMasterDelay, vrrp.GarpNoDelay)
	check("refresh", c.GarpMasterRefresh, 30*time.Second)
	check("down adverts", c.DownTimerAdverts, 4)
	check("unicast ttl", c.UnicastTTL, uint8(10))
	check("notify", c.Notify, "/etc/keepalived/notify.sh")
	check("nopreempt", c.NoPreempt, true)
	c2 := s.Instances[1]
	check("v3", c2.Version, uint8(3))
	check("v3 interval", c2.AdvInt, 100*time.Millisecond)
	check("peer", c2.UnicastPeer[0], netip.MustParseAddr("192.0.2.2"))
	check("group notify", s.Groups[0].NotifyMaster, "/etc/keepalived/master.sh VG1")
	check("static addr", s.Static.Addresses[0], vrrp.VIP{Prefix: netip.MustParsePrefix("198.51.100.1/24"), Dev: "eth1", Scope: "link"})
	check("static route", s.Static.Routes[0], vrrp.Route{Dst: netip.MustParsePrefix("203.0.113.0/25"), Via: netip.MustParseAddr("192.0.2.2"), Dev: "eth0", Metric: 5})
	check("served", s.Served[netip.MustParseAddr("192.0.2.100")], true)
	check("not served", s.Served[netip.MustParseAddr("10.0.0.100")], false)
	// Words of the script survive the round trip through vrrp's splitter.
	n := vrrp.Notification{Instance: &vrrp.Config{NotifyMaster: c.TrackScript[0].Script}, State: vrrp.Master}
	if got := strings.Join(n.Scripts()[0], "|"); got != "/usr/bin/pgrep|-x|nginx master" {
		t.Errorf("script words %q", got)
	}
}

// TestConvertVRRPErrors: what the VRRP side cannot run is refused with the
// file and line it was written on.
func TestConvertVRRPErrors(t *testing.T) {
	for _, tc := range []struct{ name, conf, want string }{
		{"ipv6 vip", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  2001:db8::1\n }\n}\n",
			"/k/keepalived.conf:5: error: vrrp_instance V: virtual_ipaddress: 2001:db8::1/128: only IPv4 is implemented"},
		{"missing script", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n track_script {\n  nope\n }\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n",
			"/k/keepalived.conf:1: error: vrrp_instance V: track_script nope: no vrrp_script nope"},
		{"bad route", "static_routes {\n 10.0.0.0/8 via 192.0.2.1 proto static\n}\n",
			"/k/keepalived.conf:2: error: static_routes: route 10.0.0.0/8 via 192.0.2.1 proto static: proto is not implemented"},
		{"bad ttl", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n unicast_ttl 300\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n",
			`/k/keepalived.conf:4: error: vrrp_instance V: unicast_ttl: "300" outside 1-255`},
		{"static without dev", "static_ipaddress {\n 192.0.2.9/24\n}\n", "/k/keepalived.conf:2: error: static_ipaddress 192.0.2.9/24: needs dev IF"},
		{"group member twice", "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n}\nvrrp_sync_group G {\n group {\n  A\n }\n}\nvrrp_sync_group H {\n group {\n  A\n }\n}\n",
			"/k/keepalived.conf:10: error: vrrp_sync_group H: vrrp_instance A is already in sync group G"},
		{"normalize", "vrrp_instance N {\n interface eth0\n virtual_router_id 7\n down_timer_adverts 200\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n",
			"/k/keepalived.conf:1: error: vrrp_instance N: down_timer_adverts 200 outside 1-100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convertVRRP(loadConf(t, tc.conf))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestConvertCorpus: every good configuration of the parser's corpus
// converts (the VRRP ones are the seeds' shapes).
func TestConvertCorpus(t *testing.T) {
	files, _ := filepath.Glob("../../config/keepalived/testdata/corpus/good-*.conf")
	if len(files) == 0 {
		t.Fatal("no corpus")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg := keepalived.LoadFS(keepalived.MapFS{"/k/keepalived.conf": string(b)}, "/k/keepalived.conf")
		if cfg.Fatal() {
			continue
		}
		if _, err := convertVRRP(cfg); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}
