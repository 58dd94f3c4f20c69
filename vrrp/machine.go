package vrrp

import (
	"net/netip"
	"time"
)

// State is an instance's (or a sync group's) VRRP state.
type State uint8

// States. Fault is keepalived's extension: neither sending nor processing
// adverts (reference §1.5).
const (
	Init State = iota
	Backup
	Master
	Fault
	Stopped
)

// String is keepalived's word for the state, as notify scripts get it.
func (s State) String() string {
	switch s {
	case Backup:
		return "BACKUP"
	case Master:
		return "MASTER"
	case Fault:
		return "FAULT"
	case Stopped:
		return "STOP"
	}
	return "INIT"
}

// EventKind says what happened.
type EventKind uint8

// Events into the machine.
const (
	EvStart     EventKind = iota // the instance starts
	EvTimer                      // Deadline was reached (early calls are harmless)
	EvAdvert                     // an advert passed Check
	EvInterface                  // a link went up or down (Name, Up)
	EvScript                     // a vrrp_script finished (Name, Up = exit 0)
	EvShutdown                   // SIGTERM: priority 0, addresses removed, notify_stop
	EvFile                       // a track_file's number changed (Name, Value)
)

// Event is one input, stamped with the time it happened: the machine has no
// clock of its own.
type Event struct {
	Kind EventKind
	Now  time.Time
	// EvAdvert: the sender's priority, source address and interval.
	Priority uint8
	Src      netip.Addr
	Interval time.Duration
	// EvInterface, EvScript, EvFile.
	Name string
	Up   bool
	// EvFile: the file's number.
	Value int64
}

// ActionKind says what to do.
type ActionKind uint8

// Actions out of the machine, in the order the runtime must carry them out
// (keepalived's order on becoming master: advert, addresses, GARPs, notify,
// reference §2.3).
const (
	ActSendAdvert      ActionKind = iota // send an advert with Priority
	ActAddAddresses                      // add VIPs, eVIPs, virtual routes; own the VIPs in lvsd
	ActRemoveAddresses                   // the reverse
	ActGARP                              // Repeat gratuitous ARPs per VIP
	ActNotify                            // run notify scripts for State (Group set: the group's)
	ActDiscardLower                      // Backup ignored a lower-priority advert (log it)
	ActForceElection                     // Master saw a lower-priority advert (log it; AH: sync seq)
	ActPriority                          // the effective priority changed from Old to Priority (log it)
)

// Action is one output. From is the machine it belongs to (a sync group's
// step can move several).
type Action struct {
	Kind     ActionKind
	From     *Machine
	Priority uint8
	Repeat   int
	State    State
	Group    *Group
	Src      netip.Addr // the advert that caused it (discard, election)
	Old      uint8      // ActPriority: the priority before
}

type trackIf struct {
	up bool
}

type trackScript struct {
	ok bool
	// known: the script has reported (or init_fail said it failed).
	// Until then a weighted script moves the priority neither way, as
	// keepalived's SCRIPT_INIT_STATE_INIT: a positive weight is added
	// on the first success, with a "Changing effective priority" line.
	known      bool
	succ, fail int
}

// Machine is one vrrp_instance's state machine: pure, clock-driven. Feed it
// Events with Step; carry out the Actions it returns; call Step with EvTimer
// at Deadline. Not safe for concurrent use.
type Machine struct {
	cfg   *Config
	local netip.Addr // our advert source: the tie-breaker

	state        State
	effPrio      uint8
	masterAdvInt time.Duration

	downAt, advertAt, garpAt, refreshAt, lowerGarpAt, preemptAt time.Time

	primaryUp  bool
	ifs        []trackIf
	scripts    []trackScript
	files      []int64 // per cfg.TrackFile, the number last read
	wantMaster bool

	group *Group
	own   []Action
	out   *[]Action
}

