package scale

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Policy holds the scaling rules that do not come from expressions.
type Policy struct {
	// InitialState is the state new machines are created in when no started
	// target decides it: "started" (default) or "stopped".
	InitialState string
	// Regions new machines are spread over, round-robin; empty means the
	// clone source's region.
	Regions []string
	// ScaleDown is how started machines are taken down: ActionStop
	// (default) or ActionSuspend.
	ScaleDown ActionKind
	// MaxScaleUp and MaxScaleDown cap how far one run moves each count:
	// nil means no cap, 0 freezes that direction.
	MaxScaleUp, MaxScaleDown *int
	// MaxMachines is the most machines of the process group a plan may
	// aim at (0 means DefaultMaxMachines): a created target above it is
	// implausible (a metric spike, a broken expression) and fails the app
	// (see CheckTargets); the planner never creates past it either, so a
	// plan grows with the machines that exist, not with a target.
	MaxMachines int
	// MinStartedDuration keeps a machine that started less than this long
	// ago from being stopped, suspended or destroyed.
	MinStartedDuration time.Duration
	// FallbackStarted, when above 0, is the started count an app whose
	// metrics cannot be read is raised to (never lowered): see Run.
	FallbackStarted int
	// Priority orders the apps' growth under a fleet budget: higher
	// first (see Allocate).
	Priority int
	// Names are the words a plan's warnings and CheckTargets' error use
	// for the limits above: the caller's (cmd names its flags). Unset,
	// they read "the scale-up limit", "the scale-down limit" and "the
	// machine limit": scale names no flag.
	Names LimitNames
}

// LimitNames name a Policy's limits in the caller's words.
type LimitNames struct {
	MaxScaleUp, MaxScaleDown, MaxMachines string
}

func (n LimitNames) or(name, def string) string {
	if name == "" {
		return def
	}
	return name
}

// DefaultMaxMachines is the default of Policy.MaxMachines.
const DefaultMaxMachines = 500

func (p Policy) maxMachines() int {
	if p.MaxMachines <= 0 {
		return DefaultMaxMachines
	}
	return p.MaxMachines
}

// ErrImplausible marks a target that no plan acts on: past the range of a
// count, or above Policy.MaxMachines.
var ErrImplausible = errors.New("implausible target")

// CheckTargets returns an error wrapping ErrImplausible when t would take
// the group of current machines above p.MaxMachines: the app must fail
// rather than grow blindly. Staying above it, or shrinking, is plausible.
func CheckTargets(current Counts, t Targets, p Policy) error {
	lo, hi := 0, math.MaxInt
	if t.Created.Min != nil {
		lo = *t.Created.Min
	}
	if t.Created.Max != nil {
		hi = *t.Created.Max
	}
	want := min(max(current.Created, lo), max(hi, 0))
	if limit := p.maxMachines(); want > limit && want > current.Created {
		return fmt.Errorf("%w: created target %d is above %s %d (raise it if the target is meant)", ErrImplausible, want, p.Names.or(p.Names.MaxMachines, "the machine limit"), limit)
	}
	return nil
}
