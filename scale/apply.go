package scale

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	fly "github.com/superfly/fly-go"
)

// errStartedSincePlan is the error of a destroy skipped because its machine
// started after the plan was made (CauseStartedSincePlan).
var errStartedSincePlan = errors.New("started since the plan was made")

// LeaseTTL is how long the leases taken around creates and destroys last
// unless refreshed. While work goes on under a lease it is refreshed with
// its nonce every LeaseTTL/3, so a lease cannot run out under work in
// progress, and a run that dies without releasing its leases (SIGKILL, a
// lost host) holds an app up for at most LeaseTTL.
const LeaseTTL = 15 * time.Second

// leaseMargin is how long before a lease would run out, counted from the
// last acquire or refresh sent, it is no longer relied on: the server's
// clock and ours may differ by a request's travel.
const leaseMargin = 3 * time.Second

// releaseTimeout bounds a lease release, which runs even after the app's
// deadline has passed.
const releaseTimeout = 5 * time.Second

// MaxActionsInFlight bounds the actions of one app that are in flight at
// once: the starts, stops or suspends of a batch, the creates or destroys
// of a round.
// Fly's rate limits are per machine (and per app for create), so it spares
// the API a burst, not a limit.
const MaxActionsInFlight = 8

// createRounds bounds the rounds of creates under one anchor lease: after
// a round with a failed or uncertain create, the app is counted again and
// what is still needed is created in the next.
const createRounds = 3

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

// lease is a lease of our own on a machine, refreshed in the background
// until it is ended or released.
type lease struct {
	m         Machines
	app       string
	id, nonce string
	stop      chan struct{}
	done      chan struct{}
	once      sync.Once

	mu    sync.Mutex
	until time.Time // when it runs out at the latest, on our clock
	lost  error     // set once a refresh was refused
}

// lease takes a lease of LeaseTTL on a machine and refreshes it every
// LeaseTTL/3 until it is ended or released.
func (a *applier) lease(ctx context.Context, id string) (*lease, error) {
	ttl := int(LeaseTTL / time.Second)
	sent := time.Now()
	l, err := a.m.AcquireLease(ctx, a.f.App, id, &ttl)
	if err != nil {
		return nil, wrapOp("lease "+id, err)
	}
	if l == nil || l.Data == nil || l.Data.Nonce == "" {
		return nil, fmt.Errorf("lease %s: answer without a nonce", id)
	}
	h := &lease{m: a.m, app: a.f.App, id: id, nonce: l.Data.Nonce, stop: make(chan struct{}), done: make(chan struct{}), until: sent.Add(LeaseTTL)}
	go h.refresh(ctx)
	return h, nil
}

func (h *lease) refresh(ctx context.Context) {
	defer close(h.done)
	tick := time.NewTicker(LeaseTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ttl := int(LeaseTTL / time.Second)
		sent := time.Now()
		_, err := h.m.RefreshLease(ctx, h.app, h.id, &ttl, h.nonce)
		h.mu.Lock()
		switch {
		case err == nil:
			h.until = sent.Add(LeaseTTL)
		case errors.Is(err, ErrBusy) || errors.Is(err, ErrNotFound):
			// Someone else holds it now, or it is gone: a failed refresh
			// of another kind is tried again at the next tick.
			h.lost = wrapOp("refresh lease "+h.id, err)
		}
		lost := h.lost != nil
		h.mu.Unlock()
		if lost {
			return
		}
	}
}

// held returns an error when the lease can no longer be relied on: a
// refresh was refused, or none succeeded for too long.
func (h *lease) held() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost != nil {
		return h.lost
	}
	if time.Until(h.until) < leaseMargin {
		return fmt.Errorf("lease %s: not refreshed in time", h.id)
	}
	return nil
}

// end stops refreshing the lease.
func (h *lease) end() {
	h.once.Do(func() { close(h.stop) })
	<-h.done
}

