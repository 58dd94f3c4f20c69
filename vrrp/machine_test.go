package vrrp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// The state machine against the reference's rules (keepalived-vrrp.md §1.4,
// §1.5, §2.3–2.6), on a fake clock.

var t0 = time.Unix(1_000_000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

func cfg(mod func(*Config)) *Config {
	c := &Config{Name: "VI_1", Interface: "eth0", VRID: 51, VirtualIPAddress: []VIP{{Prefix: vip}}}
	if mod != nil {
		mod(c)
	}
	if err := c.Normalize(); err != nil {
		panic(err)
	}
	return c
}

func newM(mod func(*Config)) *Machine { return NewMachine(cfg(mod), addrA) }

func kinds(acts []Action) []ActionKind {
	out := make([]ActionKind, len(acts))
	for i, a := range acts {
		out[i] = a.Kind
	}
	return out
}

func wantKinds(t *testing.T, what string, acts []Action, want ...ActionKind) {
	t.Helper()
	if got := kinds(acts); !slices.Equal(got, want) {
		t.Errorf("%s: actions %v, want %v", what, got, want)
	}
}

func adv(now time.Duration, prio uint8, src netip.Addr) Event {
	return Event{Kind: EvAdvert, Now: at(now), Priority: prio, Src: src, Interval: time.Second}
}

var becomeMaster = []ActionKind{ActSendAdvert, ActAddAddresses, ActGARP, ActNotify}

func TestDownTimer(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want time.Duration
	}{
		// reference §1.4, measured table.
		{"v2 prio 150 adv 1", func(c *Config) { c.Priority = 150 }, 3*time.Second + 106*time.Second/256},
		{"v2 prio 100 adv 1", func(c *Config) { c.Priority = 100 }, 3*time.Second + 156*time.Second/256},
		{"v2 state MASTER prio 100 waits like BACKUP", func(c *Config) { c.Priority = 100; c.InitialState = Master }, 3*time.Second + 156*time.Second/256},
		{"v3 prio 200 adv 0.5", func(c *Config) { c.Version = 3; c.Priority = 200; c.AdvInt = 500 * time.Millisecond }, 1500*time.Millisecond + 56*500*time.Millisecond/256},
		{"v3 prio 254 adv 1", func(c *Config) { c.Version = 3; c.Priority = 254 }, 3*time.Second + 2*time.Second/256},
		{"down_timer_adverts 5", func(c *Config) { c.DownTimerAdverts = 5 }, 5*time.Second + 156*time.Second/256},
	} {
		m := newM(tc.mod)
		wantKinds(t, tc.name+" start", m.Step(Event{Kind: EvStart, Now: t0}), ActNotify)
		if m.State() != Backup {
			t.Errorf("%s: state %v after start", tc.name, m.State())
		}
		if got := m.Deadline().Sub(t0); got != tc.want {
			t.Errorf("%s: down timer %v, want %v", tc.name, got, tc.want)
		}
		if acts := m.Step(Event{Kind: EvTimer, Now: at(tc.want - time.Millisecond)}); len(acts) != 0 || m.State() != Backup {
			t.Errorf("%s: early timer acted: %v", tc.name, kinds(acts))
		}
		wantKinds(t, tc.name+" expiry", m.Step(Event{Kind: EvTimer, Now: at(tc.want)}), becomeMaster...)
		if m.State() != Master {
			t.Errorf("%s: not master at expiry", tc.name)
		}
	}
}

func TestOwnerStartsMaster(t *testing.T) {
	m := newM(func(c *Config) { c.InitialState = Master }) // no priority: 255
	if m.Priority() != 255 {
		t.Fatalf("state MASTER without priority: %d, want 255", m.Priority())
	}
	wantKinds(t, "owner start", m.Step(Event{Kind: EvStart, Now: t0}), append([]ActionKind{ActNotify}, becomeMaster...)...)
	if m.State() != Master {
		t.Fatal("owner not master at once")
	}
	if m.Config().NoPreempt {
		t.Error("nopreempt kept on an owner")
	}
}

