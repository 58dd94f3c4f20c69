package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// logText is a log without its timestamps (keepalived's "Wed Dec  2
// 06:58:42 2026: ", lvskeepalived's with microseconds).
var logStamp = regexp.MustCompile(`(?m)^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d(\.\d+)? \d{4}: `)

func logLines(log, re string) []string {
	m := regexp.MustCompile(re)
	var out []string
	for _, l := range strings.Split(logStamp.ReplaceAllString(log, ""), "\n") {
		if m.MatchString(l) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// TestVRRPScriptLogInterop: the vrrp_script and priority lines operators
// grep for, written by lvskeepalived and by Debian's keepalived 2.2.7 run
// side by side on the same configuration (each alone on its link): the
// first result of each script, "Script `chk` now returning 3" and
// "VRRP_Script(chk) failed (exited with status 3)" after fall 2 failures,
// "succeeded" after rise 2 successes, and "(VI_1) Changing effective
// priority from X to Y" for every change (a positive weight applies on the
// script's first success, a negative one on its failure; reverse negates
// the weight: `weight 10 reverse` takes 10 off while the script succeeds).
func TestVRRPScriptLogInterop(t *testing.T) {
	ours := newSolo(t)
	ka := newSoloNoLVSD(t)
	ka.n.name = "keepalived"
	dir := t.TempDir()
	status := filepath.Join(dir, "status")
	set := func(code int) {
		if err := os.WriteFile(status, []byte(fmt.Sprint(code)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set(0)
	chk := filepath.Join(dir, "chk.sh")
	if err := os.WriteFile(chk, []byte("#!/bin/sh\nexit $(cat "+status+")\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`vrrp_script chk {
  script "%s"
  interval 1
  weight -20
  rise 2
  fall 2
}
vrrp_script chk_up {
  script "/bin/true"
  interval 1
  weight 10
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 1
  track_script {
    chk
    chk_up weight 10 reverse
  }
  virtual_ipaddress {
    192.0.2.200/24
  }
}
`, chk)
	both := startSideBySide(t, ours, ka, conf, conf)
	// chk_up's weight 10 reverse: 10 off while it succeeds.
	both("Changing effective priority from 100 to 90", 1)
	both("VRRP_Script(chk) succeeded", 1)
	set(3)
	both("VRRP_Script(chk) failed (exited with status 3)", 1)
	both("Changing effective priority from 90 to 70", 1)
	set(0)
	both("VRRP_Script(chk) succeeded", 2)
	both("Changing effective priority from 70 to 90", 1)
	ours.n.termAsync()()
	ka.n.finish()
	for _, re := range []string{`VRRP_Script\(chk\)|Script .chk. now`, `VRRP_Script\(chk_up\)|Script .chk_up. now`, `Changing effective priority`} {
		o, k := logLines(ours.n.allLogs(), re), logLines(ka.n.allLogs(), re)
		if !slices.Equal(o, k) {
			t.Errorf("lines matching %s differ:\nlvskeepalived:\n  %s\nkeepalived:\n  %s", re, strings.Join(o, "\n  "), strings.Join(k, "\n  "))
		} else {
			t.Logf("%s: the same %d lines:\n  %s", re, len(o), strings.Join(o, "\n  "))
		}
	}
}

// TestVRRPTrackFileInterop: track_file on a vrrp_instance, lvskeepalived
// and keepalived 2.2.7 side by side on the same configuration: the
// number × weight moves the priority ("Changing effective priority" lines
// compared), a weight-0 file holding a non-zero number is FAULT and 0
// ends it; init_file created the files with 0.
func TestVRRPTrackFileInterop(t *testing.T) {
	ours := newSolo(t)
	ka := newSoloNoLVSD(t)
	ka.n.name = "keepalived"
	// Each daemon its own files: the same numbers written to both.
	conf := func(dir string) string {
		return fmt.Sprintf(`track_file scale {
  file "%[1]s/scale"
  weight 10
  init_file
}
track_file drain {
  file "%[1]s/drain"
  weight 0
  init_file 0 overwrite
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 1
  track_file {
    scale
    drain
  }
  virtual_ipaddress {
    192.0.2.200/24
  }
}
`, dir)
	}
	oursDir, kaDir := t.TempDir(), t.TempDir()
	both := startSideBySide(t, ours, ka, conf(oursDir), conf(kaDir))
	set := func(file, v string) {
		t.Helper()
		for _, d := range []string{oursDir, kaDir} {
			if err := os.WriteFile(filepath.Join(d, file), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	both("(VI_1) Entering MASTER STATE", 1)
	for _, d := range []string{oursDir, kaDir} {
		for _, f := range []string{"scale", "drain"} {
			if b, err := os.ReadFile(filepath.Join(d, f)); err != nil || string(b) != "0\n" {
				t.Errorf("init_file %s/%s: %q %v", d, f, b, err)
			}
		}
	}
	set("scale", "3")
	both("Changing effective priority from 100 to 130", 1)
	set("scale", "-2")
	both("Changing effective priority from 130 to 80", 1)
	set("drain", "1")
	both("(VI_1) Entering FAULT STATE", 1)
	set("drain", "0")
	both("(VI_1) Entering MASTER STATE", 2)
	set("scale", "0")
	both("Changing effective priority from 80 to 100", 1)
	ours.n.termAsync()()
	ka.n.finish()
	for _, re := range []string{`Changing effective priority`, `Entering (FAULT|MASTER) STATE`} {
		o, k := logLines(ours.n.allLogs(), re), logLines(ka.n.allLogs(), re)
		if !slices.Equal(o, k) {
			t.Errorf("lines matching %s differ:\nlvskeepalived:\n  %s\nkeepalived:\n  %s", re, strings.Join(o, "\n  "), strings.Join(k, "\n  "))
		} else {
			t.Logf("%s: the same %d lines:\n  %s", re, len(o), strings.Join(o, "\n  "))
		}
	}
}

// startSideBySide starts lvskeepalived (ours) and keepalived 2.2.7 (ka),
// VRRP side only, each with its configuration, and returns a wait for a
// log line seen n times by both.
func startSideBySide(t *testing.T, ours, ka *solo, oursConf, kaConf string) func(what string, n int) {
	t.Helper()
	ours.write(oursConf)
	ours.start()
	if err := os.WriteFile(filepath.Join(ka.n.dir, "ka.conf"), []byte(kaConf), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := func(k string) string { return filepath.Join(ka.n.dir, k+".pid") }
	ka.n.p, ka.n.log = ka.n.ns.Start("keepalived", "-P", "-n", "-l", "-D", "-G", "-R", "-f", filepath.Join(ka.n.dir, "ka.conf"),
		"-p", pid("main"), "-r", pid("vrrp"), "-c", pid("chk"), "-b", pid("bfd"))
	t.Cleanup(func() {
		ka.n.finish()
		if t.Failed() {
			t.Logf("keepalived log:\n%s", ka.n.allLogs())
		}
	})
	return func(what string, n int) {
		t.Helper()
		for _, s := range []*solo{ours, ka} {
			s.waitLogFor(what, n, 10*time.Second)
		}
	}
}
