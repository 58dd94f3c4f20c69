package ipvs

import (
	"fmt"

	"lvslab/config"
	"lvslab/conntrack"
	"lvslab/rewrite"
)

// The IPVS flood defences (drop_entry, drop_packet, secure_tcp) live in the
// connection table, which knows its fill; the engine asks it per new
// connection and drives its once-a-second evaluation. See
// conntrack/defense.go for the algorithm and how lvsd's pressure is defined.

// defensePeriod is DEFENSE_TIMER_PERIOD (1 s).
const defensePeriod = int64(1e9)

// SetDefense changes the defence settings (the sysctls drop_entry,
// drop_packet, secure_tcp, amemthresh, am_droprate) at run time.
func (e *Engine) SetDefense(d conntrack.Defense) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.conns.SetDefense(d)
}

// Defense returns the settings as the sysctls would read back (an automatic
// mode reads 2 while its defence is on).
func (e *Engine) Defense() conntrack.Defense {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.conns.Defense()
}

// defenseTick runs the table's defence evaluation once a second, counts what
// it did and logs each change of level. Called with e.mu held.
func (e *Engine) defenseTick(now int64) {
	if now-e.lastDefense < defensePeriod {
		return
	}
	e.lastDefense = now
	r := e.conns.DefenseTick(now)
	e.ctr[defEntriesDropped] += uint64(r.Dropped)
	if r.SecureTCPChanged && r.SecureTCP {
		e.ctr[defSecureTCPOn]++
	}
	was := e.defense
	cfg := e.conns.Defense()
	if cfg.DropEntry|cfg.DropPacket|cfg.SecureTCP == 0 {
		// No defence configured: the table-full warning says enough.
	} else if r.Pressure != was.Pressure || r.DropEntry != was.DropEntry || (r.DropRate != 0) != (was.DropRate != 0) || r.SecureTCP != was.SecureTCP {
		st := e.conns.Stats()
		e.log.Warn("flood defence level changed", "pressure", r.Pressure,
			"drop_entry", r.DropEntry, "drop_rate", r.DropRate, "secure_tcp", r.SecureTCP,
			"conns", st.Conns+st.Templates, "amemthresh", cfg.AmemThresh)
	}
	e.defense = r
}

// makeRoom lets drop_entry free a slot for a new entry in a full table,
// sparing the children of tmpl, the template the new connection will join.
func (e *Engine) makeRoom(now int64, tmpl conntrack.ConnID) {
	if e.conns.Full() && e.conns.Reclaim(now, tmpl) {
		e.ctr[defEntriesReclaimed]++
	}
}

func toConfigDefense(d conntrack.Defense) config.Defense {
	return config.Defense{DropEntry: d.DropEntry, DropPacket: d.DropPacket, SecureTCP: d.SecureTCP, AmemThresh: d.AmemThresh, AmDropRate: d.AmDropRate}
}

// configDefense is every defence setting, the table's and the engine's
// own silent drops. Call it holding e.mu.
func (e *Engine) configDefense() config.Defense {
	d := toConfigDefense(e.conns.Defense())
	d.TCPDrop, d.UDPDrop = b2i(e.defTCPDrop), b2i(e.defUDPDrop)
	return d
}

// setConfigDefense applies d. Call it holding e.mu.
func (e *Engine) setConfigDefense(d config.Defense) error {
	if d.TCPDrop < 0 || d.TCPDrop > 1 || d.UDPDrop < 0 || d.UDPDrop > 1 {
		return fmt.Errorf("defence_tcp_drop and defence_udp_drop are 0 or 1")
	}
	if err := e.conns.SetDefense(fromConfigDefense(d)); err != nil {
		return err
	}
	e.defTCPDrop, e.defUDPDrop = d.TCPDrop == 1, d.UDPDrop == 1
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// refuseOrDrop deals with a packet to a VIP that opened no connection (for
// reason): dropped in silence under defence_tcp_drop or defence_udp_drop,
// else refused as the director's own stack would (RST, port unreachable).
func (e *Engine) refuseOrDrop(w *worker, in *Iface, frame []byte, p *rewrite.Packet, reason reason) {
	switch {
	case p.Protocol == rewrite.ProtoTCP && e.defTCPDrop:
		e.ctr[defTCPDrop]++
	case p.Protocol == rewrite.ProtoUDP && e.defUDPDrop:
		e.ctr[defUDPDrop]++
	default:
		e.ctr[reason]++
		e.refuse(w, in, frame, p)
	}
}

func fromConfigDefense(d config.Defense) conntrack.Defense {
	return conntrack.Defense{DropEntry: d.DropEntry, DropPacket: d.DropPacket, SecureTCP: d.SecureTCP, AmemThresh: d.AmemThresh, AmDropRate: d.AmDropRate}
}