func started(mod func(*Config)) *Machine {
	m := newM(mod)
	m.Step(Event{Kind: EvStart, Now: t0})
	return m
}

func master(mod func(*Config)) *Machine {
	m := started(mod)
	m.Step(Event{Kind: EvTimer, Now: m.Deadline()})
	return m
}

func TestBackupAdverts(t *testing.T) {
	// Priority 0: take over after the skew.
	m := started(func(c *Config) { c.Priority = 100 })
	m.Step(adv(time.Second, 0, addrB))
	if got := m.Deadline().Sub(at(time.Second)); got != 156*time.Second/256 {
		t.Errorf("after priority 0: down in %v, want skew 0.609 s", got)
	}

	// Higher or equal priority: down timer restarts.
	m = started(func(c *Config) { c.Priority = 100 })
	m.Step(adv(2*time.Second, 150, addrB))
	if got := m.Deadline().Sub(at(2 * time.Second)); got != m.DownInterval() {
		t.Errorf("after a higher advert: down in %v, want %v", got, m.DownInterval())
	}

	// Lower priority while preempting: discarded, timer keeps running.
	m = started(func(c *Config) { c.Priority = 150 })
	d := m.Deadline()
	wantKinds(t, "lower advert", m.Step(adv(time.Second, 100, addrB)), ActDiscardLower)
	if m.Deadline() != d {
		t.Error("lower advert moved the down timer")
	}

	// nopreempt: lower priority is a valid master.
	m = started(func(c *Config) { c.Priority = 150; c.NoPreempt = true })
	wantKinds(t, "nopreempt lower advert", m.Step(adv(time.Second, 100, addrB)))
	if m.Deadline() != at(time.Second).Add(m.DownInterval()) {
		t.Error("nopreempt: lower advert did not restart the timer")
	}

	// preempt_delay 3 s: valid for 3 s after the first lower advert.
	m = started(func(c *Config) { c.Priority = 150; c.PreemptDelay = 3 * time.Second })
	for s := 1; s <= 3; s++ {
		wantKinds(t, "within preempt_delay", m.Step(adv(time.Duration(s)*time.Second, 100, addrB)))
	}
	wantKinds(t, "after preempt_delay", m.Step(adv(4*time.Second, 100, addrB)), ActDiscardLower)
	if got := m.Deadline(); got != at(3*time.Second).Add(m.DownInterval()) {
		t.Errorf("preempt_delay: takeover at %v, want last accepted + down interval", got.Sub(t0))
	}

	// v3: a backup adopts the master's interval.
	m = started(func(c *Config) { c.Version = 3; c.Priority = 100 })
	ev := adv(time.Second, 200, addrB)
	ev.Interval = 200 * time.Millisecond
	m.Step(ev)
	if m.MasterAdvInt() != 200*time.Millisecond {
		t.Errorf("v3 master interval %v, want learned 200ms", m.MasterAdvInt())
	}
	if got := m.Deadline().Sub(at(time.Second)); got != 600*time.Millisecond+156*200*time.Millisecond/256 {
		t.Errorf("v3 down interval %v", got)
	}
}

