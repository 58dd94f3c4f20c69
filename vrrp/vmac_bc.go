package vrrp

import (
	"encoding/binary"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// A macvlan hands every broadcast and multicast frame to a workqueue
// (macvlan_broadcast_enqueue) so that thousands of macvlans on one parent
// cannot make the receive softirq deliver thousands of copies. An ARP
// request for a VIP on a VMAC is such a frame: a kworker, an ordinary task,
// delivers it, and on a director whose CPUs are busy the answer waits
// behind whatever else runs (the lab saw ARP probes of a VMAC VIP go
// unanswered for 200-400 ms under a CPU hog while the kernel answered for
// its other addresses at once). Kernels since 6.4 let a macvlan port turn
// the queue off (IFLA_MACVLAN_BC_CUTOFF, iproute2's "bclim -1"): broadcasts
// are then delivered in the softirq, as on any other interface. A VMAC is
// one macvlan per VRID, so the reason for the queue does not apply.
// keepalived 2.2.7 predates the attribute and leaves the queue on.

// vmacBCCutoffOff is the cutoff that disables broadcast queueing.
const vmacBCCutoffOff = -1

// setBCCutoff sets the broadcast cutoff of the macvlan ifindex in the
// calling thread's network namespace. A kernel without the attribute
// refuses it (EINVAL or EOPNOTSUPP): the caller logs that and carries on
// with the queue.
func setBCCutoff(ifindex int, cutoff int32) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("macvlan"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	v := make([]byte, 4)
	binary.NativeEndian.PutUint32(v, uint32(cutoff))
	data.AddRtAttr(unix.IFLA_MACVLAN_BC_CUTOFF, v)
	req.AddData(info)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("broadcast cutoff %d on ifindex %d: %w", cutoff, ifindex, err)
	}
	return nil
}

// bcCutoff reads the broadcast cutoff of the macvlan ifindex back; a
// kernel reports it only when it is not the default 1, and ok is false
// when the kernel does not report it at all.
func bcCutoff(ifindex int) (cutoff int32, ok bool, err error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return 0, false, err
	}
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		// IFLA_LINKINFO > IFLA_INFO_DATA > IFLA_MACVLAN_BC_CUTOFF
		v, found := m[unix.SizeofIfInfomsg:], true
		for _, typ := range []uint16{unix.IFLA_LINKINFO, nl.IFLA_INFO_DATA, unix.IFLA_MACVLAN_BC_CUTOFF} {
			if v, found, err = attr(v, typ); err != nil || !found {
				break
			}
		}
		if err != nil {
			return 0, false, err
		}
		if found && len(v) >= 4 {
			return int32(binary.NativeEndian.Uint32(v)), true, nil
		}
	}
	return 1, false, nil
}

// attr returns the value of the first route attribute of type typ in b.
func attr(b []byte, typ uint16) ([]byte, bool, error) {
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		return nil, false, err
	}
	for _, a := range attrs {
		if a.Attr.Type == typ {
			return a.Value, true, nil
		}
	}
	return nil, false, nil
}
