package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// StatsFile is where the director statistics are sampled during a run (by
// another stage): one JSON object per line with time, node, service, dest
// and counters (conns, inpkts, outpkts, inbytes, outbytes, ...).
const StatsFile = "lvsd-stats.jsonl"

// StatsRow is the last sample of one node/service/destination.
type StatsRow struct {
	Node, Service, Dest string
	First, Last         string // time of the first and last sample
	Samples             int
	Values              map[string]json.Number
}

// Stats is what the statistics file holds.
type Stats struct {
	Rows    []StatsRow
	Columns []string // counter names, in a readable order
	Bad     int      // lines that were not JSON objects
}

// counters in the order ipvsadm --stats and --rate print them.
var counterOrder = []string{"conns", "activeconns", "inactconns", "inpkts", "outpkts", "inbytes", "outbytes", "cps", "inpps", "outpps", "inbps", "outbps", "weight"}

// ReadStats reads a statistics file; the error wraps os.ErrNotExist when
// none was written.
func ReadStats(path string) (*Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st := &Stats{}
	rows := map[string]*StatsRow{}
	var order []string
	cols := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			st.Bad++
			continue
		}
		str := func(k string) string {
			if v, ok := m[k]; ok && v != nil {
				return fmt.Sprint(v)
			}
			return ""
		}
		key := str("node") + "\x00" + str("service") + "\x00" + str("dest")
		r, ok := rows[key]
		if !ok {
			r = &StatsRow{Node: str("node"), Service: str("service"), Dest: str("dest"), First: str("time")}
			rows[key] = r
			order = append(order, key)
		}
		r.Samples++
		r.Last = str("time")
		// Counters are cumulative: the last sample is the total.
		r.Values = map[string]json.Number{}
		for k, v := range m {
			if n, ok := v.(json.Number); ok && k != "time" {
				r.Values[k] = n
				cols[k] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	for _, k := range order {
		st.Rows = append(st.Rows, *rows[k])
	}
	for _, c := range counterOrder {
		if cols[c] {
			st.Columns = append(st.Columns, c)
			delete(cols, c)
		}
	}
	var rest []string
	for c := range cols {
		rest = append(rest, c)
	}
	slices.Sort(rest)
	st.Columns = append(st.Columns, rest...)
	return st, nil
}

// markdown renders the last sample of every row as a table.
func (st *Stats) markdown() string {
	var b strings.Builder
	b.WriteString("| node | service | destination | " + strings.Join(st.Columns, " | ") + " | samples |\n")
	b.WriteString("|---|---|---|" + strings.Repeat("---:|", len(st.Columns)) + "---:|\n")
	for _, r := range st.Rows {
		dest := r.Dest
		if dest == "" {
			dest = "(service total)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |", cell(r.Node), cell(r.Service), cell(dest))
		for _, c := range st.Columns {
			fmt.Fprintf(&b, " %s |", r.Values[c])
		}
		fmt.Fprintf(&b, " %d |\n", r.Samples)
	}
	return b.String()
}
