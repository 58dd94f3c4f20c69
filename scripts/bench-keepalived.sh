#!/usr/bin/env bash
# lvskeepalived at scale (issue 9, acceptance 5): CPU and RSS of
# lvskeepalived with 1,000 and 10,000 TCP_CHECKed real servers at
# delay_loop 1 (LVSLAB_KA_WINDOW seconds, default 10), and the longest gap
# a 1 packet/ms UDP stream through lvsd gains while 100 real servers flap
# every second (LVSLAB_KA_FLAP seconds, default 20), beside a reference
# stream forwarded by the director's kernel; lvsd runs with --rt-priority
# LVSLAB_KA_RT (default 10; 0: an ordinary task), once per receive ring in
# LVSLAB_KA_RING (lvsd --rx-ring, default v3,v2). Needs root and netns;
# otherwise it says why. About two and a half minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
go test -count=1 -run '^$' -bench '^Benchmark(CheckScale|FlapGap)$' -benchtime 1x -timeout 15m -v ./cmd/lvskeepalived 2>&1 |
	grep -v 'level=' | awk '!/^(goos|goarch|cpu|pkg):/ && !/^=== RUN/ && !/^        [A-Z][a-z][a-z] [A-Z][a-z][a-z] / && $0 != "PASS"'
