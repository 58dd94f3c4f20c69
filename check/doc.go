// Package check holds lvskeepalived's health checkers (keepalived 2.2.7's
// TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, SMTP_CHECK, UDP_CHECK,
// PING_CHECK, DNS_CHECK; reference/keepalived-vrrp.md §4), driven by the specs
// config/keepalived parses.
//
//   - State is keepalived's per-checker state machine as a pure core
//     (tcp_epilog: retry, delay_before_retry, delay_loop, the first check
//     without retries, alpha), table-tested without clocks.
//   - Engine runs any number of checkers from one timer heap with a bound
//     on probes in flight (2048 by default): 10,000 checkers at
//     delay_loop 1 cost a heap entry each and at most the bound in
//     goroutines and sockets, where keepalived before 2.0.8 died past
//     FD_SETSIZE. A checker's first run is 1 s plus a random part of
//     warmup, as keepalived spreads them.
//   - ProbeFor turns a keepalived.Checker into a Probe: TCP connect
//     (closed with a reset, so 10,000 checks a second leave no TIME_WAIT
//     behind), HTTP/SSL GET with status codes and MD5 digests (every url
//     each time, where keepalived checks one url per delay_loop), MISC
//     scripts (exit 0 success, 1 failure, misc_dynamic 2..255 set the
//     weight to code-2, killed at misc_timeout), SMTP (220, HELO 250,
//     QUIT), UDP (payload; without require_reply only an ICMP error
//     fails), PING (one ICMP echo), DNS (one query, check_dns.c's rules).
//     FILE_CHECK has no probe: lvskeepalived reads its track_file (files.go
//     there); BFD_CHECK is parsed but not run.
//   - Fetch and Parse are the HTTP request both HTTP_GET/SSL_GET and
//     genhash (lvskeepalived -T) use, with the digest exactly as
//     keepalived computes it.
package check
