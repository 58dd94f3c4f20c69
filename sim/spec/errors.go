package spec

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is where something was written.
type Pos struct {
	Line, Column int
}

// IsValid reports whether the position is known.
func (p Pos) IsValid() bool { return p.Line > 0 }

// Error is one problem in a spec, at a position, about a field.
type Error struct {
	File   string
	Line   int
	Column int
	// Path names the field: nodes.rs1.interfaces[0].segment.
	Path string
	Msg  string
}

func (e Error) Error() string {
	var b strings.Builder
	file := e.File
	if file == "" {
		file = "<spec>"
	}
	line, col := e.Line, e.Column
	if line <= 0 {
		line, col = 1, 1
	}
	if col <= 0 {
		col = 1
	}
	fmt.Fprintf(&b, "%s:%d:%d: ", file, line, col)
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in a spec, in file order. Load returns
// one as its error; errors.As reaches it.
type ErrorList []Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// sorted orders by position, drops exact duplicates (an alias decoded
// twice reports its problems once) and caps what is left (capped).
func (l ErrorList) sorted() ErrorList {
	out := slices.Clone(l)
	slices.SortStableFunc(out, func(a, b Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return slices.CompactFunc(out, func(a, b Error) bool { return a == b }).capped()
}

// maxErrors bounds what one file reports, and maxRepeats the errors with
// one message at one position: an alias or a name[a..b] range repeats a
// bad value wherever it is used, and a hostile file can do that hundreds
// of thousands of times. The first ones say what to fix.
const (
	maxErrors  = 100
	maxRepeats = 3
)

// capped keeps the first maxRepeats errors of each message at each
// position and the first maxErrors in all, and says how many it left out.
func (l ErrorList) capped() ErrorList {
	type at struct {
		line, col int
		msg       string
	}
	count := map[at]int{}
	for _, e := range l {
		count[at{e.Line, e.Column, e.Msg}]++
	}
	kept := map[at]int{}
	var out ErrorList
	var over *Error // the first error left out by maxErrors
	hidden := 0
	for _, e := range l {
		k := at{e.Line, e.Column, e.Msg}
		if kept[k] == maxRepeats {
			continue
		}
		if len(out) == maxErrors {
			if over == nil {
				over = &e
			}
			hidden++
			continue
		}
		kept[k]++
		if kept[k] == maxRepeats && count[k] > maxRepeats {
			e.Msg += fmt.Sprintf(" (and %d more times here, where aliases or ranges use it again)", count[k]-maxRepeats)
		}
		out = append(out, e)
	}
	if over != nil {
		out = append(out, Error{File: over.File, Line: over.Line, Column: over.Column,
			Msg: fmt.Sprintf("too many errors: %d more from here on not shown", hidden)})
	}
	return out
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to s, if
// one is close enough to be a likely typo, else "".
func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	limit := len(s) / 3
	if len(s) >= 3 {
		limit = max(1, limit)
	}
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance, with transposition of adjacent
// letters counted as one edit (the commonest typo).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		// Names this long are not typos of ours; do not spend time on them.
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
