package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"lvslab/sim/runner"
)

// TrafficDir is the report subdirectory holding each traffic's request
// records, so lvslab explain can pick a request after the run.
const TrafficDir = "traffic"

// Record is a runner.Request with its absolute start time (At is relative
// to the start of traffic, which the report directory does not otherwise
// keep).
type Record struct {
	runner.Request
	Start time.Time `json:"start"`
}

// RecordsFile is where a traffic's records are saved.
func RecordsFile(dir, traffic string) string {
	return filepath.Join(dir, TrafficDir, traffic+".jsonl")
}

// Records turns a run's requests into records.
func Records(t0 time.Time, reqs []runner.Request) []Record {
	out := make([]Record, len(reqs))
	for i, r := range reqs {
		out[i] = Record{Request: r, Start: t0.Add(r.At)}
	}
	return out
}

// SaveRecords writes one JSON object per line.
func SaveRecords(dir, traffic string, recs []Record) error {
	path := RecordsFile(dir, traffic)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("records of %s: %w", traffic, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("records of %s: %w", traffic, err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			f.Close()
			return fmt.Errorf("records of %s: %w", traffic, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("records of %s: %w", traffic, err)
	}
	return f.Close()
}

// LoadRecords reads what SaveRecords wrote; the error wraps
// os.ErrNotExist when the traffic has no records.
func LoadRecords(dir, traffic string) ([]Record, error) {
	path := RecordsFile(dir, traffic)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return out, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}
