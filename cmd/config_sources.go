package cmd

import (
	"errors"
	"log/slog"
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
			cfgs = append(cfgs, nats.Config{Creds: col.value("creds"), NKeySeedFile: col.value("nkey-seed-file")})
		}
	}
	var out []string
	for _, nc := range cfgs {
		out = append(out, nc.Secrets()...)
	}
	return out
}

// claimFunc reserves a metric name for the collector at where.
type claimFunc func(where, name string) error

// natsFromFile completes a nats.Config decoded from a config file
// collector: include-ack-pending: false counts the pending messages only.
func natsFromFile(cfg any, raw map[string]string) (any, error) {
	nc := cfg.(nats.Config)
	nc.PendingOnly = raw["include-ack-pending"] == "false"
	return nc, nil
}

// kafkaFromFile checks a kafka.Config decoded from a config file
// collector: tls: false with TLS options is a contradiction.
func kafkaFromFile(cfg any, raw map[string]string) (any, error) {
	kc := cfg.(kafka.Config)
	if raw["tls"] == "false" && (kc.TLSCA != "" || kc.TLSCert != "" || kc.TLSInsecureSkipVerify) {
		return nil, errors.New("tls is false, but tls-ca, tls-cert or tls-insecure-skip-verify is set: drop them or set tls: true")
	}
	return kc, nil
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
