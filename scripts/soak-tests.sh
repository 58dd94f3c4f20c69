#!/usr/bin/env bash
# soak-tests: run the netns integration packages N times in a row and count
# pass/fail/skip per test, so a timing flake shows up as "9 pass, 1 fail"
# instead of hiding in one unlucky CI run. With HOG=1 a CPU hog keeps both
# cores busy for the whole soak (what a loaded CI machine does to timers,
# scheduling and process start-up).
#
#   scripts/soak-tests.sh                       # every integration package, 10 runs
#   N=20 PKGS="./sim/traffic ./sim/fault" RUN=TestTrafficInALab HOG=1 scripts/soak-tests.sh
#
# Environment:
#   N      runs of every package (default 10)
#   PKGS   packages (default: every package whose tests build namespaces)
#   RUN    go test -run regexp (default: every test)
#   HOG    1: a CPU hog pinned to each of the two cores during the soak
#   P      packages tested at once (default 2: what make test's go test -p 2
#          does to the machine; 1 halves the load and doubles the time)
#   OUT    where logs go (default out/soak); only failing runs are kept, with
#          the reports of a failing scenario group in run-N.reports/
#   TIMEOUT go test -timeout per run (default 14m)
#
# Each run is `go test -json -count=1 -p P PKGS`; the table lists every
# top-level test, and a subtest when it ever failed. Exit 1 when anything
# failed (a test, or a package that did not build or timed out).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10}
RUN=${RUN:-}
HOG=${HOG:-0}
P=${P:-2}
OUT=${OUT:-out/soak}
TIMEOUT=${TIMEOUT:-14m}
GO=${GO:-go}

for tool in jq "$GO"; do
	command -v "$tool" >/dev/null || { echo "soak-tests: needs $tool (make deps installs jq)" >&2; exit 2; }
done

# The integration packages: those whose tests make network namespaces,
# whichever gate they use.
if [ -z "${PKGS:-}" ]; then
	PKGS=$(grep -rlE --include='*_test.go' --exclude-dir=out --exclude-dir=.tools --exclude-dir=.git \
		'nstest\.(Require|New)|[^.]\bRequire\(t\)|testenv\.(Netns|Root)|requireNetns|requireLab|os\.Geteuid\(\) != 0' . |
		xargs -n1 dirname | sort -u | tr '\n' ' ')
fi
[ -n "$PKGS" ] || { echo "soak-tests: no packages" >&2; exit 2; }

# The PID keeps two soaks started in the same second apart.
dir=$OUT/$(date -u +%Y%m%dT%H%M%SZ)-$$
mkdir -p "$dir"
results=$dir/results.tsv # iteration, package, test, action
: >"$results"

hog_pids=()
stop_hog() {
	local p
	for p in "${hog_pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${hog_pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	hog_pids=()
}
trap stop_hog EXIT
trap 'stop_hog; exit 130' INT TERM

echo "soak-tests: building the binaries"
mkdir -p bin
# shellcheck disable=SC2046
"$GO" build -o bin/ $("$GO" list ./cmd/...)
# Compile every test binary once outside the clock, so the first run is
# not the only one that also compiles.
# shellcheck disable=SC2086
"$GO" test -count=1 -run '^$' $PKGS >/dev/null

if [ "$HOG" = 1 ]; then
	ncpu=$(nproc)
	cpus=$(seq -s, 0 $((ncpu - 1)))
	if command -v stress-ng >/dev/null; then
		stress-ng --cpu "$ncpu" --taskset "$cpus" --quiet &
		hog_pids+=($!)
	else
		for ((k = 0; k < ncpu; k++)); do
			taskset -c "$k" sh -c 'while :; do :; done' &
			hog_pids+=($!)
		done
	fi
	echo "soak-tests: CPU hog on cpus $cpus (pids ${hog_pids[*]})"
fi

