package runner

import (
	"fmt"
	"strings"

	"lvslab/sim/spec"
)

// commandVerdict judges a command check's output and exit status. The
// detail always shows what the command said; when the check fails it also
// says what was wanted: the exit status, the expression that did not match
// (or matched where it must not), and, for an anchored expression that
// would have matched one line, the (?m) that makes ^ and $ work per line.
func commandVerdict(cmdline string, out []byte, code, want int, match, noMatch spec.Regexp) (bool, string) {
	text := strings.TrimSpace(string(out))
	if len(text) > 300 {
		text = text[:300] + "..."
	}
	detail := fmt.Sprintf("%s exited %d: %s", cmdline, code, text)
	var why []string
	if code != want {
		why = append(why, fmt.Sprintf("want exit status %d", want))
	}
	if match.Regexp != nil && !match.Match(out) {
		w := fmt.Sprintf("want output matching %s", match.String())
		if hint := perLineHint(match, out); hint != "" {
			w += "; " + hint
		}
		why = append(why, w)
	}
	if noMatch.Regexp != nil {
		if loc := noMatch.FindIndex(out); loc != nil {
			why = append(why, fmt.Sprintf("want output not matching %s (matched %q)", noMatch.String(), clip(string(out[loc[0]:loc[1]]), 80)))
		}
	}
	if len(why) == 0 {
		return true, detail
	}
	return false, detail + "; " + strings.Join(why, "; ")
}

// perLineHint suggests (?m) when ^ or $ anchored the whole output but the
// expression matches one of its lines.
func perLineHint(re spec.Regexp, out []byte) string {
	s := re.String()
	if strings.HasPrefix(s, "(?m)") || !strings.ContainsAny(s, "^$") {
		return ""
	}
	var m spec.Regexp
	if err := m.UnmarshalText([]byte("(?m)" + s)); err != nil || !m.Match(out) {
		return ""
	}
	return "^ and $ anchor the whole output; (?m)" + s + " would match a line"
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
