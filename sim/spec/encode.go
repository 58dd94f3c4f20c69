package spec

import (
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Marshal writes a spec back in the file format, through the same struct
// tags the decoder reads, so that Parse(Marshal(s)) gives s again. Reports
// store the resolved spec this way: what was built, defaults included.
func Marshal(s *Spec) ([]byte, error) {
	e := &encoder{fields: map[reflect.Type][]fieldInfo{}}
	n, err := e.encode(reflect.ValueOf(s).Elem(), fieldInfo{})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encode spec %s: %w", s.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode spec %s: %w", s.Name, err)
	}
	return buf.Bytes(), nil
}

type encoder struct {
	fields map[reflect.Type][]fieldInfo
}

var textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()

func scalar(tag, v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v}
}

func (e *encoder) structFields(t reflect.Type) []fieldInfo {
	if fs, ok := e.fields[t]; ok {
		return fs
	}
	fs := typeFields(t)
	e.fields[t] = fs
	return fs
}

func (e *encoder) encode(v reflect.Value, f fieldInfo) (*yaml.Node, error) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return scalar("!!null", "null"), nil
		}
		v = v.Elem()
	}
	if v.Type().Implements(textMarshalerType) {
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil, err
		}
		return scalar("!!str", string(b)), nil
	}
	switch v.Kind() {
	case reflect.String:
		return scalar("!!str", escapeVars(v.String())), nil
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool())), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10)), nil
	case reflect.Float32, reflect.Float64:
		return scalar("!!float", strconv.FormatFloat(v.Float(), 'g', -1, 64)), nil
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int {
			return compareStrings(a.String(), b.String())
		})
		for _, k := range keys {
			c, err := e.encode(v.MapIndex(k), fieldInfo{})
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, scalar("!!str", k.String()), c)
		}
		return n, nil
	case reflect.Slice:
		if f.keyed {
			return e.keyed(v)
		}
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for i := range v.Len() {
			c, err := e.encode(v.Index(i), fieldInfo{})
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		if len(n.Content) > 0 && n.Content[0].Kind == yaml.ScalarNode {
			n.Style = yaml.FlowStyle
		}
		return n, nil
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, fi := range e.structFields(v.Type()) {
			fv := v.Field(fi.index)
			if fi.key || fv.IsZero() {
				continue
			}
			c, err := e.encode(fv, fi)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, scalar("!!str", fi.name), c)
		}
		return n, nil
	}
	return nil, fmt.Errorf("cannot encode %s", v.Type())
}

// keyed writes a list as name -> element; an element whose only content is
// its value field is written in the short scalar form.
func (e *encoder) keyed(v reflect.Value) (*yaml.Node, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	fields := e.structFields(v.Type().Elem())
	for i := range v.Len() {
		ev := v.Index(i)
		var key string
		short := -1
		others := false
		for _, fi := range fields {
			switch {
			case fi.key:
				key = ev.Field(fi.index).String()
			case fi.value:
				short = fi.index
			default:
				others = others || !ev.Field(fi.index).IsZero()
			}
		}
		var c *yaml.Node
		var err error
		if short >= 0 && !others {
			c, err = e.encode(ev.Field(short), fieldInfo{})
		} else {
			c, err = e.encode(ev, fieldInfo{})
		}
		if err != nil {
			return nil, err
		}
		n.Content = append(n.Content, scalar("!!str", key), c)
	}
	return n, nil
}

var literalVar = regexp.MustCompile(`\$\{([^}]*)\}`)

// escapeVars protects a literal ${x} (one the decoder would expand) as $${x}.
func escapeVars(s string) string {
	return literalVar.ReplaceAllStringFunc(s, func(m string) string {
		if isRuntimeVar(m[2 : len(m)-1]) {
			return m
		}
		return "$" + m
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
