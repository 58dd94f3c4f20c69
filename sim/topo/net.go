package topo

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lvslab/capture"
	"lvslab/internal/netns"
	"lvslab/sim/spec"
)

// bridgeName is the bridge of every segment namespace (one per namespace,
// so the name can be the same everywhere).
const bridgeName = "br0"

func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := netns.Retry(func() (netlink.Link, error) { return h.LinkByName(name) })
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

func createBridge(h *netlink.Handle, name string, sg *spec.Segment, mac spec.MAC) error {
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.HardwareAddr = mac.HardwareAddr()
	if sg.MTU != 0 {
		la.MTU = sg.MTU
	}
	snoop := sg.MulticastSnooping != nil && *sg.MulticastSnooping
	br := &netlink.Bridge{LinkAttrs: la, MulticastSnooping: &snoop}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	l, err := linkByName(h, name)
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bridge %s up: %w", name, err)
	}
	return nil
}

// createVeth makes the veth pair port (in the segment namespace, enslaved
// to the bridge) <-> ifc (in the node namespace), both created in place so
// no name ever exists in the root namespace.
func createVeth(segNL *netlink.Handle, node *netns.NS, nodeName, port string, portMAC net.HardwareAddr, ifc *spec.Interface, mac net.HardwareAddr) error {
	br, err := linkByName(segNL, bridgeName)
	if err != nil {
		return err
	}
	la := netlink.NewLinkAttrs()
	la.Name = port
	la.HardwareAddr = portMAC
	la.MasterIndex = br.Attrs().Index
	v := &netlink.Veth{LinkAttrs: la, PeerName: ifc.Name, PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(node.Handle())}
	if ifc.MTU != 0 {
		v.MTU = ifc.MTU
		v.PeerMTU = uint32(ifc.MTU)
	}
	if err := segNL.LinkAdd(v); err != nil {
		return fmt.Errorf("veth %s/%s: %w", port, ifc.Name, err)
	}
	pl, err := linkByName(segNL, port)
	if err != nil {
		return err
	}
	if err := segNL.LinkSetAlias(pl, nodeName+":"+ifc.Name); err != nil {
		return fmt.Errorf("alias of %s: %w", port, err)
	}
	if err := segNL.LinkSetUp(pl); err != nil {
		return fmt.Errorf("%s up: %w", port, err)
	}
	if ifc.Down {
		return nil
	}
	nl, err := linkByName(node.Netlink(), ifc.Name)
	if err != nil {
		return err
	}
	if err := node.Netlink().LinkSetUp(nl); err != nil {
		return fmt.Errorf("%s up: %w", ifc.Name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func configureAddresses(h *netlink.Handle, n *spec.Node) error {
	add := func(dev string, p netip.Prefix) error {
		l, err := linkByName(h, dev)
		if err != nil {
			return err
		}
		a := &netlink.Addr{IPNet: ipNet(p)}
		if dev == "lo" {
			// Addresses on lo are host addresses whatever their length.
			a.Scope = unix.RT_SCOPE_HOST
		}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("address %s on %s: %w", p, dev, err)
		}
		return nil
	}
	for _, ifc := range n.Interfaces {
		for _, p := range ifc.Addresses {
			if err := add(ifc.Name, p); err != nil {
				return err
			}
		}
	}
	for _, p := range n.Loopback {
		if err := add("lo", p); err != nil {
			return err
		}
	}
	return nil
}

func routeType(t spec.RouteType) int {
	switch t {
	case "blackhole":
		return unix.RTN_BLACKHOLE
	case "unreachable":
		return unix.RTN_UNREACHABLE
	case "prohibit":
		return unix.RTN_PROHIBIT
	}
	return unix.RTN_UNICAST
}

func configureRoutes(h *netlink.Handle, n *spec.Node) error {
	for _, r := range n.Routes {
		rt := &netlink.Route{Dst: ipNet(r.Dst.Prefix), Priority: r.Metric, Type: routeType(r.Type)}
		// Non-unicast routes (blackhole, ...) have no device.
		if unicast := r.Type == "" || r.Type == "unicast"; unicast && r.Dev != "" {
			l, err := linkByName(h, r.Dev)
			if err != nil {
				return err
			}
			rt.LinkIndex = l.Attrs().Index
			if !r.Via.IsValid() {
				rt.Scope = netlink.SCOPE_LINK
			}
		}
		if r.Via.IsValid() {
			rt.Gw = r.Via.AsSlice()
		}
		if r.Src.IsValid() {
			rt.Src = r.Src.AsSlice()
		}
		if err := h.RouteAdd(rt); err != nil {
			return fmt.Errorf("route %s: %w", describeRoute(r), err)
		}
	}
	return nil
}

func describeRoute(r spec.Route) string {
	s := r.Dst.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	return s
}

func configureNeighbors(h *netlink.Handle, s *spec.Spec, n *spec.Node) error {
	for _, nb := range n.Neighbors {
		mac := nb.MAC
		if nb.MACOf != "" {
			var err error
			if mac, err = s.MACOf(nb.MACOf); err != nil {
				return fmt.Errorf("neighbour %s: %w", nb.IP, err)
			}
		}
		dev := nb.Dev
		if dev == "" {
			dev = devFor(n, nb.IP)
		}
		l, err := linkByName(h, dev)
		if err != nil {
			return err
		}
		ne := &netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT, IP: nb.IP.AsSlice(), HardwareAddr: mac.HardwareAddr()}
		if nb.IP.Is4() {
			ne.Family = unix.AF_INET
		} else {
			ne.Family = unix.AF_INET6
		}
		if err := h.NeighSet(ne); err != nil {
			return fmt.Errorf("neighbour %s lladdr %s dev %s: %w", nb.IP, mac, dev, err)
		}
	}
	return nil
}

// devFor is the interface whose subnet holds a.
func devFor(n *spec.Node, a netip.Addr) string {
	for _, ifc := range n.Interfaces {
		for _, p := range ifc.Addresses {
			if p.Masked().Contains(a) {
				return ifc.Name
			}
		}
	}
	return ""
}

// configureInside does what needs a thread inside the node's namespace:
// sysctls and ethtool features. It runs in that thread.
func configureInside(n *spec.Node) error {
	for _, sc := range n.Sysctls {
		if err := netns.WriteSysctl(sc.Key, sc.Value); err != nil {
			return err
		}
	}
	for _, ifc := range n.Interfaces {
		if len(ifc.Offloads) == 0 {
			continue
		}
		want := map[string]bool{}
		for _, o := range ifc.Offloads {
			for _, k := range spec.OffloadFeatures(o.Feature) {
				want[k] = o.On
			}
		}
		if _, err := capture.SetFeatures(ifc.Name, want); err != nil {
			return fmt.Errorf("offloads of %s: %w", ifc.Name, err)
		}
	}
	return nil
}

// NodePath maps a file path of the spec into the node directory: /etc/x
// and etc/x both mean <dir>/etc/x.
func NodePath(dir, p string) string {
	return filepath.Join(dir, filepath.FromSlash(path.Clean("/"+p)))
}

func writeFiles(s *spec.Spec, n *spec.Node, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("node directory: %w", err)
	}
	for _, f := range n.Files {
		dst := NodePath(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
		var data []byte
		if f.Content != nil {
			data = []byte(*f.Content)
		} else {
			var err error
			if data, err = os.ReadFile(s.Abs(f.From)); err != nil {
				return fmt.Errorf("file %s: %w", f.Path, err)
			}
		}
		if err := os.WriteFile(dst, data, os.FileMode(f.Mode)); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
		// WriteFile's mode is masked by the umask; the spec's is meant.
		if err := os.Chmod(dst, os.FileMode(f.Mode)); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
	}
	return nil
}
