package nstest

import (
	"strings"
	"testing"
)

func TestVethPing(t *testing.T) {
	Require(t)
	a := New(t, "a")
	b := New(t, "b")
	Veth(t, a, "va", b, "vb", 1500)
	a.Addr("va", "192.0.2.1/24")
	b.Addr("vb", "192.0.2.2/24")
	out := a.Run("ping", "-c", "1", "-W", "2", "192.0.2.2")
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping output: %s", out)
	}
}
