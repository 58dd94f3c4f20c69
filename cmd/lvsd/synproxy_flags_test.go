package main

import (
	"io"
	"strings"
	"testing"

	"lvslab/synproxy"
)

func TestSynProxyFlags(t *testing.T) {
	o, err := parseFlags([]string{"-i", "eth0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.synProxy != synproxy.DefaultSettings() {
		t.Errorf("defaults %+v, want the fork's %+v", o.synProxy, synproxy.DefaultSettings())
	}
	o, err = parseFlags([]string{"-i", "eth0", "--synproxy-wscale", "7", "--synproxy-timestamp", "--synproxy-mss", "1400",
		"--synproxy-defer", "--synproxy-ack-store", "5", "--synproxy-sack=false"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := synproxy.DefaultSettings()
	want.WScale, want.Timestamp, want.MSS, want.Defer, want.AckStore, want.SACK = 7, true, 1400, true, 5, false
	if o.synProxy != want {
		t.Errorf("got %+v, want %+v", o.synProxy, want)
	}
	for _, c := range []struct{ args, msg string }{
		{"--synproxy-wscale 15", "--synproxy-wscale 15: outside 0..14"},
		{"--synproxy-ack-store 6", "synproxy_ack_skb_store_thresh 6"},
		{"--synproxy-ttl 0", "synproxy_synack_ttl 0"},
		{"--synproxy-mss 70000", "--synproxy-mss 70000"},
	} {
		_, err := parseFlags(append([]string{"-i", "eth0"}, strings.Fields(c.args)...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %q", c.args, err, c.msg)
		}
	}
}
