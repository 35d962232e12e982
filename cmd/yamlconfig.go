package cmd

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// stringList is a config file value that is either a YAML list or one
// string of comma-separated items: app-name, exclude and regions. The
// items are split later, with splitList (a comma inside braces belongs to
// a glob).
type stringList []string

// UnmarshalYAML accepts a scalar (one string, maybe comma-separated), a
// list of scalars, or nothing.
func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*l = nil
			return nil
		}
		*l = stringList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(stringList, 0, len(n.Content))
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a list of names, not a list of %s", item.Line, nodeKind(item))}}
			}
			out = append(out, item.Value)
		}
		*l = out
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a name, a comma-separated string of names or a list of names, not %s", n.Line, nodeKind(n))}}
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a " + strings.TrimPrefix(n.Tag, "!!")
}

var (
	yamlLinePrefix   = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknownField = regexp.MustCompile(`^field (\S+) not found in type \S*?(\w+)$`)
	yamlCannot       = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `[^`]*`)? into (\\S+)$")
	yamlKeyOfLine    = regexp.MustCompile(`^\s*(?:-\s+)?([A-Za-z0-9_-]+)\s*:`)
)

// yamlError turns an error of yaml.v3 into a usage error that reads
// "config.yml:4: unknown key ..." rather than a Go type name. src is the
// file's content, to name the key of a line.
func yamlError(path string, src []byte, err error) error {
	lines := strings.Split(string(src), "\n")
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, 0, len(te.Errors))
		for _, e := range te.Errors {
			msgs = append(msgs, yamlMessage(path, lines, e))
		}
		return &UsageError{Msg: strings.Join(msgs, "\n")}
	}
	return &UsageError{Msg: yamlMessage(path, lines, strings.TrimPrefix(err.Error(), "yaml: "))}
}

// yamlMessage translates one message of yaml.v3 ("line 4: field x not
// found in type cmd.fileConfig") into "path:4: unknown key "x" (did you
// mean ...?)". Values are never quoted: a file may hold a token.
func yamlMessage(path string, lines []string, msg string) string {
	m := yamlLinePrefix.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Sprintf("%s: %s", path, msg)
	}
	where, rest := path+":"+m[1], m[2]
	if f := yamlUnknownField.FindStringSubmatch(rest); f != nil {
		key, typ := f[1], f[2]
		var known []string
		what := ""
		switch typ {
		case "fileConfig":
			known = yamlTags(reflect.TypeOf(fileConfig{}))
		case "collectorConfig":
			known = yamlTags(reflect.TypeOf(collectorConfig{}))
			what = " of a metric collector"
		case "policyConfig":
			known = yamlTags(policyType)
			what = " of a policy"
		}
		out := fmt.Sprintf("%s: unknown key %q%s", where, key, what)
		if s := closest(key, known); s != "" {
			out += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return out
	}
	if c := yamlCannot.FindStringSubmatch(rest); c != nil {
		got, want := c[1], c[2]
		key := ""
		var n int
		if _, err := fmt.Sscan(m[1], &n); err == nil && n >= 1 && n <= len(lines) {
			if k := yamlKeyOfLine.FindStringSubmatch(lines[n-1]); k != nil {
				key = k[1] + ": "
			}
		}
		return fmt.Sprintf("%s: %swant %s, not %s", where, key, yamlTypeName(want), yamlKindName(got))
	}
	return where + ": " + rest
}

// yamlTypeName says in words what a Go type of fileConfig holds.
func yamlTypeName(goType string) string {
	switch goType {
	case "string":
		return "a single value"
	case "bool":
		return "true or false"
	case "[]cmd.collectorConfig":
		return "a list of metric collectors"
	case "[]cmd.policyConfig":
		return "a list of policies"
	case "cmd.collectorConfig", "cmd.fileConfig", "cmd.policyConfig":
		return "a mapping of keys to values"
	}
	return goType
}

// yamlKindName says in words what a YAML tag is.
func yamlKindName(tag string) string {
	switch tag {
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	case "str":
		return "a string"
	case "int", "float":
		return "a number"
	case "bool":
		return "a boolean"
	case "null":
		return "nothing"
	}
	return tag
}

// yamlTags returns the yaml tags of a struct type's fields, and of the
// fields of its inlined structs.
func yamlTags(rt reflect.Type) []string {
	var keys []string
	for i := range rt.NumField() {
		k, opts, _ := strings.Cut(rt.Field(i).Tag.Get("yaml"), ",")
		if opts == "inline" {
			keys = append(keys, yamlTags(rt.Field(i).Type)...)
		} else if k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// closest returns the candidate nearest to word by edit distance, or ""
// when none is close enough to be a likely typo.
func closest(word string, candidates []string) string {
	best, bestDist := "", 0
	for _, c := range candidates {
		d := editDistance(strings.ToLower(word), c)
		if best == "" || d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" || bestDist > max(1, min(3, len(word)/3)) {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b,
// in bytes: insertions, deletions, substitutions and transpositions of two
// neighbours ("hepl" is one edit from "help").
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
