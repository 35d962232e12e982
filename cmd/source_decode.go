package cmd

import (
	"encoding"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/superfly/fly-autoscaler/query"
)

// The decoding of a kind of source's Config from text, by the tags of its
// fields (sources.go): from its flags and variables here, from a config
// file collector in config_collector_file.go. Nothing here names a kind
// of source or an option of one.

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// zero returns a new zero Config of kind k, settable.
func (k sourceKind) zero() reflect.Value {
	return reflect.New(reflect.TypeOf(k.config)).Elem()
}

// setText sets the field f of a Config, fv, from its text: a string as
// is, a boolean (negated when f is tagged negate:"true"), a list split at
// its commas, a number, or a type that reads its own text
// (encoding.TextUnmarshaler: query.OnEmpty, temporal.Rate). Its errors
// begin with f's key.
func setText(fv reflect.Value, f reflect.StructField, text string) error {
	key := f.Tag.Get("key")
	fail := func(err error) error {
		if msg := err.Error(); strings.HasPrefix(msg, key+" ") || strings.HasPrefix(msg, key+":") {
			return err
		}
		return fmt.Errorf("%s: %w", key, err)
	}
	if reflect.PointerTo(f.Type).Implements(textUnmarshaler) {
		if err := fv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(text)); err != nil {
			return fail(err)
		}
		return nil
	}
	t := f.Type
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var v reflect.Value
	switch t.Kind() {
	case reflect.String:
		v = reflect.ValueOf(text).Convert(t)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return fail(fmt.Errorf("%q: want true or false", text))
		}
		v = reflect.ValueOf(b != (f.Tag.Get("negate") == "true"))
	case reflect.Float64:
		x, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
		if err != nil {
			return fail(fmt.Errorf("%q: want a number", text))
		}
		v = reflect.ValueOf(x).Convert(t)
	case reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(text))
		if err != nil {
			return fail(fmt.Errorf("%q: want a whole number", text))
		}
		v = reflect.ValueOf(n).Convert(t)
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			return fail(fmt.Errorf("no decoding for %s", t))
		}
		v = reflect.ValueOf(splitList(text)).Convert(t)
	default:
		return fail(fmt.Errorf("no decoding for %s", t))
	}
	if f.Type.Kind() == reflect.Pointer {
		p := reflect.New(t)
		p.Elem().Set(v)
		v = p
	}
	fv.Set(v)
	return nil
}

// fromTexts returns the Config of kind k whose fields are set from texts,
// by key; a key k has no field for is left out. With keepGoing, a text
// that does not decode leaves its field unset instead of failing (for the
// secrets of a Config not yet checked).
func (k sourceKind) fromTexts(texts map[string]string, keepGoing bool) (query.SourceConfig, error) {
	cfg := k.zero()
	for key, text := range texts {
		f, ok := keyField(cfg.Type(), key)
		if !ok {
			continue
		}
		if err := setText(cfg.FieldByIndex(f.Index), f, text); err != nil && !keepGoing {
			return nil, err
		}
	}
	return cfg.Interface().(query.SourceConfig), nil
}

// flagTexts returns the text of each of k's options that has a flag set
// (by the command line or a variable), by key, and whether one of them
// defines a source (defines:"true").
func (k sourceKind) flagTexts(s settings) (map[string]string, bool) {
	texts := map[string]string{}
	defined := false
	for _, o := range k.options() {
		if o.flag == "" {
			continue
		}
		v := s.str(o.flag, "")
		if o.isBool {
			v = ""
			if s.c.Bool(o.flag) {
				v = "true"
			}
		}
		if v != "" {
			texts[o.key] = v
			defined = defined || o.defines
		}
	}
	return texts, defined
}

// fromFlags returns the source of kind k its flags and variables define,
// validated, and where to name it (its metric name's flag), or nil when
// none of the flags that define one is set: a worker's environment may
// hold TEMPORAL_TLS_* for its own use. Its errors name the flags.
func (k sourceKind) fromFlags(s settings) (query.SourceConfig, string, error) {
	texts, defined := k.flagTexts(s)
	if !defined {
		return nil, "", nil
	}
	opts := k.options()
	var nameFlag string
	for _, o := range opts {
		if o.key == "metric-name" {
			nameFlag = o.flag
		}
	}
	// The name first, then in the Config's order.
	for _, first := range []bool{true, false} {
		for _, o := range opts {
			if o.need != "" && (o.key == "metric-name") == first && texts[o.key] == "" {
				return nil, "", usagef("%s: missing: %s", s.flagWhere(o.flag), o.need)
			}
		}
	}
	cfg, err := k.fromTexts(texts, false)
	if err != nil {
		return nil, "", k.flagError(s, texts["metric-name"], err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, "", k.flagError(s, cfg.MetricName(), err)
	}
	return cfg, s.flagWhere(nameFlag), nil
}

// flagSecrets returns the secrets of the source of kind k that the
// command line, and the variables, would define, before anything is
// checked: Secrets knows what no option's name announces (the keys in a
// NATS creds file).
func (k sourceKind) flagSecrets(c *cli.Context) []string {
	env := envOf(c)
	byFlag, byEnv := map[string]string{}, map[string]string{}
	for _, o := range k.options() {
		if o.flag == "" || o.isBool {
			continue
		}
		byFlag[o.key] = strings.TrimSpace(c.String(o.flag))
		for _, name := range o.vars {
			if v := strings.TrimSpace(env.Get(name)); v != "" {
				byEnv[o.key] = v
				break
			}
		}
	}
	var out []string
	for _, texts := range []map[string]string{byFlag, byEnv} {
		cfg, _ := k.fromTexts(texts, true)
		out = append(out, cfg.Secrets()...)
	}
	return out
}

// keyList splits the head of an error that names several keys: "user,
// password", "task-queue and query", "task-queue or query".
var keyList = regexp.MustCompile(`, | and | or `)

// flagError rewrites an error about k's keys (of its Validate, or of a
// flag's text: `kafka metric "lag": topic: empty`, "user, password: set
// both or neither") to name the flags of the keys and their variables.
func (k sourceKind) flagError(s settings, name string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, fmt.Sprintf("%s metric %q: ", k.typ, name))
	msg = strings.TrimPrefix(msg, k.typ+": ")
	opts := k.options()
	flagOf := func(key string) (string, bool) {
		for _, o := range opts {
			if o.key == key {
				return o.flag, true
			}
		}
		return "", false
	}
	if head, rest, ok := strings.Cut(msg, ": "); ok {
		// The keys without a flag are left out: flags cannot set them.
		keys := keyList.Split(head, -1)
		seps := keyList.FindAllString(head, -1)
		var named []string
		for _, key := range keys {
			flag, ok := flagOf(key)
			if !ok {
				named = nil
				break
			}
			if flag != "" {
				named = append(named, s.flagWhere(flag))
			}
		}
		if len(named) == len(keys) {
			var b strings.Builder
			for i, n := range named {
				b.WriteString(n)
				if i < len(seps) {
					b.WriteString(seps[i])
				}
			}
			return usagef("%s: %s", b.String(), rest)
		}
		if len(named) > 0 {
			return usagef("%s: %s", strings.Join(named, ", "), rest)
		}
	}
	for _, o := range opts {
		if o.flag == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(msg, o.key); ok && (rest == "" || rest[0] == ' ' || rest[0] == ':') {
			return usagef("%s: %s", s.flagWhere(o.flag), strings.TrimLeft(rest, ": "))
		}
	}
	return usagef("--%s-* (FAS_%s_*): %s", k.typ, strings.ToUpper(k.typ), msg)
}
