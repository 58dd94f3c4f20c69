package keepalived

import (
	"fmt"
	"os"
	"strings"
)

// Severity says what a problem does to the load.
type Severity uint8

const (
	// SevWarning: keepalived warns, skips or clamps the item, and runs the
	// rest (unknown keyword, "//" used as a comment, a value out of range).
	SevWarning Severity = iota + 1
	// SevError: the item (an instance, a virtual server, a real server) is
	// refused and the rest runs; keepalived reports these the same way as
	// warnings (CONFIG_GENERAL_ERROR). A service with est_timeout is refused so.
	SevError
	// SevSecurity: scripts would run as root without
	// enable_script_security (keepalived -t exits 6).
	SevSecurity
	// SevFatal: nothing is applied (keepalived aborts: a keyword missing
	// its parameter, a main file that cannot be read).
	SevFatal
)

var sevText = [...]string{SevWarning: "warning", SevError: "error", SevSecurity: "security", SevFatal: "fatal"}

func (s Severity) String() string {
	if int(s) < len(sevText) && sevText[s] != "" {
		return sevText[s]
	}
	return fmt.Sprintf("Severity(%d)", s)
}

// Class is keepalived's config_err_t, plus the classes lvskeepalived adds.
type Class uint8

const (
	ClassGeneral Class = iota + 1 // CONFIG_GENERAL_ERROR
	ClassFileNotFound
	ClassUnknownKeyword
	ClassUnexpectedBOB
	ClassMissingBOB
	ClassUnexpectedEOB
	ClassMissingEOB
	ClassQuote
	ClassMissingParameter
	ClassInvalidNumber
	ClassWarning
	ClassDeprecated
	ClassSecurity
	ClassInclude // include loops and depth (keepalived has no class: it runs out of descriptors)
	// ClassSlashComment is "//" or "/* */" written as a comment: keepalived
	// reads the words as keywords or values (silently, after a complete
	// statement).
	ClassSlashComment
	// ClassFullNAT marks the Alibaba fork's FULLNAT keywords: parsed, and
	// refused until lvsd forwards FULLNAT.
	ClassFullNAT
	// ClassLvsdLimit is a value keepalived accepts and lvsd cannot hold
	// (a real-server weight above ipvsadm's 65535): clamped, with a warning.
	ClassLvsdLimit
)

// Diag is one reported problem. Every Diag names file and line, also where
// keepalived prints neither (missing braces, validation after parsing).
type Diag struct {
	Pos      Pos      `json:"pos"`
	EndLine  int      `json:"end_line,omitempty"` // last line of the construct, for block-wide problems
	Severity Severity `json:"severity"`
	Class    Class    `json:"class"`
	Msg      string   `json:"msg"`
	Hint     string   `json:"hint,omitempty"`
	// Unplaced marks problems keepalived prints without a place (checks
	// after parsing, missing braces); here they name the block's first
	// line.
	Unplaced bool `json:"unplaced,omitempty"`
}

// String is "file:line: severity: message (hint)".
func (d Diag) String() string {
	var b strings.Builder
	b.WriteString(d.Pos.String())
	b.WriteString(": ")
	b.WriteString(d.Severity.String())
	b.WriteString(": ")
	b.WriteString(d.Msg)
	if d.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(d.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// maxDiags bounds the report; a file of garbage says so once.
const maxDiags = 1000

type diags struct {
	list    []Diag
	dropped int
	// mute, when it returns true, drops what is added (the second pass
	// after a fatal error repeats what the first reported).
	mute func() bool
}

func (d *diags) add(pos Pos, sev Severity, class Class, msg, hint string) *Diag {
	if d.mute != nil && d.mute() {
		return &Diag{}
	}
	if len(d.list) >= maxDiags {
		d.dropped++
		return &Diag{}
	}
	if hint == "" {
		hint = defaultHint(sev, class)
	}
	d.list = append(d.list, Diag{Pos: pos, Severity: sev, Class: class, Msg: msg, Hint: hint})
	return &d.list[len(d.list)-1]
}

func readFileBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory", name)
	}
	if st.Size() > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxFileSize)
	}
	buf := make([]byte, st.Size())
	n, err := f.Read(buf)
	if err != nil && n != len(buf) {
		return nil, err
	}
	return buf[:n], nil
}

// defaultHint says what happens next when the message itself does not.
func defaultHint(sev Severity, class Class) string {
	switch {
	case class == ClassInvalidNumber:
		return "keepalived ignores the value and keeps the default"
	case sev == SevFatal:
		return "keepalived stops reading here; nothing is applied"
	case class == ClassFileNotFound:
		return "check the path"
	case sev == SevError:
		return "keepalived skips or defaults this item and runs the rest"
	case sev == SevWarning:
		return "keepalived warns and runs the rest"
	}
	return ""
}
