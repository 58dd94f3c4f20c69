package topo

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fiftyNodes is a lab of 50 nodes on three segments: two routers joining
// them and 48 hosts, 16 per segment, each with a default route.
func fiftyNodes(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nsegments:\n", name)
	for i, sg := range []string{"sa", "sb", "sc"} {
		fmt.Fprintf(&b, "  %s: {subnets: 10.%d.0.0/24}\n", sg, 90+i)
	}
	b.WriteString("nodes:\n")
	b.WriteString("  r1: {role: router, interfaces: [{name: eth0, segment: sa, addresses: 10.90.0.1/24}, {name: eth1, segment: sb, addresses: 10.91.0.1/24}],\n")
	b.WriteString("       routes: [{dst: 10.92.0.0/24, via: 10.91.0.2}]}\n")
	b.WriteString("  r2: {role: router, interfaces: [{name: eth0, segment: sb, addresses: 10.91.0.2/24}, {name: eth1, segment: sc, addresses: 10.92.0.1/24}],\n")
	b.WriteString("       routes: [{dst: 10.90.0.0/24, via: 10.91.0.1}]}\n")
	for i := range 48 {
		seg := i % 3
		gw := []string{"10.90.0.1", "10.91.0.1", "10.92.0.1"}[seg]
		fmt.Fprintf(&b, "  h%d: {role: host, interfaces: [{name: eth0, segment: %s, addresses: 10.%d.0.%d/24}], routes: [{dst: default, via: %s}], sysctls: {net.ipv4.conf.all.rp_filter: 0}}\n",
			i, []string{"sa", "sb", "sc"}[seg], 90+seg, 10+i, gw)
	}
	return b.String()
}

// BenchmarkBuild50Nodes times building a 50-node lab (namespaces, bridges,
// veths, addresses, routes, sysctls; no processes). Teardown is timed
// separately and reported as teardown-ms.
func BenchmarkBuild50Nodes(b *testing.B) {
	requireNetns(b)
	s := loadSpec(b, fiftyNodes(labName("bench")))
	opts := Options{StateDir: b.TempDir(), NoProcesses: true}
	ctx := context.Background()
	var teardown time.Duration
	b.ResetTimer()
	for b.Loop() {
		lab, err := Build(ctx, s, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		t := time.Now()
		if err := lab.Close(ctx); err != nil {
			b.Fatal(err)
		}
		teardown += time.Since(t)
		b.StartTimer()
	}
	b.ReportMetric(float64(teardown.Milliseconds())/float64(b.N), "teardown-ms/op")
}

// TestFiftyNodes checks the benchmark's lab works: a host on the first
// segment reaches one on the third through both routers.
func TestFiftyNodes(t *testing.T) {
	requireNetns(t)
	s := loadSpec(t, fiftyNodes(labName("fifty")))
	opts := Options{StateDir: t.TempDir(), NoProcesses: true}
	ctx := context.Background()
	lab, err := Build(ctx, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close(ctx)
	if len(lab.Nodes()) != 50 {
		t.Fatalf("%d nodes", len(lab.Nodes()))
	}
	// h0 is on sa (10.90.0.10), h2 on sc (10.92.0.12).
	out := nsRun(t, lab, "h0", "ping", "-c1", "-W2", "10.92.0.12")
	if !strings.Contains(out, "1 received") {
		t.Fatalf("h0 -> h2 through r1 and r2: %s", out)
	}
}
