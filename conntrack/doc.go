// Package conntrack is the IPVS connection table: both-direction lookup,
// the TCP state tables (normal, input-only, secure_tcp), UDP, per-state
// timeouts, expiry on a hierarchical timer wheel, persistence templates, a
// connection limit, and the per-destination active/inactive counts that the
// schedulers read (ip_vs_conn.c, ip_vs_proto_tcp.c, ip_vs_proto_udp.c and the
// persistence half of ip_vs_core.c, reference/ipvs.md §2 and §4), and the
// kernel's flood defences drop_entry, drop_packet and secure_tcp, with the
// pressure threshold defined on the table's free slots (defense.go).
//
// Layout. Connection records live in a slab of fixed-size chunks addressed by
// a ConnID (a uint32), so a record never moves and the slab holds no Go
// pointers (the garbage collector never scans it). One open-addressing hash
// index holds up to two entries per connection: the client side
// (proto, caddr, cport, vaddr, vport) and the server side (proto, daddr,
// dport, caddr, cport), or (proto, daddr, dport, laddr, lport) for FULLNAT, as
// in Alibaba's LVS. Both are keyed by the packet's own (src, sport, dst,
// dport), so one hash and one probe sequence find a packet's connection
// whichever way it travels. Templates have a single entry of their own kind.
//
// Time. There is no wall-clock read anywhere: every call that needs the time
// takes now, the caller's monotonic clock in nanoseconds (non-negative, never
// decreasing). Timers have a resolution of one millisecond: a connection
// expires at the first Expire whose now is at or after its deadline rounded up
// to the millisecond, never before the deadline.
//
// Limits. IPv4 only for now (keys are compact [4]byte addresses); TCP and UDP
// only (plus IPPROTO_IP for fwmark templates). A Table is not safe for
// concurrent use: the engine serialises access, as one worker owns a table.
// ConnIDs are plain slab indices without a generation: an ID must not be used
// after its connection expired.
package conntrack