func TestMasterAdverts(t *testing.T) {
	m := master(func(c *Config) { c.Priority = 100 })
	now := m.Deadline().Add(-time.Millisecond).Sub(t0)
	// Priority 0 from a stopping peer: advert at once.
	acts := m.Step(adv(now, 0, addrB))
	wantKinds(t, "priority 0", acts, ActSendAdvert)

	// Higher priority: BACKUP at once, no priority-0 advert.
	acts = m.Step(adv(now, 150, addrB))
	wantKinds(t, "higher", acts, ActRemoveAddresses, ActNotify)
	if m.State() != Backup || acts[1].State != Backup {
		t.Errorf("higher priority: state %v", m.State())
	}

	// Equal priority: the higher address wins.
	m = master(func(c *Config) { c.Priority = 100 })
	wantKinds(t, "equal from higher IP", m.Step(adv(now, 100, addrB)), ActRemoveAddresses, ActNotify)
	m = NewMachine(cfg(func(c *Config) { c.Priority = 100 }), addrB)
	m.Step(Event{Kind: EvStart, Now: t0})
	m.Step(Event{Kind: EvTimer, Now: m.Deadline()})
	wantKinds(t, "equal from lower IP", m.Step(adv(now, 100, addrA)), ActForceElection, ActSendAdvert, ActGARP)

	// Lower priority: keepalived forces a new election (advert + GARPs,
	// again after garp_lower_prio_delay).
	m = master(func(c *Config) { c.Priority = 150; c.GarpLowerPrioRepeat = 2; c.GarpLowerPrioDelay = 2 * time.Second })
	start := m.Deadline()
	acts = m.Step(Event{Kind: EvAdvert, Now: start, Priority: 100, Src: addrB})
	wantKinds(t, "lower", acts, ActForceElection, ActSendAdvert, ActGARP)
	if acts[2].Repeat != 2 {
		t.Errorf("lower-priority GARP repeat %d, want 2", acts[2].Repeat)
	}
	m = master(func(c *Config) { c.Priority = 150; c.LowerPrioNoAdvert = true })
	wantKinds(t, "lower_prio_no_advert", m.Step(adv(now, 100, addrB)), ActForceElection)

	// higher_prio_send_advert: one advert at our priority first.
	m = master(func(c *Config) { c.Priority = 100; c.HigherPrioSendAdvert = true })
	wantKinds(t, "higher_prio_send_advert", m.Step(adv(now, 150, addrB)), ActSendAdvert, ActRemoveAddresses, ActNotify)
}

func TestMasterTimersAndGARP(t *testing.T) {
	m := started(func(c *Config) {
		c.Priority = 100
		c.GarpMasterDelay = 5 * time.Second
		c.GarpMasterRepeat = 3
		c.GarpMasterRefresh = 2500 * time.Millisecond
	})
	up := m.Deadline()
	acts := m.Step(Event{Kind: EvTimer, Now: up})
	if acts[2].Kind != ActGARP || acts[2].Repeat != 3 {
		t.Fatalf("first GARP batch: %+v", acts[2])
	}
	var garps []time.Duration
	adverts := 0
	for now := up; now.Before(up.Add(6 * time.Second)); {
		now = m.Deadline()
		for _, a := range m.Step(Event{Kind: EvTimer, Now: now}) {
			switch a.Kind {
			case ActSendAdvert:
				adverts++
			case ActGARP:
				garps = append(garps, now.Sub(up))
			}
		}
	}
	// Refresh checked at advert times: 2.5 s rounds up to 3 s, then 6 s
	// (issue #1214); the second batch at garp_master_delay.
	want := []time.Duration{3 * time.Second, 5 * time.Second, 6 * time.Second}
	if !slices.Equal(garps, want) {
		t.Errorf("GARPs at %v, want %v", garps, want)
	}
	if adverts != 6 {
		t.Errorf("%d adverts in 6 s at advert_int 1, want 6", adverts)
	}
}

func TestShutdown(t *testing.T) {
	m := master(nil)
	acts := m.Step(Event{Kind: EvShutdown, Now: at(10 * time.Second)})
	wantKinds(t, "master shutdown", acts, ActSendAdvert, ActRemoveAddresses, ActNotify)
	if acts[0].Priority != 0 || acts[2].State != Stopped {
		t.Errorf("shutdown: %+v", acts)
	}
	m = started(nil)
	wantKinds(t, "backup shutdown", m.Step(Event{Kind: EvShutdown, Now: at(time.Second)}), ActNotify)
	if !m.Deadline().IsZero() {
		t.Error("timer left after shutdown")
	}
}

