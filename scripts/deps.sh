#!/usr/bin/env bash
# Installs the Debian packages lvslab's integration tests and lab use, when
# they are missing and we are root. Without root it only reports.
set -euo pipefail
need=()
for pair in socat:socat tshark:tshark ethtool:ethtool nft:nftables ip:iproute2 tc:iproute2 hping3:hping3 curl:curl ping:iputils-ping sysctl:procps; do
	cmd=${pair%%:*} pkg=${pair#*:}
	command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing ${need[*]} (run as root to install them; integration tests will skip)" >&2
	exit 0
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
