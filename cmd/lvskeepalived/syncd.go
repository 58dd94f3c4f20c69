package main

// lvs_sync_daemon: lvsd's connection sync daemon driven from the VRRP
// side as keepalived 2.2.7 drives the kernel's (ipvswrapper.c
// ipvs_syncd_master/ipvs_syncd_backup, called from vrrp.c's state
// changes): the named instance becoming MASTER stops the backup daemon
// and starts the master one; any other state stops the master and starts
// the backup; the stop of the VRRP side stops it. With no instance named,
// both run all the time. The commands are lvsadm's --start-daemon and
// --stop-daemon over lvsd's control socket, sent from a goroutine of
// their own so a slow lvsd never delays an advert, and re-checked against
// lvsd's -L --daemon every syncRecheck (a restarted lvsd gets its daemon
// back).

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"lvslab/config"
	"lvslab/config/keepalived"
	"lvslab/ipvs/ctl"
	"lvslab/vrrp"
)

// syncSetup is the resolved lvs_sync_daemon.
type syncSetup struct {
	// Instance is the vrrp_instance the role follows; "" runs both.
	Instance string
	// Daemon is the settings, State left empty.
	Daemon config.Daemon
}

// convertSync resolves global_defs' lvs_sync_daemon, or the first
// instance's lvs_sync_daemon_interface when there is none (keepalived
// 2.2.7 turns the deprecated keyword into the global one with that
// instance), and checks the instance exists.
func convertSync(cfg *keepalived.Config, fail func(keepalived.Pos, string, ...any)) *syncSetup {
	d := cfg.Global.LVSSyncDaemon
	if d == nil {
		for _, vi := range cfg.VRRP.Instances {
			if vi.LVSSyncDaemonInterface != "" {
				d = &keepalived.SyncDaemon{Pos: vi.Pos, Interface: vi.LVSSyncDaemonInterface, Instance: vi.Name, SyncID: -1}
				break
			}
		}
	}
	if d == nil {
		return nil
	}
	out := &syncSetup{Instance: d.Instance, Daemon: config.Daemon{McastIfn: d.Interface, MaxLen: d.MaxLen,
		Group: d.Group, Port: d.Port, TTL: d.TTL}}
	if d.Group.IsValid() && !d.Group.Is4() {
		fail(d.Pos, "lvs_sync_daemon: group %s: lvsd's sync daemon is IPv4 only", d.Group)
		return nil
	}
	syncID := d.SyncID
	if d.Instance != "" {
		i := slices.IndexFunc(cfg.VRRP.Instances, func(vi *keepalived.VRRPInstance) bool { return vi.Name == d.Instance })
		if i < 0 {
			fail(d.Pos, "lvs_sync_daemon: vrrp instance %s not found", d.Instance)
			return nil
		}
		if syncID < 0 {
			syncID = cfg.VRRP.Instances[i].VRID // keepalived's default: the instance's VRID
		}
	}
	out.Daemon.SyncID = uint8(max(syncID, 0))
	return out
}

// syncRecheck is how often the controller compares lvsd's daemons with
// the role it wants.
const syncRecheck = 2 * time.Second

// syncControl keeps lvsd's sync daemons in the role the VRRP state asks.
type syncControl struct {
	socket string
	setup  syncSetup
	log    *logger

	mu      sync.Mutex
	want    []string // the states that should run: "master", "backup", both, or none
	kick    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	lastErr string // the last failure logged (logf)
}

func newSyncControl(socket string, s syncSetup, log *logger) *syncControl {
	c := &syncControl{socket: socket, setup: s, log: log, kick: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
	// keepalived starts an instance in BACKUP and the backup daemon with
	// it; with no instance named both daemons run.
	c.want = []string{"backup"}
	if s.Instance == "" {
		c.want = []string{"master", "backup"}
	}
	go c.run()
	return c
}

// state is a VRRP instance's new state.
func (c *syncControl) state(instance string, s vrrp.State) {
	if c.setup.Instance == "" || instance != c.setup.Instance {
		return
	}
	want := []string{"backup"}
	switch s {
	case vrrp.Master:
		want = []string{"master"}
	case vrrp.Stopped:
		want = nil
	}
	c.mu.Lock()
	c.want = want
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// stop stops lvsd's daemons (keepalived does at its shutdown) and ends
// the controller.
func (c *syncControl) stop() {
	c.mu.Lock()
	c.want = nil
	c.mu.Unlock()
	close(c.quit)
	<-c.done
}

func (c *syncControl) run() {
	defer close(c.done)
	tick := time.NewTicker(syncRecheck)
	defer tick.Stop()
	for {
		c.apply()
		select {
		case <-c.quit:
			c.apply()
			return
		case <-c.kick:
		case <-tick.C:
		}
	}
}

// apply makes lvsd run exactly the wanted daemons: a running one whose
// settings differ from the configuration's is restarted; a master is
// stopped before a backup starts, as ipvs_syncd_backup does.
func (c *syncControl) apply() {
	c.mu.Lock()
	want := slices.Clone(c.want)
	c.mu.Unlock()
	cl, err := ctl.Dial(c.socket)
	if err != nil {
		c.logf("lvsd: %v", err)
		return
	}
	defer cl.Close()
	r, err := cl.Do(ctl.Request{Command: config.Command{Op: config.OpList, List: config.ListOptions{Daemon: true}}})
	if err != nil {
		c.logf("lvsd: list sync daemons: %v", err)
		return
	}
	running := map[string]ctl.DaemonStatus{}
	for _, d := range r.Daemons {
		running[d.State] = d
	}
	// Stops first (the master before the backup starts), then starts in
	// the order wanted.
	for _, state := range []string{"master", "backup"} {
		d, ok := running[state]
		if !ok || (slices.Contains(want, state) && c.matches(d)) {
			continue
		}
		if err := c.do(cl, config.Command{Op: config.OpStopDaemon, Daemon: config.Daemon{State: state}}); err != nil {
			c.logf("IPVS: stop %s sync daemon: %v", state, err)
			continue
		}
		c.log.printf("IPVS: stopped the %s sync daemon", state)
		delete(running, state)
	}
	for _, state := range want {
		if _, ok := running[state]; ok {
			continue
		}
		d := c.setup.Daemon
		d.State = state
		if err := c.do(cl, config.Command{Op: config.OpStartDaemon, Daemon: d}); err != nil {
			c.logf("IPVS: start %s sync daemon: %v", state, err)
			continue
		}
		c.log.printf("IPVS: started the %s sync daemon (mcast=%s, syncid=%d)", state, d.McastIfn, d.SyncID)
	}
}

// matches says a running daemon has the configuration's settings (the
// unset ones are lvsd's defaults, whatever they are).
func (c *syncControl) matches(d ctl.DaemonStatus) bool {
	s := c.setup.Daemon
	return d.McastIfn == s.McastIfn && d.SyncID == s.SyncID &&
		(s.MaxLen == 0 || int(d.MaxLen) == s.MaxLen) &&
		(s.Group == (netip.Addr{}) || d.Group == s.Group) &&
		(s.Port == 0 || d.Port == s.Port) && (s.TTL == 0 || d.TTL == s.TTL)
}

func (c *syncControl) do(cl *ctl.Client, cmd config.Command) error {
	_, err := cl.Do(ctl.Request{Command: cmd})
	return err
}

// logf logs a failure once per distinct message in a row: an lvsd that
// is down is retried every syncRecheck without filling the log.
func (c *syncControl) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	repeat := msg == c.lastErr
	c.lastErr = msg
	c.mu.Unlock()
	if !repeat {
		c.log.printf("%s", msg)
	}
}
