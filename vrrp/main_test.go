package vrrp

import (
	"flag"
	"os"
	"testing"
)

// TestMain lets the namespace tests, which mostly wait on protocol timers,
// run side by side beyond GOMAXPROCS (2 here); an explicit -parallel wins.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "12")
	}
	os.Exit(m.Run())
}
