package scale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	fly "github.com/superfly/fly-go"
	"github.com/superfly/fly-go/flaps"
)

// startedSincePlan is the error of a destroy skipped because its machine
// started after the plan was made.
const startedSincePlan = "started since the plan was made"

// LeaseTTL is how long the leases taken around creates and destroys last
// if they are not released (a crash, a lost connection): long enough for
// the few calls made under them, short enough not to hold up a deploy.
const LeaseTTL = 30 * time.Second

// releaseTimeout bounds a lease release, which runs even after the app's
// deadline has passed.
const releaseTimeout = 5 * time.Second

// Apply executes plan against the Machines API and records each action's
// outcome. It does not decide what to change: it runs the plan's actions
// in order; when a machine is busy (leased by someone else) or fails, it
// moves on to the next spare the planner listed for that kind. It never
// retries an action in a loop and stops when ctx is done.
//
// Non-idempotent actions run under a lease of their own: a destroy holds
// the victim's lease; creates hold the clone source's lease and, under it,
// list the app again and create only what the fresh count still needs
// (CreatesNeeded), so overlapping runs do not double a fleet.
func Apply(ctx context.Context, m Machines, f Fleet, plan Plan) []ActionResult {
	a := applier{ctx: ctx, m: m, f: f, plan: plan, used: map[string]bool{}}
	for _, act := range plan.Actions {
		a.used[act.MachineID] = true
	}
	for i := 0; i < len(plan.Actions); i++ {
		kind := plan.Actions[i].Kind
		if kind != ActionCreate && kind != ActionDestroy {
			a.withSpares(plan.Actions[i])
			continue
		}
		j := i
		for j < len(plan.Actions) && plan.Actions[j].Kind == kind {
			j++
		}
		if kind == ActionCreate {
			a.creates(plan.Actions[i:j])
		} else {
			a.destroys(plan.Actions[i:j])
		}
		i = j - 1
	}
	return a.out
}

type applier struct {
	ctx  context.Context
	m    Machines
	f    Fleet
	plan Plan
	out  []ActionResult
	used map[string]bool
}

func (a *applier) record(act Action, err error) ActionResult {
	r := ActionResult{Action: act, Outcome: OutcomeDone}
	switch {
	case err == nil:
	case isBusy(err):
		r.Outcome, r.Error = OutcomeBusy, cleanError(err)
	case a.ctx.Err() != nil:
		r.Outcome, r.Error = OutcomeAborted, cleanError(err)
	default:
		r.Outcome, r.Error = OutcomeFailed, cleanError(err)
	}
	a.out = append(a.out, r)
	return r
}

// withSpares runs act; while its machine is busy or fails, it runs the
// same action on the plan's next spare for that kind.
func (a *applier) withSpares(act Action) {
	for {
		if err := a.ctx.Err(); err != nil {
			a.out = append(a.out, ActionResult{Action: act, Outcome: OutcomeAborted, Error: err.Error()})
			return
		}
		r := a.record(act, a.do(act))
		if r.Outcome == OutcomeDone || r.Outcome == OutcomeAborted {
			return
		}
		next := a.nextSpare(act.Kind)
		if next == nil {
			return
		}
		prev := act.MachineID
		act.MachineID, act.Region = next.ID, next.Region
		act.Reason = fmt.Sprintf("in place of %s (%s)", prev, r.Outcome)
	}
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

func (a *applier) do(act Action) error {
	err := a.call(act)
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
	status := statusOf(err)
	if status == http.StatusNotFound && (kind == ActionStop || kind == ActionSuspend) {
		return true // gone: not started, which is what the action wanted
	}
	if status != http.StatusPreconditionFailed {
		return false
	}
	msg := err.Error()
	switch kind {
	case ActionStart:
		return strings.Contains(msg, "still active") || strings.Contains(msg, "current state: 'started'")
	case ActionStop, ActionSuspend:
		for _, st := range []string{"stopped", "suspended", "stopping", "suspending"} {
			if strings.Contains(msg, "current state: '"+st+"'") {
				return true
			}
		}
	}
	return false
}

func (a *applier) call(act Action) error {
	app := a.f.App
	switch act.Kind {
	case ActionStart:
		_, err := a.m.Start(a.ctx, app, act.MachineID, "")
		return err
	case ActionStop:
		return a.m.Stop(a.ctx, app, fly.StopMachineInput{ID: act.MachineID}, "")
	case ActionSuspend:
		return a.m.Suspend(a.ctx, app, act.MachineID, "")
	case ActionDestroy:
		// The victim's own lease keeps us off a machine a deploy holds.
		nonce, release, err := a.lease(act.MachineID)
		if err != nil {
			return err
		}
		err = a.m.Destroy(a.ctx, app, fly.RemoveMachineInput{ID: act.MachineID, Kill: true}, nonce)
		if err != nil {
			release() // a destroyed machine takes its lease with it
		}
		return err
	}
	return fmt.Errorf("unknown action %q", act.Kind)
}

// lease takes a short lease of our own on a machine. The release function
// runs with a context of its own, so a lease is released even after the
// app's deadline.
func (a *applier) lease(id string) (nonce string, release func(), err error) {
	ttl := int(a.leaseTTL() / time.Second)
	l, err := a.m.AcquireLease(a.ctx, a.f.App, id, &ttl)
	if err != nil {
		return "", nil, wrapOp("lease "+id, err)
	}
	if l == nil || l.Data == nil || l.Data.Nonce == "" {
		return "", nil, fmt.Errorf("lease %s: answer without a nonce", id)
	}
	nonce = l.Data.Nonce
	return nonce, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), releaseTimeout)
		defer cancel()
		_ = a.m.ReleaseLease(ctx, a.f.App, id, nonce)
	}, nil
}

