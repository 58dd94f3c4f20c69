package report

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"lvslab/sim/observe"
)

// BandRow is one row of the timeline's state bands: who was MASTER of a
// VRID (one row per sender), or who answered ARP for a VIP.
type BandRow struct {
	Label string
	Spans []BandSpan
}

// BandSpan is one stretch of a row.
type BandSpan struct {
	From, To time.Duration
	Who      string // the node (its colour), or "a, b" for several
	Split    bool   // several holders at once
	Note     string // for the tooltip
}

// VRRPBands turns the VRRP observer's records into rows: per segment and
// VRID, one row per sender of adverts, a band from its first advert of a
// run to its last plus one interval (a gap of more than three intervals,
// the master-down time, ends a run; so does a priority-0 advert, a
// master resigning); then per probed VIP the hardware addresses that
// answered, several at once drawn as a split brain.
func VRRPBands(recs []observe.VRRPRecord, end time.Duration) []BandRow {
	var rows []BandRow
	for _, m := range observe.MasterSpans(recs, end) {
		label := fmt.Sprintf("%s VRID %d: %s", m.Segment, m.VRID, m.Sender)
		if len(rows) == 0 || rows[len(rows)-1].Label != label {
			rows = append(rows, BandRow{Label: label})
		}
		note := fmt.Sprintf("MASTER, priority %d", m.Priority)
		if m.Resigned {
			note += ", resigned (priority 0)"
		}
		rows[len(rows)-1].Spans = append(rows[len(rows)-1].Spans, BandSpan{From: m.From, To: m.To, Who: m.Sender, Note: note})
	}
	probes := map[string][]observe.VRRPRecord{}
	var vips []string
	for _, r := range recs {
		if r.Kind == observe.RecProbe {
			if _, ok := probes[r.VIP]; !ok {
				vips = append(vips, r.VIP)
			}
			probes[r.VIP] = append(probes[r.VIP], r)
		}
	}
	for _, vip := range vips {
		row := BandRow{Label: "ARP for " + vip}
		var cur *BandSpan
		for _, r := range probes[vip] {
			who := strings.Join(r.Holders, ", ")
			at := r.At()
			if cur != nil && cur.Who != who {
				cur.To = at
				if cur.Who != "" {
					row.Spans = append(row.Spans, *cur)
				}
				cur = nil
			}
			if cur == nil {
				cur = &BandSpan{From: at, Who: who, Split: len(r.Holders) > 1}
				cur.Note = "answered by " + who
				if cur.Split {
					cur.Note += ": split brain"
				}
			}
			cur.To = at + 200*time.Millisecond
		}
		if cur != nil && cur.Who != "" {
			row.Spans = append(row.Spans, *cur)
		}
		rows = append(rows, row)
	}
	return rows
}

// bandsHeight is the room the band rows take below the panels.
func bandsHeight(rows []BandRow) int {
	if len(rows) == 0 {
		return 0
	}
	return 32 + 20*len(rows)
}

// drawBands draws the rows from y top across the plot area [x(0), x(xmax)].
func drawBands(w *bytes.Buffer, rows []BandRow, top float64, x func(float64) float64, xmax float64, labelX float64) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" fill="#555555">VRRP, read off the wire: who sent adverts (MASTER) per VRID, and who answered ARP for each probed VIP (red: several at once)</text>`+"\n", x(0), top+12)
	for i, row := range rows {
		y := top + 24 + float64(i)*20
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", x(0), y+7, x(xmax), y+7)
		for _, s := range row.Spans {
			x0, x1 := x(min(s.From.Seconds(), xmax)), x(min(s.To.Seconds(), xmax))
			color, stroke := backendColor(firstName(s.Who)), backendColor(firstName(s.Who))
			if s.Split {
				color, stroke = errorColor, "#7f0000"
			}
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="14" fill="%s" fill-opacity="0.75" stroke="%s"><title>%s from %s to %s: %s</title></rect>`+"\n",
				x0, y, max(x1-x0, 1), color, stroke, esc(row.Label), s.From.Round(time.Millisecond), s.To.Round(time.Millisecond), esc(s.Note))
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="11">%s</text>`+"\n", labelX, y+11, esc(row.Label))
	}
}

func firstName(who string) string {
	name, _, _ := strings.Cut(who, ",")
	return name
}

// vrrpMarkdown is the summary's VRRP section: each MASTER stretch and each
// change of a VIP's holders, from the bands.
func vrrpMarkdown(rows []BandRow) string {
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## VRRP\n\n")
	fmt.Fprintf(&b, "Read off the wire by the VRRP observer (%s): adverts per VRID and sender, ARP probes of each `vip:` address.\n\n", link(observe.VRRPFile, observe.VRRPFile))
	b.WriteString("| row | from | to | |\n|---|---:|---:|---|\n")
	for _, row := range rows {
		for _, s := range row.Spans {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(row.Label), s.From.Round(time.Millisecond), s.To.Round(time.Millisecond), cell(s.Note))
		}
		if len(row.Spans) == 0 {
			fmt.Fprintf(&b, "| %s | | | never |\n", cell(row.Label))
		}
	}
	b.WriteString("\n")
	return b.String()
}
