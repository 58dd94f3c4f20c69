// Package keepalived reads keepalived.conf as keepalived 2.2.7 does, with
// the Alibaba FULLNAT fork's keywords, into the typed configuration the
// ipvsadm path already uses (lvslab/config) plus the checker and VRRP specs
// lvskeepalived runs (reference/keepalived-vrrp.md §3, §4;
// reference/seed-keepalived-keywords.md).
//
// Reading. The lexer is keepalived's lib/parser.c: a line loses its
// comment ("#" or "!" outside double quotes; "\#" and "\!" are literal),
// is cut before and after every "{" and "}" outside double quotes into
// logical lines that share its file:line, and each logical line is split
// into words (a "..." word keeps its spaces and loses its quotes; scripts
// are re-split with keepalived's quote and escape rules). "include GLOB"
// (and includer/m/w/b/a) reads every match, relative to the including
// file's directory, csh braces expanded; an include loop is an error
// naming the chain, where keepalived runs out of file descriptors. The
// parser is process_stream: each logical line's first word is looked up in
// the current block's keyword table, sublevels recurse, an unknown keyword
// is skipped with a warning, and a "}" ends the block, so a block closed
// early is read as keepalived reads it (seed 004: the real_server after the
// early "}" is an unknown keyword at the top level). Input is bounded
// (4 MiB a file, 64 KiB a line, 256 files, includes 16 deep, 1000 problems)
// so no input makes it run away.
//
// Problems. Every Diag names file:line, also where keepalived names
// neither (missing braces, checks after parsing; those name the block's
// first line, or its closing line for end-of-block checks). Severities
// follow keepalived 2.2.7: SevWarning and SevError are what keepalived
// reports and survives (the item is skipped, clamped or defaulted, the rest
// runs; -t exits 5); SevSecurity is a script that would run as root
// without enable_script_security (-t exits 6); SevFatal is what keepalived
// aborts on (a keyword missing its parameter, exit 2; an unreadable main
// file): Config.Fatal() then says nothing may be applied. lvskeepalived
// adds warnings keepalived does not give: "//" or "/* */" written as a
// comment (ClassSlashComment; keepalived silently ignores words after a
// complete statement, or reads them as keywords), and notes on the FULLNAT
// fork's keywords.
//
// syn_proxy (the fork's) sets VirtualServer.SynProxy and the service's
// SynProxy: lvsd answers SYNs with cookies. It needs protocol TCP and real
// servers forwarded by NAT or FNAT; otherwise the virtual server is an error
// naming the line, and it is left out.
//
// FULLNAT. lb_kind FNAT, laddr_group_name and local_address_group (IPv4
// addresses and ranges) parse into VirtualServer.Forward (ForwardFullNAT),
// LaddrGroup and Laddrs, and Config.LocalAddressGroups; Table() gives a
// FULLNAT service its local addresses (lvsadm -P). Each of these keywords
// is noted as the fork's (ClassFullNAT, a warning, with EndLine the end of
// the block: keepalived 2.2.7 refuses such a virtual server); a FULLNAT virtual server without local addresses is
// an error and left out. est_timeout is an error "not yet supported by
// lvsd: est_timeout" (ClassFullNAT): the virtual server gets Refused set
// and Table() leaves it
// out; nothing is silently dropped.
//
// What the daemon and the checkers get (the contract for cmd/lvskeepalived
// and package check):
//
//   - Config.Table() is the IPVS configuration as lvsadm -R would build it
//     (config.Table, config.Service, config.Dest), every real server at its
//     configured weight; a group virtual server becomes one service per
//     group address (ranges expanded) and fwmark. The daemon applies it
//     through lvsd's control socket, then removes a failed real server (or,
//     with RealServer.InhibitOnFailure, edits its weight to 0).
//     Config.Services(vs, groups) and RealServer.Dest(svc) give the same
//     for one virtual server, so checker results map back: every
//     VirtualServer keeps its RealServers in file order, each with its
//     Checkers (all must pass).
//   - Checker timing is resolved (checker <- real_server <- virtual_server
//     <- keepalived's defaults): ConnectTimeout 5 s, DelayLoop 60 s,
//     Warmup = DelayLoop, Retry 1 (MISC 0, DNS 3), DelayBeforeRetry 1 s
//     (HTTP/SSL 3 s); Alpha, InhibitOnFailure and Virtualhost are inherited
//     the same way. A zero ConnectIP/ConnectPort means the real server's.
//   - VirtualServer carries Quorum (default 1), Hysteresis (clamped below
//     Quorum, as keepalived does), QuorumUp/QuorumDown, Alpha, Omega,
//     HASuspend, SorryServer (with SorryServerInhibit), and
//     RealServer.NotifyUp/NotifyDown. Scripts are Script values: argv split
//     as keepalived splits it, plus user/group; Global.ScriptUser and
//     Global.EnableScriptSecurity say who runs the rest.
//   - HTTPCheck.URLs each have Path, Digest (32 lower-case hex digits, ""
//     for none) and StatusCodes (URL.Accepts: 200-299 when none given);
//     MiscCheck has Path, Timeout (default DelayLoop) and Dynamic.
//   - Config.VRRP has Instances (VRID, Priority with keepalived's MASTER →
//     255 rule, AdvertInt, Version from vrrp_version, AuthType/AuthPass
//     truncated to 8, VIPs with prefix, dev and brd, tracks, notify scripts,
//     preemption cleared where keepalived clears it), SyncGroups, Scripts
//     and the static addresses and routes, for the VRRP issue. Keywords
//     accepted but not interpreted are kept as Statements in Other fields.
//
// Defaults are keepalived 2.2.7's, including the ones that surprise: a
// virtual server without protocol is UDP, without lb_algo wlc, without
// lb_kind NAT, each with keepalived's warning; persistence_timeout without
// a value is 360 s; a real server's weight defaults to the virtual server's
// weight (1).
package keepalived
