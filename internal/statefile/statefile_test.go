package statefile

import (
	"os"
	"os/exec"
	"testing"
)

func TestSaveReadRemove(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ N int }
	if found, err := s.Read(&got); found || err != nil {
		t.Fatalf("empty store: found %v, %v", found, err)
	}
	if err := s.Lock(); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(struct{ N int }{7}); err != nil {
		t.Fatal(err)
	}
	s.Unlock()
	if found, err := s.Read(&got); !found || err != nil || got.N != 7 {
		t.Fatalf("read back: found %v, %+v, %v", found, got, err)
	}
	if s.Path() != Path(dir, s.NS()) {
		t.Fatalf("path %s, want %s", s.Path(), Path(dir, s.NS()))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d entries in the directory, want the state file alone (no temp files)", len(entries))
	}
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(); err != nil {
		t.Fatalf("removing a missing file: %v", err)
	}
}

func TestSameNetNS(t *testing.T) {
	a := NetNSID{Inode: 5, Cookie: 9}
	for _, c := range []struct {
		b    NetNSID
		want bool
	}{
		{NetNSID{Inode: 5, Cookie: 9}, true},
		{NetNSID{Inode: 5}, true}, // a kernel without cookies: the inode alone
		{NetNSID{Inode: 5, Cookie: 10}, false},
		{NetNSID{Inode: 6, Cookie: 9}, false},
	} {
		if got := a.Same(c.b); got != c.want {
			t.Errorf("%+v.Same(%+v) = %v, want %v", a, c.b, got, c.want)
		}
	}
}

func TestOwnerAlive(t *testing.T) {
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if !self.Alive() {
		t.Fatal("this process is not alive")
	}
	if (&Owner{PID: self.PID, StartTicks: self.StartTicks + 1}).Alive() {
		t.Fatal("another start time passes for this process")
	}
	if (*Owner)(nil).Alive() {
		t.Fatal("a nil owner is alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if (&Owner{PID: cmd.Process.Pid}).Alive() {
		t.Fatal("an exited process is alive")
	}
}
