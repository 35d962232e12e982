package scale

import (
	"context"
	"fmt"
	"time"
)

// EvalReport is the result of Eval: every selected app's metric values and
// the targets its expressions give.
type EvalReport struct {
	Org       string
	StartedAt time.Time
	Elapsed   time.Duration
	Matched   int
	// HasPolicies is set when policies are configured.
	HasPolicies bool
	Apps        []EvalResult
	// Err is set when the apps could not be selected (the org's app list
	// could not be read) or the run was interrupted.
	Err error
}

// EvalResult is one app's metric values and targets. Err is set when a
// metric could not be read or an expression could not be evaluated.
type EvalResult struct {
	App string
	// Policy names the policy the app takes.
	Policy  string
	Metrics map[string]float64
	Targets Targets
	// Warnings are the metric sources' warnings about the app's values
	// (MetricWarnings), such as a Kafka group that never committed: eval is
	// where a user checks the metrics, so a misspelt group shows here. They
	// are kept when the app failed too, for the values that were read.
	Warnings []string
	Err      error
	Elapsed  time.Duration
}

// Failed reports whether any app failed or the evaluation could not
// complete.
func (r *EvalReport) Failed() bool {
	if r.Err != nil {
		return true
	}
	for _, a := range r.Apps {
		if a.Err != nil {
			return true
		}
	}
	return false
}

// Eval selects the apps as Run does (listing the org once when a pattern
// needs it), collects their metrics and evaluates the expressions, without
// reading or changing any machine: deps.Machines is never used and may be
// nil. The fleet variables (started, stopped, suspended, created) are 0.
func Eval(ctx context.Context, cfg Config, deps Deps) *EvalReport {
	rep := &EvalReport{Org: cfg.Org, HasPolicies: len(cfg.Policies) > 0}
	rep.StartedAt, rep.Elapsed, rep.Matched, rep.Err = pass(ctx, cfg, deps, "evaluation", func(apps []app, now func() time.Time) {
		rep.Apps = make([]EvalResult, len(apps))
		each(cfg, len(apps), func(i int) {
			actx, cancel := context.WithTimeout(ctx, cfg.timeout())
			defer cancel()
			start := now()
			res := EvalResult{App: apps[i].name, Policy: apps[i].policy.Name}
			res.Metrics, res.Targets, res.Err = evalApp(actx, apps[i], deps.Metrics)
			if mw, ok := deps.Metrics.(MetricWarnings); ok {
				res.Warnings = mw.Warnings(apps[i].name)
			}
			res.Elapsed = now().Sub(start)
			rep.Apps[i] = res
		})
	})
	return rep
}

// evalApp measures and decides for one app over an empty fleet.
func evalApp(ctx context.Context, a app, m Metrics) (map[string]float64, Targets, error) {
	var metrics map[string]float64
	if m != nil {
		var err error
		if metrics, err = m.Collect(ctx, a.name); err != nil {
			return nil, Targets{}, fmt.Errorf("metrics: %w", err)
		}
	}
	t, err := a.policy.Expressions.Evaluate(metrics, Fleet{App: a.name}, *a.at)
	if err == nil {
		err = CheckTargets(Counts{}, t, a.policy.Policy)
	}
	return metrics, t, err
}
