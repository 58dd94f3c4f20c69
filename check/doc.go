// Package check holds lvskeepalived's health checkers (keepalived 2.2.7's
// TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, SMTP_CHECK, UDP_CHECK,
// PING_CHECK; reference/keepalived-vrrp.md §4), driven by the specs
// config/keepalived parses.
//
// So far it has the HTTP fetch both HTTP_GET/SSL_GET and genhash
// (lvskeepalived -T) use: keepalived's request, and the MD5 digest of the
// response body exactly as keepalived computes it.
package check
