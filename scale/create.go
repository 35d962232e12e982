package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	fly "github.com/superfly/fly-go"
)

// createRounds bounds the rounds of creates under one anchor lease: after
// a round with a failed or uncertain create, the app is counted again and
// what is still needed is created in the next.
const createRounds = 3

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
