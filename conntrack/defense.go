package conntrack

import (
	"errors"
	"fmt"
)

// The IPVS defences against a table filled by a flood (ip_vs_ctl.c
// update_defense_level, ip_vs_conn.c ip_vs_random_dropentry, ip_vs.h
// ip_vs_todrop; reference/ipvs.md §2.4, §2.6; ipvs-sysctl.rst).
//
// Pressure. The kernel is under pressure when available memory is below
// amemthresh pages. lvsd has a hard cap instead, Config.MaxConns, so its
// pressure is the table's fill: free slots (MaxConns minus live connections
// and templates) below AmemThresh. The default, 1024 free slots, is the
// kernel's default number.
//
// Modes, for each of DropEntry, DropPacket and SecureTCP, as the kernel's:
// 0 never; 1 automatic, off now (it turns itself into 2 when pressure
// appears); 2 automatic, on now (it turns itself back into 1 when pressure
// goes); 3 always. The level is re-evaluated once a second by DefenseTick (the
// kernel's defense_work_handler) and whenever SetDefense changes a setting.
//
//   - drop_entry: once a second, walk 1/32 of the table from a random slot
//     and drop every TCP entry in SYN_RECV or SYNACK, and those ESTABLISHED,
//     UDP or unassured-template entries todrop_entry picks (idle for 60 s and
//     seen with 1..8 packets, fewer packets dropped more often). lvsd adds
//     one thing (Reclaim): when the table is at its cap, a new connection
//     takes the place of an embryonic (SYN_RECV/SYNACK) entry instead of
//     being refused. The kernel's memory threshold is soft, allocation goes
//     on while the walk catches up; a hard cap refuses everyone in between,
//     which is what locks legitimate clients out of a table a SYN flood
//     fills.
//   - drop_packet: drop 1 in rate new connections before scheduling, with
//     rate = AmemThresh / (AmemThresh - free) under pressure (so every one
//     when the table is full), AmDropRate in mode 3.
//   - secure_tcp: step connections with tcp_states_dos, and apply the
//     shorter timeouts of the kernel's secure_tcp timeout table
//     (vs_timeout_table_dos, from the 2.4 kernels where secure_tcp switched
//     timeouts too; SYN_RECV 10 s instead of 60 s), never longer than the
//     normal ones set with --set.

// Defense is the defence settings, the sysctls drop_entry, drop_packet,
// secure_tcp, amemthresh and am_droprate.
type Defense struct {
	DropEntry  int // 0..3
	DropPacket int // 0..3
	SecureTCP  int // 0..3
	// AmemThresh is the pressure threshold in free connection slots.
	AmemThresh int
	// AmDropRate is drop_packet's 1-in-N rate in mode 3.
	AmDropRate int
}

// Kernel defaults (ipvs-sysctl.rst): every defence off, amemthresh 1024,
// am_droprate 10.
const (
	DefaultAmemThresh = 1024
	DefaultAmDropRate = 10
)

// DefaultDefense is the kernel's defaults.
func DefaultDefense() Defense {
	return Defense{AmemThresh: DefaultAmemThresh, AmDropRate: DefaultAmDropRate}
}

// ErrDefense: a defence setting out of range.
var ErrDefense = errors.New("defence setting out of range")

// Validate checks the ranges the kernel's proc handlers enforce.
func (d Defense) Validate() error {
	for _, m := range [...]struct {
		name string
		v    int
	}{{"drop_entry", d.DropEntry}, {"drop_packet", d.DropPacket}, {"secure_tcp", d.SecureTCP}} {
		if m.v < 0 || m.v > 3 {
			return fmt.Errorf("conntrack: %s %d: %w (0..3)", m.name, m.v, ErrDefense)
		}
	}
	if d.AmemThresh < 0 || d.AmemThresh > maxConnsLimit {
		return fmt.Errorf("conntrack: amemthresh %d: %w (0..%d)", d.AmemThresh, ErrDefense, maxConnsLimit)
	}
	if d.AmDropRate < 1 {
		return fmt.Errorf("conntrack: am_droprate %d: %w (at least 1)", d.AmDropRate, ErrDefense)
	}
	return nil
}

// defense is the run-time state behind Defense (netns_ipvs's dropentry,
// drop_rate, drop_counter, dropentry_counters).
type defense struct {
	cfg         Defense
	dropEntry   bool
	dropRate    int
	dropCounter int
	entryCtr    [8]int
	rng         uint64 // splitmix state: the random walk's start
	hand        uint32 // Reclaim's clock hand, a slab index
}

// DefenseReport is what one DefenseTick did.
type DefenseReport struct {
	Pressure bool // free slots below AmemThresh
	// DropEntry, DropRate and SecureTCP are the levels now in force.
	DropEntry bool
	DropRate  int
	SecureTCP bool
	// SecureTCPChanged: the state table was switched by this tick.
	SecureTCPChanged bool
	// Dropped is how many entries the drop_entry walk removed.
	Dropped int
}

// SetDefense changes the defence settings and re-evaluates the level at
// once, as a write to the sysctls does (without running the walk).
func (t *Table) SetDefense(d Defense) error {
	if err := d.Validate(); err != nil {
		return err
	}
	t.def.cfg = d
	t.updateDefense()
	return nil
}

// Defense returns the settings as the kernel's sysctls read back: an
// automatic mode shows 2 while its defence is on, 1 while it is off.
func (t *Table) Defense() Defense { return t.def.cfg }

// free is the number of slots left under the cap.
func (t *Table) room() int { return max(t.max-t.Len(), 0) }

// pressure is the kernel's nomem.
func (t *Table) pressure() bool { return t.room() < t.def.cfg.AmemThresh }

