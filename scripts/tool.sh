#!/usr/bin/env bash
# tool.sh PKG MODULE VERSION BINARY: installs the Go command PKG from MODULE
# at VERSION into BINARY's directory unless the binary there was already
# built from exactly that module version (read with `go version -m`, never
# from the tool's own -version output). The directory is keyed by module and
# version, so a pin change always builds anew.
set -euo pipefail
pkg=$1 mod=$2 version=$3 bin=$4
go=${GO:-go}
if [ -x "$bin" ] && "$go" version -m "$bin" 2>/dev/null |
	awk -v m="$mod" -v v="$version" '$1 == "mod" && $2 == m && $3 == v { ok = 1 } END { exit !ok }'; then
	exit 0
fi
dir=$(dirname "$bin")
mkdir -p "$dir"
echo "tools: installing $pkg@$version into $dir"
GOBIN=$dir GOFLAGS= "$go" install "$pkg@$version"
"$go" version -m "$bin" |
	awk -v m="$mod" -v v="$version" '$1 == "mod" && $2 == m && $3 == v { ok = 1 } END { exit !ok }' || {
	echo "tools: $bin is not $mod@$version" >&2
	exit 1
}
