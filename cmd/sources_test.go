package cmd

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"
)

// testConfig is the Config of a source made up for the test; extendedConfig
// is the same with one more field.
type testConfig struct {
	Name   string `key:"metric-name" flag:"test-metric-name" help:"{NAME} of the value"`
	Depth  string `key:"depth" flag:"test-depth" help:"{DEPTH} to read"`
	Region string `key:"region"`
}

type extendedConfig struct {
	Name   string `key:"metric-name" flag:"test-metric-name" help:"{NAME} of the value"`
	Depth  string `key:"depth" flag:"test-depth" help:"{DEPTH} to read"`
	Region string `key:"region"`
	// Opaque is secret by its tag only: no secret-sounding name.
	Opaque string `key:"opaque" flag:"test-opaque" secret:"true" help:"{VALUE} to send"`
}

// derived is what cmd derives from a kind of source: its flags by name, the
// verdict of its key checker on each key, its secret names.
type derived struct {
	flags   map[string]cli.Flag
	accepts func(key string) bool
	secrets []string
}

func derive(k sourceKind) derived {
	d := derived{flags: map[string]cli.Flag{}, secrets: k.secretNames()}
	for _, f := range k.flags() {
		d.flags[f.Names()[0]] = f
	}
	d.accepts = func(key string) bool { return k.checkKeys("CONFIG:3: metric-collectors[0]", []string{key}) == nil }
	return d
}

// TestSourceConfigDerivation: the flag set, the key checker and the secret
// list come from the fields of a source's Config: a field added to the
// Config appears in all three, with the variable named after its flag.
func TestSourceConfigDerivation(t *testing.T) {
	t.Parallel()
	base := derive(sourceKind{typ: "test", category: catMetrics, config: testConfig{}})
	ext := derive(sourceKind{typ: "test", category: catMetrics, config: extendedConfig{}})

	// Before: no trace of the field.
	if _, ok := base.flags["test-opaque"]; ok {
		t.Errorf("base has --test-opaque")
	}
	if base.accepts("opaque") {
		t.Errorf("base accepts the key opaque")
	}
	if len(base.secrets) != 0 {
		t.Errorf("base secrets %q, want none", base.secrets)
	}

	// After: in the flags, with its variable, help and category.
	f, ok := ext.flags["test-opaque"]
	if !ok {
		t.Fatalf("no --test-opaque among %v", ext.flags)
	}
	sf := f.(*cli.StringFlag)
	if !slices.Equal(sf.EnvVars, []string{"FAS_TEST_OPAQUE"}) || sf.Usage != "`VALUE` to send" || sf.Category != catMetrics {
		t.Errorf("--test-opaque: variables %q, usage %q, category %q", sf.EnvVars, sf.Usage, sf.Category)
	}
	// In the key checker.
	if !ext.accepts("opaque") {
		t.Errorf("the key checker refuses opaque")
	}
	// In the secrets: key, flag and variable.
	for _, n := range []string{"opaque", "test-opaque", "FAS_TEST_OPAQUE"} {
		if !slices.Contains(ext.secrets, n) {
			t.Errorf("secret names %q lack %s", ext.secrets, n)
		}
	}
	// The other fields are where they were, and not secret.
	for _, d := range []derived{base, ext} {
		if _, ok := d.flags["test-depth"]; !ok || !d.accepts("depth") || !d.accepts("region") {
			t.Errorf("depth or region lost: flags %v", d.flags)
		}
		if _, ok := d.flags["test-region"]; ok {
			t.Errorf("region has a flag but its field has no flag tag")
		}
		if slices.Contains(d.secrets, "depth") {
			t.Errorf("depth is secret")
		}
	}
	err := sourceKind{typ: "test", config: extendedConfig{}}.checkKeys("CONFIG:3: metric-collectors[0]", []string{"stream"})
	if err == nil || err.Error() != "CONFIG:3: metric-collectors[0]: stream does not apply to type test (its keys: depth, region, opaque)" {
		t.Errorf("unknown key: %v", err)
	}
}

