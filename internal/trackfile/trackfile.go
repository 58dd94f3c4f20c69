// Package trackfile reads keepalived's track_files: a number in a file,
// as keepalived 2.2.7's trackers/track_file.c reads it. Both sides of
// lvskeepalived use it (FILE_CHECK on the checker side, track_file on a
// vrrp_instance), which import neither each other nor cmd.
package trackfile

import (
	"math"
	"os"
	"strconv"
	"strings"
)

// Read is keepalived's process_track_file: strtol(buf, NULL, 0)
// of the first 127 bytes; ok false for a number out of range (keepalived
// logs it and keeps the last value).
func Read(path string) (v int64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, true
	}
	defer f.Close()
	buf := make([]byte, 127)
	n, _ := f.Read(buf)
	v, ok = Strtol(string(buf[:n]))
	if !ok || v < math.MinInt32 || v > math.MaxInt32+1 {
		return v, false
	}
	return v, true
}

// Strtol is C's strtol with base 0: leading space, a sign, 0x for hex, a
// leading 0 for octal, digits up to the first that is not one; no digits
// read 0. ok is false on overflow (ERANGE).
func Strtol(s string) (int64, bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := 10
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && strings.ContainsRune("0123456789abcdefABCDEF", rune(s[2])):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base = 8
	}
	end := 0
	for end < len(s) {
		c := s[end]
		var d int
		switch {
		case c >= '0' && c <= '9':
			d = int(c - '0')
		case c >= 'a' && c <= 'f':
			d = int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = int(c-'A') + 10
		default:
			d = 99
		}
		if d >= base {
			break
		}
		end++
	}
	if end == 0 {
		return 0, true
	}
	u, err := strconv.ParseUint(s[:end], base, 64)
	if err != nil || (!neg && u > math.MaxInt64) || (neg && u > 1<<63) {
		if neg {
			return math.MinInt64, false
		}
		return math.MaxInt64, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}
