// Package vrrp is lvslab's VRRP: VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798) over
// IPv4, interoperating on the wire with keepalived 2.2.7, with keepalived's
// deviations from the RFCs (reference/keepalived-vrrp.md in the shared notes,
// cited by section below).
//
// Layers, from the wire up:
//
//   - packet.go: views in the rewrite/ style. Advert is a []byte over a VRRP
//     message, AH over keepalived's IPSEC-AH header; accessors read the bytes
//     in place. BuildAdvert writes a complete IPv4 packet (IP header, optional
//     AH, VRRP) into a caller's buffer. Nothing allocates per packet.
//   - check.go: the receive-side validation keepalived's vrrp_check_packet
//     does, in its order, returning a Reason (a uint8 error that never
//     allocates) and the log line keepalived writes for it.
//   - machine.go: the state machine as a pure, clock-driven core. Step takes
//     an Event (advert received, timer, interface up/down, script result,
//     shutdown) with the time it happened and returns Actions (send an
//     advert, add or remove addresses, send GARPs, notify). Deadline says when
//     it next needs a Timer event. No goroutines, no clock, no I/O: the tests
//     drive it with a fake clock against the reference's rules. Group
//     couples the machines of a vrrp_sync_group.
//   - instance.go, socket.go, hooks.go: the thin runtime. Instance owns one
//     Machine (or a group's Machines), real timers, a raw IPPROTO_VRRP or
//     IPPROTO_AH socket joined to 224.0.0.18 (or unicast peers), and carries
//     Actions out through Hooks: kernel addresses and routes via netlink,
//     gratuitous ARPs on an AF_PACKET socket, notify scripts with
//     keepalived's arguments, and OwnVIP/ReleaseVIP, which lvskeepalived
//     implements by telling lvsd over its control socket.
//
// Config (config.go) is what the keepalived.conf parser fills in; each field
// names the keyword it comes from.
package vrrp
