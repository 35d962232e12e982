package cmd

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/redact"
)

// fileCollector is one metric-collectors entry of the config file, kept as
// its YAML node: its type says which registered kind's Config (sources.go)
// it is decoded into, by the key tags of the Config's fields. Nothing here
// names a kind of source or a key of one.
type fileCollector struct {
	node *yaml.Node
	errs []string // yaml.v3's messages about its keys and values
}

// UnmarshalYAML keeps the entry's node, with the messages about what no
// kind of source takes: a key unknown to every kind, or a value of the
// wrong shape. They are yaml.v3's, which yamlError words (never quoting a
// value); loadFile reports them with the decoder's, the entry kept for
// validate and for its secrets.
func (c *fileCollector) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal !!%s into cmd.fileCollector", n.Line, shortTag(n))}}
	}
	c.node = n
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "type" {
			if v.Kind != yaml.ScalarNode {
				errs = append(errs, fmt.Sprintf("line %d: cannot unmarshal !!%s into string", v.Line, shortTag(v)))
			}
			continue
		}
		t, ok := collectorKeyType(k.Value)
		if !ok {
			errs = append(errs, fmt.Sprintf("line %d: field %s not found in type cmd.fileCollector", k.Line, k.Value))
			continue
		}
		if err := checkValueShape(v, t); err != "" {
			errs = append(errs, err)
		}
	}
	c.errs = errs
	return nil
}

// collectorErrors returns the decoder's messages (of a yaml.TypeError)
// and those of the collectors, in the order of their lines.
func collectorErrors(decoder []string, cols []fileCollector) []string {
	out := slices.Clone(decoder)
	for _, c := range cols {
		out = append(out, c.errs...)
	}
	line := func(msg string) int {
		var n int
		fmt.Sscanf(msg, "line %d:", &n)
		return n
	}
	slices.SortStableFunc(out, func(a, b string) int { return line(a) - line(b) })
	return out
}

// shortTag is n's YAML tag without its !! prefix: str, seq, map, ...
func shortTag(n *yaml.Node) string {
	if n.Kind == yaml.MappingNode {
		return "map"
	}
	if n.Kind == yaml.SequenceNode {
		return "seq"
	}
	return strings.TrimPrefix(n.ShortTag(), "!!")
}

// collectorKeyType returns the Go type of the first registered Config
// field whose key tag is key.
func collectorKeyType(key string) (reflect.Type, bool) {
	for _, k := range sourceKinds {
		if f, ok := keyField(reflect.TypeOf(k.config), key); ok {
			return f.Type, true
		}
	}
	return nil, false
}

// keyField returns the field of the Config type t whose key tag is key.
func keyField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("key") == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// checkValueShape returns yaml.v3's message for a value v that a field of
// type t cannot take, or "".
func checkValueShape(v *yaml.Node, t reflect.Type) string {
	switch {
	case derefKind(t) == reflect.Bool:
		var b bool
		if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
			return fmt.Sprintf("line %d: cannot unmarshal !!%s into bool", v.Line, shortTag(v))
		}
	case derefKind(t) == reflect.Slice:
		var l stringList
		if err := l.UnmarshalYAML(v); err != nil {
			return strings.Join(err.(*yaml.TypeError).Errors, "\n")
		}
	case v.Kind != yaml.ScalarNode:
		return fmt.Sprintf("line %d: cannot unmarshal !!%s into string", v.Line, shortTag(v))
	}
	return ""
}

// entries calls f with each key of c and its value node.
func (c fileCollector) entries(f func(key string, v *yaml.Node)) {
	if c.node == nil {
		return
	}
	for i := 0; i+1 < len(c.node.Content); i += 2 {
		f(c.node.Content[i].Value, c.node.Content[i+1])
	}
}

// value returns the text of c's scalar key, "" when unset.
func (c fileCollector) value(key string) string {
	out := ""
	c.entries(func(k string, v *yaml.Node) {
		if k == key && v.Kind == yaml.ScalarNode && v.ShortTag() != "!!null" {
			out = v.Value
		}
	})
	return out
}

