// The metric collectors of the run configuration: the config file's, the
// --prometheus-* flags', the Temporal, NATS and Kafka ones.

package cmd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/kafka"
	"github.com/superfly/fly-autoscaler/query/nats"
	"github.com/superfly/fly-autoscaler/query/prometheus"
	"github.com/superfly/fly-autoscaler/query/temporal"
	"github.com/superfly/fly-autoscaler/scale"
)

// collectors gathers the metric collectors of the config file and the ones
// the --prometheus-* flags (FAS_PROMETHEUS_*), --temporal-* flags
// (FAS_TEMPORAL_*), --nats-* and --kafka-* define; the NATS and Kafka ones
// go to sources. A problem with one collector is recorded in p; with
// p.all, the others are still checked.
func collectors(s settings, file *fileConfig, sources *sourceConfigs, p *problems) ([]prometheus.Config, []temporal.Config, error) {
	var out []prometheus.Config
	var temporals []temporal.Config
	seen := map[string]string{}
	claim := func(where, name string) error {
		if slices.Contains(scale.ReservedVars(), name) {
			return usagef("%s: metric name %q is taken by a fleet or time variable (%s): choose another name", where, name, strings.Join(scale.ReservedVars(), ", "))
		}
		if prev, ok := seen[name]; ok && name != "" {
			return usagef("%s: metric name %q is already defined by %s: each metric needs its own name", where, name, prev)
		}
		// The collector as the next error names it: "metric-collectors[0]
		// (line 5)", not the file's path again.
		if rest, ok := strings.CutPrefix(where, s.path+":"); ok && s.path != "" {
			if line, key, ok := strings.Cut(rest, ": "); ok {
				where = fmt.Sprintf("%s (line %s)", key, line)
			}
		}
		seen[name] = where
		return nil
	}
	fromFile := func(i int, c fileCollector) error {
		where := file.collectorAt(s.path, i)
		typ := c.typ()
		k, ok := kindOf(typ)
		switch {
		case typ == "":
			return usagef("%s: type: missing: use %s", where, sourceTypes())
		case !ok:
			return usagef("%s: type %q is not supported: use %s", where, c.value("type"), sourceTypes())
		}
		if err := k.checkKeys(where, c.setKeys()); err != nil {
			return err
		}
		cfg, err := c.decode(k)
		if err != nil {
			return usagef("%s: %v", where, err)
		}
		switch cfg := cfg.(type) {
		case prometheus.Config:
			return addCollector(&out, claim, where, cfg.Name, cfg)
		case temporal.Config:
			return addCollector(&temporals, claim, where, cfg.Name, cfg) // it names where
		case nats.Config:
			return addCollector(&sources.nats, claim, where, cfg.Name, cfg)
		case kafka.Config:
			return addCollector(&sources.kafka, claim, where, cfg.Name, cfg)
		}
		return fmt.Errorf("%s: no collector of type %s", where, typ)
	}
	for i, c := range file.MetricCollectors {
		if err := fromFile(i, c); p.add(err) {
			return nil, nil, err
		}
	}
	tc, err := temporalFromFlags(s)
	if p.add(err) {
		return nil, nil, err
	}
	if tc != nil {
		if err := addCollector(&temporals, claim, s.flagWhere("temporal-metric-name"), tc.Name, *tc); p.add(err) {
			return nil, nil, err
		}
	}
	if err := sources.addFlagSources(s, claim); p.add(err) {
		return nil, nil, err
	}
	if err := promFromFlags(s, claim, &out); p.add(err) {
		return nil, nil, err
	}
	return out, temporals, nil
}

// promFromFlags adds the collector the --prometheus-* flags
// (FAS_PROMETHEUS_*) define, beside the file's, when any is set: its
// errors name the flag and the variable of the field, not the YAML key
// query's Validate knows.
func promFromFlags(s settings, claim claimFunc, out *[]prometheus.Config) error {
	c := s.c
	pc := prometheus.Config{
		Name:     strings.TrimSpace(c.String("prometheus-metric-name")),
		Address:  strings.TrimSpace(c.String("prometheus-address")),
		Query:    strings.TrimSpace(c.String("prometheus-query")),
		Token:    strings.TrimSpace(c.String("prometheus-token")),
		AppLabel: strings.TrimSpace(c.String("prometheus-app-label")),
	}
	if pc.Name == "" && pc.Address == "" && pc.Query == "" {
		return nil
	}
	for _, f := range []struct{ flag, val, what string }{
		{"prometheus-metric-name", pc.Name, "the name the expressions use for the query's value"},
		{"prometheus-address", pc.Address, "the Prometheus HTTP API base URL, e.g. https://api.fly.io/prometheus/my-org"},
		{"prometheus-query", pc.Query, `the PromQL query, e.g. sum(queue_depth{app="$APP_NAME"})`},
	} {
		if f.val == "" {
			return usagef("%s: missing: %s", s.flagWhere(f.flag), f.what)
		}
	}
	onEmpty, err := query.ParseOnEmpty(c.String("prometheus-on-empty"))
	if err != nil {
		return usagef("%s: %v", s.flagWhere("prometheus-on-empty"), err)
	}
	pc.OnEmpty = onEmpty
	if err := pc.Validate(); err != nil {
		return mustKind("prometheus").flagError(s, pc.Name, err)
	}
	return addCollector(out, claim, s.flagWhere("prometheus-metric-name"), pc.Name, pc)
}

// addCollector claims the metric name of the collector c at where,
// validates c and appends it to *to.
func addCollector[C interface{ Validate() error }](to *[]C, claim claimFunc, where, name string, c C) error {
	if err := claim(where, name); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return usagef("%s: %v", where, err)
	}
	*to = append(*to, c)
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// promFromFile completes a prometheus.Config decoded from a config file
// collector: its on-empty mode.
func promFromFile(cfg any, raw map[string]string) (any, error) {
	pc := cfg.(prometheus.Config)
	onEmpty, err := query.ParseOnEmpty(raw["on-empty"])
	if err != nil {
		return nil, err
	}
	pc.OnEmpty = onEmpty
	return pc, nil
}
