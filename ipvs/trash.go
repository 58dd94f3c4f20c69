package ipvs

import (
	"slices"
	"time"

	"lvslab/config"
	"lvslab/sched"
)

// destTrashPeriod is IP_VS_DEST_TRASH_PERIOD (net/netfilter/ipvs/
// ip_vs_ctl.c): how long a deleted real server that nothing references any
// more stays on the trash list, where adding it back revives it.
const destTrashPeriod = int64(120 * time.Second)

// trashedDest is a deleted real server kept because adding it back must
// find it again (ip_vs_trash_get_dest).
type trashedDest struct {
	d *Dest
	// idle is when the destination was first seen unreferenced (0: it is
	// still referenced, or nobody has looked yet). The kernel's trash timer
	// sets dest->idle_start the same way, lazily, every half period.
	idle int64
}

// referenced reports whether connections or persistence templates still
// point at d (the kernel's dest->refcnt > 1): their counters are exactly
// the references the connection table holds.
func (d *Dest) referenced() bool {
	return d.ActiveConns != 0 || d.InactConns != 0 || d.PersistConns != 0
}

// trashDest keeps a deleted destination, as __ip_vs_del_dest puts every
// deleted destination on ipvs->dest_trash: its connections still count on
// it, and an ipvsadm -a of the same address brings it back with them.
func (s *Service) trashDest(d *Dest) {
	t := trashedDest{d: d}
	if !d.referenced() && s.now != nil {
		t.idle = s.now()
	}
	s.trash = append(s.trash, t)
}

// reviveDest is ip_vs_trash_get_dest: a trashed destination with the same
// address and port comes back (and leaves the trash) with its connection
// counters and statistics, so that wlc and friends see the connections it
// still has instead of a fresh zero. nil when there is none.
func (s *Service) reviveDest(id config.DestID) *Dest {
	i := slices.IndexFunc(s.trash, func(t trashedDest) bool { return t.d.cfg.ID() == id })
	if i < 0 {
		return nil
	}
	d := s.trash[i].d
	s.trash = slices.Delete(s.trash, i, i+1)
	d.Flags |= sched.DestAvailable
	return d
}

// purgeTrash is ip_vs_dest_trash_expire: a trashed destination is freed
// once it has been unreferenced for destTrashPeriod. lvsd has no trash
// timer; it runs when a destination is added, the only time the trash is
// read, so a destination may stay longer than in the kernel but never
// shorter.
func (s *Service) purgeTrash(now int64) {
	kept := s.trash[:0]
	for _, t := range s.trash {
		switch {
		case t.d.referenced():
			t.idle = 0
		case t.idle == 0:
			t.idle = now
		case now-t.idle >= destTrashPeriod:
			continue
		}
		kept = append(kept, t)
	}
	clear(s.trash[len(kept):])
	s.trash = kept
}
