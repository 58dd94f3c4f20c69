package keepalived

import (
	"fmt"
	"os"

	"lvslab/config"
	"sort"
	"strconv"
	"strings"
	"time"
)

// kw is one keyword of a block, as keepalived's install_keyword makes them.
type kw struct {
	fn  func(p *parser, l *line)
	sub *block // a sublevel: its lines are matched against sub's keywords
}

// block is a keyword table (keepalived's keyword vector of one level).
type block struct {
	name string
	kws  map[string]*kw
	end  func(p *parser) // install_sublevel_end_handler
}

func (b *block) add(name string, fn func(p *parser, l *line)) *kw {
	k := &kw{fn: fn}
	b.kws[name] = k
	return k
}

func (b *block) sublevel(name string, fn func(p *parser, l *line), sub *block) {
	b.kws[name] = &kw{fn: fn, sub: sub}
}

func newBlock(name string) *block { return &block{name: name, kws: map[string]*kw{}} }

// parser walks the logical lines with keepalived's process_stream.
type parser struct {
	lines []line
	i     int
	diags *diags
	cfg   *Config
	stop  bool // a fatal error: keepalived aborts here
	skip  int  // keepalived's skip_sublevel

	vs          *VirtualServer
	rs          *RealServer
	chk         *Checker
	url         *URL
	vi          *VRRPInstance
	sg          *SyncGroup
	scr         *VRRPScript
	tf          *TrackFile
	seenScripts bool
	// ifExists, when set, checks vrrp_instance interfaces (keepalived -t
	// checks the current namespace's).
	ifExists func(string) bool
	opts     Options
	// curSub is the subsystem of the root block being read; dead are the
	// subsystems whose reading ended with a fatal error.
	curSub string
	dead   map[string]bool
	// suggested counts "did you mean" searches, bounded so a file of
	// garbage costs linear time.
	suggested int
}

const maxSuggestions = 100

// rootSubsystem says which keepalived process reads a root keyword.
var rootSubsystem = map[string]string{
	"virtual_server": "check", "virtual_server_group": "check", "SSL": "check", "local_address_group": "check",
	"vrrp_instance": "vrrp", "vrrp_sync_group": "vrrp", "vrrp_script": "vrrp", "static_ipaddress": "vrrp",
	"static_routes": "vrrp", "static_rules": "vrrp", "track_group": "vrrp", "garp_group": "vrrp",
	"linkbeat_interfaces": "vrrp", "vrrp_track_process": "vrrp", "interface_up_down_delays": "vrrp",
	"track_file": "vrrp", "vrrp_track_file": "vrrp", "bfd_instance": "bfd",
}

// Load reads the keepalived.conf at name (and what it includes) from the
// real file system.
func Load(name string) *Config { return LoadFS(OSFS{}, name) }

// LoadFS reads a configuration from fsys. It never fails: problems are
// in Config.Diags, and Config.Fatal() says whether nothing may be applied.
func LoadFS(fsys FS, name string) *Config { return load(fsys, name, Options{}) }

func load(fsys FS, name string, o Options) *Config {
	d := &diags{}
	lx := &lexer{fs: fsys, diags: d, configID: o.ConfigID}
	if lx.configID == "" {
		if h, err := os.Hostname(); err == nil {
			lx.configID, _, _ = strings.Cut(h, ".")
		}
	}
	lx.readFile(name, Pos{})
	cfg := newConfig()
	cfg.Files = lx.files
	if lx.depth > 0 && len(lx.open) > 0 {
		at := lx.open[len(lx.open)-1]
		d.add(at, SevWarning, ClassMissingEOB, fmt.Sprintf("There are %d missing '}'s or extra '{'s", lx.depth),
			fmt.Sprintf("the block opened here (and %d more) is never closed", lx.depth-1)).Unplaced = true
	}
	p := &parser{lines: lx.lines(), diags: d, cfg: cfg, opts: o, ifExists: o.InterfaceExists}
	if !lx.fatal {
		p.stream(rootBlock(), false, 0)
		if !p.stop {
			p.finish()
		} else if p.curSub != "global" {
			// keepalived parses the file once per process (checker, VRRP,
			// BFD); a fatal error ends only its own process's reading, the
			// others go on. A second pass, with that subsystem's blocks
			// skipped and the problems already reported muted, finds what
			// the others report.
			at := p.i
			p2 := &parser{lines: p.lines, diags: d, cfg: newConfig(), opts: o, ifExists: o.InterfaceExists,
				dead: map[string]bool{p.curSub: true}}
			d.mute = func() bool { return p2.i <= at }
			p2.stream(rootBlock(), false, 0)
			d.mute = nil
			if !p2.stop {
				p2.finish()
			}
		}
	}
	if d.dropped > 0 {
		d.add(Pos{File: name}, SevWarning, ClassGeneral, fmt.Sprintf("%d more problems not shown", d.dropped), "")
	}
	cfg.Diags = d.list
	sortDiags(cfg)
	settleForward(cfg)
	return cfg
}

