package topo

import (
	"os"
	"os/exec"
	"testing"
)

func TestProcRecordRunning(t *testing.T) {
	self := ProcRecord{PID: os.Getpid(), Start: processStart(os.Getpid())}
	if !self.Running() {
		t.Errorf("this test process is not running")
	}
	reused := self
	reused.Start++
	if reused.Running() {
		t.Errorf("a PID with another start time counts as the recorded process")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := ProcRecord{PID: cmd.Process.Pid, Start: processStart(cmd.Process.Pid)}
	_ = cmd.Wait()
	if p.Running() {
		t.Errorf("an exited process is running")
	}
	if (ProcRecord{}).Running() {
		t.Errorf("PID 0 is running")
	}
}
