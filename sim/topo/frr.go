package topo

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lvslab/sim/spec"
)

// FRR on a node (frr: {ospfd: FILE}): Debian's zebra and ospfd, in the
// foreground as lab processes, with the pathspace -N NAME, which gives
// them /var/run/frr/NAME for their pid files, vty sockets and zebra's
// zserv.api (vtysh -N NAME reaches them). NAME is the node's namespace
// name with its dot as an underscore, so two labs' daemons never meet. The directory is the frr user's,
// as the daemons drop to it; it is removed when the lab closes and by a
// clean after a crash.

// frrDir is Debian's daemons' directory; frrRunRoot their runtime root.
const (
	frrDir     = "/usr/lib/frr"
	frrRunRoot = "/var/run/frr"
)

// frrPathspace is a node's -N name: its namespace name with the dot (which
// FRR does not allow there) as an underscore.
func frrPathspace(namespace string) string { return strings.ReplaceAll(namespace, ".", "_") }

// frrRunDir is a node's FRR runtime directory.
func frrRunDir(lab, node string) string {
	return filepath.Join(frrRunRoot, frrPathspace(NamespaceName(lab, node)))
}

// frrProcesses plans zebra, then ospfd once zebra's zserv.api accepts.
func frrProcesses(mk func(name, specPath string) *Process, s *spec.Spec, lab string, sn *spec.Node, base string) ([]*Process, error) {
	run := frrRunDir(lab, sn.Name)
	name := frrPathspace(NamespaceName(lab, sn.Name))
	z := mk(spec.ProcZebra, base+".frr")
	z.argv = []string{filepath.Join(frrDir, "zebra"), "-N", name, "-f", "/dev/null", "-i", filepath.Join(run, "zebra.pid")}
	z.ready = &spec.Ready{Unix: filepath.Join(run, "zserv.api"), Timeout: spec.Duration(20 * time.Second), Interval: spec.Duration(50 * time.Millisecond)}
	o := mk(spec.ProcOSPFD, base+".frr")
	// The file is copied beside the runtime files when the lab starts
	// (prepareFRR): the daemon reads it after dropping to the frr user.
	o.argv = []string{filepath.Join(frrDir, "ospfd"), "-N", name, "-f", filepath.Join(run, "ospfd.conf"), "-i", filepath.Join(run, "ospfd.pid")}
	o.after = append(o.after, sn.Name+"/"+spec.ProcZebra)
	return []*Process{z, o}, nil
}

// prepareFRR makes a node's runtime directory, owned by frr, with the
// scenario's ospfd.conf in it.
func prepareFRR(s *spec.Spec, lab string, sn *spec.Node) error {
	run := frrRunDir(lab, sn.Name)
	if err := os.MkdirAll(run, 0o755); err != nil {
		return fmt.Errorf("node %s: FRR runtime directory: %w", sn.Name, err)
	}
	b, err := os.ReadFile(s.Abs(sn.FRR.OSPFD))
	if err != nil {
		return fmt.Errorf("node %s: frr.ospfd: %w", sn.Name, err)
	}
	if err := os.WriteFile(filepath.Join(run, "ospfd.conf"), b, 0o644); err != nil {
		return fmt.Errorf("node %s: FRR config: %w", sn.Name, err)
	}
	if u, err := user.Lookup("frr"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{run, filepath.Join(run, "ospfd.conf")} {
			if err := os.Chown(p, uid, gid); err != nil && !os.IsPermission(err) {
				return fmt.Errorf("node %s: %w", sn.Name, err)
			}
		}
	}
	return nil
}

// removeFRR removes the runtime directories of the named namespaces (those
// that have one).
func removeFRR(namespaces []string) {
	for _, ns := range namespaces {
		dir := filepath.Join(frrRunRoot, frrPathspace(ns))
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			_ = os.RemoveAll(dir)
		}
	}
}