// leaseTTL is LeaseTTL, or longer when the app's deadline is further away:
// a lease must not run out while the work under it goes on, or an
// overlapping run could take it and act on a stale count.
func (a *applier) leaseTTL() time.Duration {
	ttl := LeaseTTL
	if d, ok := a.ctx.Deadline(); ok {
		ttl = max(ttl, time.Until(d)+releaseTimeout)
	}
	return ttl.Round(time.Second)
}

// creates runs a plan's creates under the anchor's lease, after a recount:
// only the machines the fresh count still needs are created. A create
// whose outcome is uncertain (a 5xx or a lost answer: the machine may
// exist) is followed by another recount before the next one, which also
// tells whether it created the machine after all.
func (a *applier) creates(acts []Action) {
	a.underAnchor(acts, func(fresh Fleet) { a.createFrom(acts, fresh) })
}

// underAnchor takes the anchor's lease, counts the app again and runs
// body with that fresh count; the batch acts is settled as aborted, busy
// or failed when any of that fails. The lease is released at the end.
func (a *applier) underAnchor(acts []Action, body func(fresh Fleet)) {
	if err := a.ctx.Err(); err != nil {
		a.settle(acts, OutcomeAborted, err)
		return
	}
	release, err := a.anchor()
	if err != nil {
		a.settle(acts, a.outcomeOf(err), err)
		return
	}
	defer release()
	fresh, err := a.recount()
	if err != nil {
		a.settle(acts, a.outcomeOf(err), err)
		return
	}
	body(fresh)
}

func (a *applier) createFrom(acts []Action, fresh Fleet) {
	acts = a.keep(acts, CreatesNeeded(fresh, a.plan, len(acts)))
	have := fresh.Counts().Created
	for i := 0; i < len(acts); i++ {
		act := acts[i]
		in, err := launchInput(a.f, act)
		if err != nil {
			a.record(act, err)
			continue
		}
		var nm *fly.Machine
		nm, err = a.m.Launch(a.ctx, a.f.App, in)
		if err == nil && nm != nil {
			act.MachineID = nm.ID
		}
		switch a.record(act, err).Outcome {
		case OutcomeDone:
			have++
			continue
		case OutcomeAborted:
			a.settle(acts[i+1:], OutcomeAborted, a.ctx.Err())
			return
		}
		if !uncertain(err) {
			continue // a refused create is not retried; the next one is tried
		}
		// The machine may exist: count again before going on.
		fresh, err := a.recount()
		if err != nil {
			a.settle(acts[i+1:], a.outcomeOf(err), err)
			return
		}
		if fresh.Counts().Created > have {
			a.recovered("the machine exists")
		}
		have = fresh.Counts().Created
		acts = append(acts[:i+1], a.keep(acts[i+1:], CreatesNeeded(fresh, a.plan, len(acts)-i-1))...)
	}
}

// keep returns the first n of acts and records the rest as unneeded: a
// recount under the anchor's lease found the app closer to its target
// (another run got there), so fewer changes are needed than planned.
func (a *applier) keep(acts []Action, n int) []Action {
	if n < len(acts) {
		a.settle(acts[n:], OutcomeUnneeded, fmt.Errorf("recount under the lease of %s: already at the target", a.plan.Anchor))
		acts = acts[:n]
	}
	return acts
}

// recovered turns the last recorded action, which failed with an uncertain
// answer, into a success that a recount proved.
func (a *applier) recovered(why string) {
	r := &a.out[len(a.out)-1]
	r.Outcome, r.Error = OutcomeDone, fmt.Sprintf("the answer was an error (%s), but %s", r.Error, why)
}

// anchor takes the lease of the plan's anchor machine, which serialises an
// app's creates and destroys across overlapping runs.
func (a *applier) anchor() (release func(), err error) {
	id := a.plan.Anchor
	if id == "" {
		return nil, errors.New("plan has no anchor machine")
	}
	_, release, err = a.lease(id)
	if err != nil {
		return nil, wrapOp("anchor", err)
	}
	return release, nil
}

func (a *applier) outcomeOf(err error) Outcome {
	switch {
	case isBusy(err):
		return OutcomeBusy
	case a.ctx.Err() != nil:
		return OutcomeAborted
	}
	return OutcomeFailed
}