func (lx *lexer) lines() []line { return lx.out }

// sortDiags orders problems by file (in reading order) and line; the
// lexer's (includes, braces) and the parser's come out interleaved.
func sortDiags(cfg *Config) {
	idx := map[string]int{}
	for i, f := range cfg.Files {
		if _, ok := idx[f]; !ok {
			idx[f] = i
		}
	}
	sort.SliceStable(cfg.Diags, func(i, j int) bool {
		a, b := cfg.Diags[i], cfg.Diags[j]
		if a.Unplaced != b.Unplaced {
			return !a.Unplaced
		}
		if fa, fb := idx[a.Pos.File], idx[b.Pos.File]; fa != fb {
			return fa < fb
		}
		return a.Pos.Line < b.Pos.Line
	})
}

func newConfig() *Config {
	return &Config{Global: Global{VRRPVersion: 2, VRRPGarpMasterDelay: 5 * time.Second, VRRPGarpMasterRepeat: 5}}
}

func (p *parser) warn(l *line, class Class, hint, format string, args ...any) *Diag {
	return p.diags.add(l.pos, SevWarning, class, fmt.Sprintf(format, args...), hint)
}

func (p *parser) errorf(l *line, class Class, hint, format string, args ...any) *Diag {
	return p.diags.add(l.pos, SevError, class, fmt.Sprintf(format, args...), hint)
}

// stream is process_stream: match each logical line's first word against
// b's keywords, descend into sublevels, stop at the closing "}". It
// returns true when a skipped block ended (so no close handler runs).
func (p *parser) stream(b *block, needBOB bool, level int) bool {
	for p.i < len(p.lines) && !p.stop {
		l := &p.lines[p.i]
		p.i++
		if len(l.words) == 0 {
			continue
		}
		w0 := l.words[0]
		if p.skip == -1 {
			if w0 == "{" {
				p.skip = 1
				needBOB = false
				continue
			}
			p.skip = 0
		}
		if p.skip > 0 {
			switch w0 {
			case "{":
				p.skip++
			case "}":
				p.skip--
				if p.skip == 0 && level > 0 {
					return true
				}
			}
			continue
		}
		if needBOB {
			needBOB = false
			if w0 == "{" && level > 0 {
				continue
			}
			p.warn(l, ClassMissingBOB, "a block keyword must be followed by '{'", "Missing '{' at beginning of configuration block")
		} else if w0 == "{" {
			p.warn(l, ClassUnexpectedBOB, "the keyword before it takes no block here; its contents are read as keywords of the enclosing block", "Unexpected '{' - ignoring")
			continue
		}
		if w0 == "}" && level > 0 {
			return false
		}
		k := b.kws[w0]
		if k == nil {
			p.unknown(b, l)
			continue
		}
		if level == 0 {
			p.curSub = rootSubsystem[w0]
			if p.curSub == "" {
				p.curSub = "global"
			}
			if p.dead[p.curSub] {
				p.skipBlock()
				continue
			}
		}
		if k.fn != nil {
			k.fn(p, l)
		}
		if k.sub != nil && !p.stop {
			if !p.stream(k.sub, true, level+1) && k.sub.end != nil && !p.stop {
				k.sub.end(p)
			}
		}
	}
	return false
}

func (p *parser) unknown(b *block, l *line) {
	w := l.words[0]
	hint := ""
	switch {
	case l.slashes == 0:
		hint = "'//' and '/* */' are not comments in keepalived.conf: use '#' or '!'"
		p.warn(l, ClassSlashComment, hint, "Unknown keyword '%s'", w)
		return
	case w == "}":
		hint = "a '}' with no block open"
	case b.name == "vrrp_sync_group":
		hint = "instance names go inside group { " + w + " ... }"
	case p.suggested >= maxSuggestions || len(p.diags.list) >= maxDiags:
		hint = "not a keyword of " + b.name + "; keepalived ignores the line"
	default:
		p.suggested++
		hint = suggest(b, w)
	}
	if b.name == "root" && (w == "real_server" || w == "sorry_server" || w == "delay_loop" || w == "lb_algo" || w == "lb_kind") {
		hint = w + " belongs inside a virtual_server block: was that block closed too early?"
	}
	p.warn(l, ClassUnknownKeyword, hint, "Unknown keyword '%s'", w)
}

// skipBlock is keepalived's skip_block(true): ignore the block that follows.
func (p *parser) skipBlock() { p.skip = -1 }

