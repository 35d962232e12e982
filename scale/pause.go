package scale

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	fly "github.com/superfly/fly-go"
)

// The machine metadata keys a pause is written in. A run reads them from
// the machine list it makes anyway; MarkApps writes and deletes them
// through the Machines API's metadata endpoint (no update, no restart).
// Every key with MetaPrefix is the autoscaler's own and is never copied
// into a machine it creates.
const (
	MetaPrefix       = "fas_"
	MetaPausedUntil  = "fas_paused_until"
	MetaPausedReason = "fas_paused_reason"
)

// Pause lengths.
const (
	DefaultPause = time.Hour
	MaxPause     = 30 * 24 * time.Hour
)

// Pause is a pause mark read from one machine of an app's group.
type Pause struct {
	Machine string
	Until   time.Time
	Reason  string
}

// String is the reason a paused app is reported with: "paused until
// 2026-12-06T14:00Z: migration".
func (p Pause) String() string {
	s := "paused until " + pauseTime(p.Until)
	if p.Reason != "" {
		s += ": " + p.Reason
	}
	return s
}

// pauseTime is t in UTC to the minute ("2026-12-06T14:00Z"), with its
// seconds when it has some.
func pauseTime(t time.Time) string {
	t = t.UTC()
	if t.Second() == 0 && t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04Z")
	}
	return t.Format("2006-01-02T15:04:05Z")
}

