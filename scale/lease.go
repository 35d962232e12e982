package scale

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

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
