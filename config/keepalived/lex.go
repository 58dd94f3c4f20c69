package keepalived

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
)

// Bounds on input, so a hostile or broken configuration cannot make the
// reader run away (the fuzz target holds the parser to them).
const (
	maxFileSize     = 4 << 20 // bytes per file
	maxLineLen      = 64 << 10
	maxIncludeDepth = 16
	maxFiles        = 256
	maxLogical      = 1 << 20 // logical lines over all files
	maxIncludes     = 1024    // include statements followed, over all files
)

// line is one logical line, as keepalived's read_line hands them to its
// keyword matcher: a physical line with comments removed, cut before and
// after every "{" and "}" outside double quotes, so "a { b }" is four
// logical lines ("a", "{", "b", "}") with the same position.
type line struct {
	pos   Pos
	words []string // alloc_strvec: whitespace separated, "..." kept as one word without the quotes
	raw   string   // the text the words came from (scripts are re-split from it with escapes)
	// slashes records a word "//" or one starting "/*" that keepalived
	// would read as a value or keyword; the checker warns about it.
	slashes int // index of the first such word, or -1
}

// Pos is where a keyword was written.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

func (p Pos) String() string {
	if p.File == "" {
		return fmt.Sprintf("line %d", p.Line)
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// FS is what the reader needs of a file system: Glob and ReadFile with
// slash-separated names (absolute names are allowed, unlike io/fs).
type FS interface {
	ReadFile(name string) ([]byte, error)
	Glob(pattern string) ([]string, error)
}

// OSFS reads the real file system.
type OSFS struct{}

// ReadFile reads a file, refusing ones larger than the reader accepts.
func (OSFS) ReadFile(name string) ([]byte, error) { return readFileBounded(name) }

// Glob is filepath.Glob.
func (OSFS) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }

// MapFS is an in-memory file system for tests and the fuzz target: names
// are cleaned slash paths.
type MapFS map[string]string

// ReadFile returns the named file.
func (m MapFS) ReadFile(name string) ([]byte, error) {
	s, ok := m[path.Clean(name)]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
	}
	return []byte(s), nil
}

// Glob matches pattern against the map's names.
func (m MapFS) Glob(pattern string) ([]string, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, err
	}
	var out []string
	for name := range m {
		if ok, _ := path.Match(path.Clean(pattern), name); ok {
			out = append(out, name)
		}
	}
	sortStrings(out)
	return out, nil
}

// lexer turns the main file and its includes into logical lines.
type lexer struct {
	fs    FS
	diags *diags
	out   []line
	stack []string // files being read, outermost first (include loops)
	files []string // every file read, in order
	depth int      // keepalived's block_depth, over all files
	open  []Pos    // where each still-open "{" was written
	// fatal is set when reading must stop (too much input).
	fatal bool
	// configID is -i (default the short host name) for "@ID" lines.
	configID string
	// defs are $NAME=value parameters.
	defs map[string]string
	// includes counts include statements followed.
	includes int
}

// preprocess applies keepalived's "@ID" / "@^ID" line conditions and
// "$NAME=value" parameters ($NAME or ${NAME} replaced in later lines).
func (lx *lexer) preprocess(s string) string {
	if s[0] == '@' {
		ofs := 1
		rev := len(s) > 1 && s[1] == '^'
		if rev {
			ofs = 2
		}
		sp := strings.IndexAny(s[ofs:], " \t")
		if sp < 0 {
			return ""
		}
		match := s[ofs:ofs+sp] == lx.configID && lx.configID != ""
		if match == rev {
			return ""
		}
		s = strings.TrimLeft(s[ofs+sp:], " \t")
	}
	if s != "" && s[0] == '$' {
		if name, val, ok := strings.Cut(s[1:], "="); ok && validParam(strings.TrimSpace(name)) {
			if lx.defs == nil {
				lx.defs = map[string]string{}
			}
			if len(lx.defs) < 1000 {
				lx.defs[strings.TrimSpace(name)] = strings.TrimSpace(val)
			}
			return ""
		}
	}
	if len(lx.defs) > 0 && strings.Contains(s, "$") {
		s = lx.substitute(s)
	}
	return s
}

func validParam(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// substitute replaces $NAME and ${NAME} once (no recursion, so a
// definition cannot make a line grow without bound).
func (lx *lexer) substitute(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || b.Len() > maxLineLen {
			b.WriteByte(s[i])
			continue
		}
		rest := s[i+1:]
		name, skip := "", 0
		if strings.HasPrefix(rest, "{") {
			if end := strings.IndexByte(rest, '}'); end > 0 {
				name, skip = rest[1:end], end+1
			}
		} else {
			j := 0
			for j < len(rest) && (rest[j] == '_' || rest[j] >= 'a' && rest[j] <= 'z' || rest[j] >= 'A' && rest[j] <= 'Z' || j > 0 && rest[j] >= '0' && rest[j] <= '9') {
				j++
			}
			name, skip = rest[:j], j
		}
		v, ok := lx.defs[name]
		if !ok {
			b.WriteByte('$')
			continue
		}
		b.WriteString(v)
		i += skip
	}
	return b.String()
}

