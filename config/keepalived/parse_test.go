package keepalived

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/config"
)

func loadMap(t *testing.T, files MapFS) *Config {
	t.Helper()
	return LoadOptions(files, "/k/keepalived.conf", Options{ConfigID: "h", UserExists: func(string) bool { return false },
		ScriptExists: func(string) bool { return true }})
}

func diagStrings(c *Config) []string {
	var out []string
	for _, d := range c.Diags {
		out = append(out, d.String())
	}
	return out
}

// Seed 004's health-check case study, as the daemon will get it.
func TestSeed004HealthCheck(t *testing.T) {
	cfg := Load("../../scenarios/keepalived/004-healthcheck.conf")
	require.False(t, cfg.Fatal())
	// Its only mistake: lvs_id, keepalived 1.x's name for router_id.
	require.Len(t, cfg.Diags, 1, diagStrings(cfg))
	assert.Contains(t, cfg.Diags[0].String(), "004-healthcheck.conf:13: warning: Unknown keyword 'lvs_id'")
	assert.Contains(t, cfg.Diags[0].Hint, "router_id")
	assert.Equal(t, []string{"admin@domain.com", "0633225522@domain.com"}, cfg.Global.NotificationEmail)
	assert.Equal(t, 30*time.Second, cfg.Global.SMTPConnectTimeout)

	require.Len(t, cfg.VirtualServers, 3)
	web := cfg.VirtualServers[0]
	assert.Equal(t, netip.MustParseAddr("192.168.200.15"), web.Addr)
	assert.Equal(t, uint16(80), web.Port)
	assert.Equal(t, "wrr", web.Scheduler)
	assert.Equal(t, config.ForwardMasq, web.Forward)
	assert.Equal(t, 50*time.Second, web.PersistTimeout)
	assert.Equal(t, config.ProtoTCP, web.Protocol)
	require.NotNil(t, web.SorryServer)
	assert.Equal(t, netip.MustParseAddr("192.168.100.100"), web.SorryServer.Addr)
	require.Len(t, web.RealServers, 2)
	rs := web.RealServers[0]
	assert.Equal(t, 2, rs.Weight)
	require.Len(t, rs.Checkers, 1)
	c := rs.Checkers[0]
	assert.Equal(t, CheckHTTP, c.Kind)
	assert.Equal(t, 3*time.Second, c.ConnectTimeout)
	assert.Equal(t, 3, c.Retry)
	assert.Equal(t, 2*time.Second, c.DelayBeforeRetry)
	assert.Equal(t, 30*time.Second, c.DelayLoop, "delay_loop inherited from the virtual server")
	assert.Equal(t, 30*time.Second, c.Warmup, "warmup defaults to delay_loop")
	require.Len(t, c.HTTP.URLs, 2)
	assert.Equal(t, "/testurl/test.jsp", c.HTTP.URLs[0].Path)
	assert.Equal(t, "ec90a42b99ea9a2f5ecbe213ac9eba03", c.HTTP.URLs[0].Digest)
	assert.True(t, c.HTTP.URLs[0].Accepts(204))
	assert.False(t, c.HTTP.URLs[0].Accepts(301))

	tab := cfg.Table()
	require.Len(t, tab.Services, 3)
	assert.Equal(t, config.Service{Protocol: config.ProtoTCP, Addr: web.Addr, Port: 80, Scheduler: "wrr", Persistent: true, PersistTimeout: 50 * time.Second}, tab.Services[0].Service)
	assert.Equal(t, []config.Dest{
		{Addr: netip.MustParseAddr("192.168.100.2"), Port: 80, Forward: config.ForwardMasq, Weight: 2},
		{Addr: netip.MustParseAddr("192.168.100.3"), Port: 80, Forward: config.ForwardMasq, Weight: 1},
	}, tab.Services[0].Dests)
	for _, vs := range tab.Services {
		require.NoError(t, vs.Service.Validate())
		for _, d := range vs.Dests {
			require.NoError(t, d.Validate())
		}
	}
}

// Seed 004's synopsis closes the virtual_server before the HTTP_GET
// real_server: keepalived reads it at the top level, and so do we.
func TestSeed004SynopsisClosesEarly(t *testing.T) {
	cfg := Load("../../scenarios/keepalived/004-synopsis.conf")
	var found bool
	for _, d := range cfg.Diags {
		if d.Pos.Line == 39 && strings.Contains(d.Msg, "Unknown keyword 'real_server'") {
			found = true
			assert.Contains(t, d.Hint, "closed too early")
		}
	}
	assert.True(t, found, diagStrings(cfg))
}

