package spec

import (
	"encoding"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The decoder walks yaml.v3 nodes into the spec types by reflection over
// their struct tags (see types.go), so that every problem carries the line
// and column of the text it is about, unknown keys are errors with a
// suggestion, and every field's position is kept for the validator.

// decodeBudget bounds the work of one decode: YAML aliases can make a small
// file expand exponentially ("billion laughs").
const decodeBudget = 200_000

// expandBudget bounds the size of one decode: the bytes of every value
// stored, after aliases, ${vars} and {{i}} are expanded. A count of values
// alone lets a small file alias a long string into gigabytes.
const expandBudget = 16 << 20

// maxRange bounds name[a..b] expansion.
const maxRange = 256

// RuntimeVars are filled in when a process starts, not when the file is
// read; ${name} for these is left as written.
func RuntimeVars() []string { return []string{"node", "node_dir", "run_dir", "lab", "bin_dir"} }

func isRuntimeVar(name string) bool {
	switch name {
	case "node", "node_dir", "run_dir", "lab", "bin_dir":
		return true
	}
	return false
}

type decoder struct {
	file    string
	errs    ErrorList
	pos     map[string]Pos
	vars    map[string]string
	iter    int // current {{i}}, valid when inRange
	inRange bool
	budget  int
	bytes   int // what is left of expandBudget
	over    bool
	fields  map[reflect.Type][]fieldInfo
}

type fieldInfo struct {
	name                              string
	index                             int
	required, keyed, key, value, pair bool
	doc                               string
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	enumType            = reflect.TypeFor[enum]()
	rangeKey            = regexp.MustCompile(`^(.+)\[([0-9]{1,4})\.\.([0-9]{1,4})\]$`)
	iterRef             = regexp.MustCompile(`\{\{\s*i\s*(?:([+-])\s*([0-9]{1,6}))?\s*\}\}`)
	varRef              = regexp.MustCompile(`\$\$\{|\$\{([^}]*)\}`)
	simpleKey           = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// enum is implemented by string types with a fixed set of values.
type enum interface{ enumValues() []string }

func newDecoder(file string) *decoder {
	return &decoder{
		file:   file,
		pos:    map[string]Pos{},
		vars:   map[string]string{},
		budget: decodeBudget,
		bytes:  expandBudget,
		fields: map[reflect.Type][]fieldInfo{},
	}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	if d.over {
		// Past a budget, values are left empty: what that causes is not
		// the file's problem, the budget error says what is.
		return
	}
	e := Error{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// structFields lists the decodable fields of a struct type.
func (d *decoder) structFields(t reflect.Type) []fieldInfo {
	if fs, ok := d.fields[t]; ok {
		return fs
	}
	fs := typeFields(t)
	d.fields[t] = fs
	return fs
}

func typeFields(t reflect.Type) []fieldInfo {
	var fs []fieldInfo
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fi := fieldInfo{index: i, doc: f.Tag.Get("doc")}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		fi.name = name
		for opt := range strings.SplitSeq(f.Tag.Get("lvs"), ",") {
			switch opt {
			case "required":
				fi.required = true
			case "keyed":
				fi.keyed = true
			case "key":
				fi.key = true
			case "value":
				fi.value = true
			case "pair":
				fi.pair = true
			}
		}
		if name == "" || (name == "-" && !fi.key) {
			continue
		}
		fs = append(fs, fi)
	}
	return fs
}

func fieldPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func keyPath(parent, key string) string {
	if simpleKey.MatchString(key) {
		return parent + "." + key
	}
	return parent + "[" + strconv.Quote(key) + "]"
}

func indexPath(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

// spend takes one unit of the work budget; false once it is exhausted.
func (d *decoder) spend(n *yaml.Node, path string) bool {
	d.budget--
	if d.budget >= 0 {
		return true
	}
	if !d.over {
		d.errorf(n, path, "document too large or too deeply aliased (more than %d values)", decodeBudget)
		d.over = true
	}
	return false
}

// spendBytes takes the size of one expanded value from the size budget;
// false once it is exhausted, and then nothing more is decoded.
func (d *decoder) spendBytes(n *yaml.Node, path string, size int) bool {
	d.bytes -= size
	if d.bytes >= 0 {
		return true
	}
	d.budget = -1
	if !d.over {
		d.errorf(n, path, "document too large: its values come to more than %d MiB once aliases, ${vars} and ranges are expanded", expandBudget>>20)
		d.over = true
	}
	return false
}

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// expand substitutes ${var} and {{i}} in a scalar, and charges the result
// to the size budget ("" once that is spent).
func (d *decoder) expand(n *yaml.Node, path, s string) string {
	s = d.substitute(n, path, s)
	if !d.spendBytes(n, path, len(s)) {
		return ""
	}
	return s
}

func (d *decoder) substitute(n *yaml.Node, path, s string) string {
	if strings.Contains(s, "{{") {
		s = iterRef.ReplaceAllStringFunc(s, func(m string) string {
			if !d.inRange {
				d.errorf(n, path, "%s outside a name[a..b] range", m)
				return m
			}
			sub := iterRef.FindStringSubmatch(m)
			v := d.iter
			if sub[2] != "" {
				k, _ := strconv.Atoi(sub[2])
				if sub[1] == "-" {
					k = -k
				}
				v += k
			}
			return strconv.Itoa(v)
		})
	}
	if !strings.Contains(s, "$") {
		return s
	}
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$${" {
			return "${" // escaped: a literal ${ (e.g. for a shell)
		}
		name := m[2 : len(m)-1]
		if isRuntimeVar(name) {
			return m
		}
		if v, ok := d.vars[name]; ok {
			return v
		}
		known := RuntimeVars()
		for k := range d.vars {
			known = append(known, k)
		}
		d.errorf(n, path, "undefined variable ${%s}%s", name, suggest(name, known))
		return m
	})
}

// decode stores node n into v; opts are the options of the field v is.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, opts fieldInfo) {
	if !d.spend(n, path) {
		return
	}
	n = deref(n)
	if n == nil {
		return
	}
	if _, seen := d.pos[path]; !seen {
		d.pos[path] = Pos{n.Line, n.Column}
	}
	if isNull(n) {
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path, opts)
		return
	}
	t := v.Type()
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a single value, got %s", kindName(n))
			return
		}
		u := v.Addr().Interface().(encoding.TextUnmarshaler)
		if err := u.UnmarshalText([]byte(d.expand(n, path, n.Value))); err != nil {
			d.errorf(n, path, "%v", err)
		}
		return
	}
	if t.Implements(enumType) {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected one of %s, got %s", strings.Join(v.Interface().(enum).enumValues(), ", "), kindName(n))
			return
		}
		s := d.expand(n, path, n.Value)
		allowed := v.Interface().(enum).enumValues()
		for _, a := range allowed {
			if a == s {
				v.SetString(s)
				return
			}
		}
		d.errorf(n, path, "unknown value %q%s; one of %s", s, suggest(s, allowed), strings.Join(allowed, ", "))
		return
	}
	switch t.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a string, got %s", kindName(n))
			return
		}
		v.SetString(d.expand(n, path, n.Value))
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected true or false, got %s", kindName(n))
			return
		}
		switch strings.ToLower(d.expand(n, path, n.Value)) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.errorf(n, path, "expected true or false (or on/off), got %q", n.Value)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected an integer, got %s", kindName(n))
			return
		}
		s := d.expand(n, path, n.Value)
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, t.Bits())
		if err != nil {
			d.errorf(n, path, "expected an integer, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64, reflect.Float32:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a number, got %s", kindName(n))
			return
		}
		s := d.expand(n, path, n.Value)
		f, err := strconv.ParseFloat(s, t.Bits())
		if err != nil {
			d.errorf(n, path, "expected a number, got %q", s)
			return
		}
		v.SetFloat(f)
	case reflect.Slice:
		d.decodeSlice(n, v, path, opts)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	default:
		d.errorf(n, path, "internal: cannot decode into %s", t)
	}
}

