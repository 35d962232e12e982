package scale

import (
	"context"
	"errors"
	"fmt"
	"sync"

	fly "github.com/superfly/fly-go"
)

// MaxActionsInFlight bounds the actions of one app that are in flight at
// once: the starts, stops or suspends of a batch, the creates or destroys
// of a round.
// Fly's rate limits are per machine (and per app for create), so it spares
// the API a burst, not a limit.
const MaxActionsInFlight = 8

// Apply executes plan against the Machines API and records each action's
// outcome, in the plan's order. It does not decide what to change: it runs
// the plan's batches (its runs of actions of one kind) in order, the
// starts, stops or suspends of a batch at once, at most MaxActionsInFlight
// in flight; when a machine is busy (leased by someone else) or fails, it
// counts the app again once the batch's first attempts have ended and,
// unless the machine is already where the action wanted it or the app at
// its target, moves on to the next spare the planner listed for that kind.
// It stops when ctx is done.
//
// Non-idempotent actions run under leases of their own: creates and
// destroys hold the anchor's lease (Plan.Anchor) and, under it, list the
// app again and make only the changes the fresh count still needs
// (CreatesNeeded, DestroysNeeded), so overlapping runs do not double or
// halve a fleet. They go out in rounds: the first of a round alone, then,
// unless it failed, the others at once (at most MaxActionsInFlight in
// flight, never more than the fresh count still needs). A destroy holds
// its victim's lease too, and a busy or failed one leaves its place to a
// spare in the next round.
//
// A plan that both creates or destroys and starts, stops or suspends takes
// the anchor's lease first, waiting a while for it when it is busy, and
// holds it through all its batches: an overlapping run that is creating
// is let finish. When there is evidence that another run changed the app
// since the plan (the anchor's lease was busy, or the count under it
// differs from the plan's), the starts, stops and suspends are sent only
// as far as a fresh count still needs them (see stillNeeded), so that
// overlapping runs do not start one machine too many.
func Apply(ctx context.Context, m Machines, f Fleet, plan Plan) []ActionResult {
	a := applier{m: m, f: f, plan: plan, used: map[string]bool{}}
	for _, act := range plan.Actions {
		a.used[act.MachineID] = true
	}
	if a.anchorFirst() {
		a.takeAnchorFirst(ctx)
		if a.held != nil {
			defer a.held.release(ctx)
		}
	}
	for i := 0; i < len(plan.Actions); i++ {
		kind := plan.Actions[i].Kind
		j := i
		for j < len(plan.Actions) && plan.Actions[j].Kind == kind {
			j++
		}
		switch kind {
		case ActionCreate:
			a.creates(ctx, plan.Actions[i:j])
			a.anchorDone = true
		case ActionDestroy:
			a.destroys(ctx, plan.Actions[i:j])
			a.anchorDone = true
		default:
			a.batch(ctx, a.stillNeeded(ctx, plan.Actions[i:j]))
		}
		a.fresh = nil // the batch changed the app: a count made before is stale
		i = j - 1
	}
	return a.out
}

// inParallel calls fn for 0..n-1, at most MaxActionsInFlight calls at once,
// and returns when every call has.
func inParallel(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, MaxActionsInFlight)
	for i := range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			fn(i)
		})
	}
	wg.Wait()
}

// sendRound sends the n changes of a round with send, each only while
// the anchor's lease holds and ctx is not done (else stopped is told why):
// the first alone, then, if burst says it went well, the others at once,
// else one at a time: a failing API is not sent a burst.
func sendRound(ctx context.Context, anchor *lease, n int, send func(i int), stopped func(i int, why error), burst func() bool) {
	try := func(i int) {
		err := anchor.held()
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			stopped(i, err)
			return
		}
		send(i)
	}
	try(0)
	if burst() {
		inParallel(n-1, func(i int) { try(i + 1) })
		return
	}
	for i := 1; i < n; i++ {
		try(i)
	}
}

