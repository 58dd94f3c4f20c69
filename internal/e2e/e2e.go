// Package e2e holds what the end-to-end tests of the binaries share: building
// them once per test binary, and the kernel IPVS selftest topology.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Bin returns the path of a freshly built lvslab binary (lvsd, lvsadm,
// lvsrs, lvskeepalived), building all of them once per test process.
func Bin(t testing.TB, name string) string {
	t.Helper()
	testenv.Go(t)
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		// One directory per test process, named by its PID: a test binary
		// has no hook at its end, so each one removes what processes that
		// are gone left behind (56 MB each).
		sweepStaleBins()
		binDir, buildErr = os.MkdirTemp("", fmt.Sprintf("lvslab-bin-%d-", os.Getpid()))
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/lvsd", "./cmd/lvsadm", "./cmd/lvsrs", "./cmd/lvslab", "./cmd/lvskeepalived")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// sweepStaleBins removes the binary directories of test processes that
// have exited (lvslab-bin-PID-*), and those of the older unnumbered form.
func sweepStaleBins() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "lvslab-bin-*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), "lvslab-bin-")
		pidText, _, numbered := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidText); numbered && err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			continue // its process is running
		}
		_ = os.RemoveAll(d)
	}
}

// Selftest is the topology of the kernel's IPVS selftest (ipvs.sh):
// ns0 the client with a bridge joining the director's client leg and the
// real server's second leg, ns1 the director, ns2 the real server.
type Selftest struct {
	Client, Director, Real *nstest.NS
}

// VIP and the selftest's addresses.
const (
	VIP  = "207.175.44.110"
	Port = "8080"
	CIP  = "10.0.0.2"
	GIP  = "10.0.0.1"
	DIP  = "172.16.0.1"
	RIP  = "172.16.0.2"
	SIP  = "10.0.0.3"
)

// NewSelftest builds the topology with every link at MTU 1500 and TSO/GSO
// off on every veth, as a wire would segment; checksum offload stays at its
// default (so frames arrive CHECKSUM_PARTIAL).
func NewSelftest(t testing.TB) *Selftest {
	t.Helper()
	return newSelftest(t, false)
}

// NewSelftestTSO is the same topology with every offload at veth's
// defaults: senders hand lvsd TSO super-frames of up to 64 KiB.
func NewSelftestTSO(t testing.TB) *Selftest {
	t.Helper()
	return newSelftest(t, true)
}

func newSelftest(t testing.TB, keepTSO bool) *Selftest {
	t.Helper()
	s := &Selftest{
		Client:   nstest.New(t, "ns0"),
		Director: nstest.New(t, "ns1"),
		Real:     nstest.New(t, "ns2"),
	}
	nstest.Veth(t, s.Client, "veth01", s.Director, "veth10", 1500)
	nstest.Veth(t, s.Client, "veth02", s.Real, "veth20", 1500)
	nstest.Veth(t, s.Director, "veth12", s.Real, "veth21", 1500)
	s.Client.Bridge("br0", "veth01", "veth02")
	s.Client.Addr("br0", CIP+"/24")
	s.Director.Addr("veth10", GIP+"/24")
	s.Director.Addr("veth12", DIP+"/24")
	s.Real.Addr("veth21", RIP+"/24")
	s.Real.Addr("veth20", SIP+"/24")
	s.Client.Route(VIP+"/32", GIP, "br0")
	for _, l := range []struct {
		ns   *nstest.NS
		name string
	}{{s.Client, "veth01"}, {s.Client, "veth02"}, {s.Client, "br0"}, {s.Director, "veth10"}, {s.Director, "veth12"}, {s.Real, "veth21"}, {s.Real, "veth20"}} {
		if !keepTSO {
			l.ns.Offload(l.name, "tso", "off", "gso", "off")
		}
	}
	return s
}

// StartLVSD runs lvsd in ns on the given interfaces and waits until lvsadm
// reaches it.
func StartLVSD(t testing.TB, ns *nstest.NS, ifaces string, extra ...string) *nstest.SyncBuffer {
	t.Helper()
	_, log := StartLVSDProc(t, ns, ifaces, extra...)
	return log
}

// StartLVSDProc is StartLVSD that also returns the process, for tests that
// kill it.
func StartLVSDProc(t testing.TB, ns *nstest.NS, ifaces string, extra ...string) (*nstest.Proc, *nstest.SyncBuffer) {
	t.Helper()
	args := append([]string{"-i", ifaces}, extra...)
	if !slices.Contains(extra, "--state-dir") {
		// Tests kill lvsd with SIGKILL: keep its state file out of /run.
		args = append(args, "--state-dir", t.TempDir())
	}
	proc, log := ns.Start(Bin(t, "lvsd"), args...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := ns.Try(Bin(t, "lvsadm"), "-L", "-n"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lvsd did not come up:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lvsd log (%s):\n%s", ns.Name, log.String())
		}
	})
	return proc, log
}

// LVSADM runs lvsadm in ns with a command line as ipvsadm takes it.
func LVSADM(t testing.TB, ns *nstest.NS, cmdline string) string {
	t.Helper()
	return ns.Run(Bin(t, "lvsadm"), strings.Fields(cmdline)...)
}

// CheckPcaps has tshark read every pcap lvsd wrote with --pcap-tx, with
// checksum validation on: no frame may carry a bad IPv4, TCP or UDP checksum.
// With ipip, the files must hold IP-in-IP packets that tshark decodes down
// to the inner TCP segment.
func CheckPcaps(t testing.TB, dir string, ipip bool) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.pcap"))
	if len(files) == 0 {
		t.Fatalf("no pcap files in %s", dir)
	}
	total, tunnelled := 0, 0
	for _, f := range files {
		total += tsharkCount(t, f, "")
		if n := tsharkCount(t, f, "ip.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0 || icmp.checksum.status == 0"); n != 0 {
			t.Errorf("%s: %d frames with a bad checksum", filepath.Base(f), n)
		}
		tunnelled += tsharkCount(t, f, "ip.proto == 4 && tcp")
	}
	if total == 0 {
		t.Fatalf("lvsd transmitted nothing")
	}
	if ipip && tunnelled == 0 {
		t.Errorf("no IP-in-IP frame with an inner TCP segment decoded by tshark")
	}
	t.Logf("tshark: %d frames transmitted by lvsd, %d IP-in-IP, no bad checksum", total, tunnelled)
}

func tsharkCount(t testing.TB, file, filter string) int {
	args := []string{"-n", "-r", file,
		"-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"}
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	args = append(args, "-T", "fields", "-e", "frame.number")
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", strings.Join(args, " "), err)
	}
	return len(strings.Fields(string(out)))
}

// Tshark reads a capture file with extra tshark arguments.
func Tshark(file string, args ...string) (string, error) {
	out, err := exec.Command("tshark", append([]string{"-n", "-r", file}, args...)...).Output()
	return string(out), err
}
