package scale

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// listTimeout bounds the listing of the org's apps (every page) when the
// per-app timeout is shorter: a large org takes a few sequential pages.
const listTimeout = 2 * time.Minute

// Defaults of a run.
const (
	DefaultConcurrency = 32
	DefaultTimeout     = 30 * time.Second
)

// Config is everything one run needs besides its clients. cmd builds and
// validates it.
type Config struct {
	Org      string
	Selector *Selector
	// Shard keeps only the selected apps of one shard; the zero Shard
	// keeps them all.
	Shard Shard
	// Group, Expressions and Policy are the default policy's settings:
	// the apps that match none of Policies take them.
	Group       string
	Expressions Expressions
	Policy      Policy
	// Policies are the named policies, in order: an app takes the first
	// whose apps match its name (see PolicyFor).
	Policies []AppPolicy
	// Location is the time zone of the time variables; nil means UTC.
	Location    *time.Location
	Concurrency int
	// Timeout bounds everything done for one app.
	Timeout time.Duration
	DryRun  bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxFailureRatio, when LimitFailures is set, aborts the remaining
	// changes of the run once more than this share of the apps failed: a
	// broken metrics source must not reshape the fleet.
	MaxFailureRatio float64
	LimitFailures   bool
	// Budget caps the growth of the selected apps' totals (see
	// Allocate); a sharded run enforces its shard's share (Budget.Share).
	// It makes the run plan every app before acting on any.
	Budget Budget
	// OwnApp is the autoscaler's own app (cmd: the app it runs as):
	// never changed, whatever selects it.
	OwnApp string
	// Progress, when set, is called after each app with the number of apps
	// done and the total. It must be safe for concurrent use.
	Progress func(done, total int)
}

// Deps are the clients a run talks to.
type Deps struct {
	Apps     Apps
	Machines Machines
	// Metrics may be nil when no expression uses a metric.
	Metrics Metrics
}

// app is one app selected for the run.
type app struct {
	name string
	// releases holds the release status of an app found in the org
	// listing; nil for an app named directly, whose status is read on its
	// own.
	releases *releaseBook
	// policy is the policy the app takes, shared with the other apps
	// that take it.
	policy *AppPolicy
	// at is the run's moment, the same for every app.
	at *Moment
}

// Run reconciles every selected app: it lists the org's apps once, then
// observes, measures, decides and (unless DryRun) acts on each app in a
// bounded set of workers. One app's failure never stops the others.
func Run(ctx context.Context, cfg Config, deps Deps) *Report {
	rep := &Report{Org: cfg.Org, Shard: cfg.Shard.String(), DryRun: cfg.DryRun, HasPolicies: len(cfg.Policies) > 0}
	if cfg.Budget.Set() {
		rep.Budget = cfg.Budget.Share(cfg.Shard)
	}
	rep.StartedAt, rep.Elapsed, rep.Matched, rep.Err = pass(ctx, cfg, deps, "run", func(apps []app, now func() time.Time) {
		rep.Apps, rep.Warnings = reconcile(ctx, cfg, deps, apps, now)
	})
	return rep
}

// pass is what Run and Eval share: it reads the clock, selects the apps
// and, unless that failed, calls body with them and notes an interruption
// (what names the pass). It times the whole.
func pass(ctx context.Context, cfg Config, deps Deps, what string, body func(apps []app, now func() time.Time)) (start time.Time, elapsed time.Duration, matched int, err error) {
	now := cfg.clock()
	start = now()
	defer func() { elapsed = now().Sub(start) }()

	apps, err := selectApps(ctx, cfg, deps, start)
	if err != nil {
		return
	}
	matched = len(apps)
	body(apps, now)
	if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("%s interrupted: %w", what, cerr)
	}
	return
}

// reconcile observes, measures, decides and acts on each app, and returns
// their results in the apps' order, and the run's own warnings.
func reconcile(ctx context.Context, cfg Config, deps Deps, apps []app, now func() time.Time) ([]AppResult, []string) {
	results := make([]AppResult, len(apps))
	if len(apps) > 0 && apps[0].releases != nil {
		defer apps[0].releases.refresh(ctx, deps.Apps)()
	}
	if !cfg.LimitFailures && !cfg.Budget.Set() {
		each(cfg, len(apps), func(i int) {
			w := prepare(ctx, cfg, deps, apps[i], now)
			results[i] = w.act(ctx, cfg, deps, now)
		})
		return results, nil
	}
	// Every app is observed, measured and planned before the failure
	// ratio is checked, and only then acted on: the decision does not
	// depend on which apps happened to finish first.
	work := make([]*appWork, len(apps))
	each(cfg, len(apps), func(i int) { work[i] = prepare(ctx, cfg, deps, apps[i], now) })
	// The fleet budget is allocated over every app's plan (see Allocate).
	var warnings []string
	if cfg.Budget.Set() {
		warnings = allocateBudget(cfg, cfg.Budget.Share(cfg.Shard), work, now)
	}
	failed := 0
	for _, w := range work {
		if w.res.Status == StatusFailed {
			failed++
		}
	}
	if reason := failureRatioPassed(failed, len(apps), cfg.MaxFailureRatio); reason != "" {
		for i, w := range work {
			results[i] = w.abort(reason)
		}
		return results, warnings
	}
	act := func(idx []int) {
		each(cfg, len(idx), func(j int) {
			i := idx[j]
			results[i] = work[i].act(ctx, cfg, deps, now)
			work[i] = nil // its result holds what the report needs
		})
	}
	if !cfg.Budget.Set() {
		act(allOf(len(work)))
		return results, warnings
	}
	// Under a budget, the apps that do not grow act first: their
	// scale-downs free what the others were granted.
	var down, up []int
	for i, w := range work {
		if w.res.Target.Started > w.res.Current.Started || w.res.Target.Created > w.res.Current.Created {
			up = append(up, i)
		} else {
			down = append(down, i)
		}
	}
	act(down)
	act(up)
	return results, warnings
}

func allOf(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func (cfg Config) clock() func() time.Time {
	if cfg.Now == nil {
		return time.Now
	}
	return cfg.Now
}

func (cfg Config) timeout() time.Duration {
	if cfg.Timeout <= 0 {
		return DefaultTimeout
	}
	return cfg.Timeout
}

// each calls fn for 0..n-1 in at most cfg.Concurrency workers, reporting
// progress. Each fn writes its own result slot: workers never cancel each
// other.
func each(cfg Config, n int, fn func(i int)) {
	conc := cfg.Concurrency
	if conc < 1 {
		conc = DefaultConcurrency
	}
	if cfg.Progress != nil {
		cfg.Progress(0, n)
	}
	var done atomic.Int64
	g := new(errgroup.Group)
	g.SetLimit(conc)
	for i := range n {
		g.Go(func() error {
			fn(i)
			if cfg.Progress != nil {
				cfg.Progress(int(done.Add(1)), n)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// Failed reports whether any app failed or the run could not complete.
func (r *Report) Failed() bool {
	if r.Err != nil {
		return true
	}
	for _, a := range r.Apps {
		if a.Status == StatusFailed || a.Status == StatusFallback {
			return true
		}
	}
	return false
}

// Changed reports whether any app was scaled or, in a dry run, has changes
// planned; a blocked app counts when some of its changes were made.
func (r *Report) Changed() bool {
	for _, a := range r.Apps {
		if a.Status == StatusScaled || a.Status == StatusPlanned {
			return true
		}
		if a.Status == StatusBlocked && slices.ContainsFunc(a.Actions, func(ar ActionResult) bool { return ar.Outcome == OutcomeDone }) {
			return true
		}
	}
	return false
}