type applier struct {
	m    Machines
	f    Fleet
	plan Plan
	out  []ActionResult
	used map[string]bool

	// held is the anchor's lease when it was taken before the first batch
	// (see anchorFirst), released when Apply returns.
	held *lease
	// fresh is a count of the app made since the last batch, under held.
	fresh *Fleet
	// changed is set once there is evidence that another run changed the
	// app since the plan: the anchor's lease was busy, or a count under it
	// differed from the plan's.
	changed bool
	// anchorDone is set once the creates or destroys were applied.
	anchorDone bool
}

// record records act's attempt, which ended with err.
func (a *applier) record(ctx context.Context, act Action, err error) ActionResult {
	r := result(ctx, act, err)
	a.out = append(a.out, r)
	return r
}

// result is the outcome of act's attempt, which ended with err. It records
// nothing, so that attempts made at once keep their results apart.
func result(ctx context.Context, act Action, err error) ActionResult {
	r := ActionResult{Action: act, Outcome: OutcomeDone}
	if err != nil {
		r.Outcome, r.Error = outcomeOf(ctx, err), cleanError(err)
	}
	return r
}

// attempt runs act unless ctx is done, and returns its result.
func (a *applier) attempt(ctx context.Context, act Action) ActionResult {
	if err := ctx.Err(); err != nil {
		return ActionResult{Action: act, Outcome: OutcomeAborted, Error: err.Error()}
	}
	return result(ctx, act, a.do(ctx, act))
}

// batch runs starts, stops or suspends of distinct machines: each drives
// its own machine to a state, so they go out at once. Spares are decided
// only once every first attempt has ended, one failure after another, so
// that each recount sees the batch's other actions done: see withSpares.
func (a *applier) batch(ctx context.Context, acts []Action) {
	first := make([]ActionResult, len(acts))
	inParallel(len(acts), func(i int) { first[i] = a.attempt(ctx, acts[i]) })
	for i, r := range first {
		a.out = append(a.out, r)
		a.withSpares(ctx, acts[i], r)
	}
}

// withSpares follows the first attempt r of act: while its machine is
// busy or fails, it counts the app again and runs the same action on the
// plan's next spare for that kind, but only while the app still needs it: a spare never stands in for
// a machine already in the wanted state (an overlapping run got there and
// holds its lease), and a spare stop or suspend is made only while the
// fresh count of started machines still exceeds the target (a spare start
// only while it is below), so overlapping runs cannot take an app below
// its target.
func (a *applier) withSpares(ctx context.Context, act Action, r ActionResult) {
	for {
		if r.Outcome == OutcomeDone || r.Outcome == OutcomeAborted {
			return
		}
		fresh, err := a.recount(ctx)
		if err != nil {
			return // no count, no spare: the result stays as it is
		}
		if m := fresh.machine(act.MachineID); inWantedState(act.Kind, m) {
			a.resolve(len(a.out)-1, OutcomeDone, "already "+stateOf(m))
			return
		}
		if !SpareNeeded(fresh, a.plan, act.Kind) {
			a.resolve(len(a.out)-1, OutcomeUnneeded, "a recount found the app at its target")
			return
		}
		next := a.nextSpare(act.Kind)
		if next == nil {
			return
		}
		prev := act.MachineID
		act.MachineID, act.Region = next.ID, next.Region
		act.Reason = fmt.Sprintf("in place of %s (%s)", prev, r.Outcome)
		r = a.attempt(ctx, act)
		a.out = append(a.out, r)
	}
}

// inWantedState reports whether m, from a fresh count, is where an action
// of kind would take it: started for a start; not started, or gone, for a
// stop or suspend.
func inWantedState(kind ActionKind, m *Machine) bool {
	switch kind {
	case ActionStart:
		return m != nil && countsAsStarted(m.State)
	case ActionStop, ActionSuspend:
		return m == nil || !countsAsStarted(m.State)
	}
	return false
}

func stateOf(m *Machine) string {
	if m == nil {
		return "gone"
	}
	return m.State
}