// Seed 002: FULLNAT parses and is installed, with the local address
// group's addresses on every service of the virtual_server_group; each of
// the fork's keywords is noted (keepalived 2.2.7 refuses them), syn_proxy
// as not run yet; its "//" and "/* */" are reported as not being comments.
func TestSeed002FullNAT(t *testing.T) {
	cfg := Load("../../scenarios/keepalived/002-cluster/keepalived.conf")
	require.False(t, cfg.Fatal())
	require.Len(t, cfg.Files, 2)
	require.Len(t, cfg.LocalAddressGroups, 1)
	assert.Len(t, cfg.LocalAddressGroups[0].Entries, 5)
	require.Len(t, cfg.VirtualServers, 1)
	vs := cfg.VirtualServers[0]
	assert.Equal(t, config.ForwardFullNAT, vs.Forward)
	assert.True(t, vs.SynProxy)
	assert.Equal(t, "laddr_g1", vs.LaddrGroup)
	assert.Empty(t, vs.Refused)
	var lips []netip.Addr
	for i := 1; i <= 5; i++ {
		lips = append(lips, netip.AddrFrom4([4]byte{192, 168, 100, byte(i)}))
	}
	tab := cfg.Table()
	require.Len(t, tab.Services, 2, "one service per group address")
	for _, s := range tab.Services {
		assert.Equal(t, lips, s.Laddrs, s.Service.ID().String())
		require.Len(t, s.Dests, 2)
		for _, d := range s.Dests {
			assert.Equal(t, config.ForwardFullNAT, d.Forward)
		}
	}
	var fnat, slash int
	for _, d := range cfg.Diags {
		assert.NotEmpty(t, d.Pos.File)
		assert.NotZero(t, d.Pos.Line, d.String())
		switch d.Class {
		case ClassFullNAT:
			fnat++
			assert.Equal(t, SevWarning, d.Severity, d.String())
			assert.Contains(t, d.Msg, "the FULLNAT fork's keyword")
		case ClassSlashComment:
			slash++
		}
	}
	assert.Equal(t, 3, fnat, diagStrings(cfg)) // local_address_group, lb_kind FNAT, laddr_group_name (syn_proxy is supported)
	assert.Equal(t, 6, slash, diagStrings(cfg))
	// The group's "//vip1" did not become part of the entry.
	require.Len(t, cfg.VirtualServerGroups, 1)
	assert.Equal(t, uint16(80), cfg.VirtualServerGroups[0].Entries[0].Port)
}

// FULLNAT configurations lvsd cannot run are errors with their line, and
// the virtual server is left out rather than half installed.
func TestFullNATErrors(t *testing.T) {
	vs := func(extra string) string {
		return "virtual_server 192.0.2.1 80 {\n lb_algo rr\n lb_kind FNAT\n protocol TCP\n" + extra +
			" real_server 10.0.0.1 80 {\n  TCP_CHECK {\n  }\n }\n}\n"
	}
	for _, tc := range []struct {
		name, conf, msg string
		line            int
	}{
		{"no group", vs(""), "FULLNAT real servers need local addresses", 1},
		{"unknown group", vs(" laddr_group_name nope\n"), "local_address_group nope specified but not configured", 1},
		{"bad entry", "local_address_group g {\n 192.168.100.1\n 300.1.1.1\n}\n" + vs(" laddr_group_name g\n"),
			"local_address_group g: invalid local address 300.1.1.1", 3},
	} {
		dir := t.TempDir()
		f := filepath.Join(dir, "k.conf")
		require.NoError(t, os.WriteFile(f, []byte(tc.conf), 0o600))
		cfg := Load(f)
		found := false
		for _, d := range cfg.Diags {
			if strings.Contains(d.Msg, tc.msg) {
				found = true
				assert.Equal(t, tc.line, d.Pos.Line, d.String())
			}
		}
		assert.True(t, found, "%s: %s", tc.name, diagStrings(cfg))
		if tc.name == "bad entry" {
			require.Len(t, cfg.Table().Services, 1, "the good address is kept")
			assert.Equal(t, []netip.Addr{netip.MustParseAddr("192.168.100.1")}, cfg.Table().Services[0].Laddrs)
		} else {
			assert.Empty(t, cfg.Table().Services, tc.name)
		}
	}
}

func TestIncludeLoopAndGlob(t *testing.T) {
	cfg := loadMap(t, MapFS{
		"/k/keepalived.conf": "include conf.d/*.conf\ninclude {a,b}.inc\n",
		"/k/conf.d/1.conf":   "global_defs {\n router_id one\n}\n",
		"/k/conf.d/2.conf":   "include ../keepalived.conf\n",
		"/k/a.inc":           "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n",
	})
	assert.Equal(t, []string{"/k/keepalived.conf", "/k/conf.d/1.conf", "/k/conf.d/2.conf", "/k/a.inc"}, cfg.Files)
	assert.Equal(t, "one", cfg.Global.RouterID)
	require.Len(t, cfg.VRRP.Instances, 1)
	var loop bool
	for _, d := range cfg.Diags {
		if d.Class == ClassInclude {
			loop = true
			assert.Equal(t, Pos{"/k/conf.d/2.conf", 1}, d.Pos)
			assert.Contains(t, d.Msg, "include loop")
		}
	}
	assert.True(t, loop, diagStrings(cfg))
}

