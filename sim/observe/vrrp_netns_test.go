package observe

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/internal/testenv"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// TestVRRPObserverInLab watches a real keepalived pair (Debian's
// keepalived, testdata/vrrp2.yaml): lb1's adverts with its priority, its
// gratuitous ARPs, lb1 answering the probes of the VIP; then lb1's
// keepalived is stopped (SIGTERM: priority 0, lb2 takes over) and the
// records show lb2's adverts and lb2 answering, with events for both
// changes.
func TestVRRPObserverInLab(t *testing.T) {
	testenv.Netns(t)
	testenv.Tools(t, "keepalived")
	b, err := os.ReadFile("testdata/vrrp2.yaml")
	require.NoError(t, err)
	src := strings.ReplaceAll(string(b), "@NAME@", fmt.Sprintf("t%d-vobs", os.Getpid())) +
		"expect:\n  - {name: one, during: [0s, 60s], vip: {address: 10.82.0.50, holders: 1}}\n"
	s, err := spec.Parse([]byte(src), "testdata/vrrp2.yaml", spec.Options{})
	require.NoError(t, err)
	lab, err := topo.Build(context.Background(), s, topo.Options{StateDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, lab.Close(ctx))
	})
	st := NewVRRP(s, VRRPOptions{})
	require.NoError(t, st.Start(context.Background(), lab, time.Now()))
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			require.NoError(t, st.Stop(context.Background()))
		}
	}
	t.Cleanup(stop)

	// The first master is elected after 3 advert intervals and the skew.
	const within = 10 * time.Second
	waitFor := func(what string, ok func([]VRRPRecord) bool) {
		t.Helper()
		if !assert.Eventually(t, func() bool { return ok(st.Records()) }, within, 50*time.Millisecond, what) {
			t.Fatalf("records: %+v", st.Records())
		}
	}
	holdersAre := func(want ...string) func([]VRRPRecord) bool {
		return func(recs []VRRPRecord) bool {
			for i := len(recs) - 1; i >= 0; i-- {
				if recs[i].Kind == RecProbe {
					return slices.Equal(recs[i].Holders, want)
				}
			}
			return false
		}
	}
	advertFrom := func(node string, prio int) func([]VRRPRecord) bool {
		return func(recs []VRRPRecord) bool {
			return slices.ContainsFunc(recs, func(r VRRPRecord) bool {
				return r.Kind == RecAdvert && r.Node == node && r.Priority != nil && *r.Priority == prio
			})
		}
	}
	waitFor("lb1 advertises with priority 100", advertFrom("lb1", 100))
	waitFor("lb1 answers the VIP's probes", holdersAre("lb1"))
	waitFor("lb1's gratuitous ARPs", func(recs []VRRPRecord) bool {
		return slices.ContainsFunc(recs, func(r VRRPRecord) bool {
			return r.Kind == RecARP && r.Gratuitous && r.Src == "10.82.0.50" && r.Node == "lb1"
		})
	})
	adv := st.Records()[slices.IndexFunc(st.Records(), func(r VRRPRecord) bool { return r.Kind == RecAdvert })]
	assert.Equal(t, VRRPRecord{T: adv.T, Segment: "lan", Kind: RecAdvert, VRID: 82, Version: 2, Priority: adv.Priority,
		Interval: "1s", Auth: "none", Addrs: []string{"10.82.0.50"}, Src: "10.82.0.11", MAC: adv.MAC, Node: "lb1", at: adv.at}, adv)

	require.NoError(t, lab.Process("lb1", "keepalived").Signal(15))
	waitFor("lb1 resigns with priority 0", advertFrom("lb1", 0))
	waitFor("lb2 advertises with priority 90", advertFrom("lb2", 90))
	waitFor("lb2 answers the VIP's probes", holdersAre("lb2"))
	stop()

	var details []string
	for _, e := range st.Events() {
		details = append(details, e.Detail)
	}
	assert.Contains(t, details, "lan VRID 82: lb1 sends adverts (priority 100)")
	assert.Contains(t, details, "lan VRID 82: lb2 sends adverts (priority 90), after lb1")
	assert.Contains(t, details, "10.82.0.50 answered by lb2")
	// vrrp.jsonl holds what Records returns.
	file, err := LoadVRRP(lab.RunDir())
	require.NoError(t, err)
	assert.Len(t, file, len(st.Records()))
}
