// Package synproxy is the TCP SYN proxy of Alibaba's LVS (ip_vs_synproxy.c,
// reference/anchors-fullnat-synproxy.md §2.4, with DPVS's fixes of §2.6): the
// director answers a client's SYN itself with a SYN cookie, keeps no state
// for it, and opens the real server's side only when the client's ACK
// carries a valid cookie. Sequence numbers of the two halves then differ by
// a per-connection delta that every later packet is translated through.
//
// The package is pure functions over frames plus two small value types, in
// the conventions of package rewrite (see its doc.go): a frame is a
// caller-owned []byte holding one Ethernet frame, described by a
// rewrite.Packet that Parse filled; nothing here allocates or keeps a
// reference; errors are rewrite.Reason values or this package's Reason,
// which never allocate; a transform validates before it writes.
//
// The pieces, in the order a connection meets them:
//
//   - Secret and Cookie: the fork's cookie, ISN = H(0,0) + client ISN +
//     (count << 24) + ((H(1,count) + data) & 0xFFFFFF), H the MD5
//     compression of the 4-tuple and the minute counter under a random key,
//     data the 24 bits that carry the client's MSS (as an index into
//     MSSTable), window scale, SACK-permitted and timestamp-ok. A cookie is
//     valid for CounterTries minutes.
//   - SYNACK turns the client's SYN into the cookie SYN/ACK in place (the
//     fork reuses the SYN's buffer the same way): options rewritten where
//     they are, addresses, ports and MACs swapped.
//   - CheckACK validates the client's final ACK and recovers the handshake
//     (Handshake) from the cookie alone.
//   - ServerSYN builds the SYN to the real server from the Handshake.
//   - Conn is the per-connection state after that: the sequence delta (our
//     ISN − the real server's), the timestamp delta, both window scales for
//     the DPVS outbound window rescale, and the ACK-storm counter. AdjustIn
//     and AdjustOut apply it to every later packet (ACK, SACK edges, TSecr
//     inbound; sequence, TSval and window outbound) with incremental
//     checksum updates.
//
// What the fork leaves as a FIXME and this package does differently, each
// noted at the code: the SYN to the real server offers the client's own
// window (not a constant 5000) and the client's own TSval; unknown options
// of the client's SYN are blanked in the SYN/ACK rather than echoed;
// timestamps, when offered, are translated in both directions (as the
// kernel's netfilter SYNPROXY does) so the client never sees the real
// server's clock jump; the 2 unused data bits must be zero.
package synproxy
