package spec

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
)

// SchemaID names the JSON Schema of this spec version.
const SchemaID = "https://lvslab.example/schema/scenario-v1alpha1.json"

// Schema returns the JSON Schema (draft 2020-12) of a scenario file,
// generated from the Go types and their tags, so it cannot drift from what
// Load accepts. sim/spec/scenario.schema.json holds a copy for editors; a
// test keeps it identical.
func Schema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	root := g.structSchema(reflect.TypeFor[Spec]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "lvslab scenario"
	g.defs["scalar"] = map[string]any{
		"description": "a plain value; numbers and booleans are read as their text",
		"type":        []string{"string", "number", "boolean"},
	}
	g.defs["bool"] = map[string]any{
		"description": "true/false, or on/off, yes/no",
		"anyOf": []any{
			map[string]any{"type": "boolean"},
			map[string]any{"enum": []string{"on", "off", "yes", "no", "true", "false"}},
		},
	}
	root["$defs"] = g.defs
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type schemaGen struct {
	defs map[string]any
}

type jsonSchemaer interface{ jsonSchema() map[string]any }

var jsonSchemaerType = reflect.TypeFor[jsonSchemaer]()

// templated is a string holding ${var} or {{i}}: checked after expansion,
// so the schema lets it through wherever a pattern would refuse it.
var templated = map[string]any{"type": "string", "pattern": `\$\{|\{\{`}

func (g *schemaGen) typeSchema(t reflect.Type, f fieldInfo) map[string]any {
	s := g.baseSchema(t, f)
	if _, ok := s["pattern"]; ok {
		return map[string]any{"anyOf": []any{s, templated}}
	}
	if _, ok := s["anyOf"]; ok && s["type"] == "string" {
		return map[string]any{"anyOf": []any{s, templated}}
	}
	return s
}

func (g *schemaGen) baseSchema(t reflect.Type, f fieldInfo) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(jsonSchemaerType) {
		return reflect.Zero(t).Interface().(jsonSchemaer).jsonSchema()
	}
	if t.Implements(enumType) {
		return map[string]any{"type": "string", "enum": reflect.Zero(t).Interface().(enum).enumValues()}
	}
	switch t {
	case reflect.TypeFor[netip.Addr]():
		return map[string]any{"type": "string", "description": "IP address",
			"anyOf": []any{map[string]any{"format": "ipv4"}, map[string]any{"format": "ipv6"}}}
	case reflect.TypeFor[netip.Prefix]():
		return map[string]any{"type": "string", "pattern": `^[0-9A-Fa-f.:]+/[0-9]{1,3}$`, "description": "address with prefix length"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"$ref": "#/$defs/scalar"}
	case reflect.Bool:
		return map[string]any{"$ref": "#/$defs/bool"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.typeSchema(t.Elem(), fieldInfo{})}
	case reflect.Slice:
		if f.keyed {
			return map[string]any{"type": "object", "additionalProperties": g.typeSchema(t.Elem(), fieldInfo{})}
		}
		arr := map[string]any{"type": "array", "items": g.typeSchema(t.Elem(), fieldInfo{})}
		if f.pair {
			arr["minItems"], arr["maxItems"] = 2, 2
			return arr
		}
		if (&decoder{fields: map[reflect.Type][]fieldInfo{}}).scalarShaped(t.Elem()) {
			// A single value stands for a one-element list.
			return map[string]any{"anyOf": []any{g.typeSchema(t.Elem(), fieldInfo{}), arr}}
		}
		return arr
	case reflect.Struct:
		name := t.Name()
		if _, done := g.defs[name]; !done {
			g.defs[name] = true // placeholder against recursion
			g.defs[name] = g.structSchema(t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	}
	return map[string]any{}
}

func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	var value map[string]any
	for _, f := range typeFields(t) {
		if f.key {
			continue
		}
		fs := g.typeSchema(t.Field(f.index).Type, f)
		if f.doc != "" {
			fs = withDescription(fs, f.doc)
		}
		props[f.name] = fs
		if f.required {
			required = append(required, f.name)
		}
		if f.value {
			value = g.typeSchema(t.Field(f.index).Type, fieldInfo{})
		}
	}
	obj := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	if len(required) > 0 {
		obj["required"] = required
	}
	if value != nil {
		// Short form: a scalar stands for the value field.
		return map[string]any{"anyOf": []any{value, obj}}
	}
	return obj
}

// withDescription adds a description without touching a shared $ref
// target: a $ref with siblings is allowed in draft 2020-12.
func withDescription(s map[string]any, doc string) map[string]any {
	out := make(map[string]any, len(s)+1)
	for k, v := range s {
		out[k] = v
	}
	out["description"] = doc
	return out
}
