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
// timeline's events as dashed vertical lines with their names. Hand-written SVG: no dependency,
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
				s = get("(backend unknown)", false)
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
	out := make([]Series, 0, len(byName))
	for _, s := range byName {
		out = append(out, *s)
	}
	// Backends by name, then unknown, errors last (drawn on top).
	rank := func(s Series) int {
		switch {
		case s.Errors:
			return 2
		case strings.HasPrefix(s.Name, "("):
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

// TimelineSVGWith draws the picture with the bands opts chooses.
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
	nb := len(edges) - 1
	lo := func(k int) float64 { return edges[k].Seconds() }
	hi := func(k int) float64 { return edges[k+1].Seconds() }

	const (
		width, height = 960, 440
		left, right   = 64, 190
		top, bottom   = 48, 56
	)
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	xmax := edges[nb].Seconds()
	// Stacked: the top of the last band is all requests of the bucket.
	ymax := 0.0
	for k := range nb {
		total := 0
		for _, s := range series {
			total += s.Counts[k]
		}
		ymax = max(ymax, float64(total)/(hi(k)-lo(k)))
	}
	ystep := niceStep(max(ymax, 1), 5)
	ymax = math.Ceil(max(ymax, 1)/ystep) * ystep
	xstep := niceStep(xmax, 10)
	x := func(t float64) float64 { return float64(left) + t/xmax*pw }
	y := func(v float64) float64 { return float64(top) + ph - v/ymax*ph }

	var w bytes.Buffer
	fmt.Fprintf(&w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&w, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&w, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", left, esc(title))
	fmt.Fprintf(&w, `<text x="%d" y="37" fill="#555555">requests per second per %s, in %s buckets (edges on the events); failed requests in red; stacked; dashed lines: timeline events</text>`+"\n", left, bandWord(opts), b)

	// Grid and axes.
	w.WriteString(`<g stroke="#e5e5e5" stroke-width="1">` + "\n")
	for v := ystep; v <= ymax+ystep/2; v += ystep {
		fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", x(0), y(v), x(xmax), y(v))
	}
	w.WriteString("</g>\n")
	w.WriteString(`<g stroke="#333333" stroke-width="1">` + "\n")
	fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", x(0), y(0), x(xmax), y(0))
	fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", x(0), y(0), x(0), y(ymax))
	w.WriteString("</g>\n")
	w.WriteString(`<g fill="#333333">` + "\n")
	for v := 0.0; v <= ymax+ystep/2; v += ystep {
		fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x(0)-6, y(v)+4, num(v))
	}
	for t := 0.0; t <= xmax+xstep/1000; t += xstep {
		fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>`+"\n", x(t), y(0), x(t), y(0)+4)
		fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(t), y(0)+17, num(t))
	}
	fmt.Fprintf(&w, `<text x="%.1f" y="%d" text-anchor="middle">time since traffic start (s)</text>`+"\n", x(xmax/2), height-14)
	fmt.Fprintf(&w, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">requests/s</text>`+"\n", y(ymax/2))
	w.WriteString("</g>\n")

	// Series: stacked bands, one step per bucket, backends from the
	// bottom and failures on top, so equal shares do not hide each other
	// and the outline is the total rate.
	if len(series) == 0 {
		fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#777777">no requests recorded</text>`+"\n", x(xmax/2), y(ymax/2))
	}
	base := make([]float64, nb)
	for i, s := range series {
		var top, bottom []string
		for k, c := range s.Counts {
			vlo := base[k]
			vhi := vlo + float64(c)/(hi(k)-lo(k))
			base[k] = vhi
			x0, x1 := x(lo(k)), x(hi(k))
			top = append(top, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", x0, y(vhi), x1, y(vhi)))
			bottom = append(bottom, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", x1, y(vlo), x0, y(vlo)))
		}
		slices.Reverse(bottom)
		color := seriesColor(s, i)
		fmt.Fprintf(&w, `<polygon fill="%s" fill-opacity="0.7" stroke="%s" stroke-width="1" stroke-linejoin="round" points="%s %s"><title>%s: %d requests</title></polygon>`+"\n",
			color, color, strings.Join(top, " "), strings.Join(bottom, " "), esc(s.Name), s.Total)
	}

	// Events.
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
		fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.2" stroke-dasharray="5 4"/>`, x(t), y(ymax), x(t), y(0), color)
		fmt.Fprintf(&w, `<text transform="translate(%.1f %.1f) rotate(90)" fill="%s">%s</text></g>`+"\n", x(t)+3, y(ymax)+4, color, esc(e.Name))
	}
	w.WriteString("</g>\n")

	// Legend.
	lx := float64(width-right) + 16
	fmt.Fprintf(&w, `<text x="%.1f" y="%d" font-weight="bold">%s (requests)</text>`+"\n", lx, top+4, bandWord(opts))
	for i, s := range series {
		ly := float64(top+24) + float64(i)*20
		fmt.Fprintf(&w, `<rect x="%.1f" y="%.1f" width="22" height="10" fill="%s" fill-opacity="0.7" stroke="%s"/>`, lx, ly-9, seriesColor(s, i), seriesColor(s, i))
		fmt.Fprintf(&w, `<text x="%.1f" y="%.1f">%s (%d)</text>`+"\n", lx+28, ly, esc(s.Name), s.Total)
	}
	w.WriteString("</svg>\n")
	return w.Bytes()
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
	case strings.Contains(s.Name, "(backend unknown)"):
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
