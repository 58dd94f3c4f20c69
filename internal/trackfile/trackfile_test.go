package trackfile

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestStrtol(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true}, {"7\n", 7, true}, {"  -3", -3, true}, {"+12abc", 12, true}, {"abc", 0, true},
		{"0x1f", 31, true}, {"010", 8, true}, {"09", 0, true}, {"0x", 0, true}, {"-0x10", -16, true},
		{"99999999999999999999", math.MaxInt64, false}, {"-99999999999999999999", math.MinInt64, false},
	} {
		if got, ok := Strtol(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("Strtol(%q) = %d %v, want %d %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	if v, ok := Read(filepath.Join(dir, "missing")); v != 0 || !ok {
		t.Errorf("a missing file: %d %v, want 0 (keepalived reads 0)", v, ok)
	}
	for _, tc := range []struct {
		text string
		v    int64
		ok   bool
	}{{"5\n", 5, true}, {"", 0, true}, {"2147483648", 2147483648, true}, {"2147483649", 2147483649, false}, {"-2147483649", -2147483649, false}} {
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if v, ok := Read(p); v != tc.v || ok != tc.ok {
			t.Errorf("%q: %d %v, want %d %v", tc.text, v, ok, tc.v, tc.ok)
		}
	}
}
