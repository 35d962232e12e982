// The metric sources of the run configuration: the config file's
// metric-collectors, and one of each kind from its flags (sources.go).

package cmd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/scale"
)

// metricSource is one metric source of the run: its kind and its Config,
// validated.
type metricSource struct {
	kind sourceKind
	cfg  query.SourceConfig
}

// build builds the source for a run.
func (m metricSource) build(rt query.Runtime) (query.Source, error) {
	src, err := m.kind.build(m.cfg, rt)
	if err != nil {
		// A configuration the source refuses is the user's mistake.
		return nil, &UsageError{Msg: err.Error()}
	}
	return src, nil
}

// claimFunc reserves a metric name for the collector at where.
type claimFunc func(where, name string) error

// collectors gathers the metric sources of the config file, then the one
// each kind's flags (--prometheus-*, --temporal-*, ...) and variables
// define. A problem with one is recorded in p; with p.all, the others are
// still checked.
func collectors(s settings, file *fileConfig, p *problems) ([]metricSource, error) {
	var out []metricSource
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
		if err := claim(where, cfg.MetricName()); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return usagef("%s: %v", where, err)
		}
		out = append(out, metricSource{kind: k, cfg: cfg})
		return nil
	}
	for i, c := range file.MetricCollectors {
		if err := fromFile(i, c); p.add(err) {
			return nil, err
		}
	}
	for _, k := range sourceKinds {
		cfg, where, err := k.fromFlags(s)
		if err == nil && cfg != nil {
			if err = claim(where, cfg.MetricName()); err == nil {
				out = append(out, metricSource{kind: k, cfg: cfg})
			}
		}
		if p.add(err) {
			return nil, err
		}
	}
	return out, nil
}

// sourceSecrets returns the secrets of the sources the flags, variables
// and config file would define, before anything is checked: what
// Secrets finds that no option's name announces (the keys in a NATS
// creds file), for the errors that follow.
func sourceSecrets(c *cli.Context, file *fileConfig) []string {
	var out []string
	for _, k := range sourceKinds {
		out = append(out, k.flagSecrets(c)...)
	}
	if file == nil {
		return out
	}
	for _, col := range file.MetricCollectors {
		if k, ok := kindOf(col.typ()); ok {
			cfg, _ := col.decode(k) // what decodes, even with an error
			out = append(out, cfg.Secrets()...)
		}
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}
