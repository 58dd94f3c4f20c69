package segcap

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lvslab/sim/spec"
)

// CheckFilters compiles every pcap: expectation's display filter with
// tshark (tshark -r EMPTY.pcap -Y FILTER), so a typo is an invalid spec
// with file:line (exit 2 from lvslab validate and run), not a failed
// expectation at the end of a run. All filters go to one tshark run, or'ed
// together; only when that fails is each one compiled on its own, to name
// the bad ones. tshark not installed: nil (the run's requirements report
// it).
func CheckFilters(ctx context.Context, tshark string, s *spec.Spec) error {
	if tshark == "" {
		tshark = "tshark"
	}
	type ref struct {
		path, filter string
	}
	var refs []ref
	for i, e := range s.Expect {
		if e.Pcap != nil && e.Pcap.Filter != "" {
			refs = append(refs, ref{"expect[" + strconv.Itoa(i) + "].pcap.filter", e.Pcap.Filter})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	if _, err := exec.LookPath(tshark); err != nil {
		return nil
	}
	dir, err := os.MkdirTemp("", "lvslab-filter-")
	if err != nil {
		return fmt.Errorf("checking display filters: %w", err)
	}
	defer os.RemoveAll(dir)
	empty := filepath.Join(dir, "empty.pcap")
	if err := os.WriteFile(empty, emptyPcap(), 0o600); err != nil {
		return fmt.Errorf("checking display filters: %w", err)
	}
	all := make([]string, len(refs))
	for i, r := range refs {
		all[i] = "(" + r.filter + ")"
	}
	if _, err := compileFilter(ctx, tshark, empty, strings.Join(all, " || ")); err == nil {
		return nil
	}
	var errs spec.ErrorList
	for _, r := range refs {
		msg, err := compileFilter(ctx, tshark, empty, r.filter)
		if err != nil {
			errs = append(errs, s.Errorf(r.path, "invalid display filter %q: %s", r.filter, msg))
		}
	}
	if len(errs) == 0 {
		return nil // each compiles alone (a tshark limit on the combination)
	}
	return errs
}

// compileFilter runs tshark over an empty capture with the filter; the
// message is tshark's complaint without its banner.
func compileFilter(ctx context.Context, tshark, file, filter string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, tshark, "-n", "-r", file, "-Y", filter)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return "", nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err.Error(), err
	}
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "Running as user") {
			continue
		}
		lines = append(lines, strings.TrimPrefix(l, "tshark: "))
	}
	if len(lines) == 0 {
		return "tshark " + ee.String(), err
	}
	return lines[0], err
}

// emptyPcap is a pcap file header (Ethernet link type) and no packets.
func emptyPcap() []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(b[4:], 2)
	binary.LittleEndian.PutUint16(b[6:], 4)
	binary.LittleEndian.PutUint32(b[16:], 65535)
	binary.LittleEndian.PutUint32(b[20:], 1)
	return b
}
