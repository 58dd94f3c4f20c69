package observe

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// MasterSpan is a stretch during which one sender advertised a VRID on a
// segment: VRRP's MASTER as the wire shows it.
type MasterSpan struct {
	Segment  string
	VRID     int
	Sender   string // node, else source address
	From, To time.Duration
	Priority int  // of its first advert in the span
	Resigned bool // ended by a priority-0 advert
}

// MasterSpans turns adverts into spans: from a sender's first advert to
// its last plus one advert interval (what the advert promises), cut at
// end; a silence longer than three intervals (a backup's master-down
// time) starts a new span, a priority-0 advert (a master resigning) ends
// one. Sorted by segment, VRID, sender, time.
func MasterSpans(recs []VRRPRecord, end time.Duration) []MasterSpan {
	type key struct {
		seg    string
		vrid   int
		sender string
	}
	open := map[key]*MasterSpan{}
	last := map[key]time.Duration{}
	interval := map[key]time.Duration{}
	var out []MasterSpan
	for _, r := range recs {
		if r.Kind != RecAdvert {
			continue
		}
		k := key{r.Segment, r.VRID, senderName(r.Node, r.Src)}
		at := r.At()
		iv := time.Second
		if d, err := time.ParseDuration(r.Interval); err == nil && d > 0 {
			iv = d
		}
		prio := 0
		if r.Priority != nil {
			prio = *r.Priority
		}
		if s := open[k]; s != nil && at-last[k] > 3*interval[k] {
			out = append(out, *s)
			delete(open, k)
		}
		interval[k], last[k] = iv, at
		if prio == 0 {
			if s := open[k]; s != nil {
				s.To, s.Resigned = at, true
				out = append(out, *s)
				delete(open, k)
			}
			continue
		}
		s := open[k]
		if s == nil {
			s = &MasterSpan{Segment: r.Segment, VRID: r.VRID, Sender: k.sender, From: at, Priority: prio}
			open[k] = s
		}
		s.To = at + iv
		if end > 0 && s.To > end {
			s.To = max(end, at)
		}
	}
	for _, s := range open {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b MasterSpan) int {
		return cmp.Or(strings.Compare(a.Segment, b.Segment), cmp.Compare(a.VRID, b.VRID),
			strings.Compare(a.Sender, b.Sender), cmp.Compare(a.From, b.From))
	})
	return out
}
