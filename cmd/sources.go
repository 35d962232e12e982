package cmd

import (
	"reflect"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/kafka"
	"github.com/superfly/fly-autoscaler/query/nats"
	"github.com/superfly/fly-autoscaler/query/prometheus"
	"github.com/superfly/fly-autoscaler/query/redact"
	"github.com/superfly/fly-autoscaler/query/temporal"
)

// The kinds of metric source, one line each: a new kind is a package with
// a Config (a query.SourceConfig) and a Build, and one line here. Nothing
// else in cmd names a kind or one of its options.
//
// Everything cmd knows of a kind comes from the tags of its Config's
// fields: its config file key (key), its flag (flag, none when absent),
// the help of the flag (help, with {WORD} for urfave's `WORD`
// placeholder), its variables (env; FAS_ and the flag's name in capitals
// when absent) and whether it holds a secret (secret:"true"). A field
// tagged template:"true" is a template of $APP_NAME (a stream, a query):
// the config file's ${VAR} references are not expanded in it. From flags,
// a source is defined when a flag tagged defines:"true" is set, and a
// field tagged need:"what it is" must then be set too. negate:"true" reads
// a boolean key as the field's opposite. The flags, their variables, the
// keys a collector of the kind accepts, the decoding of collectors and of
// flags, the flag an error about a key names and the options whose values
// are secrets all derive from there.
var sourceKinds = []sourceKind{
	register("prometheus", catMetrics, prometheus.Build),
	register("temporal", catTemporal, temporal.Build),
	register("nats", catMetrics, nats.Build),
	register("kafka", catMetrics, kafka.Build),
}

// catTemporal is the help category of the Temporal source's flags.
const catTemporal = "Temporal"

// register makes the kind of source typ, whose Config is C, built by
// build, its flags in the help's category.
func register[C query.SourceConfig](typ, category string, build func(C, query.Runtime) (query.Source, error)) sourceKind {
	var zero C
	return sourceKind{typ: typ, category: category, config: zero,
		build: func(c query.SourceConfig, rt query.Runtime) (query.Source, error) { return build(c.(C), rt) }}
}

// sourceKind is one kind of metric source.
type sourceKind struct {
	typ      string             // the type: of its config file collectors
	category string             // of its flags in the help
	config   query.SourceConfig // a zero Config, whose field tags describe the options
	build    func(query.SourceConfig, query.Runtime) (query.Source, error)
}

// sourceOption is one option of a kind of source, one field of its Config.
type sourceOption struct {
	key    string   // config file key
	flag   string   // "" when no flag sets it
	vars   []string // the flag's variables
	help   string   // the flag's usage
	secret bool
	isBool bool
	// defines: set from flags, it defines a source of the kind; need:
	// what the option is, when a source from flags must set it.
	defines bool
	need    string
}

// options returns the options of k, in the order of its Config's fields.
func (k sourceKind) options() []sourceOption {
	t := reflect.TypeOf(k.config)
	var out []sourceOption
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("key")
		if key == "" {
			continue
		}
		o := sourceOption{key: key, flag: f.Tag.Get("flag"), secret: f.Tag.Get("secret") == "true",
			isBool: f.Type.Kind() == reflect.Bool, defines: f.Tag.Get("defines") == "true", need: f.Tag.Get("need")}
		if o.flag != "" {
			o.help = strings.NewReplacer("{", "`", "}", "`").Replace(f.Tag.Get("help"))
			if env := f.Tag.Get("env"); env != "" {
				o.vars = strings.Split(env, ",")
			} else {
				o.vars = []string{"FAS_" + strings.ToUpper(strings.ReplaceAll(o.flag, "-", "_"))}
			}
		}
		out = append(out, o)
	}
	return out
}

// flags returns the flags of k's options that have one.
func (k sourceKind) flags() []cli.Flag {
	var out []cli.Flag
	for _, o := range k.options() {
		switch {
		case o.flag == "":
		case o.isBool:
			out = append(out, &cli.BoolFlag{Name: o.flag, Category: k.category, EnvVars: o.vars, Usage: o.help})
		default:
			out = append(out, &cli.StringFlag{Name: o.flag, Category: k.category, EnvVars: o.vars, Usage: o.help})
		}
	}
	return out
}