// release stops refreshing the lease and gives it back, with a context of
// its own (ctx's values, not its deadline), so a lease is released even
// after the app's deadline.
func (h *lease) release(ctx context.Context) {
	h.end()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	_ = h.m.ReleaseLease(ctx, h.app, h.id, h.nonce)
}

// creates runs a plan's creates under the anchor's lease, after a recount:
// only the machines the fresh count still needs are created, those of a
// round at once once its first succeeded. After a
// round with a failed or uncertain create (a 5xx or a lost answer: the
// machine may exist), the app is counted again, which also tells whether
// an uncertain create made its machine after all, and what is still
// needed is created, for at most createRounds rounds.
func (a *applier) creates(ctx context.Context, acts []Action) {
	a.underAnchor(ctx, acts, func(fresh Fleet, anchor *lease) { a.createFrom(ctx, acts, fresh, anchor) })
}

// underAnchor takes the anchor's lease, counts the app again and runs
// body with that fresh count; the batch acts is settled as aborted, busy
// or failed when any of that fails. The lease is released at the end.
func (a *applier) underAnchor(ctx context.Context, acts []Action, body func(fresh Fleet, anchor *lease)) {
	if err := ctx.Err(); err != nil {
		a.skip(acts, OutcomeAborted, CauseNone, err)
		return
	}
	if a.held != nil {
		// Taken before the first batch: counted under it then, or now.
		fresh := a.fresh
		if fresh == nil {
			f, err := a.recount(ctx)
			if err != nil {
				a.skip(acts, outcomeOf(ctx, err), CauseNone, err)
				return
			}
			fresh = &f
		}
		body(*fresh, a.held)
		return
	}
	anchor, err := a.anchor(ctx)
	if err != nil {
		a.skip(acts, outcomeOf(ctx, err), CauseAnchor, err)
		return
	}
	defer anchor.release(ctx)
	fresh, err := a.recount(ctx)
	if err != nil {
		a.skip(acts, outcomeOf(ctx, err), CauseNone, err)
		return
	}
	body(fresh, anchor)
}

// failedCreate is a create of a round that did not succeed: the action
// (to be made again if still needed) and its result's index.
type failedCreate struct {
	act       Action
	at        int
	uncertain bool
	credited  bool // a recount found its machine
}

// madeIDs returns the machine IDs of the done creates among rs.
func madeIDs(rs []ActionResult) map[string]bool {
	ids := map[string]bool{}
	for _, r := range rs {
		if r.Outcome == OutcomeDone && r.MachineID != "" {
			ids[r.MachineID] = true
		}
	}
	return ids
}

// foundMachines are the machines a recount found that the count before a
// round of creates did not have and no create of the round answered with:
// those the round's uncertain creates may have made.
type foundMachines []Machine

func newMachines(before, after Fleet, made map[string]bool) foundMachines {
	var out foundMachines
	for _, m := range after.Machines {
		if before.machine(m.ID) == nil && !made[m.ID] {
			out = append(out, m)
		}
	}
	return out
}

// claim removes from f and returns a machine for the create act: one in
// the state (started or not) and region act asked for, or, unless exact,
// any. It returns nil when there is none.
func (f *foundMachines) claim(act Action, exact bool) *Machine {
	for i, m := range *f {
		if exact && (countsAsStarted(m.State) != act.Started || act.Region != "" && m.Region != act.Region) {
			continue
		}
		*f = slices.Delete(*f, i, i+1)
		return &m
	}
	return nil
}

