package scale

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
)

// errStartedSincePlan is the error of a destroy skipped because its machine
// started after the plan was made (CauseStartedSincePlan).
var errStartedSincePlan = errors.New("started since the plan was made")

// destroys runs a plan's destroys under the anchor's lease, after a
// recount: only the machines the fresh count still has above the target
// are destroyed, in rounds (see destroyFrom), each under its own lease too
// (a machine a deploy holds is passed over for the next spare). Destroying
// is not undone, so no round sends more destroys than the fresh count
// still needs, an overlapping run that destroyed first must not make us
// destroy again, a machine that started since the plan (Fly's proxy wakes
// stopped machines) is not destroyed in place of a stopped one, and a
// destroy whose outcome is uncertain counts toward the target only once a
// recount under the anchor's lease shows its machine gone (it is then
// done), and is followed by that recount before any spare is destroyed.
func (a *applier) destroys(ctx context.Context, acts []Action) {
	a.underAnchor(ctx, acts, func(fresh Fleet, anchor *lease) { a.destroyFrom(ctx, acts, fresh, anchor) })
}

// destroyFrom destroys in rounds. Each round takes from the victims (the
// planned ones, then the plan's destroy spares) at most as many as the
// fresh count still needs destroyed, so that destroys in flight can never
// take the app below its target, sends them (see sendDestroys) and settles
// them (see settleDestroys): a busy or failed destroy leaves its place to
// the next victim in the next round, and the round's uncertain ones are
// settled by one recount under the anchor's lease, from which what is
// still needed is counted again. A failed recount, a lost anchor lease or
// the end of ctx ends the rounds. The results keep the order of the
// victims; the planned victims never sent a destroy are recorded last,
// with why.
func (a *applier) destroyFrom(ctx context.Context, acts []Action, fresh Fleet, anchor *lease) {
	acts = a.keep(acts, DestroysNeeded(fresh, a.plan, len(acts)))
	v := a.victims(acts)
	left := len(acts) // destroys still needed
	var stop error    // why no further round is sent
	for left > 0 && stop == nil {
		round := v.take(fresh, left)
		if len(round) == 0 {
			break
		}
		sent, err := a.sendDestroys(ctx, round, anchor)
		for _, d := range sent {
			v.sent[d.act.MachineID] = true
		}
		r := a.settleDestroys(ctx, sent)
		a.out = append(a.out, r.results...)
		left -= r.done
		if r.recount != nil {
			fresh, left = *r.recount, DestroysNeeded(*r.recount, a.plan, left)
		}
		stop = cmp.Or(err, r.err)
	}
	for _, act := range acts {
		switch {
		case v.sent[act.MachineID]:
		case ctx.Err() != nil:
			a.skip([]Action{act}, OutcomeAborted, CauseNone, ctx.Err())
		case v.woken[act.MachineID]:
			a.skip([]Action{act}, OutcomeBusy, CauseStartedSincePlan, errStartedSincePlan)
		case stop != nil:
			a.skip([]Action{act}, outcomeOf(ctx, stop), CauseNone, stop)
		default:
			a.skip([]Action{act}, OutcomeUnneeded, CauseNone, fmt.Errorf("recount under the lease of %s: already at the target", a.plan.Anchor))
		}
	}
}

// victims are the machines a plan's destroys may take, in the order they
// are taken: the planned victims, then the plan's destroy spares.
type victims struct {
	plan  Fleet // the count the plan was made from
	queue []Action
	sent  map[string]bool // a destroy was sent
	woken map[string]bool // started since the plan: passed over
}

func (a *applier) victims(acts []Action) *victims {
	v := &victims{plan: a.f, queue: append([]Action(nil), acts...), sent: map[string]bool{}, woken: map[string]bool{}}
	for _, id := range a.plan.Spares[ActionDestroy] {
		if m := a.f.machine(id); m != nil {
			v.queue = append(v.queue, Action{Kind: ActionDestroy, MachineID: id, Region: m.Region, Reason: "in place of a busy or failed destroy"})
		}
	}
	return v
}

