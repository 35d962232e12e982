// The parsers of a policy's values: each reads one YAML value and says
// what a good one looks like.

package cmd

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/superfly/fly-autoscaler/scale"
)

// parseInitialState reads initial-machine-state: started or stopped.
func parseInitialState(v string) (string, error) {
	switch st := strings.ToLower(v); st {
	case "", "started", "stopped":
		return st, nil
	default:
		return "", fmt.Errorf("%q is not a machine state: use started or stopped", st)
	}
}

// parseScaleDown reads scale-down: stop (the default) or suspend.
func parseScaleDown(v string) (scale.ActionKind, error) {
	switch sd := strings.ToLower(v); sd {
	case "", "stop":
		return scale.ActionStop, nil
	case "suspend":
		return scale.ActionSuspend, nil
	default:
		return "", fmt.Errorf("%q: use stop or suspend", sd)
	}
}

// wholeAtLeast reads a whole number of at least least; otherwise the error
// says that v is not what, and the way out.
func wholeAtLeast(v string, least int, what, fix string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		return 0, fmt.Errorf("%q is not %s: use %s", v, what, fix)
	}
	return n, nil
}

// parseCount reads a step limit: a whole number of machines, at least 0.
func parseCount(v string) (int, error) {
	return wholeAtLeast(v, 0, "a number of machines", "a whole number (0 freezes that direction; leave it unset for no limit)")
}

// parseFallback reads fallback-started: a whole number of machines, at
// least 1.
func parseFallback(v string) (int, error) {
	return wholeAtLeast(v, 1, "a number of machines", "a whole number of at least 1 (leave it unset to leave an app whose metrics cannot be read alone)")
}

// parsePriority reads a policy's priority: a whole number, higher first.
func parsePriority(v string) (int, error) {
	return wholeAtLeast(v, math.MinInt, "a priority", "a whole number, higher is served first under a fleet budget (default 0)")
}

// parseFleetMax reads fleet-max-started or fleet-max-created: a whole
// number of machines, at least 0.
func parseFleetMax(v string) (int, error) {
	return wholeAtLeast(v, 0, "a number of machines", "a whole number, the most machines the selected apps may have in all (leave it unset for no cap)")
}

// parseMaxMachines reads max-machines: a whole number, at least 1.
func parseMaxMachines(v string) (int, error) {
	return wholeAtLeast(v, 1, "a number of machines", fmt.Sprintf("a whole number of at least 1 (default %d)", scale.DefaultMaxMachines))
}

// parseDuration reads a positive duration.
func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration: use a number with a unit, e.g. 30s or 2m", v)
	}
	return d, nil
}

// parseTimezone reads --timezone: an IANA zone name, UTC when empty.
// "Local" is refused: it would depend on the machine the run is on.
func parseTimezone(v string) (*time.Location, error) {
	if v == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(v)
	if err != nil || v == "Local" {
		return nil, fmt.Errorf("%q is not a time zone: use an IANA name such as Europe/Berlin or America/New_York", v)
	}
	return loc, nil
}
