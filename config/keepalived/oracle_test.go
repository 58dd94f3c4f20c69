package keepalived

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"lvslab/internal/nstest"
	"lvslab/internal/testenv"
)

// The differential test: Debian's keepalived 2.2.7 -t is the oracle. For
// every configuration of the corpus (testdata/corpus and the seed
// extractions under scenarios/keepalived) both must agree on clean versus
// not clean, and on the set of file:line places keepalived names, except
// for the documented differences below.
//
// keepalived -t runs in a throw-away namespace with the corpus's
// interfaces, eth0 and eth1 (a veth pair), because it checks that a
// vrrp_instance's interface exists (reference/real-peers.md).

// knownDifferences are the documented places where lvskeepalived and
// keepalived 2.2.7 -t differ on purpose. Each is a predicate on one of our
// diagnostics: a matching diagnostic is not compared, and the keepalived
// messages in the lines it covers (Pos.Line..EndLine) are not either.
var knownDifferences = []struct {
	name, why string
	match     func(Diag) bool
	// clean: keepalived -t exits 0 in this case, we do not.
	kaClean bool
	// kaMsg excuses keepalived messages that belong to the difference.
	kaMsg *regexp.Regexp
}{
	{
		name: "FULLNAT keywords",
		why: "lb_kind FNAT, syn_proxy, laddr_group_name, est_timeout and local_address_group are the Alibaba fork's; keepalived 2.2.7 " +
			"reports 'unknown [FNAT] routing method' and 'Unknown keyword' (and every line of a local_address_group block), " +
			"lvskeepalived runs them (est_timeout is refused) and notes each as the fork's",
		match: func(d Diag) bool { return d.Class == ClassFullNAT },
	},
	{
		name: "'//' after a statement",
		why: "keepalived silently ignores extra words after a complete statement, so '1.1.1.1 80 //vip1' or 'alpha // comment' " +
			"pass unreported; lvskeepalived warns that '//' is not a comment",
		match:   func(d Diag) bool { return d.Class == ClassSlashComment && !strings.HasPrefix(d.Msg, "Unknown keyword") },
		kaClean: true,
	},
	{
		name: "weights above 65535",
		why: "keepalived accepts real-server weights up to 2147483647 (the kernel's int); lvsd keeps ipvsadm's 0..65535 " +
			"and lvskeepalived clamps with a warning",
		match:   func(d Diag) bool { return d.Class == ClassLvsdLimit },
		kaClean: true,
	},
	{
		name: "include loops",
		why: "keepalived opens the included file again until it runs out of file descriptors ('open problem (Too many open files)') " +
			"and -t exits 0; lvskeepalived names the loop as an error",
		match:   func(d Diag) bool { return d.Class == ClassInclude },
		kaClean: true,
		kaMsg:   regexp.MustCompile(`open problem \(Too many open files\)`),
	},
	{
		name: "missing include files",
		why: "keepalived -t prints 'Config files missing' for a plain include that matches nothing (and for a missing main file) but exits 0 " +
			"(reference/keepalived-vrrp.md §3.10 calls it a bug); lvskeepalived warns (exit 5) or, for the main file, exits 6",
		match:   func(d Diag) bool { return d.Class == ClassFileNotFound },
		kaClean: true,
	},
}

// kaKilled are corpus files on which keepalived 2.2.7 -t itself dies:
// it is terminated by SIGTERM (exit 143, nothing printed) when a
// MISC_CHECK script runs as a script_user under enable_script_security;
// there is no verdict to compare with, so only ours is checked (clean).
var kaKilled = map[string]bool{"good-misc-dynamic.conf": true}

func known(d Diag) (int, bool) {
	for i, k := range knownDifferences {
		if k.match(d) {
			return i, true
		}
	}
	return 0, false
}

var kaLoc = regexp.MustCompile(`^\((?:(.+?): )?Line (\d+)\) (.*)$`)

type place struct {
	file string // base name
	line int
}

func (p place) String() string { return fmt.Sprintf("%s:%d", p.file, p.line) }

