package spec

import (
	"fmt"
	"strings"
)

// Names of the processes the role defaults start.
const (
	ProcLVSD  = "lvsd"
	ProcLVSRS = "lvsrs"
)

// MetricsAddr is where a director's lvsd serves Prometheus metrics unless
// its flags name another --metrics address: loopback inside the director's
// namespace, so every director of a lab has the same one and it is reached
// with lvslab exec (lvslab exec dir -- curl -s http://127.0.0.1:9108/metrics).
const MetricsAddr = "127.0.0.1:9108"

// Node returns the node called name, or nil.
func (s *Spec) Node(name string) *Node {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i]
		}
	}
	return nil
}

// Segment returns the segment called name, or nil.
func (s *Spec) Segment(name string) *Segment {
	for i := range s.Segments {
		if s.Segments[i].Name == name {
			return &s.Segments[i]
		}
	}
	return nil
}

// Interface returns the node's interface called name, or nil.
func (n *Node) Interface(name string) *Interface {
	for i := range n.Interfaces {
		if n.Interfaces[i].Name == name {
			return &n.Interfaces[i]
		}
	}
	return nil
}

// RoleDefaultsOn reports whether role defaults apply to n.
func (s *Spec) RoleDefaultsOn(n *Node) bool {
	if n.RoleDefaults != nil {
		return *n.RoleDefaults
	}
	if s.Defaults != nil && s.Defaults.RoleDefaults != nil {
		return *s.Defaults.RoleDefaults
	}
	return true
}

// RunsLVSD reports whether the node gets an lvsd process.
func (s *Spec) RunsLVSD(n *Node) bool {
	if n.Director != nil {
		return n.Director.Run == nil || *n.Director.Run
	}
	return n.Role == RoleDirector && s.RoleDefaultsOn(n)
}

// RunsLVSRS reports whether the node gets an lvsrs setup process.
func RunsLVSRS(n *Node) bool {
	return n.RealServer != nil && (n.RealServer.Run == nil || *n.RealServer.Run)
}

// ServiceName is the process name of a built-in service.
func (sv Service) ServiceName() string {
	if sv.Name != "" {
		return sv.Name
	}
	return string(sv.Kind)
}

// ProcessNames lists every process the node will have: lvsrs, services,
// lvsd, lvskeepalived, then the explicit ones (the order they start in).
func (s *Spec) ProcessNames(n *Node) []string {
	var names []string
	if RunsLVSRS(n) {
		names = append(names, ProcLVSRS)
	}
	for _, sv := range n.Services {
		names = append(names, sv.ServiceName())
	}
	if s.RunsLVSD(n) {
		names = append(names, ProcLVSD)
	}
	if s.RunsKeepalived(n) {
		names = append(names, ProcKeepalived)
	}
	if s.RunsNodeKeepalived(n) {
		names = append(names, ProcNodeKeepalived)
	}
	if n.FRR != nil {
		names = append(names, ProcZebra, ProcOSPFD)
	}
	for _, p := range n.Processes {
		names = append(names, p.Name)
	}
	return names
}

// SplitProcessRef splits "node/process".
func SplitProcessRef(ref string) (node, proc string, ok bool) {
	node, proc, ok = strings.Cut(ref, "/")
	return node, proc, ok && node != "" && proc != ""
}

// SplitIfaceRef splits "node:interface".
func SplitIfaceRef(ref string) (node, iface string, ok bool) {
	node, iface, ok = strings.Cut(ref, ":")
	return node, iface, ok && node != "" && iface != ""
}

// MACOf is the hardware address of "node:interface" in a resolved spec.
func (s *Spec) MACOf(ref string) (MAC, error) {
	node, iface, ok := SplitIfaceRef(ref)
	if !ok {
		return "", fmt.Errorf("%q is not node:interface", ref)
	}
	n := s.Node(node)
	if n == nil {
		return "", fmt.Errorf("unknown node %q", node)
	}
	ifc := n.Interface(iface)
	if ifc == nil {
		return "", fmt.Errorf("node %s has no interface %q", node, iface)
	}
	return ifc.MAC, nil
}

// VIPSegment is the segment a vip: expectation probes: its segment:, or
// the one segment whose subnets hold the address.
func (s *Spec) VIPSegment(v *VIPCheck) (string, error) {
	if v.Segment != "" {
		return v.Segment, nil
	}
	var found []string
	for _, sg := range s.Segments {
		for _, pf := range sg.Subnets {
			if pf.Contains(v.Address) {
				found = append(found, sg.Name)
				break
			}
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s is in no segment's subnets: name the segment (vip.segment) to probe it on", v.Address)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s is in the subnets of segments %s: name the one to probe (vip.segment)", v.Address, strings.Join(found, " and "))
}
