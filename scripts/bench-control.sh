#!/usr/bin/env bash
# What rule changes cost the data path (issue 8, defect 6): a ping stream at
# the VIP every millisecond, answered by lvsd's receive worker, while
# nothing happens, while 1,000 rule changes per second are applied over the
# control socket, while lvsadm -R loads 10,000 lines, while lvsadm -L -n
# lists 2,001 services and while lvsadm -L -n -c lists 600,000 connections.
# Prints the longest gap between replies of each phase, the change rate
# reached and how long -R took (cmd/lvsd, BenchmarkControlPlane). The
# benchmark drives only the lvsd and lvsadm binaries, so the same file
# measures an older version of them too. Needs root; otherwise it says why.
# LVSLAB_CONTROL_RESTORE_LINES (10000) sizes the -R phase (0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
echo "control plane against the data path (about a minute)..."
go test -count=1 -run '^$' -bench '^BenchmarkControlPlane$' -benchtime 1x -timeout 15m -v ./cmd/lvsd 2>&1 |
	awk '!/^(goos|goarch|cpu|pkg):/ && !/^=== RUN/ && $0 != "PASS"'
