package scale

import (
	"fmt"
	"slices"
	"strings"
)

// settle maps the outcomes of an applied plan to the app's status (see
// statusFrom) and, when any of its actions did not plainly succeed, asks
// for a final count and settles the status from it: an app is reported
// scaled, or unchanged, only if that count meets every target of its plan;
// otherwise it fails, with the shortfall named (a failed or blocked app
// has it added to its reason). Being above a target is not a shortfall:
// when a run cannot know, it errs toward capacity.
func settle(f Facts) Decision {
	r := statusFrom(AppResult{Actions: f.Actions}, *f.Plan)
	d := Decision{Status: r.Status, Code: r.Code, Reason: r.Reason, Warnings: r.Warnings, Fallback: f.Fallback}
	ok := d.Status == StatusScaled || d.Status == StatusUnchanged
	plain := true
	for _, ar := range f.Actions {
		plain = plain && ar.Outcome == OutcomeDone && ar.Error == ""
	}
	if plain || !ok && d.Status != StatusFailed && d.Status != StatusBlocked {
		return d.fellBack()
	}
	if !f.Recounted {
		return Decision{Next: StepRecount}
	}
	if f.RecountErr != nil {
		if ok {
			d.Status, d.Code, d.Reason = StatusFailed, ReasonRecountFailed, "final recount: list machines: "+cleanError(f.RecountErr)+" (whether the app reached its target is not known)"
		}
		return d.fellBack()
	}
	got, want := NewFleet(f.Fleet.App, f.Fleet.Group, f.Recount).Counts(), f.Plan.Target
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
		d.Status, d.Code, d.Reason = StatusFailed, ReasonShortOfTarget, "short of its target after its actions: "+strings.Join(short, ", ")
	default:
		d.Reason += " (short of its target: " + strings.Join(short, ", ") + ")"
	}
	return d.fellBack()
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
	res.Status, res.Code = StatusUnchanged, ReasonAtTarget
	if done > 0 {
		res.Status, res.Code = StatusScaled, ReasonScaled
	}
	if len(woken) > 0 {
		res.Warnings = append(res.Warnings, "not destroyed, started since the plan (the next run decides again): "+strings.Join(woken, ", "))
	}
	short := false
	for kind, n := range planned {
		short = short || reached[kind] < n
	}
	if len(failed) > 0 && short {
		res.Status, res.Code = StatusFailed, ReasonActionsFailed
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
		res.Status, res.Code = StatusBlocked, ReasonBusy
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

// failureRatioPassed returns, when more than ratio of n apps failed, the
// reason every app's changes are aborted for; "" otherwise.
func failureRatioPassed(failed, n int, ratio float64) string {
	if float64(failed) <= ratio*float64(n) {
		return ""
	}
	return fmt.Sprintf("changes aborted: %d of %d apps failed, more than the failure ratio %g allows", failed, n, ratio)
}
