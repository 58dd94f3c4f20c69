package sched

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewEveryName(t *testing.T) {
	want := strings.Fields("rr wrr lc wlc fo ovf lblc lblcr dh sh mh sed nq twos")
	equalStrings(t, "Names", Names(), want)
	for _, name := range want {
		s, err := New(name, 0)
		if err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		if s.Name() != name {
			t.Fatalf("New(%q).Name() = %q", name, s.Name())
		}
		fs, ok := s.(FlagSetter)
		if !ok {
			t.Fatalf("%s does not implement FlagSetter", name)
		}
		if err := fs.SetFlags(Flag3); err != nil || fs.Flags() != Flag3 {
			t.Fatalf("%s SetFlags(Flag3): %v, flags %#x", name, err, fs.Flags())
		}
		// No destinations: no choice, no panic.
		if d := s.Schedule(&Flow{Now: t0}); d != nil {
			t.Fatalf("%s chose from an empty list", name)
		}
		s.Update(nil)
		if d := s.Schedule(&Flow{Now: t0}); d != nil {
			t.Fatalf("%s chose from an empty list after Update(nil)", name)
		}
	}
	// Names returns a copy.
	Names()[0] = "x"
	if Names()[0] != "rr" {
		t.Fatal("Names exposes package state")
	}
}

func TestNewErrors(t *testing.T) {
	s, err := New("", 0)
	if err != nil || s.Name() != "wlc" {
		t.Fatalf(`New("") = %v, %v; want wlc`, s, err)
	}
	_, err = New("wrrr", 0)
	if !errors.Is(err, ErrUnknownScheduler) || !strings.Contains(err.Error(), `"wrrr"`) {
		t.Fatalf("unknown name: %v", err)
	}
	_, err = New("sh", 0x40)
	if !errors.Is(err, ErrInvalidFlag) {
		t.Fatalf("bad flag bit: %v", err)
	}
	if err := s.(FlagSetter).SetFlags(0x1); !errors.Is(err, ErrInvalidFlag) {
		t.Fatalf("SetFlags(persistent bit): %v", err)
	}
	if _, err := New("twos", 0, WithRand(nil)); err == nil {
		t.Fatal("nil random source accepted")
	}
	if _, err := New("lblc", 0, WithExpiration(0)); err == nil {
		t.Fatal("zero expiration accepted")
	}
	if _, err := New("lblcr", 0, WithExpiration(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestParseFlags(t *testing.T) {
	ok := []struct {
		sched, list string
		want        Flags
	}{
		{"sh", "sh-fallback,sh-port", Flag1 | Flag2},
		{"sh", "sh-port", Flag2},
		{"sh", "sh-port,,sh-fallback", Flag1 | Flag2}, // strtok skips empty items
		{"sh", "flag-3", Flag3},
		{"mh", "mh-fallback", Flag1},
		{"mh", "mh-port,mh-fallback,flag-3", Flag1 | Flag2 | Flag3},
		{"rr", "flag-1,flag-2", Flag1 | Flag2},
		{"", "flag-1", Flag1}, // wlc
	}
	for _, c := range ok {
		got, err := ParseFlags(c.sched, c.list)
		if err != nil || got != c.want {
			t.Errorf("ParseFlags(%q, %q) = %#x, %v; want %#x", c.sched, c.list, got, err, c.want)
		}
	}
	bad := []struct {
		sched, list string
		want        error
	}{
		{"rr", "sh-port", ErrIncompatibleFlag},
		{"mh", "sh-fallback", ErrIncompatibleFlag},
		{"sh", "mh-port", ErrIncompatibleFlag},
		{"", "mh-fallback", ErrIncompatibleFlag},
		{"sh", "sh-ports", ErrInvalidFlag},
		{"sh", "flag-4", ErrInvalidFlag},
		{"sh", "", ErrInvalidFlag},
		{"sh", ",", ErrInvalidFlag},
	}
	for _, c := range bad {
		_, err := ParseFlags(c.sched, c.list)
		if !errors.Is(err, c.want) {
			t.Errorf("ParseFlags(%q, %q) error %v, want %v", c.sched, c.list, err, c.want)
		}
	}
}

// FlagNames is ipvsadm's print_sched_flags: the listing shows
// "sh (sh-fallback,sh-port)".
func TestFlagNames(t *testing.T) {
	cases := []struct {
		sched string
		f     Flags
		want  string
	}{
		{"sh", Flag1 | Flag2, "sh-fallback,sh-port"},
		{"sh", Flag2, "sh-port"},
		{"sh", Flag1 | Flag3, "sh-fallback,flag-3"},
		{"mh", Flag1 | Flag2, "mh-fallback,mh-port"},
		{"rr", Flag1 | Flag2 | Flag3, "flag-1,flag-2,flag-3"},
		{"wlc", Flag2, "flag-2"},
		{"wlc", 0, ""},
	}
	for _, c := range cases {
		if got := FlagNames(c.sched, c.f); got != c.want {
			t.Errorf("FlagNames(%q, %#x) = %q, want %q", c.sched, c.f, got, c.want)
		}
	}
	// Whatever is printed parses back to the same flags (-S output loads
	// with -R).
	for _, name := range Names() {
		for f := Flags(Flag1); f <= FlagMask; f += Flag1 {
			got, err := ParseFlags(name, FlagNames(name, f))
			if err != nil || got != f {
				t.Errorf("%s %#x: printed %q parsed back as %#x, %v", name, f, FlagNames(name, f), got, err)
			}
		}
	}
}
