package fault

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// State triggers (when: {state: ...}) are the runner's end-of-run state
// checks, read live.

// stateNode is the node a state check reads.
func stateNode(st *spec.StateCheck) string {
	switch {
	case st.Addr != nil:
		return st.Addr.Node
	case st.Neighbor != nil:
		return st.Neighbor.Node
	case st.Route != nil:
		return st.Route.Node
	case st.Command != nil:
		return st.Command.Node
	}
	return ""
}

func describeState(st *spec.StateCheck) string {
	switch {
	case st.Addr != nil && st.Addr.Has.IsValid():
		return fmt.Sprintf("%s holds %s", st.Addr.Node, st.Addr.Has)
	case st.Addr != nil:
		return fmt.Sprintf("%s lacks %s", st.Addr.Node, st.Addr.Lacks)
	case st.Neighbor != nil && st.Neighbor.Absent:
		return fmt.Sprintf("%s has no entry for %s", st.Neighbor.Node, st.Neighbor.IP)
	case st.Neighbor != nil:
		want := slices.Clone(st.Neighbor.MACOf)
		if st.Neighbor.MAC != "" {
			want = append(want, string(st.Neighbor.MAC))
		}
		return fmt.Sprintf("%s resolves %s to %s", st.Neighbor.Node, st.Neighbor.IP, strings.Join(want, " or "))
	case st.Route != nil && st.Route.Absent:
		return fmt.Sprintf("%s has no route to %s", st.Route.Node, st.Route.Dst)
	case st.Route != nil:
		return fmt.Sprintf("%s routes %s", st.Route.Node, st.Route.Dst)
	case st.Command != nil:
		c := st.Command
		argv := strings.Join(c.Cmd, " ")
		if c.Shell != "" {
			argv = c.Shell
		}
		return fmt.Sprintf("`%s` in %s succeeds", argv, c.Node)
	}
	return "(empty state check)"
}

// checkState evaluates a state check against the live lab with the
// runner's own checks. err is for checks that cannot be evaluated at all (no
// such node).
func checkState(ctx context.Context, lab *topo.Lab, st *spec.StateCheck) (bool, error) {
	if lab.Node(stateNode(st)) == nil {
		return false, fmt.Errorf("no node %q", stateNode(st))
	}
	return runner.CheckState(ctx, lab, st).Held, nil
}
