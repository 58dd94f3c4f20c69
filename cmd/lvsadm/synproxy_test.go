package main

import (
	"strings"
	"testing"

	"lvslab/config"
	"lvslab/ipvs/ctl"
)

// A SYN-proxy service says so in -L, after the scheduler, as ops does.
func TestFormatSynProxyFlag(t *testing.T) {
	st := ctl.ServiceStatus{Service: config.Service{Protocol: config.ProtoTCP, Addr: a("10.0.0.100"), Port: 80, Scheduler: "rr", SynProxy: true}}
	got := formatService(st, config.ListOptions{Numeric: true}, nil)
	if !strings.HasPrefix(got, "TCP  10.0.0.100:80 rr synproxy\n") {
		t.Fatalf("listing %q", got)
	}
}
