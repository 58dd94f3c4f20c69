package main

import (
	"fmt"
	"strings"
	"time"

	"lvslab/ipvs/ctl"
)

// formatVRRP is what lvsadm -L adds after ipvsadm's table when
// lvskeepalived reports VRRP state to lvsd: one line per instance and one
// per VIP lvsd serves, after a blank line, so that the ipvsadm lines above
// stay byte for byte what ipvsadm prints (scripts that read the table stop
// at the blank line). Without a report nothing is added.
func formatVRRP(r ctl.Reply, now time.Time) string {
	if r.VRRP == nil {
		return ""
	}
	var b strings.Builder
	age := now.Sub(r.VRRP.Reported).Truncate(time.Second)
	fmt.Fprintf(&b, "\nVRRP (lvskeepalived pid %d, reported %s ago)\n", r.VRRP.PID, max(age, 0))
	fmt.Fprintf(&b, "  %-16s %4s %-7s %4s %-10s %s\n", "Instance", "VRID", "State", "Prio", "Interface", "VIPs")
	for _, s := range r.VRRP.Instances {
		vips := make([]string, len(s.VIPs))
		for i, a := range s.VIPs {
			vips[i] = a.String()
		}
		line := fmt.Sprintf("  %-16s %4d %-7s %4d %-10s %s", s.Instance, s.VRID, s.State, s.Priority, s.Interface, strings.Join(vips, " "))
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	if len(r.Ownership) > 0 {
		fmt.Fprintf(&b, "  %-16s %-8s %-16s %-10s %s\n", "VIP", "lvsd", "Instance", "Interface", "GARPs")
		for _, o := range r.Ownership {
			state := "released"
			if o.Owned {
				state = "owns"
			}
			note := ""
			if !o.Served {
				note = " (no service uses it)"
			}
			fmt.Fprintf(&b, "  %-16s %-8s %-16s %-10s %d%s\n", o.VIP.String(), state, or(o.Instance, "-"), or(o.Iface, "-"), o.GARPs, note)
		}
	}
	return b.String()
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
