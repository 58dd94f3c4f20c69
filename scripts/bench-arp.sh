#!/usr/bin/env bash
# lvsd under a hostile neighbour (issue 8, defects 1-3): each ARP attack of
# cmd/lvsd's TestHostileNeighbour repeated for LVSLAB_ARP_SECONDS (30) while a
# client requests through the VIP (every request must succeed), then a
# trafgen flood of random-sender ARP replies at full rate for LVSLAB_ARP_FLOOD
# (10) seconds: lvsd's RSS before and after, request latency idle and in
# 100 ms windows after the flood, lvsd's CPU after it. Needs root, scapy,
# trafgen, hping3 (make deps); otherwise it says why. About two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
go test -count=1 -run '^$' -bench '^BenchmarkHostileNeighbour$' -benchtime 1x -timeout 10m -v ./cmd/lvsd 2>&1 |
	grep -v 'level=' | awk '!/^(goos|goarch|cpu|pkg):/ && !/^=== RUN/ && !/Cannot set system socket memory/ && $0 != "PASS"'