// need returns word i of l, or reports keepalived's fatal "missing a
// parameter" and stops the parse (keepalived exits there).
func (p *parser) need(l *line, i int) (string, bool) {
	if i < len(l.words) {
		return l.words[i], true
	}
	p.diags.add(l.pos, SevFatal, ClassMissingParameter,
		fmt.Sprintf("*** Configuration line starting `%s` is missing a parameter after keyword `%s` at word position %d", l.words[0], l.words[i-1], i+1),
		"keepalived stops reading the configuration here; give the keyword its value")
	p.stop = true
	return "", false
}

// extra warns about words after a keyword that takes none, when they look
// like a "//" or "/* */" comment (keepalived ignores them silently).
func (p *parser) extra(l *line, max int) {
	if l.slashes >= max && l.slashes > 0 {
		p.warn(l, ClassSlashComment, "'//' and '/* */' are not comments in keepalived.conf: use '#' or '!'",
			"'%s' is not a comment: keepalived ignores the words from here", l.words[l.slashes])
	}
}

// valueBlock is alloc_value_block: the lines of a { } block of values (the
// keyword's own line is l). It returns the value lines.
func (p *parser) valueBlock(l *line, nameWords int) []*line {
	if len(l.words) > nameWords {
		p.errorf(l, ClassGeneral, "", "Block %s has extra parameters %s ...", l.words[0], l.words[nameWords])
	}
	var out []*line
	needBOB := true
	for p.i < len(p.lines) {
		v := &p.lines[p.i]
		p.i++
		if len(v.words) == 0 {
			continue
		}
		if needBOB {
			needBOB = false
			if v.words[0] == "{" {
				continue
			}
			// keepalived only logs this (LOG_INFO), it is not a config error.
		}
		if v.words[0] == "}" {
			break
		}
		out = append(out, v)
	}
	return out
}

// --- value readers, with keepalived's messages -------------------------

// readUint parses an unsigned decimal in [min, max].
func (p *parser) readUint(l *line, s string, min, max uint64) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		if strings.HasPrefix(s, "-") {
			if _, e2 := strconv.ParseInt(s, 10, 64); e2 == nil {
				p.warn(l, ClassInvalidNumber, fmt.Sprintf("keepalived ignores the value; give %d to %d", min, max), "number '%s' outside range [%d, %d]", s, min, max)
				return 0, false
			}
		}
		p.warn(l, ClassInvalidNumber, "", "invalid number '%s'", s)
		return 0, false
	}
	if v < min || v > max {
		p.warn(l, ClassInvalidNumber, fmt.Sprintf("keepalived ignores the value; give %d to %d", min, max), "number '%s' outside range [%d, %d]", s, min, max)
		return 0, false
	}
	return v, true
}

// readInt parses a signed decimal in [min, max].
func (p *parser) readInt(l *line, s string, min, max int64) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		p.warn(l, ClassInvalidNumber, "", "invalid number '%s'", s)
		return 0, false
	}
	if v < min || v > max {
		p.warn(l, ClassInvalidNumber, fmt.Sprintf("keepalived ignores the value; give %d to %d", min, max), "number '%s' outside range [%d, %d]", s, min, max)
		return 0, false
	}
	return v, true
}

// parseTimer reads keepalived's <TIMER>: seconds with up to 6 decimals.
func parseTimer(s string) (time.Duration, bool) {
	if s == "" || s[0] == '-' || s[0] == '+' {
		return 0, false
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" && (!hasFrac || frac == "") {
		return 0, false
	}
	var w uint64
	if whole != "" {
		var err error
		if w, err = strconv.ParseUint(whole, 10, 32); err != nil {
			return 0, false
		}
	}
	if len(frac) > 6 {
		return 0, false
	}
	var us uint64
	if frac != "" {
		f, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return 0, false
		}
		us = f
		for i := len(frac); i < 6; i++ {
			us *= 10
		}
	}
	return time.Duration(w)*time.Second + time.Duration(us)*time.Microsecond, true
}

// boolArg reads an optional <BOOL> (no value means true).
func (p *parser) boolArg(l *line, what string) (bool, bool) {
	if len(l.words) < 2 || l.slashes == 1 {
		p.extra(l, 1)
		return true, true
	}
	switch l.words[1] {
	case "true", "on", "yes":
		return true, true
	case "false", "off", "no":
		return false, true
	}
	p.errorf(l, ClassGeneral, "use on|off|true|false|yes|no", "Invalid %s parameter %s", what, l.words[1])
	return false, false
}