// scalarShaped reports whether a scalar can stand for a value of type t.
func (d *decoder) scalarShaped(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	if t.Kind() == reflect.Struct {
		for _, f := range d.structFields(t) {
			if f.value {
				return true
			}
		}
		return false
	}
	return t.Kind() != reflect.Slice && t.Kind() != reflect.Map
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string, opts fieldInfo) {
	et := v.Type().Elem()
	if opts.keyed {
		d.decodeKeyed(n, v, path)
		return
	}
	switch n.Kind {
	case yaml.SequenceNode:
		out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
		for i, c := range n.Content {
			ev := reflect.New(et).Elem()
			d.decode(c, ev, indexPath(path, i), fieldInfo{})
			out = reflect.Append(out, ev)
		}
		v.Set(out)
	case yaml.ScalarNode:
		// A single value stands for a one-element list: subnets: 10.0.0.0/24.
		if !d.scalarShaped(et) || opts.pair {
			d.errorf(n, path, "expected a list, got %s", kindName(n))
			return
		}
		ev := reflect.New(et).Elem()
		d.decode(n, ev, indexPath(path, 0), fieldInfo{})
		v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, 1), ev))
	default:
		d.errorf(n, path, "expected a list, got %s", kindName(n))
		return
	}
	if opts.pair && v.Len() != 2 {
		d.errorf(n, path, "expected a list of two items, got %d", v.Len())
	}
}

