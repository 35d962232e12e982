package scale

import (
	"errors"
	"slices"
	"time"

	fly "github.com/superfly/fly-go"
)

// ReasonCode is the stable, machine-readable reason of an app's status,
// beside the prose of AppResult.Reason.
type ReasonCode string

// Reason codes, one per rule that ends an app's decision.
const (
	// ReasonScaled: changes were made and reached the plan (StatusScaled).
	ReasonScaled ReasonCode = "scaled"
	// ReasonPlanned: a dry run with changes to make (StatusPlanned).
	ReasonPlanned ReasonCode = "planned"
	// ReasonAtTarget: nothing to do, or nothing was needed after all
	// (StatusUnchanged).
	ReasonAtTarget ReasonCode = "at_target"
	// ReasonOwnApp: the autoscaler's own app, never changed (StatusSkipped).
	ReasonOwnApp ReasonCode = "own_app"
	// ReasonReleaseInProgress: a deploy is rolling out (StatusSkipped).
	ReasonReleaseInProgress ReasonCode = "release_in_progress"
	// ReasonTargetUnreachable: no action can reach the target, such as a
	// created target without a machine to clone (StatusSkipped).
	ReasonTargetUnreachable ReasonCode = "target_unreachable"
	// ReasonChangesAborted: the run's failure ratio was passed, the app's
	// planned changes were not made (StatusSkipped).
	ReasonChangesAborted ReasonCode = "changes_aborted"
	// ReasonPaused: a machine of the group carries an unexpired pause
	// (StatusPaused).
	ReasonPaused ReasonCode = "paused"
	// ReasonFallback: the metrics could not be read, the app was planned
	// from its fallback started count (StatusFallback).
	ReasonFallback ReasonCode = "fallback"
	// ReasonReleaseUnreadable: the app's release could not be read
	// (StatusFailed).
	ReasonReleaseUnreadable ReasonCode = "release_unreadable"
	// ReasonMachinesUnreadable: the app's machines could not be listed
	// (StatusFailed).
	ReasonMachinesUnreadable ReasonCode = "machines_unreadable"
	// ReasonMetricsUnreadable: a metric could not be read and the policy
	// has no fallback (StatusFailed).
	ReasonMetricsUnreadable ReasonCode = "metrics_unreadable"
	// ReasonExpressionFailed: an expression could not be evaluated
	// (StatusFailed).
	ReasonExpressionFailed ReasonCode = "expression_failed"
	// ReasonImplausibleTarget: a target no plan acts on (ErrImplausible)
	// (StatusFailed).
	ReasonImplausibleTarget ReasonCode = "implausible_target"
	// ReasonInterrupted: the run was interrupted before the app was done
	// (StatusFailed).
	ReasonInterrupted ReasonCode = "interrupted"
	// ReasonActionsFailed: failed actions left the app short of its plan
	// (StatusFailed).
	ReasonActionsFailed ReasonCode = "actions_failed"
	// ReasonBusy: machines the plan needed were leased by someone else
	// (StatusBlocked).
	ReasonBusy ReasonCode = "busy"
	// ReasonRecountFailed: the final count after the actions could not be
	// read, so whether the app reached its target is not known
	// (StatusFailed).
	ReasonRecountFailed ReasonCode = "recount_failed"
	// ReasonShortOfTarget: the final count after the actions is short of
	// the plan's target (StatusFailed).
	ReasonShortOfTarget ReasonCode = "short_of_target"
)

// ReasonCodes returns every reason code.
func ReasonCodes() []ReasonCode {
	return []ReasonCode{
		ReasonScaled, ReasonPlanned, ReasonAtTarget,
		ReasonOwnApp, ReasonReleaseInProgress, ReasonTargetUnreachable, ReasonChangesAborted,
		ReasonPaused, ReasonFallback,
		ReasonReleaseUnreadable, ReasonMachinesUnreadable, ReasonMetricsUnreadable,
		ReasonExpressionFailed, ReasonImplausibleTarget, ReasonInterrupted,
		ReasonActionsFailed, ReasonBusy, ReasonRecountFailed, ReasonShortOfTarget,
	}
}

// Step is what a Decision asks of the caller next.
type Step int

// Steps.
const (
	// StepDone: the decision is final (Status, Code, Reason).
	StepDone Step = iota
	// StepReadRelease: read the app's release status into Facts.
	StepReadRelease
	// StepObserve: list the app's machines and collect its metrics into
	// Facts.
	StepObserve
	// StepAllocate: hold Plan until the fleet budget is allocated, then
	// decide on the (re)made plan.
	StepAllocate
	// StepApply: apply Plan to Fleet, then decide on the outcomes.
	StepApply
	// StepRecount: count the app again into Facts, then decide.
	StepRecount
)

