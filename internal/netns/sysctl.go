package netns

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// SysctlPath is the /proc/sys file of a key: dotted (net.ipv4.ip_forward)
// or slashed (net/ipv4/conf/eth0.100/rp_filter, for names with dots).
func SysctlPath(key string) (string, error) {
	rel := key
	if !strings.Contains(key, "/") {
		rel = strings.ReplaceAll(key, ".", "/")
	}
	rel = strings.TrimPrefix(rel, "/")
	for _, e := range strings.Split(rel, "/") {
		if e == "" || e == "." || e == ".." {
			return "", fmt.Errorf("sysctl key %q: empty, \".\" or \"..\" element", key)
		}
	}
	return "/proc/sys/" + rel, nil
}

// ReadSysctl reads a sysctl of the calling thread's namespace, without the
// trailing newline.
func ReadSysctl(key string) (string, error) {
	p, err := SysctlPath(key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, unwrapPath(err))
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteSysctl writes a sysctl of the calling thread's namespace. A key the
// kernel does not have is an error satisfying errors.Is(err,
// os.ErrNotExist); it is never created.
func WriteSysctl(key, value string) error {
	p, err := SysctlPath(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, unwrapPath(err))
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, unwrapPath(err))
	}
	return nil
}

// ReadSysctl reads a sysctl inside the namespace.
func (n *NS) ReadSysctl(key string) (string, error) {
	var v string
	err := n.Do(func() (err error) {
		v, err = ReadSysctl(key)
		return err
	})
	return v, err
}

// WriteSysctl writes a sysctl inside the namespace.
func (n *NS) WriteSysctl(key, value string) error {
	return n.Do(func() error { return WriteSysctl(key, value) })
}

// unwrapPath drops an *os.PathError's path: the key already says it.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