// decodeKeyed reads a mapping name -> element into a slice, keeping the
// file's order. A key name[a..b] makes one element per i in a..b.
func (d *decoder) decodeKeyed(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping of name to entry, got %s", kindName(n))
		return
	}
	et := v.Type().Elem()
	keyField, valueField := -1, -1
	for _, f := range d.structFields(et) {
		if f.key {
			keyField = f.index
		}
		if f.value {
			valueField = f.index
		}
	}
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content)/2)
	seen := map[string]*yaml.Node{}
	add := func(kn, vn *yaml.Node, key string) {
		if prev, dup := seen[key]; dup {
			d.errorf(kn, keyPath(path, key), "duplicate name %q (first at line %d)", key, prev.Line)
			return
		}
		seen[key] = kn
		p := keyPath(path, key)
		d.pos[p+"#key"] = Pos{kn.Line, kn.Column}
		ev := reflect.New(et).Elem()
		if keyField >= 0 {
			ev.Field(keyField).SetString(key)
		}
		if dv := deref(vn); dv != nil && isNull(dv) {
			// "name:" with nothing after is an entry with no fields set,
			// which still must have its required ones.
			vn = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: dv.Line, Column: dv.Column}
		}
		if dv := deref(vn); dv != nil && dv.Kind == yaml.ScalarNode && valueField >= 0 {
			d.decode(vn, ev.Field(valueField), p, fieldInfo{})
		} else {
			d.decode(vn, ev, p, fieldInfo{})
		}
		out = reflect.Append(out, ev)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := deref(n.Content[i]), n.Content[i+1]
		if kn == nil || kn.Kind != yaml.ScalarNode {
			d.errorf(n.Content[i], path, "a name must be a plain value")
			continue
		}
		if m := rangeKey.FindStringSubmatch(kn.Value); m != nil {
			lo, _ := strconv.Atoi(m[2])
			hi, _ := strconv.Atoi(m[3])
			switch {
			case d.inRange:
				d.errorf(kn, keyPath(path, kn.Value), "nested name ranges are not supported")
				continue
			case lo > hi || hi-lo >= maxRange:
				d.errorf(kn, keyPath(path, kn.Value), "range %s..%s must be ascending and at most %d long", m[2], m[3], maxRange)
				continue
			}
			for it := lo; it <= hi && !d.over; it++ {
				d.inRange, d.iter = true, it
				add(kn, vn, m[1]+strconv.Itoa(it))
			}
			d.inRange = false
			continue
		}
		add(kn, vn, d.expand(kn, keyPath(path, kn.Value), kn.Value))
	}
	v.Set(out)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.errorf(n, path, "internal: map key %s", v.Type().Key())
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn := deref(n.Content[i])
		if kn == nil || kn.Kind != yaml.ScalarNode {
			d.errorf(n.Content[i], path, "a key must be a plain value")
			continue
		}
		if seen[kn.Value] {
			d.errorf(kn, keyPath(path, kn.Value), "duplicate key %q", kn.Value)
			continue
		}
		seen[kn.Value] = true
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(n.Content[i+1], ev, keyPath(path, kn.Value), fieldInfo{})
		v.SetMapIndex(reflect.ValueOf(kn.Value).Convert(v.Type().Key()), ev)
	}
}