func TestDefaultsAndInheritance(t *testing.T) {
	cfg := loadMap(t, MapFS{"/k/keepalived.conf": `
virtual_server 192.0.2.1 80 {
  delay_loop 10
  retry 4
  inhibit_on_failure
  alpha
  real_server 10.0.0.1 80 {
    delay_before_retry 7
    TCP_CHECK {
    }
    MISC_CHECK {
      misc_path "/bin/check.sh 'a b' \x41"
      misc_dynamic
    }
    HTTP_GET {
      url { path / }
      retry 2
    }
  }
}
vrrp_instance VI {
  state MASTER
  interface eth0
  virtual_router_id 9
  virtual_ipaddress {
    192.0.2.9/24 brd 192.0.2.255 dev eth1 label eth1:vip
  }
}
`})
	vs := cfg.VirtualServers[0]
	// keepalived's defaults, each with its warning.
	assert.Equal(t, config.ProtoUDP, vs.Protocol)
	assert.Equal(t, "wlc", vs.Scheduler)
	assert.Equal(t, config.ForwardMasq, vs.Forward)
	var msgs []string
	for _, d := range cfg.Diags {
		msgs = append(msgs, d.Msg)
		if d.Class != ClassSecurity {
			assert.Equal(t, 2, d.Pos.Line, d.String())
		}
	}
	assert.Len(t, msgs, 4, msgs) // protocol, scheduler, forwarding, script security
	rs := vs.RealServers[0]
	assert.True(t, rs.InhibitOnFailure)
	assert.True(t, rs.Alpha)
	tcp, misc, http := rs.Checkers[0], rs.Checkers[1], rs.Checkers[2]
	assert.Equal(t, 10*time.Second, tcp.DelayLoop)
	assert.Equal(t, 5*time.Second, tcp.ConnectTimeout)
	assert.Equal(t, 4, tcp.Retry)
	assert.Equal(t, 7*time.Second, tcp.DelayBeforeRetry)
	assert.True(t, tcp.Alpha)
	assert.Equal(t, []string{"/bin/check.sh", "a b", "A"}, misc.Misc.Path.Args)
	assert.True(t, misc.Misc.Dynamic)
	assert.Equal(t, 10*time.Second, misc.Misc.Timeout)
	assert.Equal(t, 2, http.Retry)
	assert.Equal(t, "1.0", http.HTTP.Protocol)

	vi := cfg.VRRP.Instances[0]
	assert.Equal(t, 255, vi.Priority, "state MASTER without priority is the address owner")
	assert.Equal(t, 2, vi.Version)
	assert.Equal(t, time.Second, vi.AdvertInt)
	assert.Equal(t, 5*time.Second, vi.GarpMasterDelay)
	vip := vi.VIPs[0]
	assert.Equal(t, netip.MustParsePrefix("192.0.2.9/24"), vip.Prefix)
	assert.Equal(t, "eth1", vip.Dev)
	assert.Equal(t, "eth1:vip", vip.Label)
}

func TestFatalMissingParameter(t *testing.T) {
	cfg := loadMap(t, MapFS{"/k/keepalived.conf": "vrrp_instance V {\n debug\n}\nvirtual_server 192.0.2.300 80 {\n}\n"})
	require.True(t, cfg.Fatal())
	assert.Equal(t, SevFatal, cfg.Diags[0].Severity)
	assert.Equal(t, 2, cfg.Diags[0].Pos.Line)
	// The checker side still reads on, as keepalived's checker process does.
	require.Len(t, cfg.Diags, 2, diagStrings(cfg))
	assert.Equal(t, 4, cfg.Diags[1].Pos.Line)
}

func TestBounded(t *testing.T) {
	huge := strings.Repeat("{", 200000)
	cfg := loadMap(t, MapFS{"/k/keepalived.conf": huge})
	assert.LessOrEqual(t, len(cfg.Diags), maxDiags+1)
	deep := MapFS{"/k/keepalived.conf": "include 0.conf\n"}
	for i := 0; i < 40; i++ {
		deep["/k/"+string(rune('0'+i%10))+".conf"] = "include " + string(rune('0'+(i+1)%10)) + ".conf\n"
	}
	cfg = loadMap(t, deep)
	assert.LessOrEqual(t, len(cfg.Files), maxIncludeDepth+1)
}
