#!/usr/bin/env bash
# The benchmark table: per-packet costs (ns/op, allocs/op) of the rewrites
# and of the whole engine pipeline, scheduling, connection-table costs and
# bytes per tracked connection at 1M entries; the forwarding gaps rule
# changes and listings cause (scripts/bench-control.sh); then the end-to-end packet
# rates in namespaces (scripts/bench-e2e.sh), with ratios against a
# reference forwarder and the kernel measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
benchtime=${BENCHTIME:-1s}
run() {
	go test -run '^$' -bench "$2" -benchmem -benchtime "$benchtime" "$1" | grep -E '^(Benchmark|FAIL)' || true
}
echo "== per-packet rewrites (rewrite/)"
run ./rewrite 'Benchmark(Parse|ParseGopacket|DR|NATIn|NATOut|TUNEncap|FULLNATIn|FULLNATOut|TOAInsert|ClampMSS|ChecksumFull|ChecksumIncremental)$'
echo "== engine pipeline: established-flow lookup + rewrite, new-connection scheduling (ipvs/)"
run ./ipvs 'BenchmarkEngine'
echo "== connection table (conntrack/)"
run ./conntrack 'Benchmark(LookupEstablished|StateStep|InsertExpire|BytesPerConn|SyncApply|SyncBytesPerConn)'
echo "== schedulers (sched/)"
run ./sched 'BenchmarkSchedule'
echo "== frame I/O (capture/): ring + batch vs. one syscall per frame (mdlayher/packet's pattern)"
run ./capture 'Benchmark(MemPort|VethRXTX)'
echo "== lab: building a 50-node topology (sim/topo; target under 1 s)"
run ./sim/topo 'BenchmarkBuild50Nodes'
if [ -x scripts/bench-control.sh ]; then
	echo "== control plane: forwarding gaps under rule changes and listings (cmd/lvsd)"
	scripts/bench-control.sh
fi
if [ -x scripts/bench-e2e.sh ]; then
	echo "== end to end in namespaces"
	scripts/bench-e2e.sh
fi
if [ -x scripts/bench-arp.sh ]; then
	echo "== lvsd under a hostile neighbour: 30 s ARP attacks, full-rate ARP-reply flood (RSS, latency)"
	scripts/bench-arp.sh
fi
if [ -x scripts/bench-keepalived.sh ]; then
	echo "== lvskeepalived: 1,000 and 10,000 TCP_CHECKed real servers (CPU, RSS); forwarding gap while 100 real servers flap"
	scripts/bench-keepalived.sh
fi
