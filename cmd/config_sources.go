package cmd

import (
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/kafka"
	"github.com/superfly/fly-autoscaler/query/nats"
)

// The metric sources beside Prometheus: NATS JetStream consumer backlogs and
// Kafka consumer-group lag. Each is a `metric-collectors` entry of its type,
// or one more source from the --nats-* or --kafka-* flags.

// sourceKeys are the config file keys of the NATS and Kafka collectors,
// inlined into collectorConfig. token and metric-name are shared with
// Prometheus.
type sourceKeys struct {
	// NATS.
	URL               string `yaml:"url"`
	Stream            string `yaml:"stream"`
	Consumer          string `yaml:"consumer"`
	IncludeAckPending *bool  `yaml:"include-ack-pending"`
	Creds             string `yaml:"creds"`
	NKeySeedFile      string `yaml:"nkey-seed-file"`
	User              string `yaml:"user"`
	Domain            string `yaml:"domain"`

	// Kafka.
	Brokers        stringList `yaml:"brokers"`
	Topic          string     `yaml:"topic"`
	Group          string     `yaml:"group"`
	UnconsumedFrom string     `yaml:"unconsumed-from"`
	SASLMechanism  string     `yaml:"sasl-mechanism"`
	Username       string     `yaml:"username"`
	TLS            *bool      `yaml:"tls"`

	// Both.
	// Both, with tls-ca and tls-insecure-skip-verify of collectorConfig
	// (shared with Temporal).
	Password string `yaml:"password"`
	TLSCert  string `yaml:"tls-cert"`
	TLSKey   string `yaml:"tls-key"`
}

// expand replaces environment references in the keys that may take a
// secret or a path from the environment. Stream, consumer, topic and group
// are names that $APP_NAME templates, like a query: they are left as
// written, so that no secret can be expanded into them.
func (k *sourceKeys) expand(env Env) {
	for _, p := range []*string{&k.URL, &k.Creds, &k.NKeySeedFile, &k.User, &k.Domain, &k.UnconsumedFrom,
		&k.SASLMechanism, &k.Username, &k.Password, &k.TLSCert, &k.TLSKey} {
		*p = env.expand(*p)
	}
	for i := range k.Brokers {
		k.Brokers[i] = env.expand(k.Brokers[i])
	}
}

// sourceConfigs are the run's NATS and Kafka sources, validated.
type sourceConfigs struct {
	nats  []nats.Config
	kafka []kafka.Config
}

// names returns the metric names of the sources.
func (sc sourceConfigs) names() []string {
	var out []string
	for _, c := range sc.nats {
		out = append(out, c.Name)
	}
	for _, c := range sc.kafka {
		out = append(out, c.Name)
	}
	return out
}

// secrets returns every secret of the sources: tokens, passwords, URL
// credentials and the keys of creds and nkey seed files.
func (sc sourceConfigs) secrets() []string {
	var out []string
	for _, c := range sc.nats {
		out = append(out, c.Secrets()...)
	}
	for _, c := range sc.kafka {
		out = append(out, c.Secrets()...)
	}
	return out
}

// sourceFileSecrets returns the keys in the NATS creds and nkey seed
// files of the flags, variables and config file: the files' contents are
// secrets that no option name announces.
func sourceFileSecrets(c *cli.Context, file *fileConfig) []string {
	cfgs := []nats.Config{{Creds: c.String("nats-creds")}, {Creds: envOf(c).Get("FAS_NATS_CREDS")}}
	if file != nil {
		for _, col := range file.MetricCollectors {
			cfgs = append(cfgs, nats.Config{Creds: col.Creds, NKeySeedFile: col.NKeySeedFile})
		}
	}
	var out []string
	for _, nc := range cfgs {
		out = append(out, nc.Secrets()...)
	}
	return out
}

