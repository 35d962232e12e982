package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// fileConfig is the YAML config file: the original fly-autoscaler's keys,
// plus this tool's own. Unknown keys are rejected.
type fileConfig struct {
	AppName                stringList      `yaml:"app-name"`
	Exclude                stringList      `yaml:"exclude"`
	Shard                  string          `yaml:"shard"`
	Org                    string          `yaml:"org"`
	Regions                stringList      `yaml:"regions"`
	ProcessGroup           string          `yaml:"process-group"`
	CreatedMachineCount    string          `yaml:"created-machine-count"`
	MinCreatedMachineCount string          `yaml:"min-created-machine-count"`
	MaxCreatedMachineCount string          `yaml:"max-created-machine-count"`
	StartedMachineCount    string          `yaml:"started-machine-count"`
	MinStartedMachineCount string          `yaml:"min-started-machine-count"`
	MaxStartedMachineCount string          `yaml:"max-started-machine-count"`
	InitialMachineState    string          `yaml:"initial-machine-state"`
	Concurrency            string          `yaml:"concurrency"`
	Timeout                string          `yaml:"timeout"`
	APIToken               string          `yaml:"api-token"`
	Verbose                bool            `yaml:"verbose"`
	MetricCollectors       []fileCollector `yaml:"metric-collectors"`
	ScaleDown              string          `yaml:"scale-down"`
	MaxScaleUp             string          `yaml:"max-scale-up"`
	MaxScaleDown           string          `yaml:"max-scale-down"`
	MaxMachines            string          `yaml:"max-machines"`
	MinStartedDuration     string          `yaml:"min-started-duration"`
	MaxFailureRatio        string          `yaml:"max-failure-ratio"`
	FleetMaxStarted        string          `yaml:"fleet-max-started"`
	FleetMaxCreated        string          `yaml:"fleet-max-created"`
	FallbackStarted        string          `yaml:"fallback-started"`
	PushgatewayURL         string          `yaml:"pushgateway"`
	Timezone               string          `yaml:"timezone"`
	Policies               []policyConfig  `yaml:"policies"`

	// Options of the original long-running server; a one-shot run has no
	// use for them.
	Interval               string `yaml:"interval"`
	AppListRefreshInterval string `yaml:"app-list-refresh-interval"`

	// lines locates the top-level keys for errors (checkConfigShape).
	lines fileLines
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expand replaces $VAR and ${VAR} with the environment's value, except
// $APP_NAME and ${APP_NAME}, which belong to queries and are kept as written.
// $$ writes a literal $ (so $${VAR} is the text ${VAR}).
func (env Env) expand(s string) string {
	return envRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		name := strings.Trim(m, "${}")
		if name == "APP_NAME" {
			return m
		}
		return env[name]
	})
}

// loadFile reads the YAML config file. When the error is about values of
// the wrong type (or unknown keys), the file is returned with it, holding
// the values that could be read. Environment references are expanded
// in every value but the queries: a query must not be able to pull a
// secret such as FAS_API_TOKEN out of the environment.
func loadFile(path string, env Env) (*fileConfig, []string, error) {
	b, err := readConfig(path)
	if err != nil {
		return nil, nil, err
	}
	lines, err := checkConfigShape(path, b)
	if err != nil {
		return nil, nil, err
	}
	if err := checkYAMLValues(path, b); err != nil {
		return nil, nil, err
	}
	fc := fileConfig{lines: lines}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// A value of the wrong type leaves the others decoded: the error is
	// returned with them, for validate to check them too.
	var typeErr error
	var typeMsgs []string
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, nil, yamlError(path, b, err)
		}
		typeMsgs = te.Errors
	}
	if msgs := collectorErrors(typeMsgs, fc.MetricCollectors); len(msgs) > 0 {
		typeErr = yamlError(path, b, &yaml.TypeError{Errors: msgs})
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, usagef("--config %s: holds more than one YAML document (---): keep the configuration in one", path)
	}
	for _, p := range []*string{&fc.Org, &fc.Shard, &fc.ProcessGroup, &fc.CreatedMachineCount,
		&fc.MinCreatedMachineCount, &fc.MaxCreatedMachineCount, &fc.StartedMachineCount, &fc.MinStartedMachineCount,
		&fc.MaxStartedMachineCount, &fc.InitialMachineState, &fc.Concurrency, &fc.Timeout, &fc.APIToken,
		&fc.ScaleDown, &fc.MaxScaleUp, &fc.MaxScaleDown, &fc.MaxMachines, &fc.MinStartedDuration, &fc.MaxFailureRatio, &fc.PushgatewayURL, &fc.Timezone,
		&fc.FleetMaxStarted, &fc.FleetMaxCreated, &fc.FallbackStarted} {
		*p = env.expand(*p)
	}
	for _, l := range []stringList{fc.AppName, fc.Exclude, fc.Regions} {
		for i := range l {
			l[i] = env.expand(l[i])
		}
	}
	for _, c := range fc.MetricCollectors {
		c.expand(env)
	}
	var warnings []string
	if fc.Interval != "" {
		warnings = append(warnings, fmt.Sprintf("%s: interval is ignored: each invocation is one run (use --every, cron or a scheduled machine)", path))
	}
	if fc.AppListRefreshInterval != "" {
		warnings = append(warnings, fmt.Sprintf("%s: app-list-refresh-interval is ignored: the app list is read once per run", path))
	}
	return &fc, warnings, typeErr
}