// typ is c's type, lowercased.
func (c fileCollector) typ() string { return strings.ToLower(strings.TrimSpace(c.value("type"))) }

// expand replaces the environment references of c's values, in place,
// but in the keys that are templates of $APP_NAME (template:"true" on the
// Config field: a stream, a topic, a query): no secret can be expanded
// into what is sent to a server as a name.
func (c fileCollector) expand(env Env) {
	var cfg reflect.Type
	c.entries(func(k string, v *yaml.Node) {
		if k == "type" {
			v.Value = env.expand(v.Value)
		}
	})
	if kind, ok := kindOf(c.typ()); ok {
		cfg = reflect.TypeOf(kind.config)
	}
	c.entries(func(k string, v *yaml.Node) {
		if k == "type" || isTemplateKey(cfg, k) {
			return
		}
		for _, s := range append([]*yaml.Node{v}, v.Content...) {
			if s.Kind == yaml.ScalarNode {
				s.Value = env.expand(s.Value)
			}
		}
	})
}

// isTemplateKey reports whether key is a template in cfg's kind, or, when
// the kind is unknown, in any kind.
func isTemplateKey(cfg reflect.Type, key string) bool {
	if cfg != nil {
		f, ok := keyField(cfg, key)
		return ok && f.Tag.Get("template") == "true"
	}
	return slices.ContainsFunc(sourceKinds, func(k sourceKind) bool {
		return isTemplateKey(reflect.TypeOf(k.config), key)
	})
}

// setKeys returns the keys of c set to something, but type and
// metric-name.
func (c fileCollector) setKeys() []string {
	var out []string
	c.entries(func(k string, v *yaml.Node) {
		if k == "type" || k == "metric-name" {
			return
		}
		if v.Kind == yaml.ScalarNode && (v.Value == "" || v.ShortTag() == "!!null") {
			return
		}
		out = append(out, k)
	})
	return out
}

// secrets returns the values of c's keys that hold secrets (by their
// name, or secret:"true" on a Config field) and the credentials of every
// URL among its values.
func (c fileCollector) secrets() []string {
	var out []string
	c.entries(func(k string, v *yaml.Node) {
		for _, s := range append([]*yaml.Node{v}, v.Content...) {
			if s.Kind != yaml.ScalarNode {
				continue
			}
			if IsSecretOption(k) {
				out = append(out, s.Value)
			}
			out = append(out, redact.URLSecrets(s.Value)...)
		}
	})
	return out
}

// decode returns c decoded into a Config of kind k, by the key tags of
// its fields (setText), with the first error of a value: the Config holds
// what decoded, for its secrets. A value of the wrong shape is left unset:
// loadFile reported it.
func (c fileCollector) decode(k sourceKind) (query.SourceConfig, error) {
	cfg := k.zero()
	var err error
	c.entries(func(key string, v *yaml.Node) {
		f, ok := keyField(cfg.Type(), key)
		if !ok || (v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null") {
			return
		}
		fv := cfg.FieldByIndex(f.Index)
		text := v.Value
		switch kind := derefKind(f.Type); {
		case kind == reflect.Bool:
			var b bool
			if v.Decode(&b) != nil {
				return // reported by loadFile
			}
			text = strconv.FormatBool(b)
		case kind == reflect.Slice:
			var l stringList
			if l.UnmarshalYAML(v) != nil {
				return // reported by loadFile
			}
			if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String {
				fv.Set(reflect.ValueOf(splitList(l...)).Convert(f.Type))
				return
			}
			text = strings.Join(l, ",")
		case v.Kind != yaml.ScalarNode:
			return // reported by loadFile
		}
		if e := setText(fv, f, text); err == nil {
			err = e
		}
	})
	return cfg.Interface().(query.SourceConfig), err
}

// derefKind is the kind of t, or of what it points to.
func derefKind(t reflect.Type) reflect.Kind {
	if t.Kind() == reflect.Pointer {
		return t.Elem().Kind()
	}
	return t.Kind()
}