// script splits a script keyword's value as keepalived does: the raw text
// after the keyword, with quotes and escapes (alloc_strvec_quoted_escaped);
// an optional "user [group]" follows a quoted command.
func (p *parser) script(l *line) *Script {
	if _, ok := p.need(l, 1); !ok {
		return nil
	}
	p.seenScripts = true
	raw := strings.TrimLeft(l.raw, " \t")
	raw = strings.TrimLeft(strings.TrimPrefix(raw, l.words[0]), " \t")
	words, err := splitQuotedEscaped(raw)
	if err != nil {
		p.errorf(l, ClassQuote, "", "%v", err)
		return nil
	}
	if len(words) == 0 {
		return nil
	}
	s := &Script{Pos: l.pos}
	// keepalived: if the first word (the quoted command) was one quoted
	// string, split it again into program and arguments; later words are
	// user and group.
	first, _ := splitQuotedEscaped(words[0])
	if len(first) > 1 || (strings.HasPrefix(raw, "\"") || strings.HasPrefix(raw, "'")) {
		s.Args = first
		if len(words) > 1 {
			s.User = words[1]
		}
		if len(words) > 2 {
			s.Group = words[2]
		}
	} else {
		s.Args = words
	}
	if len(s.Args) == 0 {
		return nil
	}
	return s
}

// splitQuotedEscaped is alloc_strvec_quoted_escaped.
func splitQuotedEscaped(s string) ([]string, error) {
	var out []string
	var b strings.Builder
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		b.Reset()
		var quote byte
		for i < len(s) {
			c := s[i]
			if quote == 0 && (c == ' ' || c == '\t') {
				break
			}
			switch {
			case c == '\\':
				i++
				if i >= len(s) {
					return nil, fmt.Errorf("missing escape char at end: '%s'", s)
				}
				b.WriteByte(unescape(s, &i))
				continue
			case quote != 0 && c == quote:
				quote = 0
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
			default:
				b.WriteByte(c)
			}
			i++
		}
		if quote != 0 {
			return nil, fmt.Errorf("string '%s': missing terminating %c", s, quote)
		}
		out = append(out, b.String())
	}
	return out, nil
}

// unescape reads one escape at s[*i] (after the backslash) and advances.
func unescape(s string, i *int) byte {
	c := s[*i]
	*i++
	switch c {
	case 'a':
		return '\a'
	case 'b':
		return '\b'
	case 'E':
		return 0x1b
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'v':
		return '\v'
	case 'x':
		var v byte
		n := 0
		for *i < len(s) && n < 2 && isHex(s[*i]) {
			v = v<<4 | hexVal(s[*i])
			*i++
			n++
		}
		if n == 0 {
			return 'x'
		}
		return v
	case 'c':
		if *i < len(s) {
			v := s[*i] & 0x1f
			*i++
			return v
		}
		return 'c'
	}
	if c >= '0' && c <= '7' {
		v := c - '0'
		for n := 0; n < 2 && *i < len(s) && s[*i] >= '0' && s[*i] <= '7'; n++ {
			v = v<<3 + s[*i] - '0'
			*i++
		}
		return v
	}
	return c
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// suggest names a known keyword close to w, for the unknown-keyword hint.
func suggest(b *block, w string) string {
	if h, ok := knownHints[w]; ok {
		return h
	}
	best, bestD := "", 3
	for k := range b.kws {
		if d := editDistance(w, k, bestD); d < bestD || (d == bestD && best != "" && k < best) {
			if d < bestD {
				best, bestD = k, d
			}
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean '%s'? keepalived ignores the line", best)
	}
	return fmt.Sprintf("not a keyword of %s; keepalived ignores the line", b.name)
}

// knownHints are the mistakes the seed documents make.
var knownHints = map[string]string{
	"lvs_id":                   "lvs_id is keepalived 1.x's name; 2.2.7 calls it router_id",
	"smtp_connection_timeout":  "the keyword is smtp_connect_timeout",
	"vrrp_rsync_group":         "the keyword is vrrp_sync_group",
	"lvs_sync_daemon_inteface": "the keyword is lvs_sync_daemon_interface",
	"local_address_group":      "a FULLNAT (Alibaba keepalived) keyword",
}

func editDistance(a, b string, limit int) int {
	if len(a) > 64 || len(b) > 64 {
		return limit
	}
	d := abs(len(a) - len(b))
	if d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			c = min(c, prev[j]+1, cur[j-1]+1)
			cur[j] = c
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// settleForward replaces the "not given" marker wherever validation did not
// (a fatal error stops it): keepalived's default is NAT.
func settleForward(cfg *Config) {
	for _, vs := range cfg.VirtualServers {
		if vs.Forward == forwardUnset {
			vs.Forward = config.ForwardMasq
		}
		rss := vs.RealServers
		if vs.SorryServer != nil {
			rss = append(rss[:len(rss):len(rss)], vs.SorryServer)
		}
		for _, rs := range rss {
			if rs.Forward == forwardUnset || (!rs.setForward && rs.Forward == 0 && vs.Forward != 0) {
				rs.Forward = vs.Forward
			}
		}
	}
}
