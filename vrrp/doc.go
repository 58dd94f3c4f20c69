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
//
// Driving it from a daemon (lvskeepalived):
//
//	hooks := &vrrp.KernelHooks{Owner: lvsdClient, Log: log} // Owner: the control-socket client
//	_ = hooks.ApplyStatic(vrrp.Static{...})                  // static_ipaddress, static_routes
//	r, err := vrrp.NewRouter(vrrp.Options{Instances: cfgs, Groups: groups, Hooks: hooks, Log: log})
//	// err: a config keepalived would refuse, naming the instance
//	err = r.Run(ctx) // until ctx is cancelled (SIGTERM): priority 0, addresses removed, notify_stop
//
// Run opens its sockets in the calling thread's network namespace, so the
// daemon runs in the namespace it serves (as `ip netns exec` gives it). It
// watches links itself (netlink), runs the vrrp_scripts (one runner per
// script, keepalived's "VRRP_Script(NAME) succeeded/failed" lines) and reads
// the track_files (every 100 ms; keepalived uses inotify); a daemon with its
// own link monitor sets NoLinkMonitor and calls Router.Interface. A SIGHUP
// reload is Router.Reload with the new configuration: each instance that
// stays keeps its state, AH counter and counters as keepalived's reload does
// (a MASTER stays MASTER without priority 0 and takes the VIP changes), a
// removed one sends priority 0 and goes.
//
// Not implemented (keepalived 2.2.7 has them): IPv6 and VRRPv3 over IPv6,
// virtual_rules, track_process, track_bfd, notify_fifo, notify_deleted,
// vrrp_garp_interval throttling, the two-owners "CONFIGURATION ERROR" drop to
// 254, the AH counter's cycle flag, sync_group_tracking_weight (member
// weights are used as configured), the VMAC's sysctls with a Netlink handle
// into another namespace (they are set through /proc/sys), and the GARP for
// its own address a unicast instance sends on leaving FAULT.
package vrrp
