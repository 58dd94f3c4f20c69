package report

import (
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"lvslab/sim/runner"
)

// TimelineOptions choose how the timeline splits requests into bands.
type TimelineOptions struct {
	// ByClient makes one band per client and backend ("web-a → rs2"), the
	// client being the traffic entry: a persistence scenario shows each
	// client staying on its backend instead of one mixed stack.
	ByClient bool
	// Streams names the traffic whose records are chunks of long-lived
	// connections (tcp-stream): a chunk is bytes, not a request, so their
	// successful records are drawn as bytes per second per backend in a
	// panel of their own; their failures stay with the failed requests.
	Streams map[string]bool
	// Bands are state rows drawn under the panels on the same time axis
	// (VRRPBands: who was MASTER when, who answered ARP for a VIP).
	Bands []BandRow
}

// inBytes tells that a record belongs in the bytes panel.
func (o TimelineOptions) inBytes(traffic string, r runner.Request) bool {
	return o.Streams[traffic] && r.Err == ""
}

// seriesKey names the band a request belongs to.
func (o TimelineOptions) seriesKey(traffic string, r runner.Request) (string, bool) {
	name := r.Backend
	errs := false
	switch {
	case r.Err != "":
		name, errs = "errors", true
	case r.Backend == "":
		name = unknownBackend
	}
	if o.ByClient && len(name) > 0 {
		name = traffic + " → " + name
	}
	return name, errs
}

// gridEdges are 0, b, 2b, ... up to span, with the grid edge nearest to
// each event moved onto it (when it is within half a bucket), so that a
// bucket never mixes requests from before and after a fault: its edge is
// the event's dashed line.
func gridEdges(span, b time.Duration, events []runner.Event) []time.Duration {
	n := max(1, int((span+b-1)/b))
	edges := make([]time.Duration, n+1)
	for k := range edges {
		edges[k] = time.Duration(k) * b
	}
	for _, e := range events {
		if e.At <= 0 || e.At >= edges[n] {
			continue
		}
		k := int((e.At + b/2) / b)
		if k <= 0 || k >= n {
			continue
		}
		edges[k] = e.At
	}
	// Two events snapped to neighbouring edges may have crossed.
	slices.Sort(edges)
	return slices.Compact(edges)
}

// bucketize counts requests per band between consecutive edges; a request
// at or after the last edge opens one more bucket of the last one's width.
// Stream chunks (opts.Streams) are left to streamBuckets.
func bucketize(traffic map[string][]runner.Request, edges []time.Duration, opts TimelineOptions) ([]Series, []time.Duration) {
	return bucketizeBy(traffic, edges, func(name string, r runner.Request) (string, bool, int) {
		if opts.inBytes(name, r) {
			return "", false, 0
		}
		key, errs := opts.seriesKey(name, r)
		return key, errs, 1
	})
}

// streamBuckets sums the bytes of stream chunks per band (backend, or
// client and backend) between the edges bucketize returned. A record
// with no bytes (a stream's digest check) adds nothing.
func streamBuckets(traffic map[string][]runner.Request, edges []time.Duration, opts TimelineOptions) []Series {
	s, _ := bucketizeBy(traffic, edges, func(name string, r runner.Request) (string, bool, int) {
		if !opts.inBytes(name, r) || r.Bytes <= 0 {
			return "", false, 0
		}
		key, _ := opts.seriesKey(name, r)
		return key, false, int(r.Bytes)
	})
	return s
}

// bucketizeBy adds each record's weight to the band pick names (weight 0:
// not drawn).
func bucketizeBy(traffic map[string][]runner.Request, edges []time.Duration, pick func(traffic string, r runner.Request) (key string, errs bool, weight int)) ([]Series, []time.Duration) {
	n := len(edges) - 1
	last := edges[n]
	for _, reqs := range traffic {
		for _, r := range reqs {
			if r.At >= last {
				w := edges[n] - edges[n-1]
				for r.At >= last {
					last += w
					edges = append(edges, last)
				}
			}
		}
	}
	n = len(edges) - 1
	byName := map[string]*Series{}
	for name, reqs := range traffic {
		for _, r := range reqs {
			if r.At < 0 {
				continue
			}
			k, _ := slices.BinarySearch(edges, r.At)
			if k == len(edges) || edges[k] != r.At {
				k--
			}
			if k >= n {
				k = n - 1
			}
			key, errs, weight := pick(name, r)
			if weight == 0 {
				continue
			}
			s, ok := byName[key]
			if !ok {
				s = &Series{Name: key, Counts: make([]int, n), Errors: errs}
				byName[key] = s
			}
			s.Counts[k] += weight
			s.Total += weight
		}
	}
	return sortedSeries(byName), edges
}

// backendColor is a colour that depends on the backend's name only, so rs2
// is the same colour in every report: a trailing number picks the palette
// entry (rs1 the first, rs2 the second, ...), other names a hash of the
// name. A by-client band ("web-a → rs2") hashes its whole name, so two
// clients on one backend differ.
func backendColor(name string) string {
	j := len(name)
	if strings.Contains(name, " → ") {
		j = 0 // no trailing-number rule
	}
	for j > 0 && name[j-1] >= '0' && name[j-1] <= '9' {
		j--
	}
	if j > 0 && j < len(name) {
		if n, err := strconv.Atoi(name[j:]); err == nil && n > 0 {
			return palette[(n-1)%len(palette)]
		}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return palette[h.Sum32()%uint32(len(palette))]
}
