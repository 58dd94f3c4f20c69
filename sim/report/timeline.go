package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"lvslab/sim/runner"
)

// The timeline picture: requests per second per real server over the run,
// one stacked band per backend, failed requests in red on top, the
// timeline's events as dashed vertical lines with their names; below it,
// when the scenario has tcp-stream traffic, the bytes per second those
// streams carried, one stacked band per backend their tcp-sink named. Hand-written SVG: no dependency,
// and a browser shows it as it is.

// Series is one line of the timeline: requests per bucket.
type Series struct {
	Name   string
	Counts []int
	Total  int
	Errors bool // the failed requests
}

// Buckets counts the requests of all traffic per backend (and failures) in
// buckets of width b from 0 to d.
func Buckets(traffic map[string][]runner.Request, d, b time.Duration) []Series {
	n := max(1, int((d+b-1)/b))
	byName := map[string]*Series{}
	get := func(name string, errs bool) *Series {
		s, ok := byName[name]
		if !ok {
			s = &Series{Name: name, Counts: make([]int, n), Errors: errs}
			byName[name] = s
		}
		return s
	}
	for _, reqs := range traffic {
		for _, r := range reqs {
			if r.At < 0 {
				continue
			}
			i := int(r.At / b)
			var s *Series
			switch {
			case r.Err != "":
				s = get("errors", true)
			case r.Backend == "":
				s = get(unknownBackend, false)
			default:
				s = get(r.Backend, false)
			}
			for len(s.Counts) <= i {
				// Started at (or after) the end: a bucket more, for all.
				for _, o := range byName {
					o.Counts = append(o.Counts, 0)
				}
				n++
			}
			s.Counts[i]++
			s.Total++
		}
	}
	return sortedSeries(byName)
}

// unknownBackend names the band of requests whose backend is not known; a
// split band carries it after the client's name.
const unknownBackend = "(backend unknown)"

