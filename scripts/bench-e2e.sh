#!/usr/bin/env bash
# End-to-end packet rate in network namespaces: 64-byte frames at a VIP,
# forwarded in turn by the reference AF_PACKET forwarder (MAC rewrite only),
# lvsd DR, NAT, FULLNAT and the kernel's nftables DNAT on UDP; then the
# reference and lvsd DR, NAT, FULLNAT, NAT and FULLNAT with the SYN proxy on
# TCP data segments of established connections (handshakes done through
# the forwarder first); all in interleaved rounds; prints the table of
# median rates, CPU cost per frame and the ratios to the reference on the
# same frames (internal/benchnet, BenchmarkE2E). Then the second table: new
# TCP connections per second through lvsd NAT with and without the SYN
# proxy to a kernel listener (BenchmarkE2EHandshakes). Needs root;
# otherwise it says why.
#
# Tuning (environment): LVSLAB_E2E_ROUNDS (5), LVSLAB_E2E_WINDOW (1500ms),
# LVSLAB_E2E_WARMUP (500ms), LVSLAB_E2E_RATE (offered pps cap; default none),
# LVSLAB_E2E_NOPIN=1 (leave CPU placement to the scheduler), LVSLAB_E2E_NICE
# (nice value of forwarder, generator and sink; default -10, 0 leaves it),
# LVSLAB_E2E_FORWARDERS (comma-separated subset of the packet-rate table's
# forwarders, e.g. ref,lvsd-fnat), LVSLAB_E2E_LVSD_ARGS (extra lvsd flags,
# e.g. "--rx-ring v2").
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export LVSLAB_E2E_ROUNDS="${LVSLAB_E2E_ROUNDS:-5}"
export LVSLAB_E2E_WINDOW="${LVSLAB_E2E_WINDOW:-1500ms}"
export LVSLAB_E2E_WARMUP="${LVSLAB_E2E_WARMUP:-500ms}"

echo "end-to-end packet rate: ${LVSLAB_E2E_ROUNDS} rounds x 11 forwarders x ${LVSLAB_E2E_WINDOW}, then new connections: ${LVSLAB_E2E_ROUNDS} rounds x 2 (about four minutes)..."
# -v so every run's line is printed in full; the filter drops go test's
# preamble. The exit status is go test's.
go test -count=1 -run '^$' -bench '^BenchmarkE2E(Handshakes)?$' -benchtime 1x -timeout 10m -v ./internal/benchnet 2>&1 |
	awk '!/^(goos|goarch|cpu|pkg):/ && !/^=== RUN/ && $0 != "PASS"'
