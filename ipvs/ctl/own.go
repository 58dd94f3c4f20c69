package ctl

import (
	"net/netip"
	"time"
)

// VIP ownership and VRRP state: what lvskeepalived tells lvsd.
//
// A VIP lvsd holds rules for is either owned (lvsd answers ARP and ICMP
// echo for it, as the kernel does for an address it holds) or released
// (silent for it; the rules stay, as a kernel IPVS backup keeps its
// tables). lvsd starts with every VIP owned, or released with --no-arp;
// op "own" and "release" change that per address, "ownership" lists it:
//
//	echo '{"command":{"op":"own"},"own":{"vips":["192.0.2.100"],"garp":5}}' | socat - ABSTRACT-CONNECT:lvsd
//
// Ownership is per address and independent of the services: an address
// may be owned before a service on it exists, and keeps its state while
// services come and go.

// OwnRequest is the request of "own" and "release".
type OwnRequest struct {
	// Instance names who asks (a VRRP instance); the listing shows it.
	Instance string       `json:"instance,omitempty"`
	VIPs     []netip.Addr `json:"vips"`
	// GARP is how many gratuitous ARPs "own" sends for each VIP, from the
	// interface the VIP lives on (the one whose subnet holds it, else the
	// route's), whether the VIP was released before or not:
	// keepalived's garp_master_repeat, and its refreshes.
	GARP int `json:"garp,omitempty"`
}

// MaxGARP bounds OwnRequest.GARP (keepalived's garp_master_repeat is
// unbounded; a few are all a switch needs).
const MaxGARP = 64

// VIPOwnership is one address of an "ownership" listing (and of the
// "own"/"release" reply, for the addresses asked about).
type VIPOwnership struct {
	VIP   netip.Addr `json:"vip"`
	Owned bool       `json:"owned"`
	// Instance is who owned or released it last ("" for lvsd's start
	// state).
	Instance string `json:"instance,omitempty"`
	// Served says a virtual service (or fwmark rule) uses the address.
	Served bool `json:"served"`
	// Iface is where its gratuitous ARPs go ("" if no interface fits).
	Iface string `json:"iface,omitempty"`
	// GARPs counts the gratuitous ARPs sent for it.
	GARPs uint64 `json:"garps"`
	// Changed is when it was last owned or released (zero: at start).
	Changed time.Time `json:"changed,omitzero"`
}

// VRRPStatus is one VRRP instance as lvskeepalived reports it ("vrrp-report"
// carries them all, replacing the previous report; lvsadm -L and the
// metrics show the latest).
type VRRPStatus struct {
	Instance  string       `json:"instance"`
	VRID      uint8        `json:"vrid"`
	Interface string       `json:"interface,omitempty"`
	State     string       `json:"state"` // MASTER, BACKUP, FAULT, STOP, INIT
	Priority  uint8        `json:"priority"`
	VIPs      []netip.Addr `json:"vips,omitempty"`
	// Since is when the instance entered State.
	Since time.Time `json:"since,omitzero"`
}

// VRRPReport is lvsd's copy of the latest report.
type VRRPReport struct {
	Instances []VRRPStatus `json:"instances,omitempty"`
	// Reported is when lvsd received it; a reporter that died leaves it
	// growing old.
	Reported time.Time `json:"reported,omitzero"`
	// PID is the reporter's process (SO_PEERCRED).
	PID int32 `json:"pid,omitempty"`
}
