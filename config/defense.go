package config

import (
	"math"
	"slices"
	"strings"
)

// Defense are lvsd's flood defence settings, named after the kernel's
// sysctls (§2.6): drop_entry, drop_packet and secure_tcp are modes 0 never,
// 1 automatic (off now), 2 automatic (on now), 3 always; amemthresh is the
// threshold in free connection slots below which the automatic modes act;
// am_droprate is drop_packet's 1-in-N rate in mode 3. defence_tcp_drop and
// defence_udp_drop are the FULLNAT fork's (0 off, 1 on): a TCP segment or
// UDP datagram to a VIP that finds no connection and opens none (an ACK,
// RST or FIN flood, a port no service has) is dropped in silence instead of
// answered with a RST or port unreachable.
type Defense struct {
	DropEntry  int `json:"drop_entry"`
	DropPacket int `json:"drop_packet"`
	SecureTCP  int `json:"secure_tcp"`
	AmemThresh int `json:"amemthresh"`
	AmDropRate int `json:"am_droprate"`
	TCPDrop    int `json:"defence_tcp_drop"`
	UDPDrop    int `json:"defence_udp_drop"`
}

// DefenseNames are the settings in the order -L --defense prints them.
var DefenseNames = [...]string{"drop_entry", "drop_packet", "secure_tcp", "amemthresh", "am_droprate", "defence_tcp_drop", "defence_udp_drop"}

func (d *Defense) fields() [len(DefenseNames)]*int {
	return [...]*int{&d.DropEntry, &d.DropPacket, &d.SecureTCP, &d.AmemThresh, &d.AmDropRate, &d.TCPDrop, &d.UDPDrop}
}

// DefenseChange is what lvsadm --set-defense name=value... changes: Set
// has bit i for DefenseNames[i], Values the new values.
type DefenseChange struct {
	Set    uint8   `json:"set,omitempty"`
	Values Defense `json:"values,omitzero"`
}

// Apply returns d with the change's settings replaced.
func (c DefenseChange) Apply(d Defense) Defense {
	from, to := c.Values.fields(), d.fields()
	for i := range from {
		if c.Set&(1<<i) != 0 {
			*to[i] = *from[i]
		}
	}
	return d
}

// parseDefense reads --set-defense's name=value arguments.
func parseDefense(args []string) (DefenseChange, error) {
	var c DefenseChange
	if len(args) == 0 {
		return c, argErrorf("--set-defense requires name=value arguments (%s)", strings.Join(DefenseNames[:], ", "))
	}
	vals := c.Values.fields()
	for _, a := range args {
		name, v, ok := strings.Cut(a, "=")
		i := slices.Index(DefenseNames[:], name)
		if !ok || i < 0 {
			return c, argErrorf("invalid defence setting `%s' (name=value, name one of %s)", a, strings.Join(DefenseNames[:], ", "))
		}
		lo, hi := int64(0), int64(3)
		switch name {
		case "amemthresh":
			hi = math.MaxInt32
		case "am_droprate":
			lo, hi = 1, math.MaxInt32
		case "defence_tcp_drop", "defence_udp_drop":
			hi = 1
		}
		n, ok := numberIn(v, lo, hi)
		if !ok {
			return c, argErrorf("invalid %s value `%s' (%d..%d)", name, v, lo, hi)
		}
		if c.Set&(1<<i) != 0 {
			return c, argErrorf("%s given twice", name)
		}
		c.Set |= 1 << i
		*vals[i] = int(n)
	}
	return c, nil
}