func TestFault(t *testing.T) {
	// Primary interface down: FAULT (MASTER sends priority 0 first).
	m := master(nil)
	acts := m.Step(Event{Kind: EvInterface, Now: at(5 * time.Second), Name: "eth0", Up: false})
	wantKinds(t, "primary down", acts, ActSendAdvert, ActRemoveAddresses, ActNotify)
	if m.State() != Fault || acts[0].Priority != 0 {
		t.Fatalf("primary down: %v %+v", m.State(), acts)
	}
	if len(m.Step(adv(6*time.Second, 100, addrB))) != 0 || m.State() != Fault {
		t.Error("FAULT processed an advert")
	}
	acts = m.Step(Event{Kind: EvInterface, Now: at(7 * time.Second), Name: "eth0", Up: true})
	wantKinds(t, "primary up", acts, ActNotify)
	if m.State() != Backup || m.Deadline() != at(7*time.Second).Add(m.DownInterval()) {
		t.Errorf("leaving FAULT: %v, down at %v", m.State(), m.Deadline().Sub(t0))
	}

	// dont_track_primary.
	m = started(func(c *Config) { c.DontTrackPrimary = true })
	m.Step(Event{Kind: EvInterface, Now: at(time.Second), Name: "eth0", Up: false})
	if m.State() != Backup {
		t.Error("dont_track_primary: FAULT on the primary")
	}

	// track_interface weight 0 down: FAULT; weighted: priority only.
	m = started(func(c *Config) {
		c.TrackInterface = []TrackInterface{{Name: "eth1"}, {Name: "eth2", Weight: -30}, {Name: "eth3", Weight: 20}}
	})
	if m.Priority() != 120 {
		t.Errorf("priority with eth3 up (+20): %d", m.Priority())
	}
	m.Step(Event{Kind: EvInterface, Now: at(time.Second), Name: "eth2", Up: false})
	if m.State() != Backup || m.Priority() != 90 {
		t.Errorf("eth2 down (-30): %v %d, want BACKUP 90", m.State(), m.Priority())
	}
	m.Step(Event{Kind: EvInterface, Now: at(time.Second), Name: "eth1", Up: false})
	if m.State() != Fault {
		t.Errorf("eth1 (weight 0) down: %v", m.State())
	}
}

func TestTrackScriptPriority(t *testing.T) {
	m := started(func(c *Config) {
		c.Priority = 100
		c.TrackScript = []TrackScript{
			{Name: "up", Weight: 10},
			{Name: "down", Weight: -20, Fall: 2, Rise: 2},
			{Name: "must", InitFail: true},
		}
	})
	// init_fail on an unweighted script: FAULT at start.
	if m.State() != Fault {
		t.Fatalf("init_fail weight 0: %v", m.State())
	}
	// A weighted script that has not reported yet moves nothing
	// (keepalived's SCRIPT_INIT_STATE_INIT).
	if m.Priority() != 100 {
		t.Fatalf("before any result: priority %d, want the base 100", m.Priority())
	}
	m.Step(Event{Kind: EvScript, Now: at(time.Second), Name: "must", Up: true})
	acts := m.Step(Event{Kind: EvScript, Now: at(time.Second), Name: "up", Up: true})
	if m.State() != Backup || m.Priority() != 110 {
		t.Fatalf("script ok: %v %d, want BACKUP 110", m.State(), m.Priority())
	}
	if !slices.ContainsFunc(acts, func(a Action) bool { return a.Kind == ActPriority && a.Old == 100 && a.Priority == 110 }) {
		t.Errorf("no ActPriority 100 -> 110 in %+v", acts)
	}
	d := m.Deadline()
	// fall 2: one failure changes nothing, the second subtracts 20.
	m.Step(Event{Kind: EvScript, Now: at(2 * time.Second), Name: "down", Up: false})
	if m.Priority() != 110 {
		t.Errorf("one failure with fall 2: %d", m.Priority())
	}
	m.Step(Event{Kind: EvScript, Now: at(3 * time.Second), Name: "down", Up: false})
	if m.Priority() != 90 {
		t.Errorf("after fall 2: %d, want 90", m.Priority())
	}
	// The running down timer moved by the skew difference (§1.4).
	if got := m.Deadline().Sub(d); got != 20*time.Second/256 {
		t.Errorf("down timer moved %v, want 20/256 s", got)
	}

	// Clamping to [1, 254]; 255 never moves.
	for _, tc := range []struct {
		base   uint8
		weight int
		up     bool
		want   uint8
	}{{250, 100, true, 254}, {10, -100, false, 1}, {255, 0, true, 255}} {
		m := started(func(c *Config) {
			c.Priority = tc.base
			c.TrackScript = []TrackScript{{Name: "s", Weight: tc.weight}}
		})
		m.Step(Event{Kind: EvScript, Now: at(time.Second), Name: "s", Up: tc.up})
		if m.Priority() != tc.want {
			t.Errorf("base %d weight %d: %d, want %d", tc.base, tc.weight, m.Priority(), tc.want)
		}
	}
}

