// Package rewrite is the packet layer of lvslab: zero-copy header views over
// Ethernet frames, Internet checksums (full, RFC 1624 incremental, and the
// CHECKSUM_PARTIAL variants), and the per-packet transforms kernel IPVS applies
// when it forwards: DR, NAT in/out, IP-in-IP tunnelling, FULLNAT in/out with
// the TOA option, MSS clamping and ICMP-error translation. It also builds the
// few frames a director answers itself (ARP, ICMP echo reply, ICMP errors, TCP
// RST).
//
// Conventions, shared by every function here:
//
//   - A frame is a caller-owned []byte holding one Ethernet frame (at most one
//     802.1Q tag). Nothing here allocates per packet or keeps a reference.
//   - Parse fills a Packet (offsets, protocol, addresses, ports) in one pass.
//     Transforms take the frame and its Packet, validate before writing (an
//     error means the frame is unchanged) and leave the Packet describing the
//     output exactly as Parse would.
//   - Errors are Reason values: a uint8 type implementing error, so returning
//     one never allocates, errors.Is works, and a caller can count drops in an
//     array indexed by Reason. The per-packet path does not wrap them with
//     fmt.Errorf because that allocates; the function returning one is the
//     context.
//   - Frames may carry Ethernet padding after the IPv4 packet (Packet.End
//     marks the end of the IP packet). In-place transforms keep the frame
//     length; transforms that grow the packet return a frame that ends at the
//     new IP end.
//   - Only IPv4 is handled; IPv6 frames stop at Parse with
//     ErrUnknownEtherType.
//
// Where the kernel's behaviour and a shortcut would differ, the kernel wins;
// the source is named next to the code (see reference/ipvs.md §7 and
// reference/anchors-fullnat-synproxy.md §2 in the shared notes).
package rewrite
