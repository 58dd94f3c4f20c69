package ipvs

import (
	"fmt"
	"testing"
)

// The stop line names each counter that moved and leaves the others out,
// and always carries every interface's drops.
func TestExitSummary(t *testing.T) {
	te := newTestEngine(t, "-m")
	// A SYN to a port of the VIP no service has: refused with a RST.
	te.feed(te.ext, tcpFrame(t, clientMAC, extMAC, "10.0.0.2", "10.0.0.100", 40000, 81, true, false, 0))
	got := map[string]any{}
	kv := te.ExitSummary()
	if len(kv)%2 != 0 {
		t.Fatalf("odd key/value list %v", kv)
	}
	for i := 0; i < len(kv); i += 2 {
		got[kv[i].(string)] = kv[i+1]
	}
	for _, k := range []string{"rx_frames", "ext_ring_drops", "ext_tx_drops", "int_ring_drops", "int_errors"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing from %v", k, kv)
		}
	}
	if fmt.Sprint(got["rx_frames"]) != "1" {
		t.Errorf("rx_frames = %v, want 1", got["rx_frames"])
	}
	ev, _ := te.Counters()
	for name, v := range ev {
		if _, listed := got[name]; listed != (v != 0) && reasonIndex(name) >= 0 {
			t.Errorf("%s = %d: listed %v", name, v, listed)
		}
	}
}

func reasonIndex(name string) int {
	for i, n := range reasonNames {
		if n == name {
			return i
		}
	}
	return -1
}