func TestSyncGroup(t *testing.T) {
	a := NewMachine(cfg(func(c *Config) { c.Name = "VI_1"; c.Priority = 100 }), addrA)
	b := NewMachine(cfg(func(c *Config) {
		c.Name = "VI_2"
		c.VRID = 52
		c.Interface = "eth1"
		c.Priority = 100
		c.AdvInt = 2 * time.Second
	}), addrA)
	g := NewGroup(&SyncGroup{Name: "G1", Members: []string{"VI_1", "VI_2"}}, []*Machine{a, b})
	a.Step(Event{Kind: EvStart, Now: t0})
	b.Step(Event{Kind: EvStart, Now: t0})
	// a's timer fires first: held in BACKUP until b wants MASTER too.
	if acts := a.Step(Event{Kind: EvTimer, Now: a.Deadline()}); len(acts) != 0 || a.State() != Backup {
		t.Fatalf("member went master alone: %v", kinds(acts))
	}
	acts := b.Step(Event{Kind: EvTimer, Now: b.Deadline()})
	if a.State() != Master || b.State() != Master || g.State() != Master {
		t.Fatalf("group did not go master together: %v %v", a.State(), b.State())
	}
	last := acts[len(acts)-1]
	if last.Kind != ActNotify || last.Group != g || last.State != Master {
		t.Errorf("no group notify: %+v", last)
	}
	// One member sees a higher priority: all go BACKUP.
	b.Step(adv(20*time.Second, 200, addrB))
	if a.State() != Backup || b.State() != Backup {
		t.Errorf("higher advert on one member: %v %v", a.State(), b.State())
	}
	// One member faults: all FAULT, and stay so until every member clears.
	a.Step(Event{Kind: EvInterface, Now: at(21 * time.Second), Name: "eth0", Up: false})
	if a.State() != Fault || b.State() != Fault || g.State() != Fault {
		t.Errorf("member fault: %v %v", a.State(), b.State())
	}
	b.Step(Event{Kind: EvInterface, Now: at(22 * time.Second), Name: "eth1", Up: false})
	a.Step(Event{Kind: EvInterface, Now: at(23 * time.Second), Name: "eth0", Up: true})
	if a.State() != Fault {
		t.Error("group left FAULT while a member is still faulty")
	}
	b.Step(Event{Kind: EvInterface, Now: at(24 * time.Second), Name: "eth1", Up: true})
	if a.State() != Backup || b.State() != Backup {
		t.Errorf("after all faults cleared: %v %v", a.State(), b.State())
	}
	// Shutdown stops every member.
	a.Step(Event{Kind: EvTimer, Now: a.Deadline()})
	b.Step(Event{Kind: EvTimer, Now: b.Deadline()})
	acts = a.Step(Event{Kind: EvShutdown, Now: at(40 * time.Second)})
	if a.State() != Stopped || b.State() != Stopped {
		t.Errorf("group shutdown: %v %v", a.State(), b.State())
	}
	prio0 := 0
	for _, x := range acts {
		if x.Kind == ActSendAdvert && x.Priority == 0 {
			prio0++
		}
	}
	if prio0 != 2 {
		t.Errorf("group shutdown sent %d priority-0 adverts, want one per member", prio0)
	}
}

