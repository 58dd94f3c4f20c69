#!/usr/bin/env bash
# End-to-end packet rate in network namespaces: 64-byte UDP frames at a VIP,
# forwarded in turn by the reference AF_PACKET forwarder (MAC rewrite only),
# lvsd DR, lvsd NAT, lvsd FULLNAT and the kernel's nftables DNAT, in interleaved rounds;
# prints the table of median rates, CPU cost per frame and the ratios
# (internal/benchnet, BenchmarkE2E). Needs root; otherwise it says why.
#
# Tuning (environment): LVSLAB_E2E_ROUNDS (5), LVSLAB_E2E_WINDOW (1500ms),
# LVSLAB_E2E_WARMUP (500ms), LVSLAB_E2E_RATE (offered pps cap; default none),
# LVSLAB_E2E_NOPIN=1 (leave CPU placement to the scheduler), LVSLAB_E2E_NICE
# (nice value of forwarder, generator and sink; default -10, 0 leaves it).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export LVSLAB_E2E_ROUNDS="${LVSLAB_E2E_ROUNDS:-5}"
export LVSLAB_E2E_WINDOW="${LVSLAB_E2E_WINDOW:-1500ms}"
export LVSLAB_E2E_WARMUP="${LVSLAB_E2E_WARMUP:-500ms}"

echo "end-to-end packet rate: ${LVSLAB_E2E_ROUNDS} rounds x 5 forwarders x ${LVSLAB_E2E_WINDOW} (about a minute)..."
# -v so every run's line is printed in full; the filter drops go test's
# preamble. The exit status is go test's.
go test -count=1 -run '^$' -bench '^BenchmarkE2E$' -benchtime 1x -timeout 5m -v ./internal/benchnet 2>&1 |
	awk '!/^(goos|goarch|cpu|pkg):/ && !/^=== RUN/ && $0 != "PASS"'
