package main

import (
	"flag"
	"fmt"

	"lvslab/synproxy"
)

// synProxyFlags declares the fork's synproxy_* sysctls as lvsd flags, with
// the fork's code defaults (synproxy.DefaultSettings); they apply to every
// service switched on with lvsadm -j enable (keepalived's syn_proxy). The
// returned function, called after parsing, fills s and validates it.
func synProxyFlags(fs *flag.FlagSet, s *synproxy.Settings) func() error {
	*s = synproxy.DefaultSettings()
	mss, ttl, wscale := fs.Uint("synproxy-mss", uint(s.MSS), "sysctl synproxy_init_mss: the most MSS the SYN proxy's SYN/ACK offers a client"),
		fs.Uint("synproxy-ttl", uint(s.TTL), "sysctl synproxy_synack_ttl: the TTL of the SYN proxy's SYN/ACK"),
		fs.Uint("synproxy-wscale", uint(s.WScale), "sysctl synproxy_wscale: window shift offered to clients, 0-14; 0 strips the option")
	fs.BoolVar(&s.SACK, "synproxy-sack", s.SACK, "sysctl synproxy_sack: offer SACK in the SYN/ACK")
	fs.BoolVar(&s.Timestamp, "synproxy-timestamp", s.Timestamp, "sysctl synproxy_timestamp: answer timestamps (lvsd translates them both ways)")
	fs.BoolVar(&s.Defer, "synproxy-defer", s.Defer, "sysctl synproxy_defer: open the real server's side only for an ACK carrying data")
	fs.IntVar(&s.AckStore, "synproxy-ack-store", s.AckStore, "sysctl synproxy_ack_skb_store_thresh: client packets kept while the real server handshakes, 0-5")
	fs.IntVar(&s.AckStorm, "synproxy-ack-storm", s.AckStorm, "sysctl synproxy_ack_storm_thresh: identical server ACKs before the rest are dropped (0: off)")
	fs.IntVar(&s.SynRetry, "synproxy-syn-retry", s.SynRetry, "sysctl synproxy_syn_retry: SYNs re-sent to a silent real server, 0-6")
	return func() error {
		switch {
		case *mss > 65535:
			return fmt.Errorf("--synproxy-mss %d: outside 64..65535", *mss)
		case *ttl > 255:
			return fmt.Errorf("--synproxy-ttl %d: outside 1..255", *ttl)
		case *wscale > synproxy.MaxWScale:
			return fmt.Errorf("--synproxy-wscale %d: outside 0..%d", *wscale, synproxy.MaxWScale)
		}
		s.MSS, s.TTL, s.WScale = uint16(*mss), uint8(*ttl), uint8(*wscale)
		if err := s.Validate(); err != nil {
			return fmt.Errorf("--synproxy-*: %w", err)
		}
		return nil
	}
}
