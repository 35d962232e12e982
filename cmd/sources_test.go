package cmd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/kafka"
	"github.com/superfly/fly-autoscaler/query/nats"
)

// testConfig is the Config of a source made up for the test; extendedConfig
// is the same with one more field.
type testConfig struct {
	Name   string `key:"metric-name" flag:"test-metric-name" defines:"true" need:"the name of the value" help:"{NAME} of the value"`
	Depth  string `key:"depth" flag:"test-depth" defines:"true" help:"{DEPTH} to read"`
	Region string `key:"region"`
}

type extendedConfig struct {
	Name   string `key:"metric-name" flag:"test-metric-name" defines:"true" need:"the name of the value" help:"{NAME} of the value"`
	Depth  string `key:"depth" flag:"test-depth" defines:"true" help:"{DEPTH} to read"`
	Region string `key:"region"`
	// Opaque is secret by its tag only: no secret-sounding name.
	Opaque string `key:"opaque" flag:"test-opaque" secret:"true" help:"{VALUE} to send"`
}

func (c testConfig) MetricName() string { return c.Name }
func (c testConfig) Secrets() []string  { return nil }
func (c testConfig) Validate() error {
	if c.Depth == "" {
		return errors.New("depth: empty")
	}
	return nil
}

func (c extendedConfig) MetricName() string { return c.Name }
func (c extendedConfig) Secrets() []string  { return []string{c.Opaque} }
func (c extendedConfig) Validate() error    { return testConfig{Depth: c.Depth}.Validate() }

// testSource is the source a test kind builds: its Config's metric name
// and depth.
type testSource struct{ name, depth string }

func (s testSource) Name() string { return s.name }
func (s testSource) Collect(context.Context, string) (float64, error) {
	return strconv.ParseFloat(s.depth, 64)
}

