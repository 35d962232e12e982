package scale

import (
	"context"
	"fmt"

	fly "github.com/superfly/fly-go"
)

// recount lists the app again: the fresh count decisions under a lease
// are made from.
func (a *applier) recount(ctx context.Context) (Fleet, error) {
	list, err := a.m.List(ctx, a.f.App, "")
	if err != nil {
		return Fleet{}, wrapOp("recount: list machines", err)
	}
	return NewFleet(a.f.App, a.f.Group, list), nil
}

// sameFleet reports whether fresh has the machines of f, each started or
// not as in f.
func sameFleet(f, fresh Fleet) bool {
	if len(f.Machines) != len(fresh.Machines) {
		return false
	}
	for _, m := range f.Machines {
		n := fresh.machine(m.ID)
		if n == nil || countsAsStarted(n.State) != countsAsStarted(m.State) {
			return false
		}
	}
	return true
}

// stillNeeded returns the starts, stops or suspends of acts that a fresh
// count still needs, once another run changed the app since the plan (see
// applier.changed); otherwise acts as planned. The count is the one made
// under the anchor's lease when no batch ran since, else a new one; the
// creates still to come count as started machines when they are started
// creates, the started machines still to be destroyed do not. The planned
// machines still able to take the action go first, then the plan's spares
// for it; those not needed are recorded as unneeded. Without a count, the
// plan stands.
func (a *applier) stillNeeded(ctx context.Context, acts []Action) []Action {
	if !a.changed || len(acts) == 0 {
		return acts
	}
	fresh := a.fresh
	if fresh == nil {
		f, err := a.recount(ctx)
		if err != nil {
			return acts
		}
		fresh = &f
	}
	kind := acts[0].Kind
	need := BatchNeeded(*fresh, a.plan, kind, !a.anchorDone)
	able := func(m *Machine) bool { return m != nil && m.State == fly.MachineStateStarted }
	if kind == ActionStart {
		able = func(m *Machine) bool { return m != nil && startRank(m.State) >= 0 }
	}
	var out, unneeded []Action
	for _, act := range acts {
		if m := fresh.machine(act.MachineID); inWantedState(kind, m) {
			// Another run got there: done, as an answer "already there"
			// would have it.
			a.out = append(a.out, ActionResult{Action: act, Outcome: OutcomeDone, Error: "already " + stateOf(m) + ": a recount found the app changed by another run since the plan"})
			continue
		}
		if len(out) < need && able(fresh.machine(act.MachineID)) {
			out = append(out, act)
		} else {
			unneeded = append(unneeded, act)
		}
	}
	for _, id := range a.plan.Spares[kind] {
		if len(out) >= need {
			break
		}
		if m := fresh.machine(id); !a.used[id] && able(m) {
			a.used[id] = true
			out = append(out, Action{Kind: kind, MachineID: id, Region: m.Region, Reason: "a recount found the app changed by another run"})
		}
	}
	a.skip(unneeded, OutcomeUnneeded, CauseNone, fmt.Errorf("a recount found the app changed by another run since the plan: %d started for a target of %d, %d %s still needed", fresh.Counts().Started, a.plan.Target.Started, max(need, 0), kind))
	return out
}

// CreatesNeeded returns how many of at most planned creates are still
// needed to bring fresh, a recount of the fleet taken under the anchor's
// lease, up to the plan's created target.
func CreatesNeeded(fresh Fleet, p Plan, planned int) int {
	return max(0, min(planned, p.Target.Created-fresh.Counts().Created))
}

// DestroysNeeded returns how many of at most planned destroys are still
// needed to bring fresh, a recount taken under the anchor's lease, down to
// the plan's created target.
func DestroysNeeded(fresh Fleet, p Plan, planned int) int {
	return max(0, min(planned, fresh.Counts().Created-p.Target.Created))
}

// SpareNeeded reports whether fresh, a recount taken after an action of
// kind failed or found its machine busy, still calls for another such
// action (a spare in its place): started machines, less those the plan is still to
// destroy, are below the started target (start) or above it (stop,
// suspend).
func SpareNeeded(fresh Fleet, p Plan, kind ActionKind) bool {
	started := fresh.Counts().Started - startedToDestroy(fresh, p)
	if kind == ActionStart {
		return started < p.Target.Started
	}
	return started > p.Target.Started
}

// BatchNeeded returns how many starts (kind ActionStart) or stops or
// suspends a fresh count still calls for to reach the plan's started
// target; zero or less means none. With pending, the plan's creates and
// destroys are still to come and count as done: its started creates (as
// many as the fresh count still needs) as started machines, its started
// machines to destroy as gone.
func BatchNeeded(fresh Fleet, p Plan, kind ActionKind, pending bool) int {
	started := fresh.Counts().Started
	if pending {
		started -= startedToDestroy(fresh, p)
		started += min(countStartedCreates(p.Actions), CreatesNeeded(fresh, p, countKind(p.Actions, ActionCreate)))
	}
	if kind == ActionStart {
		return p.Target.Started - started
	}
	return started - p.Target.Started
}

// startedToDestroy counts the machines the plan destroys that fresh finds
// started (or starting).
func startedToDestroy(fresh Fleet, p Plan) int {
	n := 0
	for _, act := range p.Actions {
		if m := fresh.machine(act.MachineID); act.Kind == ActionDestroy && m != nil && countsAsStarted(m.State) {
			n++
		}
	}
	return n
}