runargs=()
[ -n "$RUN" ] && runargs=(-run "$RUN")
echo "soak-tests: $N runs, $P packages at a time, of: $PKGS"
start=$(date +%s)
failed_runs=0
for ((i = 1; i <= N; i++)); do
	json=$dir/run-$i.json
	t0=$(date +%s)
	rc=0
	# A failing scenario group keeps its reports here (cmd/lvslab TestScenarios).
	export LVSLAB_KEEP_REPORTS=$dir/run-$i.reports
	# shellcheck disable=SC2086
	"$GO" test -json -count=1 -p "$P" -timeout "$TIMEOUT" "${runargs[@]}" $PKGS >"$json" 2>"$dir/run-$i.stderr" || rc=$?
	# -R and fromjson?: a line that is not JSON (a test binary's stray
	# output) is skipped rather than ending the soak.
	jq -Rr --arg i "$i" 'fromjson? | select(.Action == "pass" or .Action == "fail" or .Action == "skip")
		| [$i, .Package, (.Test // "(package)"), .Action] | @tsv' "$json" >>"$results"
	nfail=$(awk -F'\t' -v i="$i" '$1 == i && $4 == "fail"' "$results" | wc -l)
	if [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then
		# go test failed without a failing test to show for it.
		printf '%s\t(go test)\t(exit %s, see run-%s.stderr)\tfail\n' "$i" "$rc" "$i" >>"$results"
		nfail=1
	fi
	if [ "$nfail" -gt 0 ]; then
		failed_runs=$((failed_runs + 1))
		# The output of each failing test, readable without jq.
		awk -F'\t' -v i="$i" '$1 == i && $4 == "fail" {print $2 "\t" $3}' "$results" |
			while IFS=$'\t' read -r pkg test; do
				log=$dir/run-$i.$(printf '%s' "${pkg#lvslab/}/$test" | tr -c 'A-Za-z0-9._-' '_').log
				jq -Rrj --arg p "$pkg" --arg t "$test" \
					'fromjson? | select(.Package == $p and (.Test // "(package)") == $t and .Output != null) | .Output' \
					"$json" >"$log"
			done
		echo "run $i/$N: $nfail failed ($(($(date +%s) - t0)) s), logs in $dir/run-$i.*"
	else
		rm -f "$json" "$dir/run-$i.stderr"
		rm -rf "$dir/run-$i.reports"
		echo "run $i/$N: ok ($(($(date +%s) - t0)) s)"
	fi
done
stop_hog
took=$(($(date +%s) - start))

# The table: per test, how often it passed, failed, skipped.
echo
awk -F'\t' '
	{ key = $2 "\t" $3; seen[key] = 1; n[key, $4]++
	  if ($4 == "fail") { anyfail[key] = 1; split($3, parts, "/"); topfail[$2 "\t" parts[1]] = 1 } }
	END {
		printf "%-28s %-60s %5s %5s %5s\n", "package", "test", "pass", "fail", "skip"
		for (key in seen) {
			split(key, kt, "\t")
			if (index(kt[2], "/") > 0 && !anyfail[key]) continue
			printf "%-28s %-60s %5d %5d %5d\n", kt[1], kt[2], n[key, "pass"], n[key, "fail"], n[key, "skip"]
		}
	}' "$results" | { read -r header; echo "$header"; sort; }

tests=$(awk -F'\t' '$3 != "(package)" && index($3, "/") == 0 {print $2 "\t" $3}' "$results" | sort -u | wc -l)
# A failure is a top-level test that failed in a run, or a package run that
# failed with no failing test (it did not build, panicked or timed out).
fails=$(awk -F'\t' '$4 == "fail" {
		if ($3 == "(package)") pkgfail[$1 "\t" $2] = 1
		else if (index($3, "/") == 0) { n++; testfail[$1 "\t" $2] = 1 }
	}
	END { for (k in pkgfail) if (!(k in testfail)) n++; print n + 0 }' "$results")
echo
echo "soak-tests: $N runs × $tests tests$([ "$HOG" = 1 ] && echo " with a CPU hog on every core"), $fails failures in $failed_runs runs, took $((took / 60)) min $((took % 60)) s; results in $results"
[ "$fails" -eq 0 ] && [ "$failed_runs" -eq 0 ]
