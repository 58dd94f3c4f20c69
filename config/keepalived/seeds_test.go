package keepalived

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Acceptance 1: every keepalived.conf of the seeds loads as written, and
// each of its problems names a file and a line and carries a hint.
func TestSeedConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../../scenarios/keepalived/*.conf")
	require.NoError(t, err)
	more, _ := filepath.Glob("../../scenarios/keepalived/*/keepalived.conf")
	files = append(files, more...)
	files = append(files, "../../scenarios/keepalived/002-ops-add-rs/taobao.conf")
	require.GreaterOrEqual(t, len(files), 14)
	for _, f := range files {
		cfg := LoadOptions(OSFS{}, f, Options{InterfaceExists: func(n string) bool { return n == "eth0" || n == "eth1" }})
		require.NotEmpty(t, cfg.Files, f)
		for _, d := range cfg.Diags {
			assert.NotEmpty(t, d.Pos.File, "%s: %s", f, d)
			assert.Positive(t, d.Pos.Line, "%s: %s", f, d)
			assert.NotEmpty(t, d.Hint, "%s: %s", f, d)
		}
	}
}