// sortedSeries lists the bands in drawing order: backends by name, then
// unknown, errors last (drawn on top).
func sortedSeries(byName map[string]*Series) []Series {
	out := make([]Series, 0, len(byName))
	for _, s := range byName {
		out = append(out, *s)
	}
	rank := func(s Series) int {
		switch {
		case s.Errors:
			return 2
		case strings.Contains(s.Name, unknownBackend):
			return 1
		}
		return 0
	}
	slices.SortFunc(out, func(a, b Series) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// bucketFor picks a round bucket width giving at most about 100 buckets.
func bucketFor(d time.Duration) time.Duration {
	for _, b := range []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
	} {
		if d/b <= 100 {
			return b
		}
	}
	return d / 100
}

// niceStep is a 1-2-5 step giving about n ticks over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"}

const (
	errorColor   = "#d62728"
	unknownColor = "#7f7f7f"
)

// TimelineSVG draws the picture. d is how long traffic ran.
func TimelineSVG(title string, d time.Duration, traffic map[string][]runner.Request, events []runner.Event) []byte {
	return TimelineSVGWith(title, d, traffic, events, TimelineOptions{})
}

// TimelineSVGWith draws the picture with the bands opts chooses: a panel
// of requests per second and, when opts.Streams names traffic that sent
// bytes, a panel of stream bytes per second below it, on one time axis.
func TimelineSVGWith(title string, d time.Duration, traffic map[string][]runner.Request, events []runner.Event, opts TimelineOptions) []byte {
	// The extent covers the run and anything recorded after it.
	span := d
	for _, reqs := range traffic {
		for _, r := range reqs {
			span = max(span, r.At)
		}
	}
	for _, e := range events {
		span = max(span, e.At)
	}
	span = max(span, time.Second)
	b := bucketFor(span)
	series, edges := bucketize(traffic, gridEdges(span, b, events), opts)
	streams := streamBuckets(traffic, edges, opts)
	nb := len(edges) - 1

	const (
		width       = 960
		left, right = 64, 190
		top, bottom = 48, 56
		gap         = 60 // between panels: tick labels and the lower one's caption
	)
	var panels []*panel
	if len(series) > 0 || len(streams) == 0 {
		panels = append(panels, &panel{series: series, unit: "requests"})
	}
	if len(streams) > 0 {
		panels = append(panels, &panel{series: streams, unit: "bytes"})
	}
	height := 440
	if len(panels) == 1 {
		panels[0].top, panels[0].ph = top, 336
	} else {
		panels[0].top, panels[0].ph = top, 230
		panels[1].top, panels[1].ph = top+230+gap, 190
		height = top + 230 + gap + 190 + bottom
	}
	bandsTop := float64(height)
	height += bandsHeight(opts.Bands)
	xmax := edges[nb].Seconds()
	pw := float64(width - left - right)
	x := func(t float64) float64 { return float64(left) + t/xmax*pw }
	xstep := niceStep(xmax, 10)

	var w bytes.Buffer
	fmt.Fprintf(&w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&w, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&w, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", left, esc(title))
	what := fmt.Sprintf("requests per second per %s", bandWord(opts))
	if panels[0].unit == "bytes" {
		what = fmt.Sprintf("stream bytes per second per %s", bandWord(opts))
	}
	fmt.Fprintf(&w, `<text x="%d" y="37" fill="#555555">%s, in %s buckets (edges on the events); failed requests in red; stacked; dashed lines: timeline events</text>`+"\n", left, what, b)

	for pi, p := range panels {
		p.scale(edges)
		y := func(v float64) float64 { return p.top + p.ph - v/p.ymax*p.ph }
		if p.unit == "bytes" && pi > 0 {
			fmt.Fprintf(&w, `<text x="%d" y="%.1f" fill="#555555">tcp-stream bytes acknowledged per second per %s (%s); their failures are among the failed requests above</text>`+"\n",
				left, p.top-12, bandWord(opts), esc(strings.Join(streamNames(traffic, opts), ", ")))
		}
		// Grid and axes.
		w.WriteString(`<g stroke="#e5e5e5" stroke-width="1">` + "\n")
		for v := p.ystep; v <= p.ymax+p.ystep/2; v += p.ystep {
			fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", x(0), y(v), x(xmax), y(v))
		}
		w.WriteString("</g>\n")
		w.WriteString(`<g stroke="#333333" stroke-width="1">` + "\n")
		fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", x(0), y(0), x(xmax), y(0))
		fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", x(0), y(0), x(0), y(p.ymax))
		w.WriteString("</g>\n")
		w.WriteString(`<g fill="#333333">` + "\n")
		for v := 0.0; v <= p.ymax+p.ystep/2; v += p.ystep {
			fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x(0)-6, y(v)+4, num(v/p.div))
		}
		for t := 0.0; t <= xmax+xstep/1000; t += xstep {
			fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>`+"\n", x(t), y(0), x(t), y(0)+4)
			fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(t), y(0)+17, num(t))
		}
		if pi == len(panels)-1 {
			fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" text-anchor="middle">time since traffic start (s)</text>`+"\n", x(xmax/2), bandsTop-14)
		}
		fmt.Fprintf(&w, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", y(p.ymax/2), p.axis)
		w.WriteString("</g>\n")

		// Series: stacked bands, one step per bucket, backends from the
		// bottom and failures on top, so equal shares do not hide each
		// other and the outline is the total rate.
		if len(p.series) == 0 {
			fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#777777">no requests recorded</text>`+"\n", x(xmax/2), y(p.ymax/2))
		}
		base := make([]float64, nb)
		for i, s := range p.series {
			var top, bottom []string
			for k, c := range s.Counts {
				vlo := base[k]
				vhi := vlo + float64(c)/(edges[k+1]-edges[k]).Seconds()
				base[k] = vhi
				x0, x1 := x(edges[k].Seconds()), x(edges[k+1].Seconds())
				top = append(top, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", x0, y(vhi), x1, y(vhi)))
				bottom = append(bottom, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", x1, y(vlo), x0, y(vlo)))
			}
			slices.Reverse(bottom)
			color := seriesColor(s, i)
			fmt.Fprintf(&w, `<polygon fill="%s" fill-opacity="0.7" stroke="%s" stroke-width="1" stroke-linejoin="round" points="%s %s"><title>%s: %s</title></polygon>`+"\n",
				color, color, strings.Join(top, " "), strings.Join(bottom, " "), esc(s.Name), p.total(s))
		}

		// Events: the lines cross every panel, the names are written once.
		w.WriteString(`<g font-size="11">` + "\n")
		for _, e := range events {
			t := e.At.Seconds()
			if t < 0 || t > xmax {
				continue
			}
			color := "#444444"
			if strings.HasSuffix(e.Name, ".end") {
				color = "#999999"
			}
			fmt.Fprintf(&w, `<g><title>%s</title>`, esc(strings.TrimSpace(fmt.Sprintf("%s at %s: %s %s", e.Name, e.At.Round(time.Millisecond), e.Kind, e.Detail))))
			fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.2" stroke-dasharray="5 4"/>`, x(t), y(p.ymax), x(t), y(0), color)
			if pi == 0 {
				fmt.Fprintf(&w, `<text transform="translate(%.1f %.1f) rotate(90)" fill="%s">%s</text>`, x(t)+3, y(p.ymax)+4, color, esc(e.Name))
			}
			w.WriteString("</g>\n")
		}
		w.WriteString("</g>\n")

		// Legend.
		lx := float64(width-right) + 16
		fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" font-weight="bold">%s (%s)</text>`+"\n", lx, p.top+4, bandWord(opts), p.unit)
		for i, s := range p.series {
			ly := p.top + 24 + float64(i)*20
			fmt.Fprintf(&w, `<rect x="%.1f" y="%.1f" width="22" height="10" fill="%s" fill-opacity="0.7" stroke="%s"/>`, lx, ly-9, seriesColor(s, i), seriesColor(s, i))
			fmt.Fprintf(&w, `<text x="%.1f" y="%.1f">%s (%s)</text>`+"\n", lx+28, ly, esc(s.Name), p.legendTotal(s))
		}
	}
	drawBands(&w, opts.Bands, bandsTop, x, xmax, float64(width-right)+16)
	w.WriteString("</svg>\n")
	return w.Bytes()
}

// panel is one plot of the timeline: requests/s, or stream bytes/s.
type panel struct {
	series  []Series
	unit    string  // "requests" or "bytes": what Counts count
	top, ph float64 // where it is drawn
	// Set by scale: the y extent and tick step in counts per second, the
	// divisor of the tick labels and the axis title.
	ymax, ystep, div float64
	axis             string
}

// scale fits the y axis to the stacked total (the top of the last band).
func (p *panel) scale(edges []time.Duration) {
	ymax := 0.0
	for k := range len(edges) - 1 {
		total := 0
		for _, s := range p.series {
			total += s.Counts[k]
		}
		ymax = max(ymax, float64(total)/(edges[k+1]-edges[k]).Seconds())
	}
	p.div, p.axis = 1, "requests/s"
	if p.unit == "bytes" {
		// Round steps of the unit the labels are in (KiB/s, MiB/s).
		p.axis = "bytes/s"
		for _, u := range []struct {
			div  float64
			name string
		}{{1 << 30, "GiB/s"}, {1 << 20, "MiB/s"}, {1 << 10, "KiB/s"}} {
			if ymax >= u.div {
				p.div, p.axis = u.div, u.name
				break
			}
		}
	}
	scaled := max(ymax/p.div, 1)
	step := niceStep(scaled, 5)
	p.ystep = step * p.div
	p.ymax = math.Ceil(scaled/step) * step * p.div
}

// total says how much a band carries, for its tooltip.
func (p *panel) total(s Series) string {
	if p.unit == "bytes" {
		return fmt.Sprintf("%s in %d bytes", sizeText(int64(s.Total)), s.Total)
	}
	return fmt.Sprintf("%d requests", s.Total)
}

func (p *panel) legendTotal(s Series) string {
	if p.unit == "bytes" {
		return sizeText(int64(s.Total))
	}
	return fmt.Sprint(s.Total)
}

// sizeText writes a byte count as the judge's details do (traffic's
// fmtBytes), so a legend and summary.md agree: "1.0 MiB".
func sizeText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// streamNames lists the stream traffic in the bytes panel, sorted.
func streamNames(traffic map[string][]runner.Request, opts TimelineOptions) []string {
	var out []string
	for name := range traffic {
		if opts.Streams[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func bandWord(o TimelineOptions) string {
	if o.ByClient {
		return "client → backend"
	}
	return "backend"
}

func seriesColor(s Series, _ int) string {
	switch {
	case s.Errors:
		return errorColor
	case strings.Contains(s.Name, unknownBackend):
		return unknownColor
	}
	return backendColor(s.Name)
}

func num(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
