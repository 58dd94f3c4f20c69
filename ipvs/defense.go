package ipvs

import (
	"lvslab/config"
	"lvslab/conntrack"
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

func fromConfigDefense(d config.Defense) conntrack.Defense {
	return conntrack.Defense{DropEntry: d.DropEntry, DropPacket: d.DropPacket, SecureTCP: d.SecureTCP, AmemThresh: d.AmemThresh, AmDropRate: d.AmDropRate}
}