func (a *applier) createFrom(ctx context.Context, acts []Action, fresh Fleet, anchor *lease) {
	pending := acts
	for round := 1; ; round++ {
		pending = a.keep(pending, CreatesNeeded(fresh, a.plan, len(pending)))
		if len(pending) == 0 {
			return
		}
		var failed []failedCreate
		unsure, stop := false, false
		// The round's creates go out under the one anchor lease that the
		// recount was made under, each only while that lease still holds:
		// the first alone, then, once it succeeded, the others at once. A
		// round whose first create fails goes on one create at a time, as
		// before a recount each create may be the one that needed it.
		results := make([]ActionResult, len(pending))
		errs := make([]error, len(pending))
		sent := make([]bool, len(pending))
		sendRound(ctx, anchor, len(pending), func(i int) {
			act := pending[i]
			sent[i] = true
			in, err := launchInput(a.f, act)
			if err == nil {
				var nm *fly.Machine
				nm, err = a.m.Launch(ctx, a.f.App, in)
				if err == nil && nm != nil {
					act.MachineID = nm.ID
				}
			}
			results[i], errs[i] = result(ctx, act, err), err
		}, func(i int, why error) {
			results[i] = ActionResult{Action: pending[i], Outcome: outcomeOf(ctx, why), Error: why.Error()}
		}, func() bool { return results[0].Outcome == OutcomeDone })
		for i, r := range results {
			a.out = append(a.out, r)
			switch {
			case !sent[i] || r.Outcome == OutcomeAborted:
				stop = true // the lease or the deadline ended the round
				continue
			case r.Outcome == OutcomeDone:
				continue
			}
			u := uncertain(errs[i])
			unsure = unsure || u
			failed = append(failed, failedCreate{act: r.Action, at: len(a.out) - 1, uncertain: u})
		}
		if stop || len(failed) == 0 || round == createRounds && !unsure {
			return
		}
		// Count again before anything is created in place of a failure:
		// an uncertain create may have made its machine.
		f, err := a.recount(ctx)
		if err != nil {
			return // the failures stay recorded; nothing more is created
		}
		found := newMachines(fresh, f, madeIDs(a.out[len(a.out)-len(results):]))
		fresh = f
		pending = pending[:0:0]
		for i, fc := range failed {
			if !fc.uncertain {
				continue
			}
			// An uncertain create is credited with a machine the recount
			// found that is what it asked for: started or not, in its
			// region; never by the order the machines were found in.
			if m := found.claim(fc.act, true); m != nil {
				a.resolve(fc.at, OutcomeDone, "a recount found the machine made: "+m.ID)
				a.out[fc.at].MachineID = m.ID
				failed[i].credited = true
			}
		}
		for i, fc := range failed {
			if !fc.uncertain || fc.credited {
				continue
			}
			// A machine found that is not what any create asked for (a
			// started create whose machine is stopped already) still
			// counts toward the created target, so that nothing is
			// created twice; the final recount tells the shortfall.
			if m := found.claim(fc.act, false); m != nil {
				a.resolve(fc.at, OutcomeDone, fmt.Sprintf("a recount found a machine made, %s in %s: %s", m.State, m.Region, m.ID))
				a.out[fc.at].MachineID = m.ID
				failed[i].credited = true
			}
		}
		for _, fc := range failed {
			if fc.credited {
				continue
			}
			fc.act.MachineID = ""
			pending = append(pending, fc.act)
		}
		if round == createRounds || len(pending) == 0 {
			return
		}
	}
}

// keep returns the first n of acts and records the rest as unneeded: a
// recount under the anchor's lease found the app closer to its target
// (another run got there), so fewer changes are needed than planned.
func (a *applier) keep(acts []Action, n int) []Action {
	if n < len(acts) {
		a.skip(acts[n:], OutcomeUnneeded, CauseNone, fmt.Errorf("recount under the lease of %s: already at the target", a.plan.Anchor))
		acts = acts[:n]
	}
	return acts
}

