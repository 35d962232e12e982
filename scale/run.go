package scale

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fly "github.com/superfly/fly-go"
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
	// OwnApp is the autoscaler's own app (FLY_APP_NAME): never changed,
	// whatever selects it.
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

// ReleaseFreshness is the oldest a release status from the org listing
// may be when its app is observed, so that a deploy started during a long
// run is seen before the app is touched. The listing is read again every
// releaseRefresh while the run lasts (one call per 200 apps); an app whose
// status is older all the same (a refresh failed or is slow) has its
// release read on its own.
const ReleaseFreshness = 30 * time.Second

// releaseRefresh leaves a refresh of the listing 10 s to complete.
const releaseRefresh = 20 * time.Second

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
	if float64(failed) > cfg.MaxFailureRatio*float64(len(apps)) {
		reason := fmt.Sprintf("changes aborted: %d of %d apps failed, more than the failure ratio %g allows", failed, len(apps), cfg.MaxFailureRatio)
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

// selectApps discovers the run's apps, gives each its policy and the
// moment the run started, and runs the metrics queries that serve the
// whole fleet once. The queries that need no app names start before the
// org's apps are listed, so that they run while the pages come in; those
// that need the names (and a run that names its apps, which lists nothing)
// start once the apps are known.
func selectApps(ctx context.Context, cfg Config, deps Deps, start time.Time) ([]app, error) {
	// A fleet-wide query is bounded like one app's work; if it fails,
	// every app that needs it fails, none is scaled on a guess.
	if s, ok := deps.Metrics.(MetricStarter); ok {
		if _, named := cfg.Selector.Names(); !named {
			// Cancelled on return: by then Prefetch has waited for the
			// queries, unless the listing failed or matched no app, and
			// the cancel ends what is still in flight.
			sctx, cancel := context.WithTimeout(ctx, cfg.timeout())
			defer cancel()
			s.Start(sctx)
		}
	}
	lctx, cancel := context.WithTimeout(ctx, max(cfg.timeout(), listTimeout))
	defer cancel()
	apps, err := discover(lctx, cfg, deps.Apps)
	if err != nil {
		return nil, err
	}
	at := MomentOf(start, cfg.Location)
	policyFor := cfg.policies()
	for i := range apps {
		apps[i].policy, apps[i].at = policyFor(apps[i].name), &at
	}
	if deps.Metrics != nil {
		names := make([]string, len(apps))
		for i, a := range apps {
			names[i] = a.name
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.timeout())
		defer cancel()
		deps.Metrics.Prefetch(pctx, names)
	}
	return apps, nil
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

// discover lists the org's apps once (every page) and keeps the selected
// ones of the run's shard, sorted by name. A run naming apps directly lists
// nothing.
func discover(ctx context.Context, cfg Config, c Apps) ([]app, error) {
	if names, ok := cfg.Selector.Names(); ok {
		out := make([]app, 0, len(names))
		seen := map[string]bool{}
		for _, n := range names {
			if !seen[n] && cfg.Shard.Contains(n) {
				seen[n] = true
				out = append(out, app{name: n})
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
		return out, nil
	}
	now := cfg.clock()
	listedAt := now()
	org, err := c.GetOrganizationBySlug(ctx, cfg.Org)
	if err != nil {
		return nil, fmt.Errorf("org %q: %w", cfg.Org, err)
	}
	if org == nil {
		return nil, fmt.Errorf("org %q: not found", cfg.Org)
	}
	list, err := c.ListApps(ctx, org.ID)
	if err != nil {
		return nil, fmt.Errorf("org %q: list apps: %w", cfg.Org, err)
	}
	book := &releaseBook{orgID: org.ID, now: now}
	book.update(list, listedAt)
	var out []app
	for _, a := range list {
		if !cfg.Selector.Match(a.Name) || !cfg.Shard.Contains(a.Name) {
			continue
		}
		out = append(out, app{name: a.Name, releases: book})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// releaseBook is the release status of the org's apps, from the listing
// that selected them and then from a refresh every releaseRefresh.
type releaseBook struct {
	orgID string
	now   func() time.Time

	mu     sync.Mutex
	status map[string]string
	at     time.Time // when the listing behind status started
}

func (b *releaseBook) update(list []ListedApp, at time.Time) {
	status := make(map[string]string, len(list))
	for _, a := range list {
		status[a.Name] = a.ReleaseStatus
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status, b.at = status, at
}

// lookup returns app's release status and whether it is fresh enough to
// act on (the app is in a listing at most ReleaseFreshness old).
func (b *releaseBook) lookup(app string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.status[app]
	return st, ok && b.now().Sub(b.at) <= ReleaseFreshness
}

// refresh reads the org listing again every releaseRefresh until the
// returned stop is called. A failed refresh leaves the book as it was:
// apps observed once it is too old read their release on their own.
func (b *releaseBook) refresh(ctx context.Context, c Apps) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(releaseRefresh)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			at := b.now()
			lctx, lcancel := context.WithTimeout(ctx, listTimeout)
			list, err := c.ListApps(lctx, b.orgID)
			lcancel()
			if err == nil {
				b.update(list, at)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

func releaseStatus(r *fly.Release) string {
	if r == nil {
		return ""
	}
	return r.Status
}

// releaseInProgress reports whether a release with this status is being
// rolled out: scaling now would fight the deploy.
func releaseInProgress(status string) bool {
	switch strings.ToLower(status) {
	case "running", "pending":
		return true
	}
	return false
}

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

// prepare runs one app through observe, measure and decide. It never
// returns an error: the outcome is the result. An app that needs no action
// (or cannot take one) is finished here.
func prepare(ctx context.Context, cfg Config, deps Deps, a app, now func() time.Time) (w *appWork) {
	run := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	start := now()
	w = &appWork{res: AppResult{App: a.name, Policy: a.policy.Name}, policy: a.policy}
	res := &w.res
	defer func() { res.Elapsed = now().Sub(start) }()
	if cfg.OwnApp != "" && a.name == cfg.OwnApp {
		res.Status, res.Reason = StatusSkipped, OwnAppReason
		return w
	}
	fail := func(err error) *appWork {
		res.Status, res.Reason = StatusFailed, err.Error()
		if run.Err() != nil {
			// The run was interrupted (a signal), not this app broken.
			res.Reason = "interrupted before it finished"
		}
		return w
	}

	var release string
	fresh := false
	if a.releases != nil {
		release, fresh = a.releases.lookup(a.name)
	}
	if !fresh {
		rel, err := deps.Apps.GetAppCurrentReleaseMachines(ctx, a.name)
		if err != nil {
			return fail(fmt.Errorf("read release: %w", err))
		}
		release = releaseStatus(rel)
	}
	if releaseInProgress(release) {
		res.Status, res.Reason = StatusSkipped, "release in progress"
		return w
	}

	// Observe and measure at once: they are independent.
	var (
		list    []*fly.Machine
		metrics map[string]float64
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if list, err = deps.Machines.List(gctx, a.name, ""); err != nil {
			return fmt.Errorf("list machines: %s", cleanError(err))
		}
		return nil
	})
	// With a fallback, a metric error leaves the machines to be read.
	var metricErr error
	fallback := a.policy.Policy.FallbackStarted > 0
	if deps.Metrics != nil {
		g.Go(func() error {
			var err error
			if metrics, err = deps.Metrics.Collect(gctx, a.name); err != nil {
				err = fmt.Errorf("metrics: %w", err)
				if fallback {
					metricErr = err
					return nil
				}
				return err
			}
			return nil
		})
	}
	err := g.Wait()
	fleet := NewFleet(a.name, a.policy.Group, list)
	if list != nil {
		res.Observed = true
		res.Current = fleet.Counts()
		res.Target = res.Current
		// A paused app is left alone, whatever else went wrong.
		if p, ok := fleet.PausedAt(now()); ok {
			res.Status, res.Reason = StatusPaused, p.String()
			res.Metrics = MetricsOf(metrics)
			return w
		}
	}
	if err != nil {
		return fail(err)
	}
	res.Metrics = MetricsOf(metrics)

	var targets Targets
	if metricErr != nil {
		w.fallback = metricErr.Error()
		if run.Err() != nil {
			return fail(metricErr)
		}
		targets = fallbackTargets(a.policy, fleet, *a.at, res.Current)
	} else {
		targets, err = a.policy.Expressions.Evaluate(metrics, fleet, *a.at)
		if err == nil {
			err = CheckTargets(res.Current, targets, a.policy.Policy)
		}
		if err != nil {
			return fail(err)
		}
	}
	plan := NewPlan(fleet, targets, a.policy.Policy, now())
	demand := DemandOf(res.Current, targets)
	res.Target, res.Demand, res.Warnings = plan.Target, &demand, plan.Warnings
	res.Warnings = append(res.Warnings, fleet.BadPauses...)
	if mw, ok := deps.Metrics.(MetricWarnings); ok {
		res.Warnings = append(mw.Warnings(a.name), res.Warnings...)
	}
	if fleet.Unreachable > 0 {
		where := " on unreachable hosts"
		if fleet.Unreachable == 1 {
			where = " on an unreachable host"
		}
		res.Warnings = append(res.Warnings, nMachines(fleet.Unreachable)+where+" not counted")
	}

	if cfg.Budget.Set() {
		w.pending, w.full, w.plan = true, fleet, plan
		if w.fallback == "" {
			w.floor = floorOf(a.policy.Expressions, targets)
		}
		return w
	}
	return w.finish(cfg, fleet, plan)
}

// finish ends the app's preparation with its plan: an app with nothing to
// do (or a dry run's) is done, another is ready to act.
func (w *appWork) finish(cfg Config, fleet Fleet, plan Plan) *appWork {
	res := &w.res
	defer fellBack(res, w.fallback)
	if len(plan.Actions) == 0 {
		res.Status = StatusUnchanged
		if plan.Unreachable != "" {
			res.Status, res.Reason = StatusSkipped, plan.Unreachable
		}
		return w
	}
	if cfg.DryRun {
		res.Status = StatusPlanned
		res.Actions = make([]ActionResult, len(plan.Actions))
		for i, act := range plan.Actions {
			res.Actions[i] = ActionResult{Action: act, Outcome: OutcomePlanned}
		}
		return w
	}
	w.fleet, w.plan, w.ready = fleet.forActions(plan), plan, true
	return w
}

// act applies the app's plan, when it has one, within a timeout of its own.
func (w *appWork) act(ctx context.Context, cfg Config, deps Deps, now func() time.Time) AppResult {
	if !w.ready {
		return w.res
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	start := now()
	res := w.res
	res.Actions = Apply(ctx, deps.Machines, w.fleet, w.plan)
	res = statusFrom(res, w.plan)
	res = verify(ctx, deps.Machines, w.fleet, w.plan, res)
	fellBack(&res, w.fallback)
	res.Elapsed += now().Sub(start)
	return res
}

// verify settles the status of res, an app whose plan was applied, from a
// final count of the app when any of its actions did not plainly succeed
// (a failure made up for, a lost answer a recount settled, a busy machine,
// an action a recount found unneeded): an app is reported scaled, or
// unchanged, only if that count meets every target of its plan; otherwise
// it fails, with the shortfall named (a failed or blocked app has it added
// to its reason). Being above a target is not a shortfall: when a run
// cannot know, it errs toward capacity.
func verify(ctx context.Context, m Machines, f Fleet, plan Plan, res AppResult) AppResult {
	ok := res.Status == StatusScaled || res.Status == StatusUnchanged
	if !ok && res.Status != StatusFailed && res.Status != StatusBlocked {
		return res
	}
	plain := true
	for _, ar := range res.Actions {
		plain = plain && ar.Outcome == OutcomeDone && ar.Error == ""
	}
	if plain {
		return res
	}
	list, err := m.List(ctx, f.App, "")
	if err != nil {
		if ok {
			res.Status, res.Reason = StatusFailed, "final recount: list machines: "+cleanError(err)+" (whether the app reached its target is not known)"
		}
		return res
	}
	got, want := NewFleet(f.App, f.Group, list).Counts(), plan.Target
	var short []string
	if got.Started < want.Started {
		short = append(short, fmt.Sprintf("%d of %d started", got.Started, want.Started))
	}
	if got.Created < want.Created {
		short = append(short, fmt.Sprintf("%s of %d", nMachines(got.Created), want.Created))
	}
	switch {
	case len(short) == 0:
	case ok:
		res.Status, res.Reason = StatusFailed, "short of its target after its actions: "+strings.Join(short, ", ")
	default:
		res.Reason += " (short of its target: " + strings.Join(short, ", ") + ")"
	}
	return res
}

// abort reports the app's planned actions as aborted, for reason, without
// applying them.
func (w *appWork) abort(reason string) AppResult {
	res := w.res
	if !w.ready {
		return res
	}
	res.Status, res.Reason = StatusSkipped, reason
	res.Actions = make([]ActionResult, len(w.plan.Actions))
	for i, act := range w.plan.Actions {
		res.Actions[i] = ActionResult{Action: act, Outcome: OutcomeAborted, Error: reason}
	}
	return res
}

// statusFrom sets an applied app's status from its actions' outcomes. An app
// whose failed actions were made up for by spares or retries reached its
// plan: it is scaled, with a warning. A shortfall left by failures fails
// the app; one left by busy machines blocks it.
func statusFrom(res AppResult, plan Plan) AppResult {
	planned := map[ActionKind]int{}
	for _, a := range plan.Actions {
		planned[a.Kind]++
	}
	reached := map[ActionKind]int{}
	var failed, busy, woken []string
	done := 0
	for _, ar := range res.Actions {
		switch ar.Outcome {
		case OutcomeDone:
			done++
			reached[ar.Kind]++
		case OutcomeUnneeded:
			reached[ar.Kind]++
		case OutcomeFailed, OutcomeAborted:
			failed = append(failed, fmt.Sprintf("%s %s: %s", ar.Kind, orID(ar), ar.Error))
		case OutcomeBusy:
			if ar.Cause == CauseStartedSincePlan {
				woken = append(woken, ar.MachineID)
				continue
			}
			id := ar.MachineID
			if ar.Kind == ActionCreate || ar.Cause == CauseAnchor {
				id = plan.Anchor // the anchor's lease held up the batch
			}
			if !slices.Contains(busy, id) {
				busy = append(busy, id)
			}
		}
	}
	res.Status = StatusUnchanged
	if done > 0 {
		res.Status = StatusScaled
	}
	if len(woken) > 0 {
		res.Warnings = append(res.Warnings, "not destroyed, started since the plan (the next run decides again): "+strings.Join(woken, ", "))
	}
	short := false
	for kind, n := range planned {
		short = short || reached[kind] < n
	}
	if len(failed) > 0 && short {
		res.Status = StatusFailed
		res.Reason = fmt.Sprintf("%d of %d actions failed: %s", len(failed), len(res.Actions), failed[0])
		return res
	}
	if len(failed) > 0 {
		res.Warnings = append(res.Warnings, "spares or retries stood in for failed actions: "+strings.Join(failed, "; "))
	}
	if len(busy) > 0 && short {
		// Not at the target, and not for a failure: someone else's lease
		// (a deploy, an overlapping run, a crashed run's until it runs
		// out) kept us off machines the plan needed.
		res.Status = StatusBlocked
		res.Reason = "busy, leased by someone else (the next run catches up): " + strings.Join(busy, ", ")
		return res
	}
	if len(busy) > 0 {
		res.Warnings = append(res.Warnings, "busy, leased by someone else, spares stood in: "+strings.Join(busy, ", "))
	}
	return res
}

func orID(ar ActionResult) string {
	if ar.MachineID != "" {
		return ar.MachineID
	}
	return "in " + ar.Region
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