// corpus lists the main files: testdata/corpus/*.conf, testdata/corpus/*/keepalived.conf,
// and the seed extractions.
func corpus(t *testing.T) []string {
	var files []string
	for _, pat := range []string{"testdata/corpus/*.conf", "testdata/corpus/*/keepalived.conf",
		"../../scenarios/keepalived/*.conf", "../../scenarios/keepalived/*/keepalived.conf", "../../scenarios/keepalived/002-ops-add-rs/taobao.conf"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	return files
}

func TestCorpusSize(t *testing.T) {
	if n := len(corpus(t)); n < 40 {
		t.Fatalf("corpus has %d configurations, want at least 40", n)
	}
}

func TestDifferentialKeepalived(t *testing.T) {
	testenv.Tools(t, "keepalived")
	nstest.Require(t)
	ns := nstest.New(t, "ka")
	ns.Run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	ns.Run("ip", "link", "set", "eth0", "up")
	ns.Run("ip", "link", "set", "eth1", "up")
	ifs := func(name string) bool { return name == "eth0" || name == "eth1" || name == "lo" }
	noUser := func(string) bool { return false } // keepalived_script does not exist in the corpus's world
	tmp := t.TempDir()
	for _, file := range corpus(t) {
		abs, err := filepath.Abs(file)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(file, "testdata/corpus/"), "../../")
		t.Run(name, func(t *testing.T) {
			// keepalived needs its own pid files, or it exits 0 at once
			// ("daemon is already running").
			out, err := ns.Try("keepalived", "-t", "-f", abs, "-p", tmp+"/p", "-r", tmp+"/r", "-c", tmp+"/c", "-b", tmp+"/b")
			kaExit := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				kaExit = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("keepalived: %v\n%s", err, out)
			}
			cfg := LoadOptions(OSFS{}, abs, Options{InterfaceExists: ifs, UserExists: noUser})
			if kaKilled[name] {
				if kaExit != 143 && kaExit != -1 {
					t.Errorf("keepalived -t no longer dies here (exit %d): compare again\n%s", kaExit, out)
				}
				for _, d := range cfg.Diags {
					t.Errorf("lvskeepalived: %s", d)
				}
				return
			}
			compare(t, abs, out, kaExit, cfg)
		})
	}
}

func compare(t *testing.T, main, kaOut string, kaExit int, cfg *Config) {
	t.Helper()
	ka := map[place]string{}
	var unfiled []place
	for _, ln := range strings.Split(strings.TrimSpace(kaOut), "\n") {
		if ln == "" {
			continue
		}
		m := kaLoc.FindStringSubmatch(ln)
		if m == nil {
			continue // unplaced: counts through the exit code only
		}
		n, _ := strconv.Atoi(m[2])
		if m[1] == "" {
			unfiled = append(unfiled, place{"", n})
			continue
		}
		ka[place{filepath.Base(m[1]), n}] = m[3]
	}
	for _, u := range unfiled {
		found := false
		for p := range ka {
			found = found || p.line == u.line
		}
		if !found {
			ka[place{filepath.Base(main), u.line}] = "(first pass)"
		}
	}
	ours := map[place]Diag{}
	excused := map[place]bool{}
	kaCleanExcuse := false
	oursCounted := 0
	for _, d := range cfg.Diags {
		p := place{filepath.Base(d.Pos.File), d.Pos.Line}
		if i, ok := known(d); ok {
			end := max(d.EndLine, d.Pos.Line)
			for l := d.Pos.Line; l <= end; l++ {
				excused[place{p.file, l}] = true
			}
			if knownDifferences[i].kaClean {
				kaCleanExcuse = true
			} else {
				oursCounted++ // keepalived reports these too, in its own words
			}
			continue
		}
		oursCounted++
		if d.Unplaced || d.Pos.Line == 0 {
			continue // keepalived prints these without a place
		}
		ours[p] = d
	}
	var diffs []string
	for p, msg := range ka {
		for _, d := range cfg.Diags {
			if i, ok := known(d); ok && knownDifferences[i].kaMsg != nil && knownDifferences[i].kaMsg.MatchString(msg) {
				excused[p] = true
			}
		}
		if _, ok := ours[p]; !ok && !excused[p] {
			diffs = append(diffs, fmt.Sprintf("keepalived only: %s %s", p, msg))
		}
	}
	for p, d := range ours {
		if _, ok := ka[p]; !ok && !excused[p] {
			diffs = append(diffs, fmt.Sprintf("lvskeepalived only: %s", d))
		}
	}
	sort.Strings(diffs)
	kaClean := kaExit == 0
	ourClean := oursCounted == 0
	if kaClean != ourClean && !(kaClean && kaCleanExcuse && ourClean == (oursCounted == 0)) {
		if !(kaClean && kaCleanExcuse && oursCounted == 0) {
			diffs = append(diffs, fmt.Sprintf("clean: keepalived %v (exit %d), lvskeepalived %v (%d problems)", kaClean, kaExit, ourClean, oursCounted))
		}
	}
	if len(diffs) > 0 {
		var b strings.Builder
		for _, d := range cfg.Diags {
			b.WriteString("  " + d.String() + "\n")
		}
		t.Errorf("%s:\n%s\nkeepalived -t (exit %d):\n%s\nlvskeepalived:\n%s", main, strings.Join(diffs, "\n"), kaExit, kaOut, b.String())
	}
}