// anchor takes the lease of the plan's anchor machine, which serialises an
// app's creates and destroys across overlapping runs.
func (a *applier) anchor(ctx context.Context) (*lease, error) {
	id := a.plan.Anchor
	if id == "" {
		return nil, errors.New("plan has no anchor machine")
	}
	l, err := a.lease(ctx, id)
	if err != nil {
		return nil, wrapOp("anchor", err)
	}
	return l, nil
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

// recount lists the app again: the fresh count decisions under a lease
// are made from.
func (a *applier) recount(ctx context.Context) (Fleet, error) {
	list, err := a.m.List(ctx, a.f.App, "")
	if err != nil {
		return Fleet{}, wrapOp("recount: list machines", err)
	}
	return NewFleet(a.f.App, a.f.Group, list), nil
}

// launchInput clones the config of the action's source machine, pinned to
// the source's full image reference.
func launchInput(f Fleet, a Action) (fly.LaunchMachineInput, error) {
	src := f.machine(a.Source)
	if src == nil || src.raw == nil || src.raw.Config == nil {
		return fly.LaunchMachineInput{}, fmt.Errorf("clone source %s has no config", a.Source)
	}
	cfg, err := copyConfig(src.raw.Config)
	if err != nil {
		return fly.LaunchMachineInput{}, err
	}
	if src.raw.ImageRef.Repository != "" {
		cfg.Image = src.raw.FullImageRef()
	}
	stripMarks(cfg)
	return fly.LaunchMachineInput{Config: cfg, Region: a.Region, SkipLaunch: !a.Started}, nil
}

func copyConfig(c *fly.MachineConfig) (*fly.MachineConfig, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("copy config: %w", err)
	}
	out := new(fly.MachineConfig)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("copy config: %w", err)
	}
	return out, nil
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

// anchorWait bounds the wait for a busy anchor's lease before the first
// batch: as long as a lease lasts, so that the lease of a run that died
// runs out within it. It is also at most half the time left.
const anchorWait = LeaseTTL

// anchorFirst reports whether the plan takes the anchor's lease before its
// first batch: it creates or destroys (so it has an anchor) and also
// starts, stops or suspends, whose number depends on what an overlapping
// run creating or destroying under that lease is doing.
func (a *applier) anchorFirst() bool {
	if a.plan.Anchor == "" {
		return false
	}
	anchored := countKind(a.plan.Actions, ActionCreate, ActionDestroy)
	return anchored > 0 && anchored < len(a.plan.Actions)
}

// takeAnchorFirst takes the anchor's lease, waiting while it is busy (see
// waitAnchor), and counts the app under it. A busy lease, or a count that
// differs from the plan's, is evidence that another run changed the app.
// When the lease cannot be had, the batches go on without it: the creates
// or destroys try to take it again.
func (a *applier) takeAnchorFirst(ctx context.Context) {
	l, busy, err := a.waitAnchor(ctx)
	a.changed = busy
	if err != nil {
		return
	}
	a.held = l
	fresh, err := a.recount(ctx)
	if err != nil {
		return
	}
	a.fresh = &fresh
	a.changed = a.changed || !sameFleet(a.f, fresh)
}

// waitAnchor takes the anchor's lease; while someone else holds it, it
// tries again every half second to second, for at most anchorWait and half
// the time ctx has left. It reports whether the lease was ever busy.
func (a *applier) waitAnchor(ctx context.Context) (*lease, bool, error) {
	until := time.Now().Add(anchorWait)
	if dl, ok := ctx.Deadline(); ok {
		until = minTime(until, time.Now().Add(time.Until(dl)/2))
	}
	busy := false
	for {
		l, err := a.anchor(ctx)
		if err == nil || !isBusy(err) {
			return l, busy, err
		}
		busy = true
		wait := 500*time.Millisecond + rand.N(500*time.Millisecond)
		if time.Now().Add(wait).After(until) {
			return nil, busy, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, busy, err
		case <-t.C:
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
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
	started := fresh.Counts().Started
	if !a.anchorDone {
		for _, act := range a.plan.Actions {
			if m := fresh.machine(act.MachineID); act.Kind == ActionDestroy && m != nil && countsAsStarted(m.State) {
				started--
			}
		}
		creates := countKind(a.plan.Actions, ActionCreate)
		started += min(countStartedCreates(a.plan.Actions), CreatesNeeded(*fresh, a.plan, creates))
	}
	kind := acts[0].Kind
	need := started - a.plan.Target.Started
	able := func(m *Machine) bool { return m != nil && m.State == fly.MachineStateStarted }
	if kind == ActionStart {
		need = -need
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
