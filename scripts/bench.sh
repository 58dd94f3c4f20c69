#!/usr/bin/env bash
# The benchmark table: per-packet costs (ns/op, allocs/op), scheduling, and
# bytes per tracked connection at 1M entries. End-to-end packet-rate runs in
# namespaces live in scripts/bench-e2e.sh when present.
set -euo pipefail
cd "$(dirname "$0")/.."
benchtime=${BENCHTIME:-1s}
pkgs=()
for p in ./rewrite ./conntrack ./sched ./capture; do
	[ -d "$p" ] && pkgs+=("$p")
done
go test -run '^$' -bench . -benchmem -benchtime "$benchtime" "${pkgs[@]}" | grep -E '^(Benchmark|ok|FAIL|pkg:)' 
if [ -x scripts/bench-e2e.sh ]; then
	scripts/bench-e2e.sh
fi