// TestResume: a reload carries the state over (keepalived's
// restore_vrrp_state and vrrp_init_state): a MASTER stays MASTER with no
// notify, no priority 0 and its next advert due at once; a BACKUP stays
// BACKUP with a fresh down timer; a script result carries by name; a
// tracked link now down takes the instance to FAULT; a FAULT instance
// starts afresh.
func TestResume(t *testing.T) {
	now := at(10 * time.Second)
	old := started(func(c *Config) {
		c.Priority = 100
		c.TrackScript = []TrackScript{{Name: "s", Weight: -30}}
	})
	old.Step(Event{Kind: EvTimer, Now: at(4 * time.Second)})
	old.Step(Event{Kind: EvScript, Now: at(5 * time.Second), Name: "s", Up: false})
	if old.State() != Master || old.Priority() != 70 {
		t.Fatalf("setup: %v %d", old.State(), old.Priority())
	}
	m := newM(func(c *Config) {
		c.Priority = 120
		c.AdvInt = 2 * time.Second
		c.TrackScript = []TrackScript{{Name: "s", Weight: -30}}
	})
	acts := m.Resume(old, now, nil)
	wantKinds(t, "master resumed", acts)
	if m.State() != Master || m.Priority() != 90 || !m.Deadline().Equal(now) {
		t.Errorf("master resumed: %v priority %d deadline %v, want MASTER 90 (120-30, the failed script carried) advert due now", m.State(), m.Priority(), m.Deadline().Sub(now))
	}
	acts = m.Step(Event{Kind: EvTimer, Now: now})
	if len(acts) != 1 || acts[0].Kind != ActSendAdvert || acts[0].Priority != 90 || !m.Deadline().Equal(now.Add(2*time.Second)) {
		t.Errorf("first advert after resume: %+v, next at +%v", acts, m.Deadline().Sub(now))
	}

	b := started(nil)
	m = newM(func(c *Config) { c.Priority = 200 })
	wantKinds(t, "backup resumed", m.Resume(b, now, nil))
	if m.State() != Backup || !m.Deadline().Equal(now.Add(m.DownInterval())) {
		t.Errorf("backup resumed: %v deadline +%v", m.State(), m.Deadline().Sub(now))
	}

	m = newM(func(c *Config) { c.TrackInterface = []TrackInterface{{Name: "eth1"}} })
	wantKinds(t, "master resumed with eth1 down", m.Resume(old, now, map[string]bool{"eth1": true}), ActRemoveAddresses, ActNotify)
	if m.State() != Fault {
		t.Errorf("tracked link down at reload: %v, want FAULT", m.State())
	}
	again := newM(nil)
	wantKinds(t, "fault resumed", again.Resume(m, now, nil), ActNotify)
	if again.State() != Backup {
		t.Errorf("fault resumed with the link up: %v, want BACKUP (init)", again.State())
	}
}