// TestSourceKindsRegistered: every option of a registered kind is a flag of
// run (when it has one) with its variable, a key its collectors accept,
// and, when its Config marks it secret, a secret option by each name.
func TestSourceKindsRegistered(t *testing.T) {
	t.Parallel()
	run := map[string]cli.Flag{}
	for _, f := range runFlags() {
		run[f.Names()[0]] = f
	}
	for _, k := range sourceKinds {
		for _, o := range k.options() {
			if o.flag != "" {
				f, ok := run[o.flag]
				if !ok {
					t.Errorf("%s: --%s is not a flag of run", k.typ, o.flag)
				} else if !slices.Equal(flagVars(f), o.vars) {
					t.Errorf("--%s: variables %q, want %q", o.flag, flagVars(f), o.vars)
				}
			}
			if o.key != "metric-name" && k.checkKeys("x", []string{o.key}) != nil {
				t.Errorf("%s: key %s refused", k.typ, o.key)
			}
			if o.secret {
				for _, n := range append([]string{o.key, o.flag}, o.vars...) {
					if n != "" && !IsSecretOption(n) {
						t.Errorf("%s: %s is not a secret option", k.typ, n)
					}
				}
			}
		}
		if err := k.checkKeys("x", []string{"no-such-key"}); err == nil || !strings.Contains(err.Error(), "does not apply to type "+k.typ) {
			t.Errorf("%s: unknown key: %v", k.typ, err)
		}
	}
}

// TestCollectorKeysMatchConfigs: a config file collector of each kind
// sets every field of the kind's Config from its key (the decoding is
// derived from the key tags), ${VAR} is expanded but in the template
// fields, a key of no kind is refused, and the nearest-key suggestion
// proposes a kind's key for a misspelt one.
func TestCollectorKeysMatchConfigs(t *testing.T) {
	t.Parallel()
	env := Env{"V": "expanded"}
	for _, k := range sourceKinds {
		rt := reflect.TypeOf(k.config)
		src := "type: " + k.typ + "\n"
		for i := range rt.NumField() {
			f := rt.Field(i)
			key := f.Tag.Get("key")
			switch {
			case key == "":
			case f.Type.Kind() == reflect.Bool:
				src += key + ": " + map[bool]string{true: "false", false: "true"}[key == "include-ack-pending"] + "\n"
			case f.Type.Kind() == reflect.Float64:
				src += key + ": 2\n"
			case key == "on-empty":
				src += key + ": zero\n"
			default:
				src += key + ": ${V}\n"
			}
		}
		var col fileCollector
		if err := yaml.Unmarshal([]byte(src), &col); err != nil {
			t.Fatalf("%s: %v", k.typ, err)
		}
		if col.errs != nil {
			t.Fatalf("%s: %q", k.typ, col.errs)
		}
		col.expand(env)
		cfg, err := col.decode(k)
		if err != nil {
			t.Fatalf("%s: %v", k.typ, err)
		}
		v := reflect.ValueOf(cfg)
		for i := range rt.NumField() {
			f := rt.Field(i)
			if f.Tag.Get("key") == "" {
				continue
			}
			if v.Field(i).IsZero() {
				t.Errorf("%s: %s is not decoded", k.typ, f.Tag.Get("key"))
			}
			if f.Type.Kind() == reflect.String && f.Type == reflect.TypeOf("") {
				want := "expanded"
				if f.Tag.Get("template") == "true" {
					want = "${V}"
				}
				if got := v.Field(i).String(); got != want {
					t.Errorf("%s: %s = %q, want %q", k.typ, f.Tag.Get("key"), got, want)
				}
			}
		}
	}
	var col fileCollector
	if err := yaml.Unmarshal([]byte("type: nats\nnkey-seed-fil: x\n"), &col); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(col.errs, []string{"line 2: field nkey-seed-fil not found in type cmd.fileCollector"}) {
		t.Errorf("unknown key: %q", col.errs)
	}
	for typo, want := range map[string]string{"nkey-seed-fil": "nkey-seed-file", "sasl-mechansim": "sasl-mechanism", "requests-per-secnd": "requests-per-second"} {
		if got := closest(typo, collectorKeyNames()); got != want {
			t.Errorf("closest(%q) = %q, want %q", typo, got, want)
		}
	}
}

// TestCollectorWithBadValueKept: a collector with a value of the wrong
// shape is reported by file and line, and kept, for validate and for its
// secrets to be redacted.
func TestCollectorWithBadValueKept(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config.yml")
	src := "metric-collectors:\n  - type: kafka\n    metric-name: lag\n    password: ${PW}\n    topic: [a, {b: c}]\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	fc, _, err := loadFile(path, Env{"PW": "hunter2-secret"})
	if err == nil || !strings.Contains(err.Error(), path+":5:") {
		t.Fatalf("error %v, want one at line 5", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error quotes the secret: %v", err)
	}
	if fc == nil || len(fc.MetricCollectors) != 1 {
		t.Fatalf("collectors %v, want the one kept", fc)
	}
	if got := fc.MetricCollectors[0].secrets(); !slices.Contains(got, "hunter2-secret") {
		t.Errorf("secrets %q lack the expanded password", got)
	}
}
