// Package testenv is the one gate for tests that need something of the
// machine: root, network namespaces, a Debian tool, the shared reference
// documents. On a developer's laptop a test that cannot run skips with its
// reason; where the environment promises everything (CI=true, which .ci/run
// sets, or LVSLAB_REQUIRE_NETNS=1) the same reason fails the test instead, so
// an integration test can never pass by not running.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Strict reports whether missing prerequisites fail tests instead of
// skipping them: under CI=true or LVSLAB_REQUIRE_NETNS=1.
func Strict() bool {
	return truthy(os.Getenv("CI")) || truthy(os.Getenv("LVSLAB_REQUIRE_NETNS"))
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// Skip skips t with reason, or fails it when Strict. Use it for every
// "cannot run here" decision, never t.Skip directly.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if Strict() {
		t.Fatalf("cannot run here, and CI=true or LVSLAB_REQUIRE_NETNS=1 requires it: %s", reason)
	}
	t.Skip(reason)
}

// Skipf is Skip with a format.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	Skip(t, fmt.Sprintf(format, args...))
}

// KernelLacks skips t because this kernel lacks a feature the test is
// about, even when Strict. It is not "cannot run here": the project cannot
// install a kernel module or a newer kernel, and the case must be one
// where another test covers the path taken without the feature (the
// userspace TUN decapsulator where there is no ipip module, say). what
// names the feature, why says what covers the case instead; both go in
// the skip message so the two kinds of skip read differently in a log.
//
// Use Skip for everything the project installs or the CI machine has
// (root, namespaces, Debian tools, the go toolchain, shared/ files).
func KernelLacks(t testing.TB, what, why string) {
	t.Helper()
	t.Skipf("not applicable here: this kernel lacks %s (%s)", what, why)
}

// SkipShort skips an integration test in -short mode. That is the caller's
// explicit choice (make unit), so it skips even when Strict.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test skipped in -short mode")
	}
}

// Root requires an effective UID of 0.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}

// Netns requires what namespace integration tests need: not -short, root,
// iproute2's ip.
func Netns(t testing.TB) {
	t.Helper()
	SkipShort(t)
	if why := NetnsUnavailable(); why != "" {
		Skip(t, why)
	}
}

// NetnsUnavailable says why namespace tests cannot run here, or "".
func NetnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "needs root for network namespaces"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs iproute2's ip"
	}
	return ""
}

// Tools requires every named command on PATH (scripts/deps.sh installs them).
func Tools(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		Skipf(t, "needs %s (make deps installs it)", strings.Join(missing, ", "))
	}
}

// Go requires the go toolchain (tests that build the binaries).
func Go(t testing.TB) {
	t.Helper()
	Tools(t, "go")
}

// Scapy is the interpreter that has scapy: Debian's python3-scapy is for
// /usr/bin/python3, which may not be the python3 first on PATH.
const Scapy = "/usr/bin/python3"

// RequireScapy requires python3-scapy for /usr/bin/python3.
func RequireScapy(t testing.TB) {
	t.Helper()
	if err := exec.Command(Scapy, "-c", "import scapy.all").Run(); err != nil {
		Skipf(t, "needs python3-scapy for %s (make deps installs it): %v", Scapy, err)
	}
}

// RepoRoot is the module's root directory, found from this source file so
// it does not depend on the test's working directory.
func RepoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Shared is the project's shared/ directory (DESIGN.md, reference/, seeds/),
// which sits beside the repository: ../shared from its root.
func Shared() string {
	if d := os.Getenv("LVSLAB_SHARED"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "..", "shared")
}

// SharedFile returns the path of a file under shared/, or skips (fails when
// Strict) when it is not there.
func SharedFile(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Shared(), rel)
	if _, err := os.Stat(p); err != nil {
		Skipf(t, "needs %s beside the repository (or LVSLAB_SHARED): %v", filepath.Join("shared", rel), err)
	}
	return p
}