type pair struct{ k, v *yaml.Node }

// pairs lists a mapping's entries with YAML merge keys (<<: *anchor)
// resolved: explicit entries override merged ones, and of several merged
// mappings the earlier wins. Keys are unique in the result, which keeps
// chains of merges from growing exponentially.
func (d *decoder) pairs(n *yaml.Node, path string, depth int) []pair {
	var merged, explicit []pair
	have := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.spend(n, path) {
			return nil
		}
		kn, vn := deref(n.Content[i]), n.Content[i+1]
		if kn == nil {
			continue
		}
		if kn.Kind == yaml.ScalarNode && kn.Value == "<<" && kn.ShortTag() == "!!merge" {
			if depth > 10 {
				d.errorf(kn, path, "merge keys nested too deeply")
				continue
			}
			src := deref(vn)
			var maps []*yaml.Node
			switch {
			case src == nil:
			case src.Kind == yaml.MappingNode:
				maps = []*yaml.Node{src}
			case src.Kind == yaml.SequenceNode:
				for _, c := range src.Content {
					maps = append(maps, deref(c))
				}
			}
			for _, m := range maps {
				if m == nil || m.Kind != yaml.MappingNode {
					d.errorf(kn, path, "<< merges mappings only")
					continue
				}
				for _, p := range d.pairs(m, path, depth+1) {
					if !have[p.k.Value] {
						have[p.k.Value] = true
						merged = append(merged, p)
					}
				}
			}
			continue
		}
		explicit = append(explicit, pair{kn, vn})
	}
	if len(merged) == 0 {
		return explicit
	}
	override := map[string]bool{}
	for _, p := range explicit {
		override[p.k.Value] = true
	}
	out := make([]pair, 0, len(merged)+len(explicit))
	for _, p := range merged {
		if !override[p.k.Value] {
			out = append(out, p)
		}
	}
	return append(out, explicit...)
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	fields := d.structFields(v.Type())
	if n.Kind == yaml.ScalarNode {
		for _, f := range fields {
			if f.value {
				d.decode(n, v.Field(f.index), path, f)
				return
			}
		}
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	byName := map[string]fieldInfo{}
	names := make([]string, 0, len(fields))
	for _, f := range fields {
		if f.key {
			continue
		}
		byName[f.name] = f
		names = append(names, f.name)
	}
	seen := map[string]*yaml.Node{}
	for _, p := range d.pairs(n, path, 0) {
		if p.k.Kind != yaml.ScalarNode {
			d.errorf(p.k, path, "a key must be a plain value")
			continue
		}
		key := p.k.Value
		f, ok := byName[key]
		if !ok {
			d.errorf(p.k, fieldPath(path, key), "unknown field %q%s", key, suggest(key, names))
			continue
		}
		if prev, dup := seen[key]; dup && prev != p.k {
			d.errorf(p.k, fieldPath(path, key), "duplicate key %q (first at line %d)", key, prev.Line)
			continue
		}
		seen[key] = p.k
		d.pos[fieldPath(path, key)+"#key"] = Pos{p.k.Line, p.k.Column}
		fv := p.v
		if dv := deref(fv); dv != nil && isNull(dv) && f.required {
			d.errorf(p.k, fieldPath(path, key), "required field %q is empty", key)
			continue
		}
		d.decode(fv, v.Field(f.index), fieldPath(path, key), f)
	}
	for _, f := range fields {
		if f.required && seen[f.name] == nil {
			d.errorf(n, path, "missing required field %q", f.name)
		}
	}
}

// reflectValue is the settable value a pointer points to.
func reflectValue(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }
