// Package spec reads lvslab scenario files: one YAML file holding a lab's
// topology, processes, workload, fault timeline and expectations.
//
// Load parses with yaml.v3 nodes, so every problem is reported as
// "file:line:column: field.path: message"; unknown keys are errors with a
// "did you mean" suggestion; references between parts of the file are
// resolved and checked; and role defaults are filled in, so the Spec it
// returns is the resolved one a lab is built from.
package spec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Options adjust loading.
type Options struct {
	// Vars override the file's vars: (lvslab run --var name=value).
	Vars map[string]string
	// NoDefaults leaves role defaults out: the spec as written, checked.
	NoDefaults bool
	// Name replaces the scenario's name, which names the lab and its
	// namespaces: to run two copies at once.
	Name string
}

// Load reads, checks and resolves the scenario file at path. Its error, if
// any, is an ErrorList.
func Load(path string) (*Spec, error) { return LoadWith(path, Options{}) }

// LoadWith is Load with options.
func LoadWith(path string, opts Options) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, ErrorList{{File: path, Msg: fmt.Sprintf("cannot read scenario: %v", errors.Unwrap(err))}}
	}
	return Parse(data, path, opts)
}

var yamlLine = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// Parse checks and resolves a scenario held in memory; file names it in
// messages, and relative paths in it are taken from file's directory.
func Parse(data []byte, file string, opts Options) (s *Spec, err error) {
	root, perr := parseYAML(data, file)
	if perr != nil {
		return nil, perr
	}
	d := newDecoder(file)
	// vars: first, so that ${name} anywhere in the file can be expanded.
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "vars" {
			var vars map[string]string
			d.decode(root.Content[i+1], reflectValue(&vars), "vars", fieldInfo{})
			for k, v := range vars {
				d.vars[k] = v
			}
		}
	}
	if d.over {
		// vars: alone exhausted a budget: the main pass would stop
		// silently at the first value.
		return nil, d.errs.sorted()
	}
	for k, v := range opts.Vars {
		d.vars[k] = v
	}
	// The main pass decodes vars: again, with the whole budget.
	d.errs, d.budget, d.bytes = nil, decodeBudget, expandBudget
	s = &Spec{File: file}
	d.decode(root, reflectValue(s), "", fieldInfo{})
	s.pos = d.pos
	if opts.Name != "" {
		s.Name = opts.Name
	}
	// Validate even after decoding errors, so one run shows every problem;
	// but what a failed field left at its zero value would only repeat
	// them, so validation errors on or around those fields are dropped.
	verrs := validate(s)
	if len(d.errs) > 0 {
		errs := d.errs
		for _, v := range verrs {
			if !related(v.Path, d.errs) {
				errs = append(errs, v)
			}
		}
		return nil, errs.sorted()
	}
	if len(verrs) > 0 {
		return nil, verrs.sorted()
	}
	if !opts.NoDefaults {
		if errs := resolve(s); len(errs) > 0 {
			return nil, errs.sorted()
		}
	}
	return s, nil
}

// parseYAML returns the top-level mapping of a one-document file.
func parseYAML(data []byte, file string) (root *yaml.Node, err error) {
	defer func() {
		// yaml.v3 has had panics on hostile input; a bad file must be an
		// error, never a crash.
		if r := recover(); r != nil {
			root, err = nil, ErrorList{{File: file, Line: 1, Column: 1, Msg: fmt.Sprintf("yaml: cannot parse: %v", r)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			return nil, ErrorList{{File: file, Line: 1, Column: 1, Msg: "empty scenario file"}}
		}
		return nil, ErrorList{yamlError(file, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, ErrorList{{File: file, Line: extra.Line, Column: extra.Column, Msg: "one scenario per file: a second YAML document starts here"}}
	} else if err.Error() != "EOF" {
		return nil, ErrorList{yamlError(file, err)}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, ErrorList{{File: file, Line: 1, Column: 1, Msg: "empty scenario file"}}
	}
	root = doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, ErrorList{{File: file, Line: root.Line, Column: root.Column, Msg: "a scenario is a mapping (name:, segments:, nodes:, ...)"}}
	}
	return root, nil
}

func yamlError(file string, err error) Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Error{File: file, Line: line, Column: 1, Msg: "yaml: " + m[2]}
	}
	return Error{File: file, Line: 1, Column: 1, Msg: strings.TrimSpace(msg)}
}

// Pos is where the field at path (as in Error.Path) was written; the
// position of the nearest enclosing field when path itself was not.
func (s *Spec) Pos(path string) Pos {
	for {
		if p, ok := s.pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			if p, ok := s.pos[""]; ok {
				return p
			}
			return Pos{}
		}
		path = path[:i]
	}
}

// Errorf makes a positioned Error about the field at path, for later stages
// (building, running) that find a problem the file is responsible for.
func (s *Spec) Errorf(path, format string, args ...any) Error {
	p := s.Pos(path)
	return Error{File: s.File, Line: p.Line, Column: p.Column, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Dir is the directory relative file references are taken from.
func (s *Spec) Dir() string {
	if s.File == "" {
		return "."
	}
	return filepath.Dir(s.File)
}

// Abs resolves a file reference of the spec (files.from, rules_file, ...).
func (s *Spec) Abs(ref string) string {
	if filepath.IsAbs(ref) {
		return ref
	}
	return filepath.Join(s.Dir(), ref)
}

// related reports whether path is one of the errors' paths, inside one, or
// encloses one.
func related(path string, errs ErrorList) bool {
	within := func(inner, outer string) bool {
		return inner == outer || outer == "" || strings.HasPrefix(inner, outer+".") || strings.HasPrefix(inner, outer+"[")
	}
	for _, e := range errs {
		if within(path, e.Path) || within(e.Path, path) {
			return true
		}
	}
	return false
}