// destroys runs a plan's destroys under the anchor's lease, after a
// recount: only the machines the fresh count still has above the target
// are destroyed, each under its own lease too (a machine a deploy holds is
// passed over for the next spare). Destroying is not undone, so an
// overlapping run that destroyed first must not make us destroy again, a
// machine that started since the plan (Fly's proxy wakes stopped machines)
// is not destroyed in place of a stopped one, and a destroy with an
// uncertain answer is followed by a recount before the next one.
func (a *applier) destroys(acts []Action) {
	a.underAnchor(acts, func(fresh Fleet) { a.destroyFrom(acts, fresh) })
}

func (a *applier) destroyFrom(acts []Action, fresh Fleet) {
	acts = a.keep(acts, DestroysNeeded(fresh, a.plan, len(acts)))
	need := len(acts)

	// The planned victims first, then the spares.
	queue := append([]Action(nil), acts...)
	for _, id := range a.plan.Spares[ActionDestroy] {
		if m := a.f.machine(id); m != nil {
			queue = append(queue, Action{Kind: ActionDestroy, MachineID: id, Region: m.Region, Reason: "in place of a busy or failed destroy"})
		}
	}
	done := 0
	attempted := map[string]bool{}
	skipped := map[string]string{}
	var recountErr error
	for _, act := range queue {
		if done >= need || a.ctx.Err() != nil || recountErr != nil {
			break
		}
		now := fresh.machine(act.MachineID)
		if attempted[act.MachineID] || now == nil {
			continue
		}
		if was := a.f.machine(act.MachineID); countsAsStarted(now.State) && (was == nil || !countsAsStarted(was.State)) {
			skipped[act.MachineID] = startedSincePlan
			continue
		}
		attempted[act.MachineID] = true
		err := a.do(act)
		switch a.record(act, err).Outcome {
		case OutcomeDone:
			done++
			continue
		case OutcomeBusy, OutcomeAborted:
			continue
		}
		// A destroy that may have happened, or found the machine gone
		// (someone else destroyed it): count again before taking a spare.
		gone := statusOf(err) == http.StatusNotFound
		if !uncertain(err) && !gone {
			continue
		}
		f, err := a.recount()
		if err != nil {
			recountErr = err
			break
		}
		fresh = f
		if fresh.machine(act.MachineID) == nil {
			if gone {
				r := &a.out[len(a.out)-1]
				r.Outcome, r.Error = OutcomeUnneeded, "already gone: destroyed by someone else"
			} else {
				a.recovered("the machine is gone")
				done++
			}
		}
		need = done + DestroysNeeded(fresh, a.plan, need-done)
	}
	for _, act := range acts {
		if attempted[act.MachineID] {
			continue
		}
		outcome, err := OutcomeUnneeded, fmt.Errorf("recount under the lease of %s: already at the target", a.plan.Anchor)
		switch {
		case a.ctx.Err() != nil:
			outcome, err = OutcomeAborted, a.ctx.Err()
		case skipped[act.MachineID] != "":
			outcome, err = OutcomeBusy, errors.New(skipped[act.MachineID])
		case recountErr != nil:
			outcome, err = a.outcomeOf(recountErr), recountErr
		}
		a.out = append(a.out, ActionResult{Action: act, Outcome: outcome, Error: err.Error()})
	}
}

// settle records acts, none of them attempted, with outcome and err.
func (a *applier) settle(acts []Action, outcome Outcome, err error) {
	for _, act := range acts {
		a.out = append(a.out, ActionResult{Action: act, Outcome: outcome, Error: err.Error()})
	}
}

// recount lists the app again: the fresh count decisions under a lease
// are made from.
func (a *applier) recount() (Fleet, error) {
	list, err := a.m.List(a.ctx, a.f.App, "")
	if err != nil {
		return Fleet{}, wrapOp("recount: list machines", err)
	}
	return NewFleet(a.f.App, a.f.Group, list), nil
}

// uncertain reports whether a failed create may nevertheless have created
// the machine: the request may have reached the API (a 5xx, a timeout, a
// lost connection). A 4xx answer means it was refused.
func uncertain(err error) bool {
	s := statusOf(err)
	return s == 0 || s >= 500
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
	return statusOf(err) == http.StatusConflict
}

// statusOf returns the HTTP status of a Machines API error, 0 if none.
func statusOf(err error) int {
	var fe *flaps.FlapsError
	if errors.As(err, &fe) {
		return fe.ResponseStatusCode
	}
	return 0
}

// cleanError turns a Machines API error into "<status>: <message>", without
// fly-go's "failed to ... VM" prefix; other errors are kept as they are.
func cleanError(err error) string {
	var w *opError
	if errors.As(err, &w) {
		return w.msg
	}
	var fe *flaps.FlapsError
	if errors.As(err, &fe) {
		if fe.ResponseStatusCode == http.StatusUnauthorized {
			return unauthorized
		}
		return fmt.Sprintf("%d: %s", fe.ResponseStatusCode, fe.Error())
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