// TestTrackFile: a track_file's number × weight moves the priority
// (clamped per file to [-254, 253], the priority to [1, 254]); -254 and,
// with weight 0, any non-zero number are FAULT (zero with reverse).
func TestTrackFile(t *testing.T) {
	m := newM(func(c *Config) {
		c.Priority = 100
		c.TrackFile = []TrackFile{{Name: "w", Weight: 5}, {Name: "z", Weight: 0}, {Name: "r", Weight: 0, Reverse: true}}
	})
	m.SetFile("r", 1) // read before the start: no action, no FAULT
	m.Step(Event{Kind: EvStart, Now: t0})
	if m.State() != Backup || m.Priority() != 100 {
		t.Fatalf("start: %v %d", m.State(), m.Priority())
	}
	acts := m.Step(Event{Kind: EvFile, Now: at(time.Second), Name: "w", Value: 4})
	if m.Priority() != 120 || !slices.ContainsFunc(acts, func(a Action) bool { return a.Kind == ActPriority && a.Old == 100 && a.Priority == 120 }) {
		t.Errorf("w=4: priority %d, actions %+v", m.Priority(), acts)
	}
	m.Step(Event{Kind: EvFile, Now: at(2 * time.Second), Name: "w", Value: 1000})
	if m.Priority() != 254 {
		t.Errorf("w=1000 (253 added): %d, want 254", m.Priority())
	}
	m.Step(Event{Kind: EvFile, Now: at(3 * time.Second), Name: "w", Value: -50})
	if m.State() != Backup || m.Priority() != 1 {
		t.Errorf("w=-50 (-250 added): %v %d, want BACKUP 1", m.State(), m.Priority())
	}
	m.Step(Event{Kind: EvFile, Now: at(3 * time.Second), Name: "w", Value: -60})
	if m.State() != Fault {
		t.Errorf("w=-60 (-300, clamped to -254): %v, want FAULT", m.State())
	}
	m.Step(Event{Kind: EvFile, Now: at(4 * time.Second), Name: "w", Value: -10})
	if m.State() != Backup || m.Priority() != 50 {
		t.Errorf("w=-10: %v %d, want BACKUP 50", m.State(), m.Priority())
	}
	m.Step(Event{Kind: EvFile, Now: at(5 * time.Second), Name: "z", Value: 3})
	if m.State() != Fault {
		t.Errorf("z (weight 0) = 3: %v, want FAULT", m.State())
	}
	m.Step(Event{Kind: EvFile, Now: at(6 * time.Second), Name: "z", Value: 0})
	m.Step(Event{Kind: EvFile, Now: at(7 * time.Second), Name: "r", Value: 0})
	if m.State() != Fault {
		t.Errorf("r (weight 0 reverse) = 0: %v, want FAULT", m.State())
	}
}

// TestWeightReverse: reverse negates a weight and keeps its condition
// (keepalived 2.2.7's weight_multiplier, checked against keepalived in
// cmd/lvskeepalived TestVRRPScriptLogInterop): `weight 10 reverse` takes 10
// off while the script succeeds, `weight -10 reverse` adds 10 while it
// fails; on an interface alike.
func TestWeightReverse(t *testing.T) {
	for _, tc := range []struct {
		w    int
		ok   bool
		want uint8
	}{{10, true, 90}, {10, false, 100}, {-10, false, 110}, {-10, true, 100}} {
		m := started(func(c *Config) {
			c.Priority = 100
			c.TrackScript = []TrackScript{{Name: "s", Weight: tc.w, Reverse: true}}
		})
		m.Step(Event{Kind: EvScript, Now: at(time.Second), Name: "s", Up: tc.ok})
		if m.Priority() != tc.want {
			t.Errorf("script weight %d reverse, ok %v: %d, want %d", tc.w, tc.ok, m.Priority(), tc.want)
		}
		m = started(func(c *Config) {
			c.Priority = 100
			c.TrackInterface = []TrackInterface{{Name: "eth1", Weight: tc.w, Reverse: true}}
		})
		m.Step(Event{Kind: EvInterface, Now: at(time.Second), Name: "eth1", Up: tc.ok})
		if m.Priority() != tc.want {
			t.Errorf("interface weight %d reverse, up %v: %d, want %d", tc.w, tc.ok, m.Priority(), tc.want)
		}
	}
}
