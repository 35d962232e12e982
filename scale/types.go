// Package scale holds the autoscaler's domain: the fleet snapshot of one app,
// the targets its expressions evaluate to, the pure planner, the applier, the
// per-run worker pool and the report of a run.
package scale

import (
	"context"
	"slices"
	"strings"
	"time"

	fly "github.com/superfly/fly-go"
)

// Apps is what app discovery needs of the GraphQL API; scale/flyapi
// implements it over fly-go's client, with its errors cleaned.
type Apps interface {
	GetOrganizationBySlug(ctx context.Context, slug string) (*fly.Organization, error)
	// ListApps lists the org's apps, every page.
	ListApps(ctx context.Context, orgID string) ([]ListedApp, error)
	GetAppCurrentReleaseMachines(ctx context.Context, appName string) (*fly.Release, error)
}

// ListedApp is one app of the org's listing, as much of it as a run reads:
// the listing of a large org is held while the run selects its apps.
type ListedApp struct {
	Name string
	// ReleaseStatus is the status of the app's current release, "" when
	// it has none.
	ReleaseStatus string
}

// Machines is the Machines API as the autoscaler uses it, in fly-go's
// types and with the signatures of fly-go's flaps client; scale/flyapi
// implements it with a client of its own (one retry loop for every call).
// One client serves every app.
type Machines interface {
	List(ctx context.Context, appName, state string) ([]*fly.Machine, error)
	Start(ctx context.Context, appName, machineID, nonce string) (*fly.MachineStartResponse, error)
	Stop(ctx context.Context, appName string, in fly.StopMachineInput, nonce string) error
	Suspend(ctx context.Context, appName, machineID, nonce string) error
	Launch(ctx context.Context, appName string, in fly.LaunchMachineInput) (*fly.Machine, error)
	Destroy(ctx context.Context, appName string, in fly.RemoveMachineInput, nonce string) error
	AcquireLease(ctx context.Context, appName, machineID string, ttl *int) (*fly.MachineLease, error)
	RefreshLease(ctx context.Context, appName, machineID string, ttl *int, nonce string) (*fly.MachineLease, error)
	ReleaseLease(ctx context.Context, appName, machineID, nonce string) error
	// SetMetadata and DeleteMetadata change one key of a machine's
	// metadata through the metadata endpoint: no update, no restart.
	SetMetadata(ctx context.Context, appName, machineID, key, value string) error
	DeleteMetadata(ctx context.Context, appName, machineID, key string) error
}

// Metrics supplies the metric values of one app. The query package provides
// the implementation; scale knows nothing of PromQL.
type Metrics interface {
	// Prefetch runs, once per run and before any app is reconciled, the
	// queries that do not depend on the app (waiting for those that a
	// MetricStarter's Start sent). Errors are kept and returned by Collect
	// for every app that needs the failed query.
	Prefetch(ctx context.Context, apps []string)
	// Collect returns the value of every metric for app, keyed by metric name.
	Collect(ctx context.Context, app string) (map[string]float64, error)
}

// MetricStarter is implemented by Metrics whose queries that do not depend
// on the app can be sent before the run's apps are known (a PromQL query
// without $APP_NAME). A run that lists the org's apps calls Start just
// before the listing, so that those queries' time overlaps the listing's
// instead of adding to every run's; Prefetch then waits for them. ctx ends
// when the selection is over: a failed listing, or one that matches no app,
// cancels whatever is still in flight.
type MetricStarter interface {
	Start(ctx context.Context)
}

// MetricWarnings is implemented by Metrics that have warnings about an
// app's values once Collect has read them (a Kafka group that never
// committed): the app's report shows them.
type MetricWarnings interface {
	Warnings(app string) []string
}

// Counts are the machine counts of one app's process group that targets are
// expressed in. Created counts every machine of the group that exists
// (whatever its state); Started counts the started ones.
type Counts struct {
	Started int `json:"started"`
	Created int `json:"created"`
}

// Status is the outcome of one app in a run.
type Status string

// Statuses an app can end a run with.
const (
	StatusScaled    Status = "scaled"    // changes were made
	StatusPlanned   Status = "planned"   // dry-run: changes would be made
	StatusUnchanged Status = "unchanged" // nothing to do
	// StatusBlocked is an app left short of its plan because machines it
	// needed were busy under someone else's lease (a deploy, another run,
	// a crashed run's lease until it runs out): a success for the exit
	// code, but not at its target.
	StatusBlocked Status = "blocked"
	StatusSkipped Status = "skipped" // deliberately left alone (release in progress, ...)
	// StatusPaused is an app left alone because one of its group's
	// machines carries an unexpired pause (MetaPausedUntil).
	StatusPaused Status = "paused"
	// StatusFallback is an app whose metrics could not be read, raised to
	// its fallback started count (Policy.FallbackStarted) and never
	// lowered: a failure for the exit code, as a source failed.
	StatusFallback Status = "fallback"
	StatusFailed   Status = "failed" // could not be read, decided or fully changed
)

