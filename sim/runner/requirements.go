package runner

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"lvslab/sim/spec"
)

// kernelFeature maps a kernel feature of requires: to its config symbol and
// the module that provides it.
func kernelFeature(name string) (symbol, module string, ok bool) {
	switch name {
	case "veth":
		return "CONFIG_VETH", "veth", true
	case "bridge":
		return "CONFIG_BRIDGE", "bridge", true
	case "tun":
		return "CONFIG_TUN", "tun", true
	case "macvlan":
		return "CONFIG_MACVLAN", "macvlan", true
	case "nftables":
		return "CONFIG_NF_TABLES", "nf_tables", true
	case "tbf":
		return "CONFIG_NET_SCH_TBF", "sch_tbf", true
	case "netem":
		return "CONFIG_NET_SCH_NETEM", "sch_netem", true
	case "ipip":
		return "CONFIG_NET_IPIP", "ipip", true
	case "ip_vs":
		return "CONFIG_IP_VS", "ip_vs", true
	}
	return "", "", false
}

// Features reports which required features this machine has.
type Features struct {
	kconfig map[string]string // CONFIG_X -> y|m, nil when unreadable
	binDir  string
}

// DetectFeatures reads the kernel configuration once.
func DetectFeatures(binDir string) *Features {
	return &Features{kconfig: readKernelConfig(), binDir: binDir}
}

func readKernelConfig() map[string]string {
	var r io.Reader
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if zr, err := gzip.NewReader(f); err == nil {
			r = zr
		}
	}
	if r == nil {
		var uts unix.Utsname
		if unix.Uname(&uts) != nil {
			return nil
		}
		f, err := os.Open("/boot/config-" + unix.ByteSliceToString(uts.Release[:]))
		if err != nil {
			return nil
		}
		defer f.Close()
		r = f
	}
	cfg := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = v
		}
	}
	return cfg
}

// Has says whether the feature is available, and if not, why.
func (f *Features) Has(feature string) (bool, string) {
	if symbol, module, ok := kernelFeature(feature); ok {
		if _, err := os.Stat("/sys/module/" + module); err == nil {
			return true, ""
		}
		if f.kconfig == nil {
			// Without the configuration we cannot tell; the build or the
			// run will show it.
			return true, ""
		}
		switch f.kconfig[symbol] {
		case "y", "m":
			return true, ""
		}
		return false, fmt.Sprintf("the kernel lacks %s (%s is not set)", feature, symbol)
	}
	switch feature {
	case "lvsd", "lvsadm", "lvsrs", "lvskeepalived":
		if f.binDir != "" {
			if _, err := os.Stat(filepath.Join(f.binDir, feature)); err == nil {
				return true, ""
			}
		}
		if _, err := exec.LookPath(feature); err == nil {
			return true, ""
		}
		return false, fmt.Sprintf("%s is not built (make build puts it in bin/)", feature)
	}
	if _, err := exec.LookPath(feature); err != nil {
		return false, fmt.Sprintf("the tool %s is not installed (make deps)", feature)
	}
	return true, ""
}

// Missing lists the spec's required features this machine lacks, and the
// optional ones it lacks (which the scenario works around).
func (f *Features) Missing(s *spec.Spec) (required, optional []string) {
	for _, r := range s.Requires {
		if ok, why := f.Has(r.Feature); !ok {
			if r.Optional {
				optional = append(optional, why)
			} else {
				required = append(required, why)
			}
		}
	}
	return required, optional
}