func (lx *lexer) readFile(name string, from Pos) {
	if lx.fatal {
		return
	}
	clean := path.Clean(name)
	for _, f := range lx.stack {
		if f == clean {
			lx.diags.add(from, SevError, ClassInclude, fmt.Sprintf("include loop: %s includes itself (through %s)", name, strings.Join(lx.stack, " -> ")),
				"keepalived keeps opening the file until it runs out of file descriptors; remove the include")
			return
		}
	}
	if len(lx.stack) >= maxIncludeDepth {
		lx.diags.add(from, SevError, ClassInclude, fmt.Sprintf("includes nested deeper than %d - skipping %s", maxIncludeDepth, name), "")
		return
	}
	if len(lx.files) >= maxFiles {
		lx.diags.add(from, SevFatal, ClassInclude, fmt.Sprintf("more than %d configuration files", maxFiles), "")
		lx.fatal = true
		return
	}
	data, err := lx.fs.ReadFile(name)
	if err != nil {
		if from.Line == 0 {
			lx.diags.add(Pos{File: name}, SevFatal, ClassFileNotFound, fmt.Sprintf("Config files missing '%s'.", name), "")
		} else {
			lx.diags.add(from, SevWarning, ClassFileNotFound, fmt.Sprintf("Configuration file '%s' open problem (%v) - skipping", name, unwrapPathErr(err)), "")
		}
		return
	}
	lx.stack = append(lx.stack, clean)
	lx.files = append(lx.files, name)
	defer func() { lx.stack = lx.stack[:len(lx.stack)-1] }()
	text := string(data)
	for n := 1; text != "" && !lx.fatal; n++ {
		phys, rest, _ := strings.Cut(text, "\n")
		text = rest
		phys = strings.TrimSuffix(phys, "\r")
		pos := Pos{File: name, Line: n}
		if len(phys) > maxLineLen {
			lx.diags.add(pos, SevError, ClassGeneral, fmt.Sprintf("line longer than %d bytes - skipping", maxLineLen), "")
			continue
		}
		// A trailing backslash continues the line (decomment keeps it;
		// read_line joins the next line).
		for strings.HasSuffix(phys, "\\") && text != "" {
			next, r, _ := strings.Cut(text, "\n")
			text = r
			n++
			phys = strings.TrimSuffix(phys, "\\") + strings.TrimSuffix(next, "\r")
			if len(phys) > maxLineLen {
				break
			}
		}
		s := lx.decomment(phys, pos)
		if s == "" {
			continue
		}
		if s = lx.preprocess(s); s == "" {
			continue
		}
		if inc, ok := includeTarget(s); ok {
			lx.include(inc, pos)
			continue
		}
		lx.split(s, pos)
	}
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if e, ok := err.(*fs.PathError); ok {
		pe = e
		return pe.Err
	}
	return err
}

// includeTarget recognises "include PATTERN" and keepalived's stricter
// includer/includem/includew/includeb/includea (treated alike here).
func includeTarget(s string) (string, bool) {
	rest, ok := strings.CutPrefix(s, "include")
	if !ok || rest == "" {
		return "", false
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		if len(rest) < 2 || !strings.ContainsRune("rmwba", rune(rest[0])) || (rest[1] != ' ' && rest[1] != '\t') {
			return "", false
		}
		rest = rest[1:]
	}
	return strings.TrimSpace(rest), true
}

// include resolves a glob relative to the including file's directory
// (keepalived chdirs there) and reads each match in order. Csh braces
// {a,b} are expanded first.
func (lx *lexer) include(pattern string, from Pos) {
	if pattern == "" {
		lx.diags.add(from, SevWarning, ClassFileNotFound, "include without a file name", "")
		return
	}
	lx.includes++
	if lx.includes > maxIncludes {
		if lx.includes == maxIncludes+1 {
			lx.diags.add(from, SevError, ClassInclude, fmt.Sprintf("more than %d include statements - ignoring the rest", maxIncludes), "")
		}
		return
	}
	dir := path.Dir(from.File)
	var matched []string
	for _, p := range expandBraces(pattern, 0) {
		if !path.IsAbs(p) {
			p = path.Join(dir, p)
		}
		m, err := lx.fs.Glob(p)
		if err != nil {
			lx.diags.add(from, SevWarning, ClassFileNotFound, fmt.Sprintf("bad include pattern '%s': %v", pattern, err), "")
			continue
		}
		matched = append(matched, m...)
	}
	if len(matched) == 0 {
		lx.diags.add(from, SevWarning, ClassFileNotFound, fmt.Sprintf("Config files missing '%s'.", pattern),
			"keepalived's plain include ignores a pattern that matches nothing; check the path (it is relative to "+dir+")")
		return
	}
	for _, m := range matched {
		lx.readFile(m, from)
	}
}

