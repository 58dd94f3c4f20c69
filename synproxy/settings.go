package synproxy

import "fmt"

// Settings are the fork's synproxy sysctls (/proc/sys/net/ipv4/vs/synproxy_*,
// reference §2.5), one set per director.
type Settings struct {
	// MSS is synproxy_init_mss: the most the SYN/ACK tells the client, and
	// the clamp before the MSS goes into the cookie.
	MSS uint16
	// TTL is synproxy_synack_ttl, the SYN/ACK's TTL.
	TTL uint8
	// SACK is synproxy_sack: keep SACK-permitted in the SYN/ACK.
	SACK bool
	// WScale is synproxy_wscale: the window shift offered to a client that
	// offered one; 0 strips the option (neither end scales).
	WScale uint8
	// Timestamp is synproxy_timestamp: answer a client's timestamp option.
	Timestamp bool
	// Defer is synproxy_defer: open the real server's side only for an ACK
	// that carries data (pure ACKs are dropped and counted).
	Defer bool
	// AckStore is synproxy_ack_skb_store_thresh: client packets kept while
	// the real server handshakes (0..5).
	AckStore int
	// AckStorm is synproxy_ack_storm_thresh: identical server ACKs let
	// through before the rest are dropped (0 disables).
	AckStorm int
	// SynRetry is synproxy_syn_retry: SYNs re-sent to a silent real server.
	SynRetry int
	// synproxy_conn_reuse has no setting here: in lvsd a client's SYN that
	// finds a CLOSE or TIME_WAIT connection expires it under the ordinary
	// conn_reuse_mode rule and is answered with a cookie like any SYN.
}

// DefaultSettings are the fork's code defaults (ip_vs_synproxy.h), not the
// design document's, where the two disagree.
func DefaultSettings() Settings {
	return Settings{MSS: 1452, TTL: 63, SACK: true, AckStore: 3, AckStorm: 10, SynRetry: 3}
}

// Validate checks the ranges ip_vs_ctl.c enforces, naming the sysctl.
func (s *Settings) Validate() error {
	switch {
	case s.MSS < MSSTable[0]:
		return fmt.Errorf("synproxy_init_mss %d: below %d", s.MSS, MSSTable[0])
	case s.TTL == 0:
		return fmt.Errorf("synproxy_synack_ttl 0: outside 1..255")
	case s.WScale > MaxWScale:
		return fmt.Errorf("synproxy_wscale %d: outside 0..%d", s.WScale, MaxWScale)
	case s.AckStore < 0 || s.AckStore > 5:
		return fmt.Errorf("synproxy_ack_skb_store_thresh %d: outside 0..5", s.AckStore)
	case s.AckStorm < 0 || s.AckStorm > 65535:
		return fmt.Errorf("synproxy_ack_storm_thresh %d: outside 0..65535", s.AckStorm)
	case s.SynRetry < 0 || s.SynRetry > 6:
		return fmt.Errorf("synproxy_syn_retry %d: outside 0..6", s.SynRetry)
	}
	return nil
}
