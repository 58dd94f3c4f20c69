#!/bin/sh
#
# A mon-like watcher (seed 001's mon.cf, shrunk to what it does here): every
# INTERVAL seconds, fetch http://RIP:80/ of each real server from the
# director; when one stops answering, call "lvs.alert ... " (remove it from
# the virtual service); when it answers again, call "lvs.alert ... -u" (add
# it back). mon alerts on a change of state, not on every failed probe, and
# so does this loop.
#
#   mon.sh INTERVAL VIP:PORT RIP...
#
# Output lines (the scenario's timeline waits for them):
#   mon: 192.168.0.217 http down: lvs.alert ... -> removed
#   mon: 192.168.0.217 http up: lvs.alert ... -u -> added
interval=$1 vs=$2
shift 2
here=$(dirname "$0")
state=
for rip in "$@"; do state="$state $rip=up"; done
log() { echo "$(date +%H:%M:%S.%N | cut -c1-12) mon: $*"; }
log "watching $* for $vs every ${interval}s"
while :; do
	new=
	for rip in "$@"; do
		was=$(echo "$state" | tr ' ' '\n' | sed -n "s/^$rip=//p")
		if curl -s -o /dev/null -m 1 "http://$rip:80/"; then now=up; else now=down; fi
		if [ "$now" != "$was" ]; then
			if [ "$now" = down ]; then
				args="-P tcp -V $vs -R $rip -F tun -W 1"
				"$here/lvs.alert" $args && log "$rip http down: lvs.alert $args -> removed"
			else
				args="-P tcp -V $vs -R $rip -F tun -W 1 -u"
				"$here/lvs.alert" $args && log "$rip http up: lvs.alert $args -> added"
			fi
		fi
		new="$new $rip=$now"
	done
	state=$new
	sleep "$interval"
done