// expandBraces expands csh-style {a,b} alternatives (no nesting limit
// beyond a small depth, so the fuzzer cannot make it explode).
func expandBraces(p string, depth int) []string {
	i := strings.IndexByte(p, '{')
	if i < 0 || depth > 4 {
		return []string{p}
	}
	j := strings.IndexByte(p[i:], '}')
	if j < 0 {
		return []string{p}
	}
	j += i
	var out []string
	for _, alt := range strings.Split(p[i+1:j], ",") {
		for _, tail := range expandBraces(p[j+1:], depth+1) {
			out = append(out, p[:i]+alt+tail)
			if len(out) > 64 {
				return out
			}
		}
	}
	return out
}

// decomment is keepalived's decomment(): leading blanks removed, "#" or "!"
// outside double quotes ends the line, "\#" and "\!" are literal.
func (lx *lexer) decomment(s string, pos Pos) string {
	s = strings.TrimLeft(s, " \t")
	var b strings.Builder
	quote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quote = !quote
		case c == '\\' && i+1 < len(s):
			if !quote && (s[i+1] == '#' || s[i+1] == '!') {
				i++
				c = s[i]
			} else {
				b.WriteByte(c)
				i++
				c = s[i]
			}
		case !quote && (c == '#' || c == '!'):
			return strings.TrimRight(b.String(), " \t")
		}
		b.WriteByte(c)
	}
	if quote {
		lx.diags.add(pos, SevError, ClassQuote, fmt.Sprintf("Unterminated quote '%s'", s), "close the string with \"")
	}
	return strings.TrimRight(b.String(), " \t")
}

// split cuts a decommented line at braces outside double quotes and
// tokenises each piece, tracking block depth as read_line does.
func (lx *lexer) split(s string, pos Pos) {
	for s != "" {
		cut := braceIndex(s)
		var piece string
		switch {
		case cut < 0:
			piece, s = s, ""
		case cut == 0:
			piece, s = s[:1], strings.TrimLeft(s[1:], " \t")
		default:
			piece, s = s[:cut], s[cut:]
		}
		piece = strings.TrimRight(piece, " \t")
		if piece == "" {
			continue
		}
		switch piece {
		case "{":
			lx.depth++
			lx.open = append(lx.open, pos)
		case "}":
			if lx.depth < 1 {
				lx.diags.add(pos, SevWarning, ClassUnexpectedEOB, "Extra '}' found", "this '}' closes nothing")
				lx.depth = 0
			} else {
				lx.depth--
				lx.open = lx.open[:len(lx.open)-1]
			}
		}
		if len(lx.out) >= maxLogical {
			lx.diags.add(pos, SevFatal, ClassGeneral, "configuration too large", "")
			lx.fatal = true
			return
		}
		lx.out = append(lx.out, lx.tokenize(piece, pos))
	}
}

func braceIndex(s string) int {
	if s[0] == '{' || s[0] == '}' {
		return 0
	}
	quote := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quote = !quote
		case '{', '}':
			if !quote {
				return i
			}
		}
	}
	return -1
}

// tokenize is alloc_strvec_r: words separated by blanks; a word starting
// with " runs to the next " and loses its quotes; a " ends a bare word.
func (lx *lexer) tokenize(s string, pos Pos) line {
	l := line{pos: pos, raw: s, slashes: -1}
	for {
		s = strings.TrimLeft(s, " \t\v\f\r")
		if s == "" {
			break
		}
		var w string
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				lx.diags.add(pos, SevError, ClassQuote, fmt.Sprintf("Unmatched quote: '%s'", l.raw), "close the string with \"")
				break
			}
			w, s = s[1:1+end], s[2+end:]
		} else {
			end := strings.IndexAny(s, " \t\v\f\r\"")
			if end < 0 {
				end = len(s)
			}
			w, s = s[:end], s[end:]
		}
		if l.slashes < 0 && (w == "//" || strings.HasPrefix(w, "//") || strings.HasPrefix(w, "/*") || w == "*/") {
			l.slashes = len(l.words)
		}
		l.words = append(l.words, w)
	}
	return l
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
