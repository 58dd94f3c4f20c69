package spec

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Files written for v1alpha1 keep their exact 1/rate request steps (they
// stay reproducible as written); v1alpha2 files get Poisson arrivals unless
// they say otherwise.
func TestJitterDefault(t *testing.T) {
	traffic := `
traffic:
  - {name: web, from: a, kind: http, target: "http://10.0.0.1/"}
  - {name: fixed, from: a, kind: http, target: "http://10.0.0.1/", jitter: none}
  - {name: slots, from: a, kind: http, target: "http://10.0.0.1/", jitter: uniform}
`
	for _, tc := range []struct {
		version string
		want    Jitter
	}{
		{"", JitterNone},
		{"apiVersion: lvslab/v1alpha1\n", JitterNone},
		{"apiVersion: lvslab/v1alpha2\n", JitterPoisson},
	} {
		s, err := Parse([]byte(tc.version+base+traffic), "j.yaml", Options{})
		require.NoError(t, err, tc.version)
		assert.Equal(t, tc.want, s.Traffic[0].Jitter, "%q: default", tc.version)
		assert.Equal(t, JitterNone, s.Traffic[1].Jitter)
		assert.Equal(t, JitterUniform, s.Traffic[2].Jitter)
	}
	_, err := Parse([]byte(base+"traffic:\n  - {name: web, from: a, kind: http, target: \"http://10.0.0.1/\", jitter: gauss}\n"), "j.yaml", Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "j.yaml:11:")
	assert.Contains(t, err.Error(), "none, uniform, poisson")
	_, err = Parse([]byte("apiVersion: lvslab/v2\n"+base), "j.yaml", Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lvslab/v1alpha2 and lvslab/v1alpha1")
}
