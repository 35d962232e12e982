package scale

import (
	"context"
	"fmt"
	"time"

	fly "github.com/superfly/fly-go"
	"golang.org/x/sync/errgroup"
)

// appWork is one app between its plan and its actions: the result so far
// and, when the app is to be acted on, its fleet and plan.
type appWork struct {
	res   AppResult
	fleet Fleet
	plan  Plan
	// ready is set when the plan has actions to apply.
	ready bool
	// fallback is, for an app planned from its fallback started count,
	// the metric error that put it there.
	fallback string
	// Under a fleet budget, an app's plan waits for the allocation
	// (pending): full is its whole fleet, floor its own minimums, policy
	// its rules.
	pending bool
	full    Fleet
	floor   Counts
	policy  *AppPolicy
}

// prepare runs one app through observe, measure and decide: it reads what
// Decide asks for, and Decide decides. It never returns an error: the
// outcome is the result. An app that needs no action (or cannot take one)
// is finished here.
func prepare(ctx context.Context, cfg Config, deps Deps, a app, now func() time.Time) (w *appWork) {
	run := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	start := now()
	w = &appWork{res: AppResult{App: a.name, Policy: a.policy.Name}, policy: a.policy}
	defer func() { w.res.Elapsed = now().Sub(start) }()
	f := Facts{
		App:      a.name,
		Policy:   a.policy,
		At:       *a.at,
		OwnApp:   cfg.OwnApp != "" && a.name == cfg.OwnApp,
		DryRun:   cfg.DryRun,
		Budgeted: cfg.Budget.Set(),
	}
	for {
		f.Now, f.Interrupted = now(), run.Err() != nil
		d := Decide(f)
		switch d.Next {
		case StepReadRelease:
			f.ReleaseRead = true
			f.Release, f.ReleaseErr = readRelease(ctx, deps.Apps, a)
			continue
		case StepObserve:
			f.Read = true
			observe(ctx, deps, a.name, &f)
			continue
		}
		w.take(d)
		return w
	}
}

// readRelease returns the app's release status: from the org listing
// when it is fresh enough, otherwise read on its own.
func readRelease(ctx context.Context, c Apps, a app) (string, error) {
	if a.releases != nil {
		if release, fresh := a.releases.lookup(a.name); fresh {
			return release, nil
		}
	}
	rel, err := c.GetAppCurrentReleaseMachines(ctx, a.name)
	if err != nil {
		return "", fmt.Errorf("read release: %w", err)
	}
	return releaseStatus(rel), nil
}

// observe lists the app's machines and collects its metrics at once (they
// are independent) into f. Without a fallback, the first error ends both
// and is the only one kept; with one, a metric error leaves the machines
// to be read.
func observe(ctx context.Context, deps Deps, app string, f *Facts) {
	var (
		list               []*fly.Machine
		metrics            map[string]float64
		listErr, metricErr error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if list, err = deps.Machines.List(gctx, app, ""); err != nil {
			listErr = fmt.Errorf("list machines: %s", cleanError(err))
		}
		return listErr
	})
	fallback := f.Policy.Policy.FallbackStarted > 0
	if deps.Metrics != nil {
		g.Go(func() error {
			var err error
			if metrics, err = deps.Metrics.Collect(gctx, app); err != nil {
				metricErr = fmt.Errorf("metrics: %w", err)
				if fallback {
					return nil
				}
			}
			return metricErr
		})
	}
	first := g.Wait()
	f.Machines, f.Metrics = list, metrics
	switch {
	case fallback:
		f.ListErr, f.MetricsErr = listErr, metricErr
	case first == nil:
	case first == listErr:
		f.ListErr = listErr
	default:
		f.MetricsErr = metricErr
	}
	if mw, ok := deps.Metrics.(MetricWarnings); ok && first == nil {
		f.MetricWarnings = mw.Warnings(app)
	}
}

// take records d, a decision made once the app was read, in the app's
// work.
func (w *appWork) take(d Decision) {
	res := &w.res
	res.Status, res.Code, res.Reason = d.Status, d.Code, d.Reason
	res.Observed, res.Current, res.Target, res.Demand = d.Observed, d.Current, d.Target, d.Demand
	res.Metrics, res.Warnings, res.Actions = d.Metrics, d.Warnings, d.Actions
	w.fallback = d.Fallback
	switch d.Next {
	case StepAllocate:
		w.pending, w.full, w.plan, w.floor = true, d.Fleet, d.Plan, d.Floor
	case StepApply:
		w.fleet, w.plan, w.ready = d.Fleet, d.Plan, true
	}
}

// finish ends the app's preparation with its plan, once the fleet budget
// b granted it the counts granted: an app with nothing to do (or a dry
// run's) is done, another is ready to act.
func (w *appWork) finish(cfg Config, fleet Fleet, plan Plan, granted *Counts, b Budget, now time.Time) *appWork {
	d := Decide(Facts{App: w.res.App, Policy: w.policy, Now: now, DryRun: cfg.DryRun,
		Plan: &plan, Fleet: fleet, Fallback: w.fallback, Granted: granted, Budget: b})
	w.res.Status, w.res.Code, w.res.Reason, w.res.Actions = d.Status, d.Code, d.Reason, d.Actions
	w.res.Target = d.Target
	w.res.Warnings = append(w.res.Warnings, d.Warnings...)
	if d.Next == StepApply {
		w.fleet, w.plan, w.ready = d.Fleet, d.Plan, true
	}
	return w
}

// act applies the app's plan, when it has one, within a timeout of its
// own, and counts the app again when Decide asks for it.
func (w *appWork) act(ctx context.Context, cfg Config, deps Deps, now func() time.Time) AppResult {
	if !w.ready {
		return w.res
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	start := now()
	res := w.res
	res.Actions = Apply(ctx, deps.Machines, w.fleet, w.plan)
	f := Facts{App: res.App, Policy: w.policy, Plan: &w.plan, Fleet: w.fleet, Fallback: w.fallback, Applied: true, Actions: res.Actions}
	d := Decide(f)
	if d.Next == StepRecount {
		f.Recounted = true
		f.Recount, f.RecountErr = deps.Machines.List(ctx, w.fleet.App, "")
		d = Decide(f)
	}
	res.Status, res.Code, res.Reason = d.Status, d.Code, d.Reason
	res.Warnings = append(res.Warnings, d.Warnings...)
	res.Elapsed += now().Sub(start)
	return res
}

// abort reports the app's planned actions as aborted, for reason, without
// applying them.
func (w *appWork) abort(reason string) AppResult {
	res := w.res
	if !w.ready {
		return res
	}
	d := Decide(Facts{App: res.App, Policy: w.policy, Plan: &w.plan, Fleet: w.fleet, Fallback: w.fallback, Abort: reason})
	res.Status, res.Code, res.Reason, res.Actions = d.Status, d.Code, d.Reason, d.Actions
	return res
}