// Full reports whether the table is at its connection limit.
func (t *Table) Full() bool { return t.Len() >= t.max }

// updateDefense is update_defense_level.
func (t *Table) updateDefense() DefenseReport {
	d := &t.def
	c := &d.cfg
	nomem := t.pressure()
	auto := func(mode *int) bool {
		switch *mode {
		case 1, 2:
			if nomem {
				*mode = 2
			} else {
				*mode = 1
			}
			return nomem
		case 3:
			return true
		}
		return false
	}
	d.dropEntry = auto(&c.DropEntry)
	d.dropRate = 0
	if auto(&c.DropPacket) {
		if c.DropPacket == 3 {
			d.dropRate = c.AmDropRate
		} else {
			// amemthresh / (amemthresh - availmem); nomem implies a
			// positive divisor.
			d.dropRate = c.AmemThresh / (c.AmemThresh - t.room())
			d.dropCounter = d.dropRate
		}
	}
	secure := auto(&c.SecureTCP)
	changed := secure != t.SecureTCP()
	if changed {
		t.SetSecureTCP(secure)
	}
	return DefenseReport{Pressure: nomem, DropEntry: d.dropEntry, DropRate: d.dropRate, SecureTCP: secure, SecureTCPChanged: changed}
}

// DefenseTick is the kernel's once-a-second defense_work_handler: it
// re-evaluates the level and, with drop_entry on, runs the random walk.
func (t *Table) DefenseTick(now int64) DefenseReport {
	r := t.updateDefense()
	if r.DropEntry {
		r.Dropped = t.randomDropEntry(now)
	}
	return r
}

// DropPacket is ip_vs_todrop, asked once per packet that would create a
// connection: true means drop it. It never allocates.
func (t *Table) DropPacket() bool {
	d := &t.def
	if d.dropRate == 0 {
		return false
	}
	if d.dropCounter--; d.dropCounter > 0 {
		return false
	}
	d.dropCounter = d.dropRate
	return true
}

// dropEntryActive says whether drop_entry acts now: the level of the last
// evaluation, or, for the automatic modes, pressure right now (a table at
// its cap is under pressure whatever the last tick saw).
func (t *Table) dropEntryActive() bool {
	switch t.def.cfg.DropEntry {
	case 3:
		return true
	case 1, 2:
		return t.def.dropEntry || t.pressure()
	}
	return false
}

// reclaimProbe bounds the slots Reclaim looks at, so that a table full of
// established connections costs a refused SYN a bounded scan.
const reclaimProbe = 256

// Reclaim makes room for one new connection in a full table when drop_entry
// is active, by dropping an embryonic TCP entry (SYN_RECV or SYNACK, not
// controlling others): the first one found by a clock hand that sweeps the
// slab. The slot it frees is the one the new connection takes, right behind
// the hand, so a handshake in progress is the last entry the hand comes back
// to, after every other one. A victim's unassured template goes with it, as
// with any forced expiry; keep is a template the caller is about to link a
// new connection to, so its children are passed over. Where the victim was
// going is remembered (evicted.go), so that its client's ACK can still
// complete it. It reports whether an entry was dropped.
func (t *Table) Reclaim(now int64, keep ConnID) bool {
	if !t.Full() || !t.dropEntryActive() || t.hw == 0 {
		return false
	}
	d := &t.def
	for range min(reclaimProbe, int(t.hw)) {
		d.hand++
		if d.hand > t.hw {
			d.hand = 1
		}
		id := ConnID(d.hand)
		c := t.conn(id)
		if c.flags&(flagLive|FlagTemplate) != flagLive || c.nControl != 0 || c.proto != ProtoTCP || (keep != 0 && c.control == keep) {
			continue
		}
		if c.state == StateSynRecv || c.state == StateSynAck {
			t.remember(c)
			t.ExpireNow(id, now)
			return true
		}
	}
	return false
}

// todropEntry is todrop_entry: keep entries idle for less than 60 s, and
// drop the others with 1..8 incoming packets at a rate that prefers fewer
// packets (every one with 1, every other one with 2, ...).
func (t *Table) todropEntry(c *Conn, now int64) bool {
	last := int64(c.deadline-uint64(c.timeout)) * tickNs
	if now-last < int64(templateDeferral)*tickNs {
		return false
	}
	i := int(c.inPkts)
	if i < 1 || i > 8 {
		return false
	}
	i--
	ctr := &t.def.entryCtr[i]
	if *ctr--; *ctr > 0 {
		return false
	}
	*ctr = i + 1
	return true
}

// randomDropEntry is ip_vs_random_dropentry: 1/32 of the slab, from a
// random slot on, as the kernel walks 1/32 of its buckets from a random one.
func (t *Table) randomDropEntry(now int64) int {
	if t.hw == 0 {
		return 0
	}
	n := max(t.hw>>5, 1)
	start := uint32(splitmix(&t.def.rng) % uint64(t.hw))
	dropped := 0
	for k := range n {
		id := ConnID((start+k)%t.hw + 1)
		c := t.conn(id)
		if c.flags&flagLive == 0 || c.flags&FlagOnePacket != 0 || c.nControl != 0 {
			continue
		}
		switch {
		case c.flags&FlagTemplate != 0:
			// Without the service's one-packet flag here, templates take
			// the kernel's non-OPS rule: unassured ones go.
			if c.state == TemplateAssured {
				continue
			}
		case c.proto == ProtoTCP:
			switch c.state {
			case StateSynRecv, StateSynAck:
			case StateEstablished:
				if !t.todropEntry(c, now) {
					continue
				}
			default:
				continue
			}
		default:
			if !t.todropEntry(c, now) {
				continue
			}
		}
		if t.ExpireNow(id, now) {
			dropped++
		}
	}
	return dropped
}