// Facts are what is known of one app when Decide is called: the run's
// settings for it and what was read so far. Each stage of a run adds to
// them what the previous Decision asked for (its Step); Decide does no I/O.
type Facts struct {
	App    string
	Policy *AppPolicy
	// At is the run's moment; Now the clock when the facts were read.
	At  Moment
	Now time.Time
	// OwnApp is set for the autoscaler's own app.
	OwnApp bool
	DryRun bool
	// Budgeted is set when a fleet budget allocates every app's plan
	// before any is acted on.
	Budgeted bool
	// Interrupted is set when the run was interrupted (a signal): an
	// error then is no fault of the app's.
	Interrupted bool

	// ReleaseRead is set once the release status was read: Release, or
	// ReleaseErr.
	ReleaseRead bool
	Release     string
	ReleaseErr  error

	// Read is set once the machines were listed and the metrics
	// collected. Machines is nil when the list failed (ListErr);
	// MetricsErr is the metrics' error, which, without a fallback, is set
	// only when it ended the reading (it came before any list error).
	Read           bool
	Machines       []*fly.Machine
	ListErr        error
	Metrics        map[string]float64
	MetricsErr     error
	MetricWarnings []string

	// Plan, once set, is the app's plan over Fleet (from a previous
	// Decision, or the fleet budget's): the decision starts from it.
	// Fallback is the metric error of an app planned from its fallback,
	// Abort why its changes are not to be made (the failure ratio).
	Plan     *Plan
	Fleet    Fleet
	Fallback string
	Abort    string
	// Granted, with Plan, is what the fleet budget Budget granted the
	// app: a plan for more is made again for exactly that.
	Granted *Counts
	Budget  Budget

	// Applied is set once Plan was applied, with the outcomes of its
	// Actions; Recounted once the app was counted again after them:
	// Recount, or RecountErr.
	Applied    bool
	Actions    []ActionResult
	Recounted  bool
	Recount    []*fly.Machine
	RecountErr error
}

// Decision is what Decide made of the facts: the next step, or the
// app's status with its reason, and what was decided on the way.
type Decision struct {
	Next   Step
	Status Status
	Code   ReasonCode
	Reason string
	// Observed, Current, Target, Demand, Metrics and Warnings are the
	// app's result as decided once its machines and metrics were read.
	// After Applied, Warnings are those the outcomes add.
	Observed bool
	Current  Counts
	Target   Counts
	Demand   *Counts
	Metrics  MetricValues
	Warnings []string
	// Actions are the results of a plan that is not applied (a dry run's
	// or an aborted one's).
	Actions []ActionResult
	// Fleet and Plan are the app's, for StepAllocate (the whole fleet) and
	// StepApply (the fleet as the applier needs it); Floor is the app's own
	// minimums for the fleet budget; Fallback the metric error of an app
	// planned from its fallback.
	Fleet    Fleet
	Plan     Plan
	Floor    Counts
	Fallback string
}

// Decide applies every rule that decides what happens to one app to
// what is known of it: the own-app skip, the release skip, the pause, the
// host and process-group filters (NewFleet), the failures of reading, the
// fallback, the expressions and the implausible-target check, the plan
// (NewPlan), and the mapping of the plan, of its outcomes and of a final
// count to a status with a reason code. It is pure: the caller does what
// the Decision's Next step asks and calls it again with the facts it adds.
func Decide(f Facts) Decision {
	switch {
	case f.Applied:
		return settle(f)
	case f.Plan != nil:
		return outcomeOfPlan(granted(f), f)
	}
	var d Decision
	if f.OwnApp {
		return d.final(StatusSkipped, ReasonOwnApp, OwnAppReason)
	}
	if !f.ReleaseRead {
		d.Next = StepReadRelease
		return d
	}
	if f.ReleaseErr != nil {
		return d.failed(f, ReasonReleaseUnreadable, f.ReleaseErr)
	}
	if releaseInProgress(f.Release) {
		return d.final(StatusSkipped, ReasonReleaseInProgress, "release in progress")
	}
	if !f.Read {
		d.Next = StepObserve
		return d
	}
	fleet := NewFleet(f.App, f.Policy.Group, f.Machines)
	if f.Machines != nil {
		d.Observed = true
		d.Current = fleet.Counts()
		d.Target = d.Current
		// A paused app is left alone, whatever else went wrong.
		if p, ok := fleet.PausedAt(f.Now); ok {
			d.Metrics = MetricsOf(f.Metrics)
			return d.final(StatusPaused, ReasonPaused, p.String())
		}
	}
	fallback := f.Policy.Policy.FallbackStarted > 0
	switch {
	case f.ListErr != nil:
		return d.failed(f, ReasonMachinesUnreadable, f.ListErr)
	case f.MetricsErr != nil && !fallback:
		return d.failed(f, ReasonMetricsUnreadable, f.MetricsErr)
	}
	d.Metrics = MetricsOf(f.Metrics)

	var targets Targets
	if f.MetricsErr != nil {
		d.Fallback = f.MetricsErr.Error()
		if f.Interrupted {
			return d.failed(f, ReasonMetricsUnreadable, f.MetricsErr)
		}
		targets = fallbackTargets(f.Policy, fleet, f.At, d.Current)
	} else {
		var err error
		targets, err = f.Policy.Expressions.Evaluate(f.Metrics, fleet, f.At)
		if err == nil {
			err = CheckTargets(d.Current, targets, f.Policy.Policy)
		}
		if err != nil {
			code := ReasonExpressionFailed
			if errors.Is(err, ErrImplausible) {
				code = ReasonImplausibleTarget
			}
			return d.failed(f, code, err)
		}
	}
	plan := NewPlan(fleet, targets, f.Policy.Policy, f.Now)
	demand := DemandOf(d.Current, targets)
	d.Target, d.Demand = plan.Target, &demand
	d.Warnings = appWarnings(f, fleet, plan)
	d.Fleet, d.Plan = fleet, plan
	if f.Budgeted {
		d.Next, d.Fleet = StepAllocate, fleet.forActions(plan)
		if d.Fallback == "" {
			d.Floor = floorOf(f.Policy.Expressions, targets)
		}
		return d
	}
	return outcomeOfPlan(d, f)
}

