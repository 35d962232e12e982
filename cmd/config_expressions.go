// The target expressions of the run configuration and the metric names
// they may use.

package cmd

import (
	"slices"
	"strings"

	"github.com/superfly/fly-autoscaler/scale"
)

// declaredMetrics returns the metric names the collectors of the file, the
// flags and the variables declare, whether or not the collectors are valid.
func declaredMetrics(s settings, file *fileConfig) []string {
	var out []string
	for _, c := range file.MetricCollectors {
		out = append(out, strings.TrimSpace(c.value("metric-name")))
	}
	for _, flag := range metricNameFlags() {
		out = append(out, s.str(flag, ""))
	}
	return out
}

// appendNew appends the non-empty names that to does not hold yet.
func appendNew(to []string, names ...string) []string {
	for _, n := range names {
		if n != "" && !slices.Contains(to, n) {
			to = append(to, n)
		}
	}
	return to
}

// expressions compiles the target expressions with the metric names as
// variables. A problem with the started or the created target is recorded
// in p; with p.all, the other is still checked.
func expressions(s settings, file *fileConfig, metrics []string, p *problems) (scale.Expressions, error) {
	var x scale.Expressions
	failed := false
	for _, kind := range []struct {
		what           string
		one, lo, hi    string
		fOne, fLo, fHi string
		dstLo, dstHi   **scale.Expr
	}{
		{"started", "started-machine-count", "min-started-machine-count", "max-started-machine-count",
			file.StartedMachineCount, file.MinStartedMachineCount, file.MaxStartedMachineCount, &x.MinStarted, &x.MaxStarted},
		{"created", "created-machine-count", "min-created-machine-count", "max-created-machine-count",
			file.CreatedMachineCount, file.MinCreatedMachineCount, file.MaxCreatedMachineCount, &x.MinCreated, &x.MaxCreated},
	} {
		err := func() error {
			one, lo, hi := s.str(kind.one, kind.fOne), s.str(kind.lo, kind.fLo), s.str(kind.hi, kind.fHi)
			if one != "" && (lo != "" || hi != "") {
				return usagef("%s: set either it or %s and %s, not both", s.where(kind.one), s.where(kind.lo), s.where(kind.hi))
			}
			if lo != "" && hi == "" {
				return usagef("%s: set together with %s, the upper bound", s.where(kind.lo), s.where(kind.hi))
			}
			compile := func(flag, src string) (*scale.Expr, error) {
				if src == "" {
					return nil, nil
				}
				e, err := compileTarget(src, metrics)
				if err != nil {
					return nil, usagef("%s: %v", s.where(flag), err)
				}
				// Errors of its evaluation name the option as it was set.
				label := "--" + flag
				if s.file != nil && !s.has(flag) {
					label = flag
				}
				return e.Labeled(label), nil
			}
			if one != "" {
				e, err := compile(kind.one, one)
				if err != nil {
					return err
				}
				*kind.dstLo, *kind.dstHi = e, e
				return nil
			}
			var err error
			if *kind.dstLo, err = compile(kind.lo, lo); err != nil {
				return err
			}
			*kind.dstHi, err = compile(kind.hi, hi)
			return err
		}()
		if err != nil {
			failed = true
			if p.add(err) {
				return x, err
			}
		}
	}
	if x == (scale.Expressions{}) && !failed {
		err := usagef("no target set: give --started-machine-count (FAS_STARTED_MACHINE_COUNT) or --created-machine-count, or their min/max forms")
		p.add(err)
		return x, err
	}
	return x, nil
}
