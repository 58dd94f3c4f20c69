package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// Rule is one command of a rules file and where it was written.
type Rule struct {
	File    string  `json:"file,omitempty"`
	Line    int     `json:"line"`
	Command Command `json:"command"`
}

// maxRuleLine bounds a rules-file line; ipvsadm's is shorter still.
const maxRuleLine = 64 << 10

// ParseRules parses the ipvsadm -R format, resolving names from /etc/hosts
// and /etc/services only. See Parser.ParseRuleLines.
func ParseRules(r io.Reader, name string) ([]Command, error) {
	return Parser{Names: SystemNames()}.ParseRules(r, name)
}

// ParseRules is ParseRuleLines without the line numbers.
func (p Parser) ParseRules(r io.Reader, name string) ([]Command, error) {
	rules, err := p.ParseRuleLines(r, name)
	if err != nil {
		return nil, err
	}
	cmds := make([]Command, len(rules))
	for i, rl := range rules {
		cmds[i] = rl.Command
	}
	return cmds, nil
}

// ParseRuleLines parses the ipvsadm -R format: one command line per line,
// optionally starting with "ipvsadm" or "lvsadm" (or a path ending so),
// blank lines and # comments skipped. Only commands that change the
// configuration are allowed (-A -E -D -C -a -e -d -Z --set); -L, -S or -R in
// a rules file is an error rather than output in the middle of a restore.
//
// It is all or nothing: on any bad line it returns no rules and an error
// "name:line: message".
func (p Parser) ParseRuleLines(r io.Reader, name string) ([]Rule, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxRuleLine)
	var rules []Rule
	line := 0
	for sc.Scan() {
		line++
		args := ruleFields(sc.Text())
		if len(args) == 0 {
			continue
		}
		cmd, err := p.ParseArgs(args)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if !allowedInRules(cmd.Op) {
			return nil, fmt.Errorf("%s:%d: %s: only -A -E -D -C -a -e -d -P -Q -Z --set belong in a rules file", name, line, args[0])
		}
		rules = append(rules, Rule{File: name, Line: line, Command: cmd})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", name, line+1, maxRuleLine)
		}
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return rules, nil
}

// ruleFields splits a rules line into arguments: whitespace separated, a
// word starting with # begins a comment, a leading ipvsadm/lvsadm is dropped.
func ruleFields(line string) []string {
	f := strings.Fields(line)
	for i, w := range f {
		if strings.HasPrefix(w, "#") {
			f = f[:i]
			break
		}
	}
	if len(f) > 0 {
		if b := path.Base(f[0]); b == "ipvsadm" || b == "lvsadm" {
			f = f[1:]
		}
	}
	return f
}

func allowedInRules(op Op) bool {
	switch op {
	case OpAddService, OpEditService, OpDeleteService, OpClear,
		OpAddDest, OpEditDest, OpDeleteDest, OpZero, OpSetTimeouts,
		OpAddLaddr, OpDelLaddr:
		return true
	}
	return false
}

// LoadRules parses a rules file and applies it, in order, to an empty Table.
// Every error, parse or semantic ("-a" for a service not yet added), names
// the file and line; on error nothing is returned.
func (p Parser) LoadRules(r io.Reader, name string) (*Table, error) {
	rules, err := p.ParseRuleLines(r, name)
	if err != nil {
		return nil, err
	}
	t := &Table{}
	if err := t.ApplyRules(rules); err != nil {
		return nil, err
	}
	return t, nil
}

// LoadRulesFile reads an ipvsadm -R rules file into a Table (names from
// /etc/hosts and /etc/services only). See Parser.LoadRules.
func LoadRulesFile(filename string) (*Table, error) {
	f, err := os.Open(filename)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	defer f.Close()
	return Parser{Names: SystemNames()}.LoadRules(f, filename)
}