// NewMachine builds the machine for a normalized config; local is the
// address adverts are sent from (mcast_src_ip or the interface's primary).
func NewMachine(cfg *Config, local netip.Addr) *Machine {
	m := &Machine{cfg: cfg, local: local, primaryUp: true, masterAdvInt: cfg.AdvInt}
	m.out = &m.own
	m.ifs = make([]trackIf, len(cfg.TrackInterface))
	for i := range m.ifs {
		m.ifs[i].up = true
	}
	m.scripts = make([]trackScript, len(cfg.TrackScript))
	for i, s := range cfg.TrackScript {
		m.scripts[i].ok, m.scripts[i].known = !s.InitFail, s.InitFail
	}
	m.files = make([]int64, len(cfg.TrackFile))
	m.effPrio = m.effective()
	return m
}

// SetFile sets a track_file's number without emitting anything, for the
// values read before the machine starts (keepalived reads the files at
// initialisation and starts with their weights); later changes are
// EvFile events.
func (m *Machine) SetFile(name string, v int64) {
	for i, t := range m.cfg.TrackFile {
		if t.Name == name {
			m.files[i] = v
		}
	}
	m.effPrio = m.effective()
}

// Name is the instance name.
func (m *Machine) Name() string { return m.cfg.Name }

// Config is the machine's configuration.
func (m *Machine) Config() *Config { return m.cfg }

// State is the current state.
func (m *Machine) State() State { return m.state }

// Priority is the effective priority (base plus track weights, clamped).
func (m *Machine) Priority() uint8 { return m.effPrio }

// MasterAdvInt is the advert interval in use (v3 backups learn the
// master's).
func (m *Machine) MasterAdvInt() time.Duration { return m.masterAdvInt }