// take removes from the queue and returns the next at most n victims that
// fresh still has and that were not sent a destroy; a machine that started
// since the plan is passed over and remembered as woken.
func (v *victims) take(fresh Fleet, n int) []Action {
	var round []Action
	for len(v.queue) > 0 && len(round) < n {
		act := v.queue[0]
		v.queue = v.queue[1:]
		now := fresh.machine(act.MachineID)
		if v.sent[act.MachineID] || now == nil || slices.ContainsFunc(round, func(r Action) bool { return r.MachineID == act.MachineID }) {
			continue
		}
		if was := v.plan.machine(act.MachineID); countsAsStarted(now.State) && (was == nil || !countsAsStarted(was.State)) {
			v.woken[act.MachineID] = true
			continue
		}
		round = append(round, act)
	}
	return round
}

// sentDestroy is a destroy that was sent and what came of it.
type sentDestroy struct {
	act Action
	res ActionResult
	err error
}

// sendDestroys sends the destroys of a round, each under its victim's
// lease (see call) and only while the anchor's lease holds and ctx is not
// done: the first alone, then the others at once, at most
// MaxActionsInFlight in flight, unless the first failed: a failing API is
// not sent a burst, and the others go one at a time, as the creates of a
// round do. It returns those sent, in the round's order, and why any was
// not (the anchor's lease lost, or ctx done).
func (a *applier) sendDestroys(ctx context.Context, round []Action, anchor *lease) ([]sentDestroy, error) {
	out := make([]sentDestroy, len(round))
	ok := make([]bool, len(round))
	stops := make([]error, len(round))
	sendRound(ctx, anchor, len(round), func(i int) {
		act := round[i]
		err := a.do(ctx, act)
		out[i], ok[i] = sentDestroy{act: act, res: result(ctx, act, err), err: err}, true
	}, func(i int, why error) { stops[i] = why }, func() bool { return out[0].res.Outcome != OutcomeFailed })
	var sent []sentDestroy
	for i := range round {
		if ok[i] {
			sent = append(sent, out[i])
		}
	}
	for _, err := range stops {
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// settledRound is what a round of destroys came to.
type settledRound struct {
	results []ActionResult // in the round's order
	done    int            // destroys done, those a recount proved included
	recount *Fleet         // the round's recount, when one was made
	err     error          // why the recount failed
}

// settleDestroys settles the destroys sent in a round. A done destroy
// counts; a busy, aborted or failed one leaves its place to a spare. An
// uncertain one, or one that found its machine gone, is settled by one
// recount for the round: a machine the recount finds gone counts as done
// (an uncertain destroy that happened) or unneeded (someone else destroyed
// it); one it still finds stays failed.
func (a *applier) settleDestroys(ctx context.Context, sent []sentDestroy) settledRound {
	r := settledRound{results: make([]ActionResult, len(sent))}
	var unsure []int // destroys the recount settles
	for i, d := range sent {
		r.results[i] = d.res
		switch d.res.Outcome {
		case OutcomeDone:
			r.done++
		case OutcomeFailed:
			if uncertain(d.err) || errors.Is(d.err, ErrNotFound) {
				unsure = append(unsure, i)
			}
		}
	}
	if len(unsure) == 0 {
		return r
	}
	f, err := a.recount(ctx)
	if err != nil {
		r.err = err // the failures stay recorded; nothing more is destroyed
		return r
	}
	r.recount = &f
	for _, i := range unsure {
		d := sent[i]
		switch {
		case f.machine(d.act.MachineID) != nil:
		case errors.Is(d.err, ErrNotFound):
			r.results[i] = restated(d.res, OutcomeUnneeded, "already gone: destroyed by someone else")
		default:
			r.results[i] = resolved(d.res, OutcomeDone, "a recount found the machine gone")
			r.done++
		}
	}
	return r
}

// skip records acts, none of them attempted, with outcome, cause and err.
func (a *applier) skip(acts []Action, outcome Outcome, cause Cause, err error) {
	for _, act := range acts {
		a.out = append(a.out, ActionResult{Action: act, Outcome: outcome, Cause: cause, Error: err.Error()})
	}
}