// maxConfigSize bounds what --config reads: a configuration is a few
// kilobytes, and --config /dev/zero must not exhaust the memory.
const maxConfigSize = 1 << 20

// readConfig reads the config file, a regular file (openConfig), at most
// maxConfigSize bytes.
func readConfig(path string) ([]byte, error) {
	f, err := openConfig(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, usagef("--config: %v", err)
	}
	if len(b) > maxConfigSize {
		return nil, usagef("--config %s: larger than 1 MiB: give a YAML config file", path)
	}
	return b, nil
}

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

// checkYAMLValues refuses, before the file is decoded into the config, a
// secret key (api-token, token, password, ...) whose value is not one
// plain string, and a value whose explicit tag (!!int, !!float, ...) it
// does not match: yaml.v3 would quote the value in its error, and a
// secret key given a list or a tagged scalar would be taken silently.
// The errors name the file, the line and the key, never the value.
func checkYAMLValues(path string, b []byte) error {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil // the decoder says what is wrong, in yamlError's words
	}
	var walk func(n *yaml.Node, key string) error
	walk = func(n *yaml.Node, key string) error {
		if n.Kind == yaml.ScalarNode && n.Style&yaml.TaggedStyle != 0 {
			var v any
			if err := n.Decode(&v); err != nil {
				return usagef("%s:%d: %s: the value is not a valid %s (the value is not shown): write it without the tag", path, n.Line, key, n.Tag)
			}
		}
		for i, c := range n.Content {
			if n.Kind != yaml.MappingNode {
				if err := walk(c, key); err != nil {
					return err
				}
				continue
			}
			if i%2 == 0 {
				continue
			}
			k := n.Content[i-1].Value
			if IsSecretOption(k) && !plainString(c) {
				what := nodeKind(c)
				if c.Kind == yaml.ScalarNode {
					what = "a value tagged " + c.Tag
				}
				return usagef("%s:%d: %s: want a single value, not %s (the value is not shown)", path, c.Line, k, what)
			}
			if err := walk(c, k); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(&root, "")
}

// plainString reports whether n is a scalar read as a string: untagged, or
// tagged !!str.
func plainString(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.Style&yaml.TaggedStyle == 0 || n.Tag == "!!str")
}

var (
	yamlLinePrefix   = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknownField = regexp.MustCompile(`^field (.+) not found in type \S*?(\w+)$`)
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
		return fmt.Sprintf("%s: %s", path, hideQuoted(msg))
	}
	where, rest := path+":"+m[1], m[2]
	if f := yamlUnknownField.FindStringSubmatch(rest); f != nil {
		key, typ := f[1], f[2]
		var known []string
		what := ""
		switch typ {
		case "fileConfig":
			known = yamlTags(reflect.TypeOf(fileConfig{}))
		case "fileCollector":
			known = collectorKeyNames()
			what = " of a metric collector"
		case "policyConfig":
			known = yamlTags(policyType)
			what = " of a policy"
		}
		// A key is quoted only when it looks like one: a token pasted
		// in key position is not shown.
		s := closest(key, known)
		out := fmt.Sprintf("%s: unknown key%s (not shown: it does not look like a key)", where, what)
		if looksLikeKey(key) && (strings.Contains(key, "-") || s != "") {
			out = fmt.Sprintf("%s: unknown key %q%s", where, key, what)
		}
		if s != "" {
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
	return where + ": " + hideQuoted(rest)
}

// keyLike matches what a config key looks like: lowercase words joined by
// hyphens.
var keyLike = regexp.MustCompile(`^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$`)

// looksLikeKey reports whether s may be shown as a key: short, and made
// like the config's keys.
func looksLikeKey(s string) bool { return len(s) <= 40 && keyLike.MatchString(s) }

// yamlQuoted finds the quoted texts of yaml.v3's messages: `value`,
// "key" and 'anchor'.
var yamlQuoted = regexp.MustCompile("`[^`]*`|\"[^\"]*\"|'[^']*'")

// hideQuoted removes from a message of yaml.v3 every quoted text that does
// not look like a key: a value (a token) is never shown.
func hideQuoted(msg string) string {
	return yamlQuoted.ReplaceAllStringFunc(msg, func(q string) string {
		if q[0] != '`' && looksLikeKey(q[1:len(q)-1]) {
			return q
		}
		return "(not shown)"
	})
}

// yamlTypeName says in words what a Go type of fileConfig holds.
func yamlTypeName(goType string) string {
	switch goType {
	case "string":
		return "a single value"
	case "bool":
		return "true or false"
	case "[]cmd.fileCollector":
		return "a list of metric collectors"
	case "[]cmd.policyConfig":
		return "a list of policies"
	case "cmd.fileCollector", "cmd.fileConfig", "cmd.policyConfig":
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