// pauseOf reads the pause mark of fm, if it carries one. A value that is
// not an RFC 3339 time is returned as bad.
func pauseOf(fm *fly.Machine) (p Pause, ok bool, bad string) {
	c := fm.GetConfig()
	if c == nil {
		return Pause{}, false, ""
	}
	v, has := c.Metadata[MetaPausedUntil]
	if !has {
		return Pause{}, false, ""
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
	if err != nil {
		return Pause{}, false, v
	}
	return Pause{Machine: fm.ID, Until: t, Reason: c.Metadata[MetaPausedReason]}, true, ""
}

// PausedAt returns the pause in force at now: of the group's machines'
// unexpired marks, the one that lasts longest. An expired mark is ignored
// (and left in place).
func (f Fleet) PausedAt(now time.Time) (Pause, bool) {
	var best Pause
	found := false
	for _, p := range f.Pauses {
		if !now.Before(p.Until) {
			continue
		}
		if !found || p.Until.After(best.Until) {
			best, found = p, true
		}
	}
	return best, found
}

// MarkConfig is what MarkApps needs: the apps (selected as a run selects
// them), their process group and the mark to write or, with Resume, to
// delete.
type MarkConfig struct {
	Org      string
	Selector *Selector
	Group    string
	// OwnApp is the autoscaler's own app, left out of a selection.
	OwnApp string
	// Until and Reason are the pause written; unused with Resume.
	Until  time.Time
	Reason string
	Resume bool
	// Attempts is how many times a machine held by someone else's lease
	// is tried (default 3), RetryDelay the wait before the second try,
	// doubled before each further one (default 2s).
	Attempts    int
	RetryDelay  time.Duration
	Concurrency int
	Timeout     time.Duration
	Now         func() time.Time
}

// MarkReport is what MarkApps did, per app in name order.
type MarkReport struct {
	Org  string
	Apps []MarkResult
	// Err is set when the apps could not be selected.
	Err error
}

// MarkResult is one app's outcome of MarkApps.
type MarkResult struct {
	App string
	// Skipped says why the app was left alone ("" when it was not).
	Skipped string
	// Changed lists the machines whose metadata was written or deleted,
	// Already those that carried the wanted state.
	Changed, Already []string
	// Failed are the machines that could not be marked (a lease held
	// through every retry, an API error), with why.
	Failed []MachineError
	// Err is set when the app's machines could not be listed.
	Err error
}

// MachineError is one machine's failure.
type MachineError struct {
	Machine string
	Err     error
}

// OK reports whether every machine of the app has the wanted state.
func (r MarkResult) OK() bool { return r.Err == nil && len(r.Failed) == 0 }

// Failed reports whether any app could not be listed or marked, or the
// apps could not be selected.
func (r *MarkReport) Failed() bool {
	if r.Err != nil {
		return true
	}
	for _, a := range r.Apps {
		if !a.OK() {
			return true
		}
	}
	return false
}

// OwnAppReason is why the autoscaler's own app is left alone.
const OwnAppReason = "the autoscaler's own app, where it runs"

// MarkApps writes (or with Resume deletes) the pause keys on every machine
// of each selected app's process group. It is idempotent: a machine that
// already carries the wanted state is not written. A machine held by
// someone else's lease (a deploy) is tried again, then reported.
func MarkApps(ctx context.Context, cfg MarkConfig, apps Apps, m Machines) *MarkReport {
	rep := &MarkReport{Org: cfg.Org}
	rc := Config{Org: cfg.Org, Selector: cfg.Selector, Now: cfg.Now, Timeout: cfg.Timeout}
	lctx, cancel := context.WithTimeout(ctx, max(rc.timeout(), listTimeout))
	selected, err := discover(lctx, rc, apps)
	cancel()
	if err != nil {
		rep.Err = err
		return rep
	}
	rep.Apps = make([]MarkResult, len(selected))
	each(Config{Concurrency: cfg.Concurrency}, len(selected), func(i int) {
		name := selected[i].name
		if cfg.OwnApp != "" && name == cfg.OwnApp {
			rep.Apps[i] = MarkResult{App: name, Skipped: OwnAppReason}
			return
		}
		actx, cancel := context.WithTimeout(ctx, rc.timeout())
		defer cancel()
		rep.Apps[i] = markApp(actx, cfg, m, name)
	})
	return rep
}

// markApp marks the machines of one app's group.
func markApp(ctx context.Context, cfg MarkConfig, m Machines, app string) MarkResult {
	res := MarkResult{App: app}
	list, err := m.List(ctx, app, "")
	if err != nil {
		res.Err = fmt.Errorf("list machines: %s", cleanError(err))
		return res
	}
	group := cfg.Group
	if group == "" {
		group = DefaultProcessGroup
	}
	for _, fm := range list {
		if fm == nil || gone(fm.State) || processGroup(fm) != group {
			continue
		}
		ops := markOps(cfg, fm)
		if len(ops) == 0 {
			res.Already = append(res.Already, fm.ID)
			continue
		}
		failed := false
		for _, op := range ops {
			if err := retryBusy(ctx, cfg, func() error { return op(ctx, m, app, fm.ID) }); err != nil {
				res.Failed = append(res.Failed, MachineError{Machine: fm.ID, Err: err})
				failed = true
				break
			}
		}
		if !failed {
			res.Changed = append(res.Changed, fm.ID)
		}
	}
	return res
}

type markOp func(ctx context.Context, m Machines, app, id string) error

// markOps returns the metadata calls that bring fm to the wanted state:
// none when it is there already.
func markOps(cfg MarkConfig, fm *fly.Machine) []markOp {
	var md map[string]string
	if c := fm.GetConfig(); c != nil {
		md = c.Metadata
	}
	set := func(key, value string) markOp {
		return func(ctx context.Context, m Machines, app, id string) error {
			if err := m.SetMetadata(ctx, app, id, key, value); err != nil {
				return wrapOp("set metadata "+key, err)
			}
			return nil
		}
	}
	del := func(key string) markOp {
		return func(ctx context.Context, m Machines, app, id string) error {
			if err := m.DeleteMetadata(ctx, app, id, key); err != nil {
				return wrapOp("delete metadata "+key, err)
			}
			return nil
		}
	}
	var ops []markOp
	if cfg.Resume {
		for _, k := range []string{MetaPausedUntil, MetaPausedReason} {
			if _, ok := md[k]; ok {
				ops = append(ops, del(k))
			}
		}
		return ops
	}
	// The reason first: a machine is paused once its time is written,
	// and then with its reason.
	if cfg.Reason == "" {
		if _, ok := md[MetaPausedReason]; ok {
			ops = append(ops, del(MetaPausedReason))
		}
	} else if v, ok := md[MetaPausedReason]; !ok || v != cfg.Reason {
		ops = append(ops, set(MetaPausedReason, cfg.Reason))
	}
	until := cfg.Until.UTC().Format(time.RFC3339)
	if v, ok := md[MetaPausedUntil]; !ok || v != until {
		ops = append(ops, set(MetaPausedUntil, until))
	}
	return ops
}

// retryBusy calls fn, and again while it finds the machine busy (someone
// else's lease), up to cfg.Attempts times in all.
func retryBusy(ctx context.Context, cfg MarkConfig, fn func() error) error {
	attempts, delay := cfg.Attempts, cfg.RetryDelay
	if attempts < 1 {
		attempts = 3
	}
	if delay <= 0 {
		delay = 2 * time.Second
	}
	var err error
	for i := range attempts {
		if err = fn(); err == nil || !errors.Is(err, ErrBusy) {
			return err
		}
		if i == attempts-1 {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay *= 2
	}
	return fmt.Errorf("%w (tried %d times)", err, attempts)
}

// stripMarks removes the autoscaler's own metadata (MetaPrefix: a pause)
// from c, a clone's config: it belongs to the source machine.
func stripMarks(c *fly.MachineConfig) {
	for k := range c.Metadata {
		if strings.HasPrefix(k, MetaPrefix) {
			delete(c.Metadata, k)
		}
	}
}
