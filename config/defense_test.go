package config

import (
	"strings"
	"testing"
)

func TestSetDefenseArgs(t *testing.T) {
	c, err := ParseArgs(strings.Fields("--set-defense drop_entry=1 secure_tcp=3 amemthresh=200"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Op != OpSetDefense || !c.Op.Mutates() {
		t.Fatalf("op %v", c.Op)
	}
	old := Defense{DropEntry: 0, DropPacket: 2, SecureTCP: 0, AmemThresh: 1024, AmDropRate: 10}
	if got, want := c.Defense.Apply(old), (Defense{DropEntry: 1, DropPacket: 2, SecureTCP: 3, AmemThresh: 200, AmDropRate: 10}); got != want {
		t.Errorf("applied %+v, want %+v", got, want)
	}
	for _, bad := range []string{
		"--set-defense",
		"--set-defense drop_entry=4",
		"--set-defense drop_entry",
		"--set-defense sloppy_tcp=1",
		"--set-defense am_droprate=0",
		"--set-defense amemthresh=-1",
		"--set-defense drop_entry=1 drop_entry=2",
		"--set-defense drop_entry=1 -t 10.0.0.1:80",
	} {
		if _, err := ParseArgs(strings.Fields(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	l, err := ParseArgs(strings.Fields("-L --defense"))
	if err != nil || !l.List.Defense {
		t.Fatalf("-L --defense: %+v %v", l.List, err)
	}
	for _, bad := range []string{"-L --defense --timeout", "-L --defense -c", "-L --defense --stats", "-A -t 10.0.0.1:80 --defense"} {
		if _, err := ParseArgs(strings.Fields(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
