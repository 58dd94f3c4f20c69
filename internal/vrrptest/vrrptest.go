// Package vrrptest reads VRRP daemons' logs for the interop tests: which
// lines say an advert was rejected, keepalived 2.2.7's texts and ours
// (reference/keepalived-vrrp.md §2.2).
package vrrptest

import "strings"

// markers are the texts keepalived 2.2.7 (and lvskeepalived) log for a
// rejected advert.
var markers = []string{"bogus", "wrong version", "invalid TTL", "unexpected ip number", "not present in",
	"interval mismatch", "auth, expecting", "sequence number", "checksum", "passwd", "IPSEC-AH", "Expected "}

// MaxReplayDrops is how many AH replay drops one node may log. keepalived
// keeps one AH sequence counter for sending and receiving and takes the
// peer's number when it becomes MASTER, so at a preemption the two
// routers, both advertising for an interval or two, each drop the other's
// adverts as replays ("IPSEC-AH : sequence number N already processed")
// until one of them steps down; keepalived-only pairs log the same. More
// than a preemption's worth is a real fault.
const MaxReplayDrops = 4

// Rejections splits a log's rejection lines into AH replay drops (with the
// "bogus VRRP packet" line that follows each of ours) and everything else.
func Rejections(log string) (other, replays []string) {
	lines := strings.Split(log, "\n")
	for i, l := range lines {
		switch {
		case strings.Contains(l, "already processed. Packet dropped"), strings.Contains(l, "IPSEC-AH : Syncing seq_num"):
			replays = append(replays, l)
		case strings.Contains(l, "bogus VRRP packet") && i > 0 && strings.Contains(lines[i-1], "already processed. Packet dropped"):
			// the line that follows a replay drop, not a rejection of its own
		default:
			for _, m := range markers {
				if strings.Contains(l, m) {
					other = append(other, l)
					break
				}
			}
		}
	}
	return other, replays
}
