package traffic

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
)

// evalBackends judges a backends: expectation over the successful
// requests of its traffic entries in the window: only: no other backend
// answered; per_client: each client (source address) met one backend.
func evalBackends(run *runner.Run, e *spec.Expectation) (runner.Outcome, bool) {
	b := e.Backends
	for _, name := range b.Traffic {
		if !recorded(run, name) {
			return runner.Outcome{}, false
		}
	}
	w, fail, ok := windowOf(run, e)
	if !ok {
		return runner.Outcome{}, false
	}
	var want []string
	if len(b.Only) > 0 {
		want = append(want, "only "+strings.Join(b.Only, ", ")+" answer")
	}
	if b.PerClient {
		want = append(want, "each client answered by one backend")
	}
	wantText := "want " + strings.Join(want, " and ")
	label := strings.Join(b.Traffic, "+")
	if fail != "" {
		return runner.Outcome{Detail: fmt.Sprintf("%s: %s; %s", label, fail, wantText)}, true
	}

	answered := map[string]int{}
	perClient := map[netip.Addr]map[string]int{}
	clientTraffic := map[netip.Addr]string{}
	ok2, failed := 0, 0
	for _, name := range b.Traffic {
		for _, r := range run.Requests(name) {
			if !w.Contains(r.At) {
				continue
			}
			if r.Err != "" {
				failed++
				continue
			}
			ok2++
			answered[r.Backend]++
			c := r.Local.Addr()
			if perClient[c] == nil {
				perClient[c] = map[string]int{}
				clientTraffic[c] = name
			}
			perClient[c][r.Backend]++
		}
	}
	if ok2 == 0 {
		d := fmt.Sprintf("%s: no successful request %s (%d failed), so no backend was judged", label, w.Label, failed)
		if e.AllowEmpty {
			return runner.Outcome{Held: true, Detail: d + "; allowed by allow_empty; " + wantText}, true
		}
		return runner.Outcome{Detail: d + " (allow_empty: true accepts that); " + wantText}, true
	}
	held := true
	var parts []string
	if len(b.Only) > 0 {
		var others []string
		for _, be := range sortedKeys(answered) {
			if !slices.Contains(b.Only, be) {
				others = append(others, fmt.Sprintf("%s %d", backendName(be), answered[be]))
			}
		}
		if len(others) > 0 {
			held = false
			parts = append(parts, "also answered: "+strings.Join(others, ", "))
		}
	}
	if b.PerClient {
		clients := make([]netip.Addr, 0, len(perClient))
		for c := range perClient {
			clients = append(clients, c)
		}
		slices.SortFunc(clients, netip.Addr.Compare)
		var split, one []string
		for _, c := range clients {
			m := perClient[c]
			var bs []string
			for _, be := range sortedKeys(m) {
				bs = append(bs, fmt.Sprintf("%s %d", backendName(be), m[be]))
			}
			who := clientName(c, clientTraffic[c])
			if len(m) > 1 {
				split = append(split, who+" → "+strings.Join(bs, ", "))
			} else {
				one = append(one, who+" → "+strings.Join(bs, ", "))
			}
		}
		if len(split) > 0 {
			held = false
			parts = append(parts, "split across backends: "+strings.Join(split, "; "))
		}
		if len(one) > 0 {
			parts = append(parts, "one backend each: "+strings.Join(one, "; "))
		}
	}
	detail := fmt.Sprintf("%s: %d successful requests %s answered by %s", label, ok2, w.Label, backendList(Stats{Backends: answered}))
	if len(parts) > 0 {
		detail += "; " + strings.Join(parts, "; ")
	}
	if failed > 0 {
		detail += fmt.Sprintf("; %d failed requests not counted", failed)
	}
	return runner.Outcome{Held: held, Detail: detail + "; " + wantText}, true
}

// clientName is "10.0.0.2 (web-a)", or the traffic's name when the
// records carry no address.
func clientName(a netip.Addr, traffic string) string {
	if !a.IsValid() {
		return traffic
	}
	return a.String() + " (" + traffic + ")"
}

// bytesWhy is "1.0 MiB acknowledged in 16 chunks; 1 digest check": a
// stream's successful records are its chunks and, with verify:, the
// digest check at its end, which carries no bytes and is no chunk.
func bytesWhy(reqs []runner.Request, w Window, st Stats) string {
	chunks := 0
	for _, r := range reqs {
		if w.Contains(r.At) && r.Err == "" && r.Bytes > 0 {
			chunks++
		}
	}
	s := fmt.Sprintf("%s acknowledged in %d chunk%s", fmtBytes(st.Bytes), chunks, plural(chunks))
	if other := st.Successes - chunks; other > 0 {
		s += fmt.Sprintf("; %d digest check%s", other, plural(other))
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