// resolve settles the recorded result i, a failure or a busy machine, as
// outcome once a recount showed what became of it.
func (a *applier) resolve(i int, outcome Outcome, why string) {
	a.out[i] = resolved(a.out[i], outcome, why)
}

// resolved is r, a failure or a busy machine, settled as outcome once a
// recount showed what became of it.
func resolved(r ActionResult, outcome Outcome, why string) ActionResult {
	return restated(r, outcome, fmt.Sprintf("%s (%s), but %s", r.Outcome, r.Error, why))
}

// restated is r with its outcome and error replaced.
func restated(r ActionResult, outcome Outcome, msg string) ActionResult {
	r.Outcome, r.Error = outcome, msg
	return r
}

func (a *applier) nextSpare(kind ActionKind) *Machine {
	for _, id := range a.plan.Spares[kind] {
		if !a.used[id] {
			a.used[id] = true
			return a.f.machine(id)
		}
	}
	return nil
}

func (a *applier) do(ctx context.Context, act Action) error {
	err := a.call(ctx, act)
	if alreadyThere(act.Kind, err) {
		// Another run (or flyd itself) got there first: the state this
		// action wanted is reached, so overlapping runs do not fail.
		return nil
	}
	return err
}

// alreadyThere reports whether err is the Machines API refusing a start,
// stop or suspend because the machine is already in the wanted state.
func alreadyThere(kind ActionKind, err error) bool {
	switch kind {
	case ActionStart:
		return errors.Is(err, ErrAlreadyStarted)
	case ActionStop, ActionSuspend:
		// Gone is not started, which is what the action wanted.
		return errors.Is(err, ErrAlreadyStopped) || errors.Is(err, ErrNotFound)
	}
	return false
}

func (a *applier) call(ctx context.Context, act Action) error {
	app := a.f.App
	nonce := "" // the lease of our own on the machine, if we hold one
	if a.held != nil && a.held.id == act.MachineID {
		nonce = a.held.nonce // the anchor's, taken before the first batch
	}
	switch act.Kind {
	case ActionStart:
		_, err := a.m.Start(ctx, app, act.MachineID, nonce)
		return err
	case ActionStop:
		return a.m.Stop(ctx, app, fly.StopMachineInput{ID: act.MachineID}, nonce)
	case ActionSuspend:
		return a.m.Suspend(ctx, app, act.MachineID, nonce)
	case ActionDestroy:
		// The victim's own lease keeps us off a machine a deploy holds.
		l, err := a.lease(ctx, act.MachineID)
		if err != nil {
			return err
		}
		err = a.m.Destroy(ctx, app, fly.RemoveMachineInput{ID: act.MachineID, Kill: true}, l.nonce)
		if err != nil {
			l.release(ctx)
		} else {
			l.end() // a destroyed machine takes its lease with it
		}
		return err
	}
	return fmt.Errorf("unknown action %q", act.Kind)
}

// outcomeOf classifies the error of an action, attempted or not: busy
// when someone else holds a lease it needs, aborted when ctx is done,
// failed otherwise.
func outcomeOf(ctx context.Context, err error) Outcome {
	switch {
	case isBusy(err):
		return OutcomeBusy
	case ctx.Err() != nil:
		return OutcomeAborted
	}
	return OutcomeFailed
}

// isBusy reports whether err is the Machines API refusing a change because
// someone else holds the machine's lease.
func isBusy(err error) bool {
	return errors.Is(err, ErrBusy)
}

// cleanError returns the text of an error as recorded in a result: an
// operation's (opError) or an API error's own, without what wraps it.
func cleanError(err error) string {
	var w *opError
	if errors.As(err, &w) {
		return w.msg
	}
	var e APIError
	if errors.As(err, &e) {
		return e.Error()
	}
	return err.Error()
}

// opError names the operation in front of a cleaned Machines API error
// and keeps the original for errors.As.
type opError struct {
	msg string
	err error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.err }

func wrapOp(op string, err error) error {
	return &opError{msg: op + ": " + cleanError(err), err: err}
}