// Deadline is when the machine next needs an EvTimer (zero: none).
func (m *Machine) Deadline() time.Time {
	var d time.Time
	// refreshAt is not a deadline: it is checked when an advert goes out.
	for _, t := range [...]time.Time{m.downAt, m.advertAt, m.garpAt, m.lowerGarpAt} {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

// Skew is Skew_Time for the effective priority (reference §1.4): v2
// (256−p)/256 s, v3 (256−p)×Master_Adver_Interval/256.
func (m *Machine) Skew() time.Duration {
	p := time.Duration(256 - int(m.effPrio))
	if m.cfg.Version == 3 {
		return p * m.masterAdvInt / 256
	}
	return p * time.Second / 256
}

// DownInterval is Master_Down_Interval: down_timer_adverts × interval + skew.
func (m *Machine) DownInterval() time.Duration {
	return time.Duration(m.cfg.DownTimerAdverts)*m.masterAdvInt + m.Skew()
}

// Step feeds one event and returns the actions, valid until the next Step
// (of any machine of the same group).
func (m *Machine) Step(ev Event) []Action {
	*m.out = (*m.out)[:0]
	now := ev.Now
	switch ev.Kind {
	case EvStart:
		m.start(now)
	case EvTimer:
		m.timer(now)
	case EvAdvert:
		m.advert(ev)
	case EvInterface:
		m.setInterface(ev.Name, ev.Up)
		m.recompute(now)
	case EvScript:
		m.setScript(ev.Name, ev.Up)
		m.recompute(now)
	case EvFile:
		for i, t := range m.cfg.TrackFile {
			if t.Name == ev.Name {
				m.files[i] = ev.Value
			}
		}
		m.recompute(now)
	case EvShutdown:
		if m.group != nil {
			for _, o := range m.group.members {
				o.stop()
			}
			m.group.notify(Stopped)
		} else {
			m.stop()
		}
	}
	return *m.out
}

func (m *Machine) emit(a Action) {
	a.From = m
	*m.out = append(*m.out, a)
}

func (m *Machine) start(now time.Time) {
	m.state = Backup // "Entering BACKUP STATE (init)"
	m.emit(Action{Kind: ActNotify, State: Backup, Priority: m.effPrio})
	switch {
	case m.faulty():
		m.toFault(now)
	case m.effPrio == 255 && m.cfg.InitialState == Master:
		// Only the owner takes over at once (reference §1.5).
		m.toMaster(now)
	default:
		m.downAt = now.Add(m.DownInterval())
	}
}

func (m *Machine) stop() {
	if m.state == Stopped {
		return
	}
	if m.state == Master {
		m.emit(Action{Kind: ActSendAdvert, Priority: 0})
		m.emit(Action{Kind: ActRemoveAddresses})
	}
	m.clearTimers()
	m.state = Stopped
	m.emit(Action{Kind: ActNotify, State: Stopped, Priority: m.effPrio})
}

func (m *Machine) clearTimers() {
	m.downAt, m.advertAt, m.garpAt, m.refreshAt, m.lowerGarpAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
}

func (m *Machine) toMaster(now time.Time) {
	m.clearTimers()
	m.state = Master
	m.wantMaster = false
	m.masterAdvInt = m.cfg.AdvInt
	m.emit(Action{Kind: ActSendAdvert, Priority: m.effPrio})
	m.emit(Action{Kind: ActAddAddresses})
	m.emit(Action{Kind: ActGARP, Repeat: m.cfg.GarpMasterRepeat})
	m.emit(Action{Kind: ActNotify, State: Master, Priority: m.effPrio})
	m.advertAt = now.Add(m.cfg.AdvInt)
	if m.cfg.GarpMasterDelay > 0 {
		m.garpAt = now.Add(m.cfg.GarpMasterDelay)
	}
	if m.cfg.GarpMasterRefresh > 0 {
		m.refreshAt = now.Add(m.cfg.GarpMasterRefresh)
	}
}

func (m *Machine) toBackup(now time.Time) {
	if m.state == Master {
		m.emit(Action{Kind: ActRemoveAddresses})
	}
	m.clearTimers()
	m.state = Backup
	m.emit(Action{Kind: ActNotify, State: Backup, Priority: m.effPrio})
	m.downAt = now.Add(m.DownInterval())
}

func (m *Machine) toFault(now time.Time) {
	_ = now
	if m.state == Master {
		// MASTER → FAULT sends priority 0 too (reference §1.5).
		m.emit(Action{Kind: ActSendAdvert, Priority: 0})
		m.emit(Action{Kind: ActRemoveAddresses})
	}
	m.clearTimers()
	m.state = Fault
	m.wantMaster = false
	m.emit(Action{Kind: ActNotify, State: Fault, Priority: m.effPrio})
}

// leaveFault: back to BACKUP with a fresh down timer (an owner goes master).
func (m *Machine) leaveFault(now time.Time) {
	m.state = Backup
	m.emit(Action{Kind: ActNotify, State: Backup, Priority: m.effPrio})
	if m.effPrio == 255 && m.cfg.InitialState == Master {
		m.toMaster(now)
		return
	}
	m.downAt = now.Add(m.DownInterval())
}

// Resume makes a reloaded instance's machine carry on from old, the
// running machine of the same instance, as keepalived 2.2.7's reload does
// (vrrp.c clear_diff_vrrp, restore_vrrp_state; vrrp_scheduler.c
// vrrp_init_state): the tracked scripts keep their results by name; the
// links are as down says; a MASTER stays MASTER without a notify and
// sends its next advert at once; a BACKUP stays BACKUP with a fresh down
// timer; an instance that is now faulty goes to FAULT (a MASTER releasing
// its addresses, without a priority-0 advert); one that was FAULT (or
// never ran) starts afresh. The addresses a MASTER keeps are the
// caller's (it adds the new ones and removes the old). Call it instead
// of EvStart, before the machine joins a group.
func (m *Machine) Resume(old *Machine, now time.Time, down map[string]bool) []Action {
	*m.out = (*m.out)[:0]
	m.primaryUp = !down[m.cfg.Interface]
	for i, t := range m.cfg.TrackInterface {
		m.ifs[i].up = !down[t.Name]
	}
	for i, s := range m.cfg.TrackScript {
		for j, o := range old.cfg.TrackScript {
			if o.Name == s.Name {
				st := old.scripts[j]
				st.succ, st.fail = min(st.succ, max(s.Rise, 1)), min(st.fail, max(s.Fall, 1))
				m.scripts[i] = st
				break
			}
		}
	}
	m.effPrio = m.effective()
	switch {
	case m.faulty():
		if old.state == Master {
			m.emit(Action{Kind: ActRemoveAddresses})
		}
		m.state = Fault
		if old.state != Fault {
			m.emit(Action{Kind: ActNotify, State: Fault, Priority: m.effPrio})
		}
	case old.state == Master:
		m.state = Master
		m.masterAdvInt = m.cfg.AdvInt
		m.advertAt = now
		if m.cfg.GarpMasterRefresh > 0 {
			m.refreshAt = now.Add(m.cfg.GarpMasterRefresh)
		}
	case old.state == Backup:
		m.state = Backup
		m.downAt = now.Add(m.DownInterval())
	default:
		m.start(now)
	}
	return *m.out
}

// resume settles a reloaded group (keepalived: a group is MASTER only
// if every member is; a MASTER member of a group that is not goes to
// BACKUP). old is the group's state before the reload (Init: new).
func (g *Group) resume(now time.Time, old State) []Action {
	g.buf = g.buf[:0]
	all, fault := true, false
	for _, o := range g.members {
		all = all && o.state == Master
		fault = fault || o.state == Fault
	}
	switch {
	case fault:
		for _, o := range g.members {
			if o.state != Fault {
				o.toFault(now)
			}
		}
		g.state = Fault
	case all:
		g.state = Master
	default:
		for _, o := range g.members {
			if o.state == Master {
				o.toBackup(now)
			}
		}
		g.state = Backup
	}
	if g.state != old {
		g.buf = append(g.buf, Action{Kind: ActNotify, State: g.state, Group: g, From: g.members[0]})
	}
	return g.buf
}

func due(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) }

func (m *Machine) timer(now time.Time) {
	switch m.state {
	case Backup:
		if !due(m.downAt, now) {
			return
		}
		if g := m.group; g != nil {
			m.wantMaster = true
			if !g.allWantMaster() {
				// Held in BACKUP until every member wants MASTER (§2.6).
				m.downAt = now.Add(m.DownInterval())
				return
			}
			for _, o := range g.members {
				if o.state == Backup {
					o.toMaster(now)
				}
			}
			g.notify(Master)
			return
		}
		m.toMaster(now)
	case Master:
		if due(m.advertAt, now) {
			m.emit(Action{Kind: ActSendAdvert, Priority: m.effPrio})
			m.advertAt = now.Add(m.cfg.AdvInt)
			// The refresh is checked when an advert goes out, so it rounds up
			// to a multiple of advert_int, as keepalived's does (issue #1214).
			if due(m.refreshAt, now) {
				m.emit(Action{Kind: ActGARP, Repeat: m.cfg.GarpMasterRefreshRepeat})
				m.refreshAt = now.Add(m.cfg.GarpMasterRefresh)
			}
		}
		if due(m.garpAt, now) {
			m.emit(Action{Kind: ActGARP, Repeat: m.cfg.GarpMasterRepeat})
			m.garpAt = time.Time{}
		}
		if due(m.lowerGarpAt, now) {
			m.emit(Action{Kind: ActGARP, Repeat: m.cfg.GarpLowerPrioRepeat})
			m.lowerGarpAt = time.Time{}
		}
	}
}

func (m *Machine) advert(ev Event) {
	now := ev.Now
	switch m.state {
	case Backup:
		if ev.Priority == 0 {
			m.downAt = now.Add(m.Skew())
			return
		}
		accept := m.cfg.NoPreempt || ev.Priority >= m.effPrio
		if !accept && m.cfg.PreemptDelay > 0 {
			// preempt_delay: lower-priority adverts stay valid until the
			// delay, counted from the first one, has passed (§2.4).
			if m.preemptAt.IsZero() {
				m.preemptAt = now.Add(m.cfg.PreemptDelay)
			}
			accept = now.Before(m.preemptAt)
		}
		if !accept {
			m.emit(Action{Kind: ActDiscardLower, Priority: ev.Priority, Src: ev.Src})
			return
		}
		if ev.Priority >= m.effPrio {
			m.preemptAt = time.Time{}
		}
		if m.cfg.Version == 3 && ev.Interval > 0 {
			m.masterAdvInt = ev.Interval
		}
		m.wantMaster = false
		m.downAt = now.Add(m.DownInterval())
	case Master:
		switch {
		case ev.Priority == 0:
			m.emit(Action{Kind: ActSendAdvert, Priority: m.effPrio})
			m.advertAt = now.Add(m.cfg.AdvInt)
		case ev.Priority > m.effPrio || (ev.Priority == m.effPrio && ev.Src.Compare(m.local) > 0):
			if m.cfg.HigherPrioSendAdvert {
				m.emit(Action{Kind: ActSendAdvert, Priority: m.effPrio})
			}
			if g := m.group; g != nil {
				for _, o := range g.members {
					if o.state == Master {
						o.toBackup(now)
					}
				}
				g.notify(Backup)
			} else {
				m.toBackup(now)
			}
			if m.cfg.Version == 3 && ev.Interval > 0 {
				m.masterAdvInt = ev.Interval
				m.downAt = now.Add(m.DownInterval())
			}
		case ev.Priority == m.effPrio && ev.Src == m.local:
			// Our own advert looped back.
		default:
			// keepalived answers a lower priority at once instead of
			// discarding it (reference §1.5).
			m.emit(Action{Kind: ActForceElection, Priority: ev.Priority, Src: ev.Src})
			if !m.cfg.LowerPrioNoAdvert {
				m.emit(Action{Kind: ActSendAdvert, Priority: m.effPrio})
				m.advertAt = now.Add(m.cfg.AdvInt)
				m.emit(Action{Kind: ActGARP, Repeat: m.cfg.GarpLowerPrioRepeat})
				if m.cfg.GarpLowerPrioDelay > 0 {
					m.lowerGarpAt = now.Add(m.cfg.GarpLowerPrioDelay)
				}
			}
		}
	}
}

func (m *Machine) setInterface(name string, up bool) {
	if name == m.cfg.Interface {
		m.primaryUp = up
	}
	for i, t := range m.cfg.TrackInterface {
		if t.Name == name {
			m.ifs[i].up = up
		}
	}
}

func (m *Machine) setScript(name string, ok bool) {
	for i, s := range m.cfg.TrackScript {
		if s.Name != name {
			continue
		}
		st := &m.scripts[i]
		st.known = true
		if ok {
			st.succ, st.fail = st.succ+1, 0
			if st.succ >= s.Rise {
				st.ok = true
			}
		} else {
			st.succ, st.fail = 0, st.fail+1
			if st.fail >= s.Fall {
				st.ok = false
			}
		}
	}
}

// faulty: the primary interface down (unless dont_track_primary), or an
// unweighted tracked interface or script failing.
func (m *Machine) faulty() bool {
	if !m.primaryUp && !m.cfg.DontTrackPrimary {
		return true
	}
	for i, t := range m.cfg.TrackInterface {
		if t.Weight == 0 && m.ifs[i].up == t.Reverse {
			return true
		}
	}
	for i, s := range m.cfg.TrackScript {
		if s.Weight == 0 && m.scripts[i].ok == s.Reverse {
			return true
		}
	}
	for i := range m.cfg.TrackFile {
		if _, fault := m.fileStatus(i); fault {
			return true
		}
	}
	return false
}

// fileStatus is keepalived's update_track_file_status and
// process_update_vrrp_track_file_status for track_file i: the priority it
// adds, or FAULT.
func (m *Machine) fileStatus(i int) (add int, fault bool) {
	t, v := m.cfg.TrackFile[i], m.files[i]
	if t.Weight == 0 {
		return 0, (v != 0) != t.Reverse
	}
	w := int64(t.Weight)
	if t.Reverse {
		w = -w
	}
	// |w| <= 254, so the product of a 32-bit-ish number cannot overflow;
	// clamp v first for anything larger.
	s := min(max(v, -1<<40), 1<<40) * w
	s = min(max(s, -254), 253)
	return int(s), s == -254
}

// weight is what one tracked interface or script adds: a positive weight
// while up, a negative one while down; reverse negates the weight, the
// condition stays (keepalived 2.2.7's weight_multiplier in vrrp_track.c:
// `weight 10 reverse` takes 10 off while the script succeeds). For weight
// 0, where reverse swaps which state is FAULT, see faulty.
func weight(w int, ok, reverse bool) int {
	if (w > 0 && ok) || (w < 0 && !ok) {
		if reverse {
			return -w
		}
		return w
	}
	return 0
}

// effective is base priority plus weights, clamped to [1, 254]; 255 never
// moves (reference §2.5).
func (m *Machine) effective() uint8 {
	base := int(m.cfg.Priority)
	if base == 255 {
		return 255
	}
	total := base
	for i, t := range m.cfg.TrackInterface {
		total += weight(t.Weight, m.ifs[i].up, t.Reverse)
	}
	for i, s := range m.cfg.TrackScript {
		if m.scripts[i].known {
			total += weight(s.Weight, m.scripts[i].ok, s.Reverse)
		}
	}
	for i := range m.cfg.TrackFile {
		if add, fault := m.fileStatus(i); !fault {
			total += add
		}
	}
	return uint8(min(max(total, 1), 254))
}

func (m *Machine) recompute(now time.Time) {
	if p := m.effective(); p != m.effPrio {
		oldSkew := m.Skew()
		m.emit(Action{Kind: ActPriority, Priority: p, Old: m.effPrio})
		m.effPrio = p
		// A running down timer moves by the skew difference (§1.4).
		if m.state == Backup && !m.downAt.IsZero() {
			m.downAt = m.downAt.Add(m.Skew() - oldSkew)
		}
	}
	f := m.faulty()
	switch {
	case f && m.state != Fault && m.state != Stopped && m.state != Init:
		if g := m.group; g != nil {
			for _, o := range g.members {
				if o.state != Fault && o.state != Stopped {
					o.toFault(now)
				}
			}
			g.notify(Fault)
			return
		}
		m.toFault(now)
	case !f && m.state == Fault:
		if g := m.group; g != nil {
			for _, o := range g.members {
				if o.faulty() {
					return // the group stays FAULT until every member is clear
				}
			}
			for _, o := range g.members {
				if o.state == Fault {
					o.leaveFault(now)
				}
			}
			g.notify(Backup)
			return
		}
		m.leaveFault(now)
	}
}

// Group couples the machines of a vrrp_sync_group (reference §2.6): a
// member goes MASTER only when every member wants to, then all do; one
// member's drop to BACKUP or FAULT takes all. Step any member's machine;
// the returned actions may belong to several (Action.From).
type Group struct {
	cfg     *SyncGroup
	members []*Machine
	state   State
	buf     []Action
}

// NewGroup joins the machines into a sync group.
func NewGroup(cfg *SyncGroup, members []*Machine) *Group {
	g := &Group{cfg: cfg, members: members, state: Backup}
	for _, m := range members {
		m.group = g
		m.out = &g.buf
	}
	return g
}

// Name is the group's name.
func (g *Group) Name() string { return g.cfg.Name }

// Config is the group's configuration.
func (g *Group) Config() *SyncGroup { return g.cfg }

// Members are the group's machines.
func (g *Group) Members() []*Machine { return g.members }

// State is the group's state.
func (g *Group) State() State { return g.state }

func (g *Group) allWantMaster() bool {
	for _, o := range g.members {
		if o.state != Master && !(o.state == Backup && o.wantMaster) {
			return false
		}
	}
	return true
}

func (g *Group) notify(s State) {
	if g.state == s {
		return
	}
	g.state = s
	g.buf = append(g.buf, Action{Kind: ActNotify, State: s, Group: g, From: g.members[0]})
}
