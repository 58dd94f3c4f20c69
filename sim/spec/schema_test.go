package spec

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite scenario.schema.json from the Go types")

const schemaFile = "scenario.schema.json"

// TestSchemaFileUpToDate keeps the committed schema identical to the one
// generated from the types (go test ./sim/spec -run Schema -update).
func TestSchemaFileUpToDate(t *testing.T) {
	want, err := Schema()
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile(schemaFile, want, 0o644))
	}
	got, err := os.ReadFile(schemaFile)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "scenario.schema.json is stale: go test ./sim/spec -run Schema -update")
}

// TestSchemaMatchesTypes walks the Go types and the schema file side by
// side: every field of every type is a property of its definition, and
// every property is a field.
func TestSchemaMatchesTypes(t *testing.T) {
	raw, err := os.ReadFile(schemaFile)
	require.NoError(t, err)
	var schema map[string]any
	require.NoError(t, json.Unmarshal(raw, &schema))
	assert.Equal(t, "https://json-schema.org/draft/2020-12/schema", schema["$schema"])
	defs := schema["$defs"].(map[string]any)

	objectOf := func(s map[string]any) map[string]any {
		if alts, ok := s["anyOf"].([]any); ok { // short form: scalar or object
			for _, alt := range alts {
				if m := alt.(map[string]any); m["type"] == "object" {
					return m
				}
			}
		}
		return s
	}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, s map[string]any, where string)
	walk = func(rt reflect.Type, s map[string]any, where string) {
		if seen[rt] {
			return
		}
		seen[rt] = true
		obj := objectOf(s)
		props, ok := obj["properties"].(map[string]any)
		require.True(t, ok, "%s (%s) has no properties in the schema", where, rt.Name())
		assert.Equal(t, false, obj["additionalProperties"], "%s must refuse unknown keys", where)
		var fields []string
		for _, f := range typeFields(rt) {
			if f.key {
				continue
			}
			fields = append(fields, f.name)
			ps, ok := props[f.name].(map[string]any)
			if !assert.True(t, ok, "field %s.%s missing from the schema", rt.Name(), f.name) {
				continue
			}
			assert.NotEmpty(t, ps["description"], "field %s.%s has no doc tag", rt.Name(), f.name)
			// Follow into nested struct types through their $ref.
			ft := rt.Field(f.index).Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft.PkgPath() == rt.PkgPath() && !reflect.PointerTo(ft).Implements(textUnmarshalerType) {
				def, ok := defs[ft.Name()].(map[string]any)
				require.True(t, ok, "no $defs/%s", ft.Name())
				walk(ft, def, where+"."+f.name)
			}
			if f.required {
				req, _ := obj["required"].([]any)
				assert.Contains(t, req, f.name, "%s.%s is required in Go but not in the schema", rt.Name(), f.name)
			}
		}
		var names []string
		for k := range props {
			names = append(names, k)
		}
		sort.Strings(names)
		sort.Strings(fields)
		assert.Equal(t, fields, names, "%s: schema properties and Go fields differ", rt.Name())
	}
	walk(reflect.TypeFor[Spec](), schema, "spec")
	// Every definition is reached from the root (no stale ones).
	for name := range defs {
		if name == "scalar" || name == "bool" {
			continue
		}
		found := false
		for rt := range seen {
			found = found || rt.Name() == name
		}
		assert.True(t, found, "$defs/%s is not a spec type", name)
	}
}

