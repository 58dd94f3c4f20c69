#!/usr/bin/env bash
# Installs the Debian packages lvslab's integration tests, the lab and the
# soak/benchmark targets use, when they are missing and we are root.
# Without root it only reports, and the tests that need them skip with the
# reason; under CI=true (or LVSLAB_REQUIRE_NETNS=1) anything it cannot
# install is an error, because there the tests would fail anyway.
set -euo pipefail
strict=0
case "${CI:-}${LVSLAB_REQUIRE_NETNS:-}" in *1* | *true* | *yes*) strict=1 ;; esac

# command:package pairs; a command starting with / is a file test.
# promtool (Debian ships it in prometheus) lints lvsd's /metrics as users do.
# keepalived 2.2.7 is the oracle of lvskeepalived -t's differential test
# and, VRRP only in namespaces, the VRRP interop peer of vrrp/. FRR's zebra
# and ospfd are seed 002's cluster mode (directors announcing the VIP by
# OSPF to an ECMP router). vsftpd and dnsmasq are the lab's real FTP and DNS
# servers (sim/service).
pairs=(
	socat:socat tshark:tshark ethtool:ethtool nft:nftables ip:iproute2 tc:iproute2
	hping3:hping3 curl:curl ping:iputils-ping sysctl:procps trafgen:netsniff-ng
	stress-ng:stress-ng promtool:prometheus keepalived:keepalived
	setpriv:util-linux prlimit:util-linux jq:jq nsenter:util-linux bridge:iproute2 ss:iproute2
	/usr/lib/frr/ospfd:frr vtysh:frr dnsmasq:dnsmasq-base vsftpd:vsftpd
)
need=()
for pair in "${pairs[@]}"; do
	cmd=${pair%%:*} pkg=${pair#*:}
	case $cmd in
	/*) [ -e "$cmd" ] || need+=("$pkg") ;;
	*) command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg") ;;
	esac
done
# Debian's scapy is for Debian's interpreter, which may not be first on PATH.
/usr/bin/python3 -c 'import scapy.all' >/dev/null 2>&1 || need+=(python3-scapy)
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
	if [ $strict -eq 1 ]; then
		echo "deps: missing ${need[*]} and not root: cannot install them (CI requires them)" >&2
		exit 1
	fi
	echo "deps: missing ${need[*]} (run as root to install them; integration tests will skip)" >&2
	exit 0
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
	echo "deps: apt-get could not install ${need[*]}" >&2
	[ $strict -eq 1 ] && exit 1
	exit 0
fi