// keysOf returns the keys of col set to anything, by their YAML names.
func keysOf(col collectorConfig) []string {
	var out []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		for i := range v.NumField() {
			f, ft := v.Field(i), v.Type().Field(i)
			key, opts, _ := strings.Cut(ft.Tag.Get("yaml"), ",")
			if opts == "inline" {
				walk(f)
				continue
			}
			if key != "" && key != "type" && key != "metric-name" && !f.IsZero() {
				out = append(out, key)
			}
		}
	}
	walk(reflect.ValueOf(col))
	return out
}

// checkCollectorKeys refuses a key that the collector's type does not
// take; the keys of each type come from its Config (sources.go).
func checkCollectorKeys(where, typ string, col collectorConfig) error {
	if k, ok := kindOf(typ); ok {
		return k.checkKeys(where, keysOf(col))
	}
	return nil
}

// claimFunc reserves a metric name for the collector at where.
type claimFunc func(where, name string) error

// addFileCollector validates a nats or kafka collector of the config file.
func (sc *sourceConfigs) addFileCollector(where, typ string, col collectorConfig, claim claimFunc) error {
	if err := checkCollectorKeys(where, typ, col); err != nil {
		return err
	}
	if err := claim(where, col.MetricName); err != nil {
		return err
	}
	if typ == "nats" {
		nc := nats.Config{Name: col.MetricName, URL: col.URL, Stream: col.Stream, Consumer: col.Consumer,
			PendingOnly: col.IncludeAckPending != nil && !*col.IncludeAckPending,
			Creds:       col.Creds, NKeySeedFile: col.NKeySeedFile, Token: col.Token, User: col.User, Password: col.Password,
			TLSCA: col.TLSCA, TLSCert: col.TLSCert, TLSKey: col.TLSKey, Domain: col.Domain}
		if err := nc.Validate(); err != nil {
			return usagef("%s: %v", where, err)
		}
		sc.nats = append(sc.nats, nc)
		return nil
	}
	kc := kafka.Config{Name: col.MetricName, Brokers: col.Brokers, Topic: col.Topic, Group: col.Group,
		UnconsumedFrom: col.UnconsumedFrom, SASLMechanism: col.SASLMechanism, Username: col.Username, Password: col.Password,
		TLS: col.TLS != nil && *col.TLS, TLSCA: col.TLSCA, TLSCert: col.TLSCert, TLSKey: col.TLSKey,
		TLSInsecureSkipVerify: col.TLSInsecureSkipVerify}
	if col.TLS != nil && !*col.TLS && (kc.TLSCA != "" || kc.TLSCert != "" || kc.TLSInsecureSkipVerify) {
		return usagef("%s: tls is false, but tls-ca, tls-cert or tls-insecure-skip-verify is set: drop them or set tls: true", where)
	}
	if err := kc.Validate(); err != nil {
		return usagef("%s: %v", where, err)
	}
	sc.kafka = append(sc.kafka, kc)
	return nil
}

// sourceFlags are the flags of the registered kinds of source
// (sources.go): --nats-* and --kafka-*, the environment form of one source
// of each kind.
func sourceFlags() []cli.Flag {
	var out []cli.Flag
	for _, k := range sourceKinds {
		out = append(out, k.flags()...)
	}
	return out
}