// Statuses returns every status, in the order summaries list them.
func Statuses() []Status {
	return []Status{StatusScaled, StatusPlanned, StatusUnchanged, StatusBlocked, StatusSkipped, StatusPaused, StatusFallback, StatusFailed}
}

// ActionKind is what one action does to a machine.
type ActionKind string

// Action kinds.
const (
	ActionStart   ActionKind = "start"
	ActionStop    ActionKind = "stop"
	ActionSuspend ActionKind = "suspend"
	ActionCreate  ActionKind = "create"
	ActionDestroy ActionKind = "destroy"
)

// ActionKinds returns every action kind, in the order reports list them.
func ActionKinds() []ActionKind {
	return []ActionKind{ActionStart, ActionStop, ActionSuspend, ActionCreate, ActionDestroy}
}

// Outcome is what became of one action.
type Outcome string

// Action outcomes.
const (
	OutcomePlanned Outcome = "planned" // dry-run, or not attempted
	OutcomeDone    Outcome = "done"
	OutcomeFailed  Outcome = "failed"
	OutcomeBusy    Outcome = "busy"    // someone else holds the machine's lease
	OutcomeAborted Outcome = "aborted" // the run or the app's deadline stopped it
	// OutcomeUnneeded is an action dropped after a recount found the app
	// already at its target for that action's count (another run got
	// there).
	OutcomeUnneeded Outcome = "unneeded"
)

// Outcomes returns every outcome, in the order reports list them.
func Outcomes() []Outcome {
	return []Outcome{OutcomeDone, OutcomeFailed, OutcomeBusy, OutcomeAborted, OutcomeUnneeded, OutcomePlanned}
}

// Report is the result of one run over the fleet. cmd renders it; the
// JSON contract is cmd's own (docs/output.md), not these types.
type Report struct {
	Org string
	// Shard is the shard the run covered ("2/4"), "" for the whole fleet.
	Shard     string
	DryRun    bool
	StartedAt time.Time
	Elapsed   time.Duration
	Matched   int
	// HasPolicies is set when policies are configured: the report then
	// names each app's policy.
	HasPolicies bool
	// Budget is the fleet budget the run enforced (its shard's share),
	// the zero Budget when none.
	Budget Budget
	// Warnings are the run's own, not one app's: the fleet budget's.
	Warnings []string
	Apps     []AppResult
	// Err is set when the run could not complete (for example the app list
	// could not be read); Apps then holds what was done before.
	Err error
}

// AppResult is the outcome of one app.
type AppResult struct {
	App string
	// Policy names the policy the app took (DefaultPolicyName when it
	// matched none).
	Policy string
	Status Status
	// Code is the stable reason code of Status; Reason says it in words.
	Code    ReasonCode
	Reason  string
	Metrics MetricValues
	// Observed is whether the app's machines were read: Current and Target
	// mean nothing otherwise (skipped before listing, or the list failed).
	Observed bool
	Current  Counts
	Target   Counts
	// Demand is what the app's expressions ask for, before the step
	// limits, the machines it has and the fleet budget cap it into Target;
	// nil when nothing was decided.
	Demand   *Counts
	Actions  []ActionResult
	Warnings []string
	Elapsed  time.Duration
}

// Metric is one metric value of an app.
type Metric struct {
	Name  string
	Value float64
}

// MetricValues are an app's metric values, sorted by name. A report holds
// them for every app: one or two values take a few dozen bytes as a
// slice, about 250 as a map.
type MetricValues []Metric

// MetricsOf returns m's values sorted by name; nil when m is empty.
func MetricsOf(m map[string]float64) MetricValues {
	if len(m) == 0 {
		return nil
	}
	out := make(MetricValues, 0, len(m))
	for name, v := range m {
		out = append(out, Metric{Name: name, Value: v})
	}
	slices.SortFunc(out, func(a, b Metric) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Map returns the values by name.
func (ms MetricValues) Map() map[string]float64 {
	out := make(map[string]float64, len(ms))
	for _, m := range ms {
		out[m.Name] = m.Value
	}
	return out
}

// ActionResult is one planned action and what became of it.
type ActionResult struct {
	Action
	Outcome Outcome
	// Cause tells why the action ended busy where its outcome alone does
	// not: CauseNone otherwise.
	Cause Cause
	Error string
}

// Cause is why an action was held up, beyond its outcome.
type Cause int

// Causes.
const (
	CauseNone Cause = iota
	// CauseAnchor: the anchor's lease, which the app's creates and
	// destroys are made under, could not be taken (busy: someone else
	// holds it).
	CauseAnchor
	// CauseStartedSincePlan: a destroy not made because its machine
	// started since the plan was made (Fly's proxy woke it).
	CauseStartedSincePlan
)
