package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"lvslab/config/keepalived"
)

func TestFileStatus(t *testing.T) {
	for _, tc := range []struct {
		v       int64
		w       int
		reverse bool
		down    bool
		add     int
	}{
		{0, 0, false, false, 0}, {1, 0, false, true, 0}, {-5, 0, false, true, 0},
		{0, 0, true, true, 0}, {3, 0, true, false, 0},
		{3, 5, false, false, 15}, {3, 5, true, false, -15}, {-2, 5, false, false, -10},
		{math.MaxInt32, 2, false, false, math.MaxInt32},
		{math.MinInt32, 1, false, true, 0}, {math.MaxInt32 + 1, 1, true, true, 0},
	} {
		down, add := fileStatus(tc.v, &keepalived.FileCheck{Weight: tc.w, Reverse: tc.reverse})
		if down != tc.down || add != tc.add {
			t.Errorf("value %d weight %d reverse %v: down %v add %d, want %v %d", tc.v, tc.w, tc.reverse, down, add, tc.down, tc.add)
		}
	}
}

const fileConf = `track_file drain {
    file "%[1]s/drain"
    weight 0
    init_file 0
}
track_file scale {
    file "%[1]s/scale"
    weight 10
}
virtual_server 10.0.0.100 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server 172.16.0.2 80 {
        weight 100
        FILE_CHECK {
            track_file drain
        }
    }
    real_server 172.16.0.3 80 {
        weight 100
        inhibit_on_failure
        FILE_CHECK {
            track_file scale
            weight 5 reverse
        }
    }
}
`

// TestFileCheck: FILE_CHECK run by lvskeepalived beside lvsd. A weight-0
// track_file drains its real server while the file holds a non-zero
// number and restores it at 0 (init_file created the file with 0); a
// weighted one adds value × weight (here 5 reverse: -5 per unit) to the
// weight lvsd gets, clamped at 0, and takes an inhibited server to weight 0
// only when the product reaches keepalived's IPVS_WEIGHT_FAULT. A reload
// reads the files as they are.
func TestFileCheck(t *testing.T) {
	l := newLab(t, "kaf")
	drain, scale := filepath.Join(l.tmp, "drain"), filepath.Join(l.tmp, "scale")
	set := func(path, v string) {
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set(scale, "2\n") // at start: 100 - 2×5
	l.writeConf(fmt.Sprintf(fileConf, l.tmp))
	l.start("-D")
	has := func(rs string, w int) func(string) bool {
		return func(s string) bool { return strings.Contains(s, fmt.Sprintf("-r %s:80 -m -w %d\n", rs, w)) }
	}
	l.waitTable("both servers, 172.16.0.3 at 90", func(s string) bool { return has("172.16.0.2", 100)(s) && has("172.16.0.3", 90)(s) })
	if b, err := os.ReadFile(drain); err != nil || string(b) != "0\n" {
		t.Fatalf("init_file: %q %v", b, err)
	}
	set(drain, "1")
	l.waitTable("172.16.0.2 drained", func(s string) bool { return !strings.Contains(s, "-r 172.16.0.2:80 ") })
	l.waitLog("Removing service [172.16.0.2]:tcp:80 from VS [10.0.0.100]:tcp:80")
	l.waitLog("([172.16.0.2]:tcp:80): tracked file drain now FAULT state")
	set(drain, "0")
	l.waitTable("172.16.0.2 back", has("172.16.0.2", 100))
	l.waitLog("Adding service [172.16.0.2]:tcp:80 to VS [10.0.0.100]:tcp:80")

	set(scale, "-4") // 100 + 20
	l.waitTable("172.16.0.3 at 120", has("172.16.0.3", 120))
	l.waitLog("Changing weight from 90 to 120 for active service [172.16.0.3]:tcp:80 of VS [10.0.0.100]:tcp:80")
	set(scale, "50") // 100 - 250: clamped to 0, still up
	l.waitTable("172.16.0.3 at 0", has("172.16.0.3", 0))
	if strings.Contains(l.kaLog.String(), "Disabling service [172.16.0.3]") {
		t.Error("a weight clamped to 0 disabled the server")
	}
	set(scale, "1000000000") // × -5 reaches IPVS_WEIGHT_FAULT: down (inhibited)
	l.waitLog("Disabling service [172.16.0.3]:tcp:80 from VS [10.0.0.100]:tcp:80")
	set(scale, "junk") // strtol reads 0
	l.waitLog("Enabling service [172.16.0.3]:tcp:80 to VS [10.0.0.100]:tcp:80")
	l.waitTable("172.16.0.3 at 100", has("172.16.0.3", 100))

	// A reload with the drain file set: the server goes.
	set(drain, "7")
	l.waitTable("drained again", func(s string) bool { return !strings.Contains(s, "-r 172.16.0.2:80 ") })
	set(drain, "0")
	l.waitTable("back again", has("172.16.0.2", 100))
	if err := l.ka.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.waitLog("Reload finished")
	if b, _ := os.ReadFile(drain); string(b) != "0" {
		t.Errorf("init_file rewrote the file at the reload: %q", b)
	}
	set(scale, "3")
	l.waitTable("172.16.0.3 at 85 after the reload", has("172.16.0.3", 85))
}