// keys returns the config file keys a collector of kind k takes, besides
// type and metric-name.
func (k sourceKind) keys() []string {
	var out []string
	for _, o := range k.options() {
		if o.key != "metric-name" {
			out = append(out, o.key)
		}
	}
	return out
}

// checkKeys refuses a key that a collector of kind k does not take: a
// stream on a Kafka collector is a mistake, not something to ignore.
func (k sourceKind) checkKeys(where string, set []string) error {
	return k.checkKeysIn(where, k.keys(), set)
}

// checkKeysIn refuses a key of set that allowed does not hold.
func (k sourceKind) checkKeysIn(where string, allowed, set []string) error {
	for _, key := range set {
		if !slices.Contains(allowed, key) {
			return usagef("%s: %s does not apply to type %s (its keys: %s)", where, key, k.typ, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// secretNames returns the names of k's options that hold secrets: their
// keys, flags and variables.
func (k sourceKind) secretNames() []string {
	var out []string
	for _, o := range k.options() {
		if o.secret {
			out = append(out, o.key)
			if o.flag != "" {
				out = append(append(out, o.flag), o.vars...)
			}
		}
	}
	return out
}

// kindOf returns the registered kind of source of type typ.
func kindOf(typ string) (sourceKind, bool) {
	i := slices.IndexFunc(sourceKinds, func(k sourceKind) bool { return k.typ == typ })
	if i < 0 {
		return sourceKind{}, false
	}
	return sourceKinds[i], true
}

// sourceTypes lists the types of the registered kinds for a message:
// "prometheus, temporal, nats or kafka".
func sourceTypes() string {
	var types []string
	for _, k := range sourceKinds {
		types = append(types, k.typ)
	}
	return strings.Join(types[:len(types)-1], ", ") + " or " + types[len(types)-1]
}

// metricNameFlags returns the flag that names the metric of each kind.
func metricNameFlags() []string {
	var out []string
	for _, k := range sourceKinds {
		for _, o := range k.options() {
			if o.key == "metric-name" && o.flag != "" {
				out = append(out, o.flag)
			}
		}
	}
	return out
}

// collectorKeyNames returns every key a metric collector of some kind
// takes, type first: the candidates of the nearest-key suggestion.
func collectorKeyNames() []string {
	out := []string{"type"}
	for _, k := range sourceKinds {
		for _, o := range k.options() {
			if !slices.Contains(out, o.key) {
				out = append(out, o.key)
			}
		}
	}
	return out
}

// mustKind returns the registered kind of source of type typ.
func mustKind(typ string) sourceKind {
	k, ok := kindOf(typ)
	if !ok {
		panic("no source of type " + typ)
	}
	return k
}

// sourceSecretNames are the names of every registered source option that
// holds a secret, whatever its name says.
var sourceSecretNames = func() map[string]bool {
	out := map[string]bool{}
	for _, k := range sourceKinds {
		for _, n := range k.secretNames() {
			out[n] = true
		}
	}
	return out
}()

// sourceVars are the variables of every registered source option.
var sourceVars = func() map[string]bool {
	out := map[string]bool{}
	for _, k := range sourceKinds {
		for _, o := range k.options() {
			for _, v := range o.vars {
				out[v] = true
			}
		}
	}
	return out
}()

// IsSecretOption reports whether a flag, variable or config key holds a
// secret: its name says so, or a source's Config marks it secret.
func IsSecretOption(name string) bool { return redact.IsSecretName(name) || sourceSecretNames[name] }

// sourceFlags are the flags of the registered kinds of source: the
// environment form of one source of each kind.
func sourceFlags() []cli.Flag {
	var out []cli.Flag
	for _, k := range sourceKinds {
		out = append(out, k.flags()...)
	}
	return out
}
