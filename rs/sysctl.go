package rs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sysctl keys are paths below /proc/sys, not dotted names: interface names
// may contain dots (eth0.100).

func confKey(dev, name string) string {
	return "net/ipv4/conf/" + dev + "/" + name
}

// ReadSysctl reads a value of the calling thread's network namespace.
func ReadSysctl(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", key))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteSysctl writes a value in the calling thread's network namespace.
func WriteSysctl(key, value string) error {
	f, err := os.OpenFile(filepath.Join("/proc/sys", key), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write sysctl %s=%s: %w", key, value, err)
	}
	_, werr := f.WriteString(value + "\n")
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("write sysctl %s=%s: %w", key, value, werr)
	}
	if cerr != nil {
		return fmt.Errorf("write sysctl %s=%s: %w", key, value, cerr)
	}
	return nil
}