// addFlagSources adds the source of the --nats-* flags and the one of the
// --kafka-* flags, when any of their flags is set.
func (sc *sourceConfigs) addFlagSources(s settings, claim claimFunc) error {
	str := func(flag string) string {
		if v := strings.TrimSpace(s.c.String(flag)); v != "" {
			return v
		}
		return s.envValue(flag)
	}
	any := func(flags ...string) bool {
		return slices.ContainsFunc(flags, func(f string) bool { return str(f) != "" })
	}
	missing := func(checks ...struct{ flag, val, what string }) error {
		for _, f := range checks {
			if f.val == "" {
				return usagef("%s: missing: %s", s.flagWhere(f.flag), f.what)
			}
		}
		return nil
	}
	type check = struct{ flag, val, what string }

	if any("nats-url", "nats-metric-name", "nats-stream", "nats-consumer", "nats-token", "nats-creds") {
		nc := nats.Config{Name: str("nats-metric-name"), URL: str("nats-url"), Stream: str("nats-stream"),
			Consumer: str("nats-consumer"), Token: str("nats-token"), Creds: str("nats-creds")}
		if err := missing(
			check{"nats-metric-name", nc.Name, "the name the expressions use for the backlog"},
			check{"nats-url", nc.URL, "the NATS server, e.g. nats://nats.internal:4222"},
			check{"nats-stream", nc.Stream, "the JetStream stream, e.g. jobs-$APP_NAME"},
			check{"nats-consumer", nc.Consumer, "the consumer, e.g. workers"},
		); err != nil {
			return err
		}
		if err := nc.Validate(); err != nil {
			return mustKind("nats").flagError(s, nc.Name, err)
		}
		if err := claim(s.flagWhere("nats-metric-name"), nc.Name); err != nil {
			return err
		}
		sc.nats = append(sc.nats, nc)
	}
	if any("kafka-brokers", "kafka-metric-name", "kafka-topic", "kafka-group", "kafka-sasl-mechanism", "kafka-username", "kafka-password") {
		kc := kafka.Config{Name: str("kafka-metric-name"), Brokers: []string{str("kafka-brokers")}, Topic: str("kafka-topic"),
			Group: str("kafka-group"), SASLMechanism: str("kafka-sasl-mechanism"), Username: str("kafka-username"), Password: str("kafka-password")}
		if err := missing(
			check{"kafka-metric-name", kc.Name, "the name the expressions use for the lag"},
			check{"kafka-brokers", kc.Brokers[0], "the brokers, e.g. kafka.internal:9092"},
			check{"kafka-topic", kc.Topic, "the topic, e.g. orders-$APP_NAME"},
		); err != nil {
			return err
		}
		if kc.SASLMechanism == "" && (kc.Username != "" || kc.Password != "") {
			return usagef("%s: missing: username and password need the SASL mechanism: plain, scram-sha-256 or scram-sha-512", s.flagWhere("kafka-sasl-mechanism"))
		}
		if err := kc.Validate(); err != nil {
			return mustKind("kafka").flagError(s, kc.Name, err)
		}
		if err := claim(s.flagWhere("kafka-metric-name"), kc.Name); err != nil {
			return err
		}
		sc.kafka = append(sc.kafka, kc)
	}
	return nil
}

// build returns the sources, each logging its requests at debug level
// with --verbose.
func (sc sourceConfigs) build(rc *runConfig) ([]query.Source, error) {
	var opts []query.SourceOption
	if rc.verbose && rc.log != nil {
		opts = append(opts, query.WithTrace(traceLogger(rc.log)))
	}
	out, err := appendSources(nil, sc.nats, nats.New, opts...)
	if err != nil {
		return nil, err
	}
	return appendSources(out, sc.kafka, kafka.New, opts...)
}

// appendSources builds a source of each configuration with build and
// appends it to out. A configuration the source refuses is the user's
// mistake: a usage error.
func appendSources[C, O any, S query.Source](out []query.Source, cfgs []C, build func(C, ...O) (S, error), opts ...O) ([]query.Source, error) {
	for _, c := range cfgs {
		src, err := build(c, opts...)
		if err != nil {
			return nil, &UsageError{Msg: err.Error()}
		}
		out = append(out, src)
	}
	return out, nil
}

// traceLogger logs each source request: what was asked, how long it took,
// and the outcome. The sources' errors hold no secret.
func traceLogger(log *slog.Logger) query.Tracer {
	return func(tr query.Trace) {
		attrs := []any{"metric", tr.Source, "request", tr.Request, "elapsed", tr.Elapsed.Round(time.Microsecond)}
		if tr.Err != nil {
			log.Debug("source", append(attrs, "error", tr.Err.Error())...)
			return
		}
		log.Debug("source", append(attrs, "outcome", "ok")...)
	}
}
