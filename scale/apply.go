package scale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	fly "github.com/superfly/fly-go"
	"github.com/superfly/fly-go/flaps"
)

// Apply executes plan against the Machines API and records each action's
// outcome. It does not decide: it runs the plan's actions in order, never
// retries one in a loop, and stops when ctx is done (the remaining actions
// are reported aborted).
func Apply(ctx context.Context, m Machines, f Fleet, plan Plan) []ActionResult {
	out := make([]ActionResult, len(plan.Actions))
	for i, a := range plan.Actions {
		out[i] = ActionResult{Action: a, Outcome: OutcomePlanned}
		if err := ctx.Err(); err != nil {
			out[i].Outcome, out[i].Error = OutcomeAborted, err.Error()
			continue
		}
		id, err := do(ctx, m, f, a)
		if id != "" {
			out[i].MachineID = id
		}
		switch {
		case err == nil:
			out[i].Outcome = OutcomeDone
		case isBusy(err):
			out[i].Outcome, out[i].Error = OutcomeBusy, cleanError(err)
		case ctx.Err() != nil:
			out[i].Outcome, out[i].Error = OutcomeAborted, cleanError(err)
		default:
			out[i].Outcome, out[i].Error = OutcomeFailed, cleanError(err)
		}
	}
	return out
}

func do(ctx context.Context, m Machines, f Fleet, a Action) (string, error) {
	switch a.Kind {
	case ActionStart:
		_, err := m.Start(ctx, f.App, a.MachineID, "")
		return "", err
	case ActionStop:
		return "", m.Stop(ctx, f.App, fly.StopMachineInput{ID: a.MachineID}, "")
	case ActionSuspend:
		return "", m.Suspend(ctx, f.App, a.MachineID, "")
	case ActionDestroy:
		return "", m.Destroy(ctx, f.App, fly.RemoveMachineInput{ID: a.MachineID, Kill: true}, "")
	case ActionCreate:
		in, err := launchInput(f, a)
		if err != nil {
			return "", err
		}
		nm, err := m.Launch(ctx, f.App, in)
		if err != nil {
			return "", err
		}
		return nm.ID, nil
	}
	return "", fmt.Errorf("unknown action %q", a.Kind)
}

// launchInput clones the config of the action's source machine, pinned to
// the source's full image reference.
func launchInput(f Fleet, a Action) (fly.LaunchMachineInput, error) {
	var src *fly.Machine
	for _, m := range f.Machines {
		if m.ID == a.Source {
			src = m.raw
		}
	}
	if src == nil || src.Config == nil {
		return fly.LaunchMachineInput{}, fmt.Errorf("clone source %s has no config", a.Source)
	}
	cfg, err := copyConfig(src.Config)
	if err != nil {
		return fly.LaunchMachineInput{}, err
	}
	if src.ImageRef.Repository != "" {
		cfg.Image = src.FullImageRef()
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
	var fe *flaps.FlapsError
	if errors.As(err, &fe) {
		return fmt.Sprintf("%d: %s", fe.ResponseStatusCode, fe.Error())
	}
	return err.Error()
}
