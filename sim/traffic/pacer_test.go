package traffic

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/sim/spec"
)

// offsets are the first n tick times of a pacer for traffic "web" at 10/s,
// as offsets from T0, with a caller that always keeps up (now = the
// previous tick).
func offsets(t *testing.T, j spec.Jitter, seed int64, n int) []time.Duration {
	t.Helper()
	t0 := time.Unix(1000, 0)
	b := &base{t: spec.Traffic{Name: "web", Jitter: j}, t0: t0, seed: seed, rate: 10}
	p := b.newPacer(0)
	now := t0
	var out []time.Duration
	for range n {
		due := p.due(now)
		require.False(t, due.Before(now), "tick %v before now %v", due.Sub(t0), now.Sub(t0))
		out = append(out, due.Sub(t0))
		now = due
	}
	return out
}

func TestPacerNoneIsExactSteps(t *testing.T) {
	got := offsets(t, spec.JitterNone, 1, 50)
	for k, o := range got {
		assert.Equal(t, time.Duration(k)*100*time.Millisecond, o)
	}
}

func TestPacerJitterIsSeeded(t *testing.T) {
	for _, j := range []spec.Jitter{spec.JitterUniform, spec.JitterPoisson} {
		a, b := offsets(t, j, 7, 200), offsets(t, j, 7, 200)
		assert.Equal(t, a, b, "%s: the same seed must give the same request times", j)
		assert.NotEqual(t, a, offsets(t, j, 8, 200), "%s: another seed, other times", j)
		// Not phase-locked: hardly any tick lands on a 1/rate step.
		onStep := 0
		for _, o := range a {
			if o%(100*time.Millisecond) == 0 {
				onStep++
			}
		}
		assert.LessOrEqual(t, onStep, 1, "%s: %d ticks on exact steps", j, onStep)
	}
}

func TestPacerUniformOnePerSlot(t *testing.T) {
	for k, o := range offsets(t, spec.JitterUniform, 3, 500) {
		slot := time.Duration(k) * 100 * time.Millisecond
		assert.True(t, o >= slot && o < slot+100*time.Millisecond, "tick %d at %v, outside its slot", k, o)
	}
}

func TestPacerPoissonMeanRate(t *testing.T) {
	const n = 5000
	got := offsets(t, spec.JitterPoisson, 5, n)
	mean := got[n-1].Seconds() / n
	// The mean gap of 5000 exponential draws is within 5% of 100 ms
	// (4σ is 5.7%; the draws are fixed by the seed, so this never flakes).
	assert.InDelta(t, 0.1, mean, 0.005, "mean gap %.4fs", mean)
	var sq float64
	prev := time.Duration(0)
	for _, o := range got {
		g := (o - prev).Seconds() - mean
		sq += g * g
		prev = o
	}
	// Exponential: standard deviation equals the mean.
	assert.InDelta(t, mean, math.Sqrt(sq/n), 0.01)
}

func TestJitterDefaultsByAPIVersion(t *testing.T) {
	assert.Equal(t, spec.JitterPoisson, spec.JitterFor(spec.APIVersion))
	assert.Equal(t, spec.JitterNone, spec.JitterFor(spec.APIVersionV1Alpha1))
	assert.Equal(t, spec.JitterNone, spec.JitterFor(""), "no apiVersion: v1alpha1, fixed steps")
}

// A caller that falls behind loses the ticks it missed, and the later
// ticks keep the offsets they would have had.
func TestPacerPoissonDropsMissedTicksKeepsOffsets(t *testing.T) {
	all := offsets(t, spec.JitterPoisson, 9, 100)
	t0 := time.Unix(1000, 0)
	b := &base{t: spec.Traffic{Name: "web", Jitter: spec.JitterPoisson}, t0: t0, seed: 9, rate: 10}
	p := b.newPacer(0)
	// The generator starts 2 s late.
	due := p.due(t0.Add(2 * time.Second))
	assert.GreaterOrEqual(t, due.Sub(t0), 2*time.Second-100*time.Millisecond)
	assert.Contains(t, all, due.Sub(t0), "a late start keeps the seed's offsets")
}
