package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recTB records what a gate did instead of stopping the test.
type recTB struct {
	testing.TB
	fatal, skip string
}

func (r *recTB) Helper()                   {}
func (r *recTB) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...) }
func (r *recTB) Skip(a ...any)             { r.skip = fmt.Sprint(a...) }
func (r *recTB) Skipf(f string, a ...any)  { r.skip = fmt.Sprintf(f, a...) }

func TestSkipIsStrictUnderCI(t *testing.T) {
	for _, c := range []struct {
		ci, require string
		strict      bool
	}{
		{"", "", false}, {"true", "", true}, {"", "1", true}, {"false", "0", false}, {"TRUE", "", true},
	} {
		t.Setenv("CI", c.ci)
		t.Setenv("LVSLAB_REQUIRE_NETNS", c.require)
		r := &recTB{}
		Skip(r, "needs frobnicator")
		if c.strict {
			if !strings.Contains(r.fatal, "needs frobnicator") || !strings.Contains(r.fatal, "CI=true") {
				t.Errorf("CI=%q REQUIRE=%q: fatal %q, want the reason and why it fails", c.ci, c.require, r.fatal)
			}
		} else if r.fatal != "" || r.skip != "needs frobnicator" {
			t.Errorf("CI=%q REQUIRE=%q: fatal %q skip %q, want a skip with the reason", c.ci, c.require, r.fatal, r.skip)
		}
	}
}

func TestKernelLacksSkipsEvenUnderCI(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recTB{}
	KernelLacks(r, "the ipip module", "TestTUNUserspaceDecap covers it")
	if r.fatal != "" {
		t.Errorf("KernelLacks failed the test under CI: %q", r.fatal)
	}
	if want := "not applicable here: this kernel lacks the ipip module (TestTUNUserspaceDecap covers it)"; r.skip != want {
		t.Errorf("skip %q, want %q", r.skip, want)
	}
}

func TestSharedFindsTheReferenceBesideTheRepo(t *testing.T) {
	t.Setenv("LVSLAB_SHARED", "")
	if !strings.HasSuffix(Shared(), "/shared") {
		t.Errorf("Shared() = %q, want ../shared of the repository", Shared())
	}
	t.Setenv("LVSLAB_SHARED", "/elsewhere")
	if Shared() != "/elsewhere" {
		t.Errorf("Shared() = %q ignores LVSLAB_SHARED", Shared())
	}
}