// appWarnings are the warnings of an app's plan: its metric sources',
// the planner's, the pauses that could not be read and the machines left
// out for their hosts.
func appWarnings(f Facts, fleet Fleet, plan Plan) []string {
	w := slices.Concat(f.MetricWarnings, plan.Warnings, fleet.BadPauses)
	if fleet.Unreachable > 0 {
		where := " on unreachable hosts"
		if fleet.Unreachable == 1 {
			where = " on an unreachable host"
		}
		w = append(w, nMachines(fleet.Unreachable)+where+" not counted")
	}
	return w
}

func (d Decision) final(s Status, code ReasonCode, reason string) Decision {
	d.Next, d.Status, d.Code, d.Reason = StepDone, s, code, reason
	return d
}

// failed fails the app for err with code, unless the run was interrupted:
// then the app is not broken, the run is.
func (d Decision) failed(f Facts, code ReasonCode, err error) Decision {
	if f.Interrupted {
		return d.final(StatusFailed, ReasonInterrupted, "interrupted before it finished")
	}
	return d.final(StatusFailed, code, err.Error())
}

// granted is the decision of f's plan under the counts the fleet budget
// granted: when they are less than the plan's target, the plan is made
// again for exactly them, and the app warned of what was held back. Its
// Warnings are those it adds.
func granted(f Facts) Decision {
	d := Decision{Fleet: f.Fleet, Plan: *f.Plan, Target: f.Plan.Target, Fallback: f.Fallback}
	if g := f.Granted; g != nil && *g != f.Plan.Target {
		d.Warnings = heldBack(f.Budget, f.Plan.Target, *g)
		d.Plan = NewPlan(f.Fleet, Targets{Started: exactly(g.Started), Created: exactly(g.Created)}, f.Policy.Policy, f.Now)
		d.Target = d.Plan.Target
	}
	return d
}

// outcomeOfPlan decides what becomes of d's plan: an app with nothing
// to do (or a dry run's) is done, an aborted one skipped, another is to be
// applied.
func outcomeOfPlan(d Decision, f Facts) Decision {
	plan := d.Plan
	switch {
	case len(plan.Actions) == 0 && plan.Unreachable != "":
		d = d.final(StatusSkipped, ReasonTargetUnreachable, plan.Unreachable)
	case len(plan.Actions) == 0:
		d = d.final(StatusUnchanged, ReasonAtTarget, "")
	case f.DryRun:
		d = d.final(StatusPlanned, ReasonPlanned, "")
		d.Actions = make([]ActionResult, len(plan.Actions))
		for i, act := range plan.Actions {
			d.Actions[i] = ActionResult{Action: act, Outcome: OutcomePlanned}
		}
	case f.Abort != "":
		d = d.final(StatusSkipped, ReasonChangesAborted, f.Abort)
		d.Actions = make([]ActionResult, len(plan.Actions))
		for i, act := range plan.Actions {
			d.Actions[i] = ActionResult{Action: act, Outcome: OutcomeAborted, Error: f.Abort}
		}
		return d
	default:
		d.Next, d.Fleet = StepApply, d.Fleet.forActions(plan)
	}
	return d.fellBack()
}

// fellBack reports an app planned from its fallback as such, unless it
// failed.
func (d Decision) fellBack() Decision {
	if d.Fallback != "" && d.Status != StatusFailed {
		d.Status, d.Code, d.Reason = StatusFallback, ReasonFallback, d.Fallback
	}
	return d
}
