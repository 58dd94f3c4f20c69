package traffic

import (
	"slices"
	"time"

	"lvslab/sim/runner"
)

// TimeSeries is one traffic's request rates in fixed buckets, what the
// report's timeline picture draws (one stacked band per backend, errors
// on top or below, faults marked from runner.Run.Events).
//
// Bucket k covers [k*Bucket, (k+1)*Bucket) after T0 and counts the
// requests that started in it (runner.Request.At), so a fault at 10s and
// the errors of requests sent from 10s line up even when those requests
// time out later. Values are per second: count / Bucket. A break is
// counted where it was seen (At+Latency), as Stats.Broken does.
type TimeSeries struct {
	Bucket time.Duration
	// Backends are the backends with successful requests, in name order.
	// "" (first when present) stands for successes whose backend the
	// generator cannot tell: tcp-connect, icmp, a tcp-stream not (yet)
	// greeted by a tcp-sink.
	Backends []string
	// OK[i][k] is successful requests per second answered by Backends[i]
	// in bucket k.
	OK [][]float64
	// Errors[k] is failed requests per second in bucket k.
	Errors []float64
	// Broken[k] counts streams that broke in bucket k (tcp-stream).
	Broken []int
}

// Len is the number of buckets.
func (s TimeSeries) Len() int { return len(s.Errors) }

// Start is the start of bucket k since T0.
func (s TimeSeries) Start(k int) time.Duration { return time.Duration(k) * s.Bucket }

// Total is successful requests per second over every backend in bucket k.
func (s TimeSeries) Total(k int) float64 {
	t := 0.0
	for i := range s.OK {
		t += s.OK[i][k]
	}
	return t
}

// Series buckets one traffic's records. The buckets cover [0, end) (end 0:
// up to the last record) and, past end, any later record (the digest
// check that ends a stream comes after the run's nominal end). A bucket
// of 0 or less means 1s.
func Series(reqs []runner.Request, bucket, end time.Duration) TimeSeries {
	if bucket <= 0 {
		bucket = time.Second
	}
	n := int((end + bucket - 1) / bucket)
	seen := map[string]bool{}
	for _, r := range reqs {
		if r.At < 0 {
			continue
		}
		n = max(n, int(r.At/bucket)+1)
		if r.Broken {
			n = max(n, int((r.At+r.Latency)/bucket)+1)
		}
		if r.Err == "" {
			seen[r.Backend] = true
		}
	}
	s := TimeSeries{Bucket: bucket, Errors: make([]float64, n), Broken: make([]int, n)}
	for b := range seen {
		s.Backends = append(s.Backends, b)
	}
	slices.Sort(s.Backends)
	row := map[string]int{}
	for i, b := range s.Backends {
		row[b] = i
		s.OK = append(s.OK, make([]float64, n))
	}
	per := 1 / bucket.Seconds()
	for _, r := range reqs {
		if r.At < 0 {
			continue
		}
		k := int(r.At / bucket)
		if r.Broken {
			s.Broken[int((r.At+r.Latency)/bucket)]++
		}
		if r.Err != "" {
			s.Errors[k] += per
			continue
		}
		s.OK[row[r.Backend]][k] += per
	}
	return s
}