// TestExamplesValidateAgainstSchema checks every example scenario against
// the schema with a small validator of the keywords the schema uses, and
// that broken documents fail it: the schema accepts what Load accepts.
func TestExamplesValidateAgainstSchema(t *testing.T) {
	raw, err := os.ReadFile(schemaFile)
	require.NoError(t, err)
	var schema map[string]any
	require.NoError(t, json.Unmarshal(raw, &schema))
	v := &miniValidator{root: schema}

	files, _ := filepath.Glob("../testdata/*.yaml")
	more, _ := filepath.Glob("../../scenarios/*.yaml")
	for _, f := range append(files, more...) {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var doc any
		require.NoError(t, yaml.Unmarshal(data, &doc), f)
		doc = expandKeys(doc)
		assert.Empty(t, v.validate(schema, doc, ""), f)
	}
	bad := map[string]string{
		"unknown key":    "name: x\nsegments: {}\nnodes: {}\ncolour: red\n",
		"missing name":   "segments: {}\nnodes: {}\n",
		"bad role":       "name: x\nsegments: {}\nnodes: {a: {role: king}}\n",
		"bad duration":   "name: x\nsegments: {}\nnodes: {}\nduration: soon\n",
		"pair of three":  "name: x\nsegments: {}\nnodes: {}\nexpect: [{name: e, during: [1s, 2s, 3s], metric: a.requests, eq: 1}]\n",
		"unknown in seg": "name: x\nsegments: {lan: {subnet: 10.0.0.0/24}}\nnodes: {}\n",
	}
	for name, src := range bad {
		var doc any
		require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
		assert.NotEmpty(t, v.validate(schema, expandKeys(doc), ""), name)
		_, err := Parse([]byte(src), "bad.yaml", Options{})
		assert.Error(t, err, "Load accepts what the schema refuses: %s", name)
	}
}

// expandKeys turns YAML's map[string]any into JSON-like values.
func expandKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = expandKeys(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = expandKeys(e)
		}
		return x
	}
	return v
}

// miniValidator implements the JSON Schema keywords scenario.schema.json
// uses: $ref, type, properties, additionalProperties, required, items,
// minItems, maxItems, anyOf, enum, pattern.
type miniValidator struct{ root map[string]any }

func (m *miniValidator) validate(s map[string]any, v any, path string) []string {
	var errs []string
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/$defs/")
		errs = append(errs, m.validate(m.root["$defs"].(map[string]any)[name].(map[string]any), v, path)...)
	}
	if anyOf, ok := s["anyOf"].([]any); ok {
		okAny := false
		for _, alt := range anyOf {
			if len(m.validate(alt.(map[string]any), v, path)) == 0 {
				okAny = true
				break
			}
		}
		if !okAny {
			errs = append(errs, path+": matches no alternative")
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		errs = append(errs, fmt.Sprintf("%s: %v not in enum", path, v))
	}
	if typ, ok := s["type"]; ok && !typeMatches(typ, v) {
		return append(errs, fmt.Sprintf("%s: %v is not %v", path, v, typ))
	}
	if pat, ok := s["pattern"].(string); ok {
		if str, isStr := v.(string); isStr && !regexp.MustCompile(pat).MatchString(str) {
			errs = append(errs, fmt.Sprintf("%s: %q does not match %s", path, str, pat))
		}
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range asList(s["required"]) {
			if _, ok := x[r.(string)]; !ok {
				errs = append(errs, path+": missing "+r.(string))
			}
		}
		for k, e := range x {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, m.validate(ps, e, path+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap && s["type"] == "object" {
					errs = append(errs, path+": unknown key "+k)
				}
			case map[string]any:
				errs = append(errs, m.validate(ap, e, path+"."+k)...)
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range x {
				errs = append(errs, m.validate(items, e, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
		if n, ok := s["minItems"].(float64); ok && float64(len(x)) < n {
			errs = append(errs, path+": too few items")
		}
		if n, ok := s["maxItems"].(float64); ok && float64(len(x)) > n {
			errs = append(errs, path+": too many items")
		}
	}
	return errs
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func typeMatches(typ any, v any) bool {
	if list, ok := typ.([]any); ok {
		return slices.ContainsFunc(list, func(t any) bool { return typeMatches(t, v) })
	}
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok || v == nil
	case "array":
		_, ok := v.([]any)
		return ok || v == nil
	case "string":
		_, ok := v.(string)
		return ok || v == nil
	case "integer":
		switch v.(type) {
		case int, int64, uint64, nil:
			return true
		}
		return false
	case "number":
		switch v.(type) {
		case int, int64, uint64, float64, nil:
			return true
		}
		return false
	case "boolean":
		_, ok := v.(bool)
		return ok || v == nil
	}
	return false
}
