package fault

import (
	"context"
	"fmt"

	"lvslab/sim/service"
	"lvslab/sim/spec"
)

// serviceSet rewrites a built-in service's control file: the service reads
// it on its next answer, so a real server turns slow or failing without
// being killed (seed 000's disk-I/O case: health checks time out while the
// process runs). The undo puts back the controls it replaced.
func (a *labActor) serviceSet(e *spec.Event) (undoFunc, string, error) {
	nodeName, name, _ := spec.SplitProcessRef(e.Target)
	n := a.lab.Node(nodeName)
	if n == nil {
		return nil, "", fmt.Errorf("no node %s", nodeName)
	}
	path := spec.ServiceControlFile(n.Dir, name)
	before, err := service.ReadControls(path)
	if err != nil {
		return nil, "", err
	}
	after := before
	if e.Status != 0 {
		after.Status = e.Status
	}
	if e.Delay != 0 {
		after.Delay = e.Delay.D()
	}
	if e.Body != nil {
		after.Body = e.Body
	}
	if err := service.WriteControls(path, after); err != nil {
		return nil, "", err
	}
	undo := func(context.Context) error { return service.WriteControls(path, before) }
	return undo, fmt.Sprintf("%s now answers %s", e.Target, describeControls(after)), nil
}

func describeControls(c service.Controls) string {
	s := "status "
	if c.Status != 0 {
		s += fmt.Sprint(c.Status)
	} else {
		s += "default"
	}
	if c.Delay != 0 {
		s += fmt.Sprintf(" after %s", c.Delay)
	}
	if c.Body != nil {
		s += fmt.Sprintf(" with a %d-byte body", len(*c.Body))
	}
	return s
}
