package topo

import "testing"

// A director's lvsd gets the lab's metrics address unless its flags choose
// one, in any spelling Go's flag package takes.
func TestHasMetricsFlag(t *testing.T) {
	for _, c := range []struct {
		flags []string
		want  bool
	}{
		{nil, false},
		{[]string{"--max-conns", "64"}, false},
		{[]string{"--metrics", "127.0.0.1:9200"}, true},
		{[]string{"-metrics", "127.0.0.1:9200"}, true},
		{[]string{"--metrics=127.0.0.1:9200"}, true},
		{[]string{"--no-arp", "metrics"}, false},
		{[]string{"--metrics-extra"}, false},
	} {
		if got := hasMetricsFlag(c.flags); got != c.want {
			t.Errorf("hasMetricsFlag(%q) = %v, want %v", c.flags, got, c.want)
		}
	}
}