// testKind is the kind of source a package with Config C would register.
func testKind[C query.SourceConfig]() sourceKind {
	return register("test", catMetrics, func(c C, _ query.Runtime) (query.Source, error) {
		v := reflect.ValueOf(c)
		return testSource{name: c.MetricName(), depth: v.FieldByName("Depth").String()}, nil
	})
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
	base := derive(testKind[testConfig]())
	ext := derive(testKind[extendedConfig]())

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
	err := testKind[extendedConfig]().checkKeys("CONFIG:3: metric-collectors[0]", []string{"stream"})
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
		// From flags: the kind can be defined, names its metric, and each
		// option it needs has a flag.
		var defines, named bool
		for _, o := range k.options() {
			defines = defines || (o.defines && o.flag != "")
			named = named || (o.key == "metric-name" && o.flag != "" && o.need != "")
			if o.need != "" && o.flag == "" {
				t.Errorf("%s: %s is needed from flags but has none", k.typ, o.key)
			}
		}
		if len(k.flags()) > 0 && (!defines || !named) {
			t.Errorf("%s: has flags, but none defines a source (%v) or the metric name is not needed from them (%v)", k.typ, defines, named)
		}
		// Every field decodes from text (setText knows its type).
		cfg := k.zero()
		for i := range cfg.NumField() {
			f := cfg.Type().Field(i)
			if f.Tag.Get("key") == "" {
				continue
			}
			if err := setText(cfg.Field(i), f, ""); err != nil && strings.Contains(err.Error(), "no decoding") {
				t.Errorf("%s: %v", k.typ, err)
			}
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
			case derefKind(f.Type) == reflect.Bool:
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

// TestKindFromItsRegistration: a kind of source is whole from its one
// registration line: from its flags and variables (decoded, checked, the
// errors naming the flags), from a config file collector, built into a
// source, and its Secrets consulted for what no option name announces.
func TestKindFromItsRegistration(t *testing.T) {
	t.Parallel()
	k := testKind[extendedConfig]()
	fromFlags := func(env Env, args ...string) (query.SourceConfig, string, error) {
		t.Helper()
		var (
			cfg     query.SourceConfig
			where   string
			err     error
			secrets []string
		)
		app := &cli.App{Metadata: map[string]any{envKey: env}, Commands: []*cli.Command{{
			Name: "run", Flags: k.flags(), Action: func(c *cli.Context) error {
				secrets = k.flagSecrets(c)
				cfg, where, err = k.fromFlags(settings{c: c, env: env})
				return nil
			},
		}}}
		if err := app.Run(append([]string{"x", "run"}, args...)); err != nil {
			t.Fatal(err)
		}
		if cfg != nil && cfg.(extendedConfig).Opaque != "" && !slices.Contains(secrets, cfg.(extendedConfig).Opaque) {
			t.Errorf("flag secrets %q lack the opaque value", secrets)
		}
		return cfg, where, err
	}
	collect := func(cfg query.SourceConfig) float64 {
		t.Helper()
		src, err := (metricSource{kind: k, cfg: cfg}).build(query.Runtime{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := src.Collect(context.Background(), "app")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	cfg, where, err := fromFlags(Env{}, "--test-metric-name", "depth_q", "--test-depth", "3", "--test-opaque", "s3cr3t-opaque")
	if err != nil || cfg == nil {
		t.Fatalf("from flags: %v, %v", cfg, err)
	}
	if where != "--test-metric-name (FAS_TEST_METRIC_NAME)" || cfg.MetricName() != "depth_q" || collect(cfg) != 3 {
		t.Errorf("from flags: where %q, name %q", where, cfg.MetricName())
	}
	cfg, _, err = fromFlags(Env{"FAS_TEST_METRIC_NAME": "depth_q", "FAS_TEST_DEPTH": "4", "FAS_TEST_OPAQUE": "other-opaque"})
	if err != nil || cfg == nil || collect(cfg) != 4 {
		t.Errorf("from variables: %v, %v", cfg, err)
	}
	// Nothing set: no source. Set but wrong: the error names the flag.
	if cfg, _, err := fromFlags(Env{}); cfg != nil || err != nil {
		t.Errorf("no flags: %v, %v", cfg, err)
	}
	if _, _, err := fromFlags(Env{}, "--test-depth", "3"); err == nil || err.Error() != "--test-metric-name (FAS_TEST_METRIC_NAME): missing: the name of the value" {
		t.Errorf("no name: %v", err)
	}
	if _, _, err := fromFlags(Env{}, "--test-metric-name", "q", "--test-opaque", "x"); err == nil || err.Error() != "--test-depth (FAS_TEST_DEPTH): empty" {
		t.Errorf("no depth: %v", err)
	}

	// From a config file collector.
	var col fileCollector
	if err := yaml.Unmarshal([]byte("type: test\nmetric-name: depth_f\ndepth: '5'\nregion: iad\nopaque: file-opaque\n"), &col); err != nil {
		t.Fatal(err)
	}
	cfg, err = col.decode(k)
	if err != nil || cfg.(extendedConfig).Region != "iad" || collect(cfg) != 5 {
		t.Errorf("from the file: %#v, %v", cfg, err)
	}
	if !slices.Contains(cfg.Secrets(), "file-opaque") {
		t.Errorf("secrets %q", cfg.Secrets())
	}
}

// TestNATSAndKafkaFlags: the source the --nats-* and --kafka-* flags (and
// their variables) define loads with the values given, lists split; a
// wrong or missing one exits 2 with no API call, naming the flags.
func TestNATSAndKafkaFlags(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"FAS_NATS_URL": "nats://127.0.0.1:4222", "FAS_NATS_METRIC_NAME": "backlog", "FAS_NATS_STREAM": "jobs-$APP_NAME", "FAS_NATS_CONSUMER": "workers",
		"FAS_KAFKA_BROKERS": "127.0.0.1:9092, 127.0.0.2:9092", "FAS_KAFKA_METRIC_NAME": "lag", "FAS_KAFKA_TOPIC": "orders-$APP_NAME",
	}
	t.Run("loads", func(t *testing.T) {
		for k, v := range base {
			setenv(t, k, v)
		}
		rc, err := loadConfig(t, "--api-token", "tok", "--apps", "a", "--started-machine-count", "backlog + lag", "--kafka-group", "g-$APP_NAME")
		if err != nil {
			t.Fatal(err)
		}
		ncs, kcs := configsOf[nats.Config](rc), configsOf[kafka.Config](rc)
		if len(rc.metrics) != 2 || len(ncs) != 1 || len(kcs) != 1 {
			t.Fatalf("sources %v, want one NATS and one Kafka", rc.metrics)
		}
		if nc := ncs[0]; nc.Name != "backlog" || nc.Stream != "jobs-$APP_NAME" || nc.Consumer != "workers" || nc.URL != "nats://127.0.0.1:4222" {
			t.Errorf("NATS %#v", nc)
		}
		if kc := kcs[0]; kc.Name != "lag" || !slices.Equal(kc.Brokers, []string{"127.0.0.1:9092", "127.0.0.2:9092"}) || kc.Topic != "orders-$APP_NAME" || kc.Group != "g-$APP_NAME" {
			t.Errorf("Kafka %#v: brokers %q", kc, kc.Brokers)
		}
	})
	checkFlagErrors(t, base, []flagErrorCase{
		{"nats: no stream", map[string]string{"FAS_NATS_STREAM": ""}, "--nats-stream (FAS_NATS_STREAM): missing: the JetStream stream, e.g. jobs-$APP_NAME"},
		{"nats: no name", map[string]string{"FAS_NATS_METRIC_NAME": ""}, "--nats-metric-name (FAS_NATS_METRIC_NAME): missing: the name the expressions use for the backlog"},
		{"nats: bad url", map[string]string{"FAS_NATS_URL": "http://127.0.0.1:4222"}, "--nats-url (FAS_NATS_URL): http://127.0.0.1:4222: want nats://"},
		{"nats: two kinds of credentials", map[string]string{"FAS_NATS_TOKEN": "Zq8xW3vK1p", "FAS_NATS_CREDS": "/nonexistent.creds"},
			"--nats-creds (FAS_NATS_CREDS), --nats-token (FAS_NATS_TOKEN): set one kind of credentials, not several"},
		{"kafka: no topic", map[string]string{"FAS_KAFKA_TOPIC": ""}, "--kafka-topic (FAS_KAFKA_TOPIC): missing: the topic, e.g. orders-$APP_NAME"},
		{"kafka: a broker without a port", map[string]string{"FAS_KAFKA_BROKERS": "127.0.0.1:9092,kafka"}, `--kafka-brokers (FAS_KAFKA_BROKERS): "kafka": want host:port`},
		{"kafka: user without mechanism", map[string]string{"FAS_KAFKA_USERNAME": "u", "FAS_KAFKA_PASSWORD": "Pw9Yt7Lm2r"},
			"--kafka-username (FAS_KAFKA_USERNAME), --kafka-password (FAS_KAFKA_PASSWORD): set sasl-mechanism too"},
		{"kafka: unknown mechanism", map[string]string{"FAS_KAFKA_SASL_MECHANISM": "gssapi"}, `--kafka-sasl-mechanism (FAS_KAFKA_SASL_MECHANISM): "gssapi": want plain`},
		{"same name twice", map[string]string{"FAS_KAFKA_METRIC_NAME": "backlog"}, `--kafka-metric-name (FAS_KAFKA_METRIC_NAME): metric name "backlog" is already defined by --nats-metric-name`},
	})
}

// TestKafkaTLSOffWithTLSOptions: tls: false beside a TLS option is a
// contradiction, named by its file and line; tls: true alone is kept.
func TestKafkaTLSOffWithTLSOptions(t *testing.T) {
	t.Parallel()
	head := "app-name: a\napi-token: tok\nstarted-machine-count: lag\nmetric-collectors:\n  - type: kafka\n    metric-name: lag\n    brokers: 127.0.0.1:9092\n    topic: t\n"
	path := writeFile(t, "off.yml", head+"    tls: false\n    tls-insecure-skip-verify: true\n")
	if _, err := loadConfig(t, "--config", path); err == nil || !strings.Contains(err.Error(), path+":5: metric-collectors[0]: kafka metric \"lag\": tls: false, but") {
		t.Errorf("tls: false with an option: %v", err)
	}
	rc, err := loadConfig(t, "--config", writeFile(t, "on.yml", head+"    tls: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if kcs := configsOf[kafka.Config](rc); len(kcs) != 1 || kcs[0].TLS == nil || !*kcs[0].TLS {
		t.Errorf("tls: true not kept: %v", rc.metrics)
	}
}
